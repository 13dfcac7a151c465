"""Layers shared by T-JEPA's encoder and predictor and the downstream heads: nn.Dropout and
nn.TransformerEncoderLayer with the same semantics and parameters, computed faster at T-JEPA's sizes.

At width 16 per token a transformer layer does little arithmetic per element, so drawing dropout masks
costs more than the matrix products: in the paper-size Adult step (16+16 layers, dropout 0.0019)
``bernoulli_`` took a quarter of the time and the attention's dropout path another quarter."""

from __future__ import annotations

import copy
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


class PostNormEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, batch_first=True)`` (post-norm, ReLU): the
    same parameters under the same names, drawn in the same order at init, and the same outputs; ``Dropout`` above for the attention weights and the three other dropouts (1.6x faster
    per paper-size Adult step than the stock layers, benchmarks/tabular_tjepa_pretrain.py)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)  # holds the weights
        self.linear1 = nn.Linear(dim, ff_dim)
        self.dropout = Dropout(dropout)
        self.linear2 = nn.Linear(ff_dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        a = self.self_attn
        b, t, d = x.shape
        q, k, v = F.linear(x, a.in_proj_weight, a.in_proj_bias).view(b, t, 3, a.num_heads, d // a.num_heads).permute(2, 0, 3, 1, 4)
        p = a.dropout if self.training else 0.0
        if p == 0.0:  # the fused kernel, as nn.MultiheadAttention uses then (so the outputs are bit-identical)
            out = F.scaled_dot_product_attention(q, k, v)
        else:  # softmax(q k^T / sqrt(d_head)), dropout on the weights, then v; the fused kernel's own dropout
            # path was slower here (1.64 vs 1.31 s per paper-size Adult step)
            weights = torch.softmax((q * (d // a.num_heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
            out = dropout(weights, p) @ v
        return a.out_proj(out.transpose(1, 2).reshape(b, t, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.attention(x)))
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class EncoderStack(nn.Module):
    """``nn.TransformerEncoder(layer, depth)`` without nested tensors: ``depth`` deep copies of ``layer``
    (so every layer starts from the same weights, as there) applied in turn; parameter names ``layers.i.*``."""

    def __init__(self, layer: nn.Module, depth: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
