"""fmzoo remote-sensing checkpoints as torchgeo ``WeightsEnum`` members (the other direction from
``weights.from_torchgeo``, which turns torchgeo's SoftCon members into fmzoo models).

torchgeo 0.8 describes pretrained weights with torchvision's ``Weights(url, transforms, meta)`` grouped in a
``WeightsEnum``; its constructors (``torchgeo.models.resnet18/50``, ``vit_small_patch14_dinov2``...) build the timm
model with ``in_chans=weights.meta["in_chans"]`` (ViTs also ``img_size=meta["img_size"]``), then load
``weights.get_state_dict(progress=True)`` with ``strict=False`` (only the classifier may be missing). Here every
fmzoo remote-sensing checkpoint becomes such a member:

- ``url``: the checkpoint's ``model.safetensors`` (a ``file://`` URL for shipped, hub and imported checkpoints; an
  ``https://`` URL where ``url=`` says the same file is published). torchvision's ``get_state_dict`` would
  ``torch.load`` a pickle from a download; ``FmzooWeightsEnum.get_state_dict`` (same arguments) reads the local
  file, or the copy in torch.hub's cache for ``https://`` (downloaded only when absent and networking is on),
  checks its sha256 against the checkpoint's config and returns timm's key names (fmzoo's ``backbone.`` prefix
  removed; the DINOv2 ``mask_token``, which timm's ViT lacks, dropped).
- ``transforms``: an ``nn.Sequential`` that gives exactly the model input of fmzoo's ``model.preprocess`` for one
  input product: ``CheckInput`` (the value range and radiometry checks of ``spec.Preprocessor``, same errors),
  ``ToDtype(float32)``, ``Rescale`` where the product has a scale (DN x 1e-4), ``Normalize`` (the product's
  statistics, after that scale), the size policy (``Resize`` to the pretraining size, bilinear with antialiasing; nothing for
  ``native``, or ``CropToMultiple`` of the ViT patch; ``RequireSize`` for ``error``), and ``PlaceBands`` where the
  product has fewer bands than the model (absent bands at their mean, 0). Input: a ``(C, H, W)`` or
  ``(B, C, H, W)`` tensor in ``meta["input_bands"]`` order (torchgeo's band spelling: ``B4``, ``B8a``).
- ``meta``: torchgeo's keys (``dataset``, ``in_chans``, ``model``, ``publication``, ``repo``, ``ssl_method``,
  ``bands``, ``img_size``) plus ``license``, ``model_kwargs`` (the timm arguments of a non-standard architecture,
  e.g. the CPU-scale ResNet's ``layers``/``channels``/``stem_width``), ``input_bands``, ``product``, ``radiometry``,
  ``size_policy``, ``input_size``, ``fmzoo_id``, ``checkpoint`` and ``sha256``.

``FmzooResNet_Weights`` holds the shipped checkpoints; ``torchgeo_weights(id_or_path, product=None)`` makes the
member of any other fmzoo remote-sensing checkpoint (local hub, imported official SoftCon releases);
``build_model(weights)`` is torchgeo's constructor pattern for any member.

Not the same as torchgeo's own SoftCon members: those resize to 256 and centre-crop 224; these transforms follow
the fmzoo checkpoint (resized straight to 224 for the converted releases). ``ToDtype(float32)`` comes first, so
float64 input is standardized in float32 (fmzoo's ``preprocess`` does that step in float64).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import torch
import torchvision.transforms.v2 as T
from fmzoo.core import CheckpointError, InputSpecError
from fmzoo.core.errors import UsageError
from fmzoo.core.files import is_offline, sha256_file
from torch import nn
from torchvision.models._api import Weights, WeightsEnum

from .spec import Preprocessor, canonical_bands, radiometry_of

WEIGHTS_FILE = "model.safetensors"
SOFTCON_PAPER = "https://arxiv.org/abs/2405.20462"
SOFTCON_REPO = "https://github.com/zhu-xlab/softcon"
_CHECKPOINTS = Path(__file__).parent / "checkpoints"
RS_ARCHITECTURES = ("SoftConResNet", "SoftConViT")
RELEASE_LICENSE = "cc-by-4.0"  # the SoftCon weights on Hugging Face (weights.OFFICIAL)
_DATASETS = {"eurosat_rgb": "EuroSAT RGB 5-class subset (train split)",
             "eopatch_s2": "eo-learn TestEOPatch (Sentinel-2 L1C, Slovenia)"}


def torchgeo_band(name: str) -> str:
    """fmzoo's band name in torchgeo's spelling (``B04`` -> ``B4``, ``B8A`` -> ``B8a``; ``VV``, ``VH`` kept)."""
    b = canonical_bands([name])[0]
    m = re.fullmatch(r"B(\d+)(A?)", b)
    return f"B{int(m.group(1))}{m.group(2).lower()}" if m else b


# ------------------------------------------------------------------------------------------- transforms


class CheckInput(nn.Module):
    """The value-range and radiometry checks of fmzoo's ``Preprocessor`` for one product (reflectance fed as digital
    numbers, 8-bit RGB already divided by 255, Sentinel-2 DN with the baseline-04.00 offset...): the same
    ``InputSpecError``; the tensor passes unchanged."""

    def __init__(self, spec: dict, product: str):
        super().__init__()
        self.spec, self.product = spec, product

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or x.ndim not in (3, 4):
            raise InputSpecError(f"expected a (C, H, W) or (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
        prod = self.spec["products"][self.product]
        if x.shape[-3] != len(prod["bands"]):
            raise InputSpecError(f"product {self.product!r} has {len(prod['bands'])} bands "
                                 f"{[torchgeo_band(b) for b in prod['bands']]} but the input has {x.shape[-3]}")
        pre = Preprocessor(self.spec)
        xf = x.double() if x.dtype == torch.float64 else x.float()
        if not torch.isfinite(xf).all():
            raise InputSpecError("input contains NaN or infinite values; mask or fill them before the model")
        pre._radiometry(xf, self.product, prod, None, None)  # raises on the other scale; converts nothing here
        pre._check_range(xf, self.product, prod)
        return x

    def extra_repr(self) -> str:
        return f"product={self.product!r}"


class RequireSize(nn.Module):
    """``size_policy: error``: only the pretraining size passes."""

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.size, self.size):
            raise InputSpecError(f"input is {x.shape[-2]}x{x.shape[-1]} px but this checkpoint was pretrained at "
                                 f"{self.size}x{self.size} px and its size_policy is 'error'")
        return x

    def extra_repr(self) -> str:
        return f"size={self.size}"


class CropToMultiple(nn.Module):
    """``size_policy: native`` for a ViT: centre crop to a multiple of the patch (top/left = floor of half the excess,
    as fmzoo's ``Preprocessor``; torchvision's ``CenterCrop`` rounds instead)."""

    def __init__(self, multiple: int):
        super().__init__()
        self.multiple = int(multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        th, tw = h - h % self.multiple, w - w % self.multiple
        if min(th, tw) == 0:
            raise InputSpecError(f"image of {h}x{w} px is smaller than the {self.multiple} px patch")
        top, left = (h - th) // 2, (w - tw) // 2
        return x[..., top:top + th, left:left + tw]

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}"


class Rescale(nn.Module):
    """Multiply by the product's ``scale`` (digital numbers x 1e-4 = reflectance), as fmzoo does before standardizing
    (torchgeo writes this as ``Normalize(mean=0, std=1/scale)``, which rounds differently in float32)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


