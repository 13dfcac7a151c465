"""Few-label 3D segmentation fine-tuning with sliding-window inference and per-class Dice.

Protocol (the same for every initialisation, so scratch / VoCo / Volume Fusion differ only in weights):
MONAI SwinUNETR (feature_size 12, window 4, use_v2), random ROI crops (32x64x32) from the labelled
volumes (zero-padded to the ROI), flips along x (p = 0.5) and VoCo's fine-tuning intensity
augmentation (scale +-10 % p = 0.1, shift +-0.1 p = 0.5), Dice + cross-entropy, AdamW (lr 1e-3,
weight decay 1e-5, cosine decay), a fixed number of steps; evaluation by MONAI sliding-window
inference (ROI 32x64x32, overlap 0.5) on whole test volumes and the Dice of every foreground class.
This is the paper table's protocol (``fmzoo reproduce medical-hippocampus``, a fixed number of steps); the
core's ``fmzoo finetune`` / ``fmzoo evaluate`` run the hooks of ``tasks/downstream.py`` with the core's loop.
Seeds: the caller seeds the process (``fmzoo.core.runtime``; the table runner does, once per cell) before
``few_label_run``, whose ``seed`` draws the labelled volumes and the patches.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..models.losses import dice_ce_loss
from ..models.swin import sliding_window_logits
from ..spec import resize


def dice_per_class(pred: np.ndarray, label: np.ndarray, classes=(1, 2)) -> dict[int, float]:
    """2|P∩G| / (|P| + |G|) for every class; 1.0 when the class is absent from both."""
    out = {}
    for c in classes:
        p, g = pred == c, label == c
        denom = int(p.sum()) + int(g.sum())
        out[c] = 1.0 if denom == 0 else 2.0 * int((p & g).sum()) / denom
    return out


def _pad_to(x: np.ndarray, size) -> np.ndarray:
    pad = [(0, max(0, s - n)) for n, s in zip(x.shape, size, strict=True)]
    return np.pad(x, pad) if any(p[1] for p in pad) else x


def sample_patch(x: np.ndarray, y: np.ndarray, roi, rng: np.random.Generator, augment: bool = True):
    x, y = _pad_to(x, roi), _pad_to(y, roi)
    st = [int(rng.integers(0, n - r + 1)) for n, r in zip(x.shape, roi, strict=True)]
    sl = tuple(slice(s, s + r) for s, r in zip(st, roi, strict=True))
    xp, yp = np.array(x[sl], dtype=np.float32), np.array(y[sl], dtype=np.int64)
    if augment:
        if rng.random() < 0.5:
            xp, yp = xp[::-1].copy(), yp[::-1].copy()
        if rng.random() < 0.1:
            xp = xp * (1 + rng.uniform(-0.1, 0.1))
        if rng.random() < 0.5:
            xp = xp + rng.uniform(-0.1, 0.1)
    return xp, yp


def resample_image(x: np.ndarray, size) -> np.ndarray:
    """Resize an image volume to ``size`` the way the VoCo pretraining does (trilinear, align_corners=True)."""
    return resize(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None], size)[0].numpy()


def resample_label(y: np.ndarray, size, num_classes: int = 3) -> np.ndarray:
    """Resize a label map on the same grid as ``resample_image`` (one-hot, trilinear, argmax), so image and
    label stay aligned (nearest-neighbour interpolation samples a half-voxel-shifted grid)."""
    onehot = np.stack([(y == c) for c in range(num_classes)]).astype(np.float32)
    return resample_logits(torch.from_numpy(onehot)[None], size)[0].argmax(0).numpy().astype(np.int64)


def resample_logits(logits: torch.Tensor, size) -> torch.Tensor:
    """(B, C, X, Y, Z) -> (B, C, *size), with the same resize as the images."""
    return torch.stack([resize(x, size) for x in logits])


def make_segmenter(init, out_channels: int = 3, arch: dict | None = None):
    """A MONAI SwinUNETR for segmentation: from scratch ("scratch"), or carrying a pretrained model's weights."""
    from ..models.swin import VoCo, VolumeFusionNet, build_swinunetr

    if isinstance(init, str) and init == "scratch":
        a = {"feature_size": 12, "window_size": 4, **(arch or {})}
        return build_swinunetr(out_channels=out_channels, **a)
    if isinstance(init, (VoCo, VolumeFusionNet)):
        return init.to_swinunetr(out_channels)
    raise TypeError(f"init must be 'scratch', a VoCo or a VolumeFusionNet, got {type(init).__name__}")


