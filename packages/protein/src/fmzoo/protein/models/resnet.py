"""TAPE's ResNet (``ProteinResNetModel`` + masked-LM head), state-dict compatible with TAPE.

Keys are TAPE's ``ProteinResNetForMaskedLM`` keys verbatim (``resnet.embeddings.inverse_frequency``,
``resnet.embeddings.word_embeddings.weight``, ``resnet.embeddings.layer_norm.*``,
``resnet.encoder.layer.N.{conv1,conv2}.weight``, ``resnet.encoder.layer.N.{bn1,bn2}.norm.*``,
``resnet.pooler.{attention_weights,dense}.*``, ``mlm.*``) except the tied ``mlm.decoder.weight``.

Faithful details of TAPE's code, kept so released weights give the same outputs:
* sinusoidal positions are computed for *reversed* positions (L-1 ... 0);
* each block is conv(k3, no bias) -> LayerNorm over channels -> GELU -> conv -> LayerNorm, + identity,
  -> GELU; padded positions are zeroed before every convolution when a padding mask is given;
* the pooler's softmax runs over a size-1 axis in TAPE, so its "attention" weights are all 1 and
  the pooled vector is ``tanh(dense(sum over positions))``; we reproduce that exactly.
Defaults are TAPE's ``ProteinResNetConfig`` (30 blocks, hidden 512).
"""

from __future__ import annotations

import torch
from fmzoo.core import HubMixin
from torch import nn

from ..spec import IUPAC_VOCAB, TapeSequenceInput, TAPETokenizer
from .layers import Dropout, LayerNorm, MLMHead, activation
from .transformer import check_batch


class ProteinResNetEmbeddings(nn.Module):
    def __init__(self, vocab_size, hidden_size, layer_norm_eps, dropout):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=0)
        inv = 1 / (10000 ** (torch.arange(0.0, hidden_size, 2.0) / hidden_size))
        self.register_buffer("inverse_frequency", inv)
        self.layer_norm = LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = Dropout(dropout)

    def forward(self, input_ids):
        w = self.word_embeddings(input_ids)
        pos = torch.arange(input_ids.size(1) - 1, -1, -1.0, dtype=w.dtype, device=w.device)
        s = torch.outer(pos, self.inverse_frequency.to(w.dtype))
        return self.dropout(self.layer_norm(w + torch.cat([s.sin(), s.cos()], -1)[None]))


class _ChannelLayerNorm(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.norm = LayerNorm(hidden_size, eps=1e-12)

    def forward(self, x):  # (B, C, L)
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ProteinResNetBlock(nn.Module):
    def __init__(self, hidden_size, act):
        super().__init__()
        self.conv1 = nn.Conv1d(hidden_size, hidden_size, 3, padding=1, bias=False)
        self.bn1 = _ChannelLayerNorm(hidden_size)
        self.conv2 = nn.Conv1d(hidden_size, hidden_size, 3, padding=1, bias=False)
        self.bn2 = _ChannelLayerNorm(hidden_size)
        self.act = activation(act)

    def forward(self, x, mask=None):
        out = self.conv1(x if mask is None else x * mask)
        out = self.act(self.bn1(out))
        out = self.bn2(self.conv2(out if mask is None else out * mask))
        return self.act(out + x)


class ResNetEncoder(nn.Module):
    def __init__(self, num_layers, hidden_size, act):
        super().__init__()
        self.layer = nn.ModuleList([ProteinResNetBlock(hidden_size, act) for _ in range(num_layers)])

    def forward(self, x, mask=None, return_all: bool = False):
        states = [x]
        for layer in self.layer:
            x = layer(x, mask)
            states.append(x)
        return (x, states) if return_all else x


class ProteinResNetPooler(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.attention_weights = nn.Linear(hidden_size, 1)
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, h, mask=None):
        scores = self.attention_weights(h)
        if mask is not None:
            scores = scores + -10000.0 * (1 - mask)
        weights = torch.softmax(scores, -1)  # size-1 axis, as in TAPE: all ones
        return torch.tanh(self.dense(torch.matmul(h.transpose(1, 2), weights).squeeze(2)))


class ProteinResNetModel(nn.Module):
    def __init__(self, vocab_size=30, hidden_size=512, num_hidden_layers=30, hidden_act="gelu",
                 hidden_dropout_prob=0.1, layer_norm_eps=1e-12):
        super().__init__()
        self.embeddings = ProteinResNetEmbeddings(vocab_size, hidden_size, layer_norm_eps, hidden_dropout_prob)
        self.encoder = ResNetEncoder(num_hidden_layers, hidden_size, hidden_act)
        self.pooler = ProteinResNetPooler(hidden_size)

    def forward(self, input_ids, input_mask=None, return_all: bool = False):
        mask = None
        if input_mask is not None and bool((input_mask != 1).any()):
            mask = input_mask.unsqueeze(2).to(self.embeddings.word_embeddings.weight.dtype)
        x = self.embeddings(input_ids).transpose(1, 2)
        out = self.encoder(x, None if mask is None else mask.transpose(1, 2), return_all=return_all)
        x, states = out if return_all else (out, None)
        h = x.transpose(1, 2).contiguous()
        pooled = self.pooler(h, mask)
        if return_all:
            return h, pooled, [s.transpose(1, 2) for s in states]
        return h, pooled


class TapeResNet(nn.Module, HubMixin):
    """TAPE ResNet with its masked-LM head (TAPE's ``ProteinResNetForMaskedLM``)."""

    input_spec_class = TapeSequenceInput
    family = "resnet"
    base_prefix = "resnet"

    def __init__(self, vocab_size: int = 30, hidden_size: int = 512, num_hidden_layers: int = 30,
                 hidden_act: str = "gelu", hidden_dropout_prob: float = 0.1, initializer_range: float = 0.02,
                 layer_norm_eps: float = 1e-12):
        super().__init__()
        if vocab_size != len(IUPAC_VOCAB):
            raise ValueError(f"TAPE's IUPAC vocabulary has {len(IUPAC_VOCAB)} tokens, got vocab_size={vocab_size}")
        self.hidden_size, self.vocab_size, self.max_len = hidden_size, vocab_size, None
        self.resnet = ProteinResNetModel(vocab_size, hidden_size, num_hidden_layers, hidden_act,
                                         hidden_dropout_prob, layer_norm_eps)
        self.mlm = MLMHead(hidden_size, vocab_size, hidden_act, layer_norm_eps)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, initializer_range)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.input_spec = TAPETokenizer().spec()

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.resnet.embeddings.word_embeddings

    def embed(self, input_ids, input_mask=None, return_all: bool = False):
        check_batch(input_ids, input_mask, self.vocab_size, None)
        return self.resnet(input_ids.long(), input_mask, return_all=return_all)

    def mlm_logits(self, sequence_output):
        return self.mlm(sequence_output, self.word_embeddings.weight)

    def forward(self, input_ids, input_mask=None):
        h, pooled = self.embed(input_ids, input_mask)
        return {"sequence_output": h, "pooled_output": pooled, "logits": self.mlm_logits(h)}
