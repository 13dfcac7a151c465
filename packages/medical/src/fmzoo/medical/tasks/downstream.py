"""``fmzoo evaluate`` / ``fmzoo finetune`` for the medical checkpoints: 3D segmentation with the core's loop.

The core owns the loop, the label budgets (``--n-labelled`` volumes, ``--fraction``), the seeds and the printing
(``fmzoo.core.downstream``); these hooks say what a volume, a network, a loss and a score are:

- items are image volumes preprocessed with the checkpoint's input spec (what its pretraining saw: RAS, 1 mm,
  percentile normalisation for MR), targets are their label volumes (0 = background, 1.. = structures);
- the network is the checkpoint's SwinUNETR encoder with a SwinUNETR decoder (``to_swinunetr``: VoCo transfers
  its encoder, Volume Fusion its encoder and decoders, a fine-tuned segmenter everything but the output layer;
  the output layer is always fresh). ``evaluate`` freezes the encoder (Swin-ViT, encoder1-4, encoder10) and
  trains the rest; ``finetune`` trains everything;
- training, as the table's protocol (``tasks/segmentation.py``): one random ROI crop (the spec's
  ``roi_size``, 32x64x32) per labelled volume per epoch, zero-padded where the volume is smaller, flipped along
  x (p = 0.5), intensity scale +-10 % (p = 0.1) and shift +-0.1 (p = 0.5), Dice + cross-entropy;
- prediction: MONAI sliding-window inference (ROI, overlap 0.5, Gaussian) over each whole test volume; the
  score is the Dice of every foreground class on the original grid, averaged over test volumes, and
  ``dice`` is their mean (the table's "mean Dice"). The trivial baseline predicts background everywhere.

Datasets: ``msd_hippocampus_quick`` (default: the 208-volume training pool, 13 of the 52 test volumes, every
4th as the quick table, so a run takes about a minute on a CPU), ``msd_hippocampus`` (all 52 test volumes),
or ``--data PATH``: a folder with ``imagesTr/`` and ``labelsTr/`` NIfTI files of the same names (the Medical
Segmentation Decathlon layout; ``images/`` + ``labels/`` also work), or a folder of ``<case>_image.nii.gz`` /
``<case>_label.nii.gz`` pairs; every 5th case (sorted by name) is the test set, as fmzoo's hippocampus split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.downstream import DownstreamHooks, Split, Task
from torch import nn

from ..data.hippocampus import CLASSES, hippocampus_root, load_hippocampus
from ..models.losses import dice_ce_loss
from ..models.swin import ENCODER_PREFIXES, sliding_window_logits
from ..spec import check_pair, preprocess, read_nifti
from .segmentation import dice_per_class

QUICK_TEST_STRIDE = 4  # msd_hippocampus_quick: every 4th of the 52 test volumes, as the quick table
NIFTI = (".nii.gz", ".nii")


@dataclass
class VolumeBatch:
    """A batch of whole volumes of different sizes: ``x`` (B, 1, *canvas) zero-padded at the end of every axis,
    ``shapes`` the volumes' own sizes (what the network crops from and predicts on)."""

    x: torch.Tensor
    shapes: list[tuple[int, int, int]]

    def __len__(self) -> int:
        return len(self.shapes)


@dataclass
class CropLogits:
    """Training outputs: logits of one ROI crop per volume and where each crop starts in its volume."""

    logits: torch.Tensor
    starts: list[tuple[int, int, int]]