class PlaceBands(nn.Module):
    """A product's bands into the model's band order; bands the product lacks at their mean (0 after
    standardization), as fmzoo's ``missing_bands: mean``."""

    def __init__(self, index: list[int], n_bands: int):
        super().__init__()
        self.index, self.n_bands = [int(i) for i in index], int(n_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(*x.shape[:-3], self.n_bands, *x.shape[-2:])
        out[..., self.index, :, :] = x
        return out

    def extra_repr(self) -> str:
        return f"index={self.index}, n_bands={self.n_bands}"


def make_transforms(spec: dict, product: str, bands: list[str], patch_size: int | None = None) -> nn.Sequential:
    """torchgeo-style transforms equal to fmzoo's preprocessing of ``product`` for a model reading ``bands``."""
    prod = spec["products"][product]
    scale = float(prod["scale"])
    steps: list[nn.Module] = [CheckInput(spec, product), T.ToDtype(torch.float32)]
    if scale != 1.0:
        steps.append(Rescale(scale))
    steps.append(T.Normalize(mean=list(prod["mean"]), std=list(prod["std"])))
    policy, size = spec.get("size_policy", "resize"), int(spec["input_size"])
    if policy == "resize":
        steps.append(T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR, antialias=True))
    elif policy == "error":
        steps.append(RequireSize(size))
    elif patch_size:
        steps.append(CropToMultiple(patch_size))
    if list(prod["bands"]) != list(bands):
        steps.append(PlaceBands([bands.index(b) for b in prod["bands"]], len(bands)))
    return nn.Sequential(*steps)


