"""timm backbones (ResNet, ViT) for any band set, with the input spec travelling with the weights.

``forward(x)`` takes an already-standardized tensor ``(B, len(bands), H, W)`` (what training uses);
``embed(raw, bands=..., product=..., size=...)`` applies the checkpoint's own preprocessing first (value-range and
radiometry check, per-band standardization, the size policy, missing bands) and is what a ``from_pretrained`` user
calls on raw imagery, tensors, GeoTIFF reads or torchgeo sample dicts.

The ResNets are built through ``timm.create_model`` with a ``pretrained_cfg`` made from the input spec (mean, std,
input size of the default product, ``first_conv``, ``classifier``, licence and Hub id where known), so
``timm.data.resolve_data_config(model=model.backbone)`` gives the checkpoint's preprocessing; the ViT gets the same
``pretrained_cfg`` attached. Both stay timm modules with timm's parameter names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from fmzoo.core import HubMixin, InputSpecError
from torch import nn

from ..spec import (
    RGB_BANDS,
    Preprocessor,
    RemoteSensingInput,
    canonical_bands,
    make_input_spec,
    radiometry_of,
)
from .widen import widen_input_weight

# timm's own ResNet names for the configurations that are exactly one of them (block, layers, widths, stem width)
TIMM_RESNETS = {
    ("basic", (2, 2, 2, 2), (64, 128, 256, 512), 64): "resnet18",
    ("basic", (3, 4, 6, 3), (64, 128, 256, 512), 64): "resnet34",
    ("bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), 64): "resnet50",
    ("bottleneck", (3, 4, 23, 3), (64, 128, 256, 512), 64): "resnet101",
    ("bottleneck", (3, 8, 36, 3), (64, 128, 256, 512), 64): "resnet152",
}


def _card_license(checkpoint_dir) -> str | None:
    """The ``license:`` of a checkpoint's README front matter (the card), if any."""
    if checkpoint_dir is None:
        return None
    try:
        text = (checkpoint_dir / "README.md").read_text(encoding="utf-8")
    except OSError:
        return None
    head = text.split("---", 2)[1] if text.startswith("---") else ""
    m = re.search(r"^license:\s*(\S+)\s*$", head, flags=re.M)
    return m.group(1) if m else None


def timm_pretrained_cfg(spec: dict | None, bands: Sequence[str], architecture: str, first_conv: str,
                        classifier: str, fixed_input_size: bool = False, meta: dict | None = None) -> dict:
    """A timm ``pretrained_cfg`` dict stating this checkpoint's preprocessing: ``input_size`` (bands, pretraining
    size), ``mean``/``std`` of the spec's default product in timm's convention (8-bit products as the 0-1 tensors
    ``ToTensor`` makes, i.e. divided by 255; other products in their raw units: the product's statistics divided by
    its scale), bilinear resize without crop, ``num_classes=0`` (pooled features; ``fc``/``head`` is Identity)."""
    size = int((spec or {}).get("input_size") or 224)
    cfg = {"architecture": architecture, "input_size": (len(bands), size, size), "interpolation": "bilinear",
           "crop_pct": 1.0, "crop_mode": "center", "fixed_input_size": fixed_input_size, "num_classes": 0,
           "first_conv": first_conv, "classifier": classifier, "mean": (0.0,) * len(bands), "std": (1.0,) * len(bands)}
    notes = []
    name = (spec or {}).get("default_product")
    prod = ((spec or {}).get("products") or {}).get(name)
    if prod is not None:
        kind = radiometry_of(name, prod)
        div = float(prod["scale"]) * (255.0 if kind == "rgb8" else 1.0)
        order = ([prod["bands"].index(b) for b in bands] if set(prod["bands"]) == set(bands)
                 else list(range(len(prod["bands"]))))
        cfg["mean"] = tuple(prod["mean"][i] / div for i in order)
        cfg["std"] = tuple(prod["std"][i] / div for i in order)
        unit = "8-bit values divided by 255, as ToTensor gives" if kind == "rgb8" else f"raw {kind} values"
        notes.append(f"mean/std: input product {name!r} ({unit}); bands {[prod['bands'][i] for i in order]}")
        if set(prod["bands"]) != set(bands):
            notes.append(f"the model reads {list(bands)}: bands outside the product enter as 0 after normalisation")
        notes.append(f"size policy {spec.get('size_policy')!r}: fmzoo's embed() resizes straight to {size} px "
                     "(no crop)" if spec.get("size_policy") == "resize" else
                     f"size policy {spec.get('size_policy')!r}: fmzoo's embed() keeps other sizes")
    else:
        notes.append("no input product declared: mean 0 / std 1 placeholders (the input is expected standardized)")
    cfg["notes"] = tuple(notes)
    for key, value in (meta or {}).items():
        if value is not None:
            cfg[key] = value
    return cfg


