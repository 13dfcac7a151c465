"""Training on Lightning: one base task for self-supervised pretraining, one for fine-tuning, and
``fit`` which owns checkpointing, resume, seeds and the device/strategy pass-through."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from .runtime import seed_everything  # noqa: F401  (re-exported: the pipeline's one seeding function)


def global_rank() -> int:
    """This process's rank in a running multi-process (DDP) job; 0 outside one."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _process_count() -> int:
    """How many processes the running job has: the initialised process group's size, 1 outside one."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_mean_divisor(count: torch.Tensor) -> torch.Tensor:
    """The divisor that turns a loss summed over this process's ``count`` elements (masked steps, tokens)
    into its share of the mean over the whole global batch: DDP averages gradients over the processes, so
    ``loss_sum / global_mean_divisor(count)`` trains on (sum over all processes) / (count over all processes),
    as fairseq normalises by the all-reduced sample size. One process: ``count`` itself (at least 1)."""
    total = torch.as_tensor(count).detach().float().clone()
    processes = _process_count()
    if processes > 1:
        import torch.distributed as dist

        dist.all_reduce(total)
    return total.clamp(min=1) / processes


def gather_global_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each tensor's rows from every process, in rank order, on every process; gradients flow back to each
    process's own rows. A loss over in-batch pairs (contrastive negatives, similarity targets) computed on
    these is the one-process loss on the whole global batch, and DDP's average of the processes' gradients
    is its gradient. One process: the tensors unchanged. Every process must hold the same number of rows."""
    if _process_count() == 1:
        return tensors
    from torch.distributed.nn.functional import all_gather

    return tuple(torch.cat(all_gather(t.contiguous()), 0) for t in tensors)


def world_size(trainer_kwargs: dict) -> int:
    """How many processes a run with these ``fit`` kwargs has: devices per node x nodes. ``devices="auto"``
    counts the visible GPUs for a GPU accelerator and is 1 on the CPU."""
    devices = trainer_kwargs.get("devices", 1)
    if devices == "auto":
        gpu = trainer_kwargs.get("accelerator", "cpu") in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        devices = torch.cuda.device_count() if gpu else 1
    elif isinstance(devices, (list, tuple)):
        devices = len(devices)
    return int(devices) * int(trainer_kwargs.get("num_nodes", 1) or 1)


def per_device_batch(global_batch: int, trainer_kwargs: dict) -> int:
    """A recipe's ``batch_size`` is the global batch (the papers' number): each process loads its share, so
    ``--devices 2 --strategy ddp`` computes the same optimisation as one process with the whole batch."""
    world = world_size(trainer_kwargs)
    if global_batch % world:
        raise ValueError(f"batch_size {global_batch} is not divisible by the {world} processes of this run")
    return global_batch // world


def syncs_batchnorm(trainer_kwargs: dict) -> bool:
    """Whether a run with these ``fit`` kwargs synchronises BatchNorm statistics across its processes.
    The global-batch convention needs it (each process would otherwise normalise by its own share's
    statistics); torch syncs only on accelerators, so a multi-process CPU run keeps per-process
    statistics (``fit`` warns when the task has BatchNorm layers)."""
    accelerator = trainer_kwargs.get("accelerator", "cpu")
    on_accelerator = accelerator not in ("cpu", "auto") or (accelerator == "auto" and torch.cuda.is_available())
    return world_size(trainer_kwargs) > 1 and on_accelerator


