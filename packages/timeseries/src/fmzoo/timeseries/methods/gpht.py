"""GPHT's objective and training: next-token MSE on a channel-independent mixture of datasets.

- ``GPHTTask``: the Lightning task (fmzoo.core.training.SSLTask) whose loss is GPHT's next-token
  forecasting MSE; optional per-epoch learning-rate halving as the official code's ``lradj=type1``.
- ``pretrain(recipe, run_dir, trainer_kwargs)``: the recipe entry point used by ``fmzoo pretrain``.
- ``finetune_heads``: the paper's fine-tuning: the pretrained transformer is frozen and only the stages'
  forecast heads are trained on the target dataset's train split (official ``load_pretrain`` path).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from fmzoo.core import publish_run
from fmzoo.core.runtime import generator
from fmzoo.core.training import SSLTask, fit, per_device_batch, training_seconds
from fmzoo.timeseries.data.ltsf import MixtureWindows, evaluate_fn
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
def validation_loss(model: GPHT, datasets: list[str], max_windows: int = 512, seed: int = 0) -> dict:
    """Next-token MSE on (a seeded random subset of) the validation windows of each dataset."""
    model.eval()
    out = {}
    for name in datasets:
        ds = MixtureWindows([name], context_len=model.context_len, token_len=model.token_len, split="val")
        idx = torch.randperm(len(ds), generator=generator(seed))[:max_windows]
        batch = torch.stack([ds[int(i)] for i in idx])
        out[name] = float(model.next_token_loss(batch))
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


def pretrain(recipe: dict, run_dir: Path, trainer_kwargs: dict) -> Path:
    """Pretrain GPHT on the recipe's dataset mixture; returns run_dir/'checkpoint'. Called through
    ``fmzoo.core.pretrain.run_pretraining``, which seeds the process (recipe ``seed``) and sets its threads."""
    run_dir = Path(run_dir)
    seed = int(recipe.get("seed", 0))
    model = build_model(recipe)
    data_cfg = recipe["data"]
    ds = MixtureWindows(data_cfg["datasets"], context_len=model.context_len, token_len=model.token_len,
                        percent=float(data_cfg.get("percent", 100)))
    tr = recipe.get("train", {})
    loader, bs, steps_per_epoch = pretrain_loader(ds, tr, seed, trainer_kwargs)
    max_steps = tr.get("max_steps")
    max_epochs = tr.get("max_epochs", 10)
    halve_every = None
    if tr.get("schedule") == "halving":  # official lradj=type1: halve after every epoch
        halve_every = int(tr.get("halve_every") or steps_per_epoch)
    if tr.get("trainable", "all") == "heads":  # the paper's fine-tuning: only the forecast heads learn
        for n, p in model.named_parameters():
            p.requires_grad_(".head." in n)
    task = GPHTTask(model, lr=float(tr.get("lr", 1e-4)), weight_decay=float(tr.get("weight_decay", 0.0)),
                    warmup_steps=int(tr.get("warmup_steps", 0)), max_steps=max_steps,
                    schedule="constant" if tr.get("schedule") == "halving" else tr.get("schedule", "cosine"),
                    halve_every=halve_every)
    kw = {"max_epochs": max_epochs, "max_steps": int(max_steps) if max_steps else -1,
          "log_every_n_steps": int(tr.get("log_every_n_steps", 20)), "progress": False}
    kw.update(trainer_kwargs)
    es = None
    if tr.get("early_stopping"):
        cfg = tr["early_stopping"]
        es = ValEarlyStopping(cfg.get("datasets", data_cfg["datasets"]), every=int(cfg["every"]),
                              patience=int(cfg.get("patience", 3)), max_windows=int(cfg.get("max_windows", 2048)),
                              seed=seed)
        kw["callbacks"] = list(kw.get("callbacks") or []) + [es.callback]
    trainer = fit(task, loader, run_dir, **kw)
    seconds = training_seconds(trainer)
    steps = int(trainer.global_step)
    if es is not None:
        es.restore(model)
    model.eval()
    metrics = {"train_seconds": round(seconds, 1), "steps": steps, "series_seen": steps * bs,
               "windows_per_second": round(steps * bs / max(seconds, 1e-9), 1),
               "final_train_loss": float(trainer.callback_metrics.get("train/loss", float("nan")))}
    if es is not None:
        metrics["early_stopping"] = {"best_step": es.best_step, "best_val": es.best, "history": es.history,
                                     "stopped_early": steps < int(max_steps or steps)}
    for p in model.parameters():
        p.requires_grad_(True)
    metrics["val_next_token_mse"] = validation_loss(model, data_cfg["datasets"])
    evaluation = recipe.get("evaluate")
    results = []
    if evaluation:
        model.eval()
        for name in evaluation.get("datasets", []):  # the LTSF test protocol (tasks/evaluation.evaluate_gpht)
            res = evaluate_fn(lambda c, h: model.generate(c, h), name, evaluation.get("horizons", [96, 192, 336, 720]),
                              model.context_len, evaluation.get("max_windows"))
            for h, r in res.items():
                metrics[f"{name}/{h}/mse"] = r["mse"]
                metrics[f"{name}/{h}/mae"] = r["mae"]
                results.append({"metric": f"{name} MSE H={h}", "value": r["mse"],
                                "setting": f"no fine-tuning; {r['windows']} test windows x all channels"})
    card = dict(recipe.get("card", {}))
    card.setdefault("title", recipe["name"])
    card["results"] = list(card.get("results", [])) + results
    ckpt = publish_run(model, run_dir / "checkpoint", card=card,
                       provenance={"recipe": recipe, "data_files": [str(p) for p in ds.files], "seeds": [seed],
                                   "metrics": metrics}, trainer=trainer)
    (run_dir / "metrics.json").write_text(__import__("json").dumps(metrics, indent=2) + "\n")
    return ckpt


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
