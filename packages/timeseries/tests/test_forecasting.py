"""predict_df / predict_quantiles (the long layout of Chronos' predict_df) and forecast() on a Series or a list of
1-D arrays: padding of short contexts, future timestamps, calibrated quantiles and their coverage on real data."""
import numpy as np
import pandas as pd
import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.timeseries import GPHT
from fmzoo.timeseries.data.ltsf import eval_windows
from fmzoo.timeseries.forecasting import calibrate_series, calibrate_validation, pad_contexts, predict_df


@pytest.fixture(scope="module")
def long_df(etth1):
    """Three real ETTh1 series of different lengths and frequencies, in the long layout, rows shuffled."""
    raw = etth1.values
    a = pd.DataFrame({"item_id": "a", "timestamp": etth1.dates[:300], "target": raw[:300, 0]})
    b = pd.DataFrame({"item_id": "b", "timestamp": pd.date_range("2020-01-01", periods=60, freq="D"),
                      "target": raw[1000:1060, 6]})
    c = pd.DataFrame({"item_id": "c", "timestamp": pd.date_range("2015-01-01", periods=30, freq="MS"),
                      "target": raw[2000:2030, 3]})
    return pd.concat([a, b, c]).sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_predict_df_long_layout(tiny_gpht, long_df, etth1):
    m = tiny_gpht()  # context 96, token 24: "b" and "c" are shorter than the context and get padded
    out = m.predict_df(long_df, prediction_length=12, calibration_datasets=["ETTh1"])
    assert list(out.columns) == ["item_id", "timestamp", "predictions", "0.1", "0.5", "0.9"]
    assert list(out["item_id"].unique()) == list(long_df["item_id"].unique()) and len(out) == 3 * 12
    futures = {"a": pd.date_range(etth1.dates[299], periods=13, freq="h")[1:],
               "b": pd.date_range("2020-03-01", periods=12, freq="D"),
               "c": pd.date_range("2017-07-01", periods=12, freq="MS")}  # calendar months, not a fixed step
    for item, expected in futures.items():
        got = out[out["item_id"] == item]
        assert (pd.DatetimeIndex(got["timestamp"]) == expected).all()
        series = long_df[long_df["item_id"] == item].sort_values("timestamp")["target"].to_numpy()
        ctx = series[-96:]
        padded = np.concatenate([np.full(96 - len(ctx), ctx.mean()), ctx])  # left-padded with the series' mean
        ref = m.generate(torch.tensor(padded, dtype=torch.float32)[None], 12)[0].numpy()
        np.testing.assert_allclose(got["predictions"], ref, rtol=1e-5, atol=1e-4)
        # quantile = point + residual quantile (ETTh1 validation windows, per step) x the series' observed std
        table = np.quantile(calibrate_validation(m, ["ETTh1"], 12).residuals, [0.1, 0.5, 0.9], axis=0).T
        np.testing.assert_allclose(got[["0.1", "0.5", "0.9"]], ref[:, None] + table * ctx.std(), rtol=1e-4, atol=1e-3)
        assert (got["0.1"] < got["0.5"]).all() and (got["0.5"] < got["0.9"]).all()


def test_predict_df_errors(tiny_gpht, long_df):
    m = tiny_gpht()
    kw = {"prediction_length": 12, "calibration_datasets": ["ETTh1"]}

    def rows(item):  # an item's row labels in time order
        return long_df[long_df["item_id"] == item].sort_values("timestamp").index
    cases = [
        (long_df.rename(columns={"target": "y"}), {}, r"missing \['target'\]"),
        (long_df.drop(index=rows("c")[:10]), {}, r"series 'c' has 20 values; GPHT needs at least 24"),
        (long_df.drop(index=rows("a")[[150]]), {}, r"item 'a': irregular timestamps"),
        (pd.concat([long_df, long_df.iloc[[0]]]), {}, r"duplicate timestamp"),
        (long_df.assign(target=long_df["target"].where(long_df.index != rows("a")[0])), {},
         r"item 'a': NaN or infinite target values \(1 of 300\)"),
        (long_df.assign(target="x"), {}, r"target column 'target' must hold real numbers"),
        (long_df, {"quantile_levels": (0.1, 1.0)}, r"strictly between 0 and 1"),
        (long_df, {"prediction_length": 0}, r"prediction_length must be a positive integer"),
        (long_df.set_index("timestamp"), {}, r"missing \['timestamp'\]"),
    ]
    for frame, extra, message in cases:
        with pytest.raises(InputSpecError, match=message):
            predict_df(m, frame, **{**kw, **extra})
    with pytest.raises(InputSpecError, match="GPHT.from_pretrained"):  # a model that does not know its checkpoint
        predict_df(m, long_df, prediction_length=12)
    with pytest.raises(InputSpecError, match=r"3 calibration windows; .* need at least 20"):
        predict_df(m, long_df[long_df["item_id"] == "b"], prediction_length=12, calibration="series")


