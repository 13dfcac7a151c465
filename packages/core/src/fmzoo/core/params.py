"""Parameter updates shared by the domains' self-supervised methods (light: torch only, no Lightning)."""

from __future__ import annotations

import torch


@torch.no_grad()
def ema_update(target: torch.nn.Module, source: torch.nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * source, parameter by parameter (the EMA teacher / target
    encoder of VoCo, T-JEPA, ...): the same two operations per tensor as a loop of ``mul_`` / ``add_``, dispatched
    as two multi-tensor calls. The two modules must have the same parameter tensors, in the same order."""
    t, s = list(target.parameters()), [p.detach() for p in source.parameters()]
    if len(t) != len(s):
        raise ValueError(f"EMA: the target has {len(t)} parameter tensors, the source {len(s)}")
    torch._foreach_mul_(t, momentum)
    torch._foreach_add_(t, s, alpha=1 - momentum)
