"""Losses shared by pretraining (Volume Fusion's pseudo-segmentation) and segmentation fine-tuning."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, w_dice: float = 0.5, w_ce: float = 0.5) -> dict:
    """Soft Dice (mean over classes, batch-pooled) + cross-entropy."""
    ce = F.cross_entropy(logits, target)
    prob = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(prob.dtype)
    dims = (0, 2, 3, 4)
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    dice = 1 - ((2 * inter + 1e-5) / (denom + 1e-5)).mean()
    return {"loss": w_dice * dice + w_ce * ce, "dice_loss": dice, "ce": ce}
