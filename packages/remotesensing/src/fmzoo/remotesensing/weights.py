"""Released SoftCon weights (Wang, Albrecht & Zhu, arXiv:2405.20462) -> fmzoo's ``SoftConResNet`` / ``SoftConViT``.

Releases (Hugging Face ``wangyi111/softcon``, whose model card states the licence CC-BY-4.0 for the weights; code
github.com/zhu-xlab/softcon, Apache-2.0; see ``OFFICIAL``):

- ``B13_rn50_softcon.pth`` / ``B2_rn50_softcon.pth`` (format ``softcon-rn50``): the state dict of a torchvision
  ``resnet50`` whose ``conv1`` takes 13 (Sentinel-2 L1C) or 2 (Sentinel-1 GRD VV, VH) bands and whose ``fc`` is
  ``Identity`` (the official README loads it with ``model.load_state_dict(torch.load(...))`` into exactly that
  model; torchgeo's ``ResNet50_Weights.SENTINEL*_SOFTCON`` into timm's ``resnet50``, the same key names). Keys are
  bare torchvision names (``conv1.weight``, ``layer4.2.bn3.running_var``); a DDP / training-wrapper prefix
  (``module.``, ``backbone.``, ``encoder.``, ``teacher.backbone.``...) and a ``fc.*`` head are tolerated.
  ``SoftConResNet`` is timm's ResNet, which for ``block="bottleneck", layers=[3,4,6,3], stem_width=64`` is
  torchvision's ResNet-50 (v1.5, stride on the 3x3 conv) with the same parameter names.
- ``B13_vits14_softcon.pth``, ``B13_vitb14_softcon.pth``, ``B2_vits14_softcon.pth``, ``B2_vitb14_softcon.pth``
  (format ``softcon-vit``): the state dict of the DINOv2 ``DinoVisionTransformer`` of the official repository
  (``models/dinov2/vision_transformer.py``: ``vit_small``/``vit_base``, ``img_size=224, patch_size=14,
  block_chunks=0, init_values=1e-5, num_register_tokens=0``): ``cls_token``, ``pos_embed`` (1 + 16x16 tokens),
  ``mask_token``, ``patch_embed.proj``, ``blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2,
  ls2.gamma}``, ``norm``; the feature is ``norm(x)[:, 0]`` (``x_norm_clstoken``). torchgeo's
  ``ViTSmall14_DINOv2_Weights`` / ``ViTBase14_DINOv2_Weights`` point at the ``*_softcon_enc.pth`` variants of the
  same repository (a pinned revision) and load them into timm's ``vit_*_patch14_dinov2`` (no ``mask_token``; a
  missing final ``norm`` stays at its identity initialisation there, and here). Chunked blocks
  (``blocks.<chunk>.<i>.``) are unchunked; register tokens and SwiGLU blocks are refused (not in these releases).

Every file is read with ``fmzoo.core.weights.safe_torch_load`` (``weights_only=True``, nothing on the allow-list):
tensors and plain containers only. The converted model's ``input_spec`` is the preprocessing torchgeo states for
these releases (``_ssl4eo_s12_transforms_s2_stats`` / ``_ssl4eo_s12_transforms_s1``): band order B01..B12 with B8A
after B08 (13 bands) or VV, VH; per-band mean/std of SSL4EO-S12 on L1C digital numbers (S2) or dB backscatter
(S1); 224 px. torchgeo resizes to 256 and centre-crops 224; fmzoo's preprocessor resizes straight to 224 (declared
``size_policy: resize``), so for images that are not square at 224 the two inputs differ by that crop.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from fmzoo.core import CheckpointError
from fmzoo.core.weights import OfficialWeights, WeightFormat, pickle_head, safe_torch_load

from .models.backbones import SoftConResNet, SoftConViT
from .spec import S1_GRD_ORDER, S2_L1C_ORDER, add_product, canonical_bands, make_input_spec

SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
WRAPPERS = ("state_dict", "model", "teacher", "student", "net")
RELEASE_SIZE = 224  # every SoftCon release: pretrained and evaluated at 224 px
HF_REPO = "wangyi111/softcon"
SOURCE = "https://github.com/zhu-xlab/softcon"

# SSL4EO-S12 statistics as torchgeo 0.8 states them for the SoftCon weights (torchgeo/models/resnet.py:
# _mean_s2/_std_s2 on Sentinel-2 L1C digital numbers, _mean_s1/_std_s1 on Sentinel-1 GRD backscatter in dB).
S2_MEAN = [1612.9, 1397.6, 1322.3, 1373.1, 1561.0, 2108.4, 2390.7, 2318.7, 2581.0, 837.7, 22.0, 2195.2, 1537.4]
S2_STD = [791.0, 854.3, 878.7, 1144.9, 1127.5, 1164.2, 1276.0, 1249.5, 1345.9, 577.5, 47.5, 1340.0, 1142.9]
S1_MEAN = [-12.59, -20.26]
S1_STD = [5.26, 5.91]


def softcon_input_spec(bands, input_size: int = RELEASE_SIZE, mean=None, std=None) -> dict:
    """The release's preprocessing: Sentinel-2 L1C (13 bands) as reflectance (default) or digital numbers, both
    standardized with the SSL4EO-S12 DN statistics; or Sentinel-1 GRD VV/VH in dB."""
    bands = canonical_bands(bands)
    spec = make_input_spec(bands, input_size)
    if bands == S2_L1C_ORDER:
        mean, std = list(mean or S2_MEAN), list(std or S2_STD)
        note = ("SSL4EO-S12 per-band statistics on L1C digital numbers, as torchgeo states them for SoftCon "
                "(Resize 256 + CenterCrop 224 there; resized to 224 here)")
        spec = add_product(spec, "s2_l1c_reflectance", bands, mean, std, (0.0, 6.5535), scale=1e4, default=True,
                           radiometry="reflectance", description=f"Sentinel-2 L1C top-of-atmosphere reflectance (DN / 10000), x 10000 then: {note}")
        spec = add_product(spec, "s2_l1c_dn", bands, mean, std, (0.0, 65535.0), scale=1.0, radiometry="dn",
                           description=f"Sentinel-2 L1C digital numbers (uint16): {note}")
    elif bands == S1_GRD_ORDER:
        mean, std = list(mean or S1_MEAN), list(std or S1_STD)
        spec = add_product(spec, "s1_grd_db", bands, mean, std, (-100.0, 100.0), scale=1.0, default=True, radiometry="db",
                           description="Sentinel-1 GRD backscatter in dB (VV, VH): SSL4EO-S12 statistics as torchgeo "
                                       "states them for SoftCon (not linear power)")
    elif mean is not None and std is not None:
        spec = add_product(spec, "custom", bands, mean, std, (-1e9, 1e9), default=True, radiometry="other",
                           description="statistics given at conversion")
    else:
        raise CheckpointError(f"no SoftCon statistics for bands {bands}: give mean= and std= to the converter")
    return spec


def _release_meta(path) -> dict:
    """timm ``pretrained_cfg`` fields of a SoftCon release (``models.backbones.timm_pretrained_cfg``)."""
    name = Path(path).name if not Path(path).is_dir() else None
    return {"license": "cc-by-4.0", "hf_hub_id": HF_REPO, "hf_hub_filename": name, "origin_url": SOURCE,
            "paper_ids": "arXiv:2405.20462", "paper_name": "Multi-label Guided Soft Contrastive Learning for "
                                                          "Efficient Earth Observation Pretraining"}


# ------------------------------------------------------------------------------------------- reading


def _unwrap(obj) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"expected a state dict (names -> tensors), got {type(obj).__name__}")
    for key in WRAPPERS:
        if isinstance(obj.get(key), dict) and any(torch.is_tensor(v) for v in obj[key].values()):
            return _unwrap(obj[key])
    sd = {k: v for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v)}
    if not sd:
        raise CheckpointError(f"no tensors in the checkpoint (top-level keys: {sorted(map(str, obj))[:8]})")
    return sd


def _strip(sd: dict, anchor: str, what: str) -> dict[str, torch.Tensor]:
    """The keys under the prefix that holds ``anchor`` (``''``, ``module.``, ``backbone.``, ``teacher.backbone.``...),
    without it; a teacher is preferred when a file holds teacher and student."""
    prefixes = sorted({k[: -len(anchor)] for k in sd if k.endswith(anchor)}, key=len)
    if not prefixes:
        raise CheckpointError(f"not a {what}: no '{anchor}' among its tensors (first keys: {list(sd)[:5]})")
    if len(prefixes) > 1:
        teacher = [p for p in prefixes if "teacher" in p]
        if len(teacher) != 1:
            raise CheckpointError(f"several {what} networks in one file (prefixes {prefixes}); extract one")
        prefixes = teacher
    p = prefixes[0]
    return {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
        if len(found) != 1:
            raise CheckpointError(f"{str(path)!r}: expected one .pth file of a SoftCon release, found {len(found)}")
        path = found[0]
    return _unwrap(safe_torch_load(path))


def _bands_for(n: int, bands) -> list[str]:
    if bands is not None:
        bands = canonical_bands(bands)
        if len(bands) != n:
            raise CheckpointError(f"bands= names {len(bands)} bands but the release's input layer takes {n}")
        return bands
    if n == len(S2_L1C_ORDER):
        return list(S2_L1C_ORDER)
    if n == len(S1_GRD_ORDER):
        return list(S1_GRD_ORDER)
    raise CheckpointError(f"the release's input layer takes {n} bands (SoftCon: 13 Sentinel-2 or 2 Sentinel-1); "
                          "pass bands=[...] naming them")


def _load_strict(model, state: dict, what: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
             if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{what}: missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatch {wrong[:5]}")
    full = {k: state.get(k, own[k]) for k in own}
    model.load_state_dict(full, strict=True)


# ------------------------------------------------------------------------------------------- RN50


def from_softcon_resnet(path, bands=None, mean=None, std=None, input_size: int = RELEASE_SIZE) -> SoftConResNet:
    """A SoftCon ResNet release (torchvision key names) -> ``SoftConResNet`` with the release's input spec."""
    sd = _strip(read_state_dict(path), "layer1.0.conv1.weight", "torchvision ResNet")
    dropped = [k for k in sd if k.startswith("fc.")]
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    if "conv1.weight" not in sd or sd["conv1.weight"].ndim != 4:
        raise CheckpointError("not a torchvision ResNet: no 4-D conv1.weight")
    layers = []
    for i in range(1, 5):
        idx = {int(m.group(1)) for k in sd if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        if not idx:
            raise CheckpointError(f"not a torchvision ResNet: no layer{i}")
        layers.append(max(idx) + 1)
    block = "bottleneck" if "layer1.0.conv3.weight" in sd else "basic"
    stem = int(sd["conv1.weight"].shape[0])
    width = int(sd["layer1.0.conv1.weight"].shape[0])
    channels = [width * 2 ** i for i in range(4)]
    bands = _bands_for(int(sd["conv1.weight"].shape[1]), bands)
    model = SoftConResNet(bands=bands, block=block, layers=layers, channels=channels, stem_width=stem,
                          input_size=input_size)
    _load_strict(model, {f"backbone.{k}": v for k, v in sd.items()}, "SoftCon ResNet release")
    if dropped:
        warnings.warn(f"dropped the release's classifier {dropped} (SoftCon's backbone has fc = Identity)", stacklevel=2)
    model._timm_meta = _release_meta(path)
    model.input_spec = softcon_input_spec(bands, input_size, mean, std)
    return model.eval()


# ------------------------------------------------------------------------------------------- ViT (DINOv2 layout)

_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+)\.")


