"""wav2vec 2.0 pretraining as an fmzoo SSLTask (Lightning).

Objective per batch (paper eq. 2-4, fairseq normalisation): L = L_m / n + alpha * L_d / n + beta * L_f, with
L_m the contrastive loss summed over the n masked steps, L_d the diversity loss (n * (GV - ppl) / GV),
alpha = 0.1, and L_f the L2 penalty on the feature-encoder output (beta = 10, the BASE setting). The
feature-encoder gradient is scaled by 0.1, the Gumbel temperature decays from 2 to 0.5 (paper: factor
0.999995 per update over 400k updates; scaled here to reach 0.5 at 70% of the run, as the paper's schedule
does at about 70% of its run).
"""

from __future__ import annotations

import inspect

import torch
from fmzoo.core.training import SSLTask, global_mean_divisor

from ..models.wav2vec2 import HF_CONFIG_DEFAULTS, Wav2Vec2
from ._common import SpeechMethod

__all__ = ["Wav2Vec2Task", "Wav2Vec2Method", "normalize"]


def normalize(wav: torch.Tensor) -> torch.Tensor:
    return (wav - wav.mean(-1, keepdim=True)) / torch.sqrt(wav.var(-1, keepdim=True, unbiased=False) + 1e-7)


class Wav2Vec2Task(SSLTask):
    def __init__(self, model: Wav2Vec2, lr=5e-4, weight_decay=0.01, warmup_steps=0, max_steps=None,
                 betas=(0.9, 0.98), schedule="cosine", final_lr_ratio=0.0, feature_grad_mult=0.1,
                 feature_penalty_weight=10.0, max_temp=2.0, min_temp=0.5, temp_steps: int | None = None):
        super().__init__(model, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, max_steps=max_steps,
                         betas=betas, schedule=schedule, final_lr_ratio=final_lr_ratio)
        self.model.feature_grad_mult = feature_grad_mult
        self.fpw = feature_penalty_weight
        self.max_temp, self.min_temp = max_temp, min_temp
        steps = temp_steps or max_steps or 1000
        self.temp_decay = (min_temp / max_temp) ** (1.0 / max(1, steps))

    def on_train_batch_start(self, batch, batch_idx):
        self.model.quantizer.temperature = max(self.max_temp * self.temp_decay ** self.global_step, self.min_temp)

    def ssl_loss(self, batch):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        out = self.model(x, compute_loss=True)
        n = global_mean_divisor(out["num_masked"])  # normalised by the global batch's masked steps, as fairseq
        loss = out["loss"] / n + self.fpw * out["feature_penalty"]
        return {"loss": loss, "contrastive": out["contrastive_loss"] / n, "perplexity": out["codevector_perplexity"],
                "accuracy": out["accuracy"], "temperature": torch.tensor(self.model.quantizer.temperature)}


class Wav2Vec2Method(SpeechMethod):
    """Pretrain on FSDD's train split (README split: index 5-49; test clips are never seen), plus synthesized
    speech when the recipe has ``data.synthetic`` (see ``_common.pretraining_audio``), or on the user's own folder of
    WAV files (``fmzoo pretrain RECIPE --data PATH``). Seed and CPU threads are set by
    ``fmzoo.core.pretrain.run_pretraining`` from the recipe (every speech recipe has ``threads: 1``)."""

    citation = ("Baevski, Zhou, Mohamed, Auli. wav2vec 2.0: A Framework for Self-Supervised Learning of Speech "
                "Representations. NeurIPS 2020")
    default_batch_size = 8
    default_seconds = 2.0
    # ``model``: Wav2Vec2's named parameters and the transformers config keys its ``**config`` takes
    recipe_keys = {
        **SpeechMethod.common_keys,
        "model": (*(n for n, p in inspect.signature(Wav2Vec2).parameters.items() if p.kind != p.VAR_KEYWORD),
                  *HF_CONFIG_DEFAULTS),
        "optim": ("lr", "weight_decay", "warmup_fraction", "betas", "feature_grad_mult", "feature_penalty_weight",
                  "grad_clip"),
    }

    def build_model(self):
        return Wav2Vec2(**self.recipe["model"])

    def transform(self, model):
        return normalize

    def task(self, model, data, steps_per_epoch, max_epochs):
        max_steps = self.total_steps(data, max_epochs)
        opt = self.optim
        return Wav2Vec2Task(model, lr=float(opt.get("lr", 5e-4)), weight_decay=float(opt.get("weight_decay", 0.01)),
                            warmup_steps=int(float(opt.get("warmup_fraction", 0.08)) * max_steps), max_steps=max_steps,
                            betas=tuple(opt.get("betas", (0.9, 0.98))),
                            feature_grad_mult=float(opt.get("feature_grad_mult", 0.1)),
                            feature_penalty_weight=float(opt.get("feature_penalty_weight", 10.0)),
                            temp_steps=int(0.7 * max_steps))
