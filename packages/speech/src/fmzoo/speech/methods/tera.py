"""TERA pretraining as an fmzoo SSLTask: L1 reconstruction of time-, channel- and magnitude-altered frames.

Paper optimisation (s3prl TERA runner): AdamW, lr 2e-4, 7% linear warm-up, gradient clipping 5, batch 32
(8 x 4 accumulation), 1M steps. The CPU recipe keeps the objective and the alteration policy and shortens
the run (see recipes/tera-small.yaml)."""

from __future__ import annotations

import random
from pathlib import Path

from fmzoo.core.training import SSLTask

from ..models.tera import TERA
from ._common import pretraining_audio, run_and_publish, segment_loader

__all__ = ["TERATask", "pretrain"]


class TERATask(SSLTask):
    def __init__(self, model: TERA, seed: int = 0, policy: dict | None = None, **kw):
        super().__init__(model, **kw)
        self.seed, self.rng = seed, random.Random(seed)
        self.policy = dict(policy or {})

    def seed_own_generators(self, rank: int) -> None:
        self.rng.seed(self.seed + rank)

    def ssl_loss(self, batch):
        feats = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.model.reconstruction_loss(feats, None, generator=self.rng, **self.policy)


def pretrain(recipe: dict, run_dir: Path, trainer_kwargs: dict) -> Path:
    """Pretrain on FSDD's train split (README split: index 5-49; test clips are never seen), plus synthesized
    speech when the recipe has ``data.synthetic`` (see ``_common.pretraining_audio``). Seed and CPU threads are
    set by ``fmzoo.core.pretrain.run_pretraining`` from the recipe (every speech recipe has ``threads: 1``)."""
    seed = int(recipe.get("seed", 0))
    model = TERA(**recipe["model"])
    audio = pretraining_audio(recipe, model.input_spec, Path(run_dir))
    if model.feat_cfg["cmvn"] == "global":
        model.set_global_cmvn(audio.wavs)  # FSDD's statistics: the downstream data
    sr = model.input_spec["sample_rate"]
    ds, loader, seg, batch, steps_per_epoch = segment_loader(recipe, audio, sr, model.featurize, 3.0, 32, trainer_kwargs)
    epochs = int(trainer_kwargs.get("max_epochs", recipe.get("epochs", 10)))
    max_steps = steps_per_epoch * epochs
    opt = recipe.get("optim", {})
    task = TERATask(model, seed=seed, policy=recipe.get("policy"), lr=float(opt.get("lr", 2e-4)),
                    weight_decay=float(opt.get("weight_decay", 0.01)),
                    warmup_steps=int(float(opt.get("warmup_fraction", 0.07)) * max_steps), max_steps=max_steps,
                    schedule=opt.get("schedule", "cosine"))
    return run_and_publish(task, model, recipe, Path(run_dir), trainer_kwargs, ds, loader, seg, batch, audio,
                           grad_clip=opt.get("grad_clip", 5.0))
