"""Forecasting in the field's layout: ``predict_df`` (the long format of Chronos' ``predict_df`` / TimesFM's
``forecast_on_df``) and ``predict_quantiles`` (Chronos' call on a list of 1-D contexts), for a GPHT.

Contexts. The last ``context_len`` (336) values of each series are used. A shorter series (at least
``min_context`` = one token, 48 values) is left-padded with the mean of its observed values; the model's instance
normalization then runs over the padded context as usual (its mean is the observed mean; its std is the observed
std shrunk by sqrt(observed / context_len)). Measured on 64 ETTh1 test windows x 7 channels (H=96, gpht-mixed),
this beat the alternatives: MSE 0.458 with 96 observed values (0.563 with 48, 0.397 with the full 336), against
0.502 for padding with the first value and 0.618 for mean padding with the normalization over the observed values
only (which is 1.19 with 48 values); ETTm1 ranks them the same. Below ``min_context`` a series is refused.

Quantiles: calibrated residual quantiles (split-conformal style, per horizon step). The point forecast's errors on
calibration windows are measured in the model's normalized space, r = (y - forecast) / s, with s the std of the
window's observed context values (the instance normalization's unit for a full context; for a padded one the observed
std, which kept the 0.1-0.9 coverage near 75-79% with 96 observed values where the padded context's smaller std gave
about 50%); the level-q quantile of step h is ``forecast_h + quantile_q(r_h) * s`` for the series being forecast. Calibration windows (``calibration=``):

- "validation" (default): the validation splits that the checkpoint's recipe held out from training (its
  ``data.datasets``; for gpht-mixed all five datasets pooled, up to 64 evenly spaced windows per dataset, x
  channels), with full 336-step contexts. Needs the data under $FMZOO_DATA and a model that knows its checkpoint
  (``GPHT.from_pretrained``), or ``calibration_datasets=[...]``. Fine-tuned checkpoints (gpht-etth1) chose their
  early-stopping step on that split, so it is not perfectly held out.
- "series": the last part of each given series: backtests whose targets are its last ``prediction_length``
  values, then the ``prediction_length`` before them, ... (at most 8 per series, contexts of at least
  ``min_context`` values, padded as above), residuals pooled over the series.

Coverage measured on real held-out data is recorded in the package README.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from fmzoo.core import InputSpecError
from fmzoo.timeseries.spec import _positive_int, future_timestamps, parse_timestamps, value_dtype_problem

QUANTILE_LEVELS = (0.1, 0.5, 0.9)
CALIBRATION_WINDOWS = 64  # evenly spaced validation windows per dataset (x its channels)
SERIES_BACKTESTS = 8  # at most this many backtest windows per series for calibration="series"
MIN_RESIDUALS = 20
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def min_context(model) -> int:
    """The shortest context the padded forecast accepts: one token (``token_len`` observed values)."""
    return int(model.token_len)


def _as_series_list(context) -> list[np.ndarray]:
    """A 1-D array/tensor/pd.Series, a 2-D array/tensor [N, T], or a list of 1-D ones -> a list of float64 arrays."""
    if isinstance(context, pd.Series):
        return [_numeric_1d(context, 0)]
    if isinstance(context, (np.ndarray, torch.Tensor)):
        arr = context.detach().cpu().numpy() if torch.is_tensor(context) else context
        if arr.ndim == 1:
            return [_numeric_1d(arr, 0)]
        if arr.ndim == 2:
            return [_numeric_1d(a, i) for i, a in enumerate(arr)]
        raise InputSpecError(f"expected a 1-D series, a 2-D array [series, time] or a list of 1-D series, got an "
                             f"array of shape {tuple(arr.shape)}")
    if isinstance(context, (list, tuple)):
        if not context:
            raise InputSpecError("expected at least one series, got an empty list")
        return [_numeric_1d(s, i) for i, s in enumerate(context)]
    raise InputSpecError(f"expected a 1-D series, a 2-D array [series, time] or a list of 1-D arrays, got "
                         f"{type(context).__name__}")


def _numeric_1d(s, i: int) -> np.ndarray:
    if torch.is_tensor(s):
        s = s.detach().cpu().numpy()
    if isinstance(s, pd.Series):
        if not pd.api.types.is_numeric_dtype(s):
            raise InputSpecError(f"series {i}: expected numeric values, got dtype {s.dtype}")
        s = s.to_numpy()
    arr = np.asarray(s)
    if arr.ndim != 1:
        raise InputSpecError(f"series {i}: expected a 1-D array of values, got "
                             f"{'a scalar' if arr.ndim == 0 else f'shape {arr.shape}'}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputSpecError(f"series {i}: expected real numeric values, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def pad_contexts(model, series: Sequence[np.ndarray], names: Sequence | None = None) -> torch.Tensor:
    """The last ``context_len`` values of each series, a shorter one left-padded with its observed mean ->
    [N, context_len] float64 (the model normalizes before casting to its weights' float32). Refuses series shorter than ``min_context`` or with NaN/inf values."""
    length, shortest = int(model.context_len), min_context(model)
    x = np.zeros((len(series), length), dtype=np.float64)
    for i, s in enumerate(series):
        label = f"series {names[i]!r}" if names is not None else f"series {i}"
        s = np.asarray(s, dtype=np.float64)[-length:]
        if len(s) < shortest:
            raise InputSpecError(f"{label} has {len(s)} values; GPHT needs at least {shortest} (one "
                                 f"{model.token_len}-step token; shorter contexts up to context_len={length} are "
                                 "left-padded with the series' mean)")
        if not np.isfinite(s).all():
            raise InputSpecError(f"{label}: NaN or infinite values among its last {len(s)} values; fill gaps first "
                                 "(e.g. interpolate) - the model does not impute")
        x[i, : length - len(s)] = s.mean()
        x[i, length - len(s):] = s
    return torch.from_numpy(x)


def point_forecast(model, series: Sequence[np.ndarray], horizon: int, names: Sequence | None = None,
                   batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(forecasts [N, horizon], scales [N]): the autoregressive forecast of each (padded) context and the std of its
    observed values (those of the context, at most ``context_len``: the model's instance-normalization unit for a
    full context; for a padded one, the unit the quantiles use)."""
    horizon = _positive_int(horizon, "prediction_length")
    x = pad_contexts(model, series, names)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            pred = torch.cat([model.generate(x[i:i + batch_size], horizon) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)
    observed = [np.asarray(s, dtype=np.float64)[-int(model.context_len):] for s in series]
    scale = np.sqrt(np.array([s.var() for s in observed]) + float(model.eps))
    return pred.double().numpy(), scale


def _levels(quantile_levels) -> tuple[float, ...]:
    try:
        levels = tuple(float(q) for q in quantile_levels)
    except (TypeError, ValueError):
        raise InputSpecError(f"quantile_levels must be numbers in (0, 1), got {quantile_levels!r}") from None
    if not levels or any(not 0 < q < 1 for q in levels) or len(set(levels)) != len(levels):
        raise InputSpecError(f"quantile_levels must be distinct numbers strictly between 0 and 1, got "
                             f"{list(quantile_levels)!r}")
    return levels


@dataclass
class Calibration:
    """Normalized residuals r = (y - forecast) / scale of calibration windows, [n_windows, horizon]."""

    residuals: np.ndarray
    source: str

    def quantiles(self, levels: Sequence[float]) -> np.ndarray:
        """[horizon, len(levels)]: each level's empirical quantile of the residuals, per horizon step."""
        n = len(self.residuals)
        need = max(MIN_RESIDUALS, math.ceil(1 / min(min(q, 1 - q) for q in levels)))
        if n < need:
            raise InputSpecError(f"{self.source}: {n} calibration windows; quantile levels {list(levels)} need at "
                                 f"least {need}. Give longer or more series, or another calibration")
        return np.quantile(self.residuals, levels, axis=0).T


def _weights_version(model) -> tuple:
    return tuple(p._version for p in model.parameters())


def calibrate_validation(model, datasets: Sequence[str], horizon: int,
                         max_windows: int = CALIBRATION_WINDOWS) -> Calibration:
    """Residuals on the validation splits of ``datasets`` (standard LTSF splits, full ``context_len`` contexts,
    ``max_windows`` evenly spaced window positions per dataset, x channels). Datasets whose validation split is too
    short for ``horizon`` (illness beyond H=97) are left out; cached per model, weights version and horizon."""
    from fmzoo.timeseries.data.ltsf import DATASETS, eval_windows, load_ltsf

    horizon = _positive_int(horizon, "prediction_length")
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown or not datasets:
        raise InputSpecError(f"calibration datasets must be among {', '.join(DATASETS)}, got {list(datasets)}")
    key = (tuple(datasets), horizon, int(max_windows), _weights_version(model))
    cache = _CACHE.setdefault(model, {})
    if key in cache:
        return cache[key]
    ctxs, futs, used = [], [], []
    for name in datasets:
        try:
            data = load_ltsf(name, context_len=model.context_len)
        except FileNotFoundError as exc:
            raise InputSpecError(f"calibration='validation' needs the {name} data ({exc}); or use "
                                 "calibration='series' (the last part of your own series)") from None
        ctx, fut = eval_windows(data, "val", horizon, model.context_len, max_windows=max_windows)
        if len(ctx):
            ctxs.append(ctx.permute(0, 2, 1).reshape(-1, model.context_len).numpy())
            futs.append(fut.permute(0, 2, 1).reshape(-1, horizon).numpy())
            used.append(name)
    if not used:
        raise InputSpecError(f"the validation splits of {', '.join(datasets)} are too short for "
                             f"prediction_length={horizon}; use calibration='series'")
    ctx, fut = np.concatenate(ctxs), np.concatenate(futs)
    pred, scale = point_forecast(model, list(ctx), horizon)
    cal = Calibration((fut - pred) / scale[:, None], f"validation splits of {', '.join(used)}")
    cache.clear()  # one entry per model: the latest weights and horizon
    cache[key] = cal
    return cal


def calibrate_series(model, series: Sequence[np.ndarray], horizon: int, names: Sequence | None = None,
                     max_backtests: int = SERIES_BACKTESTS) -> Calibration:
    """Residuals of backtests on the last part of each series: targets the last ``horizon`` values, then the
    ``horizon`` before them, ... (at most ``max_backtests`` per series, contexts of at least ``min_context``)."""
    horizon = _positive_int(horizon, "prediction_length")
    ctxs, futs = [], []
    for i, s in enumerate(series):
        for k in range(max_backtests):
            end = len(s) - k * horizon
            if end - horizon < min_context(model):
                break
            ctxs.append(s[:end - horizon])
            futs.append(s[end - horizon:end])
            if not np.isfinite(futs[-1]).all():
                raise InputSpecError(f"series {i}: NaN or infinite values among the last {len(s) - end + horizon} "
                                     "values that calibration='series' backtests on; fill gaps first")
    if not ctxs:
        raise InputSpecError(f"calibration='series' needs a series of at least min_context + prediction_length = "
                             f"{min_context(model) + horizon} values; use calibration='validation'")
    pred, scale = point_forecast(model, ctxs, horizon)
    return Calibration((np.stack(futs) - pred) / scale[:, None],
                       f"backtests on the last part of the given series ({len(ctxs)} windows)")


def _calibration(model, calibration, series, horizon: int, calibration_datasets) -> Calibration:
    if isinstance(calibration, Calibration):
        if calibration.residuals.shape[1] < horizon:
            raise InputSpecError(f"the given calibration covers {calibration.residuals.shape[1]} steps, "
                                 f"prediction_length is {horizon}")
        return Calibration(calibration.residuals[:, :horizon], calibration.source)
    if calibration == "series":
        return calibrate_series(model, series, horizon)
    if calibration != "validation":
        raise InputSpecError(f"calibration must be 'validation', 'series' or a Calibration, got {calibration!r}")
    datasets = list(calibration_datasets or [])
    if not datasets:
        from fmzoo.timeseries.provenance import checkpoint_recipe, recipe_datasets

        datasets = recipe_datasets(checkpoint_recipe(getattr(model, "checkpoint_dir", None)))
    if not datasets:
        raise InputSpecError("calibration='validation' needs the datasets the checkpoint was trained on: load it with "
                             "GPHT.from_pretrained(ID) (which reads its provenance.json), or pass "
                             "calibration_datasets=['ETTh1', ...], or use calibration='series'")
    return calibrate_validation(model, datasets, horizon)


def predict_quantiles(model, context, prediction_length: int = 96, quantile_levels=QUANTILE_LEVELS,
                      calibration="validation", calibration_datasets=None, names=None):
    """Chronos' ``predict_quantiles`` for a GPHT: ``context`` a 1-D series, a 2-D array [series, time] or a list of
    1-D series of any lengths >= ``min_context`` -> (quantiles [N, prediction_length, len(levels)], point forecasts
    [N, prediction_length]), both float64 arrays in the series' units (see the module docstring for the method)."""
    horizon = _positive_int(prediction_length, "prediction_length")
    levels = _levels(quantile_levels)
    series = _as_series_list(context)
    pred, scale = point_forecast(model, series, horizon, names)
    table = _calibration(model, calibration, series, horizon, calibration_datasets).quantiles(levels)  # [H, Q]
    return pred[:, :, None] + table[None] * scale[:, None, None], pred


def predict_df(model, df: pd.DataFrame, id_column: str = "item_id", timestamp_column: str = "timestamp",
               target: str = "target", prediction_length: int = 96, quantile_levels=QUANTILE_LEVELS,
               calibration="validation", calibration_datasets=None) -> pd.DataFrame:
    """Forecast every series of a long DataFrame (one row per item and time step, any number of items, any lengths
    >= ``min_context``): returns one row per (item, future timestamp) with ``id_column``, ``timestamp_column``,
    "predictions" (the point forecast) and one column per quantile level named ``str(level)`` ("0.1", "0.5", ...),
    items in order of first appearance. Rows of an item may come in any order (sorted by timestamp here);
    timestamps must be unique per item and regular (``pd.infer_freq``); target values finite."""
    if not isinstance(df, pd.DataFrame):
        raise InputSpecError(f"predict_df expects a pandas DataFrame in the long layout, got {type(df).__name__}")
    horizon = _positive_int(prediction_length, "prediction_length")
    levels = _levels(quantile_levels)
    missing = [c for c in (id_column, timestamp_column, target) if c not in df.columns]
    if missing:
        raise InputSpecError(f"predict_df expects columns {id_column!r} (series id), {timestamp_column!r} and "
                             f"{target!r} (values); missing {missing}, got columns {list(df.columns)}")
    if len(df) == 0:
        raise InputSpecError(f"predict_df: the DataFrame has no rows; expected one row per item and time step "
                             f"(at least {min_context(model)} per item)")
    why = value_dtype_problem(df[target].dtype)
    if why:
        raise InputSpecError(f"the target column {target!r} must hold real numbers, got {why}")
    ts = parse_timestamps(df[timestamp_column], f"column {timestamp_column!r}")
    if df[id_column].isna().any():
        raise InputSpecError(f"column {id_column!r} has missing ids")
    frame = pd.DataFrame({"id": df[id_column].to_numpy(), "ts": ts, "y": df[target].to_numpy(dtype=np.float64)})
    ids, series, futures = [], [], []
    for item, g in frame.groupby("id", sort=False):
        g = g.sort_values("ts", kind="stable")
        if g["ts"].duplicated().any():
            dup = g["ts"][g["ts"].duplicated()].iloc[0]
            raise InputSpecError(f"item {item!r}: duplicate timestamp {dup}; one row per item and time step")
        values = g["y"].to_numpy()
        if not np.isfinite(values).all():
            raise InputSpecError(f"item {item!r}: NaN or infinite target values ({int((~np.isfinite(values)).sum())} "
                                 f"of {len(values)}); fill gaps first (e.g. interpolate) - the model does not impute")
        ids.append(item)
        series.append(values)
        futures.append(future_timestamps(pd.DatetimeIndex(g["ts"]), horizon, f"item {item!r}"))
    q, pred = predict_quantiles(model, series, horizon, levels, calibration, calibration_datasets, names=ids)
    out = pd.DataFrame({id_column: np.repeat(np.asarray(ids, dtype=object), horizon),
                        timestamp_column: futures[0].append(futures[1:]) if len(futures) > 1 else futures[0],
                        "predictions": pred.reshape(-1)})
    try:  # the ids keep the input column's dtype
        out[id_column] = out[id_column].astype(df[id_column].dtype)
    except (TypeError, ValueError):
        pass
    for j, level in enumerate(levels):
        out[str(level)] = q[:, :, j].reshape(-1)
    return out
