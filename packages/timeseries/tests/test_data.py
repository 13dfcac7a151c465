import numpy as np
import pytest
import torch
from fmzoo.timeseries.data.ltsf import MixtureWindows, eval_windows, load_ltsf, window_starts


def test_ett_splits_and_train_only_scaler(etth1):
    d = etth1
    assert d.values.shape == (17420, 7) and d.columns[-1] == "OT"
    assert d.borders == {"train": (0, 8640), "val": (8640 - 336, 11520), "test": (11520 - 336, 14400)}
    tr = d.split("train")
    np.testing.assert_allclose(tr.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(tr.std(0), 1, atol=1e-4)
    # statistics come from train only: the test split is not standardized to 0/1
    assert np.abs(d.split("test").mean(0)).max() > 0.1
    np.testing.assert_allclose(d.scaled * d.std + d.mean, d.values, rtol=1e-4, atol=1e-3)


def test_ettm_and_custom_splits():
    m = load_ltsf("ETTm1")
    assert m.borders["train"] == (0, 34560) and m.borders["test"][1] == 57600
    ex = load_ltsf("exchange_rate")
    n = 7588
    tr, te = int(n * 0.7), int(n * 0.2)
    assert ex.borders == {"train": (0, tr), "val": (tr - 336, n - te), "test": (n - te - 336, n)}
    assert ex.values.shape[1] == 8


def test_eval_windows_match_official_count(etth1):
    ctx, fut = eval_windows(etth1, "test", 96)
    assert ctx.shape == (2880 - 96 + 1, 336, 7) and fut.shape == (2785, 96, 7)
    # the first forecast starts exactly at the test border
    np.testing.assert_allclose(fut[0, 0].numpy(), etth1.scaled[11520])
    sub_ctx, _ = eval_windows(etth1, "test", 720, max_windows=50)
    assert sub_ctx.shape[0] == 50
    assert len(window_starts(10, 11)) == 0


def test_mixture_is_channel_independent_windows():
    ds = MixtureWindows(["ETTh1", "exchange_rate"], context_len=336, token_len=48)
    h1 = load_ltsf("ETTh1")
    assert ds.counts[0] == (8640 - 384 + 1) * 7 and ds.counts[1] == (int(7588 * 0.7) - 384 + 1) * 8
    assert len(ds) == sum(ds.counts)
    item = ds[7 * 5 + 3]  # ETTh1, window start 5, channel 3
    np.testing.assert_allclose(item.numpy(), h1.scaled[5:389, 3])
    last = ds[len(ds) - 1]
    assert last.shape == (384,) and torch.isfinite(last).all()
    few = MixtureWindows(["ETTh1"], percent=10)
    assert len(few) == int((8640 - 384 + 1) * 0.1) * 7


def test_unknown_dataset():
    with pytest.raises(KeyError, match="unknown dataset"):
        load_ltsf("weather")
