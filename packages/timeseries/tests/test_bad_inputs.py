"""Bad inputs to the forecasting entry points: each is refused with an InputSpecError (the CLI: exit code 2 and a
one-line error) whose message names what was expected, or handled correctly; nothing is forecast from a silently
altered series. Entry points: ``predict_df`` (long layout), ``forecast`` of a wide DataFrame / arrays / tensors,
``fmzoo evaluate --data CSV`` (``load_csv``), and the checkpoint's input spec (``TimeSeriesInput``)."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.cli import main
from fmzoo.timeseries.data.ltsf import load_csv
from fmzoo.timeseries.models.gpht import GPHT

N = 150  # rows per series: > context_len 96 of the tiny model, enough for calibration='series' at H=4


@pytest.fixture
def model(tiny_gpht):
    return tiny_gpht()


@pytest.fixture(scope="module")
def long():
    ts = pd.date_range("2020-01-01", periods=N, freq="h")
    rng = np.random.default_rng(0)
    return pd.DataFrame({"item_id": ["a"] * N + ["b"] * N, "timestamp": list(ts) * 2,
                         "target": np.r_[rng.normal(size=N), 5 + rng.normal(size=N)]})


@pytest.fixture(scope="module")
def wide():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"date": pd.date_range("2020-01-01", periods=N, freq="h"), "x": rng.normal(size=N),
                         "y": rng.normal(size=N)})


def predict(model, df, h=4, **kw):
    # quantiles from a fixed residual table: these tests are about the inputs, not the calibration
    from fmzoo.timeseries.forecasting import Calibration

    cal = Calibration(np.random.default_rng(0).normal(size=(40, 16)), "test residuals")
    return model.predict_df(df, prediction_length=h, calibration=cal, **kw)


def _nan_at(s: pd.Series, i: int, value=np.nan) -> pd.Series:
    s = s.copy()
    s.iloc[i] = value
    return s


LONG_CASES = {  # name -> (how the frame is broken, keyword arguments, what the message must say)
    "missing item_id column": (lambda d: d.drop(columns="item_id"), {}, r"missing \['item_id'\]"),
    "missing timestamp column": (lambda d: d.drop(columns="timestamp"), {}, r"missing \['timestamp'\]"),
    "missing target column": (lambda d: d.drop(columns="target"), {}, r"missing \['target'\]"),
    "custom column names absent": (lambda d: d, {"target": "y"}, r"missing \['y'\]"),
    "duplicate timestamp": (lambda d: pd.concat([d, d.iloc[[3]]]), {}, "item 'a': duplicate timestamp"),
    "irregular step": (lambda d: d.drop(index=[10]), {}, "item 'a': irregular timestamps"),
    "NaN target": (lambda d: d.assign(target=_nan_at(d.target, 5)), {}, "item 'a': NaN or infinite"),
    "inf target": (lambda d: d.assign(target=_nan_at(d.target, N + 5, np.inf)), {}, "item 'b': NaN or infinite"),
    "too short": (lambda d: d.groupby("item_id").head(20), {}, "has 20 values; GPHT needs at least 24"),
    "text target": (lambda d: d.assign(target=d.target.astype(str)), {}, "must hold real numbers"),
    "boolean target": (lambda d: d.assign(target=d.target > 0), {}, "true/false"),
    "complex target": (lambda d: d.assign(target=d.target + 1j), {}, "complex numbers"),
    "datetime target": (lambda d: d.assign(target=d.timestamp), {}, "must hold real numbers"),
    "empty frame": (lambda d: d.iloc[:0], {}, "no rows"),
    "missing item id": (lambda d: d.assign(item_id=_nan_at(d.item_id, 3, None)), {}, "missing ids"),
    "unparseable timestamps": (lambda d: d.assign(timestamp="yesterday"), {}, "could not be parsed as timestamps"),
    "missing timestamp (NaT)": (lambda d: d.assign(timestamp=_nan_at(d.timestamp, 4, pd.NaT)), {}, r"NaT.*\[4\]"),
    "integer timestamps": (lambda d: d.assign(timestamp=list(range(N)) * 2), {}, "expected datetimes"),
    "horizon 0": (lambda d: d, {"h": 0}, "prediction_length must be a positive integer, got 0"),
    "horizon -3": (lambda d: d, {"h": -3}, "positive integer, got -3"),
    "horizon 2.5": (lambda d: d, {"h": 2.5}, "positive integer, got 2.5"),
    "horizon True": (lambda d: d, {"h": True}, "positive integer, got True"),
    "bad quantile levels": (lambda d: d, {"quantile_levels": [0.5, 1.5]}, "strictly between 0 and 1"),
}


@pytest.mark.parametrize("case", list(LONG_CASES))
def test_predict_df_refuses(case, model, long):
    broken, kw, message = LONG_CASES[case]
    with pytest.raises(InputSpecError, match=message):
        predict(model, broken(long), **kw)


def test_predict_df_not_a_frame(model, long):
    with pytest.raises(InputSpecError, match="expects a pandas DataFrame in the long layout, got ndarray"):
        predict(model, long.to_numpy())


def test_predict_df_handles_shuffled_rows_and_integer_values(model, long):
    """Rows in any order are sorted per item; integer targets are numbers; items come in order of first appearance."""
    ref = predict(model, long)
    shuffled = long.sample(frac=1, random_state=0)
    out = predict(model, shuffled)
    assert list(out["item_id"].unique()) == list(shuffled["item_id"].unique()) and len(out) == 2 * 4
    key = ["item_id", "timestamp"]
    pd.testing.assert_frame_equal(out.sort_values(key, ignore_index=True), ref.sort_values(key, ignore_index=True))
    assert out["timestamp"].iloc[0] == long["timestamp"].iloc[N - 1] + pd.Timedelta(hours=1)
    ints = predict(model, long.assign(target=(10 * long.target).round().astype(np.int64)))
    assert np.isfinite(ints["predictions"]).all()


WIDE_CASES = {
    "no timestamp column": (lambda d: d.drop(columns="date"), {}, "expected a DatetimeIndex or a timestamp column"),
    "named timestamp column absent": (lambda d: d, {"timestamp_col": "when"}, "'when' is not in the DataFrame"),
    "unsorted": (lambda d: d.iloc[::-1], {}, "strictly increasing"),
    "duplicate timestamps": (lambda d: pd.concat([d, d.iloc[[-1]]]), {}, "strictly increasing"),
    "irregular step": (lambda d: d.drop(index=[120]), {}, "irregular timestamps"),
    "NaN value": (lambda d: d.assign(x=_nan_at(d.x, N - 3)), {}, r"NaN or infinite .* columns \['x'\]"),
    "inf value": (lambda d: d.assign(y=_nan_at(d.y, N - 1, -np.inf)), {}, r"NaN or infinite .* columns \['y'\]"),
    "too short": (lambda d: d.iloc[:50], {}, "context_len=96 rows, got 50"),
    "text column": (lambda d: d.assign(s="a"), {}, "column 's' has dtype"),
    "boolean column": (lambda d: d.assign(b=d.x > 0), {}, "column 'b' has dtype bool"),
    "complex column": (lambda d: d.assign(c=d.x + 1j), {}, "column 'c' has dtype complex"),
    "timedelta column": (lambda d: d.assign(c=pd.to_timedelta(d.index, unit="s")), {}, "column 'c' has dtype"),
    "empty frame": (lambda d: d.iloc[:0], {}, "no rows"),
    "only timestamps": (lambda d: d[["date"]], {}, "no value columns"),
    "integer timestamps": (lambda d: d.assign(date=np.arange(N)), {}, "expected datetimes or date strings"),
    "horizon 0": (lambda d: d, {"horizon": 0}, "horizon must be a positive integer, got 0"),
    "horizon True": (lambda d: d, {"horizon": True}, "positive integer, got True"),
    "horizon 1.5": (lambda d: d, {"horizon": 1.5}, "positive integer, got 1.5"),
}


@pytest.mark.parametrize("case", list(WIDE_CASES))
def test_forecast_dataframe_refuses(case, model, wide):
    broken, kw, message = WIDE_CASES[case]
    kw = {"horizon": 4, **kw}
    with pytest.raises(InputSpecError, match=message):
        model.forecast(broken(wide), **kw)


def test_forecast_dataframe_calendar_frequency(model):
    """Month starts are regular though their steps differ in days: the forecast continues the calendar."""
    idx = pd.date_range("2000-01-01", periods=120, freq="MS")
    df = pd.DataFrame({"date": idx, "x": np.sin(np.arange(120) / 3.0)})
    out = model.forecast(df, horizon=3)
    assert list(out.index) == list(pd.date_range("2010-01-01", periods=3, freq="MS"))
    ref = model.generate(torch.tensor(df["x"].to_numpy()[-96:])[None, :, None], 3)[0, :, 0].numpy()
    np.testing.assert_allclose(out["x"].to_numpy(), ref)


ARRAY_CASES = {
    "1-D tensor": (lambda: torch.zeros(96), r"expected a tensor \[batch, time\] or \[batch, time, channels\]"),
    "4-D tensor": (lambda: torch.zeros(1, 96, 2, 2), r"got \(1, 96, 2, 2\)"),
    "short tensor": (lambda: torch.randn(2, 50), "context_len=96 time steps"),
    "boolean tensor": (lambda: torch.zeros(2, 96, dtype=torch.bool), "real numbers, got dtype torch.bool"),
    "complex tensor": (lambda: torch.zeros(2, 96, dtype=torch.complex64), "real numbers"),
    "NaN tensor": (lambda: torch.full((2, 96), float("nan")), "NaN or infinite"),
    "boolean array": (lambda: np.zeros((2, 96), dtype=bool), "real numbers, got dtype bool"),
    "complex array": (lambda: np.zeros((2, 96), dtype=complex), "real numbers, got dtype complex128"),
    "text array": (lambda: np.array([["a"] * 96]), "real numbers"),
    "short list": (lambda: [np.zeros(10)], "has 10 values; GPHT needs at least 24"),
    "empty list": (lambda: [], "at least one series"),
    "set": (lambda: {1, 2}, "expected a torch tensor"),
}


@pytest.mark.parametrize("case", list(ARRAY_CASES))
def test_forecast_arrays_refuse(case, model):
    data, message = ARRAY_CASES[case]
    with pytest.raises(InputSpecError, match=message):
        model.forecast(data(), 4)


@pytest.mark.parametrize("horizon", [0, -1, 2.5, True, "3"])
def test_generate_refuses_bad_horizons(horizon, model):
    with pytest.raises(InputSpecError, match="horizon must be a positive integer"):
        model.generate(torch.randn(2, 96), horizon)


# ----------------------------------------------------------------------------- fmzoo evaluate --data CSV
def _csv(tmp_path, frame: pd.DataFrame, name="mine.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


CSV_CASES = {
    "no date column": (lambda d: d.drop(columns="date"), "expected a 'date' column"),
    "unsorted": (lambda d: d.iloc[::-1], "strictly increasing"),
    "duplicate dates": (lambda d: pd.concat([d.iloc[:100], d.iloc[[99]], d.iloc[100:]]), "row 100"),
    "irregular steps": (lambda d: d.drop(index=[50, 51]), "irregular timestamps"),
    "NaN value": (lambda d: d.assign(x=_nan_at(d.x, 7)), "first at row 7, column 'x'"),
    "inf value": (lambda d: d.assign(x=_nan_at(d.x, 9, np.inf)), "first at row 9"),
    "text column": (lambda d: d.assign(s="a"), "column 's' has dtype"),
    "boolean column": (lambda d: d.assign(b=d.x > 0), "column 'b' has dtype bool"),
    "only dates": (lambda d: d[["date"]], "one or more numeric value columns"),
    "integer dates": (lambda d: d.assign(date=np.arange(len(d))), "expected datetimes or date strings"),
    "unparseable dates": (lambda d: d.assign(date="soon"), "could not be parsed"),
    "missing date": (lambda d: d.assign(date=_nan_at(d.date.astype(object), 5, None)), "NaT"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_load_csv_refuses(case, tmp_path, wide):
    broken, message = CSV_CASES[case]
    with pytest.raises(InputSpecError, match=message):
        load_csv(_csv(tmp_path, broken(wide)), context_len=96)


def test_cli_data_csv_errors_are_one_line_exit_2(tmp_path, wide, capsys):
    """fmzoo evaluate --data: a bad CSV is exit code 2 with one line naming the problem (no traceback), and an empty
    file, a header-only file and a missing file too; nothing is written."""
    out = tmp_path / "out"
    cases = {"irregular timestamps": _csv(tmp_path, wide.drop(index=[50]), "gaps.csv"),
             "could not be read as a CSV": tmp_path / "empty.csv",
             "no data rows": _csv(tmp_path, wide.iloc[:0], "header.csv"),
             "mine.csv": tmp_path / "absent" / "mine.csv"}
    (tmp_path / "empty.csv").write_text("")
    for message, path in cases.items():
        code = main(["evaluate", "fmzoo/gpht-mixed", "--data", str(path), "--seeds", "0", "--no-progress",
                     "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert code == 2, (message, err)
        assert err.startswith("fmzoo evaluate: error:") and message in err and "Traceback" not in err, err
        assert len(err.splitlines()) == 1
    assert not out.exists()


# ----------------------------------------------------------------------------- the checkpoint's input spec
SPEC_CASES = {  # a broken spec -> the key the message must name
    "missing context_len": (lambda s: {k: v for k, v in s.items() if k != "context_len"}, "context_len"),
    "token_len as text": (lambda s: {**s, "token_len": "24"}, "token_len"),
    "context_len as a float": (lambda s: {**s, "context_len": 96.0}, "context_len"),
    "negative token_len": (lambda s: {**s, "token_len": -24}, "token_len"),
    "context not whole tokens": (lambda s: {**s, "context_len": 100, "token_len": 24}, "context_len"),
    "layout not a string": (lambda s: {**s, "layout": 3}, "layout"),
    "not an object": (lambda s: [96, 24], "TimeSeriesInput"),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_broken_input_spec_refused_at_save_and_load(case, tmp_path, model):
    broken, key = SPEC_CASES[case]
    good = tmp_path / "good"
    model.save_pretrained(good)
    spec = GPHT.from_pretrained(good).input_spec
    # load: an edited config.json
    cfg = json.loads((good / "config.json").read_text())
    cfg["input_spec"] = broken(spec)
    (good / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputSpecError, match=key):
        GPHT.from_pretrained(good)
    # save: a model carrying the broken spec (set past the model's own agreement check) ships nothing
    m = GPHT(**model.init_args)
    m._input_spec = broken(spec)
    with pytest.raises(InputSpecError, match=key):
        m.save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad" / "config.json").exists()


def test_input_spec_must_agree_with_the_model(tmp_path, model):
    """A spec whose lengths are not the model's (an edited config.json) is refused, naming the key and both values;
    the shipped checkpoints' specs are valid."""
    model.save_pretrained(tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["input_spec"]["context_len"] = 48  # a whole number of 24-step tokens, but not the model's 96
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputSpecError, match=r"input_spec\['context_len'\] = 48 but the model's context_len is 96"):
        GPHT.from_pretrained(tmp_path / "ck")
    with pytest.raises(InputSpecError, match="token_len"):
        model.input_spec = {**model.input_spec, "token_len": 12}
    from fmzoo.timeseries.spec import TimeSeriesInput

    for name in ("gpht-mixed", "gpht-etth1", "gpht-etth1-scratch", "gpht-etth2-scratch", "gpht-mixed-no-etth2"):
        m = GPHT.from_pretrained(f"fmzoo/{name}")
        assert TimeSeriesInput.validate(m.get_config()["input_spec"]) == m.input_spec
        assert m.input_spec["context_len"] == 336 and m.input_spec["token_len"] == 48
