"""Readers for the long-term forecasting benchmarks (Autoformer/ETDataset CSVs) and their standard splits.

Splits follow the protocol every long-horizon paper (Informer, Autoformer, PatchTST, GPHT) uses:
- ETTh*: 12/4/4 months of 30 days -> rows [0, 8640) / [8640, 11520) / [11520, 14400); ETTm*: x4;
- other datasets: chronological 70% / 10% / 20%.
The validation and test segments start ``context_len`` rows before their border so the first window's
forecast begins exactly at the border. A StandardScaler (per channel mean / std) is fitted on the train
rows only; metrics are computed on these normalized values.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from fmzoo.core import InputSpecError, data_root
from fmzoo.timeseries.spec import parse_timestamps, value_dtype_problem

DATASETS = {
    "ETTh1": ("timeseries/ETT-small/ETTh1.csv", "ett_hour"),
    "ETTh2": ("timeseries/ETT-small/ETTh2.csv", "ett_hour"),
    "ETTm1": ("timeseries/ETT-small/ETTm1.csv", "ett_minute"),
    "exchange_rate": ("timeseries/exchange_rate/exchange_rate.csv", "custom"),
    "illness": ("timeseries/illness/national_illness.csv", "custom"),
}


@dataclass
class LTSFData:
    name: str
    path: Path
    columns: list[str]
    dates: pd.DatetimeIndex
    values: np.ndarray  # raw values [T, C], float32
    scaled: np.ndarray  # standardized with train statistics [T, C], float32
    mean: np.ndarray
    std: np.ndarray
    borders: dict = field(default_factory=dict)  # split -> (start, end) row indices (start includes context)
    context_len: int = 336

    def split(self, name: str) -> np.ndarray:
        """Normalized rows of one split ('train', 'val', 'test'), including the leading context rows."""
        if name not in self.borders:
            raise KeyError(f"unknown split {name!r}; expected one of {sorted(self.borders)}")
        a, b = self.borders[name]
        return self.scaled[a:b]


def split_borders(n_rows: int, kind: str, context_len: int) -> dict[str, tuple[int, int]]:
    if kind == "ett_hour":
        tr, va, te = 12 * 30 * 24, 4 * 30 * 24, 4 * 30 * 24
    elif kind == "ett_minute":
        tr, va, te = 12 * 30 * 24 * 4, 4 * 30 * 24 * 4, 4 * 30 * 24 * 4
    else:
        tr = int(n_rows * 0.7)
        te = int(n_rows * 0.2)
        va = n_rows - tr - te
    return {
        "train": (0, tr),
        "val": (tr - context_len, tr + va),
        "test": (tr + va - context_len, tr + va + te),
    }


def load_ltsf(name: str, root: str | Path | None = None, context_len: int = 336) -> LTSFData:
    """Load one benchmark by name (see DATASETS) from ``fmzoo.core.data_root()`` (or ``root``)."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}")
    rel, kind = DATASETS[name]
    path = Path(root or data_root()) / rel
    if not path.is_file():
        raise FileNotFoundError(f"{name}: expected the CSV at {path} (set FMZOO_DATA to the shared data folder)")
    return load_csv(path, kind=kind, context_len=context_len, name=name)


def load_csv(path: str | Path, kind: str = "custom", context_len: int = 336, name: str | None = None) -> LTSFData:
    """A time-series CSV in the Autoformer layout: a ``date`` column and one or more numeric columns, one row per
    time step in time order. Split by ``kind`` (``custom``: chronological 70% / 10% / 20%), standardized with the
    train rows' statistics. Used for the benchmarks and for a user's own file (``fmzoo evaluate --data``)."""
    path = Path(path)
    if kind not in ("ett_hour", "ett_minute", "custom"):
        raise ValueError(f"unknown split kind {kind!r}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputSpecError(f"{path}: could not be read as a CSV ({exc}); expected a 'date' column plus numeric "
                             "columns") from None
    if "date" not in df.columns:
        raise InputSpecError(f"{path}: expected a 'date' column, got columns {list(df.columns)}")
    if len(df) == 0:
        raise InputSpecError(f"{path}: no data rows (only a header); expected one row per time step")
    # Autoformer layout: the target 'OT' is moved to the last column
    cols = [c for c in df.columns if c not in ("date", "OT")] + (["OT"] if "OT" in df.columns else [])
    if not cols:
        raise InputSpecError(f"{path}: expected one or more numeric value columns beside 'date', got none")
    bad = {c: why for c in cols if (why := value_dtype_problem(df[c].dtype))}
    if bad:
        raise InputSpecError(f"{path}: value columns must hold numbers; " +
                             "; ".join(f"column {c!r} has {why}" for c, why in bad.items()))
    values = df[cols].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        rows, cs = np.nonzero(~np.isfinite(values))
        raise InputSpecError(f"{path}: NaN or infinite values ({len(rows)}; first at row {int(rows[0])}, column "
                             f"{cols[int(cs[0])]!r}); fill the gaps first - the model does not impute")
    dates = parse_timestamps(df["date"], f"{path}: the 'date' column")
    if not (dates[1:] > dates[:-1]).all():
        i = int(np.argmin(np.asarray(dates[1:] > dates[:-1])))
        raise InputSpecError(f"{path}: the 'date' column must hold strictly increasing timestamps (one row per time "
                             f"step, oldest first, no duplicates); row {i + 1} ({dates[i + 1]}) does not come after "
                             f"row {i} ({dates[i]})")
    if len(dates) >= 3 and pd.infer_freq(dates) is None:  # gaps: windows would span unequal times
        steps = pd.Series(dates[1:] - dates[:-1]).value_counts()
        raise InputSpecError(f"{path}: irregular timestamps, no single frequency (steps seen: "
                             f"{', '.join(str(d) for d in steps.index[:3])}); resample to a regular grid first, e.g. "
                             "df.set_index('date').asfreq(freq).interpolate()")
    borders = split_borders(len(df), kind, context_len)
    tr0, tr1 = borders["train"]
    if tr1 - tr0 < 2:
        raise InputSpecError(f"{path}: {len(df)} rows leave {tr1 - tr0} training rows; too short")
    mean = values[tr0:tr1].mean(axis=0)
    std = values[tr0:tr1].std(axis=0)  # population std, as sklearn's StandardScaler
    std = np.where(std == 0, 1.0, std)
    scaled = (values - mean) / std
    return LTSFData(name=name or path.stem, path=path, columns=cols, dates=dates,
                    values=values.astype(np.float32), scaled=scaled.astype(np.float32),
                    mean=mean.astype(np.float32), std=std.astype(np.float32), borders=borders,
                    context_len=context_len)


