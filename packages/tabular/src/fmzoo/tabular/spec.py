"""The tabular input spec: column names, types, categories and scaling, fitted on training data
and enforced on every later input with errors that name the column.

``TabularSchema`` fits and enforces it; ``TabularInput`` (the package's ``fmzoo.core.spec.InputSpec``) validates the
JSON dict a checkpoint carries (config.json -> input_spec), at save and at load: the keys ``TabularSchema.transform``
reads, their types, and the rules between them (every column numerical or categorical, once; categories for each
categorical column; a finite mean and a positive std for each numerical one).

Documented handling of missing values: a categorical column that had missing values (NaN or "?")
in the training data gets a ``<missing>`` category and accepts them later; anywhere else a missing
value is an error. Numerical columns are standardised with the training mean and std.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.spec import InputSpec

MISSING = "<missing>"


@dataclass
class TabularSchema:
    numerical: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # column order as fitted

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, df: pd.DataFrame, categorical: list[str] | None = None) -> TabularSchema:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"TabularSchema.fit expects a pandas DataFrame, got {type(df).__name__}")
        if df.shape[1] == 0 or len(df) == 0:
            raise InputSpecError("cannot fit a schema on an empty table")
        dup = df.columns[df.columns.duplicated()].tolist()
        if dup:
            raise InputSpecError(f"duplicate column names: {dup}")
        if categorical is None:
            categorical = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
        schema = cls(order=[str(c) for c in df.columns])
        for col in df.columns:
            name = str(col)
            if col in categorical:
                values = df[col].astype("object").where(df[col].notna(), MISSING).astype(str)
                schema.categorical.append(name)
                schema.categories[name] = sorted(values.unique().tolist())
            else:
                values = pd.to_numeric(df[col], errors="coerce")
                if values.isna().any():
                    row = int(np.flatnonzero(values.isna().to_numpy())[0])
                    bad = df[col].iloc[row]
                    what = "NaN (a missing value)" if pd.isna(bad) else f"{bad!r}, not a number"
                    raise InputSpecError(f"column {name!r}: numerical column has {what} at row {row}; expected a "
                                         "number in every row (or make the column categorical)")
                if np.isinf(values.to_numpy(dtype=np.float64)).any():
                    row = int(np.flatnonzero(np.isinf(values.to_numpy(dtype=np.float64)))[0])
                    raise InputSpecError(f"column {name!r}: numerical column has an infinite value (inf) at row {row}; "
                                         "expected finite numbers")
                schema.numerical.append(name)
                schema.mean[name] = float(values.mean())
                schema.std[name] = float(values.std(ddof=0)) or 1.0
        return schema

    def to_dict(self) -> dict:
        return {"type": "tabular", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> TabularSchema:
        from dataclasses import fields

        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.categories[c]) for c in self.categorical]

    @property
    def n_features(self) -> int:
        return len(self.numerical) + len(self.categorical)

    # -- enforcement ----------------------------------------------------------------------------
    def check_columns(self, df: pd.DataFrame, extra: str = "error") -> None:
        if not isinstance(df, pd.DataFrame):
            raise InputSpecError(f"expected a pandas DataFrame with columns {self.order}, got {type(df).__name__}")
        cols = [str(c) for c in df.columns]
        missing = [c for c in self.order if c not in cols]
        unexpected = [c for c in cols if c not in self.order]
        if missing:
            hint = f" (unexpected columns present: {unexpected}; renamed?)" if unexpected else ""
            raise InputSpecError(f"missing column(s) {missing}: the schema expects {self.order}{hint}")
        if unexpected and extra == "error":
            raise InputSpecError(f"unexpected column(s) {unexpected}: the schema expects exactly {self.order} (pass extra='ignore' to drop them)")

    def transform(self, df: pd.DataFrame, extra: str = "error") -> tuple[torch.Tensor, torch.Tensor]:
        """DataFrame -> (standardised numerical float32 [N, n_num], category codes int64 [N, n_cat])."""
        self.check_columns(df, extra=extra)
        df = df.rename(columns=str)
        n = len(df)
        x_num = np.zeros((n, len(self.numerical)), dtype=np.float32)
        for j, col in enumerate(self.numerical):
            raw = df[col]
            if not (pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw)):
                coerced = pd.to_numeric(raw, errors="coerce")
                bad = raw[coerced.isna() & raw.notna()]
                if len(bad):
                    raise InputSpecError(f"column {col!r}: expected numbers, got {bad.iloc[0]!r} (dtype {raw.dtype})")
                raw = coerced
            values = raw.to_numpy(dtype=np.float64)
            if np.isnan(values).any():
                row = int(np.flatnonzero(np.isnan(values))[0])
                raise InputSpecError(f"column {col!r}: NaN at row {row}; numerical columns must be complete")
            if np.isinf(values).any():
                raise InputSpecError(f"column {col!r}: infinite value at row {int(np.flatnonzero(np.isinf(values))[0])}")
            x_num[:, j] = (values - self.mean[col]) / self.std[col]
        x_cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            cats = self.categories[col]
            index = {c: i for i, c in enumerate(cats)}
            raw = df[col].astype("object")
            missing = raw.isna()
            if missing.any() and MISSING not in index:
                raise InputSpecError(
                    f"column {col!r}: missing value at row {int(np.flatnonzero(missing.to_numpy())[0])}, "
                    "and the training data had none in this column"
                )
            values = raw.where(~missing, MISSING).astype(str)
            codes = values.map(index)
            if codes.isna().any():
                unseen = values[codes.isna()].iloc[0]
                raise InputSpecError(f"column {col!r}: unseen category {unseen!r}; known: {cats}")
            x_cat[:, j] = codes.to_numpy(dtype=np.int64)
        return torch.from_numpy(x_num), torch.from_numpy(x_cat)

    def one_hot(self, df: pd.DataFrame, extra: str = "error") -> torch.Tensor:
        """Raw-feature baseline input: standardised numericals + one-hot categoricals."""
        x_num, x_cat = self.transform(df, extra=extra)
        parts = [x_num] + [
            torch.nn.functional.one_hot(x_cat[:, j], k).float() for j, k in enumerate(self.cardinalities)
        ]
        return torch.cat(parts, dim=1)


class TabularInput(InputSpec):
    """A table's feature schema (``TabularSchema.to_dict()``, plus the dataset it was fitted on)."""

    modality = "table"
    required = {"type": str, "order": list, "numerical": list, "categorical": list, "categories": dict, "mean": dict,
                "std": dict}
    optional = {"dataset": (str, type(None))}

    @classmethod
    def check(cls, spec: dict, where: str) -> None:
        if spec["type"] != "tabular":
            raise InputSpecError(f"{where}['type']: expected 'tabular', got {spec['type']!r}")
        for key in ("order", "numerical", "categorical"):
            names = spec[key]
            bad = [c for c in names if not isinstance(c, str)]
            if bad:
                raise InputSpecError(f"{where}[{key!r}]: expected column names (strings), got {bad[0]!r}")
            dup = sorted({c for c in names if names.count(c) > 1})
            if dup:
                raise InputSpecError(f"{where}[{key!r}]: duplicate column(s) {dup}")
        if not spec["order"]:
            raise InputSpecError(f"{where}['order']: expected at least one column, got []")
        both = sorted(set(spec["numerical"]) & set(spec["categorical"]))
        if both:
            raise InputSpecError(f"{where}: column(s) {both} are in both 'numerical' and 'categorical'")
        typed = set(spec["numerical"]) | set(spec["categorical"])
        if set(spec["order"]) != typed:
            raise InputSpecError(f"{where}['order']: expected the columns of 'numerical' + 'categorical' "
                                 f"({sorted(typed)}), got {spec['order']}; each column is numerical or categorical")
        if set(spec["categories"]) != set(spec["categorical"]):
            raise InputSpecError(f"{where}['categories']: expected one list per categorical column "
                                 f"{spec['categorical']}, got keys {sorted(spec['categories'])}")
        for col, cats in spec["categories"].items():
            if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats) or \
                    len(set(cats)) != len(cats):
                raise InputSpecError(f"{where}['categories'][{col!r}]: expected a non-empty list of distinct "
                                     f"category names (strings), got {cats!r}")
        for key in ("mean", "std"):
            if set(spec[key]) != set(spec["numerical"]):
                raise InputSpecError(f"{where}[{key!r}]: expected one number per numerical column {spec['numerical']}, "
                                     f"got keys {sorted(spec[key])}")
            for col, v in spec[key].items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                        (key == "std" and v <= 0):
                    expected = "a positive finite number" if key == "std" else "a finite number"
                    raise InputSpecError(f"{where}[{key!r}][{col!r}]: expected {expected}, got {v!r}")
