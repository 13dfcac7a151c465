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

The layers are s3prl's BERT layers (:class:`EncoderLayer`, with ``nn.TransformerEncoderLayer``'s parameter names):
dropout on the embeddings, the attention probabilities, the attention output and the feed-forward output, none on
the feed-forward activation (which ``nn.TransformerEncoderLayer``, used here before, adds). Dropout masks are drawn
with ``torch.rand`` (:func:`dropout`; same distribution as ``nn.Dropout``, other draws, 2-3x cheaper on CPU).
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from fmzoo.core import HubMixin
from fmzoo.core.errors import InputSpecError
from fmzoo.core.runtime import generator

from ..spec import AudioSpec, LogMelInput, cmvn, deltas, log_mel, s3prl_log_mel, validate_waveform

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


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, as ``F.dropout``: each entry kept with probability 1 - p and scaled by 1 / (1 - p). The
    keep mask is ``torch.rand >= p`` (uniform floats on a 2**-24 grid) instead of ``bernoulli_``, whose CPU kernel
    is 2-3x slower per element; the distribution is the same (to 2**-24 in p), the random draws differ."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    return x * (torch.rand(x.shape, dtype=x.dtype, device=x.device) >= p).to(x.dtype).mul_(1.0 / (1.0 - p))


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameters (``in_proj_weight`` stacking the
    query, key and value projections, ``in_proj_bias``, ``out_proj``) and initialisation, so checkpoints and seeds
    carry over. Training with attention dropout: softmax(q k^T / sqrt(d) + mask), dropped, times v (BERT's
    attention, which PyTorch's own math path also computes); otherwise ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, dropout_p: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden_size {dim} is not divisible by num_attention_heads {heads}")
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout_p
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)  # drawn before in_proj_weight, as in nn.MultiheadAttention
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b, t, 3, self.heads, self.head_dim) \
            .permute(2, 0, 3, 1, 4).unbind(0)  # 3 x [B, H, T, hd]
        if self.training and self.dropout > 0:
            scores = torch.matmul(q * (1.0 / math.sqrt(self.head_dim)), k.transpose(-1, -2))
            if pad is not None:
                scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
            y = torch.matmul(dropout(torch.softmax(scores, dim=-1), self.dropout, True), v)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None if pad is None else ~pad[:, None, None, :])
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """A post-LN BERT layer (s3prl's TransformerLayer): x = LN(x + drop(attn(x))); x = LN(x + drop(W2 gelu(W1 x))).
    Parameter names are those of ``nn.TransformerEncoderLayer`` (the shipped checkpoints' keys). Unlike
    ``nn.TransformerEncoderLayer``, and like s3prl's TERA (its TransformerIntermediate has no dropout), there is no
    dropout on the feed-forward activation."""

    def __init__(self, dim: int, heads: int, ffn: int, hidden_dropout: float, attention_dropout: float, eps: float):
        super().__init__()
        self.self_attn = SelfAttention(dim, heads, attention_dropout)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.hidden_dropout = hidden_dropout

    def forward(self, x: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        p, train = self.hidden_dropout, self.training
        x = self.norm1(x + dropout(self.self_attn(x, src_key_padding_mask), p, train))
        return self.norm2(x + dropout(self.linear2(F.gelu(self.linear1(x))), p, train))


class TERA(nn.Module, HubMixin):
    """TERA encoder + reconstruction head. ``forward(feats, lengths)`` -> dict(hidden_states, prediction)."""

    input_spec_class = LogMelInput

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
        self.input_dropout = hidden_dropout
        self.layers = nn.ModuleList([
            EncoderLayer(hidden_size, num_attention_heads, intermediate_size, hidden_dropout, attention_dropout,
                         layer_norm_eps)
            for _ in range(num_hidden_layers)
        ])
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
        x = dropout(self.input_norm(x), self.input_dropout, self.training)
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