def warmup_cosine(step: int, warmup_steps: int, max_steps: int | None, final_ratio: float = 0.0) -> float:
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if not max_steps or max_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class _OptimMixin:
    """AdamW with optional linear warm-up then cosine decay, stepped per optimisation step."""

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, betas=tuple(self.hparams.betas))
        if self.hparams.schedule == "constant" and not self.hparams.warmup_steps:
            return opt
        max_steps = self.hparams.max_steps
        if max_steps is None and self.hparams.schedule == "cosine" and self.trainer is not None:
            max_steps = int(self.trainer.estimated_stepping_batches)
        if self.hparams.schedule == "constant":
            max_steps = None
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: warmup_cosine(s, self.hparams.warmup_steps, max_steps, self.hparams.final_lr_ratio)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class SSLTask(_OptimMixin, L.LightningModule):
    """Base self-supervised task. Subclasses implement ``ssl_loss(batch) -> {"loss": ..., ...}``."""

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        max_steps: int | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        schedule: str = "cosine",
        final_lr_ratio: float = 0.0,
    ):
        super().__init__()
        self.model = model
        self.save_hyperparameters(ignore=["model"])

    def ssl_loss(self, batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def on_train_start(self):
        # Lightning seeds every rank alike; each rank holds other rows of the global batch, and its masks,
        # dropout and augmentations must be drawn independently too (not repeated rank to rank).
        if self.trainer.world_size > 1:
            seed_everything(torch.initial_seed() % 2**31 + self.global_rank)
            self.seed_own_generators(self.global_rank)

    def seed_own_generators(self, rank: int) -> None:
        """A task that draws views or masks from its own generator offsets that generator's seed by ``rank``
        here, so that ranks do not repeat each other's draws (called only in multi-process runs)."""

    def training_step(self, batch, batch_idx):
        out = self.ssl_loss(batch)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{type(self).__name__}: loss became {loss.item()} at step {self.global_step}")
        bs = _batch_size(batch)
        for k, v in out.items():
            self.log(f"train/{k}", v.detach() if torch.is_tensor(v) else v, prog_bar=(k == "loss"), batch_size=bs, sync_dist=False)
        return loss

    def validation_step(self, batch, batch_idx):
        with torch.no_grad():
            out = self.ssl_loss(batch)
        self.log("val/loss", out["loss"], prog_bar=True, batch_size=_batch_size(batch), sync_dist=True)


class FinetuneTask(_OptimMixin, L.LightningModule):
    """A backbone (``x -> features``) plus a head, trained on labels."""

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        task: str = "classification",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        freeze_backbone: bool = False,
        warmup_steps: int = 0,
        max_steps: int | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        schedule: str = "constant",
        final_lr_ratio: float = 0.0,
    ):
        super().__init__()
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be classification or regression, got {task!r}")
        self.backbone, self.head = backbone, head
        self.save_hyperparameters(ignore=["backbone", "head"])
        if freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)

    def forward(self, x):
        return self.head(self.backbone(x))

    def loss(self, logits, y):
        if self.hparams.task == "classification":
            return nn.functional.cross_entropy(logits, y.long())
        return nn.functional.mse_loss(logits.squeeze(-1), y.float())

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.freeze_backbone:
            self.backbone.eval()
        loss = self.loss(self(x), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", self.loss(self(x), y), prog_bar=True, batch_size=len(y), sync_dist=True)

    @torch.no_grad()
    def predict_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)


def _batch_size(batch) -> int | None:
    if torch.is_tensor(batch):
        return len(batch)
    if isinstance(batch, (tuple, list)) and batch and torch.is_tensor(batch[0]):
        return len(batch[0])
    if isinstance(batch, dict):
        for v in batch.values():
            if torch.is_tensor(v):
                return len(v)
    return None


def last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    return ckpt if ckpt.is_file() else None


def make_trainer(
    run_dir: str | os.PathLike,
    max_epochs: int | None = None,
    max_steps: int = -1,
    devices: Any = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    accelerator: str = "cpu",
    precision: str = "32-true",
    progress: bool = True,
    log_every_n_steps: int = 10,
    gradient_clip_val: float | None = None,
    callbacks: list | None = None,
    **extra,
) -> L.Trainer:
    import logging

    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    # Lightning's start-up lines (accelerator availability, cloud-logging tips) tell a user nothing they can act on
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    run_dir = Path(run_dir)
    # save_top_k=1 without a monitor keeps the newest epoch; Lightning writes last.ckpt only next to a
    # saved checkpoint, so this is what makes last.ckpt appear after every epoch (resume after a kill).
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=1, every_n_epochs=1)
    sizes = {"devices": devices, "num_nodes": num_nodes, "accelerator": accelerator}
    extra.setdefault("sync_batchnorm", syncs_batchnorm(sizes))
    return L.Trainer(
        default_root_dir=run_dir,
        max_epochs=max_epochs,
        max_steps=max_steps,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        accelerator=accelerator,
        precision=precision,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=log_every_n_steps,
        gradient_clip_val=gradient_clip_val,
        logger=CSVLogger(run_dir, name="logs", version=""),
        callbacks=[ckpt, TrainClock(), RNGState(), *(callbacks or [])],
        **extra,
    )