class SegmentationNetwork(nn.Module):
    """A MONAI SwinUNETR on whole volumes. Training: a random ROI crop of every volume (augmented as the
    table's protocol) -> ``CropLogits``; eval: sliding-window logits of every volume on the batch's canvas.
    ``freeze``: the encoder has no gradients and stays in eval mode; the decoder and output layer train."""

    def __init__(self, net: nn.Module, n_outputs: int, roi, freeze: bool, overlap: float = 0.5, augment: bool = True):
        super().__init__()
        self.net, self.n_outputs, self.roi = net, int(n_outputs), tuple(int(r) for r in roi)
        self.freeze, self.overlap, self.augment = freeze, overlap, augment
        if freeze:
            for name, p in net.named_parameters():
                if name.startswith(ENCODER_PREFIXES):
                    p.requires_grad_(False)
        # crops and augmentations draw from a generator of their own, seeded from torch's global generator (which
        # the core seeds for every seed before building the network)
        self.rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))

    def encoder_modules(self) -> list[nn.Module]:
        return [getattr(self.net, p.rstrip(".")) for p in ENCODER_PREFIXES]

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            for m in self.encoder_modules():
                m.eval()
        return self

    def forward(self, batch: VolumeBatch):
        if self.training:
            return self._train_forward(batch)
        out = batch.x.new_zeros((len(batch), self.n_outputs, *batch.x.shape[2:]))
        for i, (sx, sy, sz) in enumerate(batch.shapes):
            logits = sliding_window_logits(self.net, batch.x[i: i + 1, :, :sx, :sy, :sz], self.roi, self.overlap)
            out[i, :, :sx, :sy, :sz] = logits[0]
        return out

    def _train_forward(self, batch: VolumeBatch) -> CropLogits:
        x = _pad_to(batch.x, self.roi)
        crops, starts, flips = [], [], []
        for i, shape in enumerate(batch.shapes):
            # as tasks.segmentation.sample_patch: the volume zero-padded to the ROI, a crop anywhere inside it
            st = tuple(int(self.rng.integers(0, max(n, r) - r + 1)) for n, r in zip(shape, self.roi, strict=True))
            crop = x[i, 0, st[0]: st[0] + self.roi[0], st[1]: st[1] + self.roi[1], st[2]: st[2] + self.roi[2]]
            flip = False
            if self.augment:
                flip = bool(self.rng.random() < 0.5)
                if flip:
                    crop = crop.flip(0)
                if self.rng.random() < 0.1:
                    crop = crop * (1 + float(self.rng.uniform(-0.1, 0.1)))
                if self.rng.random() < 0.5:
                    crop = crop + float(self.rng.uniform(-0.1, 0.1))
            crops.append(crop)
            starts.append(st)
            flips.append(flip)
        logits = self.net(torch.stack(crops)[:, None])
        # a flipped crop's logits are flipped back, so they line up with the (unflipped) label crop
        logits = torch.stack([lg.flip(1) if f else lg for lg, f in zip(logits, flips, strict=True)])
        return CropLogits(logits, starts)


