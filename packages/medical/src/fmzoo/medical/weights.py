"""Released VoCo checkpoints -> fmzoo's ``VoCo`` (MONAI SwinUNETR's encoder path + VoCo's projection head); released
MIS-FM checkpoints (PCT-Net, FMUNet; PyMIC training files) -> fmzoo's ``PCTNet`` / ``FMUNet`` (see the MIS-FM section).

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
    input = "CT, RAS, 1.5 mm, HU [-175, 250] -> [0, 1] clipped, ROI 96^3"
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


# ------------------------------------------------------------------------------------------- MIS-FM (Volume Fusion)
#
# Released by github.com/openmedlab/MIS-FM (Apache-2.0) on Google Drive (not on the Hugging Face Hub):
# - 2023 (arXiv:2306.16925, README "Model (Google Drive)" file 1jQc-2hhsp3EyZj54_KEJte85diUtW8Fg): PCT-Net pretrained
#   with Volume Fusion on 110k CT volumes, loaded by the 2023 demo config as ``weights/pctnet_pretrain.pt``;
# - 2024-11 (README "List of Pretrained Models", Drive folder 13OQh2eM0QFnwBRwBcKCqhKa46CnDojrD):
#   ``pctnet_ct10k_volf.pt`` (PCT-Net, CT10k) and ``fmunet_abk1k_volf.pt`` (FMUNet, AbdomenCT-1K; the demo config
#   names it ``fmunet_abd1k_volf.pt``).
# All are PyMIC training checkpoints: ``torch.save({"iteration": int, "valid_pred": <numpy float32 scalar>,
# "model_state_dict": net.state_dict(), "optimizer_state_dict": Adam state})`` (pymic/net_run/agent_seg.py; the
# state dict of the bare network, ``module.`` removed under DataParallel), and the downstream loader
# (``load_pretrained_weights``) keeps every tensor of ``model_state_dict`` whose name and shape fit the network.
# Here every weight of the network must be in the file with its shape (else a CheckpointError): the hyper-parameters
# are read from the tensors (widths, classes, depths, heads, windows; FMUNet's res_mode from its kernel shapes);
# PCT-Net's ``resolution_mode`` and ``input_size`` are not in the file and default to the release's configs
# (1 and [64, 128, 128]); dropout rates are the configs' (they do not change inference).

def _misfm_allow() -> tuple:
    """What a PyMIC checkpoint holds besides tensors and plain containers: ``valid_pred``, a numpy float scalar
    (pickled as ``numpy.core.multiarray.scalar`` by numpy 1, ``numpy._core.multiarray.scalar`` by numpy 2, with its
    ``numpy.dtype``). Reconstructing a numeric scalar from a dtype and bytes runs no code."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    dtypes = tuple(type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64"))
    return ((scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype, *dtypes)


def read_pymic_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict without ``module.``, the checkpoint's other scalar entries) of a PyMIC ``.pt`` (read with
    ``torch.load(weights_only=True)`` and the numpy-scalar allow-list), or of a ``.safetensors`` state dict."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_release(path), {}
    try:
        obj = safe_torch_load(path, allow=_misfm_allow())
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{str(path)!r} is not a readable torch checkpoint ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{str(path)!r}: expected a PyMIC checkpoint dict, got {type(obj).__name__}")
    sd = obj.get("model_state_dict", obj)
    if not isinstance(sd, dict) or not any(torch.is_tensor(v) for v in sd.values()):
        raise CheckpointError(f"{str(path)!r}: no state dict under 'model_state_dict' (keys: {sorted(obj)[:8]})")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items() if torch.is_tensor(v)}
    meta = {k: (float(v) if k == "valid_pred" else v) for k, v in obj.items()
            if k in ("iteration", "valid_pred") and not torch.is_tensor(v)}
    return sd, meta


