"""Runners of the tabular paper tables (`fmzoo reproduce tjepa-adult [--quick | --smoke]`)."""

from __future__ import annotations

from pathlib import Path

from fmzoo.core.registry import load_recipe
from fmzoo.core.reproduce import make_row

from .models.tjepa import TJEPA
from .tasks.downstream import compare_on_dataset

# Quick: 15 epochs with a 10x larger head learning rate than T-JEPA's tuned 1.35e-4 (which needs ~100+
# epochs to converge); full: the tuned settings, up to 200 epochs with early stopping.
QUICK = {"seeds": [0, 1, 2], "heads": ["linear", "mlp"], "max_epochs": 15, "label_fractions": [None, 0.01], "lr": 1e-3}
FULL = {"seeds": [0, 1, 2], "heads": ["linear", "mlp", "resnet"], "max_epochs": None, "label_fractions": [None, 0.01], "lr": None}
# Smoke: the quick protocol (same rows) on the first 800 training and 400 test rows, 2 epochs; its numbers mean nothing.
SMOKE = {**QUICK, "max_epochs": 2, "max_rows": (800, 400)}


def _pretrained(checkpoint: str, recipe: str, quick: bool, out_dir: Path) -> TJEPA:
    if quick:
        return TJEPA.from_pretrained(checkpoint)
    from fmzoo.core.pretrain import run_pretraining

    r = load_recipe(recipe)
    r.pop("evaluate", None)  # the table evaluates below
    ckpt = run_pretraining(r, out_dir / f"{recipe}-run", {"progress": True})  # seeded as `fmzoo pretrain` seeds it
    return TJEPA.from_pretrained(ckpt)


def _run(table: dict, quick: bool, out_dir: Path, checkpoint: str, recipe: str, dataset: str, smoke: bool = False) -> list[dict]:
    model = _pretrained(checkpoint, recipe, quick or smoke, Path(out_dir))
    cfg = SMOKE if smoke else QUICK if quick else FULL
    rows = []
    # The table's `finetune_heads` adds end-to-end fine-tuning rows (pretrained vs randomly initialised encoder),
    # in quick mode too unless the table sets `finetune_quick: false`.
    finetune = table.get("finetune_heads", ()) if not quick or table.get("finetune_quick", True) else ()
    for r in compare_on_dataset(model, dataset, seeds=cfg["seeds"], heads=cfg["heads"], max_epochs=cfg["max_epochs"],
                                label_fractions=cfg["label_fractions"], lr=cfg["lr"], finetune_heads=finetune,
                                max_rows=cfg.get("max_rows")):
        if r["protocol"] == "finetune":
            src = checkpoint if quick else recipe
            feats = f"T-JEPA encoder ({src}) + head trained end to end" if r["init"] == "pretrained" else \
                "T-JEPA encoder architecture at a random init (seed = run seed) + head trained end to end"
        else:
            feats = "raw features" if r["init"] == "scratch" else f"frozen T-JEPA ({checkpoint if quick else recipe})"
        rows.append(make_row(table, r["model"], r["init"], r["values"], r["seeds"], metric=r["metric"],
                             note=f"{feats}; {r['setting']}"))
    return rows


def run_adult(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    return _run(table, quick, out_dir, "fmzoo/tjepa-adult", "tjepa-adult", "adult", smoke=smoke)


def run_diamonds(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    return _run(table, quick, out_dir, "fmzoo/tjepa-diamonds", "tjepa-diamonds-cpu", "diamonds", smoke=smoke)