class SegmentationHooks(DownstreamHooks):
    """Downstream hooks shared by the SwinUNETR-based architectures (``to_swinunetr`` gives the network)."""

    datasets = ("msd_hippocampus_quick", "msd_hippocampus")
    data_format = ("a folder with imagesTr/ and labelsTr/ NIfTI files of the same names (Medical Segmentation "
                   "Decathlon layout), or a folder of <case>_image.nii.gz / <case>_label.nii.gz pairs")
    # the table's fine-tuning optimiser (AdamW lr 1e-3, weight decay 1e-5, cosine), batch 2 ROI crops; the length is
    # in optimiser steps, so it means the same at 5 labelled volumes as at all 208 (about 1.3 s of CPU a step)
    epochs = 1
    steps = 40
    lr = 1e-3
    frozen_lr = 1e-3
    weight_decay = 1e-5
    batch_size = 2
    eval_batch_size = 4

    def __init__(self):
        self.canvas: tuple[int, int, int] | None = None  # the largest volume of the loaded task (or the ROI)

    # -- data -------------------------------------------------------------------------------------
    def load(self, model, dataset, path) -> Task:
        spec = model.input_spec
        if path is not None:
            task = self._load_folder(Path(path), spec)
        else:
            task = self._load_hippocampus(dataset or self.datasets[0], spec)
        self.canvas = self._canvas([*task.train.items, *task.test.items], spec)
        return task

    def _load_hippocampus(self, dataset: str, spec: dict) -> Task:
        if dataset not in self.datasets:
            raise InputSpecError(f"unknown dataset {dataset!r}; expected one of {self.datasets}")
        data = load_hippocampus(spec=spec)
        test = data["test"] if dataset == "msd_hippocampus" else data["test"][::QUICK_TEST_STRIDE]
        train = [data["load"](c) for c in data["train"]]
        te = [data["load"](c) for c in test]
        note = (f"{len(test)} of the {len(data['test'])} test volumes (every {QUICK_TEST_STRIDE}th; "
                "--dataset msd_hippocampus scores all)" if dataset != "msd_hippocampus" else "")
        return Task(dataset, "segmentation", Split([x for x, _ in train], [y for _, y in train]),
                    Split([x for x, _ in te], [y for _, y in te]), n_outputs=len(CLASSES), metric="dice",
                    source=f"MSD Task04 Hippocampus (MRI), {hippocampus_root()}", class_names=list(CLASSES.values()),
                    notes=note)

    def _load_folder(self, path: Path, spec: dict) -> Task:
        pairs = find_pairs(path)
        cases = sorted(pairs)
        if len(cases) < 2:
            raise InputSpecError(f"--data {path}: found {len(cases)} image/label pair(s); need at least 2 (every 5th "
                                 f"case is the test set). Expected {self.data_format}")
        vols = {}
        for c in cases:
            img, lab = read_nifti(pairs[c][0]), read_nifti(pairs[c][1])
            check_pair(img, lab, c)
            raw = lab.array
            if not np.all(np.isfinite(raw)) or np.any(raw < 0) or np.any(raw != np.rint(raw)):
                raise InputSpecError(f"{pairs[c][1]}: a label volume must hold non-negative integer classes "
                                     "(0 = background)")
            vols[c] = (preprocess(img, spec), preprocess(lab, spec, label=True))
        test = cases[::5]
        train = [c for i, c in enumerate(cases) if i % 5]
        n_classes = int(max(int(y.max()) for _, y in vols.values())) + 1
        if n_classes < 2:
            raise InputSpecError(f"--data {path}: every label volume is all background (0); nothing to segment")
        return Task(path.name or str(path), "segmentation", Split([vols[c][0] for c in train], [vols[c][1] for c in train]),
                    Split([vols[c][0] for c in test], [vols[c][1] for c in test]), n_outputs=n_classes, metric="dice",
                    source=f"{path} ({len(train)} train / {len(test)} test volumes: every 5th sorted case is test)",
                    class_names=["background", *(f"class{k}" for k in range(1, n_classes))])

    @staticmethod
    def _canvas(volumes, spec: dict) -> tuple[int, int, int]:
        roi = [int(r) for r in spec["roi_size"]]
        return tuple(max([r, *(int(v.shape[a]) for v in volumes)]) for a, r in enumerate(roi))

    def collate(self, model, items) -> VolumeBatch:
        shapes = [tuple(int(s) for s in np.shape(v)) for v in items]
        canvas = self._batch_canvas(shapes)
        x = torch.zeros((len(items), 1, *canvas), dtype=torch.float32)
        for i, (v, (sx, sy, sz)) in enumerate(zip(items, shapes, strict=True)):
            x[i, 0, :sx, :sy, :sz] = torch.tensor(np.asarray(v), dtype=torch.float32)
        return VolumeBatch(x, shapes)

    def collate_targets(self, task: Task, targets) -> torch.Tensor:
        shapes = [tuple(int(s) for s in np.shape(t)) for t in targets]
        canvas = self._batch_canvas(shapes)
        y = torch.zeros((len(targets), *canvas), dtype=torch.long)  # padding is background, as in the table
        for i, (t, (sx, sy, sz)) in enumerate(zip(targets, shapes, strict=True)):
            y[i, :sx, :sy, :sz] = torch.tensor(np.asarray(t), dtype=torch.long)
        return y

    def _batch_canvas(self, shapes) -> tuple[int, int, int]:
        """The loaded task's canvas (every batch the same size, so predictions concatenate); without load(), the
        batch's own."""
        base = self.canvas or (1, 1, 1)
        return tuple(max([b, *(s[a] for s in shapes)]) for a, b in enumerate(base))

    # -- model ------------------------------------------------------------------------------------
    def swinunetr(self, model, n_outputs: int) -> nn.Module:
        return model.to_swinunetr(n_outputs)

    def network(self, model, task: Task, freeze: bool) -> SegmentationNetwork:
        return SegmentationNetwork(self.swinunetr(model, task.n_outputs), task.n_outputs, model.input_spec["roi_size"],
                                   freeze)

    def features(self, model, inputs: VolumeBatch) -> torch.Tensor:
        """Pooled multi-scale encoder features (B, 24 * feature_size) of every whole volume (zero-padded to a
        multiple of 32), as ``VoCo.features``; not used by the segmentation protocols."""
        enc = self._encoder(model)
        out = []
        for i, shape in enumerate(inputs.shapes):
            size = [-(-max(s, 32) // 32) * 32 for s in shape]
            x = inputs.x.new_zeros((1, 1, *size))
            x[0, 0, : shape[0], : shape[1], : shape[2]] = inputs.x[i, 0, : shape[0], : shape[1], : shape[2]]
            hidden = enc.swinViT(x, enc.normalize)
            maps = [enc.encoder1(x), enc.encoder2(hidden[0]), enc.encoder3(hidden[1]), enc.encoder4(hidden[2]),
                    enc.encoder10(hidden[4])]
            out.append(torch.cat([m.mean(dim=(2, 3, 4)) for m in maps], dim=1))
        return torch.cat(out)

    def _encoder(self, model):
        return model

    # -- objective ----------------------------------------------------------------------------------
    def loss(self, task: Task, outputs: CropLogits, targets: torch.Tensor):
        roi = tuple(outputs.logits.shape[2:])
        targets = _pad_to(targets[:, None], roi)[:, 0]  # background beyond a volume smaller than the ROI
        crops = torch.stack([t[s[0]: s[0] + roi[0], s[1]: s[1] + roi[1], s[2]: s[2] + roi[2]]
                             for t, s in zip(targets, outputs.starts, strict=True)])
        return dice_ce_loss(outputs.logits, crops, 1.0, 1.0)["loss"]

    def score(self, task: Task, outputs: torch.Tensor, targets) -> dict[str, float]:
        preds = []
        for out, y in zip(outputs, targets, strict=True):
            sx, sy, sz = np.shape(y)
            preds.append(out[:, :sx, :sy, :sz].argmax(0).numpy())
        return dice_scores(task, preds, targets)

    def baseline(self, task: Task, train: Split) -> tuple[str, dict[str, float]]:
        return "all background", dice_scores(task, [np.zeros(np.shape(y), np.int64) for y in task.test.targets],
                                             task.test.targets)


def _pad_to(x: torch.Tensor, size) -> torch.Tensor:
    """(B, C, X, Y, Z) zero-padded at the end of every spatial axis to at least ``size``."""
    pad = [max(0, int(s) - n) for n, s in zip(x.shape[2:], size, strict=True)]
    if not any(pad):
        return x
    return torch.nn.functional.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))


