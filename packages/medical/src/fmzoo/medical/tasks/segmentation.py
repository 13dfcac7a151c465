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

from ..models.fast_swin import speed_up
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


SCRATCH_ARCH = ("in_channels", "feature_size", "window_size", "depths", "num_heads", "use_v2", "dropout_path_rate")


def make_segmenter(init, out_channels: int = 3, arch: dict | None = None, input_spec: dict | None = None,
                   roi_size=None):
    """A MONAI SwinUNETR for segmentation, from scratch (``"scratch"``) or carrying a pretrained model's weights (a
    VoCo, VolumeFusionNet or SwinUNETRSegmenter, or the id/path of such a checkpoint). The network keeps MONAI's
    class and parameter names; it carries ``input_spec`` (the checkpoint's, or ``input_spec`` for scratch, default
    the hippocampus MR spec; ``roi_size`` replaces its ROI; its window attentions and instance norms run
    ``models.fast_swin``'s same-function CPU kernels) and refuses input that does not fit it (wrong shape or
    channels, NaN/Inf, raw HU for a CT window) with an InputSpecError. ``arch``: SwinUNETR sizes, scratch only.
    Bad arguments raise UsageError (or TypeError for an ``init`` of the wrong type) naming what was expected."""
    from fmzoo.core.errors import CheckpointError, RepoIdError, UsageError

    from ..models.swin import SwinUNETRSegmenter, VoCo, VolumeFusionNet, build_swinunetr
    from ..spec import MR_SPEC_HIPPOCAMPUS, validate_spec

    if isinstance(out_channels, bool) or not isinstance(out_channels, int) or out_channels < 1:
        raise UsageError(f"make_segmenter: out_channels must be a positive integer (the number of classes, background "
                         f"included), got {out_channels!r}")
    if isinstance(init, str) and init != "scratch":
        from fmzoo.core import from_pretrained

        try:
            init = from_pretrained(init)
        except (CheckpointError, RepoIdError, KeyError, OSError) as exc:
            raise UsageError(f"make_segmenter: unknown backbone {init!r}: expected 'scratch', a VoCo / VolumeFusionNet "
                             f"/ SwinUNETRSegmenter model, or the id or path of such a checkpoint ({exc})") from None
    pretrained = (VoCo, VolumeFusionNet, SwinUNETRSegmenter)
    if not (init == "scratch" if isinstance(init, str) else isinstance(init, pretrained)):
        raise TypeError(f"make_segmenter: init must be 'scratch', a VoCo, a VolumeFusionNet or a SwinUNETRSegmenter "
                        f"(or a checkpoint id), got {type(init).__name__}")
    if isinstance(init, str):
        spec = dict(input_spec if input_spec is not None else MR_SPEC_HIPPOCAMPUS)
        a = {"feature_size": 12, "window_size": 4, **(arch or {})}
        unknown = sorted(set(a) - set(SCRATCH_ARCH))
        if unknown:
            raise UsageError(f"make_segmenter: unknown arch key(s) {unknown}; expected some of {list(SCRATCH_ARCH)}")
        a.setdefault("in_channels", spec.get("in_channels", 1))
        if a["in_channels"] != spec.get("in_channels"):
            raise UsageError(f"make_segmenter: arch in_channels={a['in_channels']!r} but the input spec says "
                             f"in_channels={spec.get('in_channels')!r}; they must agree")
    else:
        if arch:
            raise UsageError(f"make_segmenter: arch {sorted(arch)} applies to 'scratch' only; a pretrained "
                             f"{type(init).__name__}'s sizes come from its checkpoint")
        spec = dict(init.input_spec)
        have = int(init.init_args.get("in_channels", 1))
        if input_spec is not None:
            for key in ("in_channels", "modality"):
                if input_spec.get(key) != spec.get(key):
                    raise UsageError(f"make_segmenter: input_spec {key}={input_spec.get(key)!r} does not match the "
                                     f"checkpoint's {key}={spec.get(key)!r} (what its weights were trained on)")
            spec = dict(input_spec)
        if have != spec.get("in_channels"):
            raise UsageError(f"make_segmenter: the {type(init).__name__} takes {have} input channel(s) but its input "
                             f"spec says in_channels={spec.get('in_channels')!r}: a broken checkpoint")
    if roi_size is not None:
        spec["roi_size"] = [int(r) if isinstance(r, np.integer) else r for r in roi_size] \
            if isinstance(roi_size, (list, tuple)) else roi_size
    spec = validate_spec(spec, "make_segmenter input_spec")
    if isinstance(init, str):
        try:
            net = build_swinunetr(out_channels=out_channels, **a)
        except (ValueError, TypeError) as exc:  # MONAI's own size checks (feature_size % 12, heads vs depths, ...)
            raise UsageError(f"make_segmenter: arch {a} is not a valid SwinUNETR: {exc}") from None
    elif isinstance(init, SwinUNETRSegmenter):
        net = _segmenter_swinunetr(init, out_channels)
    else:
        net = init.to_swinunetr(out_channels)
    return checked(speed_up(net), spec)


