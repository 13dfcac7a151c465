"""The shipped checkpoints: size, provenance, loading by id, any-horizon forecasts, and quality on real data."""
import json

import fmzoo.core as core
import pytest
import torch
from fmzoo.core.registry import shipped_checkpoints
from fmzoo.timeseries import GPHT
from fmzoo.timeseries.data.ltsf import eval_windows
from fmzoo.timeseries.models.baselines import repeat_last

SHIPPED = ["gpht-mixed", "gpht-etth1-scratch", "gpht-etth1", "gpht-mixed-no-etth2", "gpht-etth2-scratch"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_files(name):
    path = shipped_checkpoints()[f"fmzoo/{name}"]
    assert (path / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    prov = json.loads((path / "provenance.json").read_text())
    assert prov["recipe"]["name"] == name
    if prov["recipe"]["train"].get("early_stopping"):  # stopped at or before max_steps, best validation weights kept
        es = prov["metrics"]["early_stopping"]
        assert 0 < es["best_step"] <= prov["metrics"]["steps"] <= prov["recipe"]["train"]["max_steps"]
        assert es["best_val"] == min(v for _, v in es["history"])
    else:
        assert prov["metrics"]["steps"] == prov["recipe"]["train"]["max_steps"]
    assert prov["data_files"] and all(len(f["sha256"]) == 64 for f in prov["data_files"])
    card = (path / "README.md").read_text()
    assert "small-scale CPU run" in card or "CPU-scale" in card


def test_one_checkpoint_forecasts_every_horizon(etth1):
    m = core.from_pretrained("fmzoo/gpht-mixed")
    assert isinstance(m, GPHT) and m.context_len == 336 and m.pooling == [8, 4, 2, 1]
    errs = {}
    for h in (96, 192, 336, 720):
        ctx, fut = eval_windows(etth1, "test", h, max_windows=6)
        pred = m.forecast(ctx, horizon=h)
        assert pred.shape == fut.shape and torch.isfinite(pred).all()
        errs[h] = (float(((pred - fut) ** 2).mean()), float(((repeat_last(ctx, h) - fut) ** 2).mean()))
    # pretrained beats repeat-last on average over horizons (a few windows, all 7 channels)
    assert sum(e[0] for e in errs.values()) < 0.8 * sum(e[1] for e in errs.values()), errs
