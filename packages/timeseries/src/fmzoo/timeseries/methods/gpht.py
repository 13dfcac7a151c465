"""GPHT's objective and training: next-token MSE on a channel-independent mixture of datasets.

- ``GPHTTask``: the Lightning task (fmzoo.core.training.SSLTask) whose loss is GPHT's next-token
  forecasting MSE; optional per-epoch learning-rate halving as the official code's ``lradj=type1``.
- ``GPHTPretraining``: the recipe's ``Method`` (fmzoo.core.method) used by ``fmzoo pretrain`` (``--data FILE.csv``:
  the user's own series).
- ``finetune_heads``: the paper's fine-tuning: the pretrained transformer is frozen and only the stages'
  forecast heads are trained on the target dataset's train split (official ``load_pretrain`` path).
"""
from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path

import torch
from fmzoo.core import InputSpecError, RecipeError
from fmzoo.core.method import CORE_TRAIN_KEYS, Method, PlainRun, PretrainData
from fmzoo.core.runtime import generator
from fmzoo.core.training import SSLTask, fit, per_device_batch, training_record, training_seconds
from fmzoo.timeseries.data.ltsf import LTSFData, MixtureWindows, evaluate_fn, load_csv
from fmzoo.timeseries.models.gpht import GPHT
from torch.utils.data import DataLoader


