"""Biopython interop: ``Seq`` / ``SeqRecord`` objects and FASTA paths wherever a protein sequence is accepted, and
per-residue outputs returned as ``SeqRecord`` objects with ``letter_annotations``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from fmzoo.core import InputSpecError

FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fas", ".fna")


def as_sequence(item) -> str:
    """A protein sequence as ``str``: ``str`` itself, a Biopython ``Seq`` or a ``SeqRecord`` (its ``.seq``)."""
    if isinstance(item, str):
        return item
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    if isinstance(item, SeqRecord):
        item = item.seq
    if isinstance(item, Seq):
        try:
            return str(item)
        except Exception as exc:  # an undefined-content Seq (Seq(None, length)) has no letters
            raise InputSpecError(f"this Seq has no defined residues ({exc})") from None
    raise InputSpecError(f"expected a protein sequence (str, Bio.Seq.Seq or Bio.SeqRecord.SeqRecord), "
                         f"got {type(item).__name__}")


def _is_fasta_path(obj) -> bool:
    if isinstance(obj, os.PathLike):
        return True
    if isinstance(obj, str) and obj.lower().endswith(FASTA_SUFFIXES):  # a sequence never holds a '.'
        if not Path(obj).is_file():
            raise InputSpecError(f"no FASTA file {obj!r}; expected an existing FASTA path or protein sequences")
        return True
    return False


def read_records(obj) -> list:
    """SeqRecords from a FASTA path, a single sequence-like, or an iterable of sequence-likes (ids seq0, seq1, ...
    for plain strings). A FASTA file is checked as ``read_fasta_records`` does; its ids may repeat (outputs follow
    the records' order, the ids pair nothing)."""
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    if _is_fasta_path(obj):
        from .data.fasta import read_fasta_records

        path = Path(obj)
        if not path.is_file():
            raise InputSpecError(f"{str(path)!r} is not a file; expected a FASTA file")
        return read_fasta_records(path, unique_ids=False)
    if isinstance(obj, (str, Seq, SeqRecord)):
        obj = [obj]
    return [x if isinstance(x, SeqRecord) else SeqRecord(Seq(as_sequence(x)), id=f"seq{i}", description="")
            for i, x in enumerate(obj)]


def as_sequences(obj) -> list[str]:
    """A list of ``str`` from a list of str/Seq/SeqRecord, a SeqIO iterator, or a FASTA path."""
    if _is_fasta_path(obj):
        return [str(r.seq) for r in read_records(obj)]
    if isinstance(obj, str):
        return [obj]
    return [as_sequence(x) for x in obj]


def annotate(sequences, values: Sequence, name: str = "prediction") -> list:
    """Per-residue values (one length-L array / list per sequence) as SeqRecords: ``record.letter_annotations[name]``
    holds the L values (rows of an (L, d) array are kept as arrays). Records passed in keep their id/description
    and existing annotations (a copy is returned; the input is not modified)."""
    records = read_records(sequences)
    values = list(values)
    if len(values) != len(records):
        raise InputSpecError(f"{len(values)} per-residue outputs for {len(records)} sequences")
    out = []
    for rec, v in zip(records, values, strict=True):
        v = list(v) if not isinstance(v, (str, np.ndarray)) else v
        if len(v) != len(rec):
            raise InputSpecError(f"{rec.id}: {len(v)} per-residue values for {len(rec)} residues")
        new = rec[:]  # a copy with the per-letter annotations sliced along
        new.letter_annotations[name] = list(v) if isinstance(v, np.ndarray) and v.ndim == 1 else v
        out.append(new)
    return out
