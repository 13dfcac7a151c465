"""T-JEPA (Thimonier et al., "T-JEPA: Augmentation-Free Self-Supervised Learning for Tabular Data", 2024).

Per-feature tokens (numerical: x_j * W_j + b_j; categorical: an embedding per column, plus a bias),
a fixed sinusoidal position per token and a learned feature-type embedding, ``n_reg_tokens``
learnable regularization tokens [REG] that every encoder pass sees (they keep the representation
from collapsing; they are never prediction targets). A context encoder sees the [REG] tokens and a
subset of the features; the target encoder (an EMA of the context encoder) sees every feature; a
transformer predictor takes the context latents plus [MASK] tokens at the target features' positions
and predicts the target encoder's latents of those features. No augmentations anywhere.
Token order: [REG] tokens, numerical features, categorical features.
"""

from __future__ import annotations

import copy
import math

import torch
from fmzoo.core import HubMixin, InputSpecError
from fmzoo.core.params import ema_update
from fmzoo.core.runtime import seeded
from torch import nn

from ..spec import TabularInput
from .layers import Dropout, TransformerEncoderLayer


def sincos_table(n: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(base) / dim))
    table = torch.zeros(n, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return table


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, N, D], idx [B, K] -> [B, K, D]."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.size(-1)))


class FeatureTokenizer(nn.Module):
    def __init__(self, n_num: int, cardinalities: list[int], dim: int):
        super().__init__()
        self.n_num, self.n_cat = n_num, len(cardinalities)
        self.num_weight = nn.Parameter(torch.empty(n_num, dim))
        self.cat_embed = nn.Embedding(max(1, sum(cardinalities)), dim)
        self.register_buffer("cat_offsets", torch.tensor([0, *cardinalities[:-1]]).cumsum(0) if cardinalities else torch.zeros(0, dtype=torch.long), persistent=False)
        self.bias = nn.Parameter(torch.empty(n_num + self.n_cat, dim))
        for p in (self.num_weight, self.bias):
            nn.init.kaiming_uniform_(p, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.cat_embed.weight, a=math.sqrt(5))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.n_num:
            parts.append(x_num.unsqueeze(-1) * self.num_weight)
        if self.n_cat:
            parts.append(self.cat_embed(x_cat + self.cat_offsets))
        return torch.cat(parts, dim=1) + self.bias