def _need(sd: dict, key: str, what: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointError(f"no {key!r} in the file: not a {what} state dict (first keys: {sorted(sd)[:5]})")
    return sd[key]


def pctnet_architecture(sd: dict[str, torch.Tensor]) -> dict:
    """PCT-Net hyper-parameters read from its tensors."""
    what = "MIS-FM PCT-Net"
    proj = _need(sd, "embeddings.0.proj.weight", what)
    ft = [int(proj.shape[0]), int(_need(sd, "embeddings.0.down1.conv.2.weight", what).shape[0]),
          int(_need(sd, "embeddings.0.down2.conv.2.weight", what).shape[0]),
          int(_need(sd, "pyramid_ct.down3.conv.2.weight", what).shape[0]),
          int(_need(sd, "pyramid_ct.down4.conv.2.weight", what).shape[0])]
    depths, heads, windows = [], [], []
    for level in ("e2", "e3", "e4"):
        prefix = f"pyramid_ct.convtrans_{level}.trans.blocks."
        depths.append(len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)}))
        table = _need(sd, f"{prefix}0.attn.relative_position_bias_table", what)
        w = round(table.shape[0] ** (1 / 3))
        if (w * w * w != table.shape[0]) or w % 2 == 0:
            raise CheckpointError(f"{prefix}0.attn.relative_position_bias_table has {table.shape[0]} rows, not "
                                  "(2w - 1)^3 of a cubic window")
        heads.append(int(table.shape[1]))
        windows.append((w + 1) // 2)
    return {"in_chns": int(proj.shape[1]), "class_num": int(_need(sd, "pred_heads.0.out_conv0.conv.2.weight", what).shape[0]),
            "feature_chns": ft, "depths": depths, "num_heads": heads, "window_sizes": windows}


def fmunet_architecture(sd: dict[str, torch.Tensor]) -> dict:
    """FMUNet hyper-parameters read from its tensors (res_mode from the in-plane 1x3x3 kernels of levels 0 / 1)."""
    what = "MIS-FM FMUNet"
    proj = _need(sd, "project.weight", what)
    ft = [int(proj.shape[0])] + [int(_need(sd, f"encoder.down{i}.down.2.weight", what).shape[0]) for i in range(4)]
    two_d = [tuple(proj.shape[2:]) == (1, 3, 3), tuple(_need(sd, "encoder.down1.down.2.weight", what).shape[2:]) == (1, 3, 3)]
    modes = {(False, False): 0, (True, False): 1, (True, True): 2}
    if tuple(two_d) not in modes:
        raise CheckpointError(f"FMUNet kernels {tuple(proj.shape[2:])} / level 1 in-plane {two_d[1]} fit no res_mode")
    prefix = "encoder.en_conv0.conv_list."
    depth = len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})
    return {"in_chns": int(proj.shape[1]), "class_num": int(_need(sd, "out_layers.0.2.weight", what).shape[0]),
            "feature_chns": ft, "depth": depth, "res_mode": modes[tuple(two_d)]}


def _load_exact(model: torch.nn.Module, sd: dict[str, torch.Tensor], arch: dict, name: str) -> dict:
    """Every tensor of the network from the file, with its shape; nothing left over. Returns a report."""
    own = model.state_dict()
    absent = [k for k in own if k not in sd and not k.endswith("relative_position_index")]
    extra = [k for k in sd if k not in own]
    shape = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if absent or extra or shape:
        detail = ([f"{len(absent)} weights absent (e.g. {absent[0]})"] if absent else []) + (
            [f"{len(extra)} tensors the network does not have (e.g. {extra[0]})"] if extra else []) + (
            [f"{len(shape)} with another shape (e.g. {shape[0]}: file {tuple(sd[shape[0]].shape)} vs network "
             f"{tuple(own[shape[0]].shape)})"] if shape else [])
        raise CheckpointError(f"the file does not fit {name}({arch}): " + "; ".join(detail))
    index_differs = [k for k in own if k.endswith("relative_position_index") and k in sd
                     and not torch.equal(sd[k].to(own[k].dtype), own[k])]
    model.load_state_dict({k: (sd[k].to(own[k].dtype) if k in sd else v) for k, v in own.items()}, strict=True)
    return {"architecture": arch, "loaded": sum(k in sd for k in own), "relative_position_index_from_file_differs":
            index_differs}


