"""T-JEPA pretraining as a Lightning task on the core's SSLTask, and the ``tjepa`` recipe method (a core ``Method``)."""

from __future__ import annotations

import inspect
from pathlib import Path

from fmzoo.core import InputSpecError, RecipeError
from fmzoo.core.method import CORE_TRAIN_KEYS, Method, PretrainData
from fmzoo.core.registry import dataset_loader
from fmzoo.core.training import SSLTask
from torch.utils.data import TensorDataset

from ..models.tjepa import TJEPA, FeatureMaskSampler
from ..spec import TabularSchema

CITATION = """@article{thimonier2024tjepa,
  title={T-JEPA: Augmentation-Free Self-Supervised Learning for Tabular Data},
  author={Thimonier, Hugo and De Melo Costa, Jos{\\'e} Lucas and Popineau, Fabrice and Rimmel, Arpad and Doan, Bich-Li{\\^e}n},
  journal={arXiv preprint arXiv:2410.05016},
  year={2024}
}"""


class TJEPATask(SSLTask):
    """``encoder_grad_clamp``: clamp the context encoder's gradients to +-value during training
    (``TJEPA.clamp_encoder_gradients``; the official code's ``--exp_gradient_clipping 1.0``); None: no clamp."""

    def __init__(self, model: TJEPA, mask: dict, ema: tuple[float, float] = (0.996, 1.0),
                 encoder_grad_clamp: float | None = None, **optim):
        super().__init__(model, **optim)
        self.sampler = FeatureMaskSampler(model.n_features, **mask)
        self.ema = ema
        try:
            ok = encoder_grad_clamp is None or float(encoder_grad_clamp) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise RecipeError(f"optim.encoder_grad_clamp: expected a number > 0 or null, got {encoder_grad_clamp!r}")
        self.encoder_grad_clamp = encoder_grad_clamp
        self._clamp_hooks: list = []

    def on_fit_start(self):
        if self.encoder_grad_clamp is not None and not self._clamp_hooks:
            self._clamp_hooks = self.model.clamp_encoder_gradients(float(self.encoder_grad_clamp))

    def on_fit_end(self):
        for h in self._clamp_hooks:
            h.remove()
        self._clamp_hooks = []

    def ssl_loss(self, batch):
        x_num, x_cat = batch
        keep, targets = self.sampler(len(x_num))
        return {"loss": self.model.jepa_loss(x_num, x_cat, keep, targets)}

    def momentum(self) -> float:
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self.trainer is not None else 1
        start, end = self.ema
        return start + (end - start) * min(1.0, self.global_step / total)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.model.update_target(self.momentum())


def build_model(schema: TabularSchema, model_cfg: dict, dataset: str | None = None) -> TJEPA:
    model = TJEPA(n_num=len(schema.numerical), cardinalities=schema.cardinalities, **model_cfg)
    model.input_spec = {**schema.to_dict(), "dataset": dataset}
    return model