class TrainClock(L.Callback):
    """Wall-clock seconds spent training, saved in every checkpoint: a run resumed after an interruption
    reports the time of all its parts (up to each part's last checkpoint, the work the run kept), and which
    steps each part trained (``parts``: one entry per start or resume)."""

    def __init__(self):
        self.seconds, self._base, self._start, self._trainer = 0.0, 0.0, None, None
        self.parts: list[dict] = []

    def on_train_start(self, trainer, pl_module):
        self._start, self._trainer = time.perf_counter(), trainer
        self._base = self.seconds
        self.parts.append({"from_step": int(trainer.global_step), "to_step": int(trainer.global_step), "seconds": 0.0})

    def on_train_end(self, trainer, pl_module):
        self._close_part()
        self.seconds, self._start = self.elapsed(), None

    def elapsed(self) -> float:
        return self.seconds + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def _close_part(self) -> None:
        if self._start is not None and self.parts:
            self.parts[-1].update(to_step=int(self._trainer.global_step), seconds=round(self.elapsed() - self._base, 1))

    def state_dict(self) -> dict:
        self._close_part()  # the running part as far as this checkpoint goes
        return {"seconds": self.elapsed(), "parts": [dict(p) for p in self.parts]}

    def load_state_dict(self, state_dict: dict) -> None:
        self.seconds = float(state_dict["seconds"])
        self.parts = [dict(p) for p in state_dict.get("parts", [])]  # checkpoints from before parts were kept: none


