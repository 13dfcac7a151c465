"""TAPE task models: a TAPE backbone plus one TAPE head, with TAPE's task-model key layout.

``TapeTaskModel(task=..., family="transformer"|"resnet", ...)`` holds the backbone under TAPE's
``base_model_prefix`` (``bert`` or ``resnet``) and the head under TAPE's attribute name, so the state
dict equals TAPE's ``ProteinBertFor*`` / ``ProteinResNetFor*`` state dict:

=====================  ==================================  =========================================
task                   TAPE class suffix                   head keys
=====================  ==================================  =========================================
secondary_structure    ForSequenceToSequenceClassification ``classify.classify.main.{0,1,4}.*``
fold (remote homology) ForSequenceClassification           ``classify.classify.main.{0,3}.*``
regression (GB1, ...)  ForValuePrediction                  ``predict.value_prediction.main.{0,3}.*``
contact                ForContactPrediction                ``predict.predict.1.*``
=====================  ==================================  =========================================
"""

from __future__ import annotations

import torch
from fmzoo.core import HubMixin
from torch import nn

from ..spec import TapeSequenceInput, TAPETokenizer
from .layers import (
    PairwiseContactPredictionHead,
    SequenceClassificationHead,
    SequenceToSequenceClassificationHead,
    ValuePredictionHead,
)
from .resnet import ProteinResNetModel
from .transformer import ProteinBertModel, check_batch

TASKS = ("secondary_structure", "fold", "regression", "contact")
_BERT_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
              "type_vocab_size", "layer_norm_eps")
_RESNET_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "hidden_act", "hidden_dropout_prob",
                "layer_norm_eps")


class TapeTaskModel(nn.Module, HubMixin):
    input_spec_class = TapeSequenceInput

    def __init__(self, task: str, family: str = "transformer", num_labels: int = 3, backbone: dict | None = None):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        backbone = dict(backbone or {})
        self.task, self.family = task, family
        if family == "transformer":
            self.prefix = "bert"
            base = ProteinBertModel(**{k: v for k, v in backbone.items() if k in _BERT_KEYS})
            self.max_len = backbone.get("max_position_embeddings", 8096)
        elif family == "resnet":
            self.prefix = "resnet"
            base = ProteinResNetModel(**{k: v for k, v in backbone.items() if k in _RESNET_KEYS})
            self.max_len = None
        else:
            raise ValueError(f"family must be 'transformer' or 'resnet', got {family!r}")
        setattr(self, self.prefix, base)
        hidden = backbone.get("hidden_size", 768 if family == "transformer" else 512)
        if task == "secondary_structure":
            self.classify = SequenceToSequenceClassificationHead(hidden, num_labels)
        elif task == "fold":
            self.classify = SequenceClassificationHead(hidden, num_labels)
        elif task == "regression":
            self.predict = ValuePredictionHead(hidden)
        else:
            self.predict = PairwiseContactPredictionHead(hidden)
        self.vocab_size = backbone.get("vocab_size", 30)
        self.input_spec = TAPETokenizer().spec()

    @property
    def base(self) -> nn.Module:
        return getattr(self, self.prefix)

    @property
    def head(self) -> nn.Module:
        return self.classify if hasattr(self, "classify") else self.predict

    def load_backbone(self, pretrained: nn.Module) -> None:
        """Copy the backbone weights of a pretrained ``TapeTransformer``/``TapeResNet`` (strict)."""
        self.base.load_state_dict(getattr(pretrained, self.prefix).state_dict(), strict=True)

    def forward(self, input_ids, input_mask=None) -> torch.Tensor:
        check_batch(input_ids, input_mask, self.vocab_size, self.max_len)
        h, pooled = self.base(input_ids.long(), input_mask)
        if self.task in ("secondary_structure", "contact"):
            return self.head(h)
        return self.head(pooled)
