"""wav2vec 2.0 (Baevski et al., NeurIPS 2020) in the Hugging Face ``Wav2Vec2ForPreTraining`` layout.

Parameter names, config keys and numerics follow ``transformers``' Wav2Vec2 so that a Hugging Face
checkpoint (``config.json`` + ``model.safetensors``, e.g. ``facebook/wav2vec2-base``) loads unchanged
(``fmzoo.speech.weights``; ``from_pretrained`` of such a folder converts it once) and ours save back in that
format (:meth:`Wav2Vec2.save_hf`). Written from the paper and the published config semantics; tested against
``transformers`` with identical random weights.

Parts (paper section 2):
- feature encoder: 7 temporal convolutions (kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2 -> 20 ms hop,
  25 ms receptive field at 16 kHz), GroupNorm on the first layer ("group") or LayerNorm on all ("layer"), GELU;
- feature projection: LayerNorm + Linear to the model width (+ dropout);
- span masking: a proportion p = 0.065 of time steps are sampled as starts and the M = 10 following steps are
  replaced by a learned vector (HF's ``mask_time_prob`` counts p * M = 0.65, the fairseq convention);
- context network: convolutional relative positional embedding (kernel 128, 16 groups, weight norm, GELU),
  Transformer (post-LN "base" or pre-LN "stable" variant), LayerDrop;
- quantizer: G = 2 codebooks of V = 320 entries, Gumbel-softmax (hard, straight-through) with temperature
  annealed by the training method, argmax at evaluation;
- loss: contrastive over K = 100 distractors sampled from other masked steps of the same utterance
  (cosine similarity / kappa = 0.1) + alpha = 0.1 * diversity loss (G*V - perplexity) / (G*V).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from fmzoo.core import HubMixin
from fmzoo.core.errors import InputSpecError, UsageError
from fmzoo.core.spec import validate_input_spec
from safetensors.torch import save_file

from ..spec import AudioSpec, WaveformInput, validate_waveform

__all__ = ["Wav2Vec2", "compute_span_mask", "sample_negative_indices", "HF_CONFIG_DEFAULTS", "PREPROCESSOR_NAME",
           "TOKENIZER_CONFIG_NAME", "VOCAB_NAME", "CTC_SPECIAL_TOKENS", "ctc_greedy_decode"]

PREPROCESSOR_NAME = "preprocessor_config.json"  # transformers' feature-extractor file (published by the core hub)
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"  # read by transformers' AutoTokenizer (and so by pipeline())
VOCAB_NAME = "vocab.json"  # Wav2Vec2CTCTokenizer's vocabulary (token -> id), written for a model with a CTC head

# Wav2Vec2CTCTokenizer's special tokens (its defaults; the character releases, e.g. facebook/wav2vec2-base-960h, use
# them): the pad token is the CTC blank, the word delimiter is decoded as a space
CTC_SPECIAL_TOKENS: dict = dict(pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                word_delimiter_token="|", do_lower_case=False)

# transformers' Wav2Vec2Config keys this implementation honours, at the paper's BASE pretraining values
# (fairseq wav2vec2_base_librispeech.yaml / the paper's section 4.2 and appendix B).
HF_CONFIG_DEFAULTS: dict = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    hidden_dropout=0.1,
    activation_dropout=0.0,
    attention_dropout=0.1,
    feat_proj_dropout=0.1,
    feat_quantizer_dropout=0.1,
    layerdrop=0.05,
    layer_norm_eps=1e-5,
    feat_extract_norm="group",
    feat_extract_activation="gelu",
    conv_dim=[512, 512, 512, 512, 512, 512, 512],
    conv_stride=[5, 2, 2, 2, 2, 2, 2],
    conv_kernel=[10, 3, 3, 3, 3, 2, 2],
    conv_bias=False,
    num_conv_pos_embeddings=128,
    num_conv_pos_embedding_groups=16,
    do_stable_layer_norm=False,
    mask_time_prob=0.65,
    mask_time_length=10,
    mask_time_min_masks=2,
    mask_feature_prob=0.0,
    num_codevectors_per_group=320,
    num_codevector_groups=2,
    contrastive_logits_temperature=0.1,
    num_negatives=100,
    codevector_dim=256,
    proj_codevector_dim=256,
    diversity_loss_weight=0.1,
)

_ACTS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "swish": F.silu}


def ctc_greedy_decode(ids, vocab: list[str], tokens: dict | None = None) -> str:
    """Greedy CTC decoding of one utterance's frame-wise argmax ids, as transformers' ``Wav2Vec2CTCTokenizer.decode``
    (``skip_special_tokens=False``): merge repeats, drop the blank (pad token), the word delimiter becomes a space,
    strip, lower-case where the tokenizer says so."""
    t = {**CTC_SPECIAL_TOKENS, **(tokens or {})}
    out, prev = [], None
    for i in (int(v) for v in ids):
        if i < 0 or i >= len(vocab):
            raise InputSpecError(f"CTC token id {i} outside the vocabulary of {len(vocab)} tokens")
        tok = vocab[i]
        if tok != prev and tok != t["pad_token"]:
            out.append(" " if tok == t["word_delimiter_token"] else tok)
        prev = tok
    text = "".join(out).strip()
    return text.lower() if t["do_lower_case"] else text


def _act(name: str):
    if name not in _ACTS:
        raise ValueError(f"activation {name!r} not supported; expected one of {sorted(_ACTS)}")
    return _ACTS[name]


# ----------------------------------------------------------------------------------------------- masking


def compute_span_mask(
    batch_size: int,
    seq_len: int,
    mask_prob: float,
    mask_length: int,
    lengths: list[int] | None = None,
    min_masks: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Span masking: about ``mask_prob * T / mask_length`` spans of ``mask_length`` steps per utterance
    (``mask_prob`` = p * M in the paper's terms, so 0.65 for p = 0.065, M = 10); spans may overlap.
    Returns a bool tensor ``[B, T]``. ``lengths``: valid (unpadded) lengths per row."""
    if mask_length < 1:
        raise ValueError("mask_length must be >= 1")
    lengths = lengths or [seq_len] * batch_size
    mask = torch.zeros(batch_size, seq_len, dtype=torch.bool)
    for b, n in enumerate(lengths):
        n = int(n)
        if n < mask_length:  # an utterance shorter than one span gets no mask
            continue
        eps = float(torch.rand((), generator=generator))
        num = max(int(mask_prob * n / mask_length + eps), min_masks)
        num = min(num, n // mask_length, n - mask_length + 1)
        starts = torch.randperm(n - mask_length + 1, generator=generator)[:num]
        idx = (starts[:, None] + torch.arange(mask_length)[None]).reshape(-1)
        mask[b, idx] = True
    return mask


def sample_negative_indices(
    mask: torch.Tensor, num_negatives: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """For every masked step, ``num_negatives`` indices (into the flattened ``[B*T]`` axis) drawn uniformly
    from the *other* masked steps of the same utterance. Unmasked steps get index 0 (ignored by the loss)."""
    b_sz, t_len = mask.shape
    out = torch.zeros(b_sz, t_len, num_negatives, dtype=torch.long)
    for b in range(b_sz):
        pos = torch.nonzero(mask[b], as_tuple=False).reshape(-1)
        n = pos.numel()
        if n < 2:
            continue
        # draw from n - 1 candidates and skip the positive itself: uniform over the others
        r = torch.randint(0, n - 1, (n, num_negatives), generator=generator)
        r = r + (r >= torch.arange(n)[:, None]).long()
        out[b, pos] = pos[r] + b * t_len
    return out


# ----------------------------------------------------------------------------------------------- modules


def _masked_instance_norm(x: torch.Tensor, lengths: torch.Tensor, gn: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm(C, C) over the first ``lengths[b]`` frames of each row (padded frames normalised with the same
    statistics; they are masked downstream)."""
    m = (torch.arange(x.shape[-1], device=x.device)[None] < lengths[:, None]).to(x.dtype)[:, None]  # [B, 1, T]
    n = m.sum(-1, keepdim=True).clamp(min=1)
    mean = (x * m).sum(-1, keepdim=True) / n
    var = ((x - mean).pow(2) * m).sum(-1, keepdim=True) / n
    y = (x - mean) / torch.sqrt(var + gn.eps)
    return y * gn.weight[None, :, None] + gn.bias[None, :, None]


class _ConvLayer(nn.Module):
    def __init__(self, cin, cout, kernel, stride, bias, norm: str | None, act: str):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel_size=kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.layer_norm = nn.GroupNorm(cout, cout, affine=True)
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(cout, elementwise_affine=True)
        self.act = _act(act)

    def forward(self, x, lengths: torch.Tensor | None = None):
        """``lengths`` [B]: valid output frames per row of a right-padded batch. The group norm (one group per
        channel, statistics over time) then uses valid frames only, so a clip's features do not depend on how
        much padding its batch mates force on it (transformers' Wav2Vec2 includes the padding: see the
        FeatureEncoder docstring)."""
        x = self.conv(x)
        if self.norm_kind == "group" and lengths is not None:
            x = _masked_instance_norm(x, lengths, self.layer_norm)
        elif self.norm_kind == "group":
            x = self.layer_norm(x)
        elif self.norm_kind == "layer":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        return self.act(x)


class FeatureEncoder(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        if c["feat_extract_norm"] not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm must be 'group' or 'layer', got {c['feat_extract_norm']!r}")
        layers = []
        cin = 1
        for i, (d, k, s) in enumerate(zip(c["conv_dim"], c["conv_kernel"], c["conv_stride"], strict=True)):
            norm = ("group" if i == 0 else None) if c["feat_extract_norm"] == "group" else "layer"
            layers.append(_ConvLayer(cin, d, k, s, c["conv_bias"], norm, c["feat_extract_activation"]))
            cin = d
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wav, sample_lengths: torch.Tensor | None = None):  # [B, S] -> [B, C, T]
        """``sample_lengths`` [B] (valid samples of a right-padded batch) makes the first layer's group norm
        ignore padding, so every clip's valid frames equal those of the clip run alone. transformers'
        Wav2Vec2FeatureEncoder normalises over the padding too (which is why its docs tell users of
        group-norm checkpoints not to batch with an attention mask); without ``sample_lengths`` this is
        exactly that computation."""
        x = wav[:, None]
        lengths = sample_lengths
        for layer in self.conv_layers:
            if lengths is not None:  # valid frames of this layer's output
                lengths = _conv_out_lengths(lengths, [layer.conv.kernel_size[0]], [layer.conv.stride[0]])
            x = layer(x, lengths if layer.norm_kind == "group" else None)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.layer_norm = nn.LayerNorm(c["conv_dim"][-1], eps=c["layer_norm_eps"])
        self.projection = nn.Linear(c["conv_dim"][-1], c["hidden_size"])
        self.dropout = nn.Dropout(c["feat_proj_dropout"])

    def forward(self, x):
        normed = self.layer_norm(x)
        return self.dropout(self.projection(normed)), normed


class PositionalConvEmbedding(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        k = c["num_conv_pos_embeddings"]
        conv = nn.Conv1d(c["hidden_size"], c["hidden_size"], kernel_size=k, padding=k // 2,
                         groups=c["num_conv_pos_embedding_groups"])
        nn.init.normal_(conv.weight, mean=0.0, std=2 * math.sqrt(1 / (k * c["hidden_size"])))
        nn.init.zeros_(conv.bias)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.remove = 1 if k % 2 == 0 else 0
        self.act = _act(c["feat_extract_activation"])

    def forward(self, x):  # [B, T, D]
        y = self.conv(x.transpose(1, 2))
        if self.remove:
            y = y[:, :, : -self.remove]
        return self.act(y).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden_size {dim} is not divisible by num_attention_heads {heads}")
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, key_padding: torch.Tensor | None = None):
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        attn_mask = None
        if key_padding is not None:  # True = valid
            attn_mask = key_padding[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.intermediate_dropout = nn.Dropout(c["activation_dropout"])
        self.intermediate_dense = nn.Linear(c["hidden_size"], c["intermediate_size"])
        self.act = _act(c["hidden_act"])
        self.output_dense = nn.Linear(c["intermediate_size"], c["hidden_size"])
        self.output_dropout = nn.Dropout(c["hidden_dropout"])

    def forward(self, x):
        x = self.intermediate_dropout(self.act(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class EncoderLayer(nn.Module):
    def __init__(self, c: dict, pre_ln: bool):
        super().__init__()
        self.pre_ln = pre_ln
        self.attention = Attention(c["hidden_size"], c["num_attention_heads"], c["attention_dropout"])
        self.dropout = nn.Dropout(c["hidden_dropout"])
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.feed_forward = FeedForward(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x, key_padding=None):
        if self.pre_ln:
            x = x + self.dropout(self.attention(self.layer_norm(x), key_padding))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.dropout(self.attention(x, key_padding)))
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.pre_ln = bool(c["do_stable_layer_norm"])
        self.layerdrop = c["layerdrop"]
        self.pos_conv_embed = PositionalConvEmbedding(c)
        self.layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout"])
        self.layers = nn.ModuleList([EncoderLayer(c, self.pre_ln) for _ in range(c["num_hidden_layers"])])

    def forward(self, x, key_padding=None):
        """Returns (last hidden state, [input to layer 1, output of each layer])."""
        if key_padding is not None:
            x = x.masked_fill(~key_padding[..., None], 0.0)
        x = x + self.pos_conv_embed(x)
        if not self.pre_ln:
            x = self.layer_norm(x)
        x = self.dropout(x)
        hidden = [x]
        for layer in self.layers:
            if self.training and self.layerdrop > 0 and float(torch.rand(())) < self.layerdrop:
                hidden.append(x)
                continue
            x = layer(x, key_padding)
            hidden.append(x)
        if self.pre_ln:
            x = self.layer_norm(x)
        return x, hidden


class GumbelVectorQuantizer(nn.Module):
    """Product quantization: G codebooks x V entries, chosen by (hard) Gumbel-softmax; concatenated."""

    def __init__(self, c: dict):
        super().__init__()
        g, v = c["num_codevector_groups"], c["num_codevectors_per_group"]
        if c["codevector_dim"] % g:
            raise ValueError(f"codevector_dim {c['codevector_dim']} must be divisible by num_codevector_groups {g}")
        self.num_groups, self.num_vars = g, v
        self.codevectors = nn.Parameter(torch.empty(1, g * v, c["codevector_dim"] // g).uniform_())
        self.weight_proj = nn.Linear(c["conv_dim"][-1], g * v)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        self.temperature = 2.0

    @staticmethod
    def perplexity(probs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """probs [N, G, V]; perplexity of the (masked) marginal per group, summed over groups."""
        if mask is not None:
            m = mask.reshape(-1, 1, 1).to(probs.dtype)
            marginal = (probs * m).sum(0) / m.sum().clamp(min=1)
        else:
            marginal = probs.mean(0)
        return torch.exp(-torch.xlogy(marginal, marginal).sum(-1)).sum()

    def forward(self, x, mask=None):
        b, t, _ = x.shape
        logits = self.weight_proj(x).view(b * t, self.num_groups, self.num_vars)
        if self.training:
            onehot = F.gumbel_softmax(logits.float(), tau=self.temperature, hard=True, dim=-1).type_as(logits)
            ppl = self.perplexity(torch.softmax(logits.float(), dim=-1), mask)
        else:
            onehot = F.one_hot(logits.argmax(-1), self.num_vars).to(logits.dtype)
            ppl = self.perplexity(onehot, mask)
        cb = self.codevectors.view(self.num_groups, self.num_vars, -1)
        q = torch.einsum("ngv,gvd->ngd", onehot, cb).reshape(b, t, -1)
        return q, ppl


class _GradMultiply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class Wav2Vec2Backbone(nn.Module):
    """transformers' ``Wav2Vec2Model`` (submodule ``wav2vec2`` of the pretraining model)."""

    def __init__(self, c: dict):
        super().__init__()
        self.c = c
        self.feature_extractor = FeatureEncoder(c)
        self.feature_projection = FeatureProjection(c)
        if c["mask_time_prob"] > 0 or c.get("mask_feature_prob", 0.0) > 0:
            self.masked_spec_embed = nn.Parameter(torch.empty(c["hidden_size"]).uniform_())
        self.encoder = Encoder(c)


def _conv_out_lengths(lengths: torch.Tensor, kernels, strides) -> torch.Tensor:
    for k, s in zip(kernels, strides, strict=True):
        lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
    return lengths


class Wav2Vec2(nn.Module, HubMixin):
    """wav2vec 2.0 with its pretraining head, parameter-for-parameter ``transformers.Wav2Vec2ForPreTraining``.

    Keyword arguments are transformers ``Wav2Vec2Config`` keys (see ``HF_CONFIG_DEFAULTS``: paper BASE),
    plus the input spec (``sample_rate``, ``resample``, ``do_normalize``: whether the waveform is normalised to zero
    mean / unit variance per utterance, as the release's ``Wav2Vec2FeatureExtractor`` / fairseq ``normalize``
    says) enforced by :meth:`prepare` and used by :meth:`normalize`.

    ``ctc_vocab`` (the tokens in id order) adds the CTC head of ``transformers.Wav2Vec2ForCTC``: ``lm_head`` (Linear
    hidden -> len(ctc_vocab)) after a dropout of ``final_dropout`` on the last hidden state (:meth:`ctc_logits`,
    :meth:`transcribe`); ``ctc_tokens`` overrides ``CTC_SPECIAL_TOKENS`` (blank = pad token, word delimiter). The
    head is what a CTC release (``facebook/wav2vec2-base-960h``) carries; the pretraining head stays beside it (a
    CTC release has no quantizer: it is then freshly initialised). Downstream fine-tuning ignores the CTC head.
    """

    input_spec_class = WaveformInput

    def __init__(self, sample_rate: int = 16000, resample: bool = True, do_normalize: bool = True,
                 ctc_vocab: list[str] | None = None, ctc_tokens: dict | None = None, final_dropout: float = 0.1,
                 **config):
        super().__init__()
        unknown = set(config) - set(HF_CONFIG_DEFAULTS)
        if unknown:
            raise ValueError(f"unknown Wav2Vec2 config keys {sorted(unknown)}; known: {sorted(HF_CONFIG_DEFAULTS)}")
        c = {**HF_CONFIG_DEFAULTS, **config}
        for key in ("conv_dim", "conv_stride", "conv_kernel"):
            c[key] = [int(v) for v in c[key]]
        if not (len(c["conv_dim"]) == len(c["conv_stride"]) == len(c["conv_kernel"])):
            raise ValueError("conv_dim, conv_stride and conv_kernel must have the same length")
        self.config = c
        self.wav2vec2 = Wav2Vec2Backbone(c)
        self.dropout_features = nn.Dropout(c["feat_quantizer_dropout"])
        self.quantizer = GumbelVectorQuantizer(c)
        self.project_hid = nn.Linear(c["hidden_size"], c["proj_codevector_dim"])
        self.project_q = nn.Linear(c["codevector_dim"], c["proj_codevector_dim"])
        self.feature_grad_mult = 1.0  # the paper scales feature-encoder gradients by 0.1 (set by the method)
        self.ctc_vocab = None if ctc_vocab is None else [str(t) for t in ctc_vocab]
        unknown_tokens = set(ctc_tokens or {}) - set(CTC_SPECIAL_TOKENS)
        if unknown_tokens:
            raise ValueError(f"unknown ctc_tokens keys {sorted(unknown_tokens)}; "
                             f"known: {sorted(CTC_SPECIAL_TOKENS)}")
        self.ctc_tokens = {**CTC_SPECIAL_TOKENS, **(ctc_tokens or {})}
        self.final_dropout = float(final_dropout)
        if self.ctc_vocab is not None:
            if len(self.ctc_vocab) < 2 or len(set(self.ctc_vocab)) != len(self.ctc_vocab):
                raise ValueError(f"ctc_vocab: expected at least 2 distinct tokens, got {len(self.ctc_vocab)} "
                                 f"({len(set(self.ctc_vocab))} distinct)")
            if self.ctc_tokens["pad_token"] not in self.ctc_vocab:
                raise ValueError(f"ctc_vocab lacks the CTC blank (pad token {self.ctc_tokens['pad_token']!r})")
            self.ctc_dropout = nn.Dropout(self.final_dropout)
            self.lm_head = nn.Linear(c["hidden_size"], len(self.ctc_vocab))
        rf = self.receptive_field
        self.do_normalize = bool(do_normalize)
        self.input_spec = {
            **AudioSpec(sample_rate=sample_rate, resample=resample, min_seconds=rf / sample_rate).to_dict(),
            "do_normalize": self.do_normalize,
            "features": ("raw waveform, zero mean / unit variance per utterance (Wav2Vec2FeatureExtractor do_normalize)"
                         if self.do_normalize else "raw waveform in [-1, 1], not normalised (do_normalize false)"),
        }
        self._init_convs()

    def _init_convs(self):
        for layer in self.wav2vec2.feature_extractor.conv_layers:
            nn.init.kaiming_normal_(layer.conv.weight)
        nn.init.uniform_(self.wav2vec2.feature_projection.projection.weight,
                         -1 / math.sqrt(self.config["conv_dim"][-1]), 1 / math.sqrt(self.config["conv_dim"][-1]))

    # ------------------------------------------------------------------------------------------- shapes
    @property
    def receptive_field(self) -> int:
        rf = 1
        for k, s in zip(reversed(self.config["conv_kernel"]), reversed(self.config["conv_stride"]), strict=True):
            rf = (rf - 1) * s + k
        return rf

    @property
    def num_layers(self) -> int:
        return self.config["num_hidden_layers"] + 1  # input to the transformer + every layer

    @property
    def hidden_size(self) -> int:
        return self.config["hidden_size"]

    def feature_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        return _conv_out_lengths(sample_lengths, self.config["conv_kernel"], self.config["conv_stride"])

    # ------------------------------------------------------------------------------------------- input
    def prepare(self, wav, sample_rate: int, *, resample_ok: bool | None = None) -> torch.Tensor:
        """Validate one waveform against the input spec (rate, mono, NaN, clipping, length), resample if
        allowed, and normalise it to zero mean / unit variance when the spec says so (as Wav2Vec2FeatureExtractor
        with ``do_normalize`` does)."""
        return self.normalize(validate_waveform(wav, sample_rate, self.input_spec, resample_ok=resample_ok))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The release's waveform normalisation of one validated clip: zero mean / unit variance (eps 1e-7, as
        transformers' feature extractor) with ``do_normalize``, else the waveform unchanged."""
        x = torch.as_tensor(x, dtype=torch.float32)
        if not self.do_normalize:
            return x
        return (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)

    # ------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        mask_time_indices: torch.Tensor | None = None,
        sampled_negative_indices: torch.Tensor | None = None,
        compute_loss: bool | None = None,
    ) -> dict:
        """``input_values`` [B, S] normalised 16 kHz audio; ``attention_mask`` [B, S] (1 = real sample).

        With ``mask_time_indices``/``sampled_negative_indices`` given, they are used as is (as in
        transformers); in training mode without them, a span mask and distractors are drawn. Returns a dict:
        loss (summed over masked steps, as transformers), contrastive_loss, diversity_loss, num_masked,
        projected_states, projected_quantized_states, codevector_perplexity, last_hidden_state,
        hidden_states (list), extract_features, feature_penalty.
        """
        if input_values.dim() != 2:
            raise InputSpecError(f"expected input_values [batch, samples], got shape {tuple(input_values.shape)}")
        if input_values.shape[1] < self.receptive_field:
            raise InputSpecError(
                f"audio too short: {input_values.shape[1]} samples < receptive field {self.receptive_field}"
            )
        c = self.config
        sample_lengths = None if attention_mask is None else attention_mask.long().sum(-1)
        conv = self.wav2vec2.feature_extractor(input_values, sample_lengths)
        if self.feature_grad_mult != 1.0 and self.training:
            conv = _GradMultiply.apply(conv, self.feature_grad_mult)
        feats = conv.transpose(1, 2)  # [B, T, C]
        feature_penalty = feats.float().pow(2).mean()
        b, t, _ = feats.shape
        key_padding = None
        lengths = None
        if attention_mask is not None:
            lengths = self.feature_lengths(attention_mask.long().sum(-1)).clamp(min=0, max=t)
            key_padding = torch.arange(t)[None] < lengths[:, None]
        hidden, extract_features = self.wav2vec2.feature_projection(feats)

        if mask_time_indices is None and self.training and c["mask_time_prob"] > 0:
            mask_time_indices = compute_span_mask(
                b, t, c["mask_time_prob"], c["mask_time_length"],
                lengths=None if lengths is None else lengths.tolist(), min_masks=c["mask_time_min_masks"])
        if mask_time_indices is not None:
            mask_time_indices = mask_time_indices.to(torch.bool)
            hidden = torch.where(mask_time_indices[..., None], self.wav2vec2.masked_spec_embed.to(hidden.dtype), hidden)

        last, hidden_states = self.wav2vec2.encoder(hidden, key_padding)
        out = {"last_hidden_state": last, "hidden_states": hidden_states, "extract_features": extract_features,
               "feature_penalty": feature_penalty, "mask_time_indices": mask_time_indices,
               "feature_lengths": lengths}
        if compute_loss is False:
            return out

        projected = self.project_hid(last)
        q, ppl = self.quantizer(self.dropout_features(extract_features), mask_time_indices)
        q = self.project_q(q)
        out.update(projected_states=projected, projected_quantized_states=q, codevector_perplexity=ppl)

        if sampled_negative_indices is None and mask_time_indices is not None and (self.training or compute_loss):
            sampled_negative_indices = sample_negative_indices(mask_time_indices, c["num_negatives"])
        if sampled_negative_indices is None or mask_time_indices is None:
            return out
        mi = mask_time_indices
        qf = q.reshape(-1, q.shape[-1]).float()  # [B*T, D] every quantized step
        pos_idx = torch.nonzero(mi.reshape(-1), as_tuple=True)[0]  # [n] the masked steps (the only ones with loss)
        cand = torch.cat([pos_idx[:, None], sampled_negative_indices.long()[mi]], 1)  # [n, 1+K]: target, distractors
        # cosine similarity sim(c_t, q) / kappa = (c_t / |c_t|) . q / max(|q|, eps): c_hat against every quantized
        # step once ([n, B*T], one small matmul), then the candidates' entries gathered; the same values as
        # normalising the gathered [n, 1+K, D] targets (transformers' layout) without building or normalising them
        c_hat = F.normalize(projected[mi].float(), dim=-1, eps=1e-8)
        q_norm = torch.linalg.vector_norm(qf, dim=-1).clamp_min(1e-8)
        logits = (c_hat @ qf.t()).gather(1, cand) / q_norm[cand] / c["contrastive_logits_temperature"]
        # a distractor whose quantized vector equals the positive's is ignored: equal rows share an id
        row_id = torch.unique(qf.detach(), dim=0, return_inverse=True)[1]
        neg_is_pos = row_id[cand[:, 1:]] == row_id[pos_idx][:, None]
        logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(neg_is_pos, float("-inf"))], 1)
        contrastive = F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long), reduction="sum")
        n_masked = mask_time_indices.sum()
        gv = c["num_codevectors_per_group"] * c["num_codevector_groups"]
        diversity = (gv - ppl) / gv * n_masked
        out.update(loss=contrastive + c["diversity_loss_weight"] * diversity, contrastive_loss=contrastive,
                   diversity_loss=diversity, num_masked=n_masked,
                   accuracy=(logits.argmax(-1) == 0).float().mean() if logits.shape[0] else torch.tensor(0.0))
        return out

    # ------------------------------------------------------------------------------------------- CTC head
    @property
    def has_ctc_head(self) -> bool:
        return self.ctc_vocab is not None

    def _need_ctc(self):
        if not self.has_ctc_head:
            raise UsageError("this Wav2Vec2 has no CTC head (ctc_vocab is None): load a CTC release with its "
                             "head kept (fmzoo.speech.weights.from_hf(..., ctc_head=True)) or build it with "
                             "ctc_vocab=[...]")

    def ctc_logits(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``Wav2Vec2ForCTC``'s logits ``[B, T, len(ctc_vocab)]``: ``lm_head(dropout(last hidden state))``, with no
        span masking (transformers masks only in training with ``mask_time_prob`` > 0; so does not this)."""
        self._need_ctc()
        t = int(self.feature_lengths(torch.tensor(input_values.shape[-1])))
        no_mask = None if self.training else torch.zeros(input_values.shape[0], t, dtype=torch.bool)
        out = self.forward(input_values, attention_mask=attention_mask, mask_time_indices=no_mask, compute_loss=False)
        return self.lm_head(self.ctc_dropout(out["last_hidden_state"]))

    def ctc_decode(self, logits: torch.Tensor, lengths: torch.Tensor | None = None) -> list[str]:
        """Greedy (argmax) CTC decoding of ``logits`` ``[B, T, V]`` (valid ``lengths`` per row, else all frames), the
        strings transformers' ``Wav2Vec2Processor.batch_decode(logits.argmax(-1))`` gives."""
        self._need_ctc()
        if logits.dim() != 3 or logits.shape[-1] != len(self.ctc_vocab):
            raise InputSpecError(f"expected CTC logits [batch, frames, {len(self.ctc_vocab)}], got "
                                 f"{tuple(logits.shape)}")
        ids = logits.argmax(-1)
        n = [ids.shape[1]] * ids.shape[0] if lengths is None else [int(v) for v in lengths]
        return [ctc_greedy_decode(row[:k].tolist(), self.ctc_vocab, self.ctc_tokens)
                for row, k in zip(ids, n, strict=True)]

    @torch.no_grad()
    def transcribe(self, wavs, sample_rate: int) -> list[str]:
        """Greedy CTC transcripts of waveforms (one array or a list), each checked and normalised by :meth:`prepare`
        and run alone (no padding: a group-norm encoder's statistics would include it)."""
        self._need_ctc()
        wavs = list(wavs) if isinstance(wavs, (list, tuple)) else [wavs]
        return [self.ctc_decode(self.ctc_logits(self.prepare(w, sample_rate)[None]))[0] for w in wavs]

    @torch.no_grad()
    def encode(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Frozen-upstream features: ([B, T, D] per layer, L + 1 of them; valid frame lengths or None)."""
        out = self.forward(input_values, attention_mask=attention_mask, compute_loss=False)
        hs = list(out["hidden_states"])
        if self.config["do_stable_layer_norm"]:
            hs[-1] = out["last_hidden_state"]
        return hs, out["feature_lengths"]

    # ------------------------------------------------------------------------------------------- HF format
    def get_config(self) -> dict:
        """fmzoo's config.json keys plus transformers' Wav2Vec2Config keys at the top level, so that an
        fmzoo checkpoint directory also loads with ``transformers.Wav2Vec2ForPreTraining.from_pretrained``."""
        return {**self.hf_config(), **super().get_config()}

    def hf_config(self) -> dict:
        cfg = {k: self.config[k] for k in HF_CONFIG_DEFAULTS}
        cfg.update(model_type="wav2vec2", architectures=["Wav2Vec2ForPreTraining"],
                   num_feat_extract_layers=len(cfg["conv_dim"]))
        if self.has_ctc_head:  # transformers' Wav2Vec2ForCTC reads these (blank = pad_token_id)
            cfg.update(architectures=["Wav2Vec2ForCTC"], vocab_size=len(self.ctc_vocab),
                       final_dropout=self.final_dropout, pad_token_id=self.ctc_vocab.index(self.ctc_tokens["pad_token"]))
        return cfg

    def tokenizer_files(self) -> dict[str, dict]:
        """The tokenizer files transformers' ``AutoTokenizer`` (and so ``pipeline()``) reads, by file name.

        - With a CTC head: ``vocab.json`` (token -> id) and ``tokenizer_config.json`` naming
          ``Wav2Vec2CTCTokenizer`` with the special tokens, as the CTC releases ship them (facebook/wav2vec2-base-960h);
          ``Wav2Vec2Processor`` / ``AutoProcessor`` then load and ``batch_decode`` gives :meth:`ctc_decode`'s strings.
        - Without: the model reads no text, so its "tokenizer" is the waveform feature extractor:
          ``tokenizer_config.json`` names ``Wav2Vec2FeatureExtractor`` (AutoTokenizer builds that class from ``preprocessor_config.json``), and
          ``pipeline("feature-extraction", model=DIR)``, which calls its tokenizer on the input, normalises the waveform
          and returns the encoder's last hidden state. Without this file transformers 5 builds a Wav2Vec2CTCTokenizer,
          which needs a vocab.json (TypeError), and a vocabulary would make the pipeline treat the waveform as text.
        """
        if not self.has_ctc_head:
            return {TOKENIZER_CONFIG_NAME: {"tokenizer_class": "Wav2Vec2FeatureExtractor"}}
        return {VOCAB_NAME: {tok: i for i, tok in enumerate(self.ctc_vocab)},
                TOKENIZER_CONFIG_NAME: {"tokenizer_class": "Wav2Vec2CTCTokenizer", **self.ctc_tokens,
                                        "replace_word_delimiter_char": " ", "clean_up_tokenization_spaces": False}}

    def hf_state_dict(self) -> dict:
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()}

    def preprocessor_config(self) -> dict:
        """transformers' ``Wav2Vec2FeatureExtractor`` settings of this model (``preprocessor_config.json``): the
        input spec's rate and ``do_normalize``, raw mono samples (feature_size 1) right-padded with zeros.
        ``return_attention_mask`` follows transformers' rule for its own releases: false for a group-norm feature
        encoder (wav2vec2-base: such models "have not been trained using attention_mask" and transformers'
        group norm would count the padding anyway), true for the layer-norm ones (wav2vec2-large-lv60, XLS-R)."""
        spec = validate_input_spec(self, self.input_spec, f"{type(self).__name__}.input_spec")  # before any file
        return {
            "feature_extractor_type": "Wav2Vec2FeatureExtractor",
            "feature_size": 1,
            "sampling_rate": int(spec.get("sample_rate", 16000)),
            "padding_value": 0.0,
            "padding_side": "right",
            "do_normalize": bool(self.do_normalize),
            "return_attention_mask": self.config["feat_extract_norm"] == "layer",
        }

    def _write_preprocessor_config(self, directory: Path) -> None:
        """``preprocessor_config.json`` and the :meth:`tokenizer_files` (a ``vocab.json`` left by an earlier save of a
        CTC model is removed from a folder whose model has no CTC head)."""
        from fmzoo.core.files import atomic_write_text

        directory = Path(directory)
        files = {PREPROCESSOR_NAME: self.preprocessor_config(), **self.tokenizer_files()}
        for name, content in files.items():
            atomic_write_text(directory / name, json.dumps(content, indent=2, sort_keys=name != VOCAB_NAME,
                                                           ensure_ascii=False) + "\n")
        if VOCAB_NAME not in files and (directory / VOCAB_NAME).is_file():
            (directory / VOCAB_NAME).unlink()

    def save_pretrained(self, save_directory, card: dict | None = None, provenance: dict | None = None) -> Path:
        """The core's checkpoint plus ``preprocessor_config.json``, so that the folder also works with transformers'
        ``AutoFeatureExtractor`` / ``AutoModel``; the card says ``library_name: transformers`` and ``pipeline_tag:
        feature-extraction`` unless ``card`` gives other values."""
        task = "automatic-speech-recognition" if self.has_ctc_head else "feature-extraction"
        card = {"library_name": "transformers", "pipeline_tag": task, **(card or {})}
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        self._write_preprocessor_config(out)
        return super().save_pretrained(out, card=card, provenance=provenance)

    def save_hf(self, directory: str | Path) -> Path:
        """Write ``config.json`` (transformers Wav2Vec2Config) + ``model.safetensors`` (HF key names) +
        ``preprocessor_config.json`` (:meth:`preprocessor_config`) + the :meth:`tokenizer_files`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(self.hf_config(), indent=2))
        save_file(self.hf_state_dict(), str(directory / "model.safetensors"), metadata={"format": "pt"})
        self._write_preprocessor_config(directory)
        return directory


def batch_waveforms(wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad normalised waveforms into [B, S] with an attention mask [B, S]."""
    n = max(int(w.numel()) for w in wavs)
    x = torch.zeros(len(wavs), n)
    m = torch.zeros(len(wavs), n, dtype=torch.long)
    for i, w in enumerate(wavs):
        x[i, : w.numel()] = w
        m[i, : w.numel()] = 1
    return x, m

