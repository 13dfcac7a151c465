"""Long-horizon evaluation of GPHT and the baselines: MSE / MAE on the dataset-normalized test windows, per horizon
(the loop over windows, ``evaluate_fn``, lives with the splits in data/ltsf.py)."""
from __future__ import annotations

import time

from fmzoo.timeseries.data.ltsf import as_data, evaluate_fn
from fmzoo.timeseries.models.baselines import DLinearLS, repeat_last

__all__ = ["evaluate_dlinear", "evaluate_fn", "evaluate_gpht", "evaluate_repeat_last"]


def evaluate_gpht(model, dataset, horizons=(96, 192, 336, 720), max_windows=None, batch_windows=64) -> dict:
    model.eval()
    return evaluate_fn(lambda c, h: model.generate(c, h), dataset, horizons, model.context_len, max_windows,
                       batch_windows)


def evaluate_repeat_last(dataset, horizons=(96, 192, 336, 720), context_len=336, max_windows=None) -> dict:
    return evaluate_fn(repeat_last, dataset, horizons, context_len, max_windows)


def evaluate_dlinear(dataset, horizons=(96, 192, 336, 720), context_len=336, max_windows=None,
                     fit_stride: int = 1) -> dict:
    data = as_data(dataset, context_len)
    out = {}
    for h in horizons:
        t0 = time.perf_counter()
        m = DLinearLS(context_len, int(h)).fit(data, stride=fit_stride)
        r = evaluate_fn(lambda c, hh, m=m: m.predict(c), data, [h], context_len, max_windows)[int(h)]
        r["fit_seconds"] = time.perf_counter() - t0 - r["seconds"]
        out[int(h)] = r
    return out
