"""TAPE's Transformer (``ProteinBertModel`` + masked-LM head), state-dict compatible with TAPE.

Our ``TapeTransformer`` has the sub-modules ``bert`` and ``mlm`` of TAPE's
``ProteinBertForMaskedLM`` with identical names, so its state dict uses TAPE's keys verbatim
(``bert.embeddings.word_embeddings.weight``, ``bert.encoder.layer.0.attention.self.query.weight``,
..., ``bert.pooler.dense.*``, ``mlm.transform.*``, ``mlm.bias``). The only difference is the tied
decoder: TAPE's file also holds ``mlm.decoder.weight`` (a second copy of the word embeddings); we do
not store it. See :mod:`fmzoo.protein.weights` for the full, tested mapping.

Architecture and defaults follow TAPE's ``ProteinBertConfig`` (the released ``bert-base``: 12 layers,
hidden 768, 12 heads, FFN 3072, GELU, dropout 0.1, 8096 learned positions, 2 token types,
LayerNorm eps 1e-12, N(0, 0.02) init, padding mask as an additive -10000 bias). Same maths, faster kernels:
the query/key/value projections run as one GEMM; attention runs through
``torch.nn.functional.scaled_dot_product_attention`` with the same additive mask (omitted when a batch has no
padding: it would add zeros), except fp32 training on the CPU with attention dropout, which runs
``_DropoutAttention`` (in-place softmax, boolean mask from ``layers.keep_mask``); dropout masks come from
``layers.keep_mask`` on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fmzoo.core import HubMixin, InputSpecError
from torch import nn

from ..spec import IUPAC_VOCAB, TapeSequenceInput, TAPETokenizer
from .layers import Dropout, LayerNorm, MLMHead, activation, fast_path, keep_mask, pooled_empty, workspace


class ProteinBertEmbeddings(nn.Module):
    def __init__(self, vocab_size, hidden_size, max_position_embeddings, type_vocab_size, layer_norm_eps, dropout):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_position_embeddings, hidden_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.LayerNorm = LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = Dropout(dropout)

    def forward(self, input_ids):
        pos = torch.arange(input_ids.size(1), device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(pos)[None] + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


_ZERO = torch.zeros(())


class _DropoutAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + bias) with dropout, times v: the maths of TAPE's ``ProteinBertSelfAttention`` in
    training mode, written for the CPU (PyTorch's SDPA falls back to its unfused math path when dropout is on).

    q, k, v: (N, L, d) contiguous (N = batch x heads); bias: (N, 1, L) or None. The softmax and its backward run in
    place; only q, k, v, the probabilities (in a buffer reused from step to step, ``pooled_empty``) and a boolean
    keep-mask are saved; the 1/(1 - p) scale is applied to the (L x d) output instead of the (L x L) probabilities;
    the L x L temporaries live in a per-thread ``workspace``. (Processing the rows in cache-sized chunks was tried:
    no faster here.)"""

    @staticmethod
    def forward(ctx, q, k, v, bias, p):
        N, L, d = q.shape
        qs = q * d**-0.5
        attn = torch.bmm(qs, k.transpose(1, 2), out=pooled_empty((N, L, k.size(1))))
        if bias is not None:
            attn.add_(bias)
        torch.ops.aten._softmax.out(attn, -1, False, out=attn)
        buf = workspace(attn.numel()).view(attn.shape)  # the random words, then the dropped probabilities
        keep = keep_mask(attn.shape, p, workspace=buf)
        scale = 1.0 / (1.0 - p)
        out = torch.bmm(torch.where(keep, attn, _ZERO, out=buf), v).mul_(scale)
        ctx.save_for_backward(qs, k, v, attn, keep)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad):
        qs, k, v, attn, keep = ctx.saved_tensors
        g = grad * ctx.scale
        buf = workspace(attn.numel()).view(attn.shape)
        dv = torch.bmm(torch.where(keep, attn, _ZERO, out=buf).transpose(1, 2), g)
        torch.bmm(g, v.transpose(1, 2), out=buf)  # d(dropped probabilities)
        torch.where(keep, buf, _ZERO, out=buf)  # d(probabilities)
        torch.ops.aten._softmax_backward_data.out(buf, attn, -1, attn.dtype, grad_input=buf)  # d(scores)
        dq = torch.bmm(buf, k).mul_(qs.size(-1) ** -0.5)
        dk = torch.bmm(buf.transpose(1, 2), qs)
        return dq, dk, dv, None, None