class _RSBackbone(nn.Module):
    bands: list[str]
    num_features: int
    input_spec_class = RemoteSensingInput
    _timm_meta: dict | None = None  # licence / Hub id / paper of imported releases (weights.py)

    # the spec and the checkpoint folder are properties so that the timm pretrained_cfg follows them
    @property
    def input_spec(self) -> dict | None:
        return self.__dict__.get("_input_spec")

    @input_spec.setter
    def input_spec(self, spec: dict | None) -> None:
        self.__dict__["_input_spec"] = spec
        self._refresh_pretrained_cfg()

    @property
    def checkpoint_dir(self):
        return self.__dict__.get("_checkpoint_dir")

    @checkpoint_dir.setter
    def checkpoint_dir(self, path) -> None:
        self.__dict__["_checkpoint_dir"] = path
        self._refresh_pretrained_cfg()

    def _timm_cfg_args(self) -> tuple[str, str, str, bool]:
        raise NotImplementedError  # (architecture, first_conv, classifier, fixed_input_size)

    @property
    def pretrained_cfg(self) -> dict:
        """timm's ``pretrained_cfg`` of the backbone: this checkpoint's preprocessing, licence and source."""
        arch, first_conv, classifier, fixed = self._timm_cfg_args()
        meta = {"license": _card_license(self.checkpoint_dir), **(self._timm_meta or {})}
        return timm_pretrained_cfg(self.input_spec, self.bands, arch, first_conv, classifier, fixed, meta)

    def _refresh_pretrained_cfg(self) -> None:
        backbone = self.__dict__.get("_modules", {}).get("backbone")
        if backbone is None:
            return
        try:
            cfg = self.pretrained_cfg
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):  # a malformed spec: refused at save
            arch, first_conv, classifier, fixed = self._timm_cfg_args()
            cfg = timm_pretrained_cfg(None, self.bands, arch, first_conv, classifier, fixed)
        backbone.pretrained_cfg = backbone.default_cfg = cfg

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
        return Preprocessor(self.input_spec, multiple_of=getattr(self, "patch_size", None))

    def preprocess(self, raw, bands: Sequence[str] | None = None, product: str | None = None, size=None,
                   radiometry: str | None = None, dn_offset: float | None = None,
                   resize: bool | None = None) -> torch.Tensor:
        """Raw input -> standardized model input (``spec.Preprocessor``): ``size`` None (the checkpoint's
        size_policy), 'native', 'resize' or pixels; ``radiometry``/``dn_offset`` convert Sentinel-2 scales."""
        return self.preprocessor(raw, bands=bands, product=product, size=size, radiometry=radiometry,
                                 dn_offset=dn_offset, resize=resize)

    @torch.no_grad()
    def embed(self, raw, bands: Sequence[str] | None = None, product: str | None = None, size=None,
              radiometry: str | None = None, dn_offset: float | None = None, resize: bool | None = None,
              batch_size: int = 256) -> torch.Tensor:
        """Raw input (array/tensor/torchgeo sample) -> features, with this checkpoint's preprocessing. Any resize or
        crop is announced (``spec.ResizeWarning``); ``size='native'`` keeps the input size with the checkpoint's
        statistics."""
        x = self.preprocess(raw, bands=bands, product=product, size=size, radiometry=radiometry,
                            dn_offset=dn_offset, resize=resize)
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


