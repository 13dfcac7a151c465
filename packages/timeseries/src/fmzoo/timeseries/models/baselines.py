"""Sanity baselines computed in the same run as GPHT: repeat-last and a DLinear-style linear model.

DLinearLS follows DLinear (Zeng et al., AAAI 2023, "shared" variant): the context is split by a moving
average (kernel 25, replicate padding) into trend and seasonal parts, each mapped to the horizon by a
linear layer, and the two are summed. Because both maps are linear, we fit them in closed form (ridge
least squares on the train windows, all channels stacked) rather than with Adam: the same model class
and MSE objective, solved exactly and in seconds.
"""
from __future__ import annotations

import numpy as np
import torch
from fmzoo.timeseries.data.ltsf import LTSFData, window_starts


def repeat_last(context: torch.Tensor, horizon: int) -> torch.Tensor:
    """[B, L(, C)] -> [B, H(, C)]: the last observed value, repeated."""
    last = context[:, -1:]
    return last.expand(context.shape[0], horizon, *context.shape[2:]).clone()


def moving_average(x: np.ndarray, kernel: int = 25) -> np.ndarray:
    """Trend of rows x [N, L] by a centred moving average with replicate padding (DLinear's series_decomp)."""
    front = (kernel - 1) // 2
    back = kernel - 1 - front
    padded = np.concatenate([np.repeat(x[:, :1], front, 1), x, np.repeat(x[:, -1:], back, 1)], axis=1)
    c = np.cumsum(np.concatenate([np.zeros((x.shape[0], 1)), padded], axis=1), axis=1)
    return (c[:, kernel:] - c[:, :-kernel]) / kernel


class DLinearLS:
    def __init__(self, context_len: int = 336, horizon: int = 96, kernel: int = 25, ridge: float = 1e-3):
        self.context_len, self.horizon, self.kernel, self.ridge = context_len, horizon, kernel, ridge
        self.weight: np.ndarray | None = None

    def features(self, x: np.ndarray) -> np.ndarray:
        trend = moving_average(x, self.kernel)
        return np.concatenate([x - trend, trend, np.ones((x.shape[0], 1))], axis=1)

    def fit(self, data: LTSFData, stride: int = 1, max_windows: int | None = None) -> DLinearLS:
        seg = data.split("train").astype(np.float64)
        starts = window_starts(len(seg), self.context_len + self.horizon, stride, max_windows)
        idx = starts[:, None] + np.arange(self.context_len + self.horizon)[None, :]
        w = seg[idx]  # [W, L+H, C]
        w = np.transpose(w, (0, 2, 1)).reshape(-1, self.context_len + self.horizon)
        f = self.features(w[:, : self.context_len])
        y = w[:, self.context_len:]
        a = f.T @ f
        a[np.diag_indices_from(a)] += self.ridge * len(f)
        self.weight = np.linalg.solve(a, f.T @ y)
        return self

    def predict(self, context: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("DLinearLS.predict before fit")
        x = context.double().numpy()
        if x.ndim == 3:
            b, length, c = x.shape
            rows = np.transpose(x, (0, 2, 1)).reshape(b * c, length)
            out = self.features(rows[:, -self.context_len:]) @ self.weight
            return torch.from_numpy(out.reshape(b, c, -1).transpose(0, 2, 1).astype(np.float32))
        return torch.from_numpy((self.features(x[:, -self.context_len:]) @ self.weight).astype(np.float32))
