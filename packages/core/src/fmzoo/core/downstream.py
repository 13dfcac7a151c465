"""The downstream contract: what ``fmzoo evaluate`` and ``fmzoo finetune`` mean for every checkpoint.

The core owns the protocols; a domain gives small hooks for one architecture (``DownstreamHooks``,
registered in ``Plugin.downstream`` under the architecture name):

- ``evaluate``: frozen features. Classification and regression: the checkpoint's pooled features of
  every example are computed once, then for each seed a labelled subset is drawn and a linear probe
  (and, for classification, a kNN probe) is fitted. Segmentation and forecasting: the encoder is frozen
  and only the task head is trained, with the fine-tuning loop below.
- ``finetune``: the encoder and a fresh head are trained end to end (AdamW, cosine schedule, a fixed
  number of epochs) on each seed's labelled subset, then scored on the whole test split.

Every seed draws its own labelled subset (``--per-class``, ``--fraction`` or ``--n-labelled``) and seeds the
head's initialisation and the shuffling, so the spread over seeds is the spread a scientist meets. A trivial
baseline (the majority class, the training mean, ...) is scored beside the result, and a result that does not
beat it is flagged. ``--scratch`` adds the same protocol on a randomly initialised copy of the architecture.
"""

from __future__ import annotations

import copy
import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputSpecError
from .evaluation import (
    classification_metrics,
    knn_probe,
    label_budget,
    linear_probe,
    mean_std,
    regression_metrics,
    spearman,
)
from .runtime import generator, seeded

KINDS = ("classification", "regression", "segmentation", "forecasting")
# metric -> higher is better
METRIC_DIRECTION = {"accuracy": True, "roc_auc": True, "dice": True, "r2": True, "spearman": True,
                    "rmse": False, "mae": False, "mse": False}


@dataclass
class Split:
    """Labelled examples: ``items`` are inputs the hooks understand (a list, an array, a DataFrame, ...);
    ``targets`` are class ids or values (an array) for classification/regression, a sequence otherwise."""

    items: Any
    targets: Any

    def __len__(self) -> int:
        return len(self.items)

    def take(self, idx) -> Split:
        return Split(take(self.items, idx), take(self.targets, idx))


@dataclass
class Task:
    """A labelled downstream task: a train and a test split, what kind of prediction, and its headline metric."""

    name: str
    kind: str
    train: Split
    test: Split
    n_outputs: int  # classes, regression targets, segmentation labels, or forecast values per window
    metric: str
    source: str = ""  # where the data came from: a dataset name and root, or the user's path
    class_names: list | None = None
    notes: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task kind must be one of {KINDS}, got {self.kind!r}")
        if self.metric not in METRIC_DIRECTION:
            raise ValueError(f"unknown metric {self.metric!r}; known: {sorted(METRIC_DIRECTION)}")
        for name, split in (("train", self.train), ("test", self.test)):
            if len(split) == 0:
                raise InputSpecError(f"{self.name}: the {name} split is empty")
            if len(split.items) != len(split.targets):
                raise InputSpecError(f"{self.name}: the {name} split has {len(split.items)} inputs but "
                                     f"{len(split.targets)} targets")


def take(items, idx):
    """Rows ``idx`` of a list, tuple of arrays, NumPy array, tensor or pandas object."""
    idx = np.asarray(idx, dtype=np.int64)
    if hasattr(items, "iloc"):
        return items.iloc[idx]
    if isinstance(items, np.ndarray):
        return items[idx]
    if hasattr(items, "index_select"):  # a torch tensor
        import torch

        return items[torch.as_tensor(idx)]
    if isinstance(items, tuple):
        return tuple(take(part, idx) for part in items)
    return [items[int(i)] for i in idx]


def encoder_head(encoder, features, head, freeze: bool):
    """``head(features(encoder, inputs))`` as one module; with ``freeze`` the encoder has no gradients and stays in eval
    mode while the head trains. What ``DownstreamHooks.network`` returns by default; domains reuse it."""
    return _encoder_head_class()(encoder, features, head, freeze)


