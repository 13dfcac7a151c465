"""TERA pretraining as an fmzoo SSLTask: L1 reconstruction of time-, channel- and magnitude-altered frames.

Paper optimisation (s3prl TERA runner): AdamW, lr 2e-4, 7% linear warm-up, gradient clipping 5, batch 32
(8 x 4 accumulation), 1M steps. The CPU recipe keeps the objective and the alteration policy and shortens
the run (see recipes/tera-small.yaml)."""

from __future__ import annotations

import inspect
import random

from fmzoo.core.training import SSLTask

from ..models.tera import TERA, tera_alteration
from ._common import SpeechMethod

__all__ = ["TERATask", "TERAMethod"]


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


class TERAMethod(SpeechMethod):
    """Pretrain on FSDD's train split (README split: index 5-49; test clips are never seen), plus synthesized
    speech when the recipe has ``data.synthetic`` (see ``_common.pretraining_audio``), or on the user's own folder of
    WAV files (``fmzoo pretrain RECIPE --data PATH``; global CMVN statistics then come from it). Seed and CPU threads
    are set by ``fmzoo.core.pretrain.run_pretraining`` from the recipe (every speech recipe has ``threads: 1``)."""

    recipe_sections = (*SpeechMethod.recipe_sections, "policy")
    # ``model``: TERA's parameters; ``policy``: the alteration's (``reconstruction_loss`` passes them to
    # ``tera_alteration``; the frames, lengths and generator are the task's)
    recipe_keys = {
        **SpeechMethod.common_keys,
        "model": tuple(inspect.signature(TERA).parameters),
        "optim": ("lr", "weight_decay", "warmup_fraction", "schedule", "grad_clip"),
        "policy": tuple(p for p in inspect.signature(tera_alteration).parameters
                        if p not in ("feats", "lengths", "rng")),
    }
    citation = ("Liu, Li, Lee. TERA: Self-Supervised Learning of Transformer Encoder Representation for Speech. "
                "IEEE/ACM TASLP 2021")
    default_batch_size = 32
    default_seconds = 3.0
    default_grad_clip = 5.0

    def build_model(self):
        return TERA(**self.recipe["model"])

    def prepare(self, model, audio):
        if model.feat_cfg["cmvn"] == "global":
            model.set_global_cmvn(audio.wavs)  # the training audio's statistics (FSDD's: the downstream data)

    def transform(self, model):
        return model.featurize

    def task(self, model, data, steps_per_epoch, max_epochs):
        max_steps = self.total_steps(data, max_epochs)
        opt = self.optim
        return TERATask(model, seed=self.seed, policy=self.recipe.get("policy"), lr=float(opt.get("lr", 2e-4)),
                        weight_decay=float(opt.get("weight_decay", 0.01)),
                        warmup_steps=int(float(opt.get("warmup_fraction", 0.07)) * max_steps), max_steps=max_steps,
                        schedule=opt.get("schedule", "cosine"))