def from_softcon_vit(path, bands=None, mean=None, std=None) -> SoftConViT:
    """A SoftCon ViT release (DINOv2 ``DinoVisionTransformer`` key names, register-free) -> ``SoftConViT`` with
    LayerScale and the mask token, and the release's input spec."""
    sd = _strip(read_state_dict(path), "patch_embed.proj.weight", "DINOv2 ViT")
    sd = {(_CHUNKED.sub(r"blocks.\1.", k) if _CHUNKED.match(k) else k): v for k, v in sd.items()}
    sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    if "register_tokens" in sd:
        raise CheckpointError("this DINOv2 ViT has register tokens; the SoftCon releases are register-free and "
                              "SoftConViT has none")
    if any(".mlp.w12." in k for k in sd):
        raise CheckpointError("this DINOv2 ViT uses SwiGLU blocks; the SoftCon ViT-S/14 and ViT-B/14 use an MLP")
    for k in ("cls_token", "pos_embed", "blocks.0.attn.qkv.weight"):
        if k not in sd:
            raise CheckpointError(f"not a DINOv2 ViT: no {k!r} (first keys: {list(sd)[:5]})")
    proj = sd["patch_embed.proj.weight"]
    dim, in_chans, patch = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[-1])
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    grid = (sd["pos_embed"].shape[1] - 1) ** 0.5
    if grid != int(grid):
        raise CheckpointError(f"pos_embed of {sd['pos_embed'].shape[1]} tokens is not 1 + a square grid")
    if sd["blocks.0.mlp.fc1.weight"].shape[0] != 4 * dim:
        raise CheckpointError(f"MLP ratio {sd['blocks.0.mlp.fc1.weight'].shape[0] / dim:g}; SoftConViT has 4")
    layerscale = "blocks.0.ls1.gamma" in sd
    if not layerscale and any(".ls1." in k or ".ls2." in k for k in sd):
        raise CheckpointError("LayerScale found in some blocks only")
    has_mask = "mask_token" in sd
    model = SoftConViT(bands=_bands_for(in_chans, bands), patch_size=patch, embed_dim=dim, depth=depth,
                       num_heads=dim // 64, input_size=int(grid) * patch,
                       init_values=1e-5 if layerscale else None, mask_token=has_mask)
    state = {("mask_token" if k == "mask_token" else f"backbone.{k}"): v for k, v in sd.items()}
    if "norm.weight" not in sd:  # torchgeo's timm model keeps its identity-initialised final norm then
        warnings.warn("the release has no final norm: kept at LayerNorm's identity initialisation, as torchgeo's "
                      "loader leaves it", stacklevel=2)
        state["backbone.norm.weight"] = torch.ones(dim)
        state["backbone.norm.bias"] = torch.zeros(dim)
    _load_strict(model, state, "SoftCon DINOv2 ViT release")
    model._timm_meta = _release_meta(path)
    model.input_spec = softcon_input_spec(model.bands, int(grid) * patch, mean, std)
    return model.eval()