def _encoder_head_class():
    from torch import nn

    class _EncoderHead(nn.Module):
        """``head(features(encoder, inputs))``; with ``freeze`` the encoder has no gradients and stays in eval mode
        (dropout off, normalisation statistics fixed) while the head trains."""

        def __init__(self, encoder, features, head, freeze: bool):
            super().__init__()
            self.encoder, self.head, self.freeze = encoder, head, freeze
            self._features = features
            if freeze:
                encoder.requires_grad_(False)

        def train(self, mode: bool = True):
            super().train(mode)
            if self.freeze:
                self.encoder.eval()
            return self

        def forward(self, inputs):
            return self.head(self._features(self.encoder, inputs))

    return _EncoderHead


class DownstreamHooks:
    """What a domain provides for one architecture. Override ``load`` and ``features`` (and ``collate`` unless
    items stack into one tensor); segmentation and forecasting override ``network`` (and ``loss``/``score``)."""

    datasets: tuple[str, ...] = ()  # names accepted by --dataset; the first is the default
    data_format: str = ""  # what --data PATH expects, in words (shown by --help and in errors)
    target: str | None = None  # --target NAME: the label column of the user's --data (set by the CLI before load)
    options: tuple[str, ...] = ()  # attributes a user may set with --option NAME=VALUE (e.g. a forecast horizon)
    checkpoint_dir = None  # the checkpoint's directory (its provenance.json names the data it was pretrained on)

    def configure(self, options: dict) -> None:
        """Apply ``--option NAME=VALUE`` settings; a name not in ``options`` is an error naming the allowed ones."""
        for name, value in options.items():
            if name not in self.options:
                allowed = ", ".join(self.options) or "none"
                raise InputSpecError(f"{type(self).__name__} has no option {name!r}; options: {allowed}")
            setattr(self, name, value)
    # fine-tuning defaults (the CLI's --epochs/--steps/--lr/--batch-size override them); ``steps`` (optimiser steps,
    # whatever the number of labelled examples) takes precedence over ``epochs`` when set
    epochs: int = 10
    steps: int | None = None
    lr: float = 1e-4  # encoder and head, fine-tuned end to end
    frozen_lr: float = 1e-3  # head only, encoder frozen (segmentation / forecasting evaluate)
    head_lr: float | None = None  # fine-tuning: the fresh head's own rate (None: the same as the encoder's)
    threads: int | None = None  # CPU threads when --threads is not given (1 where a kernel's sum order varies)
    weight_decay: float = 0.01
    batch_size: int = 32
    eval_batch_size: int = 64

    # -- data -------------------------------------------------------------------------------------
    def load(self, model, dataset: str | None, path: Path | None) -> Task:
        raise NotImplementedError

    def collate(self, model, items):
        """A batch of items -> the inputs ``features``/the network take (default: stack into one float tensor)."""
        import torch

        return torch.as_tensor(np.stack([np.asarray(i) for i in items]) if isinstance(items, list) else np.asarray(items),
                               dtype=torch.float32)

    def augment(self, model, inputs, gen):
        """Training-time augmentation of a collated batch (``gen``: the run's seeded torch generator); none by
        default. Applied by the fine-tuning loop only, never to evaluation or frozen-feature batches."""
        return inputs

    def collate_targets(self, task: Task, targets):
        import torch

        if task.kind == "classification":
            return torch.as_tensor(np.asarray(targets), dtype=torch.long)
        if task.kind == "regression":
            return torch.as_tensor(np.asarray(targets), dtype=torch.float32)
        return torch.as_tensor(np.stack([np.asarray(t) for t in targets]))

    # -- model ------------------------------------------------------------------------------------
    def features(self, model, inputs):
        """Pooled representation (B, D) of a batch; differentiable (the fine-tuning path trains through it)."""
        raise NotImplementedError

    def network(self, model, task: Task, freeze: bool):
        """Encoder + a fresh task head. Default: a linear head on ``features``."""
        from torch import nn

        return encoder_head(model, self.features, nn.LazyLinear(task.n_outputs), freeze)

    # -- objective ----------------------------------------------------------------------------------
    def loss(self, task: Task, outputs, targets):
        from torch import nn

        if task.kind == "classification":
            return nn.functional.cross_entropy(outputs, targets)
        if task.kind == "regression":
            return nn.functional.mse_loss(outputs.reshape(targets.shape), targets)
        raise NotImplementedError(f"{type(self).__name__} must define loss() for {task.kind}")

    def score(self, task: Task, outputs, targets) -> dict[str, float]:
        """Metrics of the concatenated test outputs against the test targets."""
        if task.kind == "classification":
            return classification_metrics(np.asarray(targets), outputs.softmax(-1).numpy())
        if task.kind == "regression":
            pred = outputs.reshape(len(targets), -1).squeeze(-1).numpy()
            return {**regression_metrics(np.asarray(targets), pred), "spearman": spearman(np.asarray(targets), pred)}
        raise NotImplementedError(f"{type(self).__name__} must define score() for {task.kind}")

    def baseline(self, task: Task, train: Split) -> tuple[str, dict[str, float]]:
        """A trivial predictor fitted on the labelled subset: (its name, its test metrics)."""
        if task.kind == "classification":
            y = np.asarray(train.targets)
            counts = np.bincount(y, minlength=task.n_outputs)
            prob = np.tile(counts / counts.sum(), (len(task.test), 1))
            return "majority class", classification_metrics(np.asarray(task.test.targets), prob)
        if task.kind == "regression":
            mean = np.asarray(train.targets, dtype=float).mean(0)
            pred = np.broadcast_to(mean, np.asarray(task.test.targets).shape)
            return "training mean", regression_metrics(np.asarray(task.test.targets), pred)
        return "", {}


