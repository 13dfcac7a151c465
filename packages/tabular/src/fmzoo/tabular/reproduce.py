"""Runners of the tabular paper tables (`fmzoo reproduce tjepa-adult [--quick]`)."""

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


def _pretrained(checkpoint: str, recipe: str, quick: bool, out_dir: Path) -> TJEPA:
    if quick:
        return TJEPA.from_pretrained(checkpoint)
    from .methods.tjepa import pretrain

    r = load_recipe(recipe)
    r.pop("evaluate", None)  # the table evaluates below
    ckpt = pretrain(r, out_dir / f"{recipe}-run", {"progress": True})
    return TJEPA.from_pretrained(ckpt)


def _run(table: dict, quick: bool, out_dir: Path, checkpoint: str, recipe: str, dataset: str) -> list[dict]:
    model = _pretrained(checkpoint, recipe, quick, Path(out_dir))
    cfg = QUICK if quick else FULL
    rows = []
    # The table's `finetune_heads` adds end-to-end fine-tuning rows (pretrained vs randomly initialised encoder),
    # in quick mode too unless the table sets `finetune_quick: false`.
    finetune = table.get("finetune_heads", ()) if not quick or table.get("finetune_quick", True) else ()
    for r in compare_on_dataset(model, dataset, seeds=cfg["seeds"], heads=cfg["heads"], max_epochs=cfg["max_epochs"],
                                label_fractions=cfg["label_fractions"], lr=cfg["lr"], finetune_heads=finetune):
        if r["protocol"] == "finetune":
            src = checkpoint if quick else recipe
            feats = f"T-JEPA encoder ({src}) + head trained end to end" if r["init"] == "pretrained" else \
                "T-JEPA encoder architecture at a random init (seed = run seed) + head trained end to end"
        else:
            feats = "raw features" if r["init"] == "scratch" else f"frozen T-JEPA ({checkpoint if quick else recipe})"
        rows.append(make_row(table, r["model"], r["init"], r["values"], r["seeds"], metric=r["metric"],
                             note=f"{feats}; {r['setting']}"))
    return rows


def run_adult(table: dict, quick: bool, out_dir: Path) -> list[dict]:
    return _run(table, quick, out_dir, "fmzoo/tjepa-adult", "tjepa-adult", "adult")


def run_diamonds(table: dict, quick: bool, out_dir: Path) -> list[dict]:
    return _run(table, quick, out_dir, "fmzoo/tjepa-diamonds", "tjepa-diamonds-cpu", "diamonds")
