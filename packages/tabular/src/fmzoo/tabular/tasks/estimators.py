"""scikit-learn estimators for scientists: frozen T-JEPA representations + a trained head, or (``finetune=True``)
the T-JEPA encoder and the head fine-tuned together.

    clf = TJEPAClassifier("fmzoo/tjepa-adult").fit(df, y)
    clf.predict(df_new); clf.predict_proba(df_new); clf.score(df_new, y_new)
    TJEPAClassifier("fmzoo/tjepa-adult", finetune=True).fit(df, y)   # end to end
    TJEPAClassifier({"dim": 16, "depth": 2}).fit(df, y)               # a randomly initialised T-JEPA: the scratch control

They are scikit-learn estimators (``BaseEstimator`` + ``ClassifierMixin``/``RegressorMixin`` + ``TransformerMixin``):
parameters are stored as given and validated in ``fit``; everything learned ends in ``_``; ``clone``,
``get_params``/``set_params``, ``Pipeline``, ``cross_val_score`` and ``GridSearchCV`` work; ``transform`` gives the
frozen representation (one column per [REG]/feature token and latent dimension, see ``get_feature_names_out``).
``set_output(transform="pandas")`` (or sklearn's global ``transform_output="pandas"``) makes ``transform`` return a
DataFrame and, beyond sklearn's own convention, ``predict``/``predict_proba`` a Series/DataFrame, all indexed like the
input DataFrame; by default every output is a NumPy array.

``backbone`` decides where the columns come from:

- a checkpoint (a hub id, a folder, or a loaded ``TJEPA``): schema-bound. Inputs are checked against the checkpoint's
  feature schema (names, types, categories): a missing, extra or renamed column, a wrong dtype, an unseen category or
  a NaN raises InputSpecError naming the column; columns are matched by name (any order), ``extra="ignore"`` drops
  unexpected ones, and a 2-D array is read as the schema's columns in the schema's order.
- a dict of ``TJEPA`` architecture arguments (``dim``, ``depth``, ...; not ``n_num``/``cardinalities``): a T-JEPA at a
  random init drawn from ``seed`` whose schema is fitted on the training rows (numbers: numerical columns, anything
  else: categories), the scratch control of the package's tables (not pretrained). Inputs then follow sklearn's rules
  (same number of columns, the same names in the same order).

Refused with an InputSpecError (a ValueError) naming what was expected: datetime, duration and complex columns
(convert them to numbers first), duplicate column names, 1-D or empty X (sparse matrices: a TypeError), a ``val_fraction`` outside (0, 1), fewer than 3
rows, X and y of different lengths, a classifier's y with NaN/infinities, one class, or continuous values (use
TJEPARegressor), and a regressor's y with NaN, infinities or non-numbers.
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
import sys

import numpy as np
import pandas as pd
import scipy.sparse as sp
from fmzoo.core import InputSpecError
from fmzoo.core.evaluation import fit_head, predict_head
from fmzoo.core.runtime import seeded
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.utils import column_or_1d
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ..models.tjepa import TJEPA
from ..spec import TabularSchema
from .downstream import finetune_network, model_schema, split_validation
from .heads import HEADS, make_head

# head_kwargs: the head's optimisation settings that may be overridden
HEAD_SETTINGS = ("lr", "weight_decay", "batch_size", "max_epochs", "patience")
# The estimators' defaults over the head's (T-JEPA's tuned Adult settings in ``heads.HEADS``: lr 1.35e-4, up to 200
# epochs, patience 16, which the full tables keep): the package's quick protocol, head lr 1e-3 and at most 15 epochs
# (cosine schedule, the best validation epoch kept). The tuned settings need ~100 epochs to converge (Adult: 98 epochs,
# 148 s for a frozen fit on a quiet 2-core machine); the quick protocol's frozen MLP on the shipped checkpoint scored
# 0.8565 +- 0.0020 over seeds 0-9 (README). End to end each epoch runs the 16-layer encoder forward and backward
# (about 11 s per Adult epoch on one core), so fine-tuning stops after FINETUNE_EPOCHS epochs. ``head_kwargs`` and
# ``max_epochs`` override these, e.g. ``head_kwargs=heads.HEADS["mlp"][1]`` for the tuned settings.
ESTIMATOR_DEFAULTS = {"frozen": {"lr": 1e-3, "max_epochs": 15}, "finetune": {"lr": 1e-3, "max_epochs": 5}}
EMBED_BATCH = 4096  # rows per encoder pass (TJEPA.embed's default)
PROGRESS_MININTERVAL = 0.1  # seconds between bar redraws (tqdm's default); the tests draw every step
# a dict backbone: the TJEPA arguments it may set (the schema gives n_num and cardinalities)
ARCHITECTURE_ARGS = tuple(p for p in inspect.signature(TJEPA.__init__).parameters
                          if p not in ("self", "n_num", "cardinalities"))


def _refuse_dtypes(df: pd.DataFrame) -> None:
    for col in df.columns:
        dtype = df[col].dtype
        if (pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype)
                or pd.api.types.is_complex_dtype(dtype)):
            raise InputSpecError(f"column {col!r}: expected real numbers or categories (strings), got dtype "
                                 f"{dtype}; convert datetimes and durations to numbers first (e.g. days since "
                                 "a date)")


class _TJEPAEstimator(TransformerMixin, BaseEstimator):
    task = "classification"

    def __init__(self, backbone="fmzoo/tjepa-adult", head: str = "mlp", val_fraction: float = 0.1,
                 max_epochs: int | None = None, seed: int = 0, extra: str = "error", head_kwargs: dict | None = None,
                 finetune: bool = False, verbose: bool = True):
        """``backbone``: a hub id or folder of a T-JEPA checkpoint, a ``TJEPA`` (used, never modified), or a dict of
        ``TJEPA`` architecture arguments (a randomly initialised T-JEPA on the training rows' schema, see the module
        docstring). ``head``: "mlp" or "resnet" (T-JEPA's benchmark heads). ``val_fraction``: the share of the rows
        held out for early stopping. ``max_epochs``: cap on the head's epochs (None: ``ESTIMATOR_DEFAULTS``, 15 frozen,
        5 end to end).
        ``seed``: draws the validation split, the head's (and a dict backbone's) initial weights and the batch order.
        ``extra``: "error" or "ignore" (drop columns a checkpoint's schema does not know). ``head_kwargs`` overrides
        the head's optimisation settings (lr, weight_decay, batch_size, max_epochs, patience); the defaults are
        T-JEPA's tuned Adult settings (weight decay, batch 512, patience 16) with ``ESTIMATOR_DEFAULTS``'s lr 1e-3 and
        epoch caps. ``finetune``: train the T-JEPA encoder together with the head (encoder lr
        ``downstream.ENCODER_LR["pretrained"]``). ``verbose``: progress bars (stderr) for the encoder passes and the
        training steps; shown only on a terminal, never with ``verbose=False``."""
        self.backbone = backbone
        self.head = head
        self.val_fraction = val_fraction
        self.max_epochs = max_epochs
        self.seed = seed
        self.extra = extra
        self.head_kwargs = head_kwargs
        self.finetune = finetune
        self.verbose = verbose

    # -- scikit-learn's declarations --------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Text (object/string/category) columns become category tokens (``string``); integer columns are numbers, so
        # sklearn's ``categorical`` (integer-coded categories, which its checks feed as such) stays False.
        tags.input_tags.string = True
        tags.input_tags.categorical = False
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False  # only a categorical column that had missing values in training accepts them
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = []  # the representation is float32, whatever the input
        return tags

    # -- parameters and backbone -----------------------------------------------------------------
    def _validate_params(self) -> None:
        v = self.val_fraction
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < 1:
            raise InputSpecError("val_fraction: expected a number strictly between 0 and 1 (the share of rows held "
                                 f"out for early stopping), got {v!r}")
        if self.head not in HEADS:
            raise InputSpecError(f"head: expected one of {sorted(HEADS)}, got {self.head!r}")
        if self.extra not in ("error", "ignore"):
            raise InputSpecError(f"extra: expected 'error' or 'ignore', got {self.extra!r}")
        m = self.max_epochs
        if m is not None and (isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1):
            raise InputSpecError(f"max_epochs: expected a positive integer or None, got {m!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise InputSpecError(f"seed: expected a non-negative integer, got {self.seed!r}")
        if not isinstance(self.finetune, (bool, np.bool_)):
            raise InputSpecError(f"finetune: expected True or False, got {self.finetune!r}")
        if not isinstance(self.verbose, (bool, np.bool_)):
            raise InputSpecError(f"verbose: expected True or False, got {self.verbose!r}")
        kw = self.head_kwargs
        if kw is not None:
            if not isinstance(kw, dict):
                raise InputSpecError(f"head_kwargs: expected a dict with keys among {list(HEAD_SETTINGS)} or None, "
                                     f"got {type(kw).__name__}")
            unknown = sorted(set(kw) - set(HEAD_SETTINGS))
            if unknown:
                raise InputSpecError(f"head_kwargs: unknown setting(s) {unknown}; expected keys among "
                                     f"{list(HEAD_SETTINGS)}")
        b = self.backbone
        if isinstance(b, dict):
            unknown = sorted(set(b) - set(ARCHITECTURE_ARGS))
            if unknown:
                raise InputSpecError(f"backbone: a dict backbone holds TJEPA architecture arguments among "
                                     f"{list(ARCHITECTURE_ARGS)} (the schema fitted on X gives n_num and "
                                     f"cardinalities); unknown {unknown}")
        elif not isinstance(b, (str, TJEPA)) and not hasattr(b, "__fspath__"):
            raise InputSpecError("backbone: expected a T-JEPA checkpoint (hub id, folder or TJEPA) or a dict of TJEPA "
                                 f"architecture arguments, got {type(b).__name__}")

    def _schema_bound(self) -> bool:
        return not isinstance(self.backbone, dict)

    def _checkpoint(self) -> TJEPA:
        """The schema-bound backbone (loaded once per backbone value; the TJEPA passed in is used as is)."""
        if isinstance(self.backbone, TJEPA):
            model = self.backbone
        else:
            key = str(self.backbone)
            cached = getattr(self, "_loaded", None)
            if cached is None or cached[0] != key:
                self._loaded = (key, TJEPA.from_pretrained(self.backbone))
            model = self._loaded[1]
        model_schema(model)  # a checkpoint without a feature schema is an error here
        return model

    def _build(self, X: pd.DataFrame) -> TJEPA:
        """A dict backbone: a T-JEPA on the schema of the training rows, its weights drawn from ``seed``."""
        schema = TabularSchema.fit(X)
        with seeded(self.seed):  # the core's helper: the encoder's init is a function of ``seed`` alone
            model = TJEPA(n_num=len(schema.numerical), cardinalities=schema.cardinalities, **dict(self.backbone))
        model.input_spec = {**schema.to_dict(), "dataset": None}
        return model.eval()

    # -- inputs ---------------------------------------------------------------------------------------
    def _frame(self, X, reset: bool) -> pd.DataFrame:
        """X as a DataFrame with the schema's column names (sklearn's checks on shape, emptiness, sparsity and names;
        the schema's checks on values come later)."""
        name = type(self).__name__
        if sp.issparse(X):
            raise TypeError(f"{name}: sparse input is not supported; T-JEPA reads a dense table (a pandas DataFrame "
                            "or a 2-D array): convert it with X.toarray()")
        if isinstance(X, pd.DataFrame):
            if X.ndim != 2 or X.shape[1] == 0:
                raise InputSpecError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
                                     f"required by {name}.")
            if len(X) == 0:
                raise InputSpecError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is "
                                     f"required by {name}.")
            dup = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
            if dup:
                raise InputSpecError(f"{name}: the column name(s) {dup} appear more than once; expected each column "
                                     "once")
            frame = X
        else:
            if isinstance(X, pd.Series):
                raise InputSpecError(f"{name}: expected a 2-D table (a DataFrame, or an array of shape [rows, "
                                     "columns]), got a pandas Series; use X.to_frame() for one column")
            arr = check_array(X, dtype=None, ensure_all_finite=False, estimator=self)  # 2-D, non-empty, real
            frame = None
        bound = self._schema_bound()
        if bound:
            order = model_schema(self.model_ if not reset and hasattr(self, "model_") else self._checkpoint()).order
        if frame is None:
            if bound and arr.shape[1] != len(order):
                raise InputSpecError(f"X has {arr.shape[1]} features, but {name} is expecting {len(order)} features "
                                     f"as input: the checkpoint's columns {order} (or a DataFrame with these names)")
            names = order if bound else (self.model_.input_spec["order"] if not reset else
                                         [f"x{j}" for j in range(arr.shape[1])])
            if not bound and not reset and arr.shape[1] != len(names):
                validate_data(self, arr, reset=False, skip_check_array=True)  # sklearn's n_features message
            frame = pd.DataFrame(arr, columns=names)
            if arr.dtype == object:
                frame = frame.infer_objects()
        if reset:
            validate_data(self, X if isinstance(X, pd.DataFrame) else arr, reset=True, skip_check_array=True)
        elif not bound:  # sklearn's rules: same number of columns, same names in the same order
            validate_data(self, X if isinstance(X, pd.DataFrame) else arr, reset=False, skip_check_array=True)
            frame = frame.set_axis(self.model_.input_spec["order"], axis=1)
        _refuse_dtypes(frame)
        return frame

    def _columns(self, X) -> tuple:
        """(numerical, categorical) tensors of the rows, checked against the fitted schema."""
        model = self.model_
        x_num, x_cat = model_schema(model).transform(X, extra=self.extra if self._schema_bound() else "error")
        model.check_tensors(x_num, x_cat)
        return x_num, x_cat

    def _pandas_output(self) -> bool:
        config = getattr(self, "_sklearn_output_config", {}).get("transform", get_config()["transform_output"])
        return config == "pandas"

    def _index(self, X):
        return X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(X))

    # -- progress -------------------------------------------------------------------------------------
    def _bar(self, total: int, desc: str, unit: str):
        """A tqdm bar on stderr: shown on a terminal only (tqdm's ``disable=None``), never with ``verbose=False``."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, dynamic_ncols=True,
                    disable=None if self.verbose else True, mininterval=PROGRESS_MININTERVAL)

    def _embed(self, model: TJEPA, inputs: tuple, desc: str = "T-JEPA features") -> np.ndarray:
        """``model.embed(*inputs)`` (the same chunks of ``EMBED_BATCH`` rows, so the same numbers), with a progress bar."""
        x_num, x_cat = inputs
        n = len(x_num)
        if n <= EMBED_BATCH:
            return model.embed(x_num, x_cat, batch_size=EMBED_BATCH).numpy()
        out = []
        with self._bar(n, desc, "rows") as bar:
            for i in range(0, n, EMBED_BATCH):
                out.append(model.embed(x_num[i : i + EMBED_BATCH], x_cat[i : i + EMBED_BATCH],
                                       batch_size=EMBED_BATCH).numpy())
                bar.update(len(out[-1]))
        return np.concatenate(out)

    @contextlib.contextmanager
    def _training_bar(self, net, n_rows: int, batch_size: int, max_epochs: int, desc: str):
        """Count ``fit_head``'s training steps on a bar (a forward pre-hook on ``net`` in training mode with gradients;
        the validation passes run in eval mode). The bar ends early when early stopping ends training."""
        import torch

        steps = n_rows // batch_size + (n_rows % batch_size >= 2)  # fit_head skips a last batch of one row
        bar = self._bar(max_epochs * max(1, steps), desc, "step")
        done = [0]

        def hook(module, args):
            if module.training and torch.is_grad_enabled():
                if done[0] % max(1, steps) == 0:
                    bar.set_postfix_str(f"epoch {done[0] // max(1, steps) + 1}/{max_epochs}", refresh=False)
                done[0] += 1
                bar.update(1)

        handle = net.register_forward_pre_hook(hook)
        try:
            yield
        finally:
            handle.remove()
            bar.close()

    # -- fit / transform ------------------------------------------------------------------------------
    def _prepare_y(self, y):
        return np.asarray(y)

    def fit(self, X, y):
        """Fit the head (and with ``finetune=True`` the encoder) on the rows of ``X`` and targets ``y``."""
        self._validate_params()
        if y is None:
            raise InputSpecError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        for attr in ("model_", "head_", "mean_", "std_"):  # a refit starts afresh
            self.__dict__.pop(attr, None)
        frame = self._frame(X, reset=True)
        n = len(frame)
        tr, va = split_validation(n, self.val_fraction, self.seed)
        if n < 3 or len(tr) < 2:
            raise InputSpecError(f"{type(self).__name__} got n_samples = {n} with val_fraction={self.val_fraction}: "
                                 f"{len(tr)} row(s) left to train on and {len(va)} for early stopping; expected at "
                                 "least 2 training rows and 1 validation row")
        y = column_or_1d(y, warn=True)
        if len(y) != n:
            raise InputSpecError(f"X has {n} rows but y has {len(y)}: expected one target per row")
        y = self._prepare_y(y)
        self.model_ = self._checkpoint() if self._schema_bound() else self._build(frame)
        model = self.model_
        inputs = self._columns(frame)
        out_dim = len(self.classes_) if self.task == "classification" else 1
        # The encoder runs over the rows once: frozen, its features are the head's inputs for every epoch; end to
        # end, the initial encoder's features (eval mode, dropout off: the same numbers) give the input statistics.
        feats = self._embed(model, inputs)
        if self.finetune:
            net, optim = finetune_network(model, inputs, tr, self.head, out_dim, seed=self.seed,
                                          features=feats[tr])
            fit_x, val_x = tuple(t[tr] for t in inputs), tuple(t[va] for t in inputs)
        else:
            self.mean_, self.std_ = feats[tr].mean(0), feats[tr].std(0) + 1e-6
            feats = (feats - self.mean_) / self.std_
            net, optim = make_head(self.head, feats.shape[1], out_dim, n_tokens=model.n_tokens, seed=self.seed)
            fit_x, val_x = feats[tr], feats[va]
        optim.update(ESTIMATOR_DEFAULTS["finetune" if self.finetune else "frozen"])
        optim.update(self.head_kwargs or {})
        if self.max_epochs:
            optim["max_epochs"] = int(self.max_epochs)
        desc = "fine-tuning encoder + head" if self.finetune else f"training {self.head} head"
        with self._training_bar(net, len(tr), int(optim["batch_size"]), int(optim["max_epochs"]), desc):
            self.head_ = fit_head(net, fit_x, y[tr], val_x, y[va], task=self.task, seed=self.seed, **optim)
        self.n_features_out_ = model.embedding_dim
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "head_")

    def transform(self, X) -> np.ndarray:
        """The frozen T-JEPA representation of each row (the target encoder's latents of [REG] + every feature,
        flattened: ``get_feature_names_out`` names the columns). Needs ``fit`` first, except with a checkpoint
        backbone, whose representation does not depend on the training rows."""
        if not self.__sklearn_is_fitted__() and self._schema_bound():
            model = self._checkpoint()
            if isinstance(X, pd.DataFrame):
                frame = X
            else:
                order = model_schema(model).order
                arr = check_array(X, dtype=None, ensure_all_finite=False, estimator=self)
                if arr.shape[1] != len(order):
                    raise InputSpecError(f"X has {arr.shape[1]} features, but {type(self).__name__} is expecting "
                                         f"{len(order)} features as input: the checkpoint's columns {order}")
                frame = pd.DataFrame(arr, columns=order).infer_objects()
            _refuse_dtypes(frame)
            x_num, x_cat = model_schema(model).transform(frame, extra=self.extra)
            return self._embed(model, (x_num, x_cat))
        check_is_fitted(self)
        return self._embed(self.model_, self._columns(self._frame(X, reset=False)))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``{token}__{d}`` for every token of the representation ([REG] tokens ``reg{i}``, then the numerical and
        the categorical columns, the model's token order) and latent dimension ``d``."""
        check_is_fitted(self)
        if input_features is not None and hasattr(self, "feature_names_in_") and \
                list(input_features) != list(self.feature_names_in_):
            raise ValueError(f"input_features is not equal to feature_names_in_: {list(self.feature_names_in_)}")
        schema = model_schema(self.model_)
        tokens = [f"reg{i}" for i in range(self.model_.n_reg)] + schema.numerical + schema.categorical
        return np.asarray([f"{t}__{d}" for t in tokens for d in range(self.model_.dim)], dtype=object)

    def _raw_predict(self, X):
        check_is_fitted(self)
        inputs = self._columns(self._frame(X, reset=False))
        if self.finetune:
            return predict_head(self.head_, inputs, task=self.task)
        return predict_head(self.head_, (self._embed(self.model_, inputs) - self.mean_) / self.std_, task=self.task)


