"""``fmzoo evaluate`` / ``fmzoo finetune`` for SoftConResNet / SoftConViT checkpoints (EuroSAT RGB 5-class)."""

from __future__ import annotations

from fmzoo.core.evaluation import mean_std

from ..data.eurosat import load_eurosat_rgb
from .probe import few_label_finetune, knn_accuracy, linear_probe_accuracy

DATASETS = ("eurosat_rgb_5class",)


def run(model, options: dict) -> dict:
    dataset = options.get("dataset") or "eurosat_rgb_5class"
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    seeds = list(options.get("seeds") or [0])
    train, test = load_eurosat_rgb("train"), load_eurosat_rgb("test")
    out = {"dataset": "EuroSAT RGB 5-class subset", "seeds": seeds, "preprocessing": "checkpoint's own (rgb8 product)"}
    if options.get("mode") == "finetune":
        if options.get("fraction"):
            raise ValueError("this task takes --per-class (labels per class), not --fraction")
        per_class = int(options.get("per_class") or 10)
        epochs = int(options.get("max_epochs") or 40)
        vals = [few_label_finetune(model, train, test, per_class=per_class, seed=s, epochs=epochs) for s in seeds]
        m, sd = mean_std(vals)
        out.update({"protocol": f"fine-tune, {per_class} labels per class, {epochs} epochs", "accuracy": vals,
                    "mean": m, "std": sd})
        return out
    knn = knn_accuracy(model, train, test)
    lp = [linear_probe_accuracy(model, train, test, seed=s) for s in seeds]
    out.update({"knn_accuracy": knn, "linear_probe_accuracy": lp})
    return out
