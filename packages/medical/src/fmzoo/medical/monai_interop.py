"""MONAI interop: a checkpoint's input spec as a MONAI ``Compose`` of dictionary transforms, and MONAI bundle export.

``monai_transforms(spec)`` is the spec's preprocessing written the way a MONAI user writes it (and the way the
released VoCo weights were trained: Luffy03/VoCo ``utils/data_utils.py``):

    LoadImaged -> EnsureChannelFirstd -> Orientationd(axcodes) -> Spacingd(spacing, bilinear / nearest)
    -> ScaleIntensityRanged(a_min, a_max, b_min, b_max, clip)             (CT: a Hounsfield-unit window)
    or ScaleIntensityRangePercentilesd(lower, upper, b_min, b_max, clip)  (MR: per-volume percentiles)

The geometric transforms are invertible, so ``compose.inverse(out)`` (or MONAI's ``Invertd`` on a prediction)
brings a label map back onto the original grid. ``fmzoo.medical.preprocess`` runs the same MONAI transforms (array versions) on
a volume read by fmzoo's checked readers, so both paths give the same arrays (``spec.py`` builds both).

``export_bundle(model_or_id, out_dir)`` writes a MONAI bundle (``configs/metadata.json``,
``configs/inference.json``, ``models/model.safetensors``, ``docs/README.md``) for a medical checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .spec import RAS_LABELS, intensity_transform, monai_transforms, validate_spec

# --------------------------------------------------------------------------- MONAI bundle export

BUNDLE_WEIGHTS = "models/model.safetensors"


def _model_of(model_or_id):
    if isinstance(model_or_id, (str, Path)):
        from fmzoo.core import from_pretrained

        return from_pretrained(str(model_or_id))
    return model_or_id


def _network_def(model) -> dict:
    """The MONAI network the bundle's weights load into: SwinUNETR with the checkpoint's sizes (a VoCo or Volume
    Fusion encoder carries SwinUNETR's parameter names; the segmentation head is SwinUNETR's own)."""
    a = model.init_args
    out = {"VoCo": 2, "VolumeFusionNet": a.get("num_classes", 5), "SwinUNETRSegmenter": a.get("out_channels", 3)}
    return {
        "_target_": "monai.networks.nets.SwinUNETR",
        "in_channels": int(a.get("in_channels", 1)),
        "out_channels": int(out.get(type(model).__name__, a.get("out_channels", 2))),
        "feature_size": int(a.get("feature_size", 12)),
        "window_size": int(a.get("window_size", 4)),
        "depths": [int(d) for d in a.get("depths", (2, 2, 2, 2))],
        "num_heads": [int(h) for h in a.get("num_heads", (3, 6, 12, 24))],
        "use_v2": bool(a.get("use_v2", True)),
        "norm_name": "instance",
    }


def _swinunetr_state(model) -> dict:
    """The weights under SwinUNETR's names (a VoCo keeps only its encoder: its projection head is not SwinUNETR's,
    so the decoder of the bundle's network starts fresh and ``strict`` loading is off for VoCo)."""
    sd = model.state_dict()
    if type(model).__name__ == "SwinUNETRSegmenter":
        return {k[len("net."):]: v for k, v in sd.items() if k.startswith("net.")}
    if type(model).__name__ == "VoCo":
        return model.encoder_state_dict()
    return dict(sd)


