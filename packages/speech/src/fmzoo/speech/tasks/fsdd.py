"""``fmzoo evaluate|finetune <speech checkpoint> --dataset fsdd-digit|fsdd-speaker`` on FSDD (README split).

evaluate: frozen upstream + SUPERB weighted-sum + linear probe, mean ± std over ``--seeds``.
finetune: upstream + weighted-sum head trained end to end (optionally on a label budget
``--per-class N`` / ``--fraction F`` of the training clips), test accuracy over ``--seeds``."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from fmzoo.core.evaluation import label_budget, mean_std

from ..audio import ResampleWarning
from ..data.fsdd import load_fsdd
from .probe import finetune, layer_means, train_probe

TASKS = {"fsdd-digit": (1, 10), "fsdd-speaker": (2, 6)}


def cli_entry(model, options: dict) -> dict:
    dataset = options.get("dataset") or "fsdd-speaker"
    if dataset not in TASKS:
        raise ValueError(f"unknown speech dataset {dataset!r}; expected one of {sorted(TASKS)}")
    col, n_classes = TASKS[dataset]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        train = load_fsdd("train", model.input_spec)
        test = load_fsdd("test", model.input_spec)
    tr_w, tr_y = train[0], train[col]
    te_w, te_y = test[0], test[col]
    if options.get("per_class") or options.get("fraction"):
        idx = label_budget(tr_y.numpy(), per_class=options.get("per_class"), fraction=options.get("fraction"), seed=0)
        idx = np.asarray(idx)
        tr_w, tr_y = [tr_w[i] for i in idx], tr_y[torch.as_tensor(idx)]
    seeds = options.get("seeds") or [0]
    torch.set_num_threads(1)
    if options.get("mode") == "evaluate":
        a, b = layer_means(model, tr_w), layer_means(model, te_w)
        scores = [train_probe(a, tr_y, b, te_y, n_classes, seed=s)["accuracy"] for s in seeds]
        protocol = "frozen upstream, softmax-weighted layer sum, mean pooling, linear probe"
    else:
        epochs = int(options.get("max_epochs") or 3)
        scores = [finetune(model, tr_w, tr_y, te_w, te_y, n_classes, epochs=epochs, seed=s)["accuracy"] for s in seeds]
        protocol = f"fine-tuned end to end ({epochs} epochs, AdamW 1e-4), weighted layer sum + mean pool + linear"
    mean, std = mean_std(scores)
    return {"dataset": dataset, "train_clips": len(tr_w), "test_clips": len(te_w), "protocol": protocol,
            "accuracy": {"mean": mean, "std": std, "seeds": list(seeds), "values": scores}}