class RNGState(L.Callback):
    """Every random stream of a run, saved in each checkpoint and restored on resume, so a run continued with
    ``--resume`` draws exactly what the uninterrupted run drew (Lightning restores weights, optimiser and loops but
    not these): Python's ``random``, NumPy's global and torch's global (CPU, CUDA) generators, the training loader's
    own generator (its shuffle; ``fit`` hands the loader over) and every ``torch.Generator`` /
    ``numpy.random.Generator`` / ``random.Random`` the task keeps as an attribute (a method's masks and views).

    States are restored as soon as Lightning hands the checkpoint over, before the loader's first iterator of the
    resumed run exists: that iterator draws its base seed from the loader's generator, as the uninterrupted run's
    next-epoch iterator did, and nothing between a checkpoint and the next step draws from the others."""

    def __init__(self):
        self.loader = None
        self._module = None

    def setup(self, trainer, pl_module, stage=None):
        self._module = pl_module

    @staticmethod
    def _own_generators(module) -> dict:
        import random

        import numpy as np

        if module is None:
            return {}
        return {name: value for name, value in vars(module).items()
                if isinstance(value, (torch.Generator, np.random.Generator, random.Random))}

    def state_dict(self) -> dict:
        import random

        import numpy as np

        version, internal, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state()
        # plain containers and tensors only: checkpoints load with torch.load(weights_only=True)
        state = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state(),
                 "numpy": [name, torch.as_tensor(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        gen = getattr(self.loader, "generator", None)
        if gen is not None:
            state["loader"] = gen.get_state()
        own = {}
        for key, g in self._own_generators(self._module).items():
            if isinstance(g, torch.Generator):
                own[key] = g.get_state()
            elif hasattr(g, "bit_generator"):
                own[key] = g.bit_generator.state
            else:
                v, internal_, gauss_ = g.getstate()
                own[key] = [v, list(internal_), gauss_]
        state["task"] = own
        return state

    def load_state_dict(self, state: dict) -> None:
        import random

        import numpy as np

        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        gen = getattr(self.loader, "generator", None)
        if gen is not None and "loader" in state:
            gen.set_state(state["loader"])
        own = self._own_generators(self._module)
        for key, value in state.get("task", {}).items():
            g = own.get(key)
            if isinstance(g, torch.Generator):
                g.set_state(value)
            elif hasattr(g, "bit_generator"):
                g.bit_generator.state = value
            elif g is not None:
                g.setstate((value[0], tuple(value[1]), value[2]))


def _clock(trainer: L.Trainer) -> TrainClock:
    clocks = [c for c in trainer.callbacks if isinstance(c, TrainClock)]
    if not clocks:
        raise ValueError("this trainer has no TrainClock: build it with fmzoo.core.training.make_trainer / fit")
    return clocks[0]


def training_seconds(trainer: L.Trainer) -> float:
    """Seconds the run behind ``trainer`` has trained, summed over its resumed parts (``TrainClock``)."""
    return _clock(trainer).elapsed()


def one_part_record(seconds: float, steps: int) -> dict:
    """``training_record`` of a run trained in one go by a plain loop (no Trainer, no resume)."""
    return {"seconds": round(float(seconds), 1), "steps": int(steps), "resumed": False,
            "parts": [{"from_step": 0, "to_step": int(steps), "seconds": round(float(seconds), 1)}]}


def training_record(trainer: L.Trainer) -> dict:
    """What provenance.json keeps of how a run trained: total seconds, steps, and each part (a run resumed
    after an interruption, or to train longer, has more than one)."""
    clock = _clock(trainer)
    clock._close_part()
    return {"seconds": round(clock.elapsed(), 1), "steps": int(trainer.global_step), "resumed": len(clock.parts) > 1,
            "parts": [dict(p) for p in clock.parts]}


def fit(
    task: L.LightningModule,
    train_loader,
    run_dir: str | os.PathLike,
    max_epochs: int | None = None,
    val_loader=None,
    resume: bool = False,
    **trainer_kwargs,
) -> L.Trainer:
    """Train ``task``; checkpoints go to ``run_dir/checkpoints/last.ckpt`` every epoch.

    ``resume=True`` continues from that checkpoint (optimizer, scheduler, epoch and RNG state) when it
    exists. ``devices``, ``num_nodes``, ``strategy`` ("ddp", "fsdp", ...) pass straight to Lightning.
    """
    import warnings

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(run_dir, max_epochs=max_epochs, **trainer_kwargs)
    for callback in trainer.callbacks:
        if isinstance(callback, RNGState):
            callback.loader = train_loader  # its shuffle generator is saved and restored too
    if world_size(trainer_kwargs) > 1 and not syncs_batchnorm(trainer_kwargs) and _has_batchnorm(task):
        warnings.warn("BatchNorm statistics are per process in this multi-process CPU run (torch synchronises "
                      "them only on accelerators): the run differs from one process with the whole batch", stacklevel=2)
    ckpt_path = last_checkpoint(run_dir) if resume else None
    if resume and ckpt_path is None:
        warnings.warn(f"--resume: no checkpoint in {run_dir}/checkpoints; starting from scratch", stacklevel=2)
    if ckpt_path is not None:
        from .weights import safe_torch_load

        # a truncated, corrupt or code-carrying last.ckpt is a CheckpointError naming it, read as Lightning then
        # reads it (weights_only): no code runs from it
        safe_torch_load(ckpt_path)
    log = Path(run_dir) / "logs" / "metrics.csv"
    earlier = _read_log(log) if ckpt_path is not None else None  # the CSV logger starts its file anew
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*is an invalid version and will not be supported.*")
        warnings.filterwarnings("ignore", ".*Previous log files in this directory will be deleted.*")
        warnings.filterwarnings("ignore", ".*defined a `validation_step` but have no `val_dataloader`.*")
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
        warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
        trainer.fit(task, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=ckpt_path)
    if earlier and trainer.global_rank == 0:
        _prepend_log(log, earlier)
    if trainer.world_size > 1:  # every rank records a fingerprint of its weights: they must agree
        ranks = Path(run_dir) / "ranks"
        ranks.mkdir(exist_ok=True)
        (ranks / f"rank{trainer.global_rank}.sha256").write_text(state_fingerprint(task) + "\n")
    return trainer


def _has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _read_log(path: Path) -> tuple[list[str], list[dict]] | None:
    import csv

    if not path.is_file():
        return None
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _prepend_log(path: Path, earlier: tuple[list[str], list[dict]]) -> None:
    """After a resumed run: the rows logged before the interruption (steps below the resumed run's first
    logged step), then the resumed run's rows, in one metrics.csv (written atomically)."""
    import csv

    fields, old_rows = earlier
    new_fields, new_rows = _read_log(path) or ([], [])
    first = min((int(r["step"]) for r in new_rows if r.get("step")), default=None)
    kept = [r for r in old_rows if first is None or (r.get("step") and int(r["step"]) < first)]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(fields + new_fields)))
        writer.writeheader()
        writer.writerows(kept + new_rows)
    os.replace(tmp, path)


def state_fingerprint(module: nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def publish_run(model, target: str | os.PathLike, card: dict | None = None, provenance: dict | None = None,
                trainer=None) -> Path:
    """The one way a run writes its checkpoint: a directory path, or a repo id in the local hub.
    With the run's ``trainer``, provenance.json records how it trained (``training``: seconds, steps, and the
    parts of a resumed run). In a multi-process run only global rank 0 writes (the ranks hold identical
    weights); the others get the path."""
    from .hub import _REPO_ID, LocalHub

    target_str = str(target)
    if trainer is not None:
        provenance = {**(provenance or {}), "training": training_record(trainer)}

    if global_rank() > 0:
        return Path(target_str)
    if isinstance(target, str) and _REPO_ID.fullmatch(target_str) and not Path(target_str).exists():
        model.push_to_hub(target_str, hub="local", card=card, provenance=provenance)
        return LocalHub().resolve(target_str)
    return model.save_pretrained(target, card=card, provenance=provenance)
