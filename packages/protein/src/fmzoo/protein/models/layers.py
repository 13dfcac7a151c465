"""Building blocks shared by the TAPE model families, with TAPE's parameter names.

* ``gelu`` is the erf form TAPE uses; ``LayerNorm`` is ``torch.nn.LayerNorm`` (same parameters
  ``weight``/``bias`` and the same maths as TAPE's TF-style fallback LayerNorm, eps inside the sqrt).
* ``WeightNormLinear``/``WeightNormConv1d`` reproduce ``torch.nn.utils.weight_norm(m, dim=None)``
  as TAPE applies it: parameters ``weight_g`` (a 0-d scalar) and ``weight_v``, weight = g * v / ||v||.
  Keeping the legacy names makes TAPE's task-head checkpoints load without renaming.
* Heads mirror ``tape/models/modeling_utils.py``: ``MLMHead``, ``ValuePredictionHead``,
  ``SequenceClassificationHead``, ``SequenceToSequenceClassificationHead``,
  ``PairwiseContactPredictionHead`` (same sub-module names, hence the same state-dict keys).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def gelu(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def activation(name: str):
    acts = {"gelu": gelu, "relu": F.relu, "swish": swish}
    if name not in acts:
        raise ValueError(f"unrecognised activation {name!r}; expected one of {sorted(acts)}")
    return acts[name]


LayerNorm = nn.LayerNorm


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
