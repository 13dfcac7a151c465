"""Layers shared by T-JEPA's encoder and predictor and the downstream heads: nn.Dropout and
nn.TransformerEncoderLayer with the same semantics and parameters, computed faster at T-JEPA's sizes.

At width 16 per token a transformer layer does little arithmetic per element, so drawing dropout masks
costs more than the matrix products: in the paper-size Adult step (16+16 layers, dropout 0.0019)
``bernoulli_`` took a quarter of the time and the attention's dropout path another quarter. Two more exact savings:
PyTorch's CPU softmax over a last dimension under 16 takes a path about 20x slower per element than at 16 (measured:
~70 vs ~3.6 ns per element), and T-JEPA's sequences have at most 15 tokens, so attention scores are padded to 16
columns with -inf before the softmax (``softmax_lastdim``: the padded columns come out exactly 0 and are dropped);
and the sparse dropout writes its output and its gradient in one pass each, without the copies of an out-of-place
``index_fill``."""

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


class _ScaleAndZero(torch.autograd.Function):
    """y = x * scale with the flat (row-major) positions ``pos`` set to 0, and its gradient g * scale with the same
    positions 0: one pass each way into a fresh contiguous tensor (the same values as ``(x * scale).reshape(-1)
    .index_fill(0, pos, 0.0)``, whose forward and backward each add a full copy)."""

    @staticmethod
    def forward(ctx, x, pos, scale):
        ctx.save_for_backward(pos)
        ctx.scale = scale
        return _scale_and_zero(x, pos, scale)

    @staticmethod
    def backward(ctx, g):
        (pos,) = ctx.saved_tensors
        return _scale_and_zero(g, pos, ctx.scale), None, None


def _scale_and_zero(x: torch.Tensor, pos: torch.Tensor, scale: float) -> torch.Tensor:
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    torch.mul(x, scale, out=out)
    return out.view(-1).index_fill_(0, pos, 0.0).view(x.shape)


class _ReluScaleAndZero(torch.autograd.Function):
    """``_ScaleAndZero`` of relu(x): the feed-forward's activation and dropout in one output buffer (the same values
    as the two in sequence; its gradient g * scale where the output is positive, else 0)."""

    @staticmethod
    def forward(ctx, x, pos, scale):
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        torch.clamp_min(x, 0.0, out=out)
        out.mul_(scale).view(-1).index_fill_(0, pos, 0.0)
        ctx.save_for_backward(out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors  # 0 where relu cut or dropout dropped: the gradient is 0 there
        return torch.ops.aten.threshold_backward(g, out, 0.0).mul_(ctx.scale), None, None


def relu_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``dropout(F.relu(x), p, training)``: the same draws and values, one buffer fewer at sparse rates."""
    if not training or p == 0.0 or p >= SPARSE_BELOW:
        return dropout(F.relu(x), p, training)
    return _ReluScaleAndZero.apply(x, bernoulli_positions(x.numel(), p, x.device), 1.0 / (1.0 - p))


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)`` in distribution. Rates under ``SPARSE_BELOW``: the dropped positions are
    drawn by ``bernoulli_positions`` (over ``x`` in row-major order, whatever its strides); larger rates: a
    keep-mask from ``torch.rand`` (about half the time of ``bernoulli_`` on CPU)."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    scale = 1.0 / (1.0 - p)
    if p < SPARSE_BELOW:
        pos = bernoulli_positions(x.numel(), p, x.device)
        return _ScaleAndZero.apply(x, pos, scale)
    return x * ((torch.rand_like(x) >= p) * scale)


SOFTMAX_MIN_WIDTH = 16  # PyTorch's CPU softmax kernel is fast from this last-dimension width up


def softmax_lastdim(scores: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(scores, -1)``, computed over ``SOFTMAX_MIN_WIDTH`` columns when the last dimension is
    narrower (on CPU): padded with -inf, whose exp is exactly 0, so the sum and every kept weight are the same
    numbers up to the order of the floating-point summation (max |difference| ~1e-7); the padded columns are
    sliced off (the result is a strided view)."""
    n = scores.size(-1)
    if n >= SOFTMAX_MIN_WIDTH or scores.device.type != "cpu":
        return torch.softmax(scores, dim=-1)
    return torch.softmax(F.pad(scores, (0, SOFTMAX_MIN_WIDTH - n), value=float("-inf")), dim=-1)[..., :n]


class Dropout(nn.Dropout):
    """nn.Dropout drawn by ``dropout`` above: same distribution, cheaper draws."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class TransformerEncoderLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, batch_first=True)`` (post-norm, ReLU), the same
    module (parameters, names, initialisation), whose training forward is computed faster: every dropout, the
    attention weights' included, drawn by ``dropout`` above, and the attention unfused with the padded softmax (the
    fused kernel's own dropout path was slower here: 1.64 vs 1.31 s per paper-size Adult step; without dropout, as in
    end-to-end fine-tuning, PyTorch's fused CPU attention and its backward took 40 % of a step: 283 vs 191 ms per
    512-row step of the 16-layer Adult encoder + MLP head, one thread). Training values equal the stock layer's up to
    float32 rounding (~1e-7: the softmax's summation order). Eval (frozen representations) is the stock forward,
    bit-identical to PyTorch's."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float):
        super().__init__(dim, heads, ff_dim, dropout, batch_first=True)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        if not self.training or src_mask is not None or src_key_padding_mask is not None:
            return super().forward(src, src_mask, src_key_padding_mask, is_causal)
        x = self.norm1(src + dropout(self.attention(src), self.dropout1.p))
        hidden = relu_dropout(self.linear1(x), self.dropout.p)
        return self.norm2(x + dropout(self.linear2(hidden), self.dropout2.p))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Training self-attention as nn.MultiheadAttention computes it: softmax(q k^T / sqrt(d_head)), dropout
        on the weights, then v. The softmax by ``softmax_lastdim`` (padded to 16 columns below 16 tokens); the
        weights' dropout reads the unpadded view, so its draws are those of the unpadded weights."""
        a = self.self_attn
        b, t, d = x.shape
        q, k, v = F.linear(x, a.in_proj_weight, a.in_proj_bias).view(b, t, 3, a.num_heads, d // a.num_heads).permute(2, 0, 3, 1, 4)
        weights = softmax_lastdim((q * (d // a.num_heads) ** -0.5) @ k.transpose(-2, -1))
        out = dropout(weights, a.dropout, self.training) @ v
        return a.out_proj(out.transpose(1, 2).reshape(b, t, d))
