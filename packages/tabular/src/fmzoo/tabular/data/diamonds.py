"""Diamonds (ggplot2's 53,940 diamonds, shipped by the plotnine package): regression of log price.

No official split exists: a fixed seeded 80/20 train/test split (seed 0) is used everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]
TARGET = "log_price"


def diamonds_csv() -> Path:
    try:
        import plotnine
    except ImportError as exc:  # pragma: no cover - plotnine is a dependency of fmzoo-tabular
        raise ImportError("the diamonds data ship with the plotnine package: pip install plotnine") from exc
    path = Path(plotnine.__file__).parent / "data" / "diamonds.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed plotnine")
    return path


def load_diamonds(root=None, seed: int = 0, test_fraction: float = 0.2) -> dict:
    path = diamonds_csv()
    df = pd.read_csv(path)
    if len(df) != 53940 or not set(COLUMNS + ["price"]) <= set(df.columns):
        raise ValueError(f"{path} is not the 53,940-row diamonds table")
    for col in ("cut", "color", "clarity"):
        df[col] = df[col].astype(str)
    y = np.log(df["price"].to_numpy(dtype=np.float64))
    perm = np.random.default_rng(seed).permutation(len(df))
    n_test = int(round(test_fraction * len(df)))
    test, train = perm[:n_test], perm[n_test:]
    X = df[COLUMNS]
    return {
        "train": (X.iloc[train].reset_index(drop=True), y[train]),
        "test": (X.iloc[test].reset_index(drop=True), y[test]),
        "files": [path],
        "task": "regression",
        "target": TARGET,
    }