class TJEPAPretraining(Method):
    """The ``tjepa`` recipe method: pretrain T-JEPA on the training split of ``recipe["dataset"]`` (the test split
    is never seen), or on the rows of ``fmzoo pretrain RECIPE --data PATH`` (a CSV file with a header row; a directory
    holding train.csv: that file). A recipe's ``data.target`` names a target column to drop from the user's CSV; every
    other column is a feature, and the schema (columns, categories, scaling) is fitted from these rows.

    Recipe sections: ``model`` (``TJEPA`` arguments), ``mask`` (``FeatureMaskSampler``), ``optim`` (lr, weight decay,
    ``warmup_epochs``, ``ema_start`` / ``ema_end``, ``encoder_grad_clamp``: the official per-gradient clamp of the
    context encoder, e.g. 1.0; absent: none), ``trainer`` (``batch_size`` = the global batch, ``max_epochs``,
    other ``fit`` arguments), ``max_rows`` (a seeded subset of the rows, for smoke tests) and ``evaluate`` (the frozen
    protocol of ``tasks.downstream.recipe_evaluation`` on the recipe's dataset, after training; its rows go into the
    card and the provenance's metrics; not run with ``--data``, whose schema is not the dataset's)."""

    recipe_sections = ("mask", "optim", "trainer", "max_rows")
    # the keys each section's code reads: ``model`` and ``mask`` are the constructors' own parameters (the values the
    # method sets itself left out); ``optim`` the ones ``task`` takes out plus SSLTask's optimiser arguments
    # (``warmup_steps`` and ``max_steps`` are derived: warm-up from ``warmup_epochs``, the length from the trainer);
    # ``trainer`` the global batch and epochs plus the Trainer values the recipe may set (``fit`` passes them on; the
    # command line's devices/strategy/accelerator/progress always override a recipe's, so they are not taken here);
    # ``train`` is the layout of other methods and is refused (T-JEPA's recipes say ``trainer``); ``data.target`` is
    # read with ``--data``
    recipe_keys = {
        "model": tuple(p for p in inspect.signature(TJEPA).parameters if p not in ("n_num", "cardinalities")),
        "mask": tuple(p for p in inspect.signature(FeatureMaskSampler).parameters if p != "n_features"),
        "optim": ("warmup_epochs", "ema_start", "ema_end", "encoder_grad_clamp",
                  *(p for p in inspect.signature(SSLTask).parameters
                    if p not in ("model", "warmup_steps", "max_steps"))),
        "trainer": (*CORE_TRAIN_KEYS, "max_steps", "log_every_n_steps"),
        "train": (),
        "data": ("target",),
        "evaluate": ("seeds", "heads", "max_epochs", "label_fractions"),
    }
    citation = CITATION
    default_batch_size = 512
    default_epochs = 300

    @property
    def trainer_cfg(self) -> dict:
        return dict(self.recipe.get("trainer") or {})

    def global_batch(self) -> int:
        return int(self.trainer_cfg.get("batch_size", self.default_batch_size))

    def max_epochs(self) -> int:
        return int(self.trainer_cfg.get("max_epochs", self.default_epochs))

    def _rows(self):
        """The table pretrained on, its files and a sentence saying what it is."""
        if self.data_path is None:
            data = dataset_loader(self.recipe["dataset"])()
            X, _ = data["train"]
            return X, list(data["files"]), ""
        import pandas as pd

        path = Path(self.data_path)
        source = path / "train.csv" if path.is_dir() else path
        if not source.is_file():
            raise InputSpecError(f"--data {path}: expected a CSV file with a header row (one table row per line), or a "
                                 "directory holding train.csv; not found")
        try:
            X = pd.read_csv(source)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise InputSpecError(f"--data {source}: expected a CSV file with a header row; {e}") from None
        target = (self.recipe.get("data") or {}).get("target")
        if target is not None:
            if target not in X.columns:
                raise InputSpecError(f"--data {source}: the recipe's data.target {target!r} is not a column; "
                                     f"columns: {list(X.columns)}")
            X = X.drop(columns=[target])
        if len(X) == 0 or X.shape[1] == 0:
            raise InputSpecError(f"--data {source}: expected a header row and at least one row of feature columns; got "
                                 f"{X.shape[1]} column(s) and {len(X)} row(s)")
        dropped = f", target column {target!r} dropped" if target is not None else ""
        return X, [source], f"{source.name}: {{rows}} rows, {X.shape[1]} feature columns{dropped} ({{kinds}})"

    def data(self) -> PretrainData:
        X, files, description = self._rows()
        if self.recipe.get("max_rows"):  # a seeded subset, for smoke tests and tiny runs
            import numpy as np

            keep = np.sort(np.random.default_rng(self.seed).permutation(len(X))[: int(self.recipe["max_rows"])])
            X = X.iloc[keep].reset_index(drop=True)
        schema = TabularSchema.fit(X)
        x_num, x_cat = schema.transform(X)
        if description:
            kinds = f"{len(schema.numerical)} numerical, {len(schema.categorical)} categorical"
            description = description.format(rows=f"{len(X):,}", kinds=kinds)
        return PretrainData(TensorDataset(x_num, x_cat), files=files, description=description, extra={"schema": schema})

    def model(self, data: PretrainData) -> TJEPA:
        # a model pretrained on the user's rows names no dataset: downstream tasks then ask for --data
        return build_model(data.extra["schema"], self.recipe.get("model", {}),
                           self.recipe["dataset"] if self.data_path is None else None)

    def task(self, model, data: PretrainData, steps_per_epoch: int, max_epochs: int):
        optim = dict(self.recipe.get("optim", {}))
        warmup_epochs = optim.pop("warmup_epochs", 0)
        ema = (optim.pop("ema_start", 0.996), optim.pop("ema_end", 1.0))
        clamp = optim.pop("encoder_grad_clamp", None)
        return TJEPATask(model, mask=self.recipe.get("mask", {}), ema=ema, encoder_grad_clamp=clamp,
                         warmup_steps=int(warmup_epochs * steps_per_epoch), **optim)

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict):
        extra = {k: v for k, v in self.trainer_cfg.items() if k not in ("batch_size", "max_epochs")}
        self._trainer = super().fit(task, loader, max_epochs, {**extra, **trainer_kwargs})
        return self._trainer

    def evaluate(self, model, data: PretrainData) -> dict:
        self._results = []
        if not self.recipe.get("evaluate") or self.data_path is not None:
            return {}
        from ..tasks.downstream import recipe_evaluation

        metrics = {}
        for r in recipe_evaluation(model, self.recipe):
            metrics[f"{r['name']}/{r['metric']}"] = r["mean"]
            self._results.append({"metric": f"{r['metric']} ({r['name']})",
                                  "value": f"{r['mean']:.4f} ± {r['std']:.4f}", "setting": r["setting"]})
        return metrics

    def card(self, data: PretrainData, metrics: dict) -> dict:
        card = dict(self.recipe.get("card", {}))
        source = self.recipe["dataset"] if self.data_path is None else Path(self.data_path).name
        card.setdefault("title", f"T-JEPA on {source} ({self.recipe['name']})")
        card.setdefault("citation", CITATION)
        if self.data_path is not None:
            card["training_data"] = data.description
        for row in getattr(self, "_results", []):
            card.setdefault("results", []).append(row)
        return card

    def provenance(self, data: PretrainData) -> dict:
        extra = {"steps": int(self._trainer.global_step)}
        if self.data_path is not None and self.recipe.get("evaluate"):
            extra["evaluation"] = ("skipped: the recipe's evaluate block measures on its dataset "
                                   f"{self.recipe.get('dataset')!r}, whose columns are not this model's (--data)")
        return extra