# ------------------------------------------------------------------------------------------- formats


class SoftConRN50(WeightFormat):
    name = "softcon-rn50"
    input = "S2 L1C 13 bands (reflectance or DN) or S1 GRD VV/VH (dB), SSL4EO-S12 band mean/std, 224 px"
    architecture = "SoftConResNet"
    description = ("a SoftCon ResNet-50 .pth (B13_rn50_softcon.pth / B2_rn50_softcon.pth): torchvision resnet50 key "
                   "names, 13 or 2 input bands, no fc")

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_file() or path.suffix not in SUFFIXES:
            return False
        head = pickle_head(path)
        return (b"layer4.2.conv3.weight" in head and b"conv1.weight" in head and b"swinViT" not in head
                and b"encoder10" not in head)

    def convert(self, path: Path, **options) -> SoftConResNet:
        return from_softcon_resnet(path, **options)


class SoftConViTRelease(WeightFormat):
    name = "softcon-vit"
    input = "S2 L1C 13 bands (reflectance or DN) or S1 GRD VV/VH (dB), SSL4EO-S12 band mean/std, 224 px, patch 14"
    architecture = "SoftConViT"
    description = ("a SoftCon ViT-S/14 or ViT-B/14 .pth (B13_vits14_softcon.pth, ..._enc.pth): DINOv2 key names "
                   "(LayerScale ls1/ls2, mask_token, patch 14, no registers)")

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_file() or path.suffix not in SUFFIXES:
            return False
        head = pickle_head(path)
        return b"patch_embed.proj.weight" in head and b"cls_token" in head and b"ls1.gamma" in head

    def convert(self, path: Path, **options) -> SoftConViT:
        return from_softcon_vit(path, **options)