class PresentBandsConv2d(nn.Conv2d):
    """The ResNet stem convolution (same parameters, names and arithmetic as ``nn.Conv2d``) that skips input bands
    which are zero in the whole batch: a product with fewer bands than the model (EuroSAT's 8-bit RGB into a
    13-band model) enters with its absent bands at their mean, i.e. 0 after standardization, and those bands'
    weights only ever multiply zeros. Convolving the present bands alone gives the same output, bit for bit (the
    skipped terms are exact zeros; checked at 1 and 2 threads); on the shipped 13-band checkpoints fed RGB it is
    the stem's cost divided by about 2-4. Only where no gradient reaches the weights (frozen features,
    evaluation): with 2+ threads oneDNN splits the weight-gradient reduction by channel count, so a narrowed
    convolution's weight gradient differs from the full one in the last bits, and training would drift."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.groups != 1 or x.ndim != 4 or x.shape[1] != self.in_channels or self.in_channels < 2
                or (torch.is_grad_enabled() and (self.weight.requires_grad or x.requires_grad))):
            return super().forward(x)
        present = x.flatten(2).any(-1).any(0)  # bands with a non-zero value in the batch (NaN counts as one)
        n = int(present.sum())
        if n == self.in_channels or n == 0:
            return super().forward(x)
        keep = torch.nonzero(present).flatten()
        lo, hi = int(keep[0]), int(keep[-1]) + 1
        if hi - lo == n:  # a contiguous run of bands (B02-B04): views, no copies
            return self._conv_forward(x[:, lo:hi], self.weight[:, lo:hi], self.bias)
        return self._conv_forward(x.index_select(1, keep), self.weight.index_select(1, keep), self.bias)


class ChannelsLastMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` computed in channels-last memory (PyTorch's CPU kernel for it is about 4x faster than the
    NCHW one at the stem's sizes) and handed back in the input's layout; a maximum does not depend on the order of
    its comparisons, so the values are the same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or self.return_indices or x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


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
        import timm
        from timm.models.resnet import BasicBlock, Bottleneck

        blocks = {"basic": BasicBlock, "bottleneck": Bottleneck}
        if block not in blocks:
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        self.bands = canonical_bands(bands)
        key = (block, tuple(int(n) for n in layers), tuple(int(c) for c in channels), int(stem_width))
        self._timm_name = TIMM_RESNETS.get(key)
        self._arch = self._timm_name or (f"resnet (timm ResNet: {block} blocks, layers {list(key[1])}, widths "
                                         f"{list(key[2])}, stem {key[3]})")
        # timm's factory (its ResNet entry point, its build_model_with_cfg), the block and sizes given explicitly;
        # num_classes=0 leaves fc = Identity: the same modules and parameter names as ResNet(...) itself
        self.backbone = timm.create_model(
            "resnet50" if block == "bottleneck" else "resnet18", pretrained=False, block=blocks[block],
            layers=key[1], channels=key[2], stem_width=key[3], in_chans=len(self.bands), num_classes=0,
            pretrained_cfg=timm_pretrained_cfg(None, self.bands, self._arch, "conv1", "fc"))
        self.num_features = self.backbone.num_features
        # same modules and parameters, faster forward (exact, see the two classes): the stem skips all-zero bands,
        # the max pool runs in channels-last memory
        if type(self.backbone.conv1) is nn.Conv2d:
            self.backbone.conv1.__class__ = PresentBandsConv2d
        if type(self.backbone.maxpool) is nn.MaxPool2d:
            self.backbone.maxpool.__class__ = ChannelsLastMaxPool2d
        self.input_spec = make_input_spec(self.bands, input_size)

    def _timm_cfg_args(self):
        return self._arch, "conv1", "fc", False

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

    def _timm_cfg_args(self):
        arch = {(14, 384, 12): "vit_small_patch14_dinov2", (14, 768, 12): "vit_base_patch14_dinov2"}.get(
            (self.patch_size, self.num_features, len(self.backbone.blocks)),
            f"vit (timm VisionTransformer: patch {self.patch_size}, width {self.num_features}, "
            f"depth {len(self.backbone.blocks)})")
        return arch, "patch_embed.proj", "head", False

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
        last = vit.blocks[-1] if len(vit.blocks) else None
        if not self._class_token_only(last):
            return vit.forward_head(vit.norm(vit.blocks(t)), pre_logits=True)
        t = vit.blocks[:-1](t)
        return vit.forward_head(vit.norm(self._class_token_block(last, t)), pre_logits=True)

    def _class_token_only(self, blk) -> bool:
        """Whether the feature (the class token after the final norm) can skip the last block's patch-token outputs:
        a plain timm Block/Attention (no gate), token pooling, no attention pool."""
        from timm.layers import Attention
        from timm.models.vision_transformer import Block

        vit = self.backbone
        return (type(blk) is Block and type(blk.attn) is Attention and blk.attn.gate is None
                and vit.global_pool == "token" and vit.attn_pool is None and vit.cls_token is not None)

    @staticmethod
    def _class_token_block(blk, t: torch.Tensor) -> torch.Tensor:
        """timm's ``Block.forward`` for the class token alone, (B, N, D) -> (B, 1, D): the keys and values of all
        tokens, the query, attention output, projection and MLP of the class token only. The feature reads nothing
        else of the last block (its patch-token outputs were computed and dropped: about 6.5 % of a ViT-S/14
        training step's FLOPs at 46 tokens); the arithmetic per token is the block's own (equal up to rounding)."""
        import torch.nn.functional as F

        attn = blk.attn
        x = blk.norm1(t)
        b, n, _ = x.shape
        h, d = attn.num_heads, attn.head_dim
        w, bias = attn.qkv.weight, attn.qkv.bias
        q = F.linear(x[:, :1], w[: h * d], None if bias is None else bias[: h * d]).reshape(b, 1, h, d).transpose(1, 2)
        kv = F.linear(x, w[h * d:], None if bias is None else bias[h * d:])
        k, v = kv.reshape(b, n, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        if attn.fused_attn:
            o = F.scaled_dot_product_attention(q, k, v, dropout_p=attn.attn_drop.p if blk.training else 0.0)
        else:
            o = attn.attn_drop((q * attn.scale @ k.transpose(-2, -1)).softmax(dim=-1)) @ v
        o = attn.proj_drop(attn.proj(attn.norm(o.transpose(1, 2).reshape(b, 1, h * d))))
        c = t[:, :1] + blk.drop_path1(blk.ls1(o))
        return c + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(c))))
