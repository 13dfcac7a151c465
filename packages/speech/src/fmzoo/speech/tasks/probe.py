"""SUPERB-style downstream protocol: frozen upstream, a learnable softmax-weighted sum of its layers,
mean pooling over time and a linear classifier (SUPERB's KS and SID heads): the speech-fsdd table's probe.

Because the weighted sum and mean pooling are both linear, pooling each layer first and then learning
the layer weights on the pooled [N, L, D] tensor is exactly the SUPERB probe, and lets the frozen upstream
run once per clip. Fine-tuning (``fmzoo finetune``) is the core's loop on ``tasks/downstream.py``'s hooks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from fmzoo.core import runtime

from ..models.tera import TERA
from ..models.wav2vec2 import Wav2Vec2, batch_waveforms
from ..spec import log_mel

__all__ = ["layer_means", "logmel_means", "WeightedSumProbe", "train_probe"]


@torch.no_grad()
def layer_means(model: nn.Module, wavs: list[torch.Tensor], batch_size: int = 32) -> torch.Tensor:
    """Per-layer time-averaged hidden states, ``[N, num_layers, hidden]``, for 16 kHz waveforms.

    Clips are sorted by length and batched with a padding mask (wav2vec 2.0) or frame lengths (TERA);
    pooling runs over valid frames only."""
    model.eval()
    order = np.argsort([w.numel() for w in wavs])
    out = torch.zeros(len(wavs), model.num_layers, model.hidden_size)
    for s in range(0, len(wavs), batch_size):
        idx = order[s : s + batch_size]
        if isinstance(model, Wav2Vec2):
            x, am = batch_waveforms([model.normalize(wavs[i]) for i in idx])
            hs, lengths = model.encode(x, am if len(idx) > 1 else None)
        elif isinstance(model, TERA):
            feats = [model.featurize(wavs[i]) for i in idx]
            lengths = torch.tensor([f.shape[0] for f in feats])
            x = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
            for j, f in enumerate(feats):
                x[j, : f.shape[0]] = f
            hs, _ = model.encode(x, lengths)
        else:
            raise TypeError(f"layer_means: unsupported upstream {type(model).__name__}")
        h = torch.stack(hs, 1)  # [B, L, T, D]
        t = h.shape[2]
        if lengths is None:
            lengths = torch.full((len(idx),), t)
        m = (torch.arange(t)[None] < lengths[:, None]).float()  # [B, T]
        pooled = (h * m[:, None, :, None]).sum(2) / m.sum(1).clamp(min=1)[:, None, None]
        out[torch.as_tensor(idx)] = pooled
    return out


@torch.no_grad()
def logmel_means(wavs: list[torch.Tensor], sample_rate: int = 16000, n_mels: int = 80) -> torch.Tensor:
    """The surface-feature baseline: time-averaged 80-d log-mel (25 ms / 10 ms), ``[N, 1, 80]``."""
    return torch.stack([log_mel(w, sample_rate, n_mels).mean(0) for w in wavs])[:, None]


class WeightedSumProbe(nn.Module):
    """Softmax-weighted sum of the layers of pooled features ``[N, L, D]`` (weights start uniform), then linear.
    ``generator``: initialise the linear layer from it (the numbers the global stream seeded alike would give
    for the same seed) instead of the global stream."""

    def __init__(self, num_layers: int, dim: int, num_classes: int, generator: torch.Generator | None = None):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.zeros(num_layers))
        self.linear = nn.Linear(dim, num_classes)
        if generator is not None:  # nn.Linear.reset_parameters, drawn from ``generator``
            nn.init.kaiming_uniform_(self.linear.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(dim) if dim > 0 else 0.0
            nn.init.uniform_(self.linear.bias, -bound, bound, generator=generator)

    def forward(self, pooled):  # [N, L, D]
        w = torch.softmax(self.layer_weights, 0)
        return self.linear((pooled * w[None, :, None]).sum(1))


def train_probe(train_x, train_y, test_x, test_y, num_classes: int, seed: int = 0, steps: int = 300,
                lr: float = 1e-2, weight_decay: float = 1e-4) -> dict:
    """Train the weighted-sum + linear probe (full batch Adam) on pooled features; features are
    standardised per (layer, dim) with training statistics; ``seed`` initialises the linear layer (its own
    generator). Returns test accuracy and the layer weights."""
    mu = train_x.mean(0, keepdim=True)
    sd = train_x.std(0, keepdim=True) + 1e-6
    xtr, xte = (train_x - mu) / sd, (test_x - mu) / sd
    probe = WeightedSumProbe(train_x.shape[1], train_x.shape[2], num_classes, generator=runtime.generator(seed))
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(probe(xtr), train_y).backward()
        opt.step()
    with torch.no_grad():
        acc = (probe(xte).argmax(-1) == test_y).float().mean().item()
        train_acc = (probe(xtr).argmax(-1) == train_y).float().mean().item()
    return {"accuracy": acc, "train_accuracy": train_acc,
            "layer_weights": torch.softmax(probe.layer_weights.detach(), 0).tolist()}
