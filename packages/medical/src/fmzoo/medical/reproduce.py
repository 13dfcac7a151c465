"""`fmzoo reproduce medical-hippocampus`: few-label segmentation on MSD Hippocampus, scratch vs VoCo vs
Volume Fusion, all on the same MONAI SwinUNETR (feature_size 12, window 4).

quick: the shipped fmzoo/voco-small and fmzoo/volumefusion-small, label budgets 1 and 5, one seed, a
       short fine-tune, 13 of the 52 test volumes (about 2 minutes on 2 CPU cores).
full:  pretrains both recipes (voco-small, volumefusion-small) into out_dir, then budgets 1/5/20/all,
       seeds 0/1/2, a longer fine-tune, all 52 test volumes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

QUICK = {"budgets": [1, 5], "seeds": [0], "steps": 25, "test_stride": 4}
FULL = {"budgets": [1, 5, 20, "all"], "seeds": [0, 1, 2], "steps": 300, "test_stride": 1}
METHODS = {"scratch": ("SwinUNETR", "scratch"), "voco": ("VoCo", "pretrained"), "volf": ("VolumeFusion", "pretrained")}


def load_inits(quick: bool, out_dir: Path, log=print) -> dict:
    from fmzoo.core import from_pretrained

    if quick:
        return {"scratch": "scratch", "voco": from_pretrained("fmzoo/voco-small"),
                "volf": from_pretrained("fmzoo/volumefusion-small")}
    from fmzoo.core import load_recipe

    from .methods import voco, volume_fusion

    inits = {"scratch": "scratch"}
    for key, name, fn in (("voco", "voco-small", voco.pretrain), ("volf", "volumefusion-small", volume_fusion.pretrain)):
        run = out_dir / "pretrain" / name
        log(f"pretraining {name} -> {run}")
        ckpt = fn(load_recipe(name), run, {"progress": False})
        inits[key] = from_pretrained(str(ckpt))
    return inits


def run_grid(inits: dict, budgets, seeds, steps: int, test_stride: int = 1, resample_to=None, log=print,
             encoder_lr_scale: float = 1.0) -> list[dict]:
    """Every (budget, seed, init) cell; ``resample_to``: fine-tune and predict on volumes resized to this size
    (e.g. VoCo's pretraining volume size 96x64x96), Dice on the original grid, for every init alike."""
    from .data.hippocampus import load_hippocampus
    from .tasks.segmentation import few_label_run

    data = load_hippocampus()
    test = data["test"][::test_stride]
    cells = []
    for budget in budgets:
        for seed in seeds:
            for key, init in inits.items():
                t0 = time.perf_counter()
                res = few_label_run(init, budget, seed, data, test, steps, resample_to=resample_to,
                                    encoder_lr_scale=encoder_lr_scale)
                res.update(method=key, budget=budget, seed=seed, seconds=time.perf_counter() - t0, n_test=len(test),
                           resample_to=list(resample_to) if resample_to else None, encoder_lr_scale=encoder_lr_scale)
                log(f"  {key:8s} budget={budget!s:>3} seed={seed} mean Dice {res['mean_dice']:.4f} "
                    f"(ant {res['dice_class1']:.4f}, post {res['dice_class2']:.4f}) {res['seconds']:.0f}s")
                cells.append(res)
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


def run_hippocampus(table: dict, quick: bool, out_dir: Path) -> list[dict]:
    cfg = dict(QUICK if quick else FULL)
    cfg.update(table.get("quick" if quick else "full", {}) or {})
    out_dir = Path(out_dir)
    inits = load_inits(quick, out_dir)
    cells = run_grid(inits, cfg["budgets"], cfg["seeds"], int(cfg["steps"]), int(cfg["test_stride"]))
    setting = (f"{'quick' if quick else 'full'}: {cfg['steps']} fine-tuning steps (batch 2, 32x64x32), "
               f"seeds {cfg['seeds']}, test volumes 1 in {cfg['test_stride']}")
    (out_dir / "medical-hippocampus.cells.json").write_text(json.dumps(cells, indent=2, default=str) + "\n")
    return rows_from_cells(table, cells, setting)


def main(argv=None):
    """Run part of the grid (some methods) and write its cells, e.g. to spread a long grid over time:
    python -m fmzoo.medical.reproduce --methods scratch volf --budgets 1 5 --seeds 0 1 2 --steps 60 --out cells.json
    ``--resample-to 96 64 96``: the whole protocol on volumes resized to VoCo's pretraining size (every init alike).
    Checkpoints default to the shipped fmzoo/voco-small and fmzoo/volumefusion-small."""
    import argparse

    from fmzoo.core import from_pretrained

    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--budgets", nargs="+", default=["1", "5"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--test-stride", type=int, default=4)
    ap.add_argument("--voco", default="fmzoo/voco-small")
    ap.add_argument("--volf", default="fmzoo/volumefusion-small")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resample-to", nargs=3, type=int, default=None, metavar=("X", "Y", "Z"),
                    help="fine-tune and predict on volumes resized to X Y Z (Dice on the original grid)")
    ap.add_argument("--encoder-lr-scale", type=float, default=1.0,
                    help="the Swin encoder fine-tunes at this multiple of the learning rate (every init alike)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    srcs = {"scratch": None, "voco": a.voco, "volf": a.volf}
    inits = {m: ("scratch" if m == "scratch" else from_pretrained(srcs[m])) for m in a.methods}
    budgets = [b if b == "all" else int(b) for b in a.budgets]
    cells = run_grid(inits, budgets, a.seeds, a.steps, a.test_stride, resample_to=a.resample_to,
                     encoder_lr_scale=a.encoder_lr_scale)
    for c in cells:
        c["steps"] = a.steps
    Path(a.out).write_text(json.dumps(cells, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