class GPHTTask(SSLTask):
    """Next-token MSE. ``halve_every``: multiply the lr by 0.5 every that many steps (official type1)."""

    def __init__(self, model: GPHT, lr: float = 1e-4, weight_decay: float = 0.0, warmup_steps: int = 0,
                 max_steps: int | None = None, schedule: str = "cosine", halve_every: int | None = None,
                 final_lr_ratio: float = 0.0):
        super().__init__(model, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, max_steps=max_steps,
                         schedule=schedule, final_lr_ratio=final_lr_ratio)
        self.halve_every = halve_every

    def ssl_loss(self, batch):
        return {"loss": self.model.next_token_loss(batch)}

    def configure_optimizers(self):
        if not self.halve_every:
            return super().configure_optimizers()
        opt = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr,
                               weight_decay=self.hparams.weight_decay)
        every = int(self.halve_every)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** (s // every))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def build_model(recipe: dict) -> GPHT:
    """A fresh GPHT from recipe['model'], or (fine-tuning) the checkpoint named by recipe['init_from']."""
    if recipe.get("init_from"):
        model = GPHT.from_pretrained(recipe["init_from"], **recipe.get("init_overrides", {}))
        model.train()
        return model
    return GPHT(**recipe.get("model", {}))


@torch.no_grad()
def validation_loss(model: GPHT, datasets: list, max_windows: int = 512, seed: int = 0) -> dict:
    """Next-token MSE on (a seeded random subset of) the validation windows of each dataset (a name, or a loaded
    ``LTSFData``: keyed by its name)."""
    model.eval()
    out = {}
    for name in datasets:
        ds = MixtureWindows([name], context_len=model.context_len, token_len=model.token_len, split="val")
        idx = torch.randperm(len(ds), generator=generator(seed))[:max_windows]
        batch = torch.stack([ds[int(i)] for i in idx])
        out[name if isinstance(name, str) else name.name] = float(model.next_token_loss(batch))
    return out


class ValEarlyStopping:
    """The official fine-tuning's model selection, at a CPU-scale cadence: every ``every`` optimizer steps the
    next-token MSE on the validation windows of ``datasets`` is measured; the weights with the lowest value are
    kept (restored by ``restore``) and training stops after ``patience`` measurements without improvement.
    (Official code: once per epoch, EarlyStopping(patience=3), best-validation checkpoint reloaded.)"""

    def __init__(self, datasets: list[str], every: int, patience: int = 3, max_windows: int = 2048, seed: int = 0):
        import lightning as L

        outer = self

        class _CB(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                outer.step(trainer, pl_module.model)

        self.callback = _CB()
        self.datasets, self.every, self.patience = list(datasets), int(every), int(patience)
        self.max_windows, self.seed = int(max_windows), int(seed)
        self.best, self.best_step, self.best_state, self.bad, self.history = math.inf, 0, None, 0, []

    def step(self, trainer, model: GPHT) -> None:
        step = int(trainer.global_step)
        if step == 0 or step % self.every:
            return
        was = model.training
        vals = validation_loss(model, self.datasets, max_windows=self.max_windows, seed=self.seed)
        model.train(was)
        v = sum(vals.values()) / len(vals)
        self.history.append([step, v])
        if v < self.best:
            self.best, self.best_step, self.bad = v, step, 0
            self.best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
        else:
            self.bad += 1
            if self.bad >= self.patience:
                trainer.should_stop = True

    def restore(self, model: GPHT) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


def pretrain_loader(ds, tr: dict, seed: int, trainer_kwargs: dict) -> tuple[DataLoader, int, int]:
    """``(loader, global batch, optimizer steps per epoch)``. ``tr["batch_size"]`` is the global batch: the loader
    holds this process's share, and the steps per epoch come from the dataset and the global batch (under DDP
    Lightning swaps in a DistributedSampler, so the per-process loader's len() is not the step count)."""
    bs = int(tr.get("batch_size", 1024))
    loader = DataLoader(ds, batch_size=per_device_batch(bs, trainer_kwargs), shuffle=True, drop_last=True,
                        num_workers=0, generator=generator(seed))
    return loader, bs, len(ds) // bs  # drop_last: full global batches only


def _window_sources(method: GPHTPretraining) -> list:
    """What the windows come from: the recipe's dataset names, or the user's CSV (``--data``) as one LTSFData."""
    if method.data_path is None:
        return list(method.recipe["data"]["datasets"])
    return [method.user_data]


class GPHTPretraining(Method):
    """GPHT pretraining (or fine-tuning, recipe ``init_from``) on the recipe's dataset mixture, or with
    ``fmzoo pretrain --data FILE.csv`` on the user's own CSV (a ``date`` column plus numeric columns, as
    ``fmzoo evaluate --data`` reads it: train split = the first 70% of the rows, standardized with its statistics,
    every column a univariate series); the validation MSE, the early stopping and the ``evaluate`` section then use
    that file's validation and test splits. Called through ``fmzoo.core.pretrain.run_pretraining``, which seeds the
    process (recipe ``seed``) and sets its threads."""

    recipe_sections = ("init_from", "init_overrides")
    # the keys the hooks read. ``model`` and ``init_overrides``: GPHT's parameters (``from_pretrained`` takes the
    # latter as overrides of the checkpoint's); ``train``: the core's and what ``task``/``fit`` read
    # (``early_stopping`` is a mapping of ``EARLY_STOPPING_KEYS``, checked by ``validate``)
    recipe_keys = {
        "model": tuple(inspect.signature(GPHT).parameters),
        "init_overrides": tuple(inspect.signature(GPHT).parameters),
        "train": (*CORE_TRAIN_KEYS, "lr", "weight_decay", "warmup_steps", "max_steps", "schedule", "halve_every",
                  "trainable", "log_every_n_steps", "early_stopping"),
        "data": ("datasets", "percent"),
        "evaluate": ("datasets", "horizons", "max_windows"),
    }
    EARLY_STOPPING_KEYS = ("every", "patience", "datasets", "max_windows")
    citation = ""  # the recipes' cards carry it
    default_batch_size = 1024
    default_epochs = 10

    @classmethod
    def validate(cls, recipe: dict) -> None:
        super().validate(recipe)
        es = (recipe.get("train") or {}).get("early_stopping")
        if not es:
            return
        where = f"recipe {recipe.get('name')!r} (method {recipe.get('method')!r})"
        if not isinstance(es, dict) or "every" not in es:
            raise RecipeError(f"{where}: train.early_stopping must be a mapping with 'every' (validation every that "
                              f"many steps), got {es!r}")
        unknown = sorted(str(k) for k in set(es) - set(cls.EARLY_STOPPING_KEYS))
        if unknown:
            raise RecipeError(f"{where}: unknown key(s) in 'train.early_stopping': "
                              f"{', '.join(f'train.early_stopping.{k}' for k in unknown)}; it takes "
                              f"{', '.join(sorted(cls.EARLY_STOPPING_KEYS))}")

    def data(self) -> PretrainData:
        # the model is built first, as before (its context/token lengths shape the windows; RNG draws in this order)
        self.gpht = build_model(self.recipe)
        data_cfg = self.recipe.get("data") or {}
        if self.data_path is not None:
            self.user_data = load_csv(self.data_path, context_len=self.gpht.context_len)
        ds = MixtureWindows(_window_sources(self), context_len=self.gpht.context_len, token_len=self.gpht.token_len,
                            percent=float(data_cfg.get("percent", 100)))
        if len(ds) == 0:
            raise InputSpecError(f"{self.data_path or data_cfg.get('datasets')}: the train split holds no window of "
                                 f"{ds.length} rows (context_len {self.gpht.context_len} + token_len "
                                 f"{self.gpht.token_len}); give a longer series")
        description = ""
        if self.data_path is not None:
            d = self.user_data
            description = (f"{Path(self.data_path).name}: train split (first 70% of {len(d.dates)} rows, "
                           f"{d.dates[0]} to {d.dates[d.borders['train'][1] - 1]}) of {len(d.columns)} column(s) "
                           f"({', '.join(map(str, d.columns))}), standardized with train statistics; every column a "
                           f"separate series; {len(ds)} windows of {ds.length} steps.")
        return PretrainData(ds, files=list(ds.files), description=description)

    def model(self, data: PretrainData) -> GPHT:
        return self.gpht

    def loader(self, data: PretrainData, batch_size: int) -> DataLoader:
        return DataLoader(data.dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0,
                          generator=generator(self.seed))

    def task(self, model: GPHT, data: PretrainData, steps_per_epoch: int, max_epochs: int) -> GPHTTask:
        tr = self.train_cfg
        steps_per_epoch = len(data.dataset) // self.global_batch()  # drop_last: full global batches only
        halve_every = None
        if tr.get("schedule") == "halving":  # official lradj=type1: halve after every epoch
            halve_every = int(tr.get("halve_every") or steps_per_epoch)
        if tr.get("trainable", "all") == "heads":  # the paper's fine-tuning: only the forecast heads learn
            for n, p in model.named_parameters():
                p.requires_grad_(".head." in n)
        return GPHTTask(model, lr=float(tr.get("lr", 1e-4)), weight_decay=float(tr.get("weight_decay", 0.0)),
                        warmup_steps=int(tr.get("warmup_steps", 0)), max_steps=tr.get("max_steps"),
                        schedule="constant" if tr.get("schedule") == "halving" else tr.get("schedule", "cosine"),
                        halve_every=halve_every)

    def _val_sources(self, names) -> list:
        return [self.user_data] if self.data_path is not None else list(names)

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict) -> PlainRun:
        tr = self.train_cfg
        max_steps = tr.get("max_steps")
        kw = {"max_steps": int(max_steps) if max_steps else -1,
              "log_every_n_steps": int(tr.get("log_every_n_steps", 20)), "progress": False}
        if tr.get("precision"):  # e.g. "bf16-mixed": Lightning's autocast (CPU: bfloat16 matmuls, fp32 weights)
            kw["precision"] = str(tr["precision"])
        kw.update(trainer_kwargs)
        es = None
        if tr.get("early_stopping"):
            cfg = tr["early_stopping"]
            es = ValEarlyStopping(self._val_sources(cfg.get("datasets", self.recipe["data"]["datasets"])),
                                  every=int(cfg["every"]), patience=int(cfg.get("patience", 3)),
                                  max_windows=int(cfg.get("max_windows", 2048)), seed=self.seed)
            kw["callbacks"] = list(kw.get("callbacks") or []) + [es.callback]
        trainer = fit(task, loader, self.run_dir, max_epochs=max_epochs, **kw)
        seconds = training_seconds(trainer)
        steps = int(trainer.global_step)
        if es is not None:
            es.restore(task.model)
        bs = self.global_batch()
        metrics = {"train_seconds": round(seconds, 1), "steps": steps, "series_seen": steps * bs,
                   "windows_per_second": round(steps * bs / max(seconds, 1e-9), 1),
                   "final_train_loss": float(trainer.callback_metrics.get("train/loss", float("nan")))}
        if es is not None:
            metrics["early_stopping"] = {"best_step": es.best_step, "best_val": es.best, "history": es.history,
                                         "stopped_early": steps < int(max_steps or steps)}
        self.train_metrics = metrics
        # the run's own metrics only (not Lightning's callback_metrics); the training record as publish_run keeps it
        return PlainRun(callback_metrics={}, record=training_record(trainer), global_rank=trainer.global_rank)

    def evaluate(self, model: GPHT, data: PretrainData) -> dict:
        metrics = dict(self.train_metrics)
        for p in model.parameters():
            p.requires_grad_(True)
        if self.data_path is None:
            metrics["val_next_token_mse"] = validation_loss(model, self.recipe["data"]["datasets"])
        elif _n_windows(self.user_data, "val", model.context_len + model.token_len):
            metrics["val_next_token_mse"] = validation_loss(model, [self.user_data])
        evaluation = self.recipe.get("evaluate")
        self.results = []
        if evaluation:
            model.eval()
            sources = self._val_sources(evaluation.get("datasets", []))
            for source in sources:  # the LTSF test protocol (tasks/evaluation.evaluate_gpht)
                horizons = evaluation.get("horizons", [96, 192, 336, 720])
                if self.data_path is not None:  # a short file's test split may not hold the longest horizons
                    horizons = [h for h in horizons if _n_windows(source, "test", model.context_len + int(h))]
                res = evaluate_fn(lambda c, h: model.generate(c, h), source, horizons, model.context_len,
                                  evaluation.get("max_windows"))
                name = source if isinstance(source, str) else source.name
                for h, r in res.items():
                    metrics[f"{name}/{h}/mse"] = r["mse"]
                    metrics[f"{name}/{h}/mae"] = r["mae"]
                    self.results.append({"metric": f"{name} MSE H={h}", "value": r["mse"],
                                         "setting": f"no fine-tuning; {r['windows']} test windows x all channels"})
        (self.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        return metrics

    def card(self, data: PretrainData, metrics: dict) -> dict:
        card = dict(self.recipe.get("card", {}))
        card.setdefault("title", self.recipe["name"])
        card["results"] = list(card.get("results", [])) + self.results
        if self.data_path is not None:  # the card says what was seen: the user's file, not the recipe's datasets
            name = Path(self.data_path).name
            card["title"] = f"GPHT trained on {name} (recipe {self.recipe['name']})"
            card["summary"] = (f"GPHT with the architecture and optimizer of the recipe {self.recipe['name']}, trained "
                               f"by next-token pretraining on the user's own series {name} (fmzoo pretrain --data).")
            card["training_data"] = data.description
            card["limitations"] = (f"Trained only on {name}; the recipe's own datasets were not seen. Results are on "
                                   "that file's test split (its last 20% of rows).")
            card.pop("datasets", None)
        return card


def _n_windows(data: LTSFData, split: str, length: int) -> int:
    a, b = data.borders[split]
    return max(0, b - a - length + 1)


def finetune_heads(model: GPHT, dataset: str, steps: int = 200, batch_size: int = 64, lr: float = 1e-4,
                   seed: int = 0, percent: float = 100.0, heads_only: bool = True) -> dict:
    """The paper's fine-tuning on a target dataset's train split (in place, plain Adam, constant lr).

    heads_only=True freezes everything but the stages' forecast heads, as the official code does when it
    loads a pretrained model; heads_only=False trains every weight (used for from-scratch training).
    """
    g = generator(seed)
    ds = MixtureWindows([dataset], context_len=model.context_len, token_len=model.token_len, percent=percent)
    params = [p for n, p in model.named_parameters() if (not heads_only) or ".head." in n]
    opt = torch.optim.Adam(params, lr=lr)
    # official fine-tuning runs with dropout 0: with a frozen backbone we keep it in eval mode
    model.train(not heads_only)
    losses = []
    t0 = time.perf_counter()
    for _ in range(int(steps)):
        idx = torch.randint(len(ds), (batch_size,), generator=g)
        batch = torch.stack([ds[int(i)] for i in idx])
        loss = model.next_token_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": int(steps), "seconds": time.perf_counter() - t0,
            "final_loss": sum(tail) / len(tail) if tail else math.nan, "trainable": sum(p.numel() for p in params)}