def _segmenter_swinunetr(seg, out_channels: int):
    """A fine-tuned segmenter's SwinUNETR with a fresh output layer of ``out_channels`` classes."""
    from ..models.swin import ENCODER_PREFIXES, build_swinunetr, load_into_swinunetr

    a = seg.init_args
    net = build_swinunetr(a.get("in_channels", 1), out_channels, a.get("feature_size", 12), a.get("window_size", 4),
                          a.get("depths", (2, 2, 2, 2)), a.get("num_heads", (3, 6, 12, 24)), a.get("use_v2", True))
    sd = {k: v for k, v in seg.net.state_dict().items() if not k.startswith("out.")}
    load_into_swinunetr(net, sd, require_prefixes=ENCODER_PREFIXES + ("decoder",))
    return net


def checked(net, spec: dict):
    """``net`` (a MONAI SwinUNETR) with ``net.input_spec = spec`` and a forward pre-hook that checks every input
    against it (``check_network_input``): a user's NaN, wrong channel count or raw HU never reaches the network.
    The class, parameters and random state are untouched."""
    from ..spec import check_network_input

    net.input_spec = spec

    def _check(module, args):
        check_network_input(args[0], module.input_spec)

    if not getattr(net, "_fmzoo_checked", False):
        net.register_forward_pre_hook(_check)
        net._fmzoo_checked = True
    return net


def finetune(net, images: list[np.ndarray], labels: list[np.ndarray], roi=(32, 64, 32), steps: int = 100,
             batch_size: int = 2, lr: float = 1e-3, weight_decay: float = 1e-5, seed: int = 0, log=None,
             encoder_lr_scale: float = 1.0):
    """Fine-tune ``net`` on random patches of the labelled volumes (AdamW, cosine schedule, Dice + CE); ``seed``
    seeds the patch sampler (nothing here draws from torch's global generator).
    ``encoder_lr_scale``: the Swin encoder (``net.swinViT``, the part a pretrained init transfers) learns at
    ``lr * encoder_lr_scale``, the rest at ``lr``."""
    check_training_data(net, images, labels, roi, steps, batch_size)
    rng = np.random.default_rng(seed)
    net.train()
    # channels-last 3-D conv weights and input while training (oneDNN's faster 3-D convolutions, same arithmetic
    # up to summation order), contiguous again at the end; parameters stay the same tensors (the optimizer's)
    net.to(memory_format=torch.channels_last_3d)
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
        x = torch.from_numpy(np.stack(xs))[:, None].contiguous(memory_format=torch.channels_last_3d)
        y = torch.from_numpy(np.stack(ys))
        loss = dice_ce_loss(net(x), y, 1.0, 1.0)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log and (step % 25 == 0 or step == steps - 1):
            log(f"  step {step + 1}/{steps} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    net.to(memory_format=torch.contiguous_format)
    net.eval()
    return {"final_loss": float(np.mean(losses[-10:])), "seconds": time.perf_counter() - t0}


def _n_classes(net) -> int | None:
    w = dict(net.named_parameters()).get("out.conv.conv.weight")  # MONAI SwinUNETR's 1x1x1 output layer
    return None if w is None else int(w.shape[0])


def check_training_data(net, images, labels, roi, steps: int, batch_size: int) -> None:
    """What ``finetune`` needs, refused with an InputSpecError / UsageError naming what was expected: as many label
    volumes as images, each of its image's shape, finite 3D images, integer labels in [0, classes), a ROI of
    multiples of 32 (SwinUNETR's downsampling; volumes smaller than it are zero-padded), steps and batch >= 1."""
    from fmzoo.core.errors import InputSpecError, UsageError

    from ..spec import ROI_DIVISOR

    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UsageError(f"finetune: {name} must be a positive integer, got {v!r}")
    if len(roi) != 3 or any(isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1 or r % ROI_DIVISOR
                            for r in roi):
        raise UsageError(f"finetune: roi must be 3 positive multiples of {ROI_DIVISOR} (SwinUNETR's downsampling), "
                         f"got {tuple(roi)}")
    if not images:
        raise InputSpecError("finetune: needs at least one labelled volume, got none")
    if len(images) != len(labels):
        raise InputSpecError(f"finetune: {len(images)} image volume(s) but {len(labels)} label volume(s); expected one "
                             "label volume per image")
    n_classes = _n_classes(net)
    for i, (x, y) in enumerate(zip(images, labels, strict=True)):
        xs, ys = np.shape(x), np.shape(y)
        if len(xs) != 3:
            raise InputSpecError(f"finetune: image {i} has shape {xs}; expected a preprocessed 3D volume (X, Y, Z)")
        if xs != ys:
            raise InputSpecError(f"finetune: label {i} has shape {ys} but its image has shape {xs}; expected the same "
                                 "grid (preprocess both with the same spec, the label with label=True)")
        if not np.isfinite(x).all():
            raise InputSpecError(f"finetune: image {i} contains NaN or Inf voxels; expected finite intensities")
        y = np.asarray(y)
        if not (np.issubdtype(y.dtype, np.integer) or np.array_equal(y, np.rint(y))):
            raise InputSpecError(f"finetune: label {i} holds non-integer values; expected class indices")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (n_classes is not None and hi >= n_classes):
            raise InputSpecError(f"finetune: label {i} holds classes {sorted(int(c) for c in np.unique(y))}; the "
                                 f"network predicts {n_classes} classes, so labels must lie in [0, {n_classes - 1}]"
                                 if n_classes else f"finetune: label {i} holds negative classes")


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


__all__ = ["check_training_data", "checked", "dice_per_class", "evaluate", "few_label_run", "finetune", "make_segmenter", "resample_image", "resample_label",
           "resample_logits", "sliding_window_logits"]
