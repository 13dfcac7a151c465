"""Import released VoCo checkpoints (SwinUNETR state dicts) into MONAI's SwinUNETR / fmzoo's ``VoCo``.

The released files (Luffy03/Large-Scale-Medical README: VoCo_B/L/H_SSL_head.pt, VoComni_*.pt; the
CVPR repo's VoCo_10k.pt) are pickled ``torch.save`` dicts. fmzoo never unpickles untrusted files, so
convert once in an environment you trust::

    sd = torch.load("VoCo_B_SSL_head.pt", map_location="cpu", weights_only=True)
    safetensors.torch.save_file(unwrap_state_dict(sd), "VoCo_B_SSL_head.safetensors")

then ``import_voco_file("VoCo_B_SSL_head.safetensors", feature_size=48)``.

Key handling follows the VoCo repositories' own loaders (``Downstream/monai/BTCV/models/models.py``
``load`` and the CVPR ``Finetune/BTCV/main.py``): the dict may be wrapped under ``state_dict``,
``network_weights``, ``net`` or ``student``; prefixes ``module.`` and ``backbone.`` are removed and
``swin_vit`` is renamed ``swinViT``. A raw pretraining ``VoCoHead`` state dict (``student.*`` /
``teacher.*``) keeps the student. Then, like their loader, every SwinUNETR key whose name and shape
match is taken and everything else (projection head, a first/last layer with other channel counts)
is skipped -- but here the skipped keys are reported, and a dict that does not fill (>= 99 %) the
Swin-ViT encoder is an error instead of a silent partial load.
"""

from __future__ import annotations

from pathlib import Path

import torch
from fmzoo.core import CheckpointError

from .models.swin import ENCODER_PREFIXES, build_swinunetr

WRAPPERS = ("state_dict", "network_weights", "net", "student")


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
    if any(k.startswith("student.") for k in sd):  # a raw VoCoHead (student + EMA teacher)
        sd = {k[len("student."):]: v for k, v in sd.items() if k.startswith("student.")}
    out = {}
    for k, v in sd.items():
        k2 = k.replace("module.", "").replace("backbone.", "").replace("swin_vit", "swinViT")
        out[k2] = v
    return out


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


def load_safetensors_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt", ".model"):
        raise CheckpointError(
            f"{str(path)!r} is a pickled torch file; fmzoo does not unpickle untrusted files. Convert it once where "
            "you trust it: torch.load(..., weights_only=True) then safetensors.torch.save_file (see "
            "fmzoo.medical.weights)"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file: {exc}") from None


def import_voco_file(path: str | Path, **kwargs):
    return import_voco_state_dict(load_safetensors_state_dict(path), **kwargs)


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