# ------------------------------------------------------------------------------------------- budgets


@dataclass
class Budget:
    """How many labels each seed draws: ``per_class`` per class, a stratified ``fraction``, or ``n`` examples
    (any task kind). None of them: every training example (then seeds differ only in initialisation)."""

    per_class: int | None = None
    fraction: float | None = None
    n: int | None = None

    def __post_init__(self):
        given = [k for k in ("per_class", "fraction", "n") if getattr(self, k) is not None]
        if len(given) > 1:
            raise InputSpecError(f"give at most one label budget, got {', '.join(given)}")
        if self.per_class is not None and (isinstance(self.per_class, bool) or self.per_class < 1):
            raise InputSpecError(f"per_class must be a positive integer, got {self.per_class!r}")
        if self.n is not None and (isinstance(self.n, bool) or self.n < 1):
            raise InputSpecError(f"n_labelled must be a positive integer, got {self.n!r}")
        if self.fraction is not None and not (0 < self.fraction <= 1):
            raise InputSpecError(f"fraction must be in (0, 1], got {self.fraction!r}")

    def describe(self) -> str:
        if self.per_class is not None:
            return f"{self.per_class} per class"
        if self.fraction is not None:
            return f"fraction {self.fraction:g}"
        if self.n is not None:
            return f"{self.n} labelled"
        return "all labels"

    def draw(self, task: Task, seed: int) -> np.ndarray:
        n_train = len(task.train)
        if self.per_class is None and self.fraction is None and self.n is None:
            return np.arange(n_train)
        if self.n is not None:
            if self.n > n_train:
                raise InputSpecError(f"n_labelled={self.n} but the training split has {n_train} examples")
            idx = np.sort(np.random.default_rng(seed).choice(n_train, self.n, replace=False))
        else:
            idx = self._draw_share(task, seed)
        if len(idx) < 2 and n_train >= 2:
            raise InputSpecError(f"the label budget ({self.describe()}) leaves {len(idx)} training example of "
                                 f"{n_train}; give a larger budget")
        return idx

    def _draw_share(self, task: Task, seed: int) -> np.ndarray:
        n_train = len(task.train)
        if self.per_class is not None and task.kind != "classification":
            raise InputSpecError(f"--per-class needs a classification task; {task.name} is {task.kind}: "
                                 "use --fraction or --n-labelled")
        if task.kind == "classification":
            idx = label_budget(np.asarray(task.train.targets), per_class=self.per_class, fraction=self.fraction, seed=seed)
        else:
            k = max(1, int(round(self.fraction * n_train)))
            idx = np.sort(np.random.default_rng(seed).choice(n_train, k, replace=False))
        return idx


# ------------------------------------------------------------------------------------------- protocols


def _progress(iterable, desc: str, enabled: bool, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, file=sys.stderr, dynamic_ncols=True)


