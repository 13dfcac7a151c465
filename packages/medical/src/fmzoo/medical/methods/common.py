"""Helpers shared by the pretraining methods: the unlabelled volumes, resizing, augmentation, publishing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..spec import MR_SPEC_HIPPOCAMPUS, VolumeInput, preprocess, read_nifti, resize  # noqa: F401  (resize: methods)


def optim_schedule(recipe: dict, lr: float, weight_decay: float) -> dict:
    """The SSL task's optimizer and schedule keywords from the recipe's ``optim`` and ``max_steps`` (defaults: the
    method's ``lr`` and ``weight_decay``, no warm-up, cosine, 100 steps)."""
    opt = recipe.get("optim", {})
    return {"lr": float(opt.get("lr", lr)), "weight_decay": float(opt.get("weight_decay", weight_decay)),
            "warmup_steps": int(opt.get("warmup_steps", 0)), "max_steps": int(recipe.get("max_steps", 100)),
            "schedule": opt.get("schedule", "cosine")}


def pretraining_volumes(recipe: dict) -> tuple[list[np.ndarray], list[Path]]:
    """The unlabelled volumes a recipe names (normalised per its input spec) and their files.

    ``data: hippocampus_train_images`` = the 208 training-pool images of MSD Hippocampus (labels unused,
    test cases never seen). ``data: totalsegmentator_mr`` / ``totalsegmentator_ct`` = the TotalSegmentator
    example volumes (for CT the spec must be a CT spec).
    """
    from fmzoo.core import data_root

    from ..data.hippocampus import hippocampus_root, list_cases, split_cases

    spec = recipe.get("input_spec", MR_SPEC_HIPPOCAMPUS)
    sources = recipe.get("data", "hippocampus_train_images")
    sources = [sources] if isinstance(sources, str) else list(sources)
    files: list[Path] = []
    for src in sources:
        if src == "hippocampus_train_images":
            base = hippocampus_root()
            train, _ = split_cases(list_cases())
            limit = recipe.get("max_volumes")
            files += [base / "images" / f"{c}.nii.gz" for c in (train[:limit] if limit else train)]
        elif src == "totalsegmentator_mr":
            files.append(data_root() / "medical3d" / "totalsegmentator_examples" / "example_mr_sm.nii.gz")
        elif src == "totalsegmentator_ct":
            files += [data_root() / "medical3d" / "totalsegmentator_examples" / n for n in ("example_ct.nii.gz", "example_ct_sm.nii.gz")]
        else:
            raise ValueError(f"unknown pretraining data source {src!r}")
    vols = [preprocess(read_nifti(f), spec) for f in files]
    return vols, files


def foreground_crop(x: np.ndarray, threshold: float) -> np.ndarray:
    """Crop to the bounding box of voxels > threshold (MONAI CropForeground with a threshold select_fn)."""
    mask = x > threshold
    if not mask.any():
        return x
    idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    return x[idx[0][0]: idx[0][-1] + 1, idx[1][0]: idx[1][-1] + 1, idx[2][0]: idx[2][-1] + 1]


def centre_pad_or_crop(x: torch.Tensor, size) -> torch.Tensor:
    """(C, X, Y, Z) -> (C, *size) without resampling: zero-pad (or crop) each axis symmetrically about the centre."""
    for ax, target in enumerate(size, start=1):
        n = x.shape[ax]
        if n > target:
            start = (n - target) // 2
            x = x.narrow(ax, start, int(target))
        elif n < target:
            before = (target - n) // 2
            pad = [0, 0] * (x.dim() - 1)
            pad[2 * (x.dim() - 1 - ax)] = before
            pad[2 * (x.dim() - 1 - ax) + 1] = target - n - before
            x = F.pad(x, pad)
    return x.contiguous()


def augment(x: torch.Tensor, rng: np.random.Generator, p_flip=0.2, p_rot=0.2, p_shift=0.1, shift=0.1) -> torch.Tensor:
    """VoCo's crop augmentation: RandFlip (each axis, p=0.2), RandRotate90 (p=0.2) in a square plane,
    RandShiftIntensity (offset U(-0.1, 0.1), p=0.1)."""
    for ax in (1, 2, 3):
        if rng.random() < p_flip:
            x = x.flip(ax)
    if rng.random() < p_rot:
        sizes = x.shape[1:]
        planes = [(a, b) for a in range(3) for b in range(a + 1, 3) if sizes[a] == sizes[b]]
        if planes:
            a, b = planes[0]
            x = torch.rot90(x, int(rng.integers(1, 4)), (a + 1, b + 1))
    if rng.random() < p_shift:
        x = x + float(rng.uniform(-shift, shift))
    return x.contiguous()


class RandomVolumeSamples(Dataset):
    """Item i draws one random training sample from volume ``i % len(volumes)`` (``repeats`` passes per epoch).
    Each draw has its own generator, seeded by (seed, i, draw count, torch's worker seed): reproducible for a
    given seed, and different in every epoch and data-loader worker. Subclasses define ``sample(volume, rng)``."""

    def __init__(self, volumes: list[np.ndarray], seed: int = 0, repeats: int = 1):
        self.volumes, self.seed, self.repeats, self._draws = volumes, seed, repeats, 0

    def __len__(self):
        return len(self.volumes) * self.repeats

    def __getitem__(self, i):
        self._draws += 1
        rng = np.random.default_rng([self.seed, i, self._draws, int(torch.initial_seed() % (2**31))])
        return self.sample(self.volumes[i % len(self.volumes)], rng)

    def sample(self, volume: np.ndarray, rng: np.random.Generator):
        raise NotImplementedError


def publish_pretrained(model, run_dir: Path, recipe: dict, files: list[Path], metrics: dict, card: dict,
                       trainer=None) -> Path:
    """Write run_dir/checkpoint via fmzoo.core.publish_run; weights stored in recipe['save_dtype']."""
    from fmzoo.core import publish_run

    dtype = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}[recipe.get("save_dtype", "float32")]
    provenance = {
        "recipe": recipe,
        "data_files": [str(f) for f in files],
        "seed": recipe.get("seed", 0),
        "metrics": metrics,
        "weights_dtype": str(dtype).replace("torch.", ""),
    }
    out = Path(run_dir) / "checkpoint"
    model.eval()
    model.to(dtype)
    try:
        publish_run(model, out, card=card, provenance=provenance, trainer=trainer)
    finally:
        model.to(torch.float32)
    (Path(run_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return out


def pretrain_loader(ds, recipe: dict, default_batch: int, trainer_kwargs: dict | None) -> tuple[DataLoader, int]:
    """``(loader, global batch)``. The recipe's ``batch_size`` is the global batch: each of the run's processes
    loads its share (the recipe's ``max_steps`` count optimizer steps, i.e. global batches)."""
    from fmzoo.core.training import per_device_batch

    batch = int(recipe.get("batch_size", default_batch))
    loader = DataLoader(ds, batch_size=per_device_batch(batch, trainer_kwargs or {}), shuffle=True,
                        num_workers=int(recipe.get("num_workers", 0)), drop_last=True)
    return loader, batch


def fit_and_measure(task, loader, run_dir: Path, max_steps: int, trainer_kwargs: dict | None, global_batch: int,
                    **trainer_options) -> tuple:
    """Pretrain ``task`` for ``max_steps`` (core ``fit``: checkpoints, resume); returns the trainer and the card's
    metrics: steps, seconds, volumes/s at the global batch size, and the last logged losses."""
    from fmzoo.core.training import fit, training_seconds

    kw = {"max_epochs": None, "max_steps": max_steps, "log_every_n_steps": 5, **trainer_options, **(trainer_kwargs or {})}
    trainer = fit(task, loader, run_dir, **kw)
    seconds = training_seconds(trainer)
    steps = int(trainer.global_step)
    return trainer, {"steps": steps, "seconds": round(seconds, 1),
            "volumes_per_s": round(steps * global_batch / max(seconds, 1e-9), 4),
            **{k: float(v) for k, v in trainer.callback_metrics.items()}}


# --------------------------------------------------------------------------- the core Method base of both methods

NIFTI = (".nii.gz", ".nii")


def folder_images(path: Path) -> list[Path]:
    """The NIfTI images of a pretraining ``--data`` folder: ``imagesTr/`` (Medical Segmentation Decathlon layout) or
    ``images/`` if there is one, else the folder's own ``*.nii.gz`` / ``*.nii`` files (``*_label`` files and hidden
    ``._*`` files skipped). Labels are never read."""
    from fmzoo.core import InputSpecError

    path = Path(path)
    if not path.is_dir():
        raise InputSpecError(f"--data {path}: expected a folder of NIfTI images (imagesTr/, images/, or *.nii.gz)")
    folder = next((path / d for d in ("imagesTr", "images") if (path / d).is_dir()), path)
    files = [f for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".")
             and f.name.endswith(NIFTI) and not f.name.split(".")[0].endswith("_label")]
    if not files:
        raise InputSpecError(f"--data {path}: no NIfTI images (*.nii.gz / *.nii) in {folder}")
    return files


class MedicalMethod:
    """Shared ``fmzoo.core.Method`` hooks of VoCo and Volume Fusion, mixed in before ``Method``
    (``class VoCoMethod(MedicalMethod, Method)``). The recipes keep their flat layout (``batch_size`` = global batch, ``max_steps`` optimiser
    steps, ``optim``, ``save_dtype``, ...): training length is in steps, not epochs; ``data`` is a source name (or a
    list of them), not a mapping. Every random draw happens in the order of the former ``pretrain`` functions."""

    default_batch_size = 1
    default_lr, default_weight_decay = 1e-4, 0.0
    # top-level keys shared by both methods' recipes (plus each method's own)
    common_sections = ("input_spec", "batch_size", "max_steps", "optim", "save_dtype", "max_volumes", "num_workers")
    # the keys of the nested sections both methods read (each adds its own, ``recipe_keys = {**common_keys, ...}``):
    # ``optim`` as ``optim_schedule`` reads it, ``input_spec`` the spec's fields (``VolumeInput``), ``train`` only the
    # Lightning values the core applies (the length and batch are the flat ``max_steps`` / ``batch_size``);
    # ``evaluate`` is not read by either method
    common_keys = {
        "optim": ("lr", "weight_decay", "warmup_steps", "schedule"),
        "input_spec": (*VolumeInput.required, *VolumeInput.optional),
        "train": ("precision", "gradient_clip_val", "gradient_clip_algorithm"),
        "evaluate": (),
    }

    @classmethod
    def validate(cls, recipe: dict) -> None:
        from fmzoo.core import RecipeError

        data = recipe.get("data")
        if data is not None and not (isinstance(data, str) or (isinstance(data, list | tuple)
                                                               and all(isinstance(d, str) for d in data))):
            raise RecipeError(f"recipe {recipe.get('name')!r}: 'data' must be a source name or a list of them "
                              f"(e.g. hippocampus_train_images), got {data!r}")
        super().validate({k: v for k, v in recipe.items() if k != "data"})

    def global_batch(self) -> int:
        return int(self.recipe.get("batch_size", self.default_batch_size))

    def max_epochs(self) -> int:
        return 0  # the length is the recipe's max_steps; a caller's max_epochs (--max-epochs) still reaches the trainer

    def dataset(self, volumes: list[np.ndarray]):
        raise NotImplementedError

    def card_for(self, files, metrics: dict) -> dict:
        raise NotImplementedError

    def data(self):
        from fmzoo.core.method import PretrainData

        spec = self.recipe.get("input_spec", MR_SPEC_HIPPOCAMPUS)
        if self.data_path is None:
            volumes, files = pretraining_volumes(self.recipe)
            description = ""
        else:
            files = folder_images(self.data_path)
            limit = self.recipe.get("max_volumes")
            files = files[:limit] if limit else files
            volumes = [preprocess(read_nifti(f), spec) for f in files]
            description = (f"{len(files)} NIfTI image(s) from {self.data_path} (labels unused), preprocessed to the "
                           f"recipe's {spec.get('modality', '')} input spec (spacing {spec.get('spacing')}).")
        return PretrainData(self.dataset(volumes), files=list(files), description=description)

    def loader(self, data, batch_size: int):
        """As before the core pipeline: shuffled from torch's global RNG (seeded by run_pretraining), drop_last."""
        return DataLoader(data.dataset, batch_size=batch_size, shuffle=True,
                          num_workers=int(self.recipe.get("num_workers", 0)), drop_last=True)

    def schedule(self) -> dict:
        return optim_schedule(self.recipe, lr=self.default_lr, weight_decay=self.default_weight_decay)

    def trainer_options(self) -> dict:
        return {}

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict):
        """``max_steps`` optimiser steps (the recipe's training length), as before: a caller's ``max_epochs``
        (the core took it out of ``trainer_kwargs``) goes back to the trainer, which stops at whichever comes first."""
        kw = {**trainer_kwargs, "max_epochs": max_epochs} if max_epochs else trainer_kwargs
        trainer, self._metrics = fit_and_measure(task, loader, self.run_dir, self.schedule()["max_steps"],
                                                 kw, self.global_batch(), **self.trainer_options())
        return trainer

    def save_dtype(self) -> torch.dtype:
        return {"float16": torch.float16, "float32": torch.float32,
                "bfloat16": torch.bfloat16}[self.recipe.get("save_dtype", "float32")]

    def evaluate(self, model, data) -> dict:
        """The card's metrics (steps, seconds, volumes/s, last losses); the model is cast to the recipe's
        ``save_dtype`` here, just before the core publishes it."""
        model.to(self.save_dtype(), memory_format=torch.contiguous_format)  # a task may train channels-last
        return dict(self._metrics)

    def provenance(self, data) -> dict:
        steps = int(self._metrics.get("steps", 0))
        return {"weights_dtype": str(self.save_dtype()).replace("torch.", ""),
                "epochs": round(steps * self.global_batch() / max(len(data.dataset), 1), 4)}  # passes over the data

    def card(self, data, metrics: dict) -> dict:
        (self.run_dir / "metrics.json").write_text(json.dumps(self._metrics, indent=2) + "\n")
        card = self.card_for(data.files, self._metrics)
        if self.data_path is not None:
            card["training_data"] = data.description
            card["datasets"] = []
        return card