def test_series_calibration_backtests_the_last_part(tiny_gpht, etth1):
    m = tiny_gpht()
    s = etth1.values[:200, 6].astype(np.float64)
    cal = calibrate_series(m, [s], 24)
    # targets: the last 24 values, the 24 before them, ... while the context keeps >= 24 values: 7 backtests
    assert cal.residuals.shape == (7, 24)
    ctx = s[:128][-96:]  # backtest 2: target s[128:152], context before it
    pred = m.generate(torch.tensor(ctx, dtype=torch.float32)[None], 24)[0].numpy()
    np.testing.assert_allclose(cal.residuals[2], (s[128:152] - pred) / ctx.std(), rtol=1e-4, atol=1e-4)


def test_forecast_series_and_list(tiny_gpht, etth1):
    m = tiny_gpht()
    s = pd.Series(etth1.values[:150, 6], index=etth1.dates[:150], name="OT")
    out = m.forecast(s, horizon=30)
    assert isinstance(out, pd.Series) and out.name == "OT" and len(out) == 30
    assert out.index[0] == etth1.dates[150] and (out.index[1:] - out.index[:-1] == pd.Timedelta(hours=1)).all()
    np.testing.assert_allclose(out.to_numpy(), m.forecast(etth1.values[None, 54:150, 6], 30)[0], rtol=1e-5, atol=1e-4)
    ranged = m.forecast(pd.Series(etth1.values[:50, 0]), horizon=5)
    assert list(ranged.index) == [50, 51, 52, 53, 54]
    arrays = [etth1.values[:150, 6], etth1.values[:40, 0], torch.tensor(etth1.values[:96, 1])]
    batch = m.forecast(arrays, horizon=30)
    assert isinstance(batch, np.ndarray) and batch.shape == (3, 30)
    for row, a in zip(batch, arrays, strict=True):
        np.testing.assert_allclose(row, m.forecast([a], horizon=30)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pad_contexts(m, [arrays[1]])[0, :56], np.full(56, arrays[1].mean()), rtol=1e-6)
    with pytest.raises(InputSpecError, match="at least 24"):
        m.forecast([etth1.values[:10, 0]], horizon=5)
    with pytest.raises(InputSpecError, match="scalar"):
        m.forecast([1, 2, 3], horizon=5)
    with pytest.raises(InputSpecError, match="DatetimeIndex"):
        m.forecast(pd.Series(etth1.values[:50, 0], index=[f"t{i}" for i in range(50)]), horizon=5)


def test_quantile_coverage_on_etth1_test_windows(etth1):
    """gpht-etth1's 0.1-0.9 interval, calibrated on its recipe's held-out ETTh1 validation split (read from its
    provenance.json), covers about 80% of 64 evenly spaced ETTh1 test windows x 7 channels (H=96; measured 0.819 with
    the full 336-step context, 0.755 with 96 observed values, padded)."""
    m = GPHT.from_pretrained("fmzoo/gpht-etth1")
    ctx, fut = eval_windows(etth1, "test", 96, 336, max_windows=64)
    x, y = ctx.permute(0, 2, 1).reshape(-1, 336).numpy(), fut.permute(0, 2, 1).reshape(-1, 96).numpy()
    for observed, band in ((336, (0.72, 0.9)), (96, (0.65, 0.9))):
        q, _ = m.predict_quantiles(list(x[:, -observed:]), 96, (0.1, 0.5, 0.9))
        coverage = ((y >= q[..., 0]) & (y <= q[..., 2])).mean()
        assert band[0] < coverage < band[1], (observed, coverage)
        assert 0.03 < (y < q[..., 0]).mean() < 0.2 and 0.03 < (y > q[..., 2]).mean() < 0.2
        assert 0.35 < (y <= q[..., 1]).mean() < 0.65


def test_forecast_is_shift_equivariant_at_large_levels(tiny_gpht, etth1):
    """Normalization runs in float64 before the cast to float32: a real ETTh1 series shifted by 1e8 is forecast
    as the unshifted one, shifted (casting first lost it: 10-25 off), and values near 1e20 stay finite."""
    m = tiny_gpht()
    s = etth1.values[:400, 6].astype(np.float64)  # OT, the real series
    frame = pd.DataFrame({"date": etth1.dates[:400], "OT": s})
    base = m.forecast([s], horizon=72)
    np.testing.assert_allclose(m.forecast([s + 1e8], horizon=72) - 1e8, base, rtol=0, atol=1e-3)
    np.testing.assert_allclose(m.forecast(s[None, -96:] + 1e8, horizon=72) - 1e8, base, rtol=0, atol=1e-3)
    shifted = frame.assign(OT=s + 1e8)
    np.testing.assert_allclose(m.forecast(shifted, horizon=72)["OT"].to_numpy() - 1e8, base[0], rtol=0, atol=1e-3)
    huge = m.forecast(s[None, -96:] * 1e19, horizon=72)
    assert np.isfinite(huge).all() and np.abs(huge).max() < 1e22
