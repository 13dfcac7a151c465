"""Building blocks shared by the TAPE model families, with TAPE's parameter names.

* ``gelu`` is the erf form TAPE uses (``F.gelu``'s exact form: one fused kernel forward and backward instead of
  TAPE's five element-wise ops; equal within float rounding); ``LayerNorm`` is ``torch.nn.LayerNorm`` (same parameters
  ``weight``/``bias`` and the same maths as TAPE's TF-style fallback LayerNorm, eps inside the sqrt).
* ``WeightNormLinear``/``WeightNormConv1d`` reproduce ``torch.nn.utils.weight_norm(m, dim=None)``
  as TAPE applies it: parameters ``weight_g`` (a 0-d scalar) and ``weight_v``, weight = g * v / ||v||.
  Keeping the legacy names makes TAPE's task-head checkpoints load without renaming.
* Heads mirror ``tape/models/modeling_utils.py``: ``MLMHead``, ``ValuePredictionHead``,
  ``SequenceClassificationHead``, ``SequenceToSequenceClassificationHead``,
  ``PairwiseContactPredictionHead`` (same sub-module names, hence the same state-dict keys).
* ``Dropout`` is ``nn.Dropout`` with a cheaper mask on CPU (``keep_mask``): the same Bernoulli(1 - p) keep /
  scale-by-1/(1 - p) maths, but the mask is drawn as 32-bit integers from the 64-bit generator output
  (about 10x cheaper than ``bernoulli_``); p is honoured to 2**-32. Other devices use ``nn.Dropout`` as is.
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch import nn


def gelu(x: torch.Tensor) -> torch.Tensor:
    """x * 0.5 * (1 + erf(x / sqrt(2))), as TAPE's ``gelu``, through PyTorch's fused kernel."""
    return F.gelu(x)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def activation(name: str):
    acts = {"gelu": gelu, "relu": F.relu, "swish": swish}
    if name not in acts:
        raise ValueError(f"unrecognised activation {name!r}; expected one of {sorted(acts)}")
    return acts[name]


LayerNorm = nn.LayerNorm

_INT32_MIN = -(2**31)


def keep_mask(shape, p: float, generator: torch.Generator | None = None, workspace: torch.Tensor | None = None,
              out: torch.Tensor | None = None) -> torch.Tensor:
    """A boolean Bernoulli(1 - p) keep-mask on the CPU: uniform 32-bit integers (two per 64-bit draw of the
    generator) compared with a threshold, so P(keep) = 1 - round(p * 2**32) / 2**32 (``bernoulli_`` draws one
    float per element and is about 10x slower on one thread). ``workspace``: an optional contiguous buffer of at
    least ``prod(shape)`` (rounded up to even) 4-byte elements for the random words, overwritten; ``out``: an
    optional bool tensor of ``shape`` for the result."""
    n = math.prod(shape)
    if out is None:
        out = torch.empty(shape, dtype=torch.bool)
    if p <= 0.0 or p >= 1.0:
        return out.fill_(p <= 0.0)
    n_words = (n + 1) // 2
    if workspace is not None and workspace.is_contiguous() and workspace.element_size() == 4 \
            and workspace.numel() >= 2 * n_words and workspace.data_ptr() % 8 == 0:
        words = workspace.reshape(-1)[: 2 * n_words].view(torch.int64)
    else:
        words = torch.empty(n_words, dtype=torch.int64)
    words.random_(-(2**63), None, generator=generator)
    return torch.ge(words.view(torch.int32)[:n].view(shape), _INT32_MIN + round(p * 2**32), out=out)


_WORK = threading.local()


def workspace(numel: int) -> torch.Tensor:
    """A per-thread fp32 CPU scratch buffer of ``numel`` elements, reused across calls (grown when needed), for
    temporaries that never leave one forward or one backward computation: large fresh buffers are returned to
    the system on free and page-faulted in again on every allocation (about a third of a training step at
    attention's L x L size)."""
    buf = getattr(_WORK, "buf", None)
    if buf is None or buf.numel() < numel:
        buf = _WORK.buf = torch.empty(numel + (numel & 1), dtype=torch.float32)
    return buf[:numel]


def _storage_refs(t: torch.Tensor) -> int:
    return torch._C._storage_Use_Count(t.untyped_storage()._cdata)


POOL_BYTES = 512 * 2**20


def pooled_empty(shape) -> torch.Tensor:
    """An uninitialised fp32 CPU tensor of ``shape`` whose memory is kept for reuse (per thread) once nothing else
    refers to it (its storage's reference count is back to the pool's own): for large tensors that an autograd
    graph saves between forward and backward (attention probabilities), so that each step does not page-fault
    them in afresh. Free buffers beyond ``POOL_BYTES`` are dropped, smallest first."""
    n = math.prod(shape)
    if not hasattr(torch._C, "_storage_Use_Count"):  # a private API: without it, a plain allocation
        return torch.empty(shape, dtype=torch.float32)
    pool = getattr(_WORK, "pool", None)
    if pool is None:
        pool = _WORK.pool = []
    free = [e for e in pool if _storage_refs(e[0]) == e[1]]
    fits = [e for e in free if n <= e[0].numel() <= n + n // 4]
    if fits:
        return min(fits, key=lambda e: e[0].numel())[0][:n].view(shape)
    buf = torch.empty(n, dtype=torch.float32)
    total = sum(e[0].numel() for e in pool) * 4
    for e in sorted(free, key=lambda e: e[0].numel()):
        if total <= POOL_BYTES:
            break
        pool.remove(e)
        total -= e[0].numel() * 4
    pool.append((buf, _storage_refs(buf)))
    return buf.view(shape)


def release_buffers() -> None:
    """Drop this thread's reused buffers (``workspace`` and the free ones of ``pooled_empty``); buffers still in
    use stay alive until their graph is freed. Called at the end of a training run."""
    _WORK.buf = None
    _WORK.pool = [e for e in (getattr(_WORK, "pool", None) or []) if _storage_refs(e[0]) != e[1]]


class _MaskScale(torch.autograd.Function):
    """y = x * keep / (1 - p), saving only the boolean mask for the backward pass."""

    @staticmethod
    def forward(ctx, x, keep, scale):
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0.0).mul_(scale)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0.0).mul_(ctx.scale), None, None


