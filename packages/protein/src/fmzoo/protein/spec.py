"""TAPE's IUPAC tokenizer (songlab-cal/tape ``tape/tokenizers.py``, vocab ``iupac``).

Ids and order are TAPE's exactly: ``<pad>``=0, ``<mask>``=1, ``<cls>``=2, ``<sep>``=3, ``<unk>``=4,
then the 25 IUPAC one-letter codes A B C D E F G H I K L M N O P Q R S T U V W X Y Z = 5..29.
A sequence is encoded as ``<cls> residues <sep>``.

Unknown residues: TAPE has no fallback; its ``convert_token_to_id`` raises ``KeyError`` for any
character outside the vocabulary (lower case, ``J``, ``*``, ``-``, digits ...). The IUPAC "unknown
amino acid" code ``X`` is in the vocabulary (id 27) and is how TAPE's data encode unknown residues;
``<unk>`` exists in the vocabulary but TAPE's tokenizer never emits it. We do the same by default
(``unknown="error"``) with a clear :class:`fmzoo.core.InputSpecError` naming the characters and
positions. ``unknown="X"`` maps other *letters* to ``X`` and ``unknown="unk"`` maps them to
``<unk>``; non-letters are always an error.

:class:`TapeSequenceInput` is the ``input_spec`` of every TAPE checkpoint (``TAPETokenizer.spec()`` plus, for the
Transformer, ``max_length``): the tokenizer the package encodes with is fixed, so a spec naming another vocabulary
or other special tokens is refused rather than silently ignored.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.spec import InputSpec

SPECIAL_TOKENS = ("<pad>", "<mask>", "<cls>", "<sep>", "<unk>")
IUPAC_LETTERS = "ABCDEFGHIKLMNOPQRSTUVWXYZ"
IUPAC_VOCAB: OrderedDict[str, int] = OrderedDict(
    (tok, i) for i, tok in enumerate(list(SPECIAL_TOKENS) + list(IUPAC_LETTERS))
)
PAD_ID, MASK_ID, CLS_ID, SEP_ID, UNK_ID = range(5)
X_ID = IUPAC_VOCAB["X"]
#: The 20 standard amino acids (used for MLM random replacement and one-hot baselines).
STANDARD_AA = "ACDEFGHIKLMNPQRSTVWY"
STANDARD_IDS = [IUPAC_VOCAB[a] for a in STANDARD_AA]
UNKNOWN_RULES = {"error": None, "X": "X", "unk": "<unk>"}  # ``unknown`` -> the vocabulary token it maps letters to
SPECIAL_TOKENS_ADDED = ["<cls>", "<sep>"]  # TAPE's encode: <cls> residues <sep>


class CropWarning(UserWarning):
    """Sequences longer than a model takes were cropped to their first residues (or embedded in windows)."""


class TapeSequenceInput(InputSpec):
    """Protein sequences in TAPE's IUPAC vocabulary (``TAPETokenizer``): ``vocab`` (token -> id, TAPE's exactly),
    ``add_special_tokens`` (``<cls>``, ``<sep>``), ``unknown`` (what a letter outside the vocabulary becomes: error,
    X or unk), optional ``max_length`` (tokens incl. ``<cls>``/``<sep>`` that the learned positions take)."""

    modality = "protein-sequence"
    required = {"vocab": dict, "add_special_tokens": list, "unknown": str}
    optional = {"max_length": int}

    @classmethod
    def check(cls, spec, where):
        vocab, unknown = spec["vocab"], spec["unknown"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in vocab.values()):
            raise InputSpecError(f"{where}['vocab']: expected token -> integer id, got ids "
                                 f"{sorted({type(v).__name__ for v in vocab.values()})}")
        if unknown not in UNKNOWN_RULES:
            raise InputSpecError(f"{where}['unknown']: expected one of {sorted(UNKNOWN_RULES)}, got {unknown!r}")
        target = UNKNOWN_RULES[unknown]
        if target is not None and target not in vocab:  # the token unknown letters become must exist
            raise InputSpecError(f"{where}: 'unknown' is {unknown!r}, which maps letters to {target!r}, but 'vocab' "
                                 f"has no {target!r}")
        absent = [t for t in spec["add_special_tokens"] if t not in vocab]
        if absent:
            raise InputSpecError(f"{where}: 'add_special_tokens' names {absent}, which 'vocab' lacks")
        if vocab != dict(IUPAC_VOCAB):
            diff = sorted(set(vocab.items()) ^ set(IUPAC_VOCAB.items()), key=str)[:4]
            raise InputSpecError(f"{where}['vocab']: expected TAPE's IUPAC vocabulary ({len(IUPAC_VOCAB)} tokens, "
                                 f"<pad>=0 ... Z=29), the only one this package encodes with; got {len(vocab)} tokens "
                                 f"(differing entries {diff})")
        if spec["add_special_tokens"] != SPECIAL_TOKENS_ADDED:
            raise InputSpecError(f"{where}['add_special_tokens']: expected {SPECIAL_TOKENS_ADDED} (TAPE's encoding), "
                                 f"got {spec['add_special_tokens']!r}")
        if "max_length" in spec and spec["max_length"] < 3:
            raise InputSpecError(f"{where}['max_length']: expected at least 3 tokens (<cls>, a residue, <sep>), got "
                                 f"{spec['max_length']}")


class TAPETokenizer:
    """Encode protein sequences with TAPE's IUPAC vocabulary."""

    vocab = IUPAC_VOCAB
    tokens = list(IUPAC_VOCAB)
    start_token, stop_token, mask_token, pad_token = "<cls>", "<sep>", "<mask>", "<pad>"

    def __init__(self, unknown: str = "error"):
        if unknown not in ("error", "X", "unk"):
            raise ValueError(f"unknown must be 'error', 'X' or 'unk', got {unknown!r}")
        self.unknown = unknown
        lut = np.full(256, -1, dtype=np.int64)
        for letter in IUPAC_LETTERS:
            lut[ord(letter)] = IUPAC_VOCAB[letter]
        self._lut = lut

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def spec(self) -> dict:
        return {"vocab": dict(self.vocab), "add_special_tokens": list(SPECIAL_TOKENS_ADDED), "unknown": self.unknown}

    def residue_ids(self, sequence: str) -> np.ndarray:
        """Ids of the residues only (no ``<cls>``/``<sep>``)."""
        if not isinstance(sequence, str):
            from .bio import as_sequence  # Biopython Seq / SeqRecord

            sequence = as_sequence(sequence)
        if len(sequence) == 0:
            raise InputSpecError("expected a non-empty protein sequence, got ''")
        try:
            raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
        except UnicodeEncodeError:
            bad = sorted({c for c in sequence if ord(c) > 127})
            raise InputSpecError(
                f"protein sequence contains non-ASCII characters {bad}; expected IUPAC one-letter codes "
                f"{IUPAC_LETTERS}"
            ) from None
        ids = self._lut[raw]
        bad_pos = np.flatnonzero(ids < 0)
        if bad_pos.size:
            chars = [sequence[i] for i in bad_pos]
            letters = [c.isalpha() and c.isupper() for c in chars]
            if self.unknown != "error" and all(letters):
                ids = ids.copy()
                ids[bad_pos] = X_ID if self.unknown == "X" else UNK_ID
                return ids
            shown = ", ".join(f"{c!r}@{i}" for c, i in list(zip(chars, bad_pos.tolist(), strict=True))[:10])
            raise InputSpecError(
                f"protein sequence has {bad_pos.size} character(s) outside TAPE's IUPAC vocabulary "
                f"({shown}); expected upper-case one-letter codes {IUPAC_LETTERS} (X = unknown residue)"
                + ("" if self.unknown != "error" else "; pass unknown='X' to map other letters to X")
            )
        return ids

    def encode(self, sequence: str) -> np.ndarray:
        """``<cls> + residues + <sep>`` as int64 ids, as TAPE's ``TAPETokenizer.encode``."""
        return np.concatenate([[CLS_ID], self.residue_ids(sequence), [SEP_ID]]).astype(np.int64)

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.tokens[int(i)] for i in ids)

    def batch_encode(self, sequences: Sequence[str], max_length: int | None = None):
        """Pad a batch with ``<pad>`` (0); returns ``(input_ids, input_mask)`` LongTensors.

        ``max_length`` (including ``<cls>``/``<sep>``) crops longer sequences to their first ``max_length - 2``
        residues, with a :class:`CropWarning` naming how many (never silently dropped). A bad sequence is an
        InputSpecError naming its position in the batch.
        """
        if isinstance(sequences, str) or len(sequences) == 0:
            raise InputSpecError("expected a non-empty list of protein sequences, got "
                                 + (f"the string {sequences[:20]!r} (wrap one sequence in a list)"
                                    if isinstance(sequences, str) else "none"))
        encoded = []
        for i, s in enumerate(sequences):
            try:
                encoded.append(self.encode(s))
            except InputSpecError as e:
                raise InputSpecError(f"sequence {i} of {len(sequences)}: {e}") from None
        if max_length is not None:
            if max_length < 3:
                raise ValueError("max_length must be >= 3 (<cls>, one residue, <sep>)")
            long = [len(e) - 2 for e in encoded if len(e) > max_length]
            if long:
                warnings.warn(f"{len(long)} of {len(encoded)} sequences are longer than max_length={max_length} tokens "
                              f"({max_length - 2} residues; the longest has {max(long)}): cropped to their first "
                              f"{max_length - 2} residues", CropWarning, stacklevel=2)
            encoded = [e if len(e) <= max_length else np.concatenate([e[: max_length - 1], [SEP_ID]]) for e in encoded]
        length = max(len(e) for e in encoded)
        ids = torch.zeros(len(encoded), length, dtype=torch.long)
        mask = torch.zeros(len(encoded), length, dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.from_numpy(e)
            mask[i, : len(e)] = 1
        return ids, mask
