"""What the speech methods share: FSDD-train segments (plus, if the recipe asks, synthesized speech, or the user's
own folder of WAV files), the segment loader and the ``SpeechMethod`` base on ``fmzoo.core.Method``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import lightning as L
import torch
from fmzoo.core.method import Method, PretrainData
from fmzoo.core.training import fit, per_device_batch, training_seconds
from torch.utils.data import DataLoader

from ..data.folder import load_audio_folder
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


class SpeechMethod(Method):
    """What both speech methods share on top of ``fmzoo.core.Method``: recipes keep ``batch_size`` (the global
    batch) and ``epochs`` at the top level and the optimiser values under ``optim``; the model is built first (its
    input spec sets the rate the audio is read at, and its initialisation draws from the seeded global stream before
    anything else, as the functions this replaces did); the segment loader is unshuffled (segments are drawn on the
    fly from (seed, epoch, index)) and keeps full global batches; the metrics are the run's time and audio seen.

    ``--data PATH``: a folder of WAV files (recursive; or one .wav file) replaces the recipe's dataset (FSDD and any
    synthesized speech); the clips are read and resampled as the downstream hooks read a labelled folder."""

    recipe_sections = ("epochs", "batch_size", "optim")
    # the nested keys both methods read (each adds ``model``, its ``optim`` and its own sections): ``data`` as
    # ``pretraining_audio`` / ``segment_loader`` read it (``dataset`` names the one corpus there is, ``validate``
    # checks it); ``train`` only the Lightning values the core applies (the batch and length are the top-level
    # ``batch_size`` / ``epochs``; clipping is ``optim.grad_clip``); ``evaluate`` is not read
    common_keys: ClassVar[dict] = {
        "data": ("dataset", "limit", "synthetic", "segment_seconds", "segments_per_epoch", "pool_segments",
                 "pool_doubling_steps"),
        "train": ("precision", "gradient_clip_algorithm"),
        "evaluate": (),
    }
    # ``data.synthetic``: SynthConfig's fields and the share of segments drawn from it
    synthetic_keys: ClassVar[tuple] = ("fraction", *(f.name for f in fields(SynthConfig)))
    pretraining_corpus: ClassVar[str] = "fsdd-train"  # the only ``data.dataset`` the hooks read
    default_seconds: ClassVar[float] = 2.0  # segment length without data.segment_seconds
    default_grad_clip: ClassVar[float | None] = None  # without optim.grad_clip
    default_epochs = 10

    @classmethod
    def validate(cls, recipe: dict) -> None:
        from fmzoo.core import RecipeError

        super().validate(recipe)
        data = recipe.get("data") or {}
        where = f"recipe {recipe.get('name')!r}"
        if data.get("dataset", cls.pretraining_corpus) != cls.pretraining_corpus:
            raise RecipeError(f"{where}: data.dataset must be {cls.pretraining_corpus!r} (FSDD's train split, plus "
                              f"data.synthetic; --data PATH for other audio), got {data['dataset']!r}")
        synth = data.get("synthetic")
        if synth is not None:
            if not isinstance(synth, dict):
                raise RecipeError(f"{where}: data.synthetic must be a mapping, got {type(synth).__name__}")
            unknown = sorted(str(k) for k in set(synth) - set(cls.synthetic_keys))
            if unknown:
                raise RecipeError(f"{where} (method {recipe.get('method')!r}): unknown key(s) in 'data.synthetic': "
                                  f"{', '.join(f'data.synthetic.{k}' for k in unknown)}; it takes "
                                  f"{', '.join(sorted(cls.synthetic_keys))}")

    def build_model(self):
        raise NotImplementedError

    def transform(self, model):
        raise NotImplementedError

    def global_batch(self) -> int:
        return int(self.recipe.get("batch_size", self.default_batch_size))

    def max_epochs(self) -> int:
        return int(self.recipe.get("epochs", self.default_epochs))

    @property
    def optim(self) -> dict:
        return dict(self.recipe.get("optim") or {})

    def data(self) -> PretrainData:
        model = self.build_model()
        if self.data_path is None:
            audio = pretraining_audio(self.recipe, model.input_spec, self.run_dir)
        else:
            wavs, files, what = load_audio_folder(self.data_path, model.input_spec)
            seconds = float(self.recipe.get("data", {}).get("segment_seconds", self.default_seconds))
            audio = PretrainAudio(wavs, data_files=list(files),
                                  audio_seen=f"{what}, random concatenations of {seconds:.1f} s")
        self.prepare(model, audio)
        sr = model.input_spec["sample_rate"]
        ds, _, seg, _, steps = segment_loader(self.recipe, audio, sr, self.transform(model), self.default_seconds,
                                                  self.default_batch_size, {})
        return PretrainData(ds, files=audio.data_files, description=audio.audio_seen,
                            extra={"model": model, "audio": audio, "segment": seg, "steps_per_epoch": steps})

    def prepare(self, model, audio: PretrainAudio) -> None:
        """Anything the model takes from the training audio before the run (TERA: global CMVN statistics)."""

    def model(self, data: PretrainData):
        return data.extra["model"]

    def total_steps(self, data: PretrainData, max_epochs: int) -> int:
        return data.extra["steps_per_epoch"] * max_epochs  # full global batches only (drop_last)

    def loader(self, data: PretrainData, batch_size: int):
        return DataLoader(data.dataset, batch_size=batch_size, shuffle=False, drop_last=True)

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict):
        kw = dict(trainer_kwargs)
        kw.setdefault("callbacks", []).append(EpochSeed(loader.dataset))
        self._trainer = fit(task, loader, self.run_dir, max_epochs=max_epochs,
                            gradient_clip_val=self.optim.get("grad_clip", self.default_grad_clip), **kw)
        self._task, self._epochs = task, max_epochs
        return self._trainer

    def evaluate(self, model, data: PretrainData) -> dict:
        secs = training_seconds(self._trainer)
        steps = int(self._task.global_step)
        audio_seconds = steps * self.global_batch() * data.extra["segment"] / model.input_spec["sample_rate"]
        metrics = {"train_seconds": round(secs, 1), "steps": steps, "epochs": self._epochs,
                   "audio_seconds_seen": round(audio_seconds, 1),
                   "audio_seconds_per_second": round(audio_seconds / max(secs, 1e-9), 2),
                   "torch_threads": torch.get_num_threads()}
        (self.run_dir / "pretrain_metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics

    def card(self, data: PretrainData, metrics: dict) -> dict:
        card = dict(self.recipe.get("card") or {})  # no default title (as the shipped runs' cards)
        if self.citation:
            card.setdefault("citation", self.citation)
        card["training_data"] = data.description if self.data_path is not None else card.get(
            "training_data", data.description)
        return card

    def provenance(self, data: PretrainData) -> dict:
        # data_files as they are: FSDD's and the synthetic corpus's manifest entries are dicts (the core's default
        # would write their str()); the user's WAV files are paths, hashed one by one
        return {"data_files": data.files, "audio_seen": data.extra["audio"].audio_seen}
