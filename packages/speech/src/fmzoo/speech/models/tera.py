"""TERA: Self-Supervised Learning of Transformer Encoder Representation for Speech (Liu, Li, Lee; IEEE/ACM
TASLP 2021).

A Transformer encoder on acoustic frames (80-d log-mel, 25 ms / 10 ms, per-utterance CMVN), trained to
reconstruct (L1) frames altered along time, frequency and magnitude by a stochastic policy
(:func:`tera_alteration`):
- time: ``round(T * 0.15 / 7)`` starts, blocks of 7 consecutive frames; per utterance the blocks are
  zeroed (80%), replaced by other random blocks (10%) or left unchanged (10%);
- frequency (channel): one block of consecutive channels of width uniform in [0, 0.2 * D] set to zero;
- magnitude: with probability 0.15, Gaussian noise N(0, 0.2^2) added to every frame of the utterance.
The loss is L1 between the prediction and the original frames over the altered entries (all entries of an
utterance that received noise). BASE: 3 layers, 768 hidden, 12 heads, 3072 FFN, dropout 0.3, sinusoidal
position encoding, post-LN (the paper's table I / s3prl logMelBase-T-F-M config).
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn as nn
from fmzoo.core import HubMixin
from fmzoo.core.errors import InputSpecError
from fmzoo.core.runtime import generator

from ..spec import AudioSpec, cmvn, deltas, log_mel, s3prl_log_mel, validate_waveform

__all__ = ["TERA", "tera_alteration"]


def sinusoidal_positions(n: int, dim: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sinusoidal position table [n, dim], computed in ``dtype`` and returned as float32 (float64 is s3prl's
    numpy table: angles of positions up to 1500 lose ~1e-4 rad in float32)."""
    pos = torch.arange(n, dtype=dtype)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=dtype) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim, dtype=dtype)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return pe.float()


class TERA(nn.Module, HubMixin):
    """TERA encoder + reconstruction head. ``forward(feats, lengths)`` -> dict(hidden_states, prediction)."""

    def __init__(
        self,
        input_dim: int = 80,
        hidden_size: int = 768,
        num_hidden_layers: int = 3,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_dropout: float = 0.3,
        attention_dropout: float = 0.3,
        layer_norm_eps: float = 1e-12,
        max_positions: int = 1500,
        sample_rate: int = 16000,
        n_mels: int = 80,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        delta_order: int = 0,
        cmvn: str = "utterance",
        resample: bool = True,
        frontend: str = "fmzoo",
        target_level: float | None = None,
    ):
        super().__init__()
        if input_dim != n_mels * (delta_order + 1):
            raise ValueError(f"input_dim {input_dim} != n_mels {n_mels} x (delta_order {delta_order} + 1)")
        self.input_dim, self.hidden_size_, self.max_positions = input_dim, hidden_size, max_positions
        if cmvn not in ("utterance", "global", "none"):
            raise ValueError(f"cmvn must be 'utterance', 'global' or 'none', got {cmvn!r}")
        if frontend not in ("fmzoo", "s3prl"):
            raise ValueError(f"frontend must be 'fmzoo' or 's3prl', got {frontend!r}")
        if frontend == "s3prl" and (delta_order or cmvn == "global"):
            raise ValueError("the s3prl frontend supports delta_order=0 and cmvn 'utterance' or 'none' only")
        self.feat_cfg = dict(sample_rate=sample_rate, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms,
                             delta_order=delta_order, cmvn=cmvn)
        if frontend == "s3prl":  # s3prl's OnlinePreprocessor (released TERA checkpoints): spec.s3prl_log_mel
            self.feat_cfg.update(frontend="s3prl", target_level=target_level)
        # global CMVN statistics (training-set mean/std per channel), saved with the weights
        self.register_buffer("cmvn_mean", torch.zeros(input_dim))
        self.register_buffer("cmvn_std", torch.ones(input_dim))
        self.spec_transform = nn.Linear(input_dim, hidden_size)
        pos_dtype = torch.float64 if frontend == "s3prl" else torch.float32  # float32: the shipped checkpoints
        self.register_buffer("pos_enc", sinusoidal_positions(max_positions, hidden_size, pos_dtype), persistent=False)
        self.input_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.input_dropout = nn.Dropout(hidden_dropout)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(hidden_size, num_attention_heads, intermediate_size, dropout=hidden_dropout,
                                       activation="gelu", layer_norm_eps=layer_norm_eps, batch_first=True,
                                       norm_first=False)
            for _ in range(num_hidden_layers)
        ])
        for layer in self.layers:  # attention dropout separately from the residual dropout, as in BERT
            layer.self_attn.dropout = attention_dropout
        self.head = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(),
                                  nn.LayerNorm(hidden_size, eps=layer_norm_eps), nn.Linear(hidden_size, input_dim))
        self.apply(self._init)
        win = int(round(sample_rate * win_ms / 1000))
        self.input_spec = {
            **AudioSpec(sample_rate=sample_rate, resample=resample, min_seconds=win / sample_rate).to_dict(),
            "features": {"type": "log-mel", **self.feat_cfg},
        }

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def num_layers(self) -> int:
        return len(self.layers) + 1

    @property
    def hidden_size(self) -> int:
        return self.hidden_size_

    # ------------------------------------------------------------------------------------------- input
    def featurize(self, wav: torch.Tensor) -> torch.Tensor:
        """Normalised waveform [S] at the spec's rate -> features [frames, input_dim]."""
        c = self.feat_cfg
        if c.get("frontend") == "s3prl":
            return s3prl_log_mel(wav, c["sample_rate"], c["n_mels"], c["win_ms"], c["hop_ms"],
                                 target_level=c["target_level"], cmvn=c["cmvn"] == "utterance")
        f = log_mel(wav, c["sample_rate"], c["n_mels"], c["win_ms"], c["hop_ms"])
        if c["delta_order"]:
            f = deltas(f, c["delta_order"])
        if c["cmvn"] == "utterance":
            return cmvn(f)
        if c["cmvn"] == "global":
            return (f - self.cmvn_mean) / self.cmvn_std
        return f

    def raw_features(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.feat_cfg
        f = log_mel(wav, c["sample_rate"], c["n_mels"], c["win_ms"], c["hop_ms"])
        return deltas(f, c["delta_order"]) if c["delta_order"] else f

    @torch.no_grad()
    def set_global_cmvn(self, wavs: list[torch.Tensor]) -> None:
        """Global CMVN statistics from training waveforms (used when cmvn='global')."""
        f = torch.cat([self.raw_features(w) for w in wavs])
        self.cmvn_mean.copy_(f.mean(0))
        self.cmvn_std.copy_(f.std(0) + 1e-5)

    def prepare(self, wav, sample_rate: int, *, resample_ok: bool | None = None) -> torch.Tensor:
        """Validate a waveform against the input spec and return its feature frames [T, input_dim]."""
        x = validate_waveform(wav, sample_rate, self.input_spec, resample_ok=resample_ok)
        return self.featurize(x)

    # ------------------------------------------------------------------------------------------- forward
    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None, predict: bool = True) -> dict:
        if feats.dim() != 3 or feats.shape[-1] != self.input_dim:
            raise InputSpecError(f"TERA expects features [batch, frames, {self.input_dim}], got {tuple(feats.shape)}")
        if not torch.isfinite(feats).all():
            raise InputSpecError("TERA: features contain NaN or infinite values")
        b, t, _ = feats.shape
        if t > self.max_positions:
            raise InputSpecError(f"TERA: {t} frames exceed max_positions={self.max_positions}")
        pad = None
        if lengths is not None:
            pad = torch.arange(t)[None] >= lengths[:, None]  # True = padding
        x = self.spec_transform(feats) + self.pos_enc[:t][None]
        x = self.input_dropout(self.input_norm(x))
        hidden = [x]
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
            hidden.append(x)
        out = {"hidden_states": hidden, "last_hidden_state": x, "lengths": lengths}
        if predict:
            out["prediction"] = self.head(x)
        return out

    @torch.no_grad()
    def encode(self, feats: torch.Tensor, lengths: torch.Tensor | None = None):
        out = self.forward(feats, lengths, predict=False)
        return out["hidden_states"], lengths

    def reconstruction_loss(self, feats, lengths=None, generator: random.Random | None = None, **policy) -> dict:
        """Alter ``feats`` by the TERA policy and return the L1 loss over the altered entries."""
        altered, label = tera_alteration(feats, lengths, rng=generator, **policy)
        pred = self.forward(altered, lengths)["prediction"]
        sel = label
        if lengths is not None:
            sel = sel & (torch.arange(feats.shape[1])[None, :, None] < lengths[:, None, None])
        n = sel.sum().clamp(min=1)
        loss = ((pred - feats).abs() * sel).sum() / n
        return {"loss": loss, "altered_fraction": sel.float().mean()}