# ------------------------------------------------------------------------------------------- state dict


def _local_file(url: str, model_dir, progress: bool, file_name) -> Path:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(url2pathname(unquote(parsed.path)))
    if parsed.scheme in ("http", "https"):
        folder = Path(model_dir) if model_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
        path = folder / (file_name or Path(parsed.path).name)
        if not path.is_file():
            if is_offline():
                raise CheckpointError(f"{url} is not in torch.hub's cache ({str(path)!r}) and networking is off "
                                      "(FMZOO_OFFLINE/HF_HUB_OFFLINE)")
            folder.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), progress=progress)
        return path
    raise CheckpointError(f"weights url {url!r}: expected a file:// or https:// URL of a {WEIGHTS_FILE}")


def timm_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fmzoo backbone state dict -> timm's names: ``backbone.`` removed, the ViT ``mask_token`` dropped."""
    out = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    other = sorted(k for k in state if not k.startswith("backbone.") and k != "mask_token")
    if other or not out:
        raise CheckpointError(f"not an fmzoo remote-sensing backbone: keys outside 'backbone.' {other[:5]}")
    return out


class FmzooWeightsEnum(WeightsEnum):
    """torchvision/torchgeo ``WeightsEnum`` whose members point at fmzoo checkpoints (safetensors, not pickles)."""

    def get_state_dict(self, model_dir=None, map_location=None, progress: bool = True, check_hash: bool = True,
                       file_name=None, weights_only: bool = True) -> dict[str, torch.Tensor]:
        """The weights in timm's key names, from the member's ``url`` (arguments as torchvision's
        ``load_state_dict_from_url``; the sha256 recorded in the checkpoint's config is always checked)."""
        from safetensors.torch import load_file

        path = _local_file(self.url, model_dir, progress, file_name)
        if not path.is_file():
            raise CheckpointError(f"{self!r}: weights file {str(path)!r} is missing")
        want = self.meta.get("sha256")
        if want and sha256_file(path) != want:
            raise CheckpointError(f"{self!r}: {str(path)!r} does not match the sha256 recorded in the checkpoint's "
                                  "config.json (corrupt, truncated or other weights)")
        device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
        return timm_state_dict(load_file(str(path), device=str(device)))

    def __reduce_ex__(self, protocol):
        # by name, not by value (Enum's default): a member's transforms are modules, equal only to themselves
        url = None if self.url.startswith("file:") else self.url
        return _restore, (type(self).__name__, self._name_, self.meta["checkpoint"], self.meta["product"], url,
                          self.meta["fmzoo_id"])


# ------------------------------------------------------------------------------------------- meta


def _front_matter(text: str) -> dict:
    if not text.startswith("---"):
        return {}
    try:
        import yaml

        return yaml.safe_load(text.split("---", 2)[1]) or {}
    except Exception:  # a malformed card: no licence, not a failure
        return {}


def _timm_arch(arch: str, args: dict) -> tuple[str, dict]:
    """(timm model name, extra ``create_model`` kwargs) that rebuild the checkpoint's backbone."""
    if arch == "SoftConResNet":
        from .models.backbones import TIMM_RESNETS

        key = (args.get("block", "basic"), tuple(args.get("layers", (1, 1, 1, 1))),
               tuple(args.get("channels", (32, 64, 128, 256))), int(args.get("stem_width", 32)))
        if key in TIMM_RESNETS:
            return TIMM_RESNETS[key], {}
        return ("resnet50" if key[0] == "bottleneck" else "resnet18",
                {"layers": list(key[1]), "channels": list(key[2]), "stem_width": key[3]})
    if arch == "SoftConViT":
        patch, dim, depth = int(args.get("patch_size", 8)), int(args.get("embed_dim", 192)), int(args.get("depth", 4))
        heads, init = int(args.get("num_heads", 3)), args.get("init_values")
        size = int(args.get("input_size", 96))
        known = {(14, 384, 12, 6): "vit_small_patch14_dinov2", (14, 768, 12, 12): "vit_base_patch14_dinov2"}
        name = known.get((patch, dim, depth, heads)) if init else None
        if name:
            return name, {"img_size": size, "dynamic_img_size": True}
        return "vit_base_patch16_224", {"patch_size": patch, "embed_dim": dim, "depth": depth, "num_heads": heads,
                                        "init_values": init, "img_size": size, "dynamic_img_size": True}
    raise UsageError(f"architecture {arch!r} is not a remote-sensing backbone ({', '.join(RS_ARCHITECTURES)})")


