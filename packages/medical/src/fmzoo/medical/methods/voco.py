"""VoCo: Volume Contrast for 3D medical image pretraining (Wu, Zhuang, Chen, CVPR 2024).

What the paper (and Luffy03/VoCo, read for these details) does, and what this module implements:

1. Each volume is normalised, cropped to its foreground and resized to a fixed size that is an exact
   grid of *base crops*: paper 384x384x96 = 4x4x1 base crops of 96^3 (the grid lies in the x-y plane,
   every base crop spans the whole z extent). Base crops (16 in the paper) are resized to the network
   input (64^3 in the paper).
2. ``num_random`` *random crops* (paper: 2) of the base-crop size are taken at random positions along
   the grid axes. Each one's *position label* is, for every base crop, the fraction of the random
   crop's area that overlaps that base crop (``position_labels``).
3. A student network (Swin-ViT encoder + projection head) and its EMA teacher (momentum 0.9, updated
   every step) embed all crops. The prediction for a random crop is ``relu(cosine(random, base_k))``
   for every base crop k, averaged over (student random vs teacher bases) and (teacher random vs
   student bases) (``voco_logits``).
4. Loss = position loss (``-sum y log(1 - |y - p|) / sum y`` over overlapping bases, plus
   ``mean p^2`` over non-overlapping bases) + regularisation ``mean_{i<j} relu(cos(b_i, sg(b_j)))^2``
   that keeps the base-crop features of one volume apart (``voco_loss``).

The CPU variant keeps all of this and changes sizes only: volume 96x64x96 = a 3x1x3 grid of 32x64x32
base crops (grid over x and z, y spans the whole extent: the hippocampus crops are longest along y;
with 3 crops per axis a random crop overlaps at most 4 of the 9 bases, so the negative term is active
as with the paper's 4x4 grid), network input 32x64x32 (no resize), SwinUNETR feature_size 12 /
window 4, projection 512.

``fit: pad`` (recipe ``voco-small-native``) keeps the volume at its 1 mm grid instead of resizing it: the volume is
centre-padded with zeros (centre-cropped where larger) to the base-crop grid, so pretraining sees anatomy at the
scale that fine-tuning uses.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from fmzoo.core.method import Method
from fmzoo.core.params import ema_update  # noqa: F401 (the teacher's update; re-exported)

from ..models.fast_swin import speed_up
from ..models.swin import VoCo
from .common import MedicalMethod, RandomVolumeSamples, augment, centre_pad_or_crop, foreground_crop, resize

# --------------------------------------------------------------------------- geometry and labels


@dataclass(frozen=True)
class VoCoGeometry:
    base_size: tuple = (96, 96, 96)  # size of a base crop in the resized volume
    grid: tuple = (4, 4, 1)  # base crops along each axis (1 = the axis is not split)
    input_size: tuple = (64, 64, 64)  # network input; crops are resized to it
    num_random: int = 2  # random crops per volume (the paper's sw_batch_size)
    fit: str = "resize"  # how a volume becomes volume_size: "resize" (the paper) or "pad" (centre pad/crop, no resampling)

    def __post_init__(self):
        if self.fit not in ("resize", "pad"):
            raise ValueError(f"VoCo geometry fit must be 'resize' or 'pad', got {self.fit!r}")

    @property
    def volume_size(self) -> tuple:
        return tuple(int(b) * int(g) for b, g in zip(self.base_size, self.grid, strict=True))

    @property
    def num_bases(self) -> int:
        return int(np.prod(self.grid))

    def base_boxes(self) -> list[tuple[tuple[int, int], ...]]:
        """Base crops in C order over the grid (the paper's label index i * n + j)."""
        boxes = []
        for idx in itertools.product(*(range(g) for g in self.grid)):
            boxes.append(tuple((i * b, (i + 1) * b) for i, b in zip(idx, self.base_size, strict=True)))
        return boxes

    @classmethod
    def from_dict(cls, d: dict) -> VoCoGeometry:
        return cls(tuple(d["base_size"]), tuple(d["grid"]), tuple(d["input_size"]), int(d.get("num_random", 2)),
                   str(d.get("fit", "resize")))


def random_crop_box(geom: VoCoGeometry, rng: np.random.Generator) -> tuple[tuple[int, int], ...]:
    """Random crop of base size; its centre is uniform in [half, L - half) along grid axes (as the paper's
    ``np.random.randint(half, max_roi - half)``), fixed to the middle along un-split axes."""
    box = []
    for b, g in zip(geom.base_size, geom.grid, strict=True):
        length, half = b * g, b // 2
        c = int(rng.integers(half, length - half)) if g > 1 else length // 2
        box.append((c - half, c - half + b))
    return tuple(box)


def position_labels(crop_box, geom: VoCoGeometry) -> np.ndarray:
    """Overlap fraction of the crop with every base crop (areas over the grid axes); sums to 1."""
    size = np.prod([hi - lo for lo, hi in crop_box])
    out = []
    for base in geom.base_boxes():
        inter = 1.0
        for (c0, c1), (b0, b1) in zip(crop_box, base, strict=True):
            d = min(c1, b1) - max(c0, b0)
            inter *= max(d, 0)
        out.append(inter / size)
    return np.asarray(out, dtype=np.float32)


def _cut(x: torch.Tensor, box) -> torch.Tensor:
    (x0, x1), (y0, y1), (z0, z1) = box
    return x[:, x0:x1, y0:y1, z0:z1]


def voco_sample(volume: np.ndarray, geom: VoCoGeometry, rng: np.random.Generator, aug: bool = True,
                foreground_threshold: float | None = 0.3) -> dict[str, torch.Tensor]:
    """One volume -> {"crops": (R, 1, *input), "labels": (R, K), "bases": (K, 1, *input)}."""
    x = volume if foreground_threshold is None else foreground_crop(volume, foreground_threshold)
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    x = resize(x, geom.volume_size) if geom.fit == "resize" else centre_pad_or_crop(x, geom.volume_size)
    bases, crops, labels = [], [], []
    for box in geom.base_boxes():
        b = resize(_cut(x, box), geom.input_size)
        bases.append(augment(b, rng) if aug else b)
    for _ in range(geom.num_random):
        box = random_crop_box(geom, rng)
        c = resize(_cut(x, box), geom.input_size)
        crops.append(augment(c, rng) if aug else c)
        labels.append(position_labels(box, geom))
    return {"crops": torch.stack(crops), "labels": torch.from_numpy(np.stack(labels)), "bases": torch.stack(bases)}


class VoCoDataset(RandomVolumeSamples):
    def __init__(self, volumes: list[np.ndarray], geom: VoCoGeometry, aug: bool = True,
                 foreground_threshold: float | None = 0.3, seed: int = 0, repeats: int = 1):
        super().__init__(volumes, seed, repeats)
        self.geom, self.aug, self.thr = geom, aug, foreground_threshold

    def sample(self, volume, rng):
        return voco_sample(volume, self.geom, rng, self.aug, self.thr)


# --------------------------------------------------------------------------- losses


def online_assign(feats: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """relu(cosine(feats_i, bases_k)) -> (R, K)."""
    return F.relu(F.normalize(feats, dim=1) @ F.normalize(bases, dim=1).T)


def position_loss(labels: torch.Tensor, logits: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """VoCo's (pos, neg) loss: -y log(1 - |y - p|) over overlapping bases, p^2 over the others."""
    pos = -(labels * torch.log(1 - (labels - logits).abs() + eps)).sum() / (labels.sum() + eps)
    neg_mask = (labels == 0).to(logits.dtype)
    neg = (neg_mask * logits.pow(2)).sum() / (neg_mask.sum() + eps)
    return pos, neg


def regularization_loss(bases: torch.Tensor) -> torch.Tensor:
    """mean over pairs i < j of relu(cos(b_i, stopgrad(b_j)))^2: keeps one volume's base features apart."""
    k = bases.shape[0]
    sim = F.normalize(bases, dim=1) @ F.normalize(bases.detach(), dim=1).T
    iu = torch.triu_indices(k, k, offset=1, device=bases.device)
    return F.relu(sim[iu[0], iu[1]]).pow(2).mean()


def voco_logits(x_stu, bases_tea, x_tea, bases_stu) -> torch.Tensor:
    return 0.5 * (online_assign(x_stu, bases_tea) + online_assign(x_tea, bases_stu))


def voco_loss(student_crops, student_bases, teacher_crops, teacher_bases, labels) -> dict[str, torch.Tensor]:
    """Batched VoCo loss. Shapes: crops (B, R, D), bases (B, K, D), labels (B, R, K)."""
    pos = neg = reg = 0.0
    b = labels.shape[0]
    for i in range(b):
        logits = voco_logits(student_crops[i], teacher_bases[i], teacher_crops[i], student_bases[i])
        p, n = position_loss(labels[i], logits)
        pos, neg = pos + p, neg + n
        reg = reg + regularization_loss(student_bases[i])
    pos, neg, reg = pos / b, neg / b, reg / b
    return {"loss": pos + neg + reg, "pos": pos, "neg": neg, "reg": reg}


# --------------------------------------------------------------------------- the task


def _embed_all(model, crops, bases):
    """Embed every random crop and base crop of the batch in one forward (the paper's BN over all)."""
    b, r = crops.shape[:2]
    k = bases.shape[1]
    flat = torch.cat([crops.flatten(0, 1), bases.flatten(0, 1)], dim=0)
    z = model(flat)
    return z[: b * r].view(b, r, -1), z[b * r:].view(b, k, -1)


def make_task(model, **kwargs):
    from fmzoo.core.training import SSLTask

    class VoCoTask(SSLTask):
        """Student = ``model`` (what is published); teacher = its EMA copy (momentum 0.9, every step)."""

        def __init__(self, model, teacher_momentum: float = 0.9, fast_kernels: bool = True, **opt):
            super().__init__(model, **opt)
            self.teacher = copy.deepcopy(model)
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            self.teacher_momentum = teacher_momentum
            if fast_kernels:  # same function, faster CPU window attention / instance norm (models/fast_swin.py)
                speed_up(self.model)
                speed_up(self.teacher)

        def ssl_loss(self, batch):
            crops, bases, labels = batch["crops"], batch["bases"], batch["labels"]
            s_crops, s_bases = _embed_all(self.model, crops, bases)
            if self.training:
                ema_update(self.teacher, self.model, self.teacher_momentum)
            with torch.no_grad():
                t_crops, t_bases = _embed_all(self.teacher, crops, bases)
            return voco_loss(s_crops, s_bases, t_crops, t_bases, labels)

    return VoCoTask(model, **kwargs)


class VoCoMethod(MedicalMethod, Method):
    """`fmzoo pretrain voco-small`: VoCo on the recipe's unlabelled volumes (or ``--data`` NIfTI images)."""

    recipe_sections = (*MedicalMethod.common_sections, "geometry", "foreground_threshold", "augment",
                       "teacher_momentum", "grad_clip")
    # ``model``: VoCo's parameters (``input_spec`` is the recipe's own section)
    recipe_keys = {**MedicalMethod.common_keys, "geometry": tuple(f.name for f in dataclasses.fields(VoCoGeometry)),
                   "model": tuple(p for p in inspect.signature(VoCo).parameters if p != "input_spec")}
    citation = ("Wu L., Zhuang J., Chen H. VoCo: A Simple-yet-Effective Volume Contrastive Learning Framework for 3D "
                "Medical Image Analysis. CVPR 2024.")
    default_batch_size = 1
    default_lr, default_weight_decay = 1e-4, 0.0

    def dataset(self, volumes):
        r = self.recipe
        return VoCoDataset(volumes, VoCoGeometry.from_dict(r["geometry"]), aug=r.get("augment", True),
                           foreground_threshold=r.get("foreground_threshold", 0.3), seed=self.seed)

    def model(self, data):
        return VoCo(**self.recipe["model"], input_spec=self.recipe.get("input_spec"))

    def task(self, model, data, steps_per_epoch: int, max_epochs: int):
        return make_task(model, teacher_momentum=float(self.recipe.get("teacher_momentum", 0.9)), **self.schedule())

    def trainer_options(self) -> dict:
        return {"gradient_clip_val": self.recipe.get("grad_clip")}

    def card_for(self, files, metrics: dict) -> dict:
        return voco_card(self.recipe, files, metrics)


def _dims(values) -> str:
    return "x".join(str(int(v)) for v in values)


def voco_card(recipe: dict, files, metrics: dict) -> dict:
    n, model, geom = len(files), recipe.get("model", {}), recipe["geometry"]
    return {
        "title": f"VoCo SwinUNETR ({recipe.get('name', 'voco')}) - small-scale CPU run",
        "summary": (
            "VoCo (volume contrast) self-supervised pretraining of a MONAI SwinUNETR encoder, reimplemented in "
            f"fmzoo-medical. This is a SMALL-SCALE CPU run: SwinUNETR feature_size {model.get('feature_size')}, window "
            f"{model.get('window_size')}, {_dims(geom.get('input_size'))} crops on a {_dims(geom.get('grid'))} base-crop grid "
            f"({'volume padded at its 1 mm grid' if geom.get('fit') == 'pad' else 'volume resized'} to "
            f"{_dims(VoCoGeometry.from_dict(geom).volume_size)}), {metrics.get('steps')} steps on {n} real MRI volumes. "
            "It is not the paper's model "
            "(feature_size 48, 96^3 crops on a 4x4 grid, 250k steps on 10k CT volumes)."
        ),
        "intended_use": "Initialisation for few-label 3D MRI segmentation fine-tuning (demonstration scale).",
        "training_data": (
            f"{n} images of the MSD Task04 Hippocampus training pool (every case whose sorted index is not a multiple "
            "of 5); labels were not used; the 52 test cases were never seen. Medical Segmentation Decathlon, CC-BY-SA 4.0."
        ),
        "results": [{"metric": k, "value": v, "setting": "pretraining, last logged step"} for k, v in metrics.items()],
        "citation": "Wu L., Zhuang J., Chen H. VoCo: A Simple-yet-Effective Volume Contrastive Learning Framework for 3D "
                    "Medical Image Analysis. CVPR 2024.",
        "license": "apache-2.0",
        "tags": ["medical-imaging", "voco", "swinunetr", "3d", "mri"],
        "datasets": ["msd-task04-hippocampus"],
        "limitations": (
            "Tiny CPU-scale pretraining; weights stored in float16 to stay under 10 MB (loaded as float32). "
            "For context only, the paper's VoCo reaches 86.64 mean Dice on BTCV (Luffy03/Large-Scale-Medical, "
            "Downstream/monai/BTCV/README.md), a different (CT, 13-organ) benchmark that this checkpoint was not run on."
        ),
    }