class TJEPAClassifier(ClassifierMixin, _TJEPAEstimator):
    """T-JEPA representations + a classification head (see the module docstring)."""

    task = "classification"

    def _prepare_y(self, y):
        y = np.asarray(y)
        missing = pd.isna(y)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise InputSpecError(f"y: expected a class label for every row, got NaN/None at row {row}")
        if y.dtype.kind == "f" and len(y):
            if not np.isfinite(y).all():
                row = int(np.flatnonzero(~np.isfinite(y))[0])
                raise InputSpecError(f"y: expected class labels, got an infinity at row {row}")
            n_unique = len(np.unique(y))
            if not np.all(y == np.round(y)) and n_unique > 0.5 * len(y):
                raise InputSpecError(f"Unknown label type: continuous. y: expected class labels, got continuous values "
                                     f"({n_unique} distinct floats in {len(y)} rows); use TJEPARegressor for a "
                                     "numerical target")
        try:
            classes, codes = np.unique(y, return_inverse=True)
        except TypeError:  # labels of mixed types (e.g. 1 and "a") have no order
            raise InputSpecError("Unknown label type: y mixes labels of different types "
                                 f"({sorted({type(v).__name__ for v in y})}); expected labels of one type") from None
        if len(classes) < 2:
            raise InputSpecError(f"y has a single class ({classes.tolist()}); a classifier needs at least two")
        self.classes_ = classes
        return codes

    def predict_proba(self, X):
        """Class probabilities [rows, classes] (columns in ``classes_`` order); a DataFrame indexed like ``X`` with
        pandas output."""
        proba = self._raw_predict(X)
        if self._pandas_output():
            return pd.DataFrame(proba, index=self._index(X), columns=self.classes_)
        return proba

    def predict(self, X):
        """The most probable class of each row; a Series indexed like ``X`` with pandas output."""
        proba = self._raw_predict(X)
        pred = self.classes_[proba.argmax(1)]
        return pd.Series(pred, index=self._index(X), name="prediction") if self._pandas_output() else pred


class TJEPARegressor(RegressorMixin, _TJEPAEstimator):
    """T-JEPA representations + a regression head (targets standardised for training; see the module docstring)."""

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

    def predict(self, X):
        """The predicted target of each row; a Series indexed like ``X`` with pandas output."""
        pred = self._raw_predict(X) * self.y_std_ + self.y_mean_
        return pd.Series(pred, index=self._index(X), name="prediction") if self._pandas_output() else pred
