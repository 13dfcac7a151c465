"""Runners for ``fmzoo reproduce gpht-etth1`` and ``fmzoo reproduce gpht-zeroshot``.

Quick mode loads the shipped checkpoints, evaluates an evenly spaced subset of test windows and fine-tunes
heads briefly (about 2 minutes on 2 CPU cores). Full mode pretrains from the committed recipes, fine-tunes
longer and evaluates every test window (tens of minutes to hours on CPU). Smoke mode (``fmzoo reproduce TABLE
--smoke``) is the quick protocol on a sliver: 4 test windows per horizon, 2 head fine-tuning steps and a DLinear fit
on every 64th train window, seconds long; its rows have the quick rows' shape and mean nothing.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from fmzoo.core import load_recipe
from fmzoo.core.pretrain import run_pretraining
from fmzoo.core.reproduce import make_row, per_seed
from fmzoo.timeseries.data.ltsf import load_ltsf
from fmzoo.timeseries.methods.gpht import finetune_heads
from fmzoo.timeseries.models.gpht import GPHT
from fmzoo.timeseries.tasks.evaluation import evaluate_dlinear, evaluate_gpht, evaluate_repeat_last

HORIZONS = (96, 192, 336, 720)
QUICK_WINDOWS = 256
QUICK_FT_STEPS, FULL_FT_STEPS = 150, 800
SMOKE_WINDOWS, SMOKE_FT_STEPS, SMOKE_FIT_STRIDE = 4, 2, 64


def _rows(table: dict, model: str, init: str, res: dict, seed: int, note: str = "") -> list[dict]:
    rows = []
    for metric in ("mse", "mae"):
        for h in HORIZONS:
            rows.append(make_row(table, model=f"{model}/{metric}/{h}", init=init, values=[res[h][metric]], seeds=[seed],
                                 metric=metric, note=note, windows=res[h]["windows"]))
        avg = sum(res[h][metric] for h in HORIZONS) / len(HORIZONS)
        rows.append(make_row(table, model=f"{model}/{metric}/avg", init=init, values=[avg], seeds=[seed],
                             metric=metric, note=(note + "; " if note else "") + "mean over the 4 horizons"))
    return rows


FT_RECIPE = "gpht-etth1"  # the fine-tuning recipe shipped (lr 1e-4 halving + validation early stopping)


def _checkpoint(name: str, quick: bool, out_dir: Path, init_from: Path | None = None) -> tuple[GPHT, Path]:
    if quick:
        return GPHT.from_pretrained(f"fmzoo/{name}"), Path(f"fmzoo/{name}")
    recipe = load_recipe(name)
    if init_from is not None:
        recipe["init_from"] = str(init_from)
    ckpt = run_pretraining(recipe, Path(out_dir) / "runs" / name, {"progress": False})
    return GPHT.from_pretrained(ckpt), ckpt


def _heads_finetuned(model: GPHT, dataset: str, quick: bool, seed: int, percent: float = 100.0,
                     smoke: bool = False) -> tuple[GPHT, dict]:
    ft = copy.deepcopy(model)
    steps = SMOKE_FT_STEPS if smoke else QUICK_FT_STEPS if quick else FULL_FT_STEPS
    info = finetune_heads(ft, dataset, steps=steps, batch_size=64, lr=1e-4, seed=seed, percent=percent)
    return ft, info


def _windows(quick: bool, smoke: bool) -> tuple[int | None, str]:
    """Test windows per horizon (None: all) and the note that says so."""
    if smoke:
        return SMOKE_WINDOWS, f"smoke: {SMOKE_WINDOWS} evenly spaced test windows/horizon (numbers mean nothing)"
    mw = QUICK_WINDOWS if quick else None
    return mw, f"{'quick: ' + str(mw) + ' evenly spaced test windows/horizon' if quick else 'all test windows'}"


def run_etth1(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    return per_seed([0], lambda seed: _run_etth1(table, quick or smoke, out_dir, smoke, seed))[0]  # one seed


def _run_etth1(table: dict, quick: bool, out_dir: Path, smoke: bool, seed: int) -> list[dict]:
    mw, sub = _windows(quick, smoke)
    data = load_ltsf("ETTh1")
    timings = {}
    t = time.perf_counter()
    mixed, mixed_path = _checkpoint("gpht-mixed", quick, out_dir)
    res_zero = evaluate_gpht(mixed, data, HORIZONS, max_windows=mw)
    heads, info = _heads_finetuned(mixed, "ETTh1", quick, seed, smoke=smoke)
    res_heads = evaluate_gpht(heads, data, HORIZONS, max_windows=mw)
    timings["gpht-mixed (zero-ft + heads-ft)"] = time.perf_counter() - t
    t = time.perf_counter()
    ft, _ = _checkpoint(FT_RECIPE, quick, out_dir, init_from=None if quick else mixed_path)
    res_ft = evaluate_gpht(ft, data, HORIZONS, max_windows=mw)
    timings[FT_RECIPE] = time.perf_counter() - t
    t = time.perf_counter()
    scratch, _ = _checkpoint("gpht-etth1-scratch", quick, out_dir)
    res_scratch = evaluate_gpht(scratch, data, HORIZONS, max_windows=mw)
    timings["gpht-etth1-scratch"] = time.perf_counter() - t
    t = time.perf_counter()
    res_last = evaluate_repeat_last(data, HORIZONS, max_windows=mw)
    res_lin = evaluate_dlinear(data, HORIZONS, max_windows=mw, fit_stride=SMOKE_FIT_STRIDE if smoke else 2 if quick else 1)
    timings["baselines"] = time.perf_counter() - t
    rows = []
    rows += _rows(table, "GPHT", "pretrained", res_ft, seed,
                  f"fmzoo/{FT_RECIPE}: gpht-mixed fine-tuned on ETTh1 train (all weights, lr 1e-4 halved every 200 steps, "
                  f"<= 800 x 256 windows, early stopping on ETTh1 val next-token MSE); {sub}")
    rows += _rows(table, "GPHT-heads-ft", "pretrained", res_heads, seed,
                  f"gpht-mixed + heads only fine-tuned {info['steps']} steps x 64 windows (paper protocol, short); {sub}")
    rows += _rows(table, "GPHT-zero-ft", "pretrained", res_zero, seed, f"gpht-mixed, no fine-tuning; {sub}")
    rows += _rows(table, "GPHT-scratch", "scratch", res_scratch, seed,
                  f"gpht-etth1-scratch: same architecture, ETTh1 train only, lr 1e-3 cosine, <= 800 x 256 windows, "
                  f"same early stopping on ETTh1 val; {sub}")
    rows += _rows(table, "repeat-last", "reference", res_last, seed, sub)
    rows += _rows(table, "DLinear-LS", "reference", res_lin, seed, f"DLinear-style, closed-form least squares; {sub}")
    (Path(out_dir) / "gpht-etth1.timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return rows


def run_zeroshot(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    """ETTh2 held out: zero-shot vs few-shot (10%) vs fine-tuned heads vs from scratch, plus repeat-last."""
    return per_seed([0], lambda seed: _run_zeroshot(table, quick or smoke, out_dir, smoke, seed))[0]  # one seed


def _run_zeroshot(table: dict, quick: bool, out_dir: Path, smoke: bool, seed: int) -> list[dict]:
    mw, sub = _windows(quick, smoke)
    data = load_ltsf("ETTh2")
    base, _ = _checkpoint("gpht-mixed-no-etth2", quick, out_dir)
    rows = _rows(table, "GPHT-zeroshot", "pretrained", evaluate_gpht(base, data, HORIZONS, max_windows=mw), seed,
                 f"gpht-mixed-no-etth2, never saw ETTh2; {sub}")
    few, info = _heads_finetuned(base, "ETTh2", quick, seed, percent=10.0, smoke=smoke)
    rows += _rows(table, "GPHT-fewshot10", "pretrained", evaluate_gpht(few, data, HORIZONS, max_windows=mw), seed,
                  f"heads fine-tuned {info['steps']} steps x 64 on the first 10% of ETTh2 train windows; {sub}")
    ft, info = _heads_finetuned(base, "ETTh2", quick, seed, smoke=smoke)
    rows += _rows(table, "GPHT-finetuned", "pretrained", evaluate_gpht(ft, data, HORIZONS, max_windows=mw), seed,
                  f"heads fine-tuned {info['steps']} steps x 64 on ETTh2 train; {sub}")
    scratch, _ = _checkpoint("gpht-etth2-scratch", quick, out_dir)
    rows += _rows(table, "GPHT-scratch", "scratch", evaluate_gpht(scratch, data, HORIZONS, max_windows=mw), seed,
                  f"gpht-etth2-scratch: same recipe, ETTh2 train only, 800 x 256 windows; {sub}")
    rows += _rows(table, "repeat-last", "reference", evaluate_repeat_last(data, HORIZONS, max_windows=mw), seed, sub)
    return rows