def weights_for(checkpoint: str | Path, product: str | None = None, url: str | None = None,
                fmzoo_id: str | None = None) -> Weights:
    """The ``Weights`` (url, transforms, meta) of an fmzoo remote-sensing checkpoint directory for one input product
    (default: the checkpoint's default product)."""
    ckpt = Path(checkpoint)
    try:
        config = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{str(ckpt)!r} is not an fmzoo checkpoint directory (config.json: {exc})") from None
    arch, args, spec = config.get("architecture"), dict(config.get("init_args") or {}), config.get("input_spec")
    if arch not in RS_ARCHITECTURES or not spec:
        raise UsageError(f"{str(ckpt)!r} holds {arch!r}; torchgeo weights are made for fmzoo remote-sensing "
                         f"checkpoints ({', '.join(RS_ARCHITECTURES)}) with an input spec")
    bands = canonical_bands(args.get("bands") or spec["bands"])
    product = product or spec.get("default_product")
    prods = spec.get("products") or {}
    if product not in prods:
        raise UsageError(f"product {product!r} is not declared by {str(ckpt)!r}; it declares {sorted(prods)}")
    prod = prods[product]
    if not set(prod["bands"]) <= set(bands):
        raise UsageError(f"product {product!r} has bands {prod['bands']} outside the model's {bands}")
    model, model_kwargs = _timm_arch(arch, args)
    patch = int(args.get("patch_size", 8)) if arch == "SoftConViT" else None
    prov = {}
    if (ckpt / "provenance.json").is_file():
        prov = json.loads((ckpt / "provenance.json").read_text(encoding="utf-8"))
    card = _front_matter((ckpt / "README.md").read_text(encoding="utf-8")) if (ckpt / "README.md").is_file() else {}
    imported = prov.get("imported_from") or {}
    recipe = prov.get("recipe") or {}
    softcon_release = str(imported.get("format", "")).startswith("softcon")
    if softcon_release:
        dataset, repo, method = "SSL4EO-S12", SOFTCON_REPO, "softcon"
        card["license"] = RELEASE_LICENSE  # the release's (weights.py); a card of a file imported by path has none
    else:
        data_name = (recipe.get("data") or {}).get("name")
        dataset = _DATASETS.get(data_name, data_name) or ", ".join(card.get("datasets") or []) or None
        repo, method = "fmzoo (packages/remotesensing)", recipe.get("method") or imported.get("format")
    if fmzoo_id is None:
        fmzoo_id = imported.get("id") or (f"fmzoo/{ckpt.name}" if ckpt.parent == _CHECKPOINTS else str(ckpt))
    meta = {
        "dataset": dataset, "in_chans": len(bands), "model": model, "model_kwargs": model_kwargs,
        "img_size": int(spec["input_size"]),
        "publication": SOFTCON_PAPER if method == "softcon" else None, "repo": repo, "ssl_method": method,
        "license": card.get("license"), "bands": [torchgeo_band(b) for b in bands],
        "input_bands": [torchgeo_band(b) for b in prod["bands"]], "product": product,
        "radiometry": radiometry_of(product, prod), "size_policy": spec.get("size_policy", "resize"),
        "input_size": int(spec["input_size"]), "fmzoo_id": fmzoo_id, "checkpoint": str(ckpt),
        "recipe": recipe.get("name"), "source": imported.get("source"), "sha256": config.get("weights_sha256"),
    }
    return Weights(url=url or (ckpt / WEIGHTS_FILE).resolve().as_uri(),
                   transforms=make_transforms(spec, product, bands, patch), meta=meta)


# ------------------------------------------------------------------------------------------- members


class FmzooResNet_Weights(FmzooWeightsEnum):  # noqa: N801  (torchgeo's naming: ResNet50_Weights)
    """The shipped fmzoo remote-sensing ResNets. Build with ``build_model(member)`` or torchgeo's
    ``torchgeo.models.resnet18(weights=member, **member.meta["model_kwargs"])`` (``num_classes=0`` for features)."""

    RGB_RESNET_SMALL_EUROSAT = weights_for(_CHECKPOINTS / "rgb-resnet-small-eurosat")
    SOFTCON_RESNET_SMALL = weights_for(_CHECKPOINTS / "softcon-resnet-small")  # L1C reflectance
    SOFTCON_RESNET_SMALL_DN = weights_for(_CHECKPOINTS / "softcon-resnet-small", "s2_l1c_dn")  # L1C DN
    SOFTCON_RESNET_SMALL_RGB = weights_for(_CHECKPOINTS / "softcon-resnet-small", "rgb8")  # 8-bit RGB -> 13 bands


