"""The downstream protocol: a head on raw features ("scratch") vs the same head on frozen T-JEPA
representations ("pretrained"), on the dataset's official (or fixed) train/test split, with a
validation split carved from train for early stopping. Mean ± std over seeds."""

from __future__ import annotations

import numpy as np
import torch

from fmzoo.core.evaluation import classification_metrics, fit_head, mean_std, predict_head, regression_metrics
from fmzoo.core.registry import dataset_loader

from ..models.tjepa import TJEPA
from ..schema import TabularSchema
from .heads import make_head

HEAD_NAMES = {"linear": "Linear probe", "mlp": "MLP", "resnet": "ResNet"}


def model_schema(model: TJEPA) -> TabularSchema:
    if not model.input_spec:
        raise ValueError("this T-JEPA model carries no feature schema (input_spec); fit it on data first")
    return TabularSchema.from_dict(model.input_spec)


def embed_frame(model: TJEPA, df, extra: str = "error") -> torch.Tensor:
    x_num, x_cat = model_schema(model).transform(df, extra=extra)
    return model.embed(x_num, x_cat)


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def train_and_score(train_x, train_y, test_x, test_y, task: str, head: str, seed: int, val_fraction: float = 0.1,
                    n_tokens: int | None = None, **overrides) -> dict:
    """Fit ``head`` on the training rows (10% held out for early stopping) and score the test rows.
    ``n_tokens``: the inputs are T-JEPA token latents (flattened); deep heads get the per-token front end."""
    if head == "linear":  # the shared linear-probe protocol (standardised features, logistic/ridge regression)
        from fmzoo.core.evaluation import linear_probe

        return linear_probe(train_x, train_y, test_x, test_y, task=task, seed=seed)
    tr, va = split_validation(len(train_x), val_fraction, seed)
    # Standardise inputs with statistics of the fitting rows (frozen representations are not unit-scale).
    mu, sd = train_x[tr].mean(0), train_x[tr].std(0) + 1e-6
    train_x, test_x = (train_x - mu) / sd, (test_x - mu) / sd
    y_mean, y_std = (float(np.mean(train_y[tr])), float(np.std(train_y[tr]) or 1.0)) if task == "regression" else (0.0, 1.0)
    out_dim = int(np.max(train_y)) + 1 if task == "classification" else 1
    torch.manual_seed(seed)
    net, optim = make_head(head, train_x.shape[1], out_dim, n_tokens=n_tokens)
    optim.update(overrides)
    # Small label budgets: at most 1/8 of the fitting rows per batch, so every epoch takes several steps.
    optim["batch_size"] = int(min(optim["batch_size"], max(32, len(tr) // 8)))
    ty = train_y if task == "classification" else (train_y - y_mean) / y_std
    net = fit_head(net, train_x[tr], ty[tr], train_x[va], ty[va], task=task, seed=seed, **optim)
    pred = predict_head(net, test_x, task=task)
    if task == "classification":
        return classification_metrics(test_y, pred)
    return regression_metrics(test_y, pred * y_std + y_mean)


def compare_on_dataset(model: TJEPA, dataset: str, seeds=(0, 1, 2), heads=("mlp",), max_epochs: int | None = None,
                       include_scratch: bool = True, label_fractions=(None,), lr: float | None = None) -> list[dict]:
    """Rows {name, init, metric, values, mean, std, setting} for each head on raw vs T-JEPA features,
    for every label budget in ``label_fractions`` (None = all training labels; a fraction = a
    stratified/random subset of the training rows, drawn anew for each seed)."""
    from fmzoo.core.evaluation import label_budget

    data = dataset_loader(dataset)()
    (X, y), (Xt, yt) = data["train"], data["test"]
    task = data["task"]
    metric = "accuracy" if task == "classification" else "rmse"
    schema = model_schema(model)
    inputs = {"pretrained": (embed_frame(model, X).numpy(), embed_frame(model, Xt).numpy())}
    if include_scratch:
        inputs["scratch"] = (schema.one_hot(X).numpy(), schema.one_hot(Xt).numpy())
    overrides = {"max_epochs": max_epochs} if max_epochs else {}
    if lr:
        overrides["lr"] = lr
    rows = []
    for fraction in label_fractions:
        for head in heads:
            for init, (a, b) in inputs.items():
                values, n_rows = [], len(y)
                for seed in seeds:
                    idx = np.arange(len(y)) if fraction is None else label_budget(y, fraction=fraction, seed=seed)
                    n_rows = len(idx)
                    n_tokens = model.n_tokens if init == "pretrained" else None
                    values.append(train_and_score(a[idx], y[idx], b, yt, task, head, seed, n_tokens=n_tokens, **overrides)[metric])
                mean, std = mean_std(values)
                feats = "raw features" if init == "scratch" else "T-JEPA representations"
                labels = "all labels" if fraction is None else f"{fraction:.0%} of the labels"
                rows.append({
                    "name": f"{HEAD_NAMES[head]} on {feats}" + ("" if fraction is None else f", {labels}"),
                    "model": HEAD_NAMES[head] + ("" if fraction is None else f", {labels}"),
                    "head": head, "init": init, "metric": metric, "fraction": fraction,
                    "values": values, "seeds": list(seeds), "mean": mean, "std": std,
                    "setting": f"{dataset} test split, {n_rows} labelled training rows ({labels}; 10% of them for "
                               f"early stopping), seeds {list(seeds)}" + (f", at most {max_epochs} epochs" if max_epochs else "") + (f", head lr {lr}" if lr else ""),
                })
    return rows


def cli_entry(model: TJEPA, options: dict) -> dict:
    """`fmzoo finetune|evaluate fmzoo/tjepa-adult [--dataset adult] [--fraction 0.1] [--seeds 0 1 2]`."""
    dataset = options.get("dataset") or (model.input_spec or {}).get("dataset") or "adult"
    data = dataset_loader(dataset)()
    (X, y), (Xt, yt) = data["train"], data["test"]
    if options.get("mode") == "finetune" and (options.get("fraction") or options.get("per_class")):
        from fmzoo.core.evaluation import label_budget

        idx = label_budget(y, per_class=options.get("per_class"), fraction=options.get("fraction"), seed=0)
        X, y = X.iloc[idx].reset_index(drop=True), y[idx]
    a, b = embed_frame(model, X).numpy(), embed_frame(model, Xt).numpy()
    seeds = options.get("seeds") or [0]
    head = "mlp"
    overrides = {"max_epochs": options["max_epochs"]} if options.get("max_epochs") else {}
    if options.get("mode") == "evaluate":
        from fmzoo.core.evaluation import linear_probe

        scores = [linear_probe(a, y, b, yt, task=data["task"], seed=s) for s in seeds]
    else:
        scores = [train_and_score(a, y, b, yt, data["task"], head, s, n_tokens=model.n_tokens, **overrides) for s in seeds]
    out = {"dataset": dataset, "train_rows": len(X), "protocol": "linear probe" if options.get("mode") == "evaluate" else "MLP head on frozen T-JEPA representations"}
    for k in scores[0]:
        mean, std = mean_std([s[k] for s in scores])
        out[k] = {"mean": mean, "std": std, "seeds": seeds}
    return out