def resolve_device(device: str | None):
    """A torch device from ``--device`` (cpu, cuda, cuda:N, mps, auto; None: cpu), refused with a clear message
    when that kind of device is not visible."""
    import torch

    name = (device or "cpu").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputSpecError(f"--device {device!r}: expected cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise InputSpecError(f"--device {device}: no such CUDA device is visible "
                             f"({torch.cuda.device_count()} CUDA devices; torch {torch.__version__})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputSpecError(f"--device {device}: Apple MPS is not available in this torch build")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputSpecError(f"--device {device!r}: expected cpu, cuda, cuda:N, mps or auto")
    return dev


def _bf16(precision: str | None) -> bool:
    if precision in (None, "32", "32-true"):
        return False
    if precision not in ("bf16", "bf16-mixed"):
        raise InputSpecError(f"--precision {precision!r}: expected 32 or bf16")
    return True


def autocast(device, precision: str | None):
    """bf16 autocast on ``device`` when ``precision`` is "bf16" (CPU too); a no-op context for "32"/None."""
    import contextlib

    import torch

    if not _bf16(precision):
        return contextlib.nullcontext()
    return torch.autocast(device_type=getattr(device, "type", "cpu") or "cpu", dtype=torch.bfloat16)


def to_device(obj, device):
    """``obj`` (a tensor, a PyG batch, or dicts/lists/tuples of them) on ``device``; anything else unchanged."""
    if device is None or str(device) == "cpu":  # collated batches are built on the CPU
        return obj
    if hasattr(obj, "to") and callable(obj.to) and not isinstance(obj, type):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def _batches(n: int, size: int):
    return [np.arange(i, min(n, i + size)) for i in range(0, n, size)]


def _device_of(module):
    return next((p.device for p in module.parameters()), None)


def embed(hooks: DownstreamHooks, model, items, progress: bool = False, desc: str = "embedding",
          precision: str | None = None) -> np.ndarray:
    """Frozen pooled features of every item, batched, in eval mode without gradients (on the model's device)."""
    import torch

    model.eval()
    device, out = _device_of(model), []
    with torch.no_grad(), autocast(device, precision):
        for idx in _progress(_batches(len(items), hooks.eval_batch_size), desc, progress):
            inputs = to_device(hooks.collate(model, take(items, idx)), device)
            out.append(hooks.features(model, inputs).float().reshape(len(idx), -1).cpu())
    return torch.cat(out).numpy()


def predict(hooks: DownstreamHooks, net, model, items, progress: bool = False, precision: str | None = None):
    """The network's outputs for every item (concatenated along the batch, on the CPU; float32 under bf16)."""
    import torch

    net.eval()
    device, out = _device_of(net), []
    with torch.no_grad(), autocast(device, precision):
        for idx in _progress(_batches(len(items), hooks.eval_batch_size), "predicting", progress):
            o = net(to_device(hooks.collate(model, take(items, idx)), device))
            out.append((_float(o) if _bf16(precision) else o).cpu())
    return torch.cat(out)


def _batch_starts(n: int, batch_size: int) -> list[int]:
    """Start of every batch of an epoch; a trailing remainder of one is dropped (it breaks batch statistics) unless
    batches are of one by choice."""
    return [i for i in range(0, n, batch_size) if min(batch_size, n - i) >= 2 or batch_size == 1 or n < 2]


def train_network(hooks: DownstreamHooks, net, model, task: Task, train: Split, seed: int, epochs: int, lr: float,
                  batch_size: int, weight_decay: float, progress: bool = False, steps: int | None = None,
                  precision: str | None = None):
    """AdamW + cosine (to 0 at the last step) on ``train``: ``epochs`` passes, or exactly ``steps`` optimiser steps
    when given (as many passes as that takes); batches shuffled by a generator seeded with ``seed``. Returns the mean
    training loss of each pass."""
    import torch
    from torch.nn.modules.lazy import LazyModuleMixin

    n = len(train)
    device = _device_of(net)
    if any(isinstance(m, LazyModuleMixin) for m in net.modules()):
        with torch.no_grad():  # a lazy head gets its shape from one forward before the optimiser sees it
            net.eval()
            net(to_device(hooks.collate(model, take(train.items, np.arange(min(2, n)))), device))
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the network has no trainable parameters")
    head = getattr(net, "head", None)
    if hooks.head_lr is not None and isinstance(head, torch.nn.Module) and not getattr(net, "freeze", False):
        head_ids = {id(p) for p in head.parameters()}
        groups = [{"params": [p for p in params if id(p) not in head_ids], "lr": lr},
                  {"params": [p for p in params if id(p) in head_ids], "lr": hooks.head_lr}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    per_epoch = len(_batch_starts(n, batch_size))
    total_steps = int(steps) if steps else epochs * per_epoch
    passes = math.ceil(total_steps / per_epoch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    gen = generator(seed)
    losses, done = [], 0
    bar = _progress(range(passes), f"training (seed {seed})", progress)
    for _ in bar:
        net.train()
        perm = torch.randperm(n, generator=gen).numpy()
        total, seen = 0.0, 0
        for i in _batch_starts(n, batch_size):
            if done == total_steps:
                break
            idx = perm[i: i + batch_size]
            batch = train.take(idx)
            opt.zero_grad(set_to_none=True)
            inputs = to_device(hooks.augment(model, hooks.collate(model, batch.items), gen), device)  # gen: CPU
            with autocast(device, precision):
                out = net(inputs)
            out = _float(out) if _bf16(precision) else out  # the loss in float32, never in bf16
            loss = hooks.loss(task, out, to_device(hooks.collate_targets(task, batch.targets), device))
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            total, seen = total + loss.item() * len(idx), seen + len(idx)
        losses.append(total / max(seen, 1))
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"the training loss became {losses[-1]} (seed {seed}); try a lower --lr")
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
    net.eval()
    return losses


def _float(out):
    """A network's outputs in float32 (bf16 autocast returns bf16); the loss is computed in float32."""
    import torch

    if isinstance(out, torch.Tensor) and out.is_floating_point():
        return out.float()
    if isinstance(out, dict):
        return {k: _float(v) for k, v in out.items()}
    if isinstance(out, list | tuple):
        return type(out)(_float(v) for v in out)
    return out


def scratch_copy(model):
    """The same architecture with fresh random weights (seeded by the caller) and the checkpoint's input spec."""
    fresh = type(model)(**model.init_args)
    fresh.input_spec = copy.deepcopy(getattr(model, "input_spec", None))
    return fresh


def _summary(values: list[dict], seeds: list[int], n_labelled: list[int]) -> dict:
    out = {"seeds": seeds, "n_labelled": n_labelled, "metrics": {}}
    for key in values[0]:
        vals = [float(v[key]) for v in values if key in v]
        mean, std = mean_std(vals)
        out["metrics"][key] = {"mean": mean, "std": std, "n": len(vals), "values": vals}
    return out


def run(mode: str, model, hooks: DownstreamHooks, task: Task, seeds: Sequence[int] = (0,), budget: Budget | None = None,
        scratch: bool = False, epochs: int | None = None, lr: float | None = None, batch_size: int | None = None,
        threads: int | None = None, knn: bool = True, progress: bool = False, steps: int | None = None,
        device: str | None = None, precision: str | None = None) -> dict:
    """``mode`` "evaluate" (frozen features) or "finetune" (end to end) over ``seeds``; returns the result dict
    (rows per init and protocol, the trivial baseline, warnings) that ``format_result`` prints. ``device`` (cpu,
    cuda, cuda:N, mps, auto) is where the encoder and networks run; probes and scores stay on the CPU. ``precision``
"bf16": bf16 autocast for the encoder and networks (losses, probes and scores in float32)."""
    if mode not in ("evaluate", "finetune"):
        raise ValueError(f"mode must be 'evaluate' or 'finetune', got {mode!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InputSpecError("give at least one seed")
    budget = budget or Budget()
    steps = None if epochs and not steps else (steps or hooks.steps)  # --epochs alone overrides the hooks' steps
    threads = threads or hooks.threads
    epochs = int(epochs or hooks.epochs)
    batch_size = int(batch_size or hooks.batch_size)
    if epochs < 1 or batch_size < 1 or (steps is not None and steps < 1):
        raise InputSpecError(f"epochs, steps and batch size must be positive, got {epochs}, {steps} and {batch_size}")
    frozen_features = mode == "evaluate" and task.kind in ("classification", "regression")
    dev = resolve_device(device)
    autocast(dev, precision)  # an unknown precision is refused before anything runs
    inits = {"pretrained": model}
    if scratch:
        with seeded(10_000, threads):
            inits["scratch"] = scratch_copy(model)
    inits = {k: v.to(dev) for k, v in inits.items()}
    draws = {s: budget.draw(task, s) for s in seeds}
    rows, baseline_values = [], []
    for s in seeds:
        baseline_name, b = hooks.baseline(task, task.train.take(draws[s]))
        if b:
            baseline_values.append(b)
    for init, backbone in inits.items():
        if frozen_features:
            drawn = np.unique(np.concatenate([draws[s] for s in seeds]))  # only the examples some seed labels
            with seeded(0, threads):
                part = embed(hooks, backbone, take(task.train.items, drawn), progress, f"embedding train ({init})",
                             precision)
                tr = np.zeros((len(task.train), part.shape[1]), dtype=part.dtype)
                tr[drawn] = part
                te = embed(hooks, backbone, task.test.items, progress, f"embedding test ({init})", precision)
            protocols = {"linear probe": []}
            if knn and task.kind == "classification":
                protocols["kNN (k=20, cosine)"] = []
            for s in _progress(seeds, "seeds", progress):
                idx = draws[s]
                ytr, yte = np.asarray(task.train.targets)[idx], np.asarray(task.test.targets)
                with seeded(s, threads):
                    protocols["linear probe"].append(linear_probe(tr[idx], ytr, te, yte, task=task.kind, seed=s,
                                                                  with_spearman=task.kind == "regression"))
                    if "kNN (k=20, cosine)" in protocols:
                        protocols["kNN (k=20, cosine)"].append(knn_probe(tr[idx], ytr, te, yte, k=20))
            for name, values in protocols.items():
                rows.append({"init": init, "protocol": name, **_summary(values, seeds, [len(draws[s]) for s in seeds])})
            continue
        values, curves = [], []
        freeze = mode == "evaluate"
        for s in seeds:
            with seeded(s, threads):
                net = hooks.network(copy.deepcopy(backbone), task, freeze=freeze)
                curves.append(train_network(hooks, net, backbone, task, task.train.take(draws[s]), s, epochs,
                                            lr or (hooks.frozen_lr if freeze else hooks.lr), batch_size,
                                            hooks.weight_decay, progress, steps=steps, precision=precision))
                values.append(hooks.score(task, predict(hooks, net, backbone, task.test.items, progress, precision),
                                          task.test.targets))
        length = f"{steps} steps" if steps else f"{epochs} epochs"
        protocol = f"frozen encoder, head trained ({length})" if freeze else f"fine-tuned end to end ({length})"
        rows.append({"init": init, "protocol": protocol, "final_train_loss": [c[-1] for c in curves],
                     **_summary(values, seeds, [len(draws[s]) for s in seeds])})
    result = {
        "mode": mode, "task": task.name, "kind": task.kind, "source": task.source, "metric": task.metric,
        "higher_is_better": METRIC_DIRECTION[task.metric], "budget": budget.describe(),
        "train_examples": len(task.train), "test_examples": len(task.test), "rows": rows,
        "settings": (({"steps": steps} if steps else {"epochs": epochs}) | {"batch_size": batch_size, "threads": threads}
                     if not frozen_features else {}) | {"device": str(dev), "precision": precision or "32"},
        "notes": task.notes, "warnings": [],
    }
    if baseline_values:
        result["baseline"] = {"name": baseline_name, **_summary(baseline_values, seeds, [len(draws[s]) for s in seeds])}
        result["warnings"] = _below_baseline(result)
    for w in result["warnings"]:
        warnings.warn(w, stacklevel=2)
    return result


def _below_baseline(result: dict) -> list[str]:
    metric, higher = result["metric"], result["higher_is_better"]
    base = result["baseline"]["metrics"].get(metric)
    if base is None:
        return []
    out = []
    for row in result["rows"]:
        if metric not in row["metrics"]:  # e.g. kNN gives no ROC-AUC
            continue
        for seed, value, ref in zip(row["seeds"], row["metrics"][metric]["values"], base["values"], strict=True):
            if (value <= ref) if higher else (value >= ref):
                out.append(f"{row['init']} / {row['protocol']}, seed {seed}: {metric} {value:.4f} does not beat the "
                           f"{result['baseline']['name']} baseline ({ref:.4f})")
    return out


def _fmt(m: dict) -> str:
    if m["n"] > 1:
        return f"{m['mean']:.4f} ± {m['std']:.4f} (n={m['n']})"
    return f"{m['mean']:.4f} (n=1)"


def format_result(result: dict) -> str:
    """A table for the terminal: one line per init and protocol, the baseline last, warnings after."""
    metric = result["metric"]
    others = sorted({k for r in result["rows"] for k in r["metrics"]} - {metric})
    lines = [f"{result['mode']} on {result['task']} ({result['kind']}; {result['budget']}; "
             f"train {result['train_examples']}, test {result['test_examples']})"]
    if result.get("source"):
        lines.append(f"data: {result['source']}")
    if result.get("notes"):
        lines.append(f"notes: {result['notes']}")
    header = ["init", "protocol", metric, *others[:2]]
    body = [[r["init"], r["protocol"], _fmt(r["metrics"][metric]) if metric in r["metrics"] else "-",
             *(_fmt(r["metrics"][k]) if k in r["metrics"] else "-" for k in others[:2])] for r in result["rows"]]
    if "baseline" in result:
        b = result["baseline"]["metrics"]
        body.append(["-", result["baseline"]["name"], _fmt(b[metric]) if metric in b else "-",
                     *(_fmt(b[k]) if k in b else "-" for k in others[:2])])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    for row in [header, *body]:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
    arrow = "higher" if result["higher_is_better"] else "lower"
    lines.append(f"({metric}: {arrow} is better)")
    for w in result["warnings"]:
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)


def hooks_for(architecture: str) -> DownstreamHooks:
    """The registered hooks of an architecture (``Plugin.downstream``), instantiated."""
    from .registry import downstream_hooks

    cls = downstream_hooks(architecture)
    hooks = cls()
    if not isinstance(hooks, DownstreamHooks):
        raise TypeError(f"{architecture}: the registered downstream hooks are a {type(hooks).__name__}, "
                        "not fmzoo.core.downstream.DownstreamHooks")
    return hooks


# ------------------------------------------------------------------------------------------- Python API


def _api(mode: str, model, data=None, *, dataset: str | None = None, target: str | None = None,
         options: dict | None = None, seeds: Sequence[int] = (0,), per_class: int | None = None,
         fraction: float | None = None, n_labelled: int | None = None, **settings) -> dict:
    from .hub import HubMixin

    if isinstance(model, (str, Path)):
        from . import from_pretrained

        model = from_pretrained(model)
    if not isinstance(model, HubMixin):
        raise InputSpecError(f"{mode}() takes a checkpoint id, a path or a loaded fmzoo model, "
                             f"got a {type(model).__name__}")
    if data is not None and dataset is not None:
        raise InputSpecError("give data= (your own files) or dataset= (a named real dataset), not both")
    if target is not None and data is None:
        raise InputSpecError("target= names the label column of your own data=; give data= too")
    architecture = type(model).__name__
    hooks = hooks_for(architecture)
    if dataset is not None and hooks.datasets and dataset not in hooks.datasets:
        raise InputSpecError(f"{architecture} checkpoints take dataset= {' | '.join(hooks.datasets)}, got {dataset!r}")
    if data is not None and not Path(data).exists():
        raise InputSpecError(f"data={data}: no such file or directory (expected {hooks.data_format or 'the domain format'})")
    budget = Budget(per_class=per_class, fraction=fraction, n=n_labelled)  # checked before any data is read
    hooks.target = target
    hooks.checkpoint_dir = getattr(model, "checkpoint_dir", None)
    hooks.configure(dict(options or {}))
    task = hooks.load(model, dataset, Path(data) if data is not None else None)
    settings.setdefault("progress", True)
    result = run(mode, model, hooks, task, seeds=seeds, budget=budget, **settings)
    return {"model": str(getattr(model, "checkpoint_dir", None) or architecture), "architecture": architecture,
            **result}


def finetune(model, data=None, **kwargs) -> dict:
    """Fine-tune a checkpoint end to end on a small labelled set, as ``fmzoo finetune`` does: ``model`` is an id
    (``"fmzoo/tera-small"``, ``"facebook/wav2vec2-base"``), a path (an fmzoo checkpoint or an official release file)
    or a loaded model; ``data`` is your own data in the domain's everyday format (``--data``), or ``dataset=NAME``
    one of the domain's real datasets (default: the checkpoint's own). Keywords as the CLI's flags: ``target``,
    ``options`` (``--option``), ``seeds``, ``per_class`` / ``fraction`` / ``n_labelled``, ``scratch``, ``epochs``,
    ``steps``, ``lr``, ``batch_size``, ``threads``, ``device``, ``precision``, ``progress``. Returns the result
    dict; ``format_result(result)`` prints it as the CLI does."""
    return _api("finetune", model, data, **kwargs)


def evaluate(model, data=None, **kwargs) -> dict:
    """Frozen-feature evaluation (``fmzoo evaluate``): linear and kNN probes, or a trained head on the frozen
    encoder for segmentation and forecasting. Arguments as :func:`finetune`."""
    return _api("evaluate", model, data, **kwargs)