class TabularTransformer(nn.Module):
    """The encoder body: post-norm transformer layers, then dropout-LN-Linear-dropout-LN (as T-JEPA's encoder)."""

    def __init__(self, dim: int, depth: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.TransformerEncoder(TransformerEncoderLayer(dim, heads, ff_dim, dropout), depth, enable_nested_tensor=False)
        self.out = nn.Sequential(Dropout(dropout), nn.LayerNorm(dim), nn.Linear(dim, dim), Dropout(dropout), nn.LayerNorm(dim))

    def forward(self, x):
        return self.out(self.layers(x))


class TJEPAEncoder(nn.Module):
    def __init__(self, n_num, cardinalities, dim, depth, heads, ff_dim, dropout, n_reg_tokens):
        super().__init__()
        n_features = n_num + len(cardinalities)
        self.n_reg = n_reg_tokens
        self.tokenizer = FeatureTokenizer(n_num, cardinalities, dim)
        self.reg_tokens = nn.Parameter(torch.empty(1, n_reg_tokens, dim))
        nn.init.kaiming_uniform_(self.reg_tokens, a=math.sqrt(5))
        self.type_embed = nn.Embedding(3, dim)  # 0 = [REG], 1 = numerical, 2 = categorical
        types = torch.tensor([0] * n_reg_tokens + [1] * n_num + [2] * len(cardinalities))
        self.register_buffer("token_types", types, persistent=False)
        self.register_buffer("positions", sincos_table(n_reg_tokens + n_features, dim), persistent=False)
        self.body = TabularTransformer(dim, depth, heads, ff_dim, dropout)

    def tokens(self, x_num, x_cat) -> torch.Tensor:
        feats = self.tokenizer(x_num, x_cat)
        reg = self.reg_tokens.expand(feats.size(0), -1, -1)
        tok = torch.cat([reg, feats], dim=1)
        return tok + self.positions + self.type_embed(self.token_types)

    def forward(self, x_num, x_cat, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Latents [B, n_reg + K, dim]; ``keep`` [B, K] = feature indices to encode (default all)."""
        tok = self.tokens(x_num, x_cat)
        if keep is not None:
            tok = torch.cat([tok[:, : self.n_reg], gather_tokens(tok[:, self.n_reg :], keep)], dim=1)
        return self.body(tok)


class TJEPAPredictor(nn.Module):
    def __init__(self, n_tokens, dim, pred_dim, depth, heads, ff_dim, dropout, n_reg_tokens):
        super().__init__()
        self.n_reg = n_reg_tokens
        self.embed = nn.Linear(dim, pred_dim)
        self.register_buffer("positions", sincos_table(n_tokens, pred_dim), persistent=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, pred_dim))
        self.body = TabularTransformer(pred_dim, depth, heads, ff_dim, dropout)
        self.norm = nn.LayerNorm(pred_dim)
        self.proj = nn.Linear(pred_dim, dim)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, ctx: torch.Tensor, keep: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """ctx [B, n_reg+K, dim] latents of [REG]+context; keep [B, K]; targets [B, T] feature indices."""
        b = ctx.size(0)
        pos = self.positions.unsqueeze(0).expand(b, -1, -1)
        ctx_pos = torch.cat([pos[:, : self.n_reg], gather_tokens(pos[:, self.n_reg :], keep)], dim=1)
        x = self.embed(ctx) + ctx_pos
        queries = self.mask_token + gather_tokens(pos[:, self.n_reg :], targets)
        out = self.body(torch.cat([x, queries], dim=1))[:, x.size(1) :]
        return self.proj(self.norm(out))


INITS = ("trunc_normal", "default")


def official_init(m: nn.Module) -> None:
    """The encoder initialisation of T-JEPA's launch script (``INIT_TYPE=trunc_normal``): every Linear
    (attention output, feed-forward, output head) and Embedding (categories, token types) drawn from a
    normal with std 0.02 truncated at +-2 (absolute bounds, as in the official code: in effect untruncated), zero biases, LayerNorm 1 / 0. The attention input projection and
    the numerical-feature tokenizer keep their own initialisation, as in the official code. As there, it is
    opted into (``init="trunc_normal"``, set by the paper-size recipe tjepa-adult); the default keeps PyTorch's
    initialisation (the official configs' default, and that of the shipped CPU checkpoints). At depth 16 it
    matters: with PyTorch's init the post-norm stack washes the row-to-row variation out of the target latents
    before training starts (per-dim std over 2000 Adult rows 0.017 at depth 16 vs 0.060 at depth 4; 0.089 with
    this init), and a paper-size run collapsed (loss 0.017 by epoch 8, latent std 0.0007 by epoch 32); with this
    init the same run was not collapsed at epoch 12 (loss 0.07-0.10, latent std 0.14)."""
    if isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)


class TJEPA(nn.Module, HubMixin):
    """The T-JEPA model: context encoder, EMA target encoder, predictor, and the feature schema."""

    input_spec_class = TabularInput  # the schema travels as the input spec, checked at save and load

    def __init__(
        self,
        n_num: int,
        cardinalities: list[int],
        dim: int = 16,
        depth: int = 16,
        heads: int = 2,
        ff_dim: int = 64,
        dropout: float = 0.0,
        pred_dim: int = 16,
        pred_depth: int = 16,
        pred_heads: int = 4,
        pred_ff_dim: int = 64,
        pred_dropout: float = 0.0,
        n_reg_tokens: int = 1,
        init: str = "default",
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.n_num, self.cardinalities = n_num, list(cardinalities)
        self.n_features = n_num + len(cardinalities)
        self.n_reg = n_reg_tokens
        self.dim = dim
        self.context_encoder = TJEPAEncoder(n_num, cardinalities, dim, depth, heads, ff_dim, dropout, n_reg_tokens)
        if init == "trunc_normal":
            self.context_encoder.apply(official_init)
        self.target_encoder = copy.deepcopy(self.context_encoder)
        for p in self.target_encoder.parameters():
            p.requires_grad_(False)
        self.predictor = TJEPAPredictor(
            n_reg_tokens + self.n_features, dim, pred_dim, pred_depth, pred_heads, pred_ff_dim, pred_dropout, n_reg_tokens
        )
        self.input_spec = None  # the TabularSchema dict, set when fitted on data

    # -- input checks -------------------------------------------------------------------------
    def check_tensors(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> None:
        if x_num.ndim != 2 or x_num.size(1) != self.n_num:
            raise InputSpecError(f"x_num: expected shape [batch, {self.n_num}], got {list(x_num.shape)}")
        if x_cat.ndim != 2 or x_cat.size(1) != len(self.cardinalities):
            raise InputSpecError(f"x_cat: expected shape [batch, {len(self.cardinalities)}], got {list(x_cat.shape)}")
        if torch.isnan(x_num).any():
            raise InputSpecError("x_num contains NaN")
        if len(self.cardinalities):
            card = torch.tensor(self.cardinalities)
            bad = (x_cat < 0) | (x_cat >= card)
            if bad.any():
                j = int(bad.any(0).nonzero()[0])
                raise InputSpecError(f"x_cat column {j}: category code out of range [0, {self.cardinalities[j]})")

    # -- representations ----------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, x_num: torch.Tensor, x_cat: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Frozen representation used downstream: the target encoder's latents of [REG] + every
        feature, flattened to [B, (n_reg + n_features) * dim] (T-JEPA's flatten protocol)."""
        self.check_tensors(x_num, x_cat)
        was_training = self.training
        self.eval()
        out = torch.cat(
            [self.target_encoder(x_num[i : i + batch_size], x_cat[i : i + batch_size]).flatten(1) for i in range(0, len(x_num), batch_size)]
        ) if len(x_num) else torch.zeros(0, self.embedding_dim)
        self.train(was_training)
        return out

    def downstream_encoder(self, pretrained: bool = True, seed: int = 0, dropout: float | None = None) -> TJEPAEncoder:
        """A trainable copy of the encoder whose latents ``embed`` returns (the target encoder), for
        fine-tuning end to end; ``pretrained=False``: the same architecture at a fresh random init drawn
        with ``seed`` (the scratch control). ``dropout``: set every dropout rate of the copy (attention
        included); None keeps the pretraining's."""
        if pretrained:
            enc = copy.deepcopy(self.target_encoder)
        else:
            # The scratch control's weights are drawn from ``seed`` (torch's layers initialise from the global
            # generator): seeded through the core's helper, the same torch stream as before.
            with seeded(seed):
                enc = type(self)(**self.init_args).target_encoder  # == its context encoder at init
        for p in enc.parameters():
            p.requires_grad_(True)
        if dropout is not None:
            for m in enc.modules():
                if isinstance(m, nn.Dropout):
                    m.p = float(dropout)
                elif isinstance(m, nn.MultiheadAttention):
                    m.dropout = float(dropout)
        return enc.train()

    @property
    def n_tokens(self) -> int:
        """Tokens per row in the representation: [REG] tokens + one per feature."""
        return self.n_reg + self.n_features

    @property
    def embedding_dim(self) -> int:
        return self.n_tokens * self.dim

    # -- the objective ------------------------------------------------------------------------
    def jepa_loss(self, x_num, x_cat, keep: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        """Mean squared error between predicted and target-encoder latents of each target subset."""
        with torch.no_grad():
            h = self.target_encoder(x_num, x_cat)[:, self.n_reg :]
        z = self.context_encoder(x_num, x_cat, keep)
        # The target subsets all have the same size: predict them in one batched predictor pass.
        n = len(targets)
        tgt = torch.cat(targets, dim=0)
        pred = self.predictor(z.repeat(n, 1, 1), keep.repeat(n, 1), tgt)
        return nn.functional.mse_loss(pred, gather_tokens(h.repeat(n, 1, 1), tgt))

    def clamp_encoder_gradients(self, value: float) -> list:
        """Clamp every gradient of the context encoder's parameters to [-value, value] as backward computes it, as
        T-JEPA's official code does (its Encoder registers ``torch.clamp`` hooks on its own parameters, value
        ``--exp_gradient_clipping``, default 1.0; the predictor's gradients are not clamped). Per-parameter tensor
        hooks, so the clamp applies to each process's gradient before a DDP all-reduce, as there. Returns the hook
        handles (``handle.remove()`` undoes it); the hooks are not saved with the weights."""
        if not value > 0:
            raise ValueError(f"gradient clamp value must be > 0, got {value!r}")
        v = float(value)
        return [p.register_hook(lambda g: g.clamp(-v, v)) for p in self.context_encoder.parameters() if p.requires_grad]

    def update_target(self, momentum: float) -> None:
        """target <- momentum * target + (1 - momentum) * context, every parameter (``fmzoo.core.params.ema_update``)."""
        ema_update(self.target_encoder, self.context_encoder, momentum)


class FeatureMaskSampler:
    """T-JEPA's mask sampling over feature subsets.

    Per batch: the context size is drawn from [lo, hi] = [round(F*min_ctx), round(F*max_ctx)] as the official
    MaskCollator draws it, lo + round((hi - lo) * u) with u = torch.rand(1) (float32; the two ends half as likely as
    the sizes between them), then the target size from [round(F*min_tgt), round(F*max_tgt)] likewise (both redrawn
    until they fit in F). Given a ``generator`` seeded with the official collator's seed (its iteration counter),
    the sizes are the official ones. Per row: a random context subset and ``num_preds`` target subsets drawn from
    the features outside the context.
    """

    def __init__(self, n_features, min_ctx=0.136, max_ctx=0.368, min_tgt=0.156, max_tgt=0.622, num_preds=4):
        self.f = n_features
        self.ctx_range = (max(1, round(n_features * min_ctx)), max(1, round(n_features * max_ctx)))
        self.tgt_range = (max(1, round(n_features * min_tgt)), max(1, round(n_features * max_tgt)))
        if self.ctx_range[0] + self.tgt_range[0] > n_features:
            raise ValueError(f"{n_features} features cannot hold a context of {self.ctx_range[0]} and a target of {self.tgt_range[0]}")
        self.num_preds = num_preds

    def __call__(self, batch_size: int, generator: torch.Generator | None = None):
        while True:
            n_ctx, n_tgt = (int(lo + torch.round((hi - lo) * torch.rand(1, generator=generator)))
                            for lo, hi in (self.ctx_range, self.tgt_range))
            if n_ctx + n_tgt <= self.f:
                break
        perm = torch.rand(batch_size, self.f, generator=generator).argsort(1)
        keep, rest = perm[:, :n_ctx], perm[:, n_ctx:]
        targets = []
        for _ in range(self.num_preds):
            shuffle = torch.rand(rest.shape, generator=generator).argsort(1)[:, :n_tgt]
            targets.append(torch.gather(rest, 1, shuffle))
        return keep, targets
