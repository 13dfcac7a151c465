"""Long-horizon evaluation: MSE / MAE on the dataset-normalized test windows, per horizon."""
from __future__ import annotations

import time

import torch
from fmzoo.timeseries.data.ltsf import LTSFData, eval_windows, load_ltsf
from fmzoo.timeseries.models.baselines import DLinearLS, repeat_last


def _metrics(pred: torch.Tensor, true: torch.Tensor) -> dict:
    d = pred.double() - true.double()
    return {"mse": float((d ** 2).mean()), "mae": float(d.abs().mean())}


def _as_data(dataset: str | LTSFData, context_len: int) -> LTSFData:
    return dataset if isinstance(dataset, LTSFData) else load_ltsf(dataset, context_len=context_len)


@torch.no_grad()
def evaluate_fn(predict, dataset: str | LTSFData, horizons, context_len: int = 336, max_windows: int | None = None,
                batch_windows: int = 64) -> dict:
    """predict(context [B, L, C], horizon) -> [B, H, C]; returns {H: {mse, mae, windows, seconds}}."""
    data = _as_data(dataset, context_len)
    out = {}
    for h in horizons:
        ctx, fut = eval_windows(data, "test", int(h), context_len, max_windows=max_windows)
        t0 = time.perf_counter()
        preds = [predict(ctx[i:i + batch_windows], int(h)) for i in range(0, len(ctx), batch_windows)]
        pred = torch.cat(preds)
        out[int(h)] = {**_metrics(pred, fut), "windows": len(ctx), "seconds": time.perf_counter() - t0}
    return out


def evaluate_gpht(model, dataset, horizons=(96, 192, 336, 720), max_windows=None, batch_windows=64) -> dict:
    model.eval()
    return evaluate_fn(lambda c, h: model.generate(c, h), dataset, horizons, model.context_len, max_windows,
                       batch_windows)


def evaluate_repeat_last(dataset, horizons=(96, 192, 336, 720), context_len=336, max_windows=None) -> dict:
    return evaluate_fn(repeat_last, dataset, horizons, context_len, max_windows)


def evaluate_dlinear(dataset, horizons=(96, 192, 336, 720), context_len=336, max_windows=None,
                     fit_stride: int = 1) -> dict:
    data = _as_data(dataset, context_len)
    out = {}
    for h in horizons:
        t0 = time.perf_counter()
        m = DLinearLS(context_len, int(h)).fit(data, stride=fit_stride)
        r = evaluate_fn(lambda c, hh, m=m: m.predict(c), data, [h], context_len, max_windows)[int(h)]
        r["fit_seconds"] = time.perf_counter() - t0 - r["seconds"]
        out[int(h)] = r
    return out