def dice_scores(task: Task, preds, targets) -> dict[str, float]:
    """Per foreground class: its Dice averaged over volumes; ``dice``: the mean over classes."""
    classes = tuple(range(1, task.n_outputs))
    per = {c: [] for c in classes}
    for p, y in zip(preds, targets, strict=True):
        for c, d in dice_per_class(p, np.asarray(y), classes).items():
            per[c].append(d)
    names = task.class_names or [f"class{c}" for c in range(task.n_outputs)]
    out = {f"dice_{names[c]}": float(np.mean(v)) for c, v in per.items()}
    out["dice"] = float(np.mean([np.mean(v) for v in per.values()]))
    return out


def find_pairs(path: Path) -> dict[str, tuple[Path, Path]]:
    """case -> (image, label) in an MSD folder (imagesTr/labelsTr, or images/labels) or a folder of
    <case>_image.nii.gz / <case>_label.nii.gz pairs. Hidden files (``._*`` from macOS archives) are skipped."""
    if not path.is_dir():
        raise InputSpecError(f"--data {path}: expected a folder (imagesTr/ + labelsTr/, or *_image.nii.gz / "
                             "*_label.nii.gz pairs)")

    def nifti(folder: Path) -> dict[str, Path]:
        out = {}
        for f in sorted(folder.iterdir()):
            for ext in NIFTI:
                if f.is_file() and f.name.endswith(ext) and not f.name.startswith("."):
                    name = f.name[: -len(ext)]
                    if name in out:
                        raise InputSpecError(f"--data {path}: {out[name].name} and {f.name} in {folder} name the same "
                                             "case; expected one file per case")
                    out[name] = f
                    break
        return out

    for images, labels in (("imagesTr", "labelsTr"), ("images", "labels")):
        if (path / images).is_dir() and (path / labels).is_dir():
            imgs, labs = nifti(path / images), nifti(path / labels)
            unlabelled = sorted(set(imgs) - set(labs))
            if unlabelled:
                raise InputSpecError(f"--data {path}: {len(unlabelled)} image(s) in {images}/ without a label of the "
                                     f"same name in {labels}/ (e.g. {unlabelled[0]})")
            orphans = sorted(set(labs) - set(imgs))
            if orphans:
                raise InputSpecError(f"--data {path}: {len(orphans)} label(s) in {labels}/ without an image of the "
                                     f"same name in {images}/ (e.g. {orphans[0]})")
            return {c: (imgs[c], labs[c]) for c in imgs}
    files = nifti(path)
    imgs = {k[: -len("_image")]: f for k, f in files.items() if k.endswith("_image")}
    labs = {k[: -len("_label")]: f for k, f in files.items() if k.endswith("_label")}
    orphans = sorted(set(labs) - set(imgs))
    if orphans:
        raise InputSpecError(f"--data {path}: {orphans[0]}_label has no {orphans[0]}_image.nii.gz beside it")
    if not imgs:
        raise InputSpecError(f"--data {path}: no imagesTr/ + labelsTr/ folders and no *_image.nii.gz files")
    unlabelled = sorted(set(imgs) - set(labs))
    if unlabelled:
        raise InputSpecError(f"--data {path}: {unlabelled[0]}_image has no {unlabelled[0]}_label.nii.gz beside it")
    return {c: (imgs[c], labs[c]) for c in imgs}