def pctnet_from_state_dict(sd: dict[str, torch.Tensor], resolution_mode: int = 1, input_size=(64, 128, 128),
                           input_spec: dict | None = None, dropout=(0.0, 0.0, 0.2, 0.2, 0.2)):
    """(fmzoo ``PCTNet`` holding the release's weights, report)."""
    from .models.pctnet import MISFM_CT_SPEC, PCTNet

    arch = pctnet_architecture(sd)
    spec = dict(input_spec or MISFM_CT_SPEC)
    spec["roi_size"] = [int(s) for s in reversed(list(input_size))]
    try:
        model = PCTNet(**arch, input_size=list(input_size), resolution_mode=int(resolution_mode), dropout=list(dropout),
                       input_spec=spec)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"cannot build PCT-Net {arch} at input_size {list(input_size)}: {exc}") from None
    report = _load_exact(model, sd, arch, "PCTNet")
    model.import_report = report
    return model, report


def fmunet_from_state_dict(sd: dict[str, torch.Tensor], input_spec: dict | None = None, dropout: float = 0.2):
    from .models.fmunet import FMUNet
    from .models.pctnet import MISFM_CT_SPEC

    arch = fmunet_architecture(sd)
    model = FMUNet(**arch, dropout=float(dropout), input_spec=dict(input_spec or MISFM_CT_SPEC))
    report = _load_exact(model, sd, arch, "FMUNet")
    model.import_report = report
    return model, report


def _has_keys(path: Path, needles: tuple[bytes, ...]) -> bool:
    if not path.is_file() or path.suffix not in SUFFIXES:
        return False
    if path.suffix == ".safetensors":
        from fmzoo.core.weights import state_dict_keys

        try:
            keys = "\n".join(state_dict_keys(path)).encode()
        except Exception:
            return False
    else:
        keys = _pickled_names(path)
    return all(n in keys for n in needles)


class _PyMICRelease(WeightFormat):
    """A MIS-FM release: a PyMIC checkpoint {iteration, valid_pred, model_state_dict, optimizer_state_dict} (numpy
    scalars allowed, nothing else) whose network ``detect_keys`` identify and ``build`` converts."""

    detect_keys: tuple = ()

    @property
    def pickle_allow(self):  # noqa: D401 - numpy is imported only when a file is read
        return _misfm_allow()

    def detect(self, path: Path) -> bool:
        return _has_keys(Path(path), self.detect_keys)

    def convert(self, path: Path, **options):
        sd, _ = read_pymic_checkpoint(path)
        model, _ = self.build(sd, **options)
        return model


class MISFMPCTNetRelease(_PyMICRelease):
    name = "misfm_pctnet"
    input = "CT, HU [-1000, 1000] -> [-1, 1], 1 mm RAS (assumed), region 128x128x64"
    architecture = "PCTNet"
    description = ("a MIS-FM PCT-Net release (pctnet_ct10k_volf.pt, the 2023 pctnet_pretrain.pt): a PyMIC checkpoint "
                   "{iteration, valid_pred, model_state_dict, optimizer_state_dict} whose model_state_dict holds "
                   "embeddings.*, pyramid_ct.convtrans_*.trans.blocks.*, pred_heads.* (or that state dict as "
                   ".safetensors)")
    detect_keys = (b"pyramid_ct.convtrans_e2.trans.blocks", b"pred_heads.", b"embeddings.")
    build = staticmethod(lambda sd, **options: pctnet_from_state_dict(sd, **options))


class MISFMFMUNetRelease(_PyMICRelease):
    name = "misfm_fmunet"
    input = "CT, HU [-1000, 1000] -> [-1, 1], 1 mm RAS (assumed)"
    architecture = "FMUNet"
    description = ("a MIS-FM FMUNet release (fmunet_abk1k_volf.pt / fmunet_abd1k_volf.pt): a PyMIC checkpoint whose "
                   "model_state_dict holds project.*, encoder.en_conv*.conv_list.*, decoder.upcat*.*, out_layers.*")
    detect_keys = (b"encoder.en_conv0.conv_list.", b"decoder.upcat0.", b"out_layers.")
    build = staticmethod(lambda sd, **options: fmunet_from_state_dict(sd, **options))


