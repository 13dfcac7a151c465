"""sklearn-style estimators for scientists: frozen T-JEPA representations + a trained head.

    clf = TJEPAClassifier("fmzoo/tjepa-adult").fit(df, y)
    clf.predict(df_new); clf.predict_proba(df_new)

Inputs are checked against the checkpoint's feature schema (names, types, categories): a missing,
extra or renamed column, a wrong dtype, an unseen category or a NaN raises InputSpecError naming
the column. ``extra="ignore"`` drops unexpected columns instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fmzoo.core import InputSpecError
from fmzoo.core.evaluation import fit_head, predict_head

from ..models.tjepa import TJEPA
from .downstream import embed_frame, split_validation
from .heads import make_head


class _TJEPAEstimator:
    task = "classification"

    def __init__(self, backbone: str | TJEPA = "fmzoo/tjepa-adult", head: str = "mlp", val_fraction: float = 0.1,
                 max_epochs: int | None = None, seed: int = 0, extra: str = "error", head_kwargs: dict | None = None):
        """``head_kwargs`` overrides the head's optimisation settings (lr, weight_decay, batch_size,
        max_epochs, patience); the defaults are T-JEPA's tuned Adult settings."""
        self.backbone, self.head, self.val_fraction = backbone, head, val_fraction
        self.max_epochs, self.seed, self.extra, self.head_kwargs = max_epochs, seed, extra, dict(head_kwargs or {})

    def _model(self) -> TJEPA:
        if not hasattr(self, "model_"):
            self.model_ = self.backbone if isinstance(self.backbone, TJEPA) else TJEPA.from_pretrained(self.backbone)
        return self.model_

    def transform(self, X) -> np.ndarray:
        """The frozen T-JEPA representation of each row."""
        if not isinstance(X, pd.DataFrame):
            schema = self._model().input_spec or {}
            X = np.asarray(X, dtype=object)
            if X.ndim != 2 or X.shape[1] != len(schema.get("order", [])):
                raise InputSpecError(f"expected a DataFrame or a 2-D array with columns {schema.get('order')}, got shape {X.shape}")
            X = pd.DataFrame(X, columns=schema["order"]).infer_objects()
        return embed_frame(self._model(), X, extra=self.extra).numpy()

    def _prepare_y(self, y):
        return np.asarray(y)

    def fit(self, X, y):
        feats = self.transform(X)
        y = self._prepare_y(y)
        if len(y) != len(feats):
            raise InputSpecError(f"X has {len(feats)} rows but y has {len(y)}")
        tr, va = split_validation(len(feats), self.val_fraction, self.seed)
        self.mean_, self.std_ = feats[tr].mean(0), feats[tr].std(0) + 1e-6
        feats = (feats - self.mean_) / self.std_
        out_dim = len(self.classes_) if self.task == "classification" else 1
        model = self._model()
        net, optim = make_head(self.head, feats.shape[1], out_dim, n_tokens=model.n_tokens)
        optim.update(self.head_kwargs)
        if self.max_epochs:
            optim["max_epochs"] = self.max_epochs
        self.head_ = fit_head(net, feats[tr], y[tr], feats[va], y[va], task=self.task, seed=self.seed, **optim)
        return self

    def _raw_predict(self, X):
        if not hasattr(self, "head_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(X, y) first")
        return predict_head(self.head_, (self.transform(X) - self.mean_) / self.std_, task=self.task)


class TJEPAClassifier(_TJEPAEstimator):
    task = "classification"

    def _prepare_y(self, y):
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
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
        y = np.asarray(y, dtype=np.float64)
        if np.isnan(y).any():
            raise InputSpecError("y contains NaN")
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std() or 1.0)
        return (y - self.y_mean_) / self.y_std_

    def predict(self, X) -> np.ndarray:
        return self._raw_predict(X) * self.y_std_ + self.y_mean_