def _blocks(starts: torch.Tensor, width: int) -> torch.Tensor:
    return (starts[:, None] + torch.arange(width)[None]).reshape(-1)


def tera_alteration(
    feats: torch.Tensor,
    lengths: torch.Tensor | None = None,
    mask_proportion: float = 0.15,
    consecutive: int = 7,
    freq_proportion: float = 0.2,
    noise_proportion: float = 0.15,
    noise_std: float = 0.2,
    rng: random.Random | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TERA's stochastic alteration policy. Returns (altered copy, bool label [B, T, D] of altered entries)."""
    # the policy's own random streams (model-internal, not pipeline seeding): ``rng`` draws the per-utterance
    # choices and seeds the torch generator of the block positions and noise, so a task that owns ``rng``
    # (methods/tera.TERATask, one per DDP rank) gets alterations independent of the global torch stream
    rng = rng or random.Random(int(torch.randint(0, 2**31 - 1, ()).item()))
    g = generator(rng.randrange(2**31))
    x = feats.clone()
    b, t, d = feats.shape
    label = torch.zeros(b, t, d, dtype=torch.bool)
    for i in range(b):
        n = int(lengths[i]) if lengths is not None else t
        # time alteration
        num = round(n * mask_proportion / consecutive)
        valid = max(n - consecutive, 0)
        if num > 0 and n >= consecutive:
            starts = torch.randperm(valid + 1, generator=g)[:num]
            idx = _blocks(starts, consecutive)
            dice = rng.random()
            if dice < 0.8:
                x[i, idx] = 0.0
            elif dice < 0.9:
                rand_idx = _blocks(torch.randperm(valid + 1, generator=g)[:num], consecutive)
                x[i, idx] = feats[i, rand_idx]
            label[i, idx] = True
        # frequency (channel-block) alteration
        if freq_proportion > 0:
            width = rng.randint(0, int(round(d * freq_proportion)))
            if width > 0:
                start = rng.randint(0, d - width)
                x[i, :n, start : start + width] = 0.0
                label[i, :n, start : start + width] = True
        # magnitude alteration
        if noise_proportion > 0 and rng.random() < noise_proportion:
            x[i, :n] = x[i, :n] + noise_std * torch.randn(n, d, generator=g)
            label[i, :n] = True
    return x, label

