"""What a GPHT checkpoint accepts: its input spec (``TimeSeriesInput``) and the DataFrame interface,
``model.forecast(df, horizon=H)`` -> a DataFrame indexed by future timestamps.

Input rules (each violation raises fmzoo.core.InputSpecError naming what was expected):
- timestamps: a DatetimeIndex, or a column named by ``timestamp_col`` (default: 'date', 'timestamp',
  'ds' or 'time' when present) of datetimes or date strings (plain numbers are refused); strictly increasing,
  no duplicates, and regularly spaced (one constant step, or a calendar frequency that ``pd.infer_freq``
  finds, such as month starts; a missing row counts as irregular). Fill or resample gaps yourself, e.g.
  ``df.asfreq(freq)`` followed by ``df.interpolate()``.
- values: every other column must hold real numbers (booleans, complex numbers, datetimes and text are
  refused); NaN / inf values are refused (no silent imputation).
- length: at least the model's ``context_len`` rows (only the last ``context_len`` are used).
Columns are forecast independently (channel independence); the output keeps their names and order.
The model normalizes each series itself, so values are given in their own units.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.spec import InputSpec


class TimeSeriesInput(InputSpec):
    """A channel-independent forecaster's input (config.json ``input_spec``), as the package reads it: the downstream
    tasks cut windows of ``context_len`` steps (tasks/downstream.py), the model consumes them ``token_len`` steps per
    token and forecasts ``token_len`` steps at a time, so the context must be a whole number of tokens; ``dataset``
    (optional) is the LTSF dataset ``fmzoo evaluate`` defaults to. ``layout`` and ``normalization`` describe the
    input for people (not read by the code). The model checks that the spec agrees with its own lengths when it is
    loaded (GPHT.from_pretrained)."""

    modality = "time-series"
    required = {"context_len": int, "token_len": int}
    optional = {"layout": str, "normalization": str, "dataset": str}

    @classmethod
    def check(cls, spec: dict, where: str) -> None:
        for key in ("context_len", "token_len"):
            if spec[key] <= 0:
                raise InputSpecError(f"{where}[{key!r}]: expected a positive number of time steps, got {spec[key]}")
        if spec["context_len"] % spec["token_len"]:
            raise InputSpecError(f"{where}['context_len']: expected a multiple of token_len={spec['token_len']} (the "
                                 f"model reads whole tokens), got {spec['context_len']}")


_TIME_COLUMNS = ("date", "timestamp", "ds", "time")


def value_dtype_problem(dtype) -> str | None:
    """Why values of ``dtype`` cannot be forecast (None: real numbers, which they can). Booleans and complex numbers
    are numbers to pandas but not a series GPHT models (a cast would silently give 0/1 levels or drop the imaginary
    part); datetimes, timedeltas, strings and objects are not numbers."""
    if pd.api.types.is_bool_dtype(dtype):
        return f"dtype {dtype} (true/false); cast it with .astype(float) if you mean 0/1 values"
    if pd.api.types.is_complex_dtype(dtype):
        return f"dtype {dtype} (complex numbers); forecast the real and imaginary parts as two columns"
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return f"dtype {dtype}"
    return None


def parse_timestamps(values, label: str) -> pd.DatetimeIndex:
    """``values`` (a column of datetimes or date strings) as a DatetimeIndex, or an InputSpecError: unparseable text,
    missing values (NaT) and plain numbers are refused (pandas would read integers as nanoseconds since 1970)."""
    values = pd.Series(values) if not isinstance(values, (pd.Series, pd.Index)) else values
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        raise InputSpecError(f"{label}: expected datetimes or date strings, got numbers (dtype {values.dtype}); "
                             "convert them first, e.g. pd.to_datetime(col, unit='s') or pd.date_range(...)")
    try:
        ts = pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputSpecError(f"{label}: could not be parsed as timestamps: {exc}") from None
    if ts.hasnans:
        raise InputSpecError(f"{label}: has missing timestamps (NaT) at row(s) "
                             f"{np.flatnonzero(np.asarray(ts.isna()))[:5].tolist()}")
    return ts


def _timestamps(df: pd.DataFrame, timestamp_col: str | None) -> tuple[pd.DatetimeIndex, pd.DataFrame, str | None]:
    if timestamp_col is not None:
        if timestamp_col not in df.columns:
            raise InputSpecError(f"timestamp column {timestamp_col!r} is not in the DataFrame (columns: {list(df.columns)})")
        col = timestamp_col
    elif isinstance(df.index, pd.DatetimeIndex):
        return df.index, df, None
    else:
        col = next((c for c in _TIME_COLUMNS if c in df.columns), None)
        if col is None:
            raise InputSpecError("expected a DatetimeIndex or a timestamp column (one of "
                                 f"{list(_TIME_COLUMNS)}, or pass timestamp_col=); got columns {list(df.columns)}")
    return parse_timestamps(df[col], f"column {col!r}"), df.drop(columns=[col]), col


def regular_step(ts: pd.DatetimeIndex) -> pd.Timedelta:
    """The constant spacing of ts, or an InputSpecError that says where it breaks."""
    if ts.hasnans:
        raise InputSpecError("the timestamps contain missing values (NaT)")
    if len(ts) < 2:
        raise InputSpecError(f"need at least 2 timestamps to infer the sampling step, got {len(ts)}")
    diffs = ts[1:] - ts[:-1]  # TimedeltaIndex (unit-safe: pandas may store us or ns)
    nonpos = np.asarray(diffs <= pd.Timedelta(0))
    if nonpos.any():
        i = int(np.argmax(nonpos))
        raise InputSpecError(f"timestamps must be strictly increasing; row {i + 1} ({ts[i + 1]}) does not come after "
                             f"row {i} ({ts[i]})")
    step = diffs[0]
    bad = np.nonzero(np.asarray(diffs != step))[0]
    if len(bad):
        i = int(bad[0])
        raise InputSpecError(
            f"irregular timestamps: expected a constant step of {step}, but rows {i} -> {i + 1} "
            f"({ts[i]} -> {ts[i + 1]}) are {diffs[i]} apart ({len(bad)} irregular gaps). "
            "Resample to a regular grid first, e.g. df.asfreq(step).interpolate()")
    return pd.Timedelta(step)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
        raise InputSpecError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def future_timestamps(ts: pd.DatetimeIndex, horizon: int, label: str) -> pd.DatetimeIndex:
    """The next ``horizon`` timestamps after ``ts`` at its inferred frequency (``pd.infer_freq``: calendar
    frequencies such as month starts included); an InputSpecError for irregular or too few timestamps."""
    if len(ts) < 3:
        raise InputSpecError(f"{label}: {len(ts)} timestamps; at least 3 are needed to infer the frequency")
    try:
        freq = pd.infer_freq(ts)
    except (TypeError, ValueError) as exc:
        raise InputSpecError(f"{label}: could not infer the frequency of its timestamps ({exc})") from None
    if freq is None:
        diffs = pd.Series(ts[1:] - ts[:-1]).value_counts()
        raise InputSpecError(f"{label}: irregular timestamps, no single frequency (steps seen: "
                             f"{', '.join(str(d) for d in diffs.index[:3])}); resample to a regular grid first, "
                             "e.g. s.asfreq(freq).interpolate()")
    return pd.date_range(ts[-1], periods=horizon + 1, freq=freq, tz=ts.tz)[1:]


def forecast_dataframe(model, df: pd.DataFrame, horizon: int, timestamp_col: str | None = None) -> pd.DataFrame:
    horizon = _positive_int(horizon, "horizon")
    if df.shape[0] == 0:
        raise InputSpecError(f"the DataFrame has no rows; the model needs at least context_len={model.context_len}")
    ts, values_df, _ = _timestamps(df, timestamp_col)
    if values_df.shape[1] == 0:
        raise InputSpecError("the DataFrame has no value columns to forecast")
    bad = {c: why for c in values_df.columns if (why := value_dtype_problem(values_df[c].dtype))}
    if bad:
        raise InputSpecError("value columns must hold real numbers; " +
                             "; ".join(f"column {c!r} has {why}" for c, why in bad.items()))
    if len(values_df) < model.context_len:
        raise InputSpecError(f"context too short: the model needs at least context_len={model.context_len} rows, "
                             f"got {len(values_df)}")
    try:
        step = regular_step(ts)
        future = pd.DatetimeIndex([ts[-1] + step * (i + 1) for i in range(horizon)], name=ts.name or "date")
    except InputSpecError as exc:  # not one constant step: a calendar frequency (month starts, ...) is regular too
        if "irregular" not in str(exc):
            raise
        try:
            future = future_timestamps(ts, horizon, "the DataFrame's timestamps")
        except InputSpecError:
            raise exc from None
        future = future.rename(ts.name or "date")
    values = values_df.to_numpy(dtype=np.float64)[-model.context_len:]
    if not np.isfinite(values).all():
        bad_cols = [c for c, ok in zip(values_df.columns, np.isfinite(values).all(axis=0), strict=True) if not ok]
        raise InputSpecError(f"NaN or infinite values in the last {model.context_len} rows of columns {bad_cols}; "
                             "fill gaps first (e.g. df.interpolate()) - the model does not impute")
    x = torch.tensor(values).unsqueeze(0)  # [1, L, C] float64: normalized before the cast to float32
    pred = model.generate(x, horizon)[0].numpy()
    index = future
    if ts.tz is not None and index.tz is None:
        index = index.tz_localize(ts.tz)
    return pd.DataFrame(pred, index=index, columns=list(values_df.columns))
