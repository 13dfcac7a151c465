"""Runners for ``fmzoo reproduce rs-preprocessing`` and ``fmzoo reproduce softcon-eurosat``.

Both evaluate on the EuroSAT RGB **5-class subset** (Forest, Industrial, Pasture, Residential, River;
train split 10,400 / test = the source's val split 2,600), not the 10-class benchmark the papers use.
Quick mode uses the shipped checkpoints and stratified subsets; full mode uses every image; smoke mode
(``fmzoo reproduce TABLE --smoke``) runs the quick protocol on a sliver of the images (and, in softcon-eurosat,
1 fine-tuning epoch), seconds long, rows of the same shape that mean nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from fmzoo.core.reproduce import make_row, per_seed

from .data.eurosat import load_eurosat_rgb
from .tasks.probe import few_label_finetune, frozen_features, knn_accuracy, linear_probe_accuracy

SOFTCON_ID = "fmzoo/softcon-resnet-small"
RGB_ID = "fmzoo/rgb-resnet-small-eurosat"
SUBSET_NOTE = "ours: EuroSAT RGB 5-class subset (Forest/Industrial/Pasture/Residential/River)"


def _load(model_id: str):
    from fmzoo.core import from_pretrained

    return from_pretrained(model_id)


def _scratch_like(model):
    """Random weights from the global stream (the caller seeds it), the same preprocessing."""
    fresh = type(model)(**model.init_args)
    fresh.input_spec = model.input_spec  # same preprocessing, random weights
    return fresh.eval()


SMOKE_IMAGES = (100, 50)  # train / test images of a smoke run


def _data(quick: bool, seed: int = 0, smoke: bool = False):
    if smoke:
        return (load_eurosat_rgb("train", limit=SMOKE_IMAGES[0], seed=seed),
                load_eurosat_rgb("test", limit=SMOKE_IMAGES[1], seed=seed))
    if quick:
        return load_eurosat_rgb("train", limit=1000, seed=seed), load_eurosat_rgb("test", limit=500, seed=seed)
    return load_eurosat_rgb("train"), load_eurosat_rgb("test")


SETTINGS = [("native", "div255"), ("native", "standardized"), ("resized", "div255"), ("resized", "standardized")]


def _label(size: str, norm: str, input_size: int) -> str:
    s = "64 px (native)" if size == "native" else f"{input_size} px (resized to pretraining size)"
    n = "÷255" if norm == "div255" else "standardized (checkpoint stats)"
    return f"{s}, {n}"


def run_preprocessing(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    quick = quick or smoke
    train, test = _data(quick, smoke=smoke)
    rows = []
    softcon = _load(SOFTCON_ID)
    size_px = int(softcon.input_spec["input_size"])
    models = [("softcon-resnet-small", softcon, "pretrained")]
    if not quick:
        rgb = _load(RGB_ID)
        scratch = per_seed([0], lambda s: _scratch_like(softcon))[0]  # the random-init baseline's weights, seed 0
        models += [("rgb-resnet-small-eurosat", rgb, "pretrained"),
                   ("softcon-resnet-small architecture", scratch, "scratch")]
    for name, model, init in models:
        for size, norm in SETTINGS:
            t0 = time.perf_counter()
            acc = knn_accuracy(model, train, test, size=size, norm=norm, k=20)
            own = size == "resized" and norm == "standardized"
            rows.append(make_row(
                table, model=f"{name} | {_label(size, norm, size_px)}", init=init, values=[acc], seeds=[0],
                note=(("own preprocessing; " if own else "") + SUBSET_NOTE +
                      f"; kNN k=20 cosine on {len(train[1])} train / {len(test[1])} test images"),
                size=size, norm=norm, own_preprocessing=own, seconds=round(time.perf_counter() - t0, 1),
            ))
    return rows


def run_softcon_eurosat(table: dict, quick: bool, out_dir: Path, smoke: bool = False) -> list[dict]:
    quick = quick or smoke
    train, test = _data(quick, smoke=smoke)
    lp_seeds = [0] if quick else [0, 1, 2]
    ft_seeds = [0, 1] if quick else [0, 1, 2]
    ft_epochs = 1 if smoke else 15 if quick else 40
    per_class = 10
    softcon = _load(SOFTCON_ID)
    rows = []
    pretrained = [("softcon-resnet-small", softcon)]
    if not quick:
        pretrained.append(("rgb-resnet-small-eurosat", _load(RGB_ID)))
    lp_note = SUBSET_NOTE + f"; logistic regression on frozen pooled features, {len(train[1])} train / {len(test[1])} test"
    ft_note = SUBSET_NOTE + f"; full fine-tune + linear head, {per_class} labels per class, {ft_epochs} epochs, test {len(test[1])}"
    # every protocol repeats over seeds through the core's per_seed (it seeds the process before each call)
    for name, model in pretrained:
        feats = frozen_features(model, train, test)  # a frozen model's features are the same under every seed
        lp = per_seed(lp_seeds, lambda s, model=model, f=feats: linear_probe_accuracy(model, train, test, seed=s,
                                                                                      features=f))
        rows.append(make_row(table, model=f"{name} | linear probe", init="pretrained", values=lp, seeds=lp_seeds,
                             note=lp_note, metric="linear_probe_accuracy"))
    lp_scratch = per_seed(lp_seeds, lambda s: linear_probe_accuracy(_scratch_like(softcon), train, test, seed=s))
    rows.append(make_row(table, model="softcon-resnet-small | linear probe", init="scratch", values=lp_scratch,
                         seeds=lp_seeds, note=lp_note + "; random init (seed = init seed)", metric="linear_probe_accuracy"))
    for name, model in pretrained:
        ft = per_seed(ft_seeds, lambda s, model=model: few_label_finetune(model, train, test, per_class=per_class,
                                                                          seed=s, epochs=ft_epochs))
        rows.append(make_row(table, model=f"{name} | {per_class}-label fine-tune", init="pretrained", values=ft,
                             seeds=ft_seeds, note=ft_note, metric="finetune_accuracy"))
    scratch = dict(zip(ft_seeds, per_seed(ft_seeds, lambda s: _scratch_like(softcon)), strict=True))  # seed = init seed
    ft_scratch = per_seed(ft_seeds, lambda s: few_label_finetune(  # then fine-tuned from the same seed, as pretrained
        scratch[s], train, test, per_class=per_class, seed=s, epochs=ft_epochs))
    rows.append(make_row(table, model=f"softcon-resnet-small | {per_class}-label fine-tune", init="scratch",
                         values=ft_scratch, seeds=ft_seeds, note=ft_note + "; random init", metric="finetune_accuracy"))
    return rows
