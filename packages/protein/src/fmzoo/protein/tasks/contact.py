"""Contact prediction metric (TAPE ``PairwiseContactPredictionHead.compute_precision_at_l5``).

Precision of the L/5 most probable contacts among residue pairs with sequence separation >= 6 whose label
is valid (!= -1). No contact-map data ship in ../shared/data, so fmzoo-protein provides the head
(:class:`fmzoo.protein.models.layers.PairwiseContactPredictionHead`, TAPE layout) and this metric,
tested on constructed inputs, but reports no contact numbers.
"""

from __future__ import annotations

import torch


def precision_at_l5(logits: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor, min_sep: int = 6) -> float:
    """``logits`` (B, L, L, 2), ``labels`` (B, L, L) in {0, 1, -1}, ``lengths`` (B,) residues per protein."""
    if logits.dim() != 4 or logits.size(-1) != 2:
        raise ValueError(f"logits must have shape (B, L, L, 2), got {tuple(logits.shape)}")
    probs = torch.softmax(logits.float(), -1)[..., 1]
    L = labels.size(1)
    pos = torch.arange(L)
    sep_ok = (pos[None, :] - pos[:, None]) >= min_sep
    correct = total = 0
    for p, y, n in zip(probs, labels, lengths, strict=True):
        valid = (y != -1) & sep_ok
        k = int(n) // 5
        if k == 0:
            continue
        scores = torch.where(valid, p, torch.full_like(p, -1.0)).reshape(-1)
        top = scores.topk(k).indices
        correct += int((y.reshape(-1)[top] == 1).sum())
        total += k
    return correct / max(total, 1)
