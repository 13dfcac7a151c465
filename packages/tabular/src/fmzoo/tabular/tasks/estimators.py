"""sklearn-style estimators for scientists: frozen T-JEPA representations + a trained head, or (``finetune=True``)
the T-JEPA encoder and the head fine-tuned together.

    clf = TJEPAClassifier("fmzoo/tjepa-adult").fit(df, y)
    clf.predict(df_new); clf.predict_proba(df_new)
    TJEPAClassifier("fmzoo/tjepa-adult", finetune=True).fit(df, y)   # end to end

Inputs are checked against the checkpoint's feature schema (names, types, categories): a missing,
extra or renamed column, a wrong dtype, an unseen category or a NaN raises InputSpecError naming
the column. ``extra="ignore"`` drops unexpected columns instead. Datetime, duration and complex columns are
refused (convert them to numbers first), as are a ``val_fraction`` outside (0, 1), a classifier's y with NaN or
with continuous values (use TJEPARegressor), and a regressor's y with NaN, infinities or non-numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fmzoo.core import InputSpecError
from fmzoo.core.evaluation import fit_head, predict_head

from ..models.tjepa import TJEPA
from .downstream import embed_frame, finetune_network, model_schema, split_validation
from .heads import make_head


class _TJEPAEstimator:
    task = "classification"

    def __init__(self, backbone: str | TJEPA = "fmzoo/tjepa-adult", head: str = "mlp", val_fraction: float = 0.1,
                 max_epochs: int | None = None, seed: int = 0, extra: str = "error", head_kwargs: dict | None = None,
                 finetune: bool = False):
        """``head_kwargs`` overrides the head's optimisation settings (lr, weight_decay, batch_size,
        max_epochs, patience); the defaults are T-JEPA's tuned Adult settings. ``finetune``: train the
        T-JEPA encoder together with the head (encoder lr ``downstream.ENCODER_LR["pretrained"]``)."""
        self.backbone, self.head, self.val_fraction = backbone, head, val_fraction
        self.max_epochs, self.seed, self.extra, self.head_kwargs = max_epochs, seed, extra, dict(head_kwargs or {})
        self.finetune = finetune

    def _model(self) -> TJEPA:
        if not hasattr(self, "model_"):
            self.model_ = self.backbone if isinstance(self.backbone, TJEPA) else TJEPA.from_pretrained(self.backbone)
        return self.model_

    def _frame(self, X) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            schema = self._model().input_spec or {}
            X = np.asarray(X, dtype=object)
            if X.ndim != 2 or X.shape[1] != len(schema.get("order", [])):
                raise InputSpecError(f"expected a DataFrame or a 2-D array with columns {schema.get('order')}, got shape {X.shape}")
            X = pd.DataFrame(X, columns=schema["order"]).infer_objects()
        for col in X.columns:
            dtype = X[col].dtype
            if (pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype)
                    or pd.api.types.is_complex_dtype(dtype)):
                raise InputSpecError(f"column {col!r}: expected real numbers or categories (strings), got dtype "
                                     f"{dtype}; convert datetimes and durations to numbers first (e.g. days since "
                                     "a date)")
        return X

    def transform(self, X) -> np.ndarray:
        """The frozen T-JEPA representation of each row."""
        return embed_frame(self._model(), self._frame(X), extra=self.extra).numpy()

    def _columns(self, X) -> tuple:
        """(numerical, categorical) tensors of the rows, checked against the schema: the fine-tuned network's input."""
        model = self._model()
        x_num, x_cat = model_schema(model).transform(self._frame(X), extra=self.extra)
        model.check_tensors(x_num, x_cat)
        return x_num, x_cat

    def _prepare_y(self, y):
        return np.asarray(y)

    def fit(self, X, y):
        v = self.val_fraction
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not 0 < v < 1:
            raise InputSpecError("val_fraction: expected a number strictly between 0 and 1 (the share of rows held "
                                 f"out for early stopping), got {v!r}")
        y = self._prepare_y(y)
        inputs = self._columns(X) if self.finetune else self.transform(X)
        n = len(inputs[0]) if self.finetune else len(inputs)
        if len(y) != n:
            raise InputSpecError(f"X has {n} rows but y has {len(y)}")
        tr, va = split_validation(n, self.val_fraction, self.seed)
        out_dim = len(self.classes_) if self.task == "classification" else 1
        model = self._model()
        if self.finetune:
            net, optim = finetune_network(model, inputs, tr, self.head, out_dim, seed=self.seed)
            fit_x, val_x = tuple(t[tr] for t in inputs), tuple(t[va] for t in inputs)
        else:
            self.mean_, self.std_ = inputs[tr].mean(0), inputs[tr].std(0) + 1e-6
            feats = (inputs - self.mean_) / self.std_
            net, optim = make_head(self.head, feats.shape[1], out_dim, n_tokens=model.n_tokens, seed=self.seed)
            fit_x, val_x = feats[tr], feats[va]
        optim.update(self.head_kwargs)
        if self.max_epochs:
            optim["max_epochs"] = self.max_epochs
        self.head_ = fit_head(net, fit_x, y[tr], val_x, y[va], task=self.task, seed=self.seed, **optim)
        return self

    def _raw_predict(self, X):
        if not hasattr(self, "head_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(X, y) first")
        if self.finetune:
            return predict_head(self.head_, self._columns(X), task=self.task)
        return predict_head(self.head_, (self.transform(X) - self.mean_) / self.std_, task=self.task)


class TJEPAClassifier(_TJEPAEstimator):
    task = "classification"

    def _prepare_y(self, y):
        y = np.asarray(y)
        missing = pd.isna(y) if y.ndim == 1 else np.zeros(0, bool)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise InputSpecError(f"y: expected a class label for every row, got NaN/None at row {row}")
        if y.dtype.kind == "f" and len(y):
            n_unique = len(np.unique(y))
            if not np.all(y == np.round(y)) and n_unique > 0.5 * len(y):
                raise InputSpecError(f"y: expected class labels, got continuous values ({n_unique} distinct floats in "
                                     f"{len(y)} rows); use TJEPARegressor for a numerical target")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InputSpecError("y has a single class; a classifier needs at least two")
        return codes

    def predict_proba(self, X) -> np.ndarray:
        return self._raw_predict(X)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(1)]


class TJEPARegressor(_TJEPAEstimator):
    task = "regression"

    def _prepare_y(self, y):
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputSpecError("y: expected real numbers for regression, got values like "
                                 f"{np.asarray(y).ravel()[:3].tolist()}") from None
        if np.isnan(y).any():
            row = int(np.flatnonzero(np.isnan(y))[0])
            raise InputSpecError(f"y contains NaN at row {row}; expected a finite number for every row")
        if np.isinf(y).any():
            row = int(np.flatnonzero(np.isinf(y))[0])
            raise InputSpecError(f"y: expected finite numbers, got an infinity at row {row}")
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() or 1.0)
        return (y - self.y_mean_) / self.y_std_

    def predict(self, X) -> np.ndarray:
        return self._raw_predict(X) * self.y_std_ + self.y_mean_
