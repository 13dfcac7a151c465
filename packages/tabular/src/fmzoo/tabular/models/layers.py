"""Layers shared by T-JEPA's encoder and predictor and the downstream heads: nn.Dropout and
nn.TransformerEncoderLayer with the same semantics and parameters, computed faster at T-JEPA's sizes.

At width 16 per token a transformer layer does little arithmetic per element, so drawing dropout masks
costs more than the matrix products: in the paper-size Adult step (16+16 layers, dropout 0.0019)
``bernoulli_`` took a quarter of the time and the attention's dropout path another quarter. Two more exact savings:
PyTorch's CPU softmax over a last dimension under 16 takes a path about 20x slower per element than at 16 (measured:
~70 vs ~3.6 ns per element), and T-JEPA's sequences have at most 15 tokens, so attention scores are padded to 16
columns with -inf before the softmax (``softmax_lastdim``: the padded columns come out exactly 0 and are dropped);
and the sparse dropout writes its output and its gradient in one pass each, without the copies of an out-of-place
``index_fill``. At T-JEPA's predictor (4 target subsets x 512 rows = 2048 sequences of up to 15 tokens, feed-forward
256) the [rows, 256] hidden activations (23 MB per layer at 11 tokens) made every elementwise pass memory-bound: the
feed-forward runs in row chunks that stay in cache and recompute their hidden rows in backward
(``_ChunkedFeedForward``: 1.4-1.6x per predictor layer and 1.27x per paper-size step, measured; the same numbers up
to float32 rounding, ~1e-7). (A recomputing attention of the same kind, keeping only q, k, v for backward, kept
about 150 MB less per step but made the step no faster than before the chunked feed-forward: not used.)"""

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


FF_CHUNK_ELEMENTS = 1 << 17  # hidden activations per chunk of rows (512 KB at fp32: the chunk stays in L2 cache)
FF_CHUNK_ABOVE = 1 << 19  # hidden tensors up to this many elements (2 MB) take the unchunked path (as fast there)


class _ChunkedFeedForward(torch.autograd.Function):
    """linear2(dropout(relu(linear1(x)))) over row chunks, the hidden activations never stored: forward computes each
    chunk's hidden rows in cache and keeps only ``x``; backward recomputes them chunk by chunk (the same numbers, the
    same dropped positions) and accumulates the weight gradients. The dropout scale 1 / (1 - p) is applied as
    ``addmm``'s alpha (forward) and to the incoming gradient (backward) instead of to every hidden element: the same
    values up to float32 rounding (~1e-7). ``pos``: the dropped flat positions of the [rows, ff] hidden tensor (sorted;
    None: no dropout)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, pos, scale):
        d, f = x.size(-1), w1.size(0)
        x2 = x.reshape(-1, d)
        n = x2.size(0)
        chunk = max(1, FF_CHUNK_ELEMENTS // f)
        starts = list(range(0, n, chunk))
        cuts = None
        if pos is not None:  # pos[cuts[k]:cuts[k + 1]] are the positions inside chunk k
            cuts = torch.searchsorted(pos, torch.tensor([*starts, n]) * f).tolist()
        y = torch.empty(n, w2.size(0), dtype=x.dtype, device=x.device)
        for k, r0 in enumerate(starts):
            h = _ff_hidden(x2[r0:r0 + chunk], w1, b1, pos, cuts, k, r0 * f)
            torch.addmm(b2, h, w2.t(), alpha=scale, out=y[r0:r0 + chunk])
        ctx.save_for_backward(x2, w1, b1, w2, pos)
        ctx.scale, ctx.chunk, ctx.starts, ctx.cuts, ctx.shape = scale, chunk, starts, cuts, x.shape
        return y.view(*x.shape[:-1], w2.size(0))

    @staticmethod
    def backward(ctx, g):
        x2, w1, b1, w2, pos = ctx.saved_tensors
        chunk, f = ctx.chunk, w1.size(0)
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad[:5]
        g2 = g.reshape(x2.size(0), -1)
        gs = g2 * ctx.scale
        gx = torch.empty_like(x2) if need_x else None
        gw1 = torch.zeros_like(w1) if need_w1 else None
        gb1 = torch.zeros_like(b1) if need_b1 else None
        gw2 = torch.zeros_like(w2) if need_w2 else None
        for k, r0 in enumerate(ctx.starts):
            xc, gc = x2[r0:r0 + chunk], gs[r0:r0 + chunk]
            h = _ff_hidden(xc, w1, b1, pos, ctx.cuts, k, r0 * f)
            if need_w2:
                gw2.addmm_(gc.t(), h)
            gh = torch.ops.aten.threshold_backward(gc @ w2, h, 0.0)  # 0 where relu cut or dropout dropped
            if need_w1:
                gw1.addmm_(gh.t(), xc)
            if need_b1:
                gb1.add_(gh.sum(0))
            if need_x:
                torch.mm(gh, w1, out=gx[r0:r0 + chunk])
        gb2 = g2.sum(0) if need_b2 else None
        return (gx.view(ctx.shape) if need_x else None), gw1, gb1, gw2, gb2, None, None


def _ff_hidden(xc, w1, b1, pos, cuts, k, offset):
    """One chunk's hidden rows: relu(xc @ w1^T + b1) with the chunk's dropped positions set to 0 (unscaled)."""
    h = torch.addmm(b1, xc, w1.t()).clamp_min_(0.0)
    if cuts is not None and cuts[k + 1] > cuts[k]:
        h.view(-1).index_fill_(0, pos[cuts[k]:cuts[k + 1]] - offset, 0.0)
    return h


def feed_forward(x: torch.Tensor, linear1: nn.Linear, linear2: nn.Linear, p: float, training: bool = True) -> torch.Tensor:
    """``linear2(dropout(relu(linear1(x)), p))`` of a transformer layer in training: the same dropout draws as
    ``relu_dropout`` (the rates under ``SPARSE_BELOW``, or none), computed in row chunks by ``_ChunkedFeedForward``
    without storing the [rows, ff] hidden activations (at T-JEPA's predictor, 2048 x 11 tokens x ff 256 = 23 MB per
    layer, each elementwise pass over them memory-bound). Values and gradients equal the unchunked computation's up
    to float32 rounding. Larger rates, hidden tensors up to ``FF_CHUNK_ABOVE`` elements (T-JEPA's encoders: 512 x
    15 tokens x ff 64 = 0.5 M; measured 0.91x when chunked), other devices than the CPU and autocast (its dtypes are
    chosen per operation): the unchunked computation."""
    if (not training or p >= SPARSE_BELOW or x.device.type != "cpu" or torch.is_autocast_enabled("cpu")
            or x.numel() // x.size(-1) * linear1.out_features <= FF_CHUNK_ABOVE):
        return linear2(relu_dropout(linear1(x), p, training))
    pos = bernoulli_positions(x.numel() // x.size(-1) * linear1.out_features, p, x.device) if p > 0 else None
    return _ChunkedFeedForward.apply(x, linear1.weight, linear1.bias, linear2.weight, linear2.bias, pos, 1.0 / (1.0 - p))


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
        return self.norm2(x + dropout(feed_forward(x, self.linear1, self.linear2, self.dropout.p), self.dropout2.p))

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
