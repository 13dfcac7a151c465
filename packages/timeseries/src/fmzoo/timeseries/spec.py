"""The DataFrame interface: ``model.forecast(df, horizon=H)`` -> a DataFrame indexed by future timestamps.

Input rules (each violation raises fmzoo.core.InputSpecError naming what was expected):
- timestamps: a DatetimeIndex, or a column named by ``timestamp_col`` (default: 'date', 'timestamp',
  'ds' or 'time' when present); strictly increasing, no duplicates, and regularly spaced (one constant
  step; a missing row counts as irregular). Fill or resample gaps yourself, e.g. ``df.asfreq(freq)``
  followed by ``df.interpolate()``.
- values: every other column must be numeric; NaN / inf values are refused (no silent imputation).
- length: at least the model's ``context_len`` rows (only the last ``context_len`` are used).
Columns are forecast independently (channel independence); the output keeps their names and order.
The model normalizes each series itself, so values are given in their own units.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from fmzoo.core import InputSpecError

_TIME_COLUMNS = ("date", "timestamp", "ds", "time")


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
    try:
        ts = pd.DatetimeIndex(pd.to_datetime(df[col]))
    except (ValueError, TypeError) as exc:
        raise InputSpecError(f"column {col!r} could not be parsed as timestamps: {exc}") from None
    return ts, df.drop(columns=[col]), col


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


def forecast_dataframe(model, df: pd.DataFrame, horizon: int, timestamp_col: str | None = None) -> pd.DataFrame:
    if not isinstance(horizon, (int, np.integer)) or int(horizon) <= 0:
        raise InputSpecError(f"horizon must be a positive integer, got {horizon!r}")
    ts, values_df, _ = _timestamps(df, timestamp_col)
    if values_df.shape[1] == 0:
        raise InputSpecError("the DataFrame has no value columns to forecast")
    non_numeric = [c for c in values_df.columns if not pd.api.types.is_numeric_dtype(values_df[c])]
    if non_numeric:
        raise InputSpecError(f"value columns must be numeric; non-numeric columns: {non_numeric}")
    if len(values_df) < model.context_len:
        raise InputSpecError(f"context too short: the model needs at least context_len={model.context_len} rows, "
                             f"got {len(values_df)}")
    step = regular_step(ts)
    values = values_df.to_numpy(dtype=np.float64)[-model.context_len:]
    if not np.isfinite(values).all():
        bad_cols = [c for c, ok in zip(values_df.columns, np.isfinite(values).all(axis=0), strict=True) if not ok]
        raise InputSpecError(f"NaN or infinite values in the last {model.context_len} rows of columns {bad_cols}; "
                             "fill gaps first (e.g. df.interpolate()) - the model does not impute")
    x = torch.tensor(values).unsqueeze(0)  # [1, L, C] float64: normalized before the cast to float32
    pred = model.generate(x, int(horizon))[0].numpy()
    index = pd.DatetimeIndex([ts[-1] + step * (i + 1) for i in range(int(horizon))], name=ts.name or "date")
    if ts.tz is not None and index.tz is None:
        index = index.tz_localize(ts.tz)
    return pd.DataFrame(pred, index=index, columns=list(values_df.columns))