def finetune(net, images: list[np.ndarray], labels: list[np.ndarray], roi=(32, 64, 32), steps: int = 100,
             batch_size: int = 2, lr: float = 1e-3, weight_decay: float = 1e-5, seed: int = 0, log=None,
             encoder_lr_scale: float = 1.0):
    """Fine-tune ``net`` on random patches of the labelled volumes (AdamW, cosine schedule, Dice + CE); ``seed``
    seeds the patch sampler (nothing here draws from torch's global generator).
    ``encoder_lr_scale``: the Swin encoder (``net.swinViT``, the part a pretrained init transfers) learns at
    ``lr * encoder_lr_scale``, the rest at ``lr``."""
    if not images:
        raise ValueError("fine-tuning needs at least one labelled volume")
    rng = np.random.default_rng(seed)
    net.train()
    opt = torch.optim.AdamW(_param_groups(net, lr, encoder_lr_scale), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    t0, losses = time.perf_counter(), []
    for step in range(steps):
        xs, ys = [], []
        for _ in range(batch_size):
            i = int(rng.integers(len(images)))
            xp, yp = sample_patch(images[i], labels[i], roi, rng)
            xs.append(xp)
            ys.append(yp)
        x = torch.from_numpy(np.stack(xs))[:, None]
        y = torch.from_numpy(np.stack(ys))
        loss = dice_ce_loss(net(x), y, 1.0, 1.0)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log and (step % 25 == 0 or step == steps - 1):
            log(f"  step {step + 1}/{steps} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    net.eval()
    return {"final_loss": float(np.mean(losses[-10:])), "seconds": time.perf_counter() - t0}


def _param_groups(net, lr: float, encoder_lr_scale: float) -> list[dict]:
    if encoder_lr_scale == 1.0:
        return [{"params": list(net.parameters())}]
    encoder = list(net.swinViT.parameters())
    ids = {id(p) for p in encoder}
    return [{"params": encoder, "lr": lr * encoder_lr_scale}, {"params": [p for p in net.parameters() if id(p) not in ids]}]


@torch.no_grad()
def evaluate(net, images: list[np.ndarray], labels: list[np.ndarray], roi=(32, 64, 32), overlap: float = 0.5,
             classes=(1, 2), resample_to=None) -> dict[str, float]:
    """Per-class Dice on whole volumes. ``resample_to``: the network sees each image resized to this size
    (the fine-tuning geometry) and its logits are resized back, so Dice is always on the original grid."""
    net.eval()
    per = {c: [] for c in classes}
    t0 = time.perf_counter()
    for x, y in zip(images, labels, strict=True):
        xin = resample_image(x, resample_to) if resample_to else x
        logits = sliding_window_logits(net, torch.from_numpy(np.ascontiguousarray(xin))[None, None], roi, overlap)
        logits = resample_logits(logits, np.shape(y))
        pred = logits.argmax(1)[0].numpy()
        for c, d in dice_per_class(pred, np.asarray(y), classes).items():
            per[c].append(d)
    out = {f"dice_class{c}": float(np.mean(v)) for c, v in per.items()}
    out["mean_dice"] = float(np.mean([out[f"dice_class{c}"] for c in classes]))
    out["seconds_per_volume"] = (time.perf_counter() - t0) / max(1, len(images))
    return out


def few_label_run(init, budget, seed: int, data: dict, test_cases: list[str], steps: int, roi=(32, 64, 32),
                  batch_size: int = 2, lr: float = 1e-3, resample_to=None, log=None, encoder_lr_scale: float = 1.0) -> dict:
    """One cell of the table: pick ``budget`` labelled volumes (seeded), fine-tune, evaluate on test_cases. The
    segmenter's fresh layers draw from torch's global generator: seed it first (the runner does, per cell).

    ``resample_to``: fine-tune on volumes resized to this size (and predict on resized test volumes, Dice on
    the original grid), e.g. VoCo's pretraining volume size, so the network sees anatomy at the scale it was
    pretrained on. None: the original 1 mm grid."""
    from ..data.hippocampus import label_budget_cases

    cases = label_budget_cases(data["train"], budget, seed)
    tr = [data["load"](c) for c in cases]
    if resample_to:
        tr = [(resample_image(a, resample_to), resample_label(b, resample_to)) for a, b in tr]
    te = [data["load"](c) for c in test_cases]
    net = make_segmenter(init, out_channels=3)
    fit = finetune(net, [a for a, _ in tr], [b for _, b in tr], roi, steps, batch_size, lr, seed=seed, log=log,
                   encoder_lr_scale=encoder_lr_scale)
    res = evaluate(net, [a for a, _ in te], [b for _, b in te], roi, resample_to=resample_to)
    return {**res, **{f"train_{k}": v for k, v in fit.items()}, "labelled_cases": cases}


__all__ = ["dice_per_class", "evaluate", "few_label_run", "finetune", "make_segmenter", "resample_image", "resample_label",
           "resample_logits", "sliding_window_logits"]
