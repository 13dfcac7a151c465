"""Small building blocks shared by the graph models (activations and norms as GraphMAE names them)."""
from __future__ import annotations

import torch.nn as nn


def create_activation(name: str | None) -> nn.Module | None:
    if name is None or name == "none":
        return None
    table = {"relu": nn.ReLU, "gelu": nn.GELU, "prelu": nn.PReLU, "elu": nn.ELU}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(table)} or None")
    return table[name]()


def create_norm(name: str | None, dim: int) -> nn.Module | None:
    if name is None or name == "none":
        return None
    if name == "layernorm":
        return nn.LayerNorm(dim)
    if name == "batchnorm":
        return nn.BatchNorm1d(dim)
    raise ValueError(f"unknown norm {name!r}; expected layernorm, batchnorm or None")
