"""`fmzoo reproduce medical-hippocampus`: few-label segmentation on MSD Hippocampus, scratch vs VoCo vs
Volume Fusion, all on the same MONAI SwinUNETR (feature_size 12, window 4).

quick: the shipped fmzoo/voco-small and fmzoo/volumefusion-small, label budgets 1 and 5, one seed, a
       short fine-tune, 13 of the 52 test volumes (about 2 minutes on 2 CPU cores).
full:  pretrains both recipes (voco-small, volumefusion-small) into out_dir, then budgets 1/5/20/all,
       seeds 0/1/2, a longer fine-tune, all 52 test volumes.
smoke: the quick protocol on a sliver (one fine-tuning step, one test volume); its numbers mean nothing.

The runner seeds each cell with its seed through the core's ``per_seed``; the CPU threads are the table's (``threads:``), set
by ``fmzoo reproduce``. ``run_grid`` runs any part of the grid from Python (e.g. ``resample_to=(96, 64, 96)``,
``encoder_lr_scale=0.1``, the studies in the package README).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

QUICK = {"budgets": [1, 5], "seeds": [0], "steps": 25, "test_stride": 4}
FULL = {"budgets": [1, 5, 20, "all"], "seeds": [0, 1, 2], "steps": 300, "test_stride": 1}
# smoke: the quick protocol (shipped checkpoints, every init) on a sliver: 1 labelled volume, 1 step, 1 test volume
SMOKE = {"budgets": [1], "seeds": [0], "steps": 1, "test_stride": 52}
METHODS = {"scratch": ("SwinUNETR", "scratch"), "voco": ("VoCo", "pretrained"), "volf": ("VolumeFusion", "pretrained")}


def load_inits(quick: bool, out_dir: Path, log=print) -> dict:
    from fmzoo.core import from_pretrained

    if quick:
        return {"scratch": "scratch", "voco": from_pretrained("fmzoo/voco-small"),
                "volf": from_pretrained("fmzoo/volumefusion-small")}
    from fmzoo.core import load_recipe
    from fmzoo.core.pretrain import run_pretraining

    inits = {"scratch": "scratch"}
    for key, name in (("voco", "voco-small"), ("volf", "volumefusion-small")):
        run = out_dir / "pretrain" / name
        log(f"pretraining {name} -> {run}")
        ckpt = run_pretraining(load_recipe(name), run, {"progress": False})
        inits[key] = from_pretrained(str(ckpt))
    return inits


def run_grid(inits: dict, budgets, seeds, steps: int, test_stride: int = 1, resample_to=None, log=print,
             encoder_lr_scale: float = 1.0) -> list[dict]:
    """Every (budget, seed, init) cell; ``resample_to``: fine-tune and predict on volumes resized to this size
    (e.g. VoCo's pretraining volume size 96x64x96), Dice on the original grid, for every init alike."""
    from fmzoo.core.reproduce import per_seed

    from .data.hippocampus import load_hippocampus
    from .tasks.segmentation import few_label_run

    data = load_hippocampus()
    test = data["test"][::test_stride]
    order = {key: i for i, key in enumerate(inits)}

    def cell(budget, key, init, seed):
        t0 = time.perf_counter()
        res = few_label_run(init, budget, seed, data, test, steps, resample_to=resample_to,
                            encoder_lr_scale=encoder_lr_scale)
        res.update(method=key, budget=budget, seed=seed, seconds=time.perf_counter() - t0, n_test=len(test),
                   resample_to=list(resample_to) if resample_to else None, encoder_lr_scale=encoder_lr_scale)
        log(f"  {key:8s} budget={budget!s:>3} seed={seed} mean Dice {res['mean_dice']:.4f} "
            f"(ant {res['dice_class1']:.4f}, post {res['dice_class2']:.4f}) {res['seconds']:.0f}s")
        return res

    cells = []
    for budget in budgets:
        # every cell runs seeded by the core (per_seed): the segmenter's fresh layers draw from that seed
        for key, init in inits.items():
            cells += per_seed(seeds, lambda seed, b=budget, k=key, i=init: cell(b, k, i, seed))
    # cells listed budget -> seed -> init, as before (each cell is seeded on its own, so the order changes no number)
    seed_pos = {s: i for i, s in enumerate(seeds)}
    cells.sort(key=lambda c: (budgets.index(c["budget"]), seed_pos[c["seed"]], order[c["method"]]))
    return cells


def rows_from_cells(table: dict, cells: list[dict], setting: str) -> list[dict]:
    from fmzoo.core.reproduce import make_row

    rows = []
    budgets = list(dict.fromkeys(c["budget"] for c in cells))
    for budget in budgets:
        scratch_mean = None
        for key in METHODS:
            sub = [c for c in cells if c["budget"] == budget and c["method"] == key]
            if not sub:
                continue
            model, init = METHODS[key]
            vals = [c["mean_dice"] for c in sub]
            mean = sum(vals) / len(vals)
            extra = {
                "budget": budget,
                "dice_anterior": [c["dice_class1"] for c in sub],
                "dice_posterior": [c["dice_class2"] for c in sub],
                "n_test_volumes": sub[0]["n_test"],
                "sliding_window_s_per_volume": sum(c["seconds_per_volume"] for c in sub) / len(sub),
                "labelled_cases": [c["labelled_cases"] for c in sub],
            }
            if key == "scratch":
                scratch_mean = mean
            elif scratch_mean is not None:
                extra["beats_scratch"] = bool(mean > scratch_mean)
            rows.append(make_row(table, model=f"{model} @{budget}", init=init, values=vals,
                                 seeds=[c["seed"] for c in sub], metric="mean Dice (anterior, posterior)",
                                 note=f"{setting}; {budget} labelled volume(s)", **extra))
    return rows


def run_hippocampus(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    """The table's rows. ``smoke``: the quick protocol (shipped checkpoints) on a sliver, seconds long."""
    quick = quick or smoke
    cfg = dict(QUICK if quick else FULL)
    cfg.update(table.get("quick" if quick else "full", {}) or {})
    if smoke:
        cfg.update(SMOKE)
    out_dir = Path(out_dir)
    inits = load_inits(quick, out_dir)
    cells = run_grid(inits, cfg["budgets"], cfg["seeds"], int(cfg["steps"]), int(cfg["test_stride"]))
    setting = (f"{'smoke' if smoke else 'quick' if quick else 'full'}: {cfg['steps']} fine-tuning steps (batch 2, 32x64x32), "
               f"seeds {cfg['seeds']}, test volumes 1 in {cfg['test_stride']}")
    (out_dir / "medical-hippocampus.cells.json").write_text(json.dumps(cells, indent=2, default=str) + "\n")
    return rows_from_cells(table, cells, setting)