_MISFM = "https://github.com/openmedlab/MIS-FM"
_CITE_MISFM = ("Wang, Wu, Luo, Liu, Li, Zhang. MIS-FM: 3D Medical Image Segmentation using Foundation Models "
               "Pretrained on a Large-Scale Unannotated Dataset. arXiv:2306.16925, 2023")
_MISFM_NOTE = ("Not on the Hugging Face Hub: download {file} from the Google Drive link of {src} and run `fmzoo import "
               "{file} --id {id}`. PyMIC checkpoint (model_state_dict) read with torch.load(weights_only=True) and a "
               "numpy-scalar allow-list; every network weight must be in the file. Input spec: CT, HU [-1000, 1000] -> "
               "[-1, 1] (PyMIC's Volume Fusion recipe), ROI [128, 128, 64] (X, Y, Z) = the release's [64, 128, 128] "
               "(D, H, W); spacing (1 mm) and orientation (RAS) are fmzoo's assumptions, the release states none. "
               "Params: fmzoo's count with the 5 Volume Fusion classes (K = 4) of PyMIC's recipe; the file's class count "
               "is read from it. ")
OFFICIAL += [
    OfficialWeights(
        id="openmedlab/MIS-FM-PCTNet", method="Volume Fusion", format="misfm_pctnet",
        source=f"{_MISFM} (2023 README: Model (Google Drive), "
               "https://drive.google.com/file/d/1jQc-2hhsp3EyZj54_KEJte85diUtW8Fg)",
        license="apache-2.0", params="45.3M", hf_repo=None, files=("pctnet_pretrain.pt",),
        options={"resolution_mode": 1, "input_size": [64, 128, 128]}, citation=_CITE_MISFM,
        notes="The paper's model: PCT-Net pretrained with Volume Fusion on 110k CT volumes (10k public + 100k private). "
              + _MISFM_NOTE.format(file="pctnet_pretrain.pt", src=_MISFM + " (2023 README)", id="openmedlab/MIS-FM-PCTNet")),
    OfficialWeights(
        id="openmedlab/PCTNet-CT10k-VolF", method="Volume Fusion", format="misfm_pctnet",
        source=f"{_MISFM}#list-of-pretrained-models (Google Drive folder "
               "https://drive.google.com/drive/folders/13OQh2eM0QFnwBRwBcKCqhKa46CnDojrD)",
        license="apache-2.0", params="45.3M", hf_repo=None, files=("pctnet_ct10k_volf.pt",),
        options={"resolution_mode": 1, "input_size": [64, 128, 128]}, citation=_CITE_MISFM,
        notes="PCT-Net pretrained with Volume Fusion on CT10k (the 2024 release). "
              + _MISFM_NOTE.format(file="pctnet_ct10k_volf.pt", src=_MISFM, id="openmedlab/PCTNet-CT10k-VolF")),
    OfficialWeights(
        id="openmedlab/FMUNet-AbdomenCT1K-VolF", method="Volume Fusion", format="misfm_fmunet",
        source=f"{_MISFM}#list-of-pretrained-models (Google Drive folder "
               "https://drive.google.com/drive/folders/13OQh2eM0QFnwBRwBcKCqhKa46CnDojrD)",
        license="apache-2.0", params="47.4M", hf_repo=None, files=("fmunet_abk1k_volf.pt",),
        citation=_CITE_MISFM,
        notes="FMUNet (the modified 3D UNet of the release, also PyMIC's) pretrained with Volume Fusion on "
              "AbdomenCT-1K (the 2024 release; the README names the file fmunet_abk1k_volf.pt, the demo config "
              "fmunet_abd1k_volf.pt). "
              + _MISFM_NOTE.format(file="fmunet_abk1k_volf.pt", src=_MISFM, id="openmedlab/FMUNet-AbdomenCT1K-VolF")),
]
