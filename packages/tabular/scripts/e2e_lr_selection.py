"""Paired test of end-to-end T-JEPA fine-tuning against the raw-feature MLP on UCI Adult, with each arm's
learning rate chosen per seed on the validation split (the 10% of the training rows that early stopping uses).

Pretrained arm: encoder lr in {1e-3, 1e-4, 3e-5} (head lr 1e-3); raw arm: one-hot MLP head lr in {1e-3, 3e-4,
1e-4}. Quick settings (15 epochs). One JSON line per seed with (validation, test) accuracy of every candidate,
then the selected test accuracies, the paired difference, wins and a one-sided paired t-test.

    OMP_NUM_THREADS=1 python packages/tabular/scripts/e2e_lr_selection.py CHECKPOINT --seeds 0-9 --out sel.jsonl

About 3 min per seed for the pretrained arm and 1 min for the raw arm on one core.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from fmzoo.core.evaluation import classification_metrics, fit_head, predict_head
from fmzoo.core.registry import dataset_loader
from fmzoo.tabular import TJEPA
from fmzoo.tabular.tasks.downstream import finetune_network, make_head, model_schema, split_validation

ENCODER_LRS = (1e-3, 1e-4, 3e-5)
RAW_HEAD_LRS = (1e-3, 3e-4, 1e-4)
QUICK = {"max_epochs": 15, "lr": 1e-3}


def _take(x, idx):
    return tuple(t[idx] for t in x) if isinstance(x, tuple) else x[idx]


def _val_test(net, optim, train_x, test_x, y, y_test, tr, va, seed) -> tuple[float, float]:
    optim = {**optim, "batch_size": int(min(optim["batch_size"], max(32, len(tr) // 8)))}
    net = fit_head(net, _take(train_x, tr), y[tr], _take(train_x, va), y[va], task="classification", seed=seed, **optim)
    val = classification_metrics(y[va], predict_head(net, _take(train_x, va), task="classification"))["accuracy"]
    test = classification_metrics(y_test, predict_head(net, test_x, task="classification"))["accuracy"]
    return val, test


def run_seed(model: TJEPA, data: dict, seed: int) -> dict:
    (X, y), (Xt, yt) = data["train"], data["test"]
    schema = model_schema(model)
    tr_cols, te_cols = schema.transform(X), schema.transform(Xt)
    tr, va = split_validation(len(y), 0.1, seed)
    rec = {"seed": seed, "e2e": {}, "raw": {}}
    for lr in ENCODER_LRS:
        net, optim = finetune_network(model, tr_cols, tr, "mlp", 2, init="pretrained", seed=seed)
        optim["module_lrs"] = {net.encoder: lr}
        rec["e2e"][f"{lr:g}"] = _val_test(net, {**optim, **QUICK}, tr_cols, te_cols, y, yt, tr, va, seed)
    oh, oht = schema.one_hot(X).numpy(), schema.one_hot(Xt).numpy()
    mu, sd = oh[tr].mean(0), oh[tr].std(0) + 1e-6
    a, b = (oh - mu) / sd, (oht - mu) / sd
    for lr in RAW_HEAD_LRS:
        net, optim = make_head("mlp", a.shape[1], 2, seed=seed)
        rec["raw"][f"{lr:g}"] = _val_test(net, {**optim, **QUICK, "lr": lr}, a, b, y, yt, tr, va, seed)
    for arm in ("e2e", "raw"):
        best = max(rec[arm], key=lambda k: rec[arm][k][0])
        rec[f"{arm}_selected"] = {"lr": float(best), "test": rec[arm][best][1]}
    return rec


def summary(records: list[dict]) -> dict:
    a = np.array([r["e2e_selected"]["test"] for r in records])
    b = np.array([r["raw_selected"]["test"] for r in records])
    d = a - b
    n = len(d)
    out = {"seeds": [r["seed"] for r in records], "e2e_mean": a.mean(), "e2e_std": a.std(ddof=1) if n > 1 else 0.0,
           "raw_mean": b.mean(), "raw_std": b.std(ddof=1) if n > 1 else 0.0, "diff_mean": d.mean(),
           "wins": int((d > 0).sum()), "losses": int((d < 0).sum()), "ties": int((d == 0).sum())}
    if n > 1 and d.std(ddof=1) > 0:
        from scipy import stats

        t = d.mean() / (d.std(ddof=1) / math.sqrt(n))
        out["t"], out["p_one_sided"] = float(t), float(stats.t.sf(t, n - 1))
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in out.items()}


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="a T-JEPA checkpoint id or folder pretrained on Adult")
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--out", help="append one JSON line per seed here")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = TJEPA.from_pretrained(a.checkpoint)
    data = dataset_loader("adult")()
    records = []
    for seed in _seeds(a.seeds):
        rec = run_seed(model, data, seed)
        records.append(rec)
        print(json.dumps(rec), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
    print(json.dumps(summary(records)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
