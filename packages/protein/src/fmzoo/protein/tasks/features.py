"""Frozen-backbone features: per-residue embeddings (``<cls>``/``<sep>`` removed) and pooled vectors."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..bio import as_sequences
from ..spec import CropWarning, TAPETokenizer


@torch.no_grad()
def residue_features(model, sequences: list[str], max_tokens: int = 16384, layer: int | None = None,
                     unknown: str = "error") -> list[np.ndarray]:
    """One ``(len(seq), hidden)`` float32 array per sequence, from the last layer (or ``layer``).

    Sequences longer than the model's positions are embedded in consecutive windows, with a :class:`CropWarning`
    (each window sees only its own residues).
    ``sequences``: str, Biopython ``Seq``/``SeqRecord`` objects, or a FASTA path; ``fmzoo.protein.bio.annotate``
    turns the arrays into SeqRecords with ``letter_annotations``.
    """
    sequences = as_sequences(sequences)
    max_len = getattr(model, "max_len", None)
    if max_len is not None and any(len(s) > max_len - 2 for s in sequences):
        # longer than the learned positions: embed consecutive windows of max_len - 2 residues and concatenate
        w = max_len - 2
        n_long = sum(len(s) > w for s in sequences)
        warnings.warn(f"{n_long}/{len(sequences)} sequences exceed the model's {w} positions: embedded in consecutive "
                      f"windows of {w} residues, no attention across windows", CropWarning, stacklevel=2)
        pieces, owner = [], []
        for k, s in enumerate(sequences):
            for start in range(0, len(s), w):
                pieces.append(s[start: start + w])
                owner.append(k)
        feats = residue_features(model, pieces, max_tokens, layer, unknown)
        out = [[] for _ in sequences]
        for k, f in zip(owner, feats, strict=True):
            out[k].append(f)
        return [np.concatenate(parts) for parts in out]
    model.eval()
    tok = TAPETokenizer(unknown=unknown)
    order = np.argsort([len(s) for s in sequences])
    out: list[np.ndarray | None] = [None] * len(sequences)
    i = 0
    while i < len(order):
        L = len(sequences[order[i]]) + 2
        j = i
        while j < len(order) and (len(sequences[order[j]]) + 2) * (j - i + 1) <= max(max_tokens, L):
            j += 1
        idx = order[i:j]
        seqs = [sequences[k] for k in idx]
        ids, mask = tok.batch_encode(seqs)
        if layer is None:
            h = model.embed(ids, mask)[0]
        else:
            h = model.embed(ids, mask, return_all=True)[2][layer]
        h = h.float().numpy()
        for row, k in enumerate(idx):
            out[k] = h[row, 1: len(sequences[k]) + 1].copy()
        i = j
    return out  # type: ignore[return-value]


def mean_pool(features: list[np.ndarray]) -> np.ndarray:
    return np.stack([f.mean(0) for f in features])


def one_hot_window(sequences: list[str], k: int = 3) -> list[np.ndarray]:
    """One-hot (25 IUPAC letters) of each residue and its +-k neighbours: the one-hot baseline."""
    tok = TAPETokenizer(unknown="X")
    out = []
    for s in sequences:
        ids = tok.residue_ids(s) - 5
        oh = np.zeros((len(s) + 2 * k, 25), dtype=np.float32)
        oh[np.arange(len(s)) + k, ids] = 1
        out.append(np.concatenate([oh[i: i + len(s)] for i in range(2 * k + 1)], axis=1))
    return out