def attention(q, k, v, attn_bias, p: float):
    """Scaled dot-product attention over (B, H, L, d) with an additive bias (None, or (B, 1, 1, L) as TAPE's
    padding mask) and attention dropout p."""
    B, H, L, d = q.shape
    Lk = k.size(-2)
    if 0.0 < p < 1.0 and fast_path(q) and (attn_bias is None or attn_bias.shape == (B, 1, 1, Lk)):
        bias = None if attn_bias is None else attn_bias.expand(B, H, 1, Lk).reshape(B * H, 1, Lk)
        out = _DropoutAttention.apply(q.reshape(B * H, L, d), k.reshape(B * H, Lk, d),
                                      v.reshape(B * H, Lk, v.size(-1)), bias, p)
        return out.view(B, H, L, -1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=p)


class ProteinBertSelfAttention(nn.Module):
    """TAPE's three projections (``query``/``key``/``value`` keep their parameters and keys) run as one GEMM."""

    def __init__(self, hidden_size, num_heads, dropout):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_attention_heads {num_heads}")
        self.num_heads, self.head_dim, self.p = num_heads, hidden_size // num_heads, dropout
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)

    def forward(self, h, attn_bias):
        B, L, _ = h.shape
        w = torch.cat((self.query.weight, self.key.weight, self.value.weight))
        b = torch.cat((self.query.bias, self.key.bias, self.value.bias))
        qkv = F.linear(h, w, b).view(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).contiguous()
        q, k, v = qkv.unbind(0)
        ctx = attention(q, k, v, attn_bias, self.p if self.training else 0.0)
        return ctx.transpose(1, 2).reshape(B, L, -1)


class _DenseResidualNorm(nn.Module):
    def __init__(self, d_in, d_out, eps, dropout):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = LayerNorm(d_out, eps=eps)
        self.dropout = Dropout(dropout)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class ProteinBertAttention(nn.Module):
    def __init__(self, hidden_size, num_heads, attn_dropout, hidden_dropout, eps):
        super().__init__()
        self.self = ProteinBertSelfAttention(hidden_size, num_heads, attn_dropout)
        self.output = _DenseResidualNorm(hidden_size, hidden_size, eps, hidden_dropout)

    def forward(self, h, attn_bias):
        return self.output(self.self(h, attn_bias), h)


class ProteinBertIntermediate(nn.Module):
    def __init__(self, hidden_size, intermediate_size, act):
        super().__init__()
        self.dense = nn.Linear(hidden_size, intermediate_size)
        self.act = activation(act)

    def forward(self, h):
        return self.act(self.dense(h))


class ProteinBertLayer(nn.Module):
    def __init__(self, hidden_size, num_heads, intermediate_size, act, attn_dropout, hidden_dropout, eps):
        super().__init__()
        self.attention = ProteinBertAttention(hidden_size, num_heads, attn_dropout, hidden_dropout, eps)
        self.intermediate = ProteinBertIntermediate(hidden_size, intermediate_size, act)
        self.output = _DenseResidualNorm(intermediate_size, hidden_size, eps, hidden_dropout)

    def forward(self, h, attn_bias):
        a = self.attention(h, attn_bias)
        return self.output(self.intermediate(a), a)


class ProteinBertEncoder(nn.Module):
    def __init__(self, num_layers, **kw):
        super().__init__()
        self.layer = nn.ModuleList([ProteinBertLayer(**kw) for _ in range(num_layers)])

    def forward(self, h, attn_bias, return_all: bool = False):
        states = [h]
        for layer in self.layer:
            h = layer(h, attn_bias)
            states.append(h)
        return (h, states) if return_all else h


class ProteinBertPooler(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))


