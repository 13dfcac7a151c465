"""Volume Fusion (VolF, MIS-FM; Wang et al. 2023, arXiv:2306.16925) as a pseudo-segmentation pretext task.

What MIS-FM / PyMIC (``pymic/transform/crop4vf.py``, read for these details) do, implemented here:

1. ``crop_for_fusion``: two sub-volumes are cropped from one volume with a random resized crop (scale
   U(0.7, 1.5) per axis, then zoomed to the patch size), randomly flipped along each axis (p = 0.5),
   and intensity-augmented (adaptive contrast stretch with random percentiles p0 ~ U(0.1, 2),
   p1 ~ U(98, 99.9); gamma U(0.7, 1.5); both inverted with p = 0.25).
2. ``volume_fusion``: the patch is tiled by blocks of a random size (per axis U[size_min, size_max];
   paper 8..32) with a random offset; a fraction ``fg_ratio`` (0.7) of the blocks receive a class
   k ~ U{1..K} (K = num_classes - 1 = 4), i.e. the fusion coefficient alpha = k / K from the discrete
   set {0, 1/4, 1/2, 3/4, 1}; the fused image is alpha * foreground + (1 - alpha) * background.
3. The network segments every voxel's coefficient class (num_classes = 5) with Dice + cross-entropy
   (weights 0.5 / 0.5, as in MIS-FM's configs).

Network: MONAI SwinUNETR (``VolumeFusionNet``), not MIS-FM's PCT-Net; the choice keeps one
architecture across scratch / VoCo / Volume Fusion downstream.
CPU variant: patch 32x64x32 (paper e.g. 64x128x128), block size 4..16 (paper 8..32).

Checked against PyMIC 0.6.2 (tests/test_volume_fusion.py, benchmarks/medical_pretrain.py ``volf_checks``): fed the
same random draws, fusion and crop + intensity augmentation give PyMIC's arrays (float rounding), the loss equals
its CombinedLoss([DiceLoss, CrossEntropyLoss], [0.5, 0.5]). Differences from PyMIC, none in the expected output:
the three flips are drawn in axis order 0, 1, 2 (PyMIC: -1, -2, -3; same distribution); rescaling is torch trilinear
with align_corners (PyMIC: scipy zoom order 1, equal to ~1e-6); crops are at least 2 voxels and the contrast
stretch guards its divisions (PyMIC: division by zero on a flat crop); cross-entropy from log-softmax (PyMIC: log of
the softmax, which can reach log 0); float32 labels/blends (PyMIC: uint8 mask, float64 blend, then ``.float()``).
Training differences: the core's AdamW (decoupled weight decay 1e-5) where PyMIC's VolF config has Adam (L2 weight
decay 1e-5), and the recipe's warm-up + cosine schedule where PyMIC_examples' VolF config steps the lr by 0.5 every
20k of 80k iterations.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from fmzoo.core.method import Method

from ..models.losses import dice_ce_loss
from ..models.swin import VolumeFusionNet
from .common import MedicalMethod, RandomVolumeSamples, resize


def _random_resized_crop(x: np.ndarray, out_size, scale_lo, scale_hi, rng) -> torch.Tensor:
    size_in = x.shape
    scale = [lo + (hi - lo) * rng.random() for lo, hi in zip(scale_lo, scale_hi, strict=True)]
    crop = [max(2, min(int(o * s), n)) for o, s, n in zip(out_size, scale, size_in, strict=True)]
    start = [int(rng.integers(0, n - c + 1)) for n, c in zip(size_in, crop, strict=True)]
    patch = x[start[0]: start[0] + crop[0], start[1]: start[1] + crop[1], start[2]: start[2] + crop[2]]
    t = torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32))[None]
    return resize(t, out_size)[0].numpy()


def _adaptive_contrast(x: np.ndarray, p0: float, p1: float) -> np.ndarray:
    vmin, vmax = float(x.min()), float(x.max())
    v0, v1 = (float(v) for v in np.percentile(x, [p0, p1]))
    out = np.empty_like(x)
    lo, hi = x < v0, x > v1
    mid = ~(lo | hi)
    out[lo] = (x[lo] - vmin) * 0.1 / max(v0 - vmin, 1e-8)
    out[mid] = (x[mid] - v0) / max(v1 - v0, 1e-8) * 0.8 + 0.1
    out[hi] = 0.9 + 0.1 * (x[hi] - v1) / max(vmax - v1, 1e-8)
    return out


def _gamma(x: np.ndarray, lo: float, hi: float, rng) -> np.ndarray:
    vmin, vmax = float(x.min()), float(x.max())
    if vmin >= vmax:
        return x
    g = lo + (hi - lo) * rng.random()
    return np.power((x - vmin) / (vmax - vmin), g) * (vmax - vmin) + vmin


def crop_for_fusion(x: np.ndarray, out_size, rng: np.random.Generator, scale_lo=(0.7, 0.7, 0.7),
                    scale_hi=(1.5, 1.5, 1.5), aug_mode: int = 3) -> tuple[np.ndarray, np.ndarray]:
    if aug_mode in (0, 1):
        scale_lo = scale_hi = (1.0, 1.0, 1.0)
    p1 = _random_resized_crop(x, out_size, scale_lo, scale_hi, rng)
    p2 = _random_resized_crop(x, out_size, scale_lo, scale_hi, rng)
    if aug_mode > 1:
        p1 = np.flip(p1, [a for a in range(3) if rng.random() > 0.5])
        p2 = np.flip(p2, [a for a in range(3) if rng.random() > 0.5])
    if aug_mode in (1, 3):
        p1 = _gamma(_adaptive_contrast(p1, rng.uniform(0.1, 2.0), rng.uniform(98, 99.9)), 0.7, 1.5, rng)
        p2 = _gamma(_adaptive_contrast(p2, rng.uniform(0.1, 2.0), rng.uniform(98, 99.9)), 0.7, 1.5, rng)
        if rng.random() < 0.25:
            p1, p2 = 1.0 - p1, 1.0 - p2
    return np.ascontiguousarray(p1, dtype=np.float32), np.ascontiguousarray(p2, dtype=np.float32)


def volume_fusion(fg: np.ndarray, bg: np.ndarray, rng: np.random.Generator, num_classes: int = 5,
                  fg_ratio: float = 0.7, size_min=(8, 8, 8), size_max=(32, 32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """Fuse blocks of ``fg`` into ``bg`` with discrete coefficients; returns (fused, class map)."""
    if fg.shape != bg.shape:
        raise ValueError(f"fusion needs equal shapes, got {fg.shape} and {bg.shape}")
    k_max = num_classes - 1
    shape = fg.shape
    blk = [int(rng.integers(lo, hi + 1)) for lo, hi in zip(size_min, size_max, strict=True)]
    blk = [min(b, s) for b, s in zip(blk, shape, strict=True)]
    off = [int(rng.integers(0, s % b + 1)) for s, b in zip(shape, blk, strict=True)]
    n = [s // b for s, b in zip(shape, blk, strict=True)]
    total = int(np.prod(n))
    n_fg = int(total * fg_ratio)
    chosen = np.zeros(total, bool)
    chosen[:n_fg] = True
    rng.shuffle(chosen)
    mask = np.zeros(shape, np.int64)
    for idx, on in enumerate(chosen):
        if not on:
            continue
        i, j, k = np.unravel_index(idx, n)
        s0 = [o + c * b for o, c, b in zip(off, (i, j, k), blk, strict=True)]
        mask[s0[0]: s0[0] + blk[0], s0[1]: s0[1] + blk[1], s0[2]: s0[2] + blk[2]] = int(rng.integers(1, k_max + 1))
    alpha = mask.astype(np.float32) / k_max
    return (alpha * fg + (1.0 - alpha) * bg).astype(np.float32), mask


class VolumeFusionDataset(RandomVolumeSamples):
    def __init__(self, volumes, patch_size, num_classes=5, fg_ratio=0.7, size_min=(8, 8, 8), size_max=(32, 32, 32),
                 scale_lo=(0.7, 0.7, 0.7), scale_hi=(1.5, 1.5, 1.5), aug_mode=3, seed=0, repeats=1):
        super().__init__(volumes, seed, repeats)
        self.patch = tuple(patch_size)
        self.kw = dict(num_classes=num_classes, fg_ratio=fg_ratio, size_min=tuple(size_min), size_max=tuple(size_max))
        self.scale_lo, self.scale_hi, self.aug_mode = tuple(scale_lo), tuple(scale_hi), aug_mode

    def sample(self, volume, rng):
        fg, bg = crop_for_fusion(volume, self.patch, rng, self.scale_lo, self.scale_hi, self.aug_mode)
        x, y = volume_fusion(fg, bg, rng, **self.kw)
        return torch.from_numpy(x)[None], torch.from_numpy(y)


def make_task(model, w_dice=0.5, w_ce=0.5, **kwargs):
    from fmzoo.core.training import SSLTask

    class VolumeFusionTask(SSLTask):
        """Speed (same arithmetic up to float summation order, other memory layout): while fitting, the network's 5-D conv weights and the
        input are channels-last (``channels_last_3d``), which makes oneDNN's 3-D convolutions, forward and
        backward, about 1.2x faster on CPU; ``on_fit_end`` restores the contiguous layout (safetensors stores
        contiguous tensors only)."""

        def on_fit_start(self):
            self.model.to(memory_format=torch.channels_last_3d)

        def on_fit_end(self):
            self.model.to(memory_format=torch.contiguous_format)

        def ssl_loss(self, batch):
            x, y = batch
            logits = self.model(x.contiguous(memory_format=torch.channels_last_3d) if x.dim() == 5 else x)
            out = dice_ce_loss(logits, y, w_dice, w_ce)
            with torch.no_grad():  # argmax == y, without argmax's slow strided reduction over the class axis
                ld = logits.detach()
                out["voxel_acc"] = (ld.gather(1, y[:, None]) >= ld.amax(1, keepdim=True)).float().mean()
            return out

    return VolumeFusionTask(model, **kwargs)


class VolumeFusionMethod(MedicalMethod, Method):
    """`fmzoo pretrain volumefusion-small`: Volume Fusion on the recipe's unlabelled volumes (or ``--data`` NIfTI
    images)."""

    recipe_sections = (*MedicalMethod.common_sections, "patch_size", "fusion")
    # ``fusion``: what ``dataset`` reads; ``model``: VolumeFusionNet's parameters (``input_spec`` is its own section)
    recipe_keys = {**MedicalMethod.common_keys,
                   "fusion": ("fg_ratio", "size_min", "size_max", "scale_lo", "scale_hi", "aug_mode"),
                   "model": tuple(p for p in inspect.signature(VolumeFusionNet).parameters if p != "input_spec")}
    citation = ("Wang G. et al. MIS-FM: 3D Medical Image Segmentation using Foundation Models Pretrained on a "
                "Large-Scale Unannotated Dataset. arXiv:2306.16925, 2023.")
    default_batch_size = 2
    default_lr, default_weight_decay = 1e-3, 1e-5

    def dataset(self, volumes):
        vf = self.recipe.get("fusion", {})
        # num_classes is the model's (set by ``model``: the network is built after the data, as before)
        return VolumeFusionDataset(volumes, self.recipe["patch_size"], fg_ratio=vf.get("fg_ratio", 0.7),
                                   size_min=vf.get("size_min", (8, 8, 8)), size_max=vf.get("size_max", (32, 32, 32)),
                                   scale_lo=vf.get("scale_lo", (0.7, 0.7, 0.7)),
                                   scale_hi=vf.get("scale_hi", (1.5, 1.5, 1.5)), aug_mode=vf.get("aug_mode", 3),
                                   seed=self.seed)

    def model(self, data):
        model = VolumeFusionNet(**self.recipe["model"], input_spec=self.recipe.get("input_spec"))
        data.dataset.kw["num_classes"] = model.init_args["num_classes"]
        return model

    def task(self, model, data, steps_per_epoch: int, max_epochs: int):
        return make_task(model, **self.schedule())

    def card_for(self, files, metrics: dict) -> dict:
        return volf_card(self.recipe, files, metrics)


def volf_card(recipe: dict, files, metrics: dict) -> dict:
    n = len(files)
    return {
        "title": f"Volume Fusion SwinUNETR ({recipe.get('name', 'volumefusion')}) - small-scale CPU run",
        "summary": (
            "Volume Fusion (MIS-FM) pseudo-segmentation pretraining of a MONAI SwinUNETR (network choice: SwinUNETR, "
            "not the paper's PCT-Net), reimplemented in fmzoo-medical. SMALL-SCALE CPU run: feature_size 12, window 4, "
            f"32x64x32 patches, fusion blocks 4..16 voxels, 5 coefficient classes, {metrics.get('steps')} steps on {n} real "
            "MRI volumes. The paper pretrains PCT-Net on 110k CT volumes."
        ),
        "intended_use": "Initialisation for few-label 3D MRI segmentation fine-tuning (demonstration scale).",
        "training_data": (
            f"{n} images of the MSD Task04 Hippocampus training pool (labels unused; the 52 test cases never seen). "
            "Medical Segmentation Decathlon, CC-BY-SA 4.0."
        ),
        "results": [{"metric": k, "value": v, "setting": "pretraining, last logged step"} for k, v in metrics.items()],
        "citation": "Wang G. et al. MIS-FM: 3D Medical Image Segmentation using Foundation Models Pretrained on a "
                    "Large-Scale Unannotated Dataset. arXiv:2306.16925, 2023.",
        "license": "apache-2.0",
        "tags": ["medical-imaging", "volume-fusion", "swinunetr", "3d", "mri"],
        "datasets": ["msd-task04-hippocampus"],
        "limitations": "Tiny CPU-scale pretraining; weights stored in float16 to stay under 10 MB (loaded as float32).",
    }
