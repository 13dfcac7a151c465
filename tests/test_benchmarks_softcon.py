"""benchmarks/run_all.py's SoftCon row keeps working at a tiny size (28 px views, batch 4): the fmzoo side runs the
SoftCon Method's step for recipe softcon-vits14-paper on real EOPatch crops; without the official checkout the
official side says "not available"; the official layout's keys map onto SoftConViT strictly;. The equality of the two
encoders on the same weights (forward, step-0 loss, gradients) needs the official checkout, which CI does not have:
run_all prints it under its table on every run with --softcon-root."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--quick", "--softcon-crop", "28", "--softcon-batch", "4"]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def stack():
    """The libraries both sides import (Lightning, timm, the remote-sensing package), once per module."""
    import fmzoo.remotesensing.methods.softcon  # noqa: F401
    import lightning  # noqa: F401
    import timm  # noqa: F401


@pytest.fixture
def run_all(stack):
    mod = _load("run_all")  # fresh module: its CHECKS / STEP_TIMES are per run
    yield mod
    sys.modules.pop(mod.__name__, None)


def _child(run_all, capsys, side, *extra):
    torch.set_num_threads(1)
    assert run_all.main(["--child", "softcon", side, "time", *TINY, *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_fmzoo_side_runs_and_official_side_needs_the_checkout(run_all, capsys):
    r = _child(run_all, capsys, "fmzoo")
    assert r["n"] == 4 and r["s_per_unit"] > 0 and r["peak_rss_mb"] > 0
    losses = [float(v) for v in r["checks"]["losses"].split(", ")]
    assert len(losses) == 5 and all(0 < v < 10 for v in losses)  # soft contrastive CE of 4 in-batch pairs
    na = _child(run_all, capsys, "official")
    assert set(na) == {"na"} and "--softcon-root" in na["na"]
    with pytest.raises(SystemExit):  # a view size the patch size does not divide is refused by the parser
        run_all.main(["--only", "softcon", "--softcon-crop", "30"])


def test_official_layout_maps_onto_softconvit(stack):
    from timm.models.vision_transformer import vit_small_patch14_dinov2

    rp = _load("remotesensing_pretrain")
    # the DINOv2 layout of the official encoder (timm's DINOv2 ViT-S/14 has its names; plus its mask_token)
    ref = vit_small_patch14_dinov2(pretrained=False, in_chans=13, img_size=28, num_classes=0)
    sd = {**ref.state_dict(), "mask_token": torch.randn(1, 384)}
    model = rp.vit_encoder("fmzoo", 28, None)
    model.load_state_dict(rp.official_to_fmzoo(sd), strict=True)
    assert torch.equal(model.mask_token, sd["mask_token"])
    assert torch.equal(model.backbone.blocks[11].ls2.gamma, sd["blocks.11.ls2.gamma"])
    r = rp.vit_recipe(28)
    assert r["model"]["patch_size"] == 14 and len(r["model"]["bands"]) == 13 and r["model"]["embed_dim"] == 384