def window_starts(n_rows: int, length: int, stride: int = 1, max_windows: int | None = None) -> np.ndarray:
    """Start indices of windows of ``length`` rows; ``max_windows`` keeps an evenly spaced subset."""
    n = n_rows - length + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(0, n, stride, dtype=np.int64)
    if max_windows is not None and len(starts) > max_windows:
        starts = starts[np.linspace(0, len(starts) - 1, max_windows).round().astype(np.int64)]
    return starts


def eval_windows(data: LTSFData, split: str, horizon: int, context_len: int | None = None,
                 stride: int = 1, max_windows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(context [W, L, C], future [W, H, C]) windows of a split, normalized, as the official test loader."""
    L = context_len or data.context_len
    seg = data.split(split)
    starts = window_starts(len(seg), L + horizon, stride, max_windows)
    idx = starts[:, None] + np.arange(L + horizon)[None, :]
    w = torch.from_numpy(seg[idx])  # [W, L+H, C]
    return w[:, :L], w[:, L:]


def forecast_metrics(pred: torch.Tensor, true: torch.Tensor) -> dict:
    d = pred.double() - true.double()
    return {"mse": float((d ** 2).mean()), "mae": float(d.abs().mean())}


def as_data(dataset: str | LTSFData, context_len: int) -> LTSFData:
    return dataset if isinstance(dataset, LTSFData) else load_ltsf(dataset, context_len=context_len)


@torch.no_grad()
def evaluate_fn(predict, dataset: str | LTSFData, horizons, context_len: int = 336, max_windows: int | None = None,
                batch_windows: int = 64) -> dict:
    """predict(context [B, L, C], horizon) -> [B, H, C]; returns {H: {mse, mae, windows, seconds}}."""
    data = as_data(dataset, context_len)
    out = {}
    for h in horizons:
        ctx, fut = eval_windows(data, "test", int(h), context_len, max_windows=max_windows)
        t0 = time.perf_counter()
        preds = [predict(ctx[i:i + batch_windows], int(h)) for i in range(0, len(ctx), batch_windows)]
        pred = torch.cat(preds)
        out[int(h)] = {**forecast_metrics(pred, fut), "windows": len(ctx), "seconds": time.perf_counter() - t0}
    return out


class MixtureWindows(torch.utils.data.Dataset):
    """All (window, channel) pairs of the train splits of several datasets, each item a univariate window.
    ``names``: benchmark names (DATASETS) or already loaded ``LTSFData`` (loaded with the same ``context_len``).

    This is GPHT's mixed pretraining set: channel independence turns every variable of every dataset into
    univariate series; the datasets are concatenated (so larger datasets contribute more windows). Each
    item has ``context_len + token_len`` normalized values: input = the first context_len, target = the
    same span shifted by one token.
    """

    def __init__(self, names: list[str], context_len: int = 336, token_len: int = 48, split: str = "train",
                 percent: float = 100.0, root=None):
        self.length = context_len + token_len
        self.series: list[np.ndarray] = []
        self.counts: list[int] = []
        self.names = [n if isinstance(n, str) else n.name for n in names]
        self.files: list[Path] = []
        for n in names:  # a benchmark's name, or a loaded LTSFData (a user's CSV, ``load_csv``)
            d = n if isinstance(n, LTSFData) else load_ltsf(n, root=root, context_len=context_len)
            seg = d.split(split)
            n_win = max(0, len(seg) - self.length + 1)
            if percent < 100:  # few-shot: the first percent of the windows, as the official loader does
                n_win = int(n_win * percent / 100)
            self.series.append(np.ascontiguousarray(seg.T))  # [C, T]
            self.counts.append(n_win * seg.shape[1])
            self.files.append(d.path)
        self.bounds = np.concatenate([[0], np.cumsum(self.counts)])

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def __getitem__(self, index: int) -> torch.Tensor:
        i = int(np.searchsorted(self.bounds, index, side="right") - 1)
        local = index - int(self.bounds[i])
        c = self.series[i].shape[0]
        start, channel = divmod(local, c)
        return torch.from_numpy(self.series[i][channel, start:start + self.length])


def load_etth1(root=None) -> LTSFData:
    return load_ltsf("ETTh1", root)


def load_etth2(root=None) -> LTSFData:
    return load_ltsf("ETTh2", root)


def load_ettm1(root=None) -> LTSFData:
    return load_ltsf("ETTm1", root)


def load_exchange_rate(root=None) -> LTSFData:
    return load_ltsf("exchange_rate", root)


def load_illness(root=None) -> LTSFData:
    return load_ltsf("illness", root)