class ProteinBertModel(nn.Module):
    """TAPE's ``ProteinBertModel`` (embeddings, encoder, pooler); keys as TAPE's without the ``bert.`` prefix."""

    def __init__(self, vocab_size=30, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, max_position_embeddings=8096, type_vocab_size=2,
                 layer_norm_eps=1e-12):
        super().__init__()
        self.embeddings = ProteinBertEmbeddings(vocab_size, hidden_size, max_position_embeddings, type_vocab_size,
                                                layer_norm_eps, hidden_dropout_prob)
        self.encoder = ProteinBertEncoder(num_hidden_layers, hidden_size=hidden_size, num_heads=num_attention_heads,
                                          intermediate_size=intermediate_size, act=hidden_act,
                                          attn_dropout=attention_probs_dropout_prob,
                                          hidden_dropout=hidden_dropout_prob, eps=layer_norm_eps)
        self.pooler = ProteinBertPooler(hidden_size)

    def forward(self, input_ids, input_mask=None, return_all: bool = False):
        if input_mask is None:
            input_mask = torch.ones_like(input_ids)
        dtype = self.embeddings.word_embeddings.weight.dtype
        # TAPE's additive -10000 on padded keys; a batch without padding adds zeros, so no bias at all
        attn_bias = None if bool(input_mask.all()) else (1.0 - input_mask[:, None, None, :].to(dtype)) * -10000.0
        h = self.embeddings(input_ids)
        out = self.encoder(h, attn_bias, return_all=return_all)
        h, states = out if return_all else (out, None)
        pooled = self.pooler(h)
        return (h, pooled, states) if return_all else (h, pooled)


def check_batch(input_ids, input_mask, vocab_size: int, max_len: int | None):
    if not torch.is_tensor(input_ids) or input_ids.dtype not in (torch.int64, torch.int32):
        raise InputSpecError(f"input_ids must be an integer tensor of token ids, got {getattr(input_ids, 'dtype', type(input_ids))}")
    if input_ids.dim() != 2:
        raise InputSpecError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}")
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        raise InputSpecError(f"token ids must lie in [0, {vocab_size}) (TAPE IUPAC vocabulary), got "
                             f"[{int(input_ids.min())}, {int(input_ids.max())}]")
    if max_len is not None and input_ids.size(1) > max_len:
        raise InputSpecError(f"sequence length {input_ids.size(1)} (with <cls>/<sep>) exceeds the model's "
                             f"max_position_embeddings={max_len}: expected at most {max_len - 2} residues; crop them "
                             "(TAPETokenizer.batch_encode(..., max_length=...)) or embed windows "
                             "(fmzoo.protein.tasks.features.residue_features)")
    if input_mask is not None and input_mask.shape != input_ids.shape:
        raise InputSpecError(f"input_mask shape {tuple(input_mask.shape)} != input_ids shape {tuple(input_ids.shape)}")


class TapeTransformer(nn.Module, HubMixin):
    """TAPE Transformer with its masked-LM head (TAPE's ``ProteinBertForMaskedLM``).

    ``forward(input_ids, input_mask)`` -> dict(sequence_output, pooled_output, logits).
    ``embed`` returns (sequence_output, pooled_output) without the MLM head.
    """

    input_spec_class = TapeSequenceInput
    family = "transformer"
    base_prefix = "bert"

    def __init__(self, vocab_size: int = 30, hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072, hidden_act: str = "gelu",
                 hidden_dropout_prob: float = 0.1, attention_probs_dropout_prob: float = 0.1,
                 max_position_embeddings: int = 8096, type_vocab_size: int = 2, initializer_range: float = 0.02,
                 layer_norm_eps: float = 1e-12):
        super().__init__()
        if vocab_size != len(IUPAC_VOCAB):
            raise ValueError(f"TAPE's IUPAC vocabulary has {len(IUPAC_VOCAB)} tokens, got vocab_size={vocab_size}")
        self.hidden_size, self.max_len, self.vocab_size = hidden_size, max_position_embeddings, vocab_size
        self.bert = ProteinBertModel(vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
                                     intermediate_size, hidden_act, hidden_dropout_prob,
                                     attention_probs_dropout_prob, max_position_embeddings, type_vocab_size,
                                     layer_norm_eps)
        self.mlm = MLMHead(hidden_size, vocab_size, hidden_act, layer_norm_eps)
        self._init_weights(initializer_range)
        self.input_spec = {**TAPETokenizer().spec(), "max_length": max_position_embeddings}

    def _init_weights(self, std):
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def embed(self, input_ids, input_mask=None, return_all: bool = False):
        check_batch(input_ids, input_mask, self.vocab_size, self.max_len)
        return self.bert(input_ids.long(), input_mask, return_all=return_all)

    def mlm_logits(self, sequence_output):
        return self.mlm(sequence_output, self.word_embeddings.weight)

    def forward(self, input_ids, input_mask=None):
        h, pooled = self.embed(input_ids, input_mask)
        return {"sequence_output": h, "pooled_output": pooled, "logits": self.mlm_logits(h)}