class VoCoHooks(SegmentationHooks):
    """fmzoo/voco-small: the VoCo encoder with a fresh SwinUNETR decoder."""


class VolumeFusionHooks(SegmentationHooks):
    """fmzoo/volumefusion-small: Volume Fusion's encoder and decoders, a fresh output layer."""


class SegmenterHooks(SegmentationHooks):
    """A fine-tuned SwinUNETRSegmenter: its whole SwinUNETR, a fresh output layer for the task's classes."""

    def swinunetr(self, model, n_outputs: int) -> nn.Module:
        from .segmentation import _segmenter_swinunetr

        return _segmenter_swinunetr(model, n_outputs)

    def _encoder(self, model):
        return model.net


# ``fmzoo finetune`` / ``fmzoo evaluate`` of an imported PCT-Net / FMUNet (MIS-FM's release): the segmentation hooks
# above with the checkpoint's own network and a fresh last output convolution for the task's classes
# (``to_segmenter``, as the release's downstream loader keeps every pretrained tensor whose shape fits). ``evaluate``
# freezes the encoder (``encoder_prefixes()``: PCT-Net's embeddings and pyramid encoder path, FMUNet's ``project``
# and ``encoder``).
class PrefixFrozenNetwork(SegmentationNetwork):
    """``SegmentationNetwork`` whose frozen part is named by the network's ``encoder_prefixes()``."""

    def __init__(self, net: nn.Module, n_outputs: int, roi, freeze: bool):
        super().__init__(net, n_outputs, roi, False)
        self.freeze = freeze
        if freeze:
            for name, p in net.named_parameters():
                if name.startswith(net.encoder_prefixes()):
                    p.requires_grad_(False)

    def encoder_modules(self) -> list[nn.Module]:
        return [self.net.get_submodule(p.rstrip(".")) for p in self.net.encoder_prefixes()]


class MISFMHooks(SegmentationHooks):
    """PCT-Net / FMUNet from MIS-FM's release, fine-tuned by the medical segmentation protocol."""

    def network(self, model, task, freeze: bool):
        return PrefixFrozenNetwork(model.to_segmenter(task.n_outputs), task.n_outputs,
                                   model.input_spec["roi_size"], freeze)

    def features(self, model, inputs):
        raise NotImplementedError("MIS-FM's networks are evaluated by segmentation (fmzoo finetune/evaluate on a "
                                  "labelled 3D dataset), not by pooled features")