def bundle_metadata(model, name: str = "") -> dict:
    """``configs/metadata.json`` in the MONAI bundle schema (monai.bundle's metadata fields)."""
    import monai
    import numpy as np
    import torch

    spec = validate_spec(model.input_spec, "bundle input_spec")
    arch = type(model).__name__
    net = _network_def(model)
    a = spec["intensity"]
    value_range = [float(a.get("b_min", 0.0)), float(a.get("b_max", 1.0))]
    task = {"VoCo": "self-supervised pretrained encoder (VoCo) for 3D segmentation fine-tuning",
            "VolumeFusionNet": "self-supervised pretrained network (Volume Fusion) for 3D segmentation fine-tuning",
            "SwinUNETRSegmenter": "3D segmentation"}.get(arch, "3D medical imaging")
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json",
        "version": "0.1.0",
        "changelog": {"0.1.0": f"exported by fmzoo-medical from {name or arch}"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {"nibabel": _version("nibabel"), "safetensors": _version("safetensors")},
        "supported_apps": {},
        "name": name or arch,
        "task": task,
        "description": f"{arch} (MONAI SwinUNETR layout) exported by fmzoo; preprocessing: {spec['modality']}, "
                       f"{spec['axcodes']}, {spec['spacing']} mm, {a['kind']} intensity scaling, ROI {spec['roi_size']}",
        "authors": "fmzoo",
        "copyright": "Copyright (c) fmzoo contributors",
        "license": "Apache-2.0",
        "data_source": _data_source(model),
        "data_type": "nibabel",
        "image_classes": f"single channel {spec['modality']} volume, intensities scaled to {value_range}",
        "label_classes": "" if arch != "SwinUNETRSegmenter" else f"{net['out_channels']} classes, 0 = background",
        "pred_classes": "",
        "eval_metrics": {},
        "intended_use": "research only, not for clinical use",
        "network_data_format": {
            "inputs": {"image": {
                "type": "image", "format": "magnitude", "modality": spec["modality"], "num_channels": net["in_channels"],
                "spatial_shape": [int(r) for r in spec["roi_size"]], "dtype": "float32",
                "value_range": value_range, "is_patch_data": True,
                "channel_def": {"0": "image"},
            }},
            "outputs": {"pred": {
                "type": "image", "format": "segmentation", "num_channels": net["out_channels"],
                "spatial_shape": [int(r) for r in spec["roi_size"]], "dtype": "float32", "value_range": [],
                "is_patch_data": True,
                "channel_def": {str(i): ("background" if i == 0 else f"class{i}") for i in range(net["out_channels"])},
            }},
        },
        "fmzoo": {"architecture": arch, "input_spec": spec, "weights": BUNDLE_WEIGHTS,
                  "weights_strict": arch != "VoCo"},
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def _data_source(model) -> str:
    """What the checkpoint's weights saw, from its provenance (recipe data and number of files), if it has one."""
    path = Path(model.checkpoint_dir) / "provenance.json" if getattr(model, "checkpoint_dir", None) else None
    if path is None or not path.is_file():
        return ""
    try:
        prov = json.loads(path.read_text())
    except ValueError:
        return ""
    data = (prov.get("recipe") or {}).get("data", "")
    return f"{data} ({len(prov.get('data_files') or [])} volumes, listed in the checkpoint's provenance.json)"


def inference_config(model) -> dict:
    """``configs/inference.json``: a ``monai.bundle`` config: the spec's preprocessing, SwinUNETR, sliding-window
    inference over ``data/*.nii*``, softmax, ``Invertd`` back onto each input's grid, argmax, saved to ``eval/``.
    Weights are read from ``models/model.safetensors`` with safetensors (no pickle): ``monai.bundle``'s
    ``CheckpointLoader`` uses torch.load, so the network is built through fmzoo's own loader expression."""
    spec = validate_spec(model.input_spec, "bundle input_spec")
    it = spec["intensity"]
    b_min, b_max, clip = float(it.get("b_min", 0.0)), float(it.get("b_max", 1.0)), bool(it.get("clip", True))
    if it["kind"] == "window":
        scale = {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": float(it["a_min"]),
                 "a_max": float(it["a_max"]), "b_min": b_min, "b_max": b_max, "clip": clip}
    else:
        scale = {"_target_": "ScaleIntensityRangePercentilesd", "keys": "image", "lower": float(it["lower"]),
                 "upper": float(it["upper"]), "b_min": b_min, "b_max": b_max, "clip": clip}
    strict = type(model).__name__ != "VoCo"
    return {
        "imports": ["$import glob", "$from safetensors.torch import load_file"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": "$@bundle_root + '/data'",
        "datalist": "$list(sorted(glob.glob(@dataset_dir + '/*.nii*')))",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "network_def": _network_def(model),
        "network": "$@network_def.to(@device)",
        "load_weights": f"$@network.load_state_dict(load_file(@bundle_root + '/{BUNDLE_WEIGHTS}'), "
                        f"strict={strict})",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image", "image_only": True},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": spec["axcodes"],
             "labels": [list(p) for p in RAS_LABELS]},
            {"_target_": "Spacingd", "keys": "image", "pixdim": [float(s) for s in spec["spacing"]], "mode": "bilinear"},
            scale,
            {"_target_": "EnsureTyped", "keys": "image"},
        ]},
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]",
                    "transform": "@preprocessing"},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [int(r) for r in spec["roi_size"]],
                    "sw_batch_size": 4, "overlap": 0.5, "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "resample": False,
             "separate_folder": False},
        ]},
        # one volume: sliding-window logits on the preprocessed image, then the postprocessing (inverted onto the
        # input grid, argmax, saved); plain expressions, so the bundle runs without pytorch-ignite
        "infer": "$lambda d: @postprocessing({**d, 'pred': @inferer(d['image'][None].to(@device), @network)[0]})",
        "initialize": ["$monai.utils.set_determinism(seed=123)", "@load_weights", "$@network.eval()"],
        "run": ["$[@infer(d) for d in @dataset]"],
    }


