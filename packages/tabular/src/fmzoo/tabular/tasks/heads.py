"""Downstream networks on T-JEPA representations (or raw features): an MLP and a ResNet-style
tabular net (Gorishniy et al., 2021), with T-JEPA's tuned Adult hyperparameters as defaults."""

from __future__ import annotations

from torch import nn


class MLPHead(nn.Sequential):
    """Linear -> (n_hidden - 1) x [Linear, ReLU, Dropout, BatchNorm] -> Linear (T-JEPA's benchmark MLP)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 162, n_hidden: int = 13, dropout: float = 0.231):
        layers = [nn.Linear(in_dim, hidden_dim)]
        for _ in range(n_hidden - 1):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.BatchNorm1d(hidden_dim)]
        layers.append(nn.Linear(hidden_dim, out_dim))
        super().__init__(*layers)


class _ResBlock(nn.Module):
    def __init__(self, d: int, d_hidden: int, dropout1: float, dropout2: float):
        super().__init__()
        self.f = nn.Sequential(nn.BatchNorm1d(d), nn.Linear(d, d_hidden), nn.ReLU(), nn.Dropout(dropout1), nn.Linear(d_hidden, d), nn.Dropout(dropout2))

    def forward(self, x):
        return x + self.f(x)


class ResNetHead(nn.Sequential):
    """Gorishniy et al.'s tabular ResNet: Linear -> n_blocks residual blocks -> BN, ReLU, Linear."""

    def __init__(self, in_dim: int, out_dim: int, d_block: int = 440, n_blocks: int = 5, hidden_mult: int = 4, dropout1: float = 0.042, dropout2: float = 0.137):
        super().__init__(
            nn.Linear(in_dim, d_block),
            *[_ResBlock(d_block, d_block * hidden_mult, dropout1, dropout2) for _ in range(n_blocks)],
            nn.BatchNorm1d(d_block), nn.ReLU(), nn.Linear(d_block, out_dim),
        )


# The tuned Adult optimisation settings of T-JEPA's benchmark configs (mlp/resnet_adult_tuned.json).
HEADS = {
    "mlp": (MLPHead, {"lr": 1.35e-4, "weight_decay": 6.4e-4, "batch_size": 512, "max_epochs": 200, "patience": 16}),
    "resnet": (ResNetHead, {"lr": 8.9e-4, "weight_decay": 8.0e-5, "batch_size": 512, "max_epochs": 200, "patience": 16}),
}


def make_head(kind: str, in_dim: int, out_dim: int) -> tuple[nn.Module, dict]:
    if kind not in HEADS:
        raise ValueError(f"head must be one of {sorted(HEADS)}, got {kind!r}")
    cls, optim = HEADS[kind]
    return cls(in_dim, out_dim), dict(optim)