def fast_path(x: torch.Tensor) -> bool:
    """The hand-written CPU kernels (dropout mask, attention with dropout) apply: fp32 on the CPU, no autocast."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if not fast_path(x) or p >= 1.0:
        return F.dropout(x, p, True)
    return _MaskScale.apply(x, keep_mask(x.shape, p), 1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same arguments, no parameters) with the cheaper CPU mask of :func:`keep_mask`."""

    def forward(self, x):
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)


class _WeightNorm(nn.Module):
    def _init_wn(self, weight: torch.Tensor, bias: torch.Tensor | None):
        self.weight_g = nn.Parameter(weight.norm().detach().clone())
        self.weight_v = nn.Parameter(weight.detach().clone())
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / self.weight_v.norm())


class WeightNormLinear(_WeightNorm):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        ref = nn.Linear(in_features, out_features)
        self._init_wn(ref.weight, ref.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class WeightNormConv1d(_WeightNorm):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0):
        super().__init__()
        ref = nn.Conv1d(in_channels, out_channels, kernel_size, padding=padding)
        self.padding = padding
        self._init_wn(ref.weight, ref.bias)

    def forward(self, x):
        return F.conv1d(x, self.weight, self.bias, padding=self.padding)


class SimpleMLP(nn.Module):
    """TAPE's ``SimpleMLP``: WN-Linear -> ReLU -> Dropout -> WN-Linear (keys main.0.*, main.3.*)."""

    def __init__(self, in_dim: int, hid_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.main = nn.Sequential(WeightNormLinear(in_dim, hid_dim), nn.ReLU(), nn.Dropout(dropout),
                                  WeightNormLinear(hid_dim, out_dim))

    def forward(self, x):
        return self.main(x)


class SimpleConv(nn.Module):
    """TAPE's ``SimpleConv``: BatchNorm1d -> WN-Conv(k5) -> ReLU -> Dropout -> WN-Conv(k3), over (B, L, C)."""

    def __init__(self, in_dim: int, hid_dim: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.main = nn.Sequential(nn.BatchNorm1d(in_dim), WeightNormConv1d(in_dim, hid_dim, 5, padding=2),
                                  nn.ReLU(), nn.Dropout(dropout), WeightNormConv1d(hid_dim, out_dim, 3, padding=1))

    def forward(self, x):
        return self.main(x.transpose(1, 2)).transpose(1, 2).contiguous()


class PredictionHeadTransform(nn.Module):
    def __init__(self, hidden_size: int, hidden_act: str = "gelu", layer_norm_eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.transform_act_fn = activation(hidden_act)
        self.LayerNorm = LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, h):
        return self.LayerNorm(self.transform_act_fn(self.dense(h)))


class MLMHead(nn.Module):
    """TAPE's MLM head. The decoder weight is tied to the input word embeddings: TAPE stores it twice
    (``mlm.decoder.weight``), we keep a single copy and pass the embedding matrix in ``forward``."""

    def __init__(self, hidden_size: int, vocab_size: int, hidden_act: str = "gelu", layer_norm_eps: float = 1e-12):
        super().__init__()
        self.transform = PredictionHeadTransform(hidden_size, hidden_act, layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden_states, decoder_weight):
        return F.linear(self.transform(hidden_states), decoder_weight) + self.bias


class ValuePredictionHead(nn.Module):
    """Sequence-level regression on the pooled output (TAPE: fluorescence, stability)."""

    def __init__(self, hidden_size: int, dropout: float = 0.0):
        super().__init__()
        self.value_prediction = SimpleMLP(hidden_size, 512, 1, dropout)

    def forward(self, pooled):
        return self.value_prediction(pooled)


class SequenceClassificationHead(nn.Module):
    """Sequence-level classification on the pooled output (TAPE: remote homology / fold)."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.classify = SimpleMLP(hidden_size, 512, num_labels)

    def forward(self, pooled):
        return self.classify(pooled)


class SequenceToSequenceClassificationHead(nn.Module):
    """Per-residue classification (TAPE: secondary structure)."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.classify = SimpleConv(hidden_size, 512, num_labels)
        self.num_labels = num_labels

    def forward(self, sequence_output):
        return self.classify(sequence_output)


class PairwiseContactPredictionHead(nn.Module):
    """Contact prediction from pairwise (product, difference) features; drops <cls>/<sep> rows."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.predict = nn.Sequential(nn.Dropout(), nn.Linear(2 * hidden_size, 2))

    def forward(self, sequence_output):
        prod = sequence_output[:, :, None, :] * sequence_output[:, None, :, :]
        diff = sequence_output[:, :, None, :] - sequence_output[:, None, :, :]
        pred = self.predict(torch.cat((prod, diff), -1))
        pred = (pred + pred.transpose(1, 2)) / 2
        return pred[:, 1:-1, 1:-1].contiguous()
