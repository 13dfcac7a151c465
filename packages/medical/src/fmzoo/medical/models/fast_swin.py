"""Faster CPU window attention and instance norm for the MONAI SwinUNETR modules fmzoo trains (same function).

``speed_up(module)`` switches, inside ``module`` only (its instances, never MONAI's class), every
``monai.networks.nets.swin_unetr.WindowAttention`` to :class:`FastWindowAttention`:

* the relative-position bias and the shifted-window mask are added to each other once per call, into one
  (windows, heads, n, n) bias, instead of being added to the (batch x windows, heads, n, n) scores one after the
  other;
* with autograd on, the scores are ``(q * scale) @ k^T`` on (batch, windows, heads, n, d) views and the bias is
  added in place (two n x n buffers fewer per call than MONAI's ``attn + bias`` then ``attn + mask``);
* with autograd off (the VoCo EMA teacher, sliding-window inference), the fused CPU kernel of
  ``F.scaled_dot_product_attention`` runs with that bias as ``attn_mask`` (what MONAI itself does with
  ``use_flash_attention=True`` under no_grad), with the bias broadcast over the batch instead of copied;

and every ``nn.InstanceNorm3d`` without running statistics (MONAI's ``norm_name="instance"``) to
:class:`FastInstanceNorm3d` (group norm with one group per channel).

Attention dropout in training falls back to MONAI's own forward. Parameters, buffers and state-dict keys are
untouched (the class only overrides ``forward``), so checkpoints, ``deepcopy`` and EMA copies behave as before.
Results equal MONAI's up to float rounding (bias + mask summed first; SDPA's own summation order):
tests/test_fast_swin.py compares outputs and gradients of a VoCo encoder with the same weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets.swin_unetr import WindowAttention
from torch import nn


class FastInstanceNorm3d(nn.InstanceNorm3d):
    """InstanceNorm3d without running statistics, as ``F.group_norm`` with one group per channel (the same
    normalisation: per sample and channel, biased variance, same eps and optional affine; a faster CPU kernel
    than ``F.instance_norm``'s batch norm over a reshaped copy, forward and backward)."""

    def forward(self, x):
        if x.dim() != 5 or x.shape[1] != self.num_features or x.shape[2:].numel() < 2:
            return super().forward(x)  # the parent's checks and messages (e.g. one voxel per channel)
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)


class FastWindowAttention(WindowAttention):
    """MONAI's WindowAttention with one combined bias, in-place bias addition, and SDPA without autograd."""

    def forward(self, x, mask):
        if self.attn_drop.p > 0 and self.training:
            return super().forward(x, mask)  # attention dropout: MONAI's own path
        b, n, c = x.shape
        h = self.num_heads
        d = c // h
        qkv = self.qkv(x).reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        idx = self.relative_position_index[:n, :n].reshape(-1)
        bias = self.relative_position_bias_table[idx].reshape(n, n, h).permute(2, 0, 1)  # (h, n, n)
        nw = 1 if mask is None else mask.shape[0]
        bias = bias.unsqueeze(0) if mask is None else bias.unsqueeze(0) + mask.unsqueeze(1).to(bias.dtype)
        if not torch.is_grad_enabled():
            # (b // nw, nw * h, n, d): windows x heads as one axis, so that the (nw * h, n, n) bias broadcasts
            q, k, v = (t.reshape(b // nw, nw * h, n, d) for t in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.reshape(1, nw * h, n, n).to(q.dtype),
                                                 scale=self.scale).reshape(b, h, n, d)
        else:
            shape5 = (b // nw, nw, h, n, d)
            attn = torch.matmul((q * self.scale).reshape(shape5), k.reshape(shape5).transpose(-2, -1))
            attn = attn.add_(bias).softmax(-1).to(v.dtype)
            out = torch.matmul(attn, v.reshape(shape5)).reshape(b, h, n, d)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


def speed_up(module: nn.Module) -> nn.Module:
    """Switch ``module``'s SwinUNETR window attentions and instance norms to the
    faster same-function classes
    (in place; returns ``module``). Idempotent; modules of other types are left alone."""
    for m in module.modules():
        if type(m) is WindowAttention:
            m.__class__ = FastWindowAttention
        elif type(m) is nn.InstanceNorm3d and not m.track_running_stats:
            m.__class__ = FastInstanceNorm3d
    return module
