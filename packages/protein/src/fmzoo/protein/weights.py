"""Import TAPE's released checkpoints (``tape-proteins`` layout) into fmzoo models, and back.

Key mapping (tested against TAPE's own modules in tests/test_tape_equivalence.py):

* Every key is kept verbatim: our modules use TAPE's names (``bert.*``/``resnet.*``, ``mlm.*``,
  ``classify.*``, ``predict.*``), including the legacy weight-norm names ``weight_g``/``weight_v``.
* ``mlm.decoder.weight`` is dropped on import: TAPE ties it to the word embeddings
  (``bert.embeddings.word_embeddings.weight`` / ``resnet.embeddings.word_embeddings.weight``) and
  saves the same tensor twice; we check the two are equal and keep one. Export adds it back.
* As TAPE's own ``from_pretrained`` does, old LayerNorm names ``gamma``/``beta`` become ``weight``/``bias``.
* A base-model file (TAPE's ``ProteinBertModel.save_pretrained``, no ``bert.`` prefix) gets the prefix;
  a backbone-only file loaded into a model with a head is an error unless ``allow_missing_head=True``.
* TAPE's ``config.json`` (``ProteinBertConfig``/``ProteinResNetConfig``) maps to our ``__init__`` args by
  :func:`tape_config_to_kwargs`; TAPE-only fields (``finetuning_task``, ``num_labels``,
  ``output_attentions``, ``output_hidden_states``, ``torchscript``) are dropped.

TAPE distributes ``pytorch_model.bin`` (a pickle). fmzoo never unpickles: convert it once yourself,
in an environment you trust, with ``torch.load(path, weights_only=True)`` and
``safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, "model.safetensors")``
(clone tied tensors first), then call :func:`load_tape_checkpoint` on the directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from fmzoo.core import CheckpointError
from torch import nn

from .models import TapeResNet, TapeTransformer

_TAPE_ONLY = {"finetuning_task", "num_labels", "output_attentions", "output_hidden_states", "torchscript",
              "pruned_heads", "vocab_size_or_config_json_file"}
_FAMILY = {"bert": TapeTransformer, "resnet": TapeResNet}


def tape_config_to_kwargs(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in _TAPE_ONLY}


def _rename_legacy(state_dict: dict) -> dict:
    out = {}
    for k, v in state_dict.items():
        k2 = k.replace("gamma", "weight") if "gamma" in k else k
        k2 = k2.replace("beta", "bias") if "beta" in k2 else k2
        out[k2] = v
    return out


def from_tape_state_dict(model: nn.Module, state_dict: dict, allow_missing_head: bool = False) -> nn.Module:
    """Load a TAPE state dict into one of our models (TapeTransformer, TapeResNet, TapeTaskModel)."""
    prefix = getattr(model, "base_prefix", None) or model.prefix
    sd = _rename_legacy(dict(state_dict))
    if not any(k.startswith(prefix + ".") for k in sd):
        sd = {f"{prefix}.{k}": v for k, v in sd.items()}
    dec = sd.pop("mlm.decoder.weight", None)
    emb_key = f"{prefix}.embeddings.word_embeddings.weight"
    if dec is not None and emb_key in sd and not torch.equal(dec, sd[emb_key]):
        raise CheckpointError("mlm.decoder.weight differs from the word embeddings: TAPE ties them; this file is not a "
                              "TAPE masked-LM checkpoint with tied weights")
    own = model.state_dict()
    unexpected = sorted(set(sd) - set(own))
    missing = sorted(set(own) - set(sd))
    if allow_missing_head:
        missing = [k for k in missing if k.startswith(prefix + ".")]
    if unexpected or missing:
        raise CheckpointError(f"TAPE state dict does not fit {type(model).__name__}: missing {missing[:8]}"
                              f"{'...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}"
                              f"{'...' if len(unexpected) > 8 else ''}")
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in sd.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(f"TAPE state dict shapes do not fit {type(model).__name__}: {bad[:5]}")
    model.load_state_dict(sd, strict=not allow_missing_head)
    return model


def to_tape_state_dict(model: nn.Module) -> dict:
    """Our state dict in TAPE's layout (adds the tied ``mlm.decoder.weight`` back for MLM models)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if hasattr(model, "mlm"):
        sd["mlm.decoder.weight"] = model.word_embeddings.weight.detach().clone()
    return sd


def load_tape_checkpoint(directory: str | Path, family: str | None = None) -> nn.Module:
    """Build our MLM model from a TAPE ``config.json`` + ``model.safetensors`` directory (no pickle)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, w_path = directory / "config.json", directory / "model.safetensors"
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise CheckpointError(f"{str(p)!r} is missing (convert TAPE's pytorch_model.bin to safetensors first; "
                                  "see fmzoo.protein.weights)")
    config = json.loads(cfg_path.read_text())
    sd = load_file(str(w_path))
    if family is None:
        family = "resnet" if any(k.startswith("resnet.") or "conv1" in k for k in sd) else "bert"
    cls = _FAMILY["resnet" if family in ("resnet",) else "bert"]
    model = cls(**tape_config_to_kwargs(config))
    return from_tape_state_dict(model, sd).eval()
