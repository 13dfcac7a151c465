"""Downstream networks on T-JEPA representations (or raw features): an MLP and a ResNet-style
tabular net (Gorishniy et al., 2021), with T-JEPA's tuned Adult hyperparameters as defaults.

On T-JEPA representations ([REG] + one latent per feature, flattened) both heads start with T-JEPA's
"linear_per_feature" front end: each token's latent is reduced to one number by its own linear map,
so the head sees one learned scalar per token (n_tokens inputs) instead of n_tokens x dim raw latents."""

from __future__ import annotations

import torch
from fmzoo.core.runtime import seeded
from torch import nn

from ..models.layers import Dropout


class PerTokenProjection(nn.Module):
    """[B, n_tokens * dim] -> [B, n_tokens]: an independent Linear(dim, 1) for every token."""

    def __init__(self, n_tokens: int, dim: int):
        super().__init__()
        self.n_tokens, self.dim = n_tokens, dim
        bound = dim ** -0.5  # nn.Linear's default init range
        self.weight = nn.Parameter(torch.empty(n_tokens, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_tokens).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("btd,td->bt", x.view(len(x), self.n_tokens, self.dim), self.weight) + self.bias


def _front(in_dim: int, n_tokens: int | None) -> tuple[list[nn.Module], int]:
    if not n_tokens:
        return [], in_dim
    if in_dim % n_tokens:
        raise ValueError(f"input width {in_dim} is not a multiple of n_tokens={n_tokens}")
    return [PerTokenProjection(n_tokens, in_dim // n_tokens)], n_tokens


class MLPHead(nn.Sequential):
    """Linear -> (n_hidden - 1) x [Linear, ReLU, Dropout, BatchNorm] -> Linear (T-JEPA's benchmark MLP)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 162, n_hidden: int = 13, dropout: float = 0.231,
                 n_tokens: int | None = None):
        layers, in_dim = _front(in_dim, n_tokens)
        layers.append(nn.Linear(in_dim, hidden_dim))
        for _ in range(n_hidden - 1):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), Dropout(dropout), nn.BatchNorm1d(hidden_dim)]
        layers.append(nn.Linear(hidden_dim, out_dim))
        super().__init__(*layers)


class _ResBlock(nn.Module):
    def __init__(self, d: int, d_hidden: int, dropout1: float, dropout2: float):
        super().__init__()
        self.f = nn.Sequential(nn.BatchNorm1d(d), nn.Linear(d, d_hidden), nn.ReLU(), Dropout(dropout1), nn.Linear(d_hidden, d), Dropout(dropout2))

    def forward(self, x):
        return x + self.f(x)


class ResNetHead(nn.Sequential):
    """Gorishniy et al.'s tabular ResNet: Linear -> n_blocks residual blocks -> BN, ReLU, Linear."""

    def __init__(self, in_dim: int, out_dim: int, d_block: int = 440, n_blocks: int = 5, hidden_mult: int = 4, dropout1: float = 0.042, dropout2: float = 0.137,
                 n_tokens: int | None = None):
        front, in_dim = _front(in_dim, n_tokens)
        super().__init__(
            *front,
            nn.Linear(in_dim, d_block),
            *[_ResBlock(d_block, d_block * hidden_mult, dropout1, dropout2) for _ in range(n_blocks)],
            nn.BatchNorm1d(d_block), nn.ReLU(), nn.Linear(d_block, out_dim),
        )


# The tuned Adult optimisation settings of T-JEPA's benchmark configs (mlp/resnet_adult_tuned.json).
HEADS = {
    "mlp": (MLPHead, {"lr": 1.35e-4, "weight_decay": 6.4e-4, "batch_size": 512, "max_epochs": 200, "patience": 16}),
    "resnet": (ResNetHead, {"lr": 8.9e-4, "weight_decay": 8.0e-5, "batch_size": 512, "max_epochs": 200, "patience": 16}),
}


def make_head(kind: str, in_dim: int, out_dim: int, n_tokens: int | None = None, seed: int | None = None) -> tuple[nn.Module, dict]:
    """A head and its optimisation settings; ``n_tokens`` (T-JEPA inputs) adds the per-token front end.
    ``seed``: draw the initial weights from it, so that a fit does not depend on what ran before it."""
    if kind not in HEADS:
        raise ValueError(f"head must be one of {sorted(HEADS)}, got {kind!r}")
    cls, optim = HEADS[kind]
    if seed is None:
        return cls(in_dim, out_dim, n_tokens=n_tokens), dict(optim)
    # torch's layers initialise from the global generator: reseeding it (the core's helper; the same torch stream as
    # before) makes the head's init a function of ``seed`` alone (the protocols' per-seed init and
    # TJEPAClassifier(seed=...)).
    with seeded(seed):
        return cls(in_dim, out_dim, n_tokens=n_tokens), dict(optim)
