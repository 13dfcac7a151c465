"""Layers shared by T-JEPA's encoder and predictor and the downstream heads: nn.Dropout and
nn.TransformerEncoderLayer with the same semantics and parameters, computed faster at T-JEPA's sizes.

At width 16 per token a transformer layer does little arithmetic per element, so drawing dropout masks
costs more than the matrix products: in the paper-size Adult step (16+16 layers, dropout 0.0019)
``bernoulli_`` took a quarter of the time and the attention's dropout path another quarter."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SPARSE_BELOW = 0.05  # rates under this draw the dropped positions, not a mask over every element


def bernoulli_positions(n: int, p: float, device=None) -> torch.Tensor:
    """The indices in [0, n) selected by n independent Bernoulli(p) trials, drawn as the geometric gaps
    between successive successes: about n * p random draws instead of n, the same distribution."""
    chunks, start = [], 0
    while True:
        expected = (n - start) * p
        gaps = torch.empty(int(expected + 6 * math.sqrt(expected) + 16), dtype=torch.float64, device=device)
        pos = gaps.geometric_(p).long().cumsum(0) + (start - 1)
        chunks.append(pos[pos < n])
        if int(pos[-1]) >= n:
            return torch.cat(chunks)
        start = int(pos[-1]) + 1


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` in distribution. Rates under ``SPARSE_BELOW``: the dropped positions are
    drawn by ``bernoulli_positions``; larger rates: a keep-mask from ``torch.rand`` (about half the time of
    ``bernoulli_`` on CPU)."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    scale = 1.0 / (1.0 - p)
    if p < SPARSE_BELOW:
        pos = bernoulli_positions(x.numel(), p, x.device)
        return (x * scale).reshape(-1).index_fill(0, pos, 0.0).reshape(x.shape)
    return x * ((torch.rand_like(x) >= p) * scale)


class Dropout(nn.Dropout):
    """nn.Dropout drawn by ``dropout`` above: same distribution, cheaper draws."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class TransformerEncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, batch_first=True)`` (post-norm, ReLU), the same
    module (parameters, names, initialisation), whose training forward with a dropout active is computed faster:
    every dropout, the attention weights' included, drawn by ``dropout`` above, and the attention unfused (the
    fused kernel's own dropout path was slower here: 1.64 vs 1.31 s per paper-size Adult step). Otherwise (eval,
    or every rate 0 as in fine-tuning) it is the stock forward, so those outputs are bit-identical to PyTorch's."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float):
        super().__init__(dim, heads, ff_dim, dropout, batch_first=True)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        rates = (self.self_attn.dropout, self.dropout.p, self.dropout1.p, self.dropout2.p)
        if not self.training or src_mask is not None or src_key_padding_mask is not None or not any(rates):
            return super().forward(src, src_mask, src_key_padding_mask, is_causal)
        x = self.norm1(src + dropout(self.attention(src), self.dropout1.p))
        return self.norm2(x + dropout(self.linear2(dropout(F.relu(self.linear1(x)), self.dropout.p)), self.dropout2.p))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Training self-attention as nn.MultiheadAttention computes it: softmax(q k^T / sqrt(d_head)), dropout
        on the weights, then v."""
        a = self.self_attn
        b, t, d = x.shape
        q, k, v = F.linear(x, a.in_proj_weight, a.in_proj_bias).view(b, t, 3, a.num_heads, d // a.num_heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax((q * (d // a.num_heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
        out = dropout(weights, a.dropout, self.training) @ v
        return a.out_proj(out.transpose(1, 2).reshape(b, t, d))
