"""Overlap between pretraining proteins and the evaluation sets (CB513, GB1): exact k-mer matching."""

from __future__ import annotations


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
