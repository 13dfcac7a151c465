"""GPHT: Generative Pretrained Hierarchical Transformer (Liu et al., KDD 2024, arXiv 2402.16516).

Structure, as the paper and its official code (icantnamemyself/GPHT) describe it:

- channel independence: a multivariate input [batch, length, channels] is treated as batch*channels
  univariate series;
- instance normalization (RevIN-style, no affine): each input series is shifted by its mean and divided
  by its standard deviation; the forecast is mapped back with the same statistics;
- series tokens: non-overlapping segments of ``token_len`` steps; each stage max-pools the series by its
  pooling rate (coarse to fine, default [8, 4, 2, 1]) so a token holds ``token_len / rate`` values, which a
  linear map (no bias) embeds, plus sinusoidal positions;
- each stage is a post-norm transformer encoder with causal self-attention (token t sees tokens <= t) and
  a linear head that maps every token state to the next ``token_len`` values ("next-token prediction");
- hierarchical residual learning: what a stage explains is removed from the input of the next stage (its
  forecasts, shifted one token to the right so they line up with the tokens they predict), and the
  forecast is the sum of all stages' forecasts;
- autoregressive generation: forecasts of any horizon are produced token by token, feeding each predicted
  token back into the (sliding) context; there is no horizon-specific head.

Inference (``generate``) computes only what the next token depends on (``GPHT._next_token``): the last stage's
last layer on one query row per series; each stage's first-layer q/k/v comes straight from the raw tokens (the
embedding folded into the projection: ``GPHTStage.encode``). A key/value cache across generation steps would not be exact here: the
official loop keeps the last ``context_len`` steps, so each step drops the oldest token (every token moves one
position: new position embeddings) and re-normalizes the window with its new mean and std, so every token's input
to every stage changes from one step to the next (on ETTh1 test windows the first layer's input of the tokens two
steps share differs by up to 1.1 at a mean magnitude of 0.8); nothing of a step's transformer states recurs.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from fmzoo.core import HubMixin, InputSpecError
from fmzoo.timeseries.spec import TimeSeriesInput
from torch import nn


def sinusoidal_positions(n: int, d_model: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The Transformer's fixed sin/cos position table, [n, d_model]."""
    pos = torch.arange(n, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(n, d_model, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d_model // 2])
    return pe.to(dtype)


def channels_first_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` of x [n, t, c] with the mask drawn in [n, c, t] order, as the official feed-forward (Conv1d on
    the transposed tokens) draws it: the same distribution as F.dropout(x), and with the same seed the same masks as
    the official code (so a training forward can be checked against it exactly). Same arithmetic as F.dropout: a
    0/1 float mask divided by 1 - p, times x."""
    if not training or p == 0.0:
        return x
    n, t, c = x.shape
    noise = torch.empty(n, c, t, dtype=x.dtype, device=x.device).bernoulli_(1.0 - p).div_(1.0 - p)
    return x * noise.transpose(1, 2)


_PAD = 16  # softmax over a last dimension below 16 is ~5-10x slower per element on CPU (no full vector lane)
_CHUNK_ROWS = 4096  # token rows per block of series in the inference path (bounds its temporaries: ~8 MB of d_ff=512)
_ONEDNN = hasattr(torch.ops, "mkldnn") and hasattr(torch.ops.mkldnn, "_linear_pointwise")



def _count_onednn_linear_flops() -> None:
    """Teach torch.utils.flop_counter the oneDNN linear ``_dense`` calls (it counts aten matmuls only, so a FLOP count
    of the inference path would miss its GEMMs): 2 * rows * in * out, as for aten.addmm."""
    try:
        from torch.utils.flop_counter import flop_registry, register_flop_formula
    except ImportError:  # pragma: no cover - older PyTorch
        return
    op = torch.ops.mkldnn._linear_pointwise

    def linear(x_shape, a, b, c, *rest, out_shape=None, **kwargs) -> int:
        # overloads: default (X, W, B, attr, scalars, algorithm), binary (X, other, W, B, attr)
        w_shape = a if isinstance(c, str) else b
        return 2 * math.prod(x_shape[:-1]) * w_shape[0] * w_shape[1]

    if op not in flop_registry and op.default not in flop_registry:
        register_flop_formula(op)(linear)

if _ONEDNN:
    _count_onednn_linear_flops()

def _dense(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, act: str = "none",
           add: torch.Tensor | None = None) -> torch.Tensor:
    """Inference-path linear layer: x @ weight^T + bias, then the activation ``act`` ("none", "gelu", "relu");
    with ``add`` (a residual, no activation), add + (x @ weight^T + bias).

    On CPU in float32 (no autocast) it is oneDNN's linear with the activation fused into it
    (``torch.ops.mkldnn._linear_pointwise``, what PyTorch's inductor calls for CPU linears): the same formula,
    5-15 % faster than F.linear's MKL sgemm at GPHT's shapes on the AMD EPYC (Zen 4) it was measured on, and one
    pass less over the output for the activation or the residual; results equal F.linear within float rounding
    (summation order). Everywhere else (GPU, bf16, autocast, a PyTorch without the op) F.linear, then the rest."""
    if (_ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and (add is None or add.dtype == torch.float32)):
        if add is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, add, weight, bias, "add")
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, act, [], "none" if act == "gelu" else "")
    y = F.linear(x, weight, bias)
    if add is not None:
        return add + y
    return F.gelu(y) if act == "gelu" else F.relu(y) if act == "relu" else y


@torch.no_grad()
def _causal_bias(t: int, width: int, device, dtype) -> torch.Tensor:
    """[t, width] additive mask: 0 where key j <= query i, -inf elsewhere (also on the padding columns j >= t)."""
    i = torch.arange(t, device=device).unsqueeze(1)
    j = torch.arange(width, device=device).unsqueeze(0)
    return torch.zeros(t, width, device=device, dtype=dtype).masked_fill_(j > i, float("-inf"))


class CausalEncoderLayer(nn.Module):
    """Post-norm encoder layer: causal multi-head self-attention and a position-wise feed-forward network.

    The arithmetic is the official code's (einsum scores, triangular -inf mask, softmax of scale * scores, dropout on
    the attention weights, Conv1d(k=1) feed-forward == Linear), written for CPU speed: one GEMM for q/k/v (the three
    weights stay separate parameters: checkpoints keep their keys), the keys padded with zero rows to 16 so that the
    softmax runs over 16 columns (the padding columns get -inf, so probability 0: the same softmax), the scale and the
    mask fused into the score GEMM (baddbmm). The dropout masks are drawn in the official order and layout
    (attention weights [n, heads, t, t], attention output [n, t, d], after the activation and after the second
    linear in the feed-forward's channels-first layout [n, d, t]), so with the same weights and the same seed a
    training forward gives the official result."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str = "gelu"):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.act = F.gelu if activation == "gelu" else F.relu

    def qkv_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The q, k, v weights [3d, d] and biases [3d] stacked (one GEMM for the three)."""
        return (torch.cat([self.q.weight, self.k.weight, self.v.weight]),
                torch.cat([self.q.bias, self.k.bias, self.v.bias]))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        h = self.n_heads
        dh = d // h
        w, b = self.qkv_weight()
        q, k, v = F.linear(x, w, b).view(n, t, 3, h, dh).permute(2, 0, 3, 1, 4).unbind(0)  # [n, h, t, dh] each
        q = q.reshape(n * h, t, dh)
        v = v.reshape(n * h, t, dh)
        width = max(t, _PAD)
        if width > t:  # keys with zero rows t..width-1: their scores are 0, then -inf from the mask
            k = F.pad(k, (0, 0, 0, width - t))
        k = k.reshape(n * h, width, dh)
        bias = _causal_bias(t, width, x.device, x.dtype)
        scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=1.0 / math.sqrt(dh))  # mask + scale * q k^T
        attn = torch.softmax(scores, dim=-1)[:, :, :t]
        attn = self.dropout(attn)
        a = torch.bmm(attn, v).view(n, h, t, dh).transpose(1, 2).reshape(n, t, d)
        return self.o(a)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        p, train = self.dropout.p, self.training
        return channels_first_dropout(self.ff2(channels_first_dropout(self.act(self.ff1(x)), p, train)), p, train)

    def fast_inference(self) -> bool:
        """Whether ``forward`` takes the inference path (``infer``): no autograd graph and no dropout to draw."""
        return not torch.is_grad_enabled() and (not self.training or self.dropout.p == 0.0)

    def infer(self, x: torch.Tensor, last_only: bool = False, qkv: torch.Tensor | None = None) -> torch.Tensor:
        """The layer without gradients or dropout, for inference (autoregressive generation): the same formulas as
        ``forward`` in fewer passes over memory (one q/k/v GEMM whose heads are read in place, the causal mask as
        the GEMM's additive term over the t real key columns and a softmax written out as max, exp, sum, divide
        (no padding columns), the feed-forward's GELU fused into its first GEMM, see ``_dense``).

        ``last_only``: return only the last token's output [n, 1, d] (what the next-token forecast of the last
        stage needs). Causal attention lets the last query see every key, so only the keys and values need all t
        tokens; the query, attention, output projection, norms and feed-forward run on one row per series instead
        of t. Exact: the same numbers as ``forward(x)[:, -1:]`` within float rounding.

        ``qkv``: the layer's q/k/v projection of x [n, t, 3 * d] when the caller has it already (GPHTStage.encode
        computes the first layer's from the raw tokens, see there)."""
        n, t, d = x.shape
        h = self.n_heads
        dh = d // h
        if qkv is None:
            w, b = self.qkv_weight()
            qkv = _dense(x.reshape(n * t, d), w, b)
        qkv = qkv.view(n, t, 3, h, dh)
        k = qkv[:, :, 1].permute(0, 2, 3, 1).reshape(n * h, dh, t)  # k^T per (series, head)
        v = qkv[:, :, 2].transpose(1, 2).reshape(n * h, t, dh)
        scale = 1.0 / math.sqrt(dh)
        if last_only:
            q = qkv[:, -1:, 0].transpose(1, 2).reshape(n * h, 1, dh)
            scores = torch.bmm(q, k).mul_(scale)  # the last query sees all t keys: no mask
            x = x[:, -1:]
        else:
            q = qkv[:, :, 0].transpose(1, 2).reshape(n * h, t, dh)
            scores = torch.baddbmm(_causal_bias(t, t, x.device, x.dtype), q, k, alpha=scale)
        attn = scores.sub_(scores.amax(-1, keepdim=True)).exp_()
        attn = attn.div_(attn.sum(-1, keepdim=True))
        rows = x.shape[1]
        a = torch.bmm(attn, v).view(n, h, rows, dh).transpose(1, 2).reshape(n * rows, d)
        y = self.norm1(_dense(a, self.o.weight, self.o.bias, add=x.reshape(n * rows, d)))
        act = "gelu" if self.act is F.gelu else "relu"
        y = self.norm2(_dense(_dense(y, self.ff1.weight, self.ff1.bias, act), self.ff2.weight, self.ff2.bias, add=y))
        return y.view(n, rows, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast_inference():
            return self.infer(x)
        x = self.norm1(x + self.dropout(self.attention(x)))
        return self.norm2(x + self.feed_forward(x))


class GPHTStage(nn.Module):
    """One stage: max-pool by ``rate``, tokenize, causal transformer, next-token linear head."""

    def __init__(self, rate: int, token_len: int, d_model: int, n_heads: int, d_ff: int, n_layers: int,
                 dropout: float, activation: str):
        super().__init__()
        if token_len % rate:
            raise ValueError(f"token_len ({token_len}) must be divisible by the pooling rate ({rate})")
        self.rate = rate
        self.token_len = token_len
        self.patch = token_len // rate
        self.d_model = d_model
        self.embed = nn.Linear(self.patch, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            [CausalEncoderLayer(d_model, n_heads, d_ff, dropout, activation) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, token_len)

    def encode(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x: [N, L] (L a multiple of token_len) -> token states [N, L / token_len, d_model] (before the head).
        ``last_only`` (inference only, see CausalEncoderLayer.infer): the last token's state [N, 1, d_model]."""
        n, length = x.shape
        z = F.max_pool1d(x.unsqueeze(1), self.rate).squeeze(1) if self.rate > 1 else x
        tokens = z.reshape(n, length // self.token_len, self.patch)
        fast = all(layer.fast_inference() for layer in self.layers) and (not self.training or self.dropout.p == 0.0)
        if last_only and not fast:
            raise RuntimeError("encode(last_only=True) is for inference: call it under torch.no_grad() in eval mode")
        if not fast or not len(self.layers):
            h = self.embed(tokens)
            h = self.dropout(h + sinusoidal_positions(h.shape[1], self.d_model, h.device, h.dtype))
            for layer in self.layers:
                h = layer(h)
            return self.norm(h)
        # inference: the first layer's q/k/v straight from the raw tokens, (W_qkv E) tokens + (W_qkv pos + b): a GEMM
        # with `patch` (6-48) inputs instead of d_model (about 8 % of a generation step's FLOPs); h itself (E tokens +
        # pos) is still formed for the residual. The same linear maps, summed in another order (float rounding).
        t = tokens.shape[1]
        pos = sinusoidal_positions(t, self.d_model, tokens.device, tokens.dtype)
        w, b = self.layers[0].qkv_weight()
        flat = tokens.reshape(n * t, self.patch)
        qkv = (flat @ (w @ self.embed.weight).T).view(n, t, -1).add_(torch.addmm(b, pos, w.T))
        h = (flat @ self.embed.weight.T).view(n, t, self.d_model).add_(pos)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer.infer(h, last_only=last_only and i == last, qkv=qkv if i == 0 else None)
        return self.norm(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, L] (L a multiple of token_len) -> [N, L]; block t holds the forecast of token t+1."""
        return self.head(self.encode(x)).reshape(x.shape)


class GPHT(nn.Module, HubMixin):
    """Generative pretrained hierarchical transformer for univariate (channel-independent) forecasting.

    ``forward(x)`` with x [N, L] or [B, L, C] returns next-token forecasts aligned with x shifted by one
    token (the training target is ``series[token_len : L + token_len]``). ``forecast(x, horizon)`` generates
    any horizon autoregressively; ``forecast(df, horizon)`` does the same for a pandas DataFrame.
    """

    input_spec_class = TimeSeriesInput

    @property
    def input_spec(self) -> dict:
        return self._input_spec

    @input_spec.setter
    def input_spec(self, spec) -> None:
        """Set by __init__ and by from_pretrained (config.json's spec, whose keys and types the core has checked with
        TimeSeriesInput): the lengths it states must be the model's own (the tasks cut windows by them)."""
        if isinstance(spec, dict):
            for key in ("context_len", "token_len"):
                if key in spec and spec[key] != getattr(self, key):
                    raise InputSpecError(f"input_spec[{key!r}] = {spec[key]!r} but the model's {key} is "
                                         f"{getattr(self, key)} (init_args); the two must agree")
        self._input_spec = spec

    def __init__(self, context_len: int = 336, token_len: int = 48, pooling: list[int] | tuple[int, ...] = (8, 4, 2, 1),
                 d_model: int = 512, n_heads: int = 8, d_ff: int = 2048, n_layers: int = 3,
                 dropout: float = 0.1, activation: str = "gelu", eps: float = 1e-5):
        super().__init__()
        pooling = [int(r) for r in pooling]
        if context_len % token_len:
            raise ValueError(f"context_len ({context_len}) must be a multiple of token_len ({token_len})")
        self.context_len = int(context_len)
        self.token_len = int(token_len)
        self.pooling = pooling
        self.eps = float(eps)
        self.stages = nn.ModuleList([GPHTStage(r, token_len, d_model, n_heads, d_ff, n_layers, dropout, activation)
                                     for r in pooling])
        self.input_spec = {"context_len": self.context_len, "token_len": self.token_len,
                           "layout": "[batch, time] or [batch, time, channels]; channel-independent",
                           "normalization": "per-series instance normalization inside the model"}

    # ------------------------------------------------------------------ core computation
    def _check(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x) or not torch.is_floating_point(x):
            raise InputSpecError(f"expected a floating-point tensor, got {type(x).__name__}"
                                 f"{'' if not torch.is_tensor(x) else ' of dtype ' + str(x.dtype)}")
        if x.dim() not in (2, 3):
            raise InputSpecError(f"expected shape [batch, time] or [batch, time, channels], got {tuple(x.shape)}")
        if x.shape[1] % self.token_len or x.shape[1] == 0:
            raise InputSpecError(f"the time length must be a positive multiple of token_len={self.token_len}, "
                                 f"got {x.shape[1]}")
        if not torch.isfinite(x).all():
            raise InputSpecError("the input contains NaN or infinite values")

    def _hierarchy(self, x: torch.Tensor, states: list | None = None) -> torch.Tensor:
        """Instance-normalize x [N, L], run the stages on the residuals, return the summed forecast [N, L] in x's
        units; with ``states`` (a list) each stage's last-token state [N, d_model] is appended to it.
        The normalization runs in x's dtype: a float64 x (what ``forecast`` passes) gets float64 mean/std and is
        cast to the weights' dtype only once normalized, so a series at level 1e8 keeps its amplitude-1 cycle (and
        values near 1e20 do not overflow float32's variance); the forecast comes back in float64."""
        mean = x.mean(dim=1, keepdim=True)
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps)
        z = ((x - mean) / std).to(self.stages[0].head.weight.dtype)
        total = torch.zeros_like(z)
        for stage in self.stages:
            h = stage.encode(z)
            if states is not None:
                states.append(h[:, -1])
            out = stage.head(h).reshape(z.shape)
            total = total + out
            # forecasts of token t+1 are written at block t; shift one token right to align with the input
            shifted = F.pad(out[:, : -self.token_len], (self.token_len, 0))
            z = z - shifted
        return total.to(x.dtype) * std + mean

    def _next_token(self, x: torch.Tensor) -> torch.Tensor:
        """Inference only (no gradients, no dropout): ``_hierarchy(x)[:, -token_len:]``, the forecast of the next
        token of x [N, L], computing only what it depends on. Stages before the last still need every token's
        forecast (their shifted forecasts are the next stage's input); the last stage's forecast is needed only at
        the last token, so its last layer runs one query row per series (CausalEncoderLayer.infer). Series are
        independent, so they go through in blocks of about _CHUNK_ROWS token rows (bounded temporaries; larger blocks measured faster than cache-sized ones).
        Same arithmetic and summation order as ``_hierarchy``; equal within float rounding."""
        t = self.token_len
        per = max(1, _CHUNK_ROWS // (x.shape[1] // t))
        if len(x) > per:
            return torch.cat([self._next_token(x[i:i + per]) for i in range(0, len(x), per)])
        mean = x.mean(dim=1, keepdim=True)
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps)
        z = ((x - mean) / std).to(self.stages[0].head.weight.dtype)
        total = torch.zeros(len(z), t, dtype=z.dtype, device=z.device)
        last = len(self.stages) - 1
        for i, stage in enumerate(self.stages):
            h = stage.encode(z, last_only=i == last)
            if i == last:
                total = total + stage.head(h[:, -1])
                break
            out = stage.head(h).reshape(z.shape)
            total = total + out[:, -t:]
            z = z - F.pad(out[:, :-t], (t, 0))
        return total.to(x.dtype) * std + mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        multivariate = x.dim() == 3
        if multivariate:
            b, length, c = x.shape
            x = x.permute(0, 2, 1).reshape(b * c, length)
        y = self._hierarchy(x)
        if multivariate:
            y = y.reshape(b, c, length).permute(0, 2, 1)
        return y

    def token_states(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled representation of univariate series x [N, L]: the last token's state of every stage, concatenated
        coarse to fine -> [N, len(pooling) * d_model] (differentiable)."""
        self._check(x)
        if x.dim() != 2:
            raise InputSpecError(f"token_states expects univariate series [batch, time], got {tuple(x.shape)}")
        states: list[torch.Tensor] = []
        self._hierarchy(x, states)
        return torch.cat(states, dim=-1)

    def next_token_loss(self, window: torch.Tensor) -> torch.Tensor:
        """MSE of next-token prediction on windows [N, L + token_len] (or [B, L + token_len, C])."""
        t = self.token_len
        x, target = window[:, :-t], window[:, t:]
        return F.mse_loss(self(x), target)

    @torch.no_grad()
    def generate(self, x: torch.Tensor, horizon: int) -> torch.Tensor:
        """Autoregressive forecast of ``horizon`` steps from the last ``context_len`` steps of x."""
        return self.rollout(x, horizon)

    def rollout(self, x: torch.Tensor, horizon: int) -> torch.Tensor:
        """``generate`` with gradients: the autoregressive forecast as a differentiable function of the weights
        (what forecasting fine-tuning trains through)."""
        from fmzoo.timeseries.spec import _positive_int

        horizon = _positive_int(horizon, "horizon")
        if not torch.is_tensor(x) or x.dim() not in (2, 3):
            raise InputSpecError(f"expected a tensor [batch, time] or [batch, time, channels], got "
                                 f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
        if x.shape[1] < self.context_len:
            raise InputSpecError(f"need at least context_len={self.context_len} time steps of context, got shape "
                                 f"{tuple(x.shape)}")
        ctx = x[:, -self.context_len:]
        steps = -(-int(horizon) // self.token_len)
        outs = []
        if all(layer.fast_inference() for stage in self.stages for layer in stage.layers):
            # inference: the same autoregression on the univariate rows, each step computing only the next token
            self._check(ctx)
            multivariate = ctx.dim() == 3
            if multivariate:
                b, length, c = ctx.shape
                ctx = ctx.permute(0, 2, 1).reshape(b * c, length)
            for _ in range(steps):
                outs.append(self._next_token(ctx))
                ctx = torch.cat([ctx[:, self.token_len:], outs[-1]], dim=1)
            y = torch.cat(outs, dim=1)[:, : int(horizon)]
            return y.reshape(b, c, -1).permute(0, 2, 1) if multivariate else y
        for _ in range(steps):
            nxt = self(ctx)[:, -self.token_len:]
            outs.append(nxt)
            ctx = torch.cat([ctx, nxt], dim=1)[:, -self.context_len:]
        return torch.cat(outs, dim=1)[:, : int(horizon)]

    # ------------------------------------------------------------------ user-facing API
    checkpoint_dir = None  # set by GPHT.from_pretrained: where the weights came from (its provenance.json)

    @classmethod
    def from_pretrained(cls, id_or_path, revision: str | None = None, **overrides):
        """``HubMixin.from_pretrained``, remembering the checkpoint's directory in ``checkpoint_dir`` (its
        provenance.json names the data it was trained on: ``predict_df`` calibrates its quantiles there)."""
        from fmzoo.core import resolve_checkpoint

        model = super().from_pretrained(id_or_path, revision=revision, **overrides)
        model.checkpoint_dir = resolve_checkpoint(id_or_path, revision)
        return model

    def predict_df(self, df, id_column: str = "item_id", timestamp_column: str = "timestamp", target: str = "target",
                   prediction_length: int = 96, quantile_levels=(0.1, 0.5, 0.9), calibration="validation",
                   calibration_datasets=None):
        """Long-format forecasting (Chronos' ``predict_df``): see ``fmzoo.timeseries.forecasting.predict_df``."""
        from fmzoo.timeseries.forecasting import predict_df

        return predict_df(self, df, id_column, timestamp_column, target, prediction_length, quantile_levels,
                          calibration, calibration_datasets)

    def predict_quantiles(self, context, prediction_length: int = 96, quantile_levels=(0.1, 0.5, 0.9),
                          calibration="validation", calibration_datasets=None):
        """(quantiles [N, H, Q], point forecasts [N, H]) of a list of 1-D series (Chronos' ``predict_quantiles``):
        see ``fmzoo.timeseries.forecasting.predict_quantiles``."""
        from fmzoo.timeseries.forecasting import predict_quantiles

        return predict_quantiles(self, context, prediction_length, quantile_levels, calibration,
                                 calibration_datasets)

    def forecast(self, data: Any, horizon: int, timestamp_col: str | None = None):
        """Forecast ``horizon`` steps.

        - tensor / ndarray [batch, time] or [batch, time, channels] -> same type [batch, horizon(, channels)]
        - pandas DataFrame with a DatetimeIndex or a timestamp column (``timestamp_col``, default 'date' or
          'timestamp' when present) and numeric columns -> DataFrame indexed by the next ``horizon``
          timestamps. Timestamps must be strictly increasing and regularly spaced, values finite (fill NaN
          gaps yourself, e.g. ``df.interpolate()``), and at least ``context_len`` rows are needed.
        - pandas Series -> Series of the next ``horizon`` values, indexed by the next timestamps (a DatetimeIndex,
          frequency from ``pd.infer_freq``) or continuing a RangeIndex;
        - list of 1-D arrays (any lengths) -> ndarray [len(list), horizon].
          Series and lists may be shorter than ``context_len``: at least ``token_len`` values, left-padded with
          the series' mean (see fmzoo.timeseries.forecasting).
        """
        import pandas as pd

        was_training = self.training
        self.eval()
        try:
            if isinstance(data, pd.DataFrame):
                from fmzoo.timeseries.spec import forecast_dataframe
                return forecast_dataframe(self, data, horizon, timestamp_col=timestamp_col)
            if isinstance(data, (pd.Series, list, tuple)):
                return self._forecast_series(data, horizon)
            if isinstance(data, np.ndarray):
                if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
                    raise InputSpecError(f"expected an array of real numbers, got dtype {data.dtype}")
                # normalized in float64 (the model casts after normalizing); float32 in -> float32 out
                x = torch.as_tensor(np.asarray(data, dtype=np.float64))
                if not torch.isfinite(x).all():
                    raise InputSpecError("the input contains NaN or infinite values")
                return self.generate(x, horizon).numpy().astype(np.result_type(data.dtype, np.float32))
            if torch.is_tensor(data):
                if data.dtype == torch.bool or data.is_complex():
                    raise InputSpecError(f"expected a tensor of real numbers, got dtype {data.dtype}")
                if not torch.is_floating_point(data):
                    data = data.double()
                if not torch.isfinite(data).all():
                    raise InputSpecError("the input contains NaN or infinite values")
                return self.generate(data, horizon)
            raise InputSpecError(f"expected a torch tensor, numpy array, pandas DataFrame or Series, or a list of 1-D "
                                 f"arrays, got {type(data).__name__}")
        finally:
            self.train(was_training)

    def _forecast_series(self, data, horizon: int):
        import pandas as pd
        from fmzoo.timeseries import forecasting as fc

        horizon = fc._positive_int(horizon, "horizon")
        series = fc._as_series_list(data)
        if not isinstance(data, pd.Series):
            return fc.point_forecast(self, series, horizon)[0]  # float64: the series' own precision
        if isinstance(data.index, pd.DatetimeIndex):
            index = fc.future_timestamps(data.index, horizon, f"series {data.name!r}")
        elif isinstance(data.index, pd.RangeIndex):
            step = data.index.step
            index = pd.RangeIndex(data.index.stop, data.index.stop + horizon * step, step)
        else:
            raise InputSpecError(f"a Series to forecast needs a DatetimeIndex (timestamps) or a RangeIndex, got a "
                                 f"{type(data.index).__name__}")
        return pd.Series(fc.point_forecast(self, series, horizon)[0][0], index=index, name=data.name)