def export_bundle(model_or_id, out_dir: str | Path, name: str = "") -> Path:
    """Write a MONAI bundle for a medical checkpoint (a model, or its id / path) into ``out_dir``:

    - ``configs/metadata.json`` (MONAI's metadata schema: version, monai/pytorch/numpy versions,
      ``network_data_format`` inputs/outputs, ...) and ``configs/inference.json`` (a ``monai.bundle`` config:
      the spec's transforms, SwinUNETR, sliding-window inference, inversion onto the input grid);
    - ``models/model.safetensors``: the weights under MONAI SwinUNETR's parameter names. Safetensors, not the
      bundle's default ``models/model.pt``: a ``.pt`` is a pickle, and a bundle is something users download; the
      inference config reads it with ``safetensors.torch.load_file`` (MONAI's ``CheckpointLoader`` would call
      ``torch.load``). A VoCo exports its encoder only (its projection head is no SwinUNETR layer), so its
      config loads with ``strict=False`` and its decoder is untrained: fine-tune it before inference;
    - ``docs/README.md``: the checkpoint's card when it has one.

    Returns ``out_dir``. Refuses a non-empty ``out_dir`` (nothing is overwritten)."""
    from fmzoo.core.errors import UsageError
    from safetensors.torch import save_file

    model = _model_of(model_or_id)
    if getattr(model, "input_spec_class", None) is None or not hasattr(model, "init_args"):
        raise UsageError(f"export_bundle: expected a fmzoo-medical model (VoCo, VolumeFusionNet, SwinUNETRSegmenter) "
                         f"or its checkpoint id, got {type(model).__name__}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"export_bundle: {str(out)!r} exists and is not empty; expected a new folder")
    meta = bundle_metadata(model, name or (str(model_or_id) if isinstance(model_or_id, (str, Path)) else ""))
    infer = inference_config(model)
    (out / "configs").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(exist_ok=True)
    (out / "docs").mkdir(exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in _swinunetr_state(model).items()}
    save_file(state, str(out / BUNDLE_WEIGHTS), metadata={"format": "pt", "source": meta["name"]})
    (out / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "configs" / "inference.json").write_text(json.dumps(infer, indent=2) + "\n")
    card = Path(model.checkpoint_dir) / "README.md" if getattr(model, "checkpoint_dir", None) else None
    if card is not None and card.is_file():
        shutil.copyfile(card, out / "docs" / "README.md")
    else:
        (out / "docs" / "README.md").write_text(f"# {meta['name']}\n\n{meta['description']}\n")
    return out


__all__ = ["BUNDLE_WEIGHTS", "bundle_metadata", "export_bundle", "inference_config", "intensity_transform",
           "monai_transforms"]