# ------------------------------------------------------------------------------------------- catalogue

_CITE = ("Wang, Albrecht & Zhu, Multi-label Guided Soft Contrastive Learning for Efficient Earth Observation "
         "Pretraining, arXiv:2405.20462 (2024)")
_SPEC_NOTE = {
    "s2": "Input: 13 Sentinel-2 L1C bands B01..B08, B8A, B09..B12 at 224 px, standardized with the SSL4EO-S12 "
          "statistics on digital numbers torchgeo states for this release.",
    "s1": "Input: Sentinel-1 GRD VV, VH in dB at 224 px, standardized with the SSL4EO-S12 statistics torchgeo "
          "states for this release.",
}
_ROWS = [  # (id suffix, file, format, params, README's reported transfer)
    ("rn50-s2", "B13_rn50_softcon.pth", "softcon-rn50", "23.5M", "s2", "RN50 MS: BigEarthNet-10% 84.8, EuroSAT 98.6"),
    ("vits14-s2", "B13_vits14_softcon.pth", "softcon-vit", "22.4M", "s2", "ViT-S/14 MS: BigEarthNet-10% 85.0, "
                                                                          "EuroSAT 97.1"),
    ("vitb14-s2", "B13_vitb14_softcon.pth", "softcon-vit", "87.2M", "s2", "ViT-B/14 MS: BigEarthNet-10% 86.8, "
                                                                          "EuroSAT 98.0 (4-layer linear head)"),
    ("rn50-s1", "B2_rn50_softcon.pth", "softcon-rn50", "23.5M", "s1", "RN50 SAR: BigEarthNet-10% 78.9, EuroSAT 87.1"),
    ("vits14-s1", "B2_vits14_softcon.pth", "softcon-vit", "21.6M", "s1", "ViT-S/14 SAR: BigEarthNet-10% 80.3, "
                                                                         "EuroSAT 87.1"),
    ("vitb14-s1", "B2_vitb14_softcon.pth", "softcon-vit", "85.6M", "s1", "ViT-B/14 SAR: BigEarthNet-10% 82.5, "
                                                                         "EuroSAT 89.1 (4-layer linear head)"),
]
OFFICIAL: list[OfficialWeights] = [
    OfficialWeights(id=f"wangyi111/softcon-{sfx}", method="SoftCon", format=fmt,
                    source=f"{SOURCE} (README 'Pretrained models': https://huggingface.co/{HF_REPO}/resolve/main/{f})",
                    license="cc-by-4.0", params=params, hf_repo=HF_REPO, files=(f,), citation=_CITE,
                    notes=f"{_SPEC_NOTE[mod]} Reported in the README: {reported}. Weights CC-BY-4.0 (the Hugging "
                          f"Face model card); the code of zhu-xlab/softcon is Apache-2.0.")
    for sfx, f, fmt, params, mod, reported in _ROWS
]


