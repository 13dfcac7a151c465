"""Widening a pretrained input layer (conv stem / ViT patch embedding) to another band set.

SoftCon continues pretraining from RGB vision backbones on 13-band Sentinel-2 (and 2-band SAR)
imagery; only the first layer's input channels change. Schemes (``scheme=``):

- ``"copy_random"`` (default, SoftCon's simple init as we read the paper): a target band that is one
  of the source bands (RGB = B04/B03/B02) keeps its pretrained kernel; every other band gets a fresh
  random kernel with the standard deviation of the pretrained kernels. With the new bands at 0
  (their mean after standardization) the widened layer computes exactly what the RGB layer did.
- ``"repeat"``: timm's ``adapt_input_conv`` rule: source kernels repeated cyclically over the target
  bands and scaled by n_source / n_target (keeps the activation scale for a grey input).
- ``"nearest"``: every target band takes the kernel of the spectrally nearest source band, scaled by
  n_source / n_target.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from fmzoo.core.runtime import generator

from ..spec import BAND_WAVELENGTHS, canonical_bands

SCHEMES = ("copy_random", "repeat", "nearest")


def widen_input_weight(weight: torch.Tensor, src_bands: Sequence[str], dst_bands: Sequence[str],
                       scheme: str = "copy_random", seed: int = 0) -> torch.Tensor:
    """``weight``: (out, len(src_bands), kh, kw) -> (out, len(dst_bands), kh, kw)."""
    src, dst = canonical_bands(src_bands), canonical_bands(dst_bands)
    if weight.ndim != 4 or weight.shape[1] != len(src):
        raise ValueError(f"weight of shape {tuple(weight.shape)} does not have {len(src)} input channels {src}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    w = weight.detach().float()
    out = torch.empty(w.shape[0], len(dst), *w.shape[2:], dtype=w.dtype)
    if scheme == "copy_random":
        gen = generator(seed)  # the fresh kernels' own stream: widening never touches the global one
        std = float(w.std())
        for j, b in enumerate(dst):
            if b in src:
                out[:, j] = w[:, src.index(b)]
            else:
                out[:, j] = torch.randn(w.shape[0], *w.shape[2:], generator=gen) * std
    elif scheme == "repeat":
        for j in range(len(dst)):
            out[:, j] = w[:, j % len(src)]
        out *= len(src) / len(dst)
    else:  # nearest
        src_wl = torch.tensor([BAND_WAVELENGTHS[b] for b in src])
        for j, b in enumerate(dst):
            out[:, j] = w[:, int(torch.argmin((src_wl - BAND_WAVELENGTHS[b]).abs()))]
        out *= len(src) / len(dst)
    return out.to(weight.dtype)
