"""UCI Adult (Census Income): the official train (adult.data) / test (adult.test) split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fmzoo.core import data_path

COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
]
TARGET = "income"
CLASSES = ["<=50K", ">50K"]


def _read(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, header=None, names=COLUMNS + [TARGET], skipinitialspace=True, na_values="?")
    if df.shape[1] != 15 or df[TARGET].isna().any():
        raise ValueError(f"{path} is not in the UCI Adult format (15 comma-separated columns)")
    df[TARGET] = df[TARGET].str.rstrip(".")
    bad = set(df[TARGET]) - set(CLASSES)
    if bad:
        raise ValueError(f"{path}: unexpected labels {sorted(bad)}")
    return df


def load_adult(root: str | Path | None = None) -> dict:
    """{"train": (X, y), "test": (X, y), "files": [...], "task": "classification"}; y in {0, 1} (>50K = 1)."""
    folder = Path(root) / "tabular" / "adult" if root else data_path("tabular", "adult")
    files = [folder / "adult.data", folder / "adult.test"]
    out = {"files": files, "task": "classification", "classes": CLASSES, "target": TARGET}
    for split, f in zip(("train", "test"), files, strict=True):
        df = _read(f)
        out[split] = (df[COLUMNS].reset_index(drop=True), (df[TARGET] == ">50K").astype(int).to_numpy())
    return out
