"""FASTA input through Biopython, with clear errors for malformed files."""

from __future__ import annotations

from pathlib import Path

from fmzoo.core import InputSpecError, data_root


def read_fasta(path: str | Path) -> list[tuple[str, str, str]]:
    """Return ``[(id, description, sequence)]``; errors name the file and the problem."""
    from Bio import SeqIO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FASTA file {str(path)!r} does not exist")
    text = path.read_text(errors="strict")
    stripped = text.lstrip()
    if not stripped:
        raise InputSpecError(f"{str(path)!r} is empty; expected FASTA records starting with '>'")
    if not stripped.startswith(">"):
        raise InputSpecError(f"{str(path)!r} is not FASTA: the first non-blank character is {stripped[0]!r}, expected '>'")
    records = []
    with path.open() as fh:
        for rec in SeqIO.parse(fh, "fasta"):
            seq = str(rec.seq)
            if not seq:
                raise InputSpecError(f"{str(path)!r}: record {rec.id!r} has an empty sequence (truncated file?)")
            records.append((rec.id, rec.description, seq))
    return records


def load_pretraining_sequences(root: str | Path | None = None, include_test: bool = False) -> list[str]:
    """Unlabelled sequences for MLM pretraining: FLIP secondary-structure ``sequences.fasta``.

    By default only the proteins FLIP marks ``SET=train`` (10,792 of 11,156; the split is read from
    ``sampled.fasta``), so FLIP's own test proteins are never seen in pretraining. CB513 is a separate
    set (NetSurfP-2.0 removed CB513 homologues from its training proteins).
    """
    root = Path(root) if root else data_root() / "proteins" / "flip_secondary_structure"
    seqs = read_fasta(root / "sequences.fasta")
    if include_test:
        return [s for _, _, s in seqs]
    split = {rid: desc for rid, desc, _ in read_fasta(root / "sampled.fasta")}
    return [s for rid, _, s in seqs if "SET=train" in split.get(rid, "")]


def evaluation_sequences(names) -> list[str]:
    """Sequences of the evaluation sets a pretraining run must not see: ``"cb513"`` (all 511 proteins) and
    ``"gb1"`` (every FLIP GB1 variant, cut to the 56-residue GB1 domain that holds the 4 varied sites)."""
    out: list[str] = []
    for name in names:
        if name == "cb513":
            from .secondary_structure import load_cb513

            out += [r.sequence for r in load_cb513()]
        elif name == "gb1":
            from .gb1 import load_gb1

            d = load_gb1("sampled")
            out += sorted({q[:56] for part in d.values() for q in part["sequence"]})
        else:
            raise ValueError(f"unknown evaluation set {name!r}; expected 'cb513' or 'gb1'")
    return out


def drop_overlapping(sequences: list[str], references: list[str], k: int = 20) -> tuple[list[str], int]:
    """Remove every sequence that shares an exact ``k``-residue substring with any reference sequence.

    Returns ``(kept, n_dropped)``. With k=20 this removes identical and near-identical copies of the
    evaluation proteins (a 20-mer match by chance between unrelated proteins is ~20^-20 per position pair).
    """
    kmers = {r[i: i + k] for r in references for i in range(len(r) - k + 1)}
    kept = [s for s in sequences if not any(s[i: i + k] in kmers for i in range(len(s) - k + 1))]
    return kept, len(sequences) - len(kept)