def _member_name(fmzoo_id: str, product: str, default: str | None) -> str:
    base = re.sub(r"[^A-Za-z0-9]+", "_", fmzoo_id.rsplit("/", 1)[-1]).strip("_").upper() or "CHECKPOINT"
    base = base if base[0].isalpha() else f"W_{base}"
    return base if product == default else f"{base}_{re.sub(r'[^A-Za-z0-9]+', '_', product).upper()}"


_MADE: dict[tuple, FmzooWeightsEnum] = {}  # (checkpoint, product, url) -> the member made in this process


def _restore(enum_name: str, name: str, checkpoint: str, product: str, url: str | None, fmzoo_id: str):
    """Unpickle a member: the shipped enum's by name; another checkpoint's member again from its directory."""
    if enum_name == FmzooResNet_Weights.__name__:
        return FmzooResNet_Weights[name]
    member = _MADE.get((checkpoint, product, url))
    if member is None:
        sha = json.loads((Path(checkpoint) / "config.json").read_text(encoding="utf-8")).get("weights_sha256")
        member = _dynamic(checkpoint, product, url, fmzoo_id, sha)
    return member


@functools.lru_cache(maxsize=64)
def _dynamic(path: str, product: str | None, url: str | None, fmzoo_id: str | None, sha: str | None):
    weights = weights_for(path, product, url, fmzoo_id)
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    default = config["input_spec"].get("default_product")
    label = weights.meta["fmzoo_id"]
    if Path(label).is_absolute() and weights.meta.get("source"):  # a release imported by path: its file's name
        label = Path(weights.meta["source"]).stem
    name = _member_name(label, weights.meta["product"], default)
    enum = FmzooWeightsEnum(f"{config['architecture']}_Weights", [(name, weights)],
                            module=__name__, qualname=f"{config['architecture']}_Weights")
    _MADE[(path, weights.meta["product"], url)] = enum[name]
    return enum[name]


def torchgeo_weights(id_or_path, product: str | None = None, url: str | None = None,
                     revision: str | None = None) -> FmzooWeightsEnum:
    """The torchgeo ``WeightsEnum`` member of an fmzoo remote-sensing checkpoint: an id (``fmzoo/...``, the local
    hub, a catalogue id such as ``wangyi111/softcon-rn50-s2``: converted once, offline from the cache) or a
    directory/file ``fmzoo.core.from_pretrained`` accepts. ``product``: the input the transforms take (default: the
    checkpoint's default product). ``url``: where the same ``model.safetensors`` is published (``https://``;
    ``get_state_dict`` then reads torch.hub's cache of it). Shipped checkpoints give ``FmzooResNet_Weights``'s
    members."""
    from fmzoo.core.hub import resolve_checkpoint

    path = Path(resolve_checkpoint(id_or_path, revision)).resolve()
    if url is None:
        for member in FmzooResNet_Weights:
            if Path(member.meta["checkpoint"]).resolve() == path and (product or _default_product(path)) == \
                    member.meta["product"]:
                return member
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    fmzoo_id = str(id_or_path) if "/" in str(id_or_path) and not Path(str(id_or_path)).exists() else None
    return _dynamic(str(path), product, url, fmzoo_id, config.get("weights_sha256"))


def _default_product(path: Path) -> str | None:
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return (config.get("input_spec") or {}).get("default_product")


def build_model(weights: WeightsEnum, *args, **kwargs) -> nn.Module:
    """torchgeo's constructor pattern for any member: ``timm.create_model(meta["model"], in_chans=...,
    **meta["model_kwargs"], **kwargs)`` and the member's state dict (``strict=False``; only a classifier may be
    missing). ``num_classes=0`` gives the pooled features fmzoo's ``embed`` returns."""
    import timm

    meta = weights.meta
    model = timm.create_model(meta["model"], *args, **{**meta.get("model_kwargs", {}), "in_chans": meta["in_chans"],
                                                       **kwargs})
    missing, unexpected = model.load_state_dict(weights.get_state_dict(progress=True), strict=False)
    head = {"fc.weight", "fc.bias", "head.weight", "head.bias"}
    if set(missing) - head or unexpected:
        raise CheckpointError(f"{weights!r} does not fit timm's {meta['model']}: missing "
                              f"{sorted(set(missing) - head)[:5]}, unexpected {sorted(unexpected)[:5]}")
    return model.eval()
