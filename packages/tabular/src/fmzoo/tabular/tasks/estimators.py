"""sklearn-style estimators for scientists: frozen T-JEPA representations + a trained head, or (``finetune=True``)
the T-JEPA encoder and the head fine-tuned together.

    clf = TJEPAClassifier("fmzoo/tjepa-adult").fit(df, y)
    clf.predict(df_new); clf.predict_proba(df_new)
    TJEPAClassifier("fmzoo/tjepa-adult", finetune=True).fit(df, y)   # end to end

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
        if isinstance(X, pd.DataFrame):
            return X
        schema = self._model().input_spec or {}
        X = np.asarray(X, dtype=object)
        if X.ndim != 2 or X.shape[1] != len(schema.get("order", [])):
            raise InputSpecError(f"expected a DataFrame or a 2-D array with columns {schema.get('order')}, got shape {X.shape}")
        return pd.DataFrame(X, columns=schema["order"]).infer_objects()

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
        inputs = self._columns(X) if self.finetune else self.transform(X)
        n = len(inputs[0]) if self.finetune else len(inputs)
        y = self._prepare_y(y)
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
