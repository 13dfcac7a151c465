"""T-JEPA pretraining as a Lightning task on the core's SSLTask, and the recipe entry point."""

from __future__ import annotations

from pathlib import Path

from fmzoo.core import publish_run
from fmzoo.core.registry import dataset_loader
from fmzoo.core.runtime import generator
from fmzoo.core.training import SSLTask, fit, per_device_batch
from torch.utils.data import DataLoader, TensorDataset

from ..models.tjepa import TJEPA, FeatureMaskSampler
from ..spec import TabularSchema

CITATION = """@article{thimonier2024tjepa,
  title={T-JEPA: Augmentation-Free Self-Supervised Learning for Tabular Data},
  author={Thimonier, Hugo and De Melo Costa, Jos{\\'e} Lucas and Popineau, Fabrice and Rimmel, Arpad and Doan, Bich-Li{\\^e}n},
  journal={arXiv preprint arXiv:2410.05016},
  year={2024}
}"""


class TJEPATask(SSLTask):
    def __init__(self, model: TJEPA, mask: dict, ema: tuple[float, float] = (0.996, 1.0), **optim):
        super().__init__(model, **optim)
        self.sampler = FeatureMaskSampler(model.n_features, **mask)
        self.ema = ema

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


def pretrain(recipe: dict, run_dir: Path, trainer_kwargs: dict, evaluate=None) -> Path:
    """Pretrain T-JEPA on the training split of ``recipe["dataset"]`` (the test split is never seen).

    A recipe's ``evaluate`` block is run, after the checkpoint is saved, by ``evaluate(model, recipe) -> rows``
    ({name, metric, mean, std, setting}), whose rows go into the card and the provenance's metrics. That
    evaluation is a downstream task: the package's plugin passes ``tasks.downstream.recipe_evaluation`` (methods
    never import tasks). Seeds and threads are set around this function by ``fmzoo.core.pretrain.run_pretraining``."""
    if recipe.get("evaluate") and evaluate is None:
        raise ValueError(f"recipe {recipe.get('name')!r} has an 'evaluate' block but no evaluation was passed: run it "
                         "with `fmzoo pretrain` (fmzoo.core.pretrain.run_pretraining), or drop the block")
    run_dir = Path(run_dir)
    data = dataset_loader(recipe["dataset"])()
    X, _ = data["train"]
    if recipe.get("max_rows"):  # a seeded subset, for smoke tests and tiny runs
        import numpy as np

        keep = np.sort(np.random.default_rng(int(recipe.get("seed", 0))).permutation(len(X))[: int(recipe["max_rows"])])
        X = X.iloc[keep].reset_index(drop=True)
    schema = TabularSchema.fit(X)
    x_num, x_cat = schema.transform(X)
    model = build_model(schema, recipe.get("model", {}), recipe["dataset"])
    train_cfg = dict(recipe.get("trainer", {}))
    global_batch = int(train_cfg.pop("batch_size", 512))
    batch_size = per_device_batch(global_batch, {**train_cfg, **trainer_kwargs})  # this process's share
    max_epochs = int(trainer_kwargs.pop("max_epochs", train_cfg.pop("max_epochs", 300)))
    steps_per_epoch = -(-len(x_num) // global_batch)
    optim = dict(recipe.get("optim", {}))
    warmup_epochs = optim.pop("warmup_epochs", 0)
    ema = (optim.pop("ema_start", 0.996), optim.pop("ema_end", 1.0))
    task = TJEPATask(model, mask=recipe.get("mask", {}), ema=ema, warmup_steps=int(warmup_epochs * steps_per_epoch), **optim)
    gen = generator(int(recipe.get("seed", 0)))
    loader = DataLoader(TensorDataset(x_num, x_cat), batch_size=batch_size, shuffle=True, generator=gen, drop_last=len(x_num) > batch_size)
    trainer = fit(task, loader, run_dir, max_epochs=max_epochs, **{**train_cfg, **trainer_kwargs})
    if trainer.global_rank != 0:
        return run_dir / "checkpoint"
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    card = dict(recipe.get("card", {}))
    card.setdefault("title", f"T-JEPA on {recipe['dataset']} ({recipe['name']})")
    card.setdefault("citation", CITATION)
    provenance = {
        "recipe": recipe,
        "data_files": [str(f) for f in data["files"]],
        "seeds": [int(recipe.get("seed", 0))],
        "metrics": metrics,
        "epochs": max_epochs,
        "steps": int(trainer.global_step),
    }
    out = publish_run(model, run_dir / "checkpoint", card=card, provenance=provenance, trainer=trainer)  # saved before evaluating
    if recipe.get("evaluate"):
        for r in evaluate(model, recipe):
            metrics[f"{r['name']}/{r['metric']}"] = r["mean"]
            card.setdefault("results", []).append(
                {"metric": f"{r['metric']} ({r['name']})", "value": f"{r['mean']:.4f} ± {r['std']:.4f}", "setting": r["setting"]})
        out = publish_run(model, run_dir / "checkpoint", card=card, provenance=provenance, trainer=trainer)
    return out