# ------------------------------------------------------------------------------------------- torchgeo

_HF_URL = re.compile(r"^https://(?:huggingface\.co|hf\.co)/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def _torchgeo_stats(transforms) -> tuple[list[float], list[float], int | None]:
    """mean, std (of the last Normalize) and the crop size of a torchgeo weights' transforms."""
    import torchvision.transforms.v2 as T

    mean = std = size = None
    for m in getattr(transforms, "children", lambda: [])():
        if isinstance(m, T.Normalize):
            mean, std = list(map(float, m.mean)), list(map(float, m.std))
        if isinstance(m, T.CenterCrop):
            size = int(m.size[0])
    if mean is None:
        raise CheckpointError("the torchgeo weights' transforms hold no Normalize: no statistics to carry")
    return mean, std, size


def official_from_torchgeo(weights) -> OfficialWeights:
    """The catalogue entry of a torchgeo ``WeightsEnum`` member of the SoftCon releases
    (``ResNet50_Weights.SENTINEL2_ALL_SOFTCON``, ``ViTSmall14_DINOv2_Weights.SENTINEL1_GRD_SOFTCON``, ...): the file
    and pinned revision of the enum's URL, our format for its model, and the enum's bands and normalisation as
    converter options (so the converted model standardizes exactly as torchgeo's transforms)."""
    url, meta = getattr(weights, "url", ""), dict(getattr(weights, "meta", {}) or {})
    m = _HF_URL.match(url or "")
    if m is None or m.group(1) != HF_REPO or meta.get("ssl_method") != "softcon":
        raise CheckpointError(f"{weights!r} is not a SoftCon release on {HF_REPO} (url {url!r}); fmzoo converts "
                              f"those (formats softcon-rn50, softcon-vit)")
    repo, revision, filename = m.groups()
    model = meta.get("model", "")
    if model == "resnet50":
        fmt = "softcon-rn50"
    elif re.fullmatch(r"vit_(small|base)_patch14_dinov2", model):
        fmt = "softcon-vit"
    else:
        raise CheckpointError(f"{weights!r}: model {model!r} is not a SoftCon architecture")
    bands = canonical_bands(meta["bands"])
    mean, std, size = _torchgeo_stats(weights.transforms)
    if len(mean) != len(bands):
        raise CheckpointError(f"{weights!r}: {len(bands)} bands but {len(mean)} normalisation statistics")
    modality = "s2" if bands == S2_L1C_ORDER else "s1"
    arch = {"resnet50": "rn50", "vit_small_patch14_dinov2": "vits14", "vit_base_patch14_dinov2": "vitb14"}[model]
    base = next(e for e in OFFICIAL if e.id == f"wangyi111/softcon-{arch}-{modality}" and e.format == fmt)
    return replace(base, source=url, files=(filename,), revision=revision, hf_repo=repo,
                   options={"bands": bands, "mean": mean, "std": std},
                   notes=f"{base.notes} Via torchgeo {type(weights).__name__}.{weights.name} "
                         f"(crop {size or RELEASE_SIZE} px).")


def from_torchgeo(weights, path=None):
    """The fmzoo model of a torchgeo SoftCon ``WeightsEnum`` member: from ``path`` (the enum's file, downloaded by
    torchgeo or by hand) or else from the Hugging Face Hub / its cache (offline with ``HF_HUB_OFFLINE=1``)."""
    from fmzoo.core import from_pretrained
    from fmzoo.core.weights import import_weights, resolve_official

    entry = official_from_torchgeo(weights)
    target = import_weights(path, entry.format, entry=entry) if path is not None else resolve_official(entry)
    return from_pretrained(target)
