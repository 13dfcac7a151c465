"""Released VoCo checkpoints -> fmzoo's ``VoCo`` (MONAI SwinUNETR's encoder path + VoCo's projection head).

Releases (verified against the official repositories' README and code, see ``OFFICIAL``):

- TPAMI / Large-Scale-Medical (github.com/Luffy03/Large-Scale-Medical, Hugging Face ``Luffy503/VoCo``, Apache-2.0):
  ``VoCo_B_SSL_head.pt`` / ``VoCo_L_SSL_head.pt`` / ``VoCo_H_SSL_head.pt`` (feature size 48 / 96 / 192), written by
  ``Self-supervised/voco_train.py`` from ``models/voco_head.py:VoCoHead``: ``backbone.`` (``Swin``: MONAI's
  ``SwinTransformer`` as ``swinViT`` with ``use_v2=True``, window 7, patch 2, depths 2-2-2-2, heads 3-6-12-24, and
  SwinUNETR's ``encoder1``-``encoder4``, ``encoder10``), ``student.`` / ``teacher.`` (projection heads
  24F -> 1024 -> 1024 -> 1024), possibly under ``state_dict`` and a DDP ``module.`` prefix;
- CVPR 2024 (github.com/Luffy03/VoCo): ``VoCo_10k.pt`` (Dropbox), loaded by its ``Finetune/BTCV/main.py`` as a
  plain SwinUNETR-named state dict after removing ``module.`` and renaming ``swin_vit`` -> ``swinViT``; its
  pretraining ``VoCoHead`` holds two whole ``Swin`` networks ``student.`` / ``teacher.`` (each with a ``proj_head``
  24F -> 2048 -> 2048 -> 2048).

The key handling follows the official loaders (``Downstream/monai/*/models/models.py:load`` of Large-Scale-Medical:
wrappers ``state_dict`` / ``network_weights`` / ``net`` / ``student``, prefixes ``module.`` and ``backbone.``,
``swin_vit`` -> ``swinViT``); where they keep "whatever matches by name and shape" silently, here every encoder weight
must be in the file with the right shape (else a ``CheckpointError``) and what is left out is reported.

A ``.pt`` is read with ``fmzoo.core.weights.safe_torch_load`` (``torch.load(weights_only=True)``, nothing on the
allow-list): tensors, numbers, strings and plain containers only, so a file that also pickles e.g. an optimiser
object (as the CVPR pretraining's own checkpoints do) is refused, never run. The converted model carries VoCo's
preprocessing as its ``input_spec`` (``spec.CT_SPEC_VOCO_PAPER``: RAS, 1.5 mm, HU window [-175, 250] -> [0, 1]
clipped, ROI 96^3, one channel; the downstream ``main.py`` defaults of both repositories).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from fmzoo.core import CheckpointError
from fmzoo.core.weights import OfficialWeights, WeightFormat, safe_torch_load

from .models.swin import ENCODER_PREFIXES, build_swinunetr

WRAPPERS = ("state_dict", "network_weights", "net", "student")
SUFFIXES = (".pt", ".pth", ".ckpt", ".tar", ".bin", ".safetensors")


def unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"expected a state dict (mapping of names to tensors), got {type(obj).__name__}")
    for key in WRAPPERS:
        if key in obj and isinstance(obj[key], dict):
            return unwrap_state_dict(obj[key])
    sd = {k: v for k, v in obj.items() if torch.is_tensor(v)}
    if not sd:
        raise CheckpointError(f"no tensors in the checkpoint (top-level keys: {sorted(obj)[:8]})")
    return sd


def strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SwinUNETR-named keys (``swinViT.*``, ``encoder*``, ...; VoCo's projection head as ``proj_head.*``).

    ``module.`` (DDP) and ``backbone.`` are removed and ``swin_vit`` is renamed, as the official loaders do. A raw
    pretraining ``VoCoHead`` keeps its student: in the CVPR code the student is a whole network
    (``student.swinViT.*``, ``student.proj_head.*``); in the TPAMI code it is the projection head on the shared
    ``backbone.`` (``student.layer1.*`` -> ``proj_head.layer1.*``). The EMA teacher is dropped."""
    sd = {k.replace("module.", ""): v for k, v in sd.items()}
    students = [k[len("student."):] for k in sd if k.startswith("student.")]
    whole_student = any(k.startswith(("swinViT.", "swin_vit.", "backbone.")) for k in students)
    out = {}
    for k, v in sd.items():
        if k.startswith("teacher."):
            continue
        if k.startswith("student."):
            k = k[len("student."):] if whole_student else "proj_head." + k[len("student."):]
        elif whole_student:
            continue  # a CVPR VoCoHead: only the student network
        out[k.replace("backbone.", "").replace("swin_vit", "swinViT")] = v
    return out


