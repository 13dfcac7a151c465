"""timm backbones (ResNet, ViT) for any band set, with the input spec travelling with the weights.

``forward(x)`` takes an already-standardized tensor ``(B, len(bands), H, W)`` (what training uses);
``embed(raw, bands=..., product=...)`` applies the checkpoint's own preprocessing first (value-range
check, per-band standardization, resize to the pretraining size, missing bands) and is what a
``from_pretrained`` user calls on raw imagery, tensors, GeoTIFF reads or torchgeo sample dicts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from fmzoo.core import HubMixin, InputSpecError
from torch import nn

from ..spec import RGB_BANDS, Preprocessor, canonical_bands, make_input_spec
from .widen import widen_input_weight


class _RSBackbone(nn.Module):
    bands: list[str]
    num_features: int

    def _check(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x) or x.ndim != 4:
            raise InputSpecError(f"expected a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
        if x.shape[1] != len(self.bands):
            raise InputSpecError(
                f"{type(self).__name__} expects {len(self.bands)} bands {self.bands}, got {x.shape[1]} channels; "
                "use model.embed(raw, bands=[...], product=...) to convert a declared product, or widen the model"
            )
        if not torch.isfinite(x).all():
            raise InputSpecError("input contains NaN or infinite values")

    @property
    def preprocessor(self) -> Preprocessor:
        return Preprocessor(self.input_spec)

    def preprocess(self, raw, bands: Sequence[str] | None = None, product: str | None = None,
                   resize: bool | None = None) -> torch.Tensor:
        return self.preprocessor(raw, bands=bands, product=product, resize=resize)

    @torch.no_grad()
    def embed(self, raw, bands: Sequence[str] | None = None, product: str | None = None,
              resize: bool | None = None, batch_size: int = 256) -> torch.Tensor:
        """Raw input (array/tensor/torchgeo sample) -> features, with this checkpoint's preprocessing."""
        x = self.preprocess(raw, bands=bands, product=product, resize=resize)
        was = self.training
        self.eval()
        try:
            return torch.cat([self(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        finally:
            self.train(was)

    def _input_layer(self) -> nn.Conv2d:
        raise NotImplementedError

    def widen(self, bands: Sequence[str], scheme: str = "copy_random", seed: int = 0):
        """A copy of this model whose input layer takes ``bands`` (weights initialised by ``scheme``);
        every other weight is copied. The input spec keeps size/policies; products must be re-declared
        except those whose bands are all still present."""
        bands = canonical_bands(bands)
        args = dict(self.init_args)
        args["bands"] = bands
        new = type(self)(**args)
        state = {k: v.clone() for k, v in self.state_dict().items()}
        key = self._input_weight_key
        state[key] = widen_input_weight(state[key], self.bands, bands, scheme=scheme, seed=seed)
        new.load_state_dict(state, strict=True)
        if self.input_spec:
            spec = make_input_spec(bands, self.input_spec["input_size"], self.input_spec.get("gsd_m", 10.0),
                                   self.input_spec.get("size_policy", "resize"),
                                   self.input_spec.get("missing_bands", "mean"))
            spec["products"] = {k: p for k, p in self.input_spec.get("products", {}).items()
                                if all(b in bands for b in p["bands"])}
            d = self.input_spec.get("default_product")
            spec["default_product"] = d if d in spec["products"] else next(iter(spec["products"]), None)
            new.input_spec = spec
        return new


class SoftConResNet(_RSBackbone, HubMixin):
    """timm ResNet (BasicBlock or Bottleneck) on any band set; pooled features of size channels[-1]*expansion.

    Paper config (SoftCon RN50): ``block="bottleneck", layers=[3,4,6,3], channels=[64,128,256,512],
    stem_width=64``, 13 bands, 224 px. CPU config: ``block="basic", layers=[1,1,1,1],
    channels=[32,64,128,256], stem_width=32``, 96 px.
    """

    _input_weight_key = "backbone.conv1.weight"

    def __init__(self, bands: list[str] = RGB_BANDS, block: str = "basic", layers: list[int] = (1, 1, 1, 1),
                 channels: list[int] = (32, 64, 128, 256), stem_width: int = 32, input_size: int = 96):
        super().__init__()
        from timm.models.resnet import BasicBlock, Bottleneck, ResNet

        blocks = {"basic": BasicBlock, "bottleneck": Bottleneck}
        if block not in blocks:
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        self.bands = canonical_bands(bands)
        self.backbone = ResNet(blocks[block], tuple(layers), num_classes=0, in_chans=len(self.bands),
                               stem_width=stem_width, channels=tuple(channels))
        self.num_features = self.backbone.num_features
        self.input_spec = make_input_spec(self.bands, input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.backbone(x)


class SoftConViT(_RSBackbone, HubMixin):
    """timm VisionTransformer on any band set; ``forward(x, keep=None, masks=None)`` can drop patch tokens
    (``keep``: (B, K) indices of kept patches) for Siamese masking, or replace them by the learned mask token
    (``masks``: (B, N) booleans, DINOv2's masked-image input; needs ``mask_token=True``). Features: the class
    token after the final norm.

    Paper config (SoftCon ViT-S/14): ``patch_size=14, embed_dim=384, depth=12, num_heads=6``, 224 px.
    CPU config: ``patch_size=8, embed_dim=192, depth=4, num_heads=3``, 96 px.
    DINOv2 layout (the released SoftCon ViTs): ``init_values=1e-5`` (LayerScale ``ls1``/``ls2`` in every
    block) and ``mask_token=True`` (a ``(1, embed_dim)`` parameter); both off by default, as before.
    """

    _input_weight_key = "backbone.patch_embed.proj.weight"

    def __init__(self, bands: list[str] = RGB_BANDS, patch_size: int = 8, embed_dim: int = 192, depth: int = 4,
                 num_heads: int = 3, input_size: int = 96, init_values: float | None = None,
                 mask_token: bool = False):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.bands = canonical_bands(bands)
        self.backbone = VisionTransformer(img_size=input_size, patch_size=patch_size, in_chans=len(self.bands),
                                          embed_dim=embed_dim, depth=depth, num_heads=num_heads, num_classes=0,
                                          dynamic_img_size=True, global_pool="token", init_values=init_values)
        self.num_features = embed_dim
        self.patch_size = patch_size
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim)) if mask_token else None
        self.input_spec = make_input_spec(self.bands, input_size)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None,
                masks: torch.Tensor | None = None) -> torch.Tensor:
        self._check(x)
        vit = self.backbone
        t = vit.patch_embed(x)
        if masks is not None:
            if self.mask_token is None:
                raise InputSpecError("masks= needs a model built with mask_token=True (DINOv2 layout)")
            t = torch.where(masks.reshape(t.shape[0], -1, 1).bool(), self.mask_token.to(t.dtype).unsqueeze(0),
                            t.reshape(t.shape[0], -1, t.shape[-1])).reshape(t.shape)
        t = vit._pos_embed(t)  # (B, prefix + N, D)
        if keep is not None:
            p = vit.num_prefix_tokens
            idx = keep.unsqueeze(-1).expand(-1, -1, t.shape[-1]) + 0
            t = torch.cat([t[:, :p], torch.gather(t[:, p:], 1, idx)], dim=1)
        t = vit.norm_pre(t)
        t = vit.blocks(t)
        t = vit.norm(t)
        return vit.forward_head(t, pre_logits=True)
