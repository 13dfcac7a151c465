"""FLIP GB1 fitness splits (regression; Spearman rho). Columns: sequence, target, set, validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from fmzoo.core import InputSpecError, data_root

GB1_SPLITS = ("one_vs_rest", "two_vs_rest", "three_vs_rest", "low_vs_high", "sampled")
#: GB1's four varied sites V39, D40, G41, V54 (1-based), as 0-based indices into FLIP's sequence.
GB1_SITES = (38, 39, 40, 53)
#: The wild type's residues at those sites.
GB1_WILD_TYPE_SITES = "VDGV"


def gb1_wild_type(variant: str) -> str:
    """The wild-type sequence: any FLIP GB1 variant with its four varied sites set back to V, D, G, V."""
    s = list(variant)
    for site, aa in zip(GB1_SITES, GB1_WILD_TYPE_SITES, strict=True):
        s[site] = aa
    return "".join(s)


def load_gb1(split: str = "three_vs_rest", root: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """``{"train": ..., "valid": ..., "test": ...}``; ``valid`` is FLIP's ``validation=True`` subset of train."""
    if split not in GB1_SPLITS:
        raise ValueError(f"GB1 split must be one of {GB1_SPLITS}, got {split!r}")
    root = Path(root) if root else data_root() / "proteins" / "flip_gb1"
    df = pd.read_csv(root / f"{split}.csv")
    need = {"sequence", "target", "set", "validation"}
    if not need <= set(df.columns):
        raise InputSpecError(f"{split}.csv: expected columns {sorted(need)}, got {list(df.columns)}")
    if df["target"].isna().any():
        raise InputSpecError(f"{split}.csv: {int(df['target'].isna().sum())} NaN targets")
    val = df["validation"].astype(str).str.lower() == "true"
    train = df[(df["set"] == "train") & ~val].reset_index(drop=True)
    valid = df[(df["set"] == "train") & val].reset_index(drop=True)
    test = df[df["set"] == "test"].reset_index(drop=True)
    return {"train": train, "valid": valid, "test": test}
