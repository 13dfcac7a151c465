"""The paper tables' protocols (``reproduce.py``: rs-preprocessing, softcon-eurosat) on frozen or fine-tuned
backbones: features under one of Corley et al.'s four preprocessing settings, kNN / linear probe
(fmzoo.core.evaluation) and few-label fine-tuning with flips (fmzoo.core FinetuneTask). ``fmzoo evaluate`` /
``fmzoo finetune`` use the core's protocols instead (``tasks.downstream``)."""

from __future__ import annotations

import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from fmzoo.core.evaluation import knn_probe, label_budget, linear_probe
from fmzoo.core.runtime import generator
from torch import nn

SIZES = ("native", "resized")
NORMS = ("div255", "standardized")


def prepare_rgb8(model, images: np.ndarray, size: str = "resized", norm: str = "standardized",
                 product: str = "rgb8") -> torch.Tensor:
    """8-bit RGB (N,3,H,W) -> model input under one of the four benchmark settings.

    ``standardized`` is the checkpoint's own preprocessing (``model.preprocess``) at the pretraining size
    (``resized``, the shipped checkpoints' size_policy) or at the images' own size (``native``: ``size='native'``);
    ``div255`` deliberately deviates from it (÷255 instead of the checkpoint's statistics), as in Corley et al.'s
    benchmark. Model bands absent from the product are 0 (= mean).
    """
    if size not in SIZES or norm not in NORMS:
        raise ValueError(f"size in {SIZES}, norm in {NORMS}; got {size!r}, {norm!r}")
    x = torch.from_numpy(np.ascontiguousarray(images))
    if norm == "standardized":
        return model.preprocess(x, product=product, size="resize" if size == "resized" else "native")
    spec = model.input_spec
    prod = spec["products"][product]
    x = x.float() / 255.0
    if size == "resized":
        s = int(spec["input_size"])
        x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
    out = x.new_zeros(x.shape[0], len(model.bands), *x.shape[-2:])
    for i, b in enumerate(prod["bands"]):
        out[:, model.bands.index(b)] = x[:, i]
    return out


@torch.no_grad()
def features(model, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def rgb8_features(model, images: np.ndarray, size: str = "resized", norm: str = "standardized",
                  chunk: int = 512) -> np.ndarray:
    """Features of 8-bit RGB images under one setting, preprocessed chunk by chunk (bounded memory)."""
    return np.concatenate([features(model, prepare_rgb8(model, images[i:i + chunk], size, norm))
                           for i in range(0, len(images), chunk)])


def knn_accuracy(model, train, test, size="resized", norm="standardized", k: int = 20) -> float:
    (xtr, ytr), (xte, yte) = train, test
    ftr, fte = rgb8_features(model, xtr, size, norm), rgb8_features(model, xte, size, norm)
    return 100.0 * knn_probe(ftr, ytr, fte, yte, k=k, metric="cosine")["accuracy"]


def frozen_features(model, train, test) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) features under the model's own preprocessing (resized + standardized == model.preprocess).
    Eval mode draws no random numbers: a runner computes them once per model and probes them under every seed."""
    return rgb8_features(model, train[0]), rgb8_features(model, test[0])


def linear_probe_accuracy(model, train, test, seed: int = 0, features=None) -> float:
    """Own preprocessing (resized + standardized == model.preprocess), frozen features, logistic regression.
    ``features``: ``frozen_features(model, train, test)`` computed before (the same numbers, not recomputed)."""
    (_, ytr), (_, yte) = train, test
    ftr, fte = features if features is not None else frozen_features(model, train, test)
    return 100.0 * linear_probe(ftr, ytr, fte, yte, seed=seed)["accuracy"]


class _Flips(torch.utils.data.Dataset):
    def __init__(self, x, y, seed=0):
        self.x, self.y = x, torch.as_tensor(y)
        self.g = generator(seed)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if torch.rand(1, generator=self.g) < 0.5:
            x = x.flip(-1)
        if torch.rand(1, generator=self.g) < 0.5:
            x = x.flip(-2)
        return x, self.y[i]


def few_label_finetune(model, train, test, per_class: int = 10, seed: int = 0, epochs: int = 30,
                       lr: float = 1e-3, batch_size: int = 25, num_classes: int = 5) -> float:
    """Fine-tune the whole backbone + a linear head on ``per_class`` labels per class (core FinetuneTask,
    AdamW), with the checkpoint's own preprocessing; returns test accuracy (%). The caller seeds the process
    (the table runners call it through ``fmzoo.core.reproduce.per_seed``, which seeds before each seed's call): the
    head's initialisation draws from the global stream; the labelled subset, the flips and the shuffling draw from ``seed``."""
    import copy

    from fmzoo.core.training import FinetuneTask, fit

    (xtr, ytr), (xte, yte) = train, test
    idx = label_budget(ytr, per_class=per_class, seed=seed)
    backbone = copy.deepcopy(model).train()
    head = nn.Linear(backbone.num_features, num_classes)
    task = FinetuneTask(backbone, head, task="classification", lr=lr, weight_decay=1e-4)
    xs = backbone.preprocess(torch.from_numpy(xtr[idx]), product="rgb8")
    loader = torch.utils.data.DataLoader(_Flips(xs, ytr[idx], seed), batch_size=batch_size, shuffle=True,
                                         generator=generator(seed))
    with tempfile.TemporaryDirectory(prefix="fmzoo-rs-ft-") as tmp:
        fit(task, loader, tmp, max_epochs=epochs, progress=False, log_every_n_steps=50)
    task.eval()
    with torch.no_grad():
        pred = torch.cat([task(backbone.preprocess(torch.from_numpy(xte[i:i + 256]), product="rgb8")).argmax(1)
                          for i in range(0, len(xte), 256)]).numpy()
    return 100.0 * float((pred == np.asarray(yte)).mean())
