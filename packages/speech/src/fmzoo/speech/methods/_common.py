"""Shared pretraining loop for the speech methods: FSDD-train segments (plus, if the recipe asks, synthesized
speech), Lightning fit, publish_run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from fmzoo.core import publish_run
from fmzoo.core.training import fit, per_device_batch, training_seconds
from torch.utils.data import DataLoader

from ..data.fsdd import SegmentDataset, load_fsdd, manifest_entry
from ..data.synth import SynthConfig, build_corpus, corpus_manifest_entry, load_corpus


@dataclass
class PretrainAudio:
    """What a speech pretraining run reads: FSDD train clips, optional extra (synthesized) clips drawn for a
    fraction of the segments, and the provenance of both."""

    wavs: list
    extra: list = field(default_factory=list)
    extra_fraction: float = 0.0
    data_files: list = field(default_factory=list)
    audio_seen: str = ""


def pretraining_audio(recipe: dict, spec: dict, run_dir: Path) -> PretrainAudio:
    """FSDD's train split (README split: index 5-49; test clips are never seen) and, with ``data.synthetic``
    in the recipe (``n``, ``seed``, ``flite_fraction``, ``sample_rate`` of :class:`SynthConfig`, and
    ``fraction``: the share of segments drawn from it), a synthesized corpus built under ``run_dir/synthetic``."""
    data = recipe.get("data", {})
    wavs, _, _, items = load_fsdd("train", spec, limit=data.get("limit"))
    synth = dict(data.get("synthetic") or {})
    seen = (f"FSDD train split{'' if synth else ' only'} ({len(items)} clips, index 5-49; 8 kHz resampled to "
            f"16 kHz), random concatenations of {float(data.get('segment_seconds', 2.0)):.1f} s; no test clip")
    audio = PretrainAudio(wavs, data_files=[manifest_entry(items, "train")], audio_seen=seen)
    if not synth:
        audio.audio_seen += ", no synthetic speech"
        return audio
    fraction = float(synth.pop("fraction", 0.5))
    cfg = SynthConfig(**synth)
    corpus = build_corpus(Path(run_dir) / "synthetic", cfg)
    audio.extra, audio.extra_fraction = load_corpus(corpus, spec), fraction
    entry = corpus_manifest_entry(corpus)
    audio.data_files.append(entry)
    audio.audio_seen += (f"; plus {entry['seconds'] / 60:.0f} min of synthesized speech ({cfg.n} utterances: "
                         f"{1 - cfg.flite_fraction:.0%} espeak-ng English accents x variants, {cfg.flite_fraction:.0%} "
                         f"flite voices; written at {cfg.sample_rate} Hz), the source of {fraction:.0%} of the segments")
    return audio


class EpochSeed(L.Callback):
    """Fresh random segment concatenations every epoch (and reproducible after --resume)."""

    def __init__(self, ds: SegmentDataset):
        self.ds = ds

    def on_train_epoch_start(self, trainer, pl_module):
        self.ds.epoch = trainer.current_epoch


def segment_loader(recipe: dict, audio: PretrainAudio, sample_rate: int, transform, default_seconds: float,
                   default_batch: int, trainer_kwargs: dict):
    """``(dataset, loader, segment samples, global batch, optimizer steps per epoch)``. The recipe's
    ``batch_size`` is the global batch: the loader holds this process's share, while the pool doubling, the
    steps per epoch and the audio-seen metrics count global batches (under DDP Lightning swaps in a
    DistributedSampler, so the per-process loader's len() is not the step count)."""
    data = recipe.get("data", {})
    seg = int(float(data.get("segment_seconds", default_seconds)) * sample_rate)
    n_seg = int(data.get("segments_per_epoch", 512))
    batch = int(recipe.get("batch_size", default_batch))
    pool = int(data.get("pool_segments", 0))
    doubling = int(data.get("pool_doubling_steps", 0)) * batch  # recipe counts optimizer steps
    ds = SegmentDataset(audio.wavs, seg, n_seg, seed=int(recipe.get("seed", 0)), transform=transform, pool=pool,
                        pool_doubling=doubling, extra=audio.extra, extra_fraction=audio.extra_fraction)
    loader = DataLoader(ds, batch_size=per_device_batch(batch, trainer_kwargs), shuffle=False, drop_last=True)
    return ds, loader, seg, batch, n_seg // batch  # drop_last: full global batches only


def run_and_publish(task, model, recipe: dict, run_dir: Path, trainer_kwargs: dict, ds, loader, seg: int,
                    batch: int, audio: PretrainAudio, grad_clip=None) -> Path:
    kw = dict(trainer_kwargs)
    epochs = int(kw.pop("max_epochs", recipe.get("epochs", 10)))
    kw.setdefault("callbacks", []).append(EpochSeed(ds))
    trainer = fit(task, loader, run_dir, max_epochs=epochs, gradient_clip_val=grad_clip, **kw)
    secs = training_seconds(trainer)
    sr = model.input_spec["sample_rate"]
    steps = int(task.global_step)
    audio_seconds = steps * batch * seg / sr
    model.eval()
    metrics = {"train_seconds": round(secs, 1), "steps": steps, "epochs": epochs,
               "audio_seconds_seen": round(audio_seconds, 1),
               "audio_seconds_per_second": round(audio_seconds / max(secs, 1e-9), 2),
               "torch_threads": torch.get_num_threads()}
    ckpt = publish_run(model, Path(run_dir) / "checkpoint", card=dict(recipe.get("card", {})),
                       provenance={"recipe": recipe, "seed": int(recipe.get("seed", 0)),
                                   "data_files": audio.data_files, "metrics": metrics,
                                   "audio_seen": audio.audio_seen}, trainer=trainer)
    (Path(run_dir) / "pretrain_metrics.json").write_text(json.dumps(metrics, indent=2))
    return ckpt
