"""FASTA input through Biopython, with clear errors for malformed files."""

from __future__ import annotations

from pathlib import Path

from fmzoo.core import InputSpecError, data_root


def read_fasta_records(path: str | Path, unique_ids: bool = True) -> list:
    """Biopython ``SeqRecord`` objects of a FASTA file; errors name the file, the record and what was expected (an
    empty or non-FASTA file, a record without residues, with ``unique_ids`` an id used twice)."""
    from Bio import SeqIO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FASTA file {str(path)!r} does not exist")
    try:
        text = path.read_text(errors="strict")
    except UnicodeDecodeError as exc:
        raise InputSpecError(f"{str(path)!r} is not a text FASTA file ({exc.reason} at byte {exc.start}); expected "
                             "records '>id description' followed by one-letter residues") from None
    stripped = text.lstrip()
    if not stripped:
        raise InputSpecError(f"{str(path)!r} is empty; expected FASTA records starting with '>'")
    if not stripped.startswith(">"):
        raise InputSpecError(f"{str(path)!r} is not FASTA: the first non-blank character is {stripped[0]!r}, expected '>'")
    records, first = [], {}
    with path.open() as fh:
        for i, rec in enumerate(SeqIO.parse(fh, "fasta")):
            if not rec.id:
                raise InputSpecError(f"{str(path)!r}: record {i} has no id (a bare '>' line); expected '>id ...'")
            if not len(rec.seq):
                raise InputSpecError(f"{str(path)!r}: record {rec.id!r} has an empty sequence (truncated file?)")
            if unique_ids and rec.id in first:
                raise InputSpecError(f"{str(path)!r}: the id {rec.id!r} names records {first[rec.id]} and {i}; expected "
                                     "each id once (ids pair a sequence with its labels)")
            first.setdefault(rec.id, i)
            records.append(rec)
    return records


def read_fasta(path: str | Path, unique_ids: bool = True) -> list[tuple[str, str, str]]:
    """Return ``[(id, description, sequence)]``; errors name the file and the problem (see ``read_fasta_records``)."""
    return [(rec.id, rec.description, str(rec.seq)) for rec in read_fasta_records(path, unique_ids)]


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


def read_labelled_fasta(path: str | Path, target: str = "TARGET") -> dict[str, dict[str, list[str]]]:
    """A labelled FASTA in FLIP's layout: every record's description carries ``TARGET=<label>`` (or the field named
    ``target``) and ``SET=train|test`` (FLIP's ``VALIDATION=True`` records are training records), e.g.
    ``>variant_17 TARGET=0.734 SET=train VALIDATION=False``. Returns ``{"train": ..., "test": ...}`` each a dict
    of ``ids``, ``sequences`` and ``targets`` (the label text); errors name the record and what was expected."""
    out = {part: {"ids": [], "sequences": [], "targets": []} for part in ("train", "test")}
    for rid, desc, seq in read_fasta(path):
        fields = dict(tok.split("=", 1) for tok in desc.split()[1:] if "=" in tok)
        fields = {k.upper(): v for k, v in fields.items()}
        if target.upper() not in fields or "SET" not in fields:
            raise InputSpecError(f"{str(path)!r}: record {rid!r} has the description {desc!r}; expected FLIP's "
                                 f"fields {target}=<label> and SET=train|test, e.g. '>v1 {target}=0.73 SET=train'")
        part = fields["SET"].lower()
        if part not in out:
            raise InputSpecError(f"{str(path)!r}: record {rid!r} has SET={fields['SET']!r}; expected SET=train or SET=test")
        out[part]["ids"].append(rid)
        out[part]["sequences"].append(seq)
        out[part]["targets"].append(fields[target.upper()])
    for part, rec in out.items():
        if not rec["ids"]:
            raise InputSpecError(f"{str(path)!r} has no SET={part} record; expected both SET=train and SET=test records")
    return out