def read_release(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a released file: a pickled ``.pt`` through ``safe_torch_load`` (nothing but tensors and plain
    containers is unpickled), or a ``.safetensors`` file; wrappers removed, not yet the prefixes."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {exc}") from None
    try:
        obj = safe_torch_load(path)
    except CheckpointError:
        raise
    except Exception as exc:  # e.g. struct.error from a truncated legacy (non-zip) file
        raise CheckpointError(f"{str(path)!r} is not a readable torch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return unwrap_state_dict(obj)


def load_safetensors_state_dict(path: str | Path) -> dict[str, torch.Tensor]:  # kept for callers of 0.x
    return read_release(path)


def import_voco_state_dict(obj, out_channels: int = 14, in_channels: int = 1, feature_size: int = 48,
                           window_size: int = 7, use_v2: bool = True, min_swin_coverage: float = 0.99):
    """(MONAI SwinUNETR with the released weights, report). Defaults = VoCo-B (feature_size 48, window 7)."""
    sd = strip_prefixes(unwrap_state_dict(obj))
    net = build_swinunetr(in_channels, out_channels, feature_size, window_size, use_v2=use_v2)
    own = net.state_dict()
    taken, skipped = {}, {}
    for k, v in sd.items():
        if k in own and tuple(v.shape) == tuple(own[k].shape):
            taken[k] = v.to(own[k].dtype)
        else:
            skipped[k] = "not in SwinUNETR" if k not in own else f"shape {tuple(v.shape)} != {tuple(own[k].shape)}"
    swin_keys = [k for k in own if k.startswith("swinViT.")]
    got_swin = [k for k in swin_keys if k in taken]
    if len(got_swin) < min_swin_coverage * len(swin_keys):
        sample = sorted(sd)[:5]
        bad = sorted(k for k, why in skipped.items() if k.startswith("swinViT."))[:3]
        raise CheckpointError(
            f"only {len(got_swin)} of {len(swin_keys)} Swin-ViT weights of MONAI SwinUNETR(feature_size="
            f"{feature_size}, window_size={window_size}, use_v2={use_v2}) are in the checkpoint with the right shape: "
            "wrong file, or wrong feature_size (48 = B, 96 = L, 192 = H). "
            f"Mismatches: {[(k, skipped[k]) for k in bad]}; first keys after prefix stripping: {sample}"
        )
    net.load_state_dict({**own, **taken}, strict=True)
    enc_keys = [k for k in own if k.startswith(ENCODER_PREFIXES)]
    report = {
        "loaded": sorted(taken),
        "skipped": skipped,
        "encoder_coverage": sum(k in taken for k in enc_keys) / len(enc_keys),
        "swin_coverage": len(got_swin) / len(swin_keys),
        "not_in_checkpoint": sorted(k for k in own if k not in taken),
    }
    return net, report


def import_voco_file(path: str | Path, **kwargs):
    """A released file (``.pt`` read safely, or ``.safetensors``) -> (MONAI SwinUNETR, report)."""
    return import_voco_state_dict(read_release(path), **kwargs)


def architecture_of(sd: dict[str, torch.Tensor]) -> dict:
    """VoCo/SwinUNETR hyper-parameters read from the (prefix-stripped) tensors themselves."""
    if "swinViT.patch_embed.proj.weight" not in sd:
        raise CheckpointError("no Swin-ViT patch embedding (swinViT.patch_embed.proj.weight) in the file: not a VoCo / "
                              f"SwinUNETR checkpoint (first keys after prefix stripping: {sorted(sd)[:5]})")
    w = sd["swinViT.patch_embed.proj.weight"]
    table = sd.get("swinViT.layers1.0.blocks.0.attn.relative_position_bias_table")
    window = 7 if table is None else round((round(table.shape[0] ** (1 / 3)) + 1) / 2)
    if table is not None and (2 * window - 1) ** 3 != table.shape[0]:
        raise CheckpointError(f"relative position table of {table.shape[0]} rows is not a cubic window")
    arch = {"in_channels": int(w.shape[1]), "feature_size": int(w.shape[0]), "window_size": int(window),
            "use_v2": any(k.startswith("swinViT.layers1c.") for k in sd)}
    if "proj_head.layer1.0.weight" in sd and "proj_head.layer3.0.weight" in sd:
        arch["proj_hidden"] = int(sd["proj_head.layer1.0.weight"].shape[0])
        arch["proj_out"] = int(sd["proj_head.layer3.0.weight"].shape[0])
    return arch


def voco_from_state_dict(obj, feature_size: int | None = None, input_spec: dict | None = None,
                         proj_hidden: int = 2048, proj_out: int = 2048):
    """(fmzoo ``VoCo`` holding a release's encoder, and its projection head where the file has one; report).

    Every weight of the encoder path (``swinViT``, ``encoder1``-``4``, ``encoder10``) must be in the file with its
    shape; ``feature_size`` (48 = B, 96 = L, 192 = H), when given, must be the file's. Decoder and output layers of a
    fine-tuned SwinUNETR, and an EMA teacher, are not part of ``VoCo`` and are listed in the report."""
    from .models.swin import VoCo
    from .spec import CT_SPEC_VOCO_PAPER

    sd = strip_prefixes(unwrap_state_dict(obj))
    arch = architecture_of(sd)
    if feature_size is not None and arch["feature_size"] != int(feature_size):
        raise CheckpointError(f"the file holds a feature_size {arch['feature_size']} network, expected {feature_size} "
                              "(48 = VoCo-B, 96 = VoCo-L, 192 = VoCo-H): wrong file for this id")
    has_head = "proj_hidden" in arch
    arch.setdefault("proj_hidden", proj_hidden)
    arch.setdefault("proj_out", proj_out)
    model = VoCo(**arch, input_spec=dict(input_spec or CT_SPEC_VOCO_PAPER))
    own = model.state_dict()
    wanted = [k for k in own if k.startswith(ENCODER_PREFIXES) or (has_head and k.startswith("proj_head."))]
    absent = [k for k in wanted if k not in sd and not k.endswith("relative_position_index")]
    shape = [k for k in wanted if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if absent or shape:
        detail = ([f"{len(absent)} encoder weights absent (e.g. {absent[0]})"] if absent else []) + (
            [f"{len(shape)} with another shape (e.g. {shape[0]}: {tuple(sd[shape[0]].shape)} vs "
             f"{tuple(own[shape[0]].shape)})"] if shape else [])
        raise CheckpointError(f"not a complete VoCo encoder ({arch}): " + "; ".join(detail))
    merged = {k: (sd[k].to(own[k].dtype) if k in sd and k in wanted else v) for k, v in own.items()}
    model.load_state_dict(merged, strict=True)
    report = {"architecture": arch, "projection_head": "from the file" if has_head else "not in the file (random)",
              "loaded": len([k for k in wanted if k in sd]),
              "left_out": sorted(k for k in sd if k not in wanted)}
    model.import_report = report
    return model, report


def to_fmzoo_voco(obj, feature_size: int = 48, window_size: int = 7, proj_hidden: int = 2048, proj_out: int = 2048,
                  input_spec: dict | None = None):
    """A fmzoo ``VoCo`` (publishable with save_pretrained) carrying a released checkpoint's encoder."""
    from .models.swin import VoCo
    from .spec import CT_SPEC_VOCO_PAPER

    net, report = import_voco_state_dict(obj, out_channels=2, feature_size=feature_size, window_size=window_size)
    model = VoCo(feature_size=feature_size, window_size=window_size, proj_hidden=proj_hidden, proj_out=proj_out,
                 input_spec=input_spec or CT_SPEC_VOCO_PAPER)
    enc = {k: v for k, v in net.state_dict().items() if k.startswith(ENCODER_PREFIXES)}
    missing, unexpected = model.load_state_dict(enc, strict=False)
    assert not unexpected, unexpected
    return model, report


# ------------------------------------------------------------------------------------------- the format


def _pickled_names(path: Path, limit: int = 64 << 20) -> bytes:
    """The pickle stream of a torch zip file (tensor names, no tensor data), read without unpickling; else the
    first bytes of a legacy file."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("data.pkl")]
            if names:
                with z.open(names[0]) as f:
                    return f.read(limit)
    except (zipfile.BadZipFile, OSError):
        pass
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return b""


class VoCoRelease(WeightFormat):
    name = "voco"
    architecture = "VoCo"
    description = ("a released VoCo file (VoCo_B/L/H_SSL_head.pt of Luffy503/VoCo, the CVPR VoCo_10k.pt, or the same "
                   "dict as .safetensors): MONAI SwinUNETR(use_v2) encoder weights (swinViT/swin_vit, encoder1-4, "
                   "encoder10), optionally under state_dict/net/student and module./backbone. prefixes")
    pickle_allow = ()

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_file() or path.suffix not in SUFFIXES:
            return False
        if path.suffix == ".safetensors":
            from fmzoo.core.weights import state_dict_keys

            try:
                keys = state_dict_keys(path)
            except Exception:
                return False
            return any("encoder10." in k for k in keys) and any(("swinViT." in k or "swin_vit." in k) for k in keys)
        names = _pickled_names(path)
        return b"encoder10." in names and (b"swinViT." in names or b"swin_vit." in names)

    def convert(self, path: Path, feature_size: int | None = None, **options):
        model, _ = voco_from_state_dict(read_release(path), feature_size=feature_size, **options)
        return model


_PARAMS = {48: "53M", 96: "206M", 192: "818M"}
_OURS = {48: "56.4M", 96: "216.5M", 192: "854.1M"}
_LSM = "https://github.com/Luffy03/Large-Scale-Medical"
_CITE_TPAMI = ("Wu, Zhuang, Chen. Large-Scale 3D Medical Image Pre-training with Geometric Context Priors. "
               "IEEE TPAMI 2025 (arXiv:2410.09890)")
_CITE_CVPR = ("Wu, Zhuang, Chen. VoCo: A Simple-yet-Effective Volume Contrastive Learning Framework for 3D Medical "
              "Image Analysis. CVPR 2024")
_NOTE = ("Self-supervised VoCo pretraining on PreCT-160K; MONAI SwinUNETR(use_v2) encoder, feature size {fs}. "
         "Input: CT, RAS, 1.5 mm, HU window [-175, 250] -> [0, 1], ROI 96^3. The params figure is the release README's; "
         "fmzoo's VoCo built from the file (encoder path + one 1024-wide projection head) counts {ours}.")

OFFICIAL = [
    *(OfficialWeights(
        id=f"Luffy503/VoCo-{size}", method="VoCo", format="voco", source=f"{_LSM}#pre-trained-models",
        license="apache-2.0", params=_PARAMS[fs], hf_repo="Luffy503/VoCo", files=(f"VoCo_{size}_SSL_head.pt",),
        options={"feature_size": fs}, citation=_CITE_TPAMI, notes=_NOTE.format(fs=fs, ours=_OURS[fs]))
      for size, fs in (("B", 48), ("L", 96), ("H", 192))),
    OfficialWeights(
        id="Luffy03/VoCo-10k", method="VoCo", format="voco",
        source="https://github.com/Luffy03/VoCo (README: VoCo_10k.pt on Dropbox, "
               "https://www.dropbox.com/scl/fi/35ldfszlvw1ke4vr7xr5h/VoCo_10k.pt)",
        license="apache-2.0", params="64M", hf_repo=None, files=("VoCo_10k.pt",),
        options={"feature_size": 48}, citation=_CITE_CVPR,
        notes="The CVPR 2024 release, pretrained on 10k CT volumes (VoCo-10k); not on the Hugging Face Hub: download "
              "it from the Dropbox link and run `fmzoo import VoCo_10k.pt --id Luffy03/VoCo-10k`. Params: fmzoo's "
              "count of SwinUNETR-B's encoder path + the CVPR 2048-wide projection head (the README states none)."),
]
