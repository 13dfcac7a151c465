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

TAPE distributes ``pytorch_model.bin`` (a pickle of tensors). :class:`TapeBertRelease` (format ``tape-bert``,
``fmzoo import FOLDER`` / ``fmzoo.core.from_pretrained(FOLDER)``) reads it with
:func:`fmzoo.core.weights.safe_torch_load` (``weights_only=True``, no allow-list: the file holds tensors only), clones
every tensor (TAPE's tied decoder shares storage with the word embeddings) and converts. A directory already holding
``model.safetensors`` + ``config.json`` loads with :func:`load_tape_checkpoint`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from fmzoo.core import CheckpointError
from fmzoo.core.weights import OfficialWeights, WeightFormat, safe_torch_load
from torch import nn

from .models import TapeResNet, TapeTransformer
from .spec import TAPETokenizer

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


# ------------------------------------------------------------------------------ official release (tape-bert)

#: TAPE's released file names: ``save_pretrained`` writes config.json + pytorch_model.bin (tape/models/modeling_utils.py
#: CONFIG_NAME / WEIGHTS_NAME); the S3 archive maps (tape/models/modeling_bert.py) name the downloads
#: bert-base-config.json + bert-base-pytorch_model.bin.
_RELEASE_PREFIXES = ("", "bert-base-")
#: ProteinBertConfig keys (tape/models/modeling_bert.py) that together identify a TAPE Transformer config.
_BERT_CONFIG_KEYS = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size", "layer_norm_eps"}


def _release_files(path: Path) -> tuple[Path, Path] | None:
    if not path.is_dir():
        return None
    for prefix in _RELEASE_PREFIXES:
        cfg, w = path / f"{prefix}config.json", path / f"{prefix}pytorch_model.bin"
        if cfg.is_file() and w.is_file():
            return cfg, w
    return None


def _is_tape_bert_config(config: dict) -> bool:
    # HF/transformers configs carry model_type; TAPE's ProteinConfig never does. TAPE's IUPAC vocabulary has 30 tokens.
    return _BERT_CONFIG_KEYS <= set(config) and "model_type" not in config and config.get("vocab_size") == 30


class TapeBertRelease(WeightFormat):
    """TAPE's released Transformer (``bert-base``) in tape-proteins' ``save_pretrained`` layout."""

    name = "tape-bert"
    input = "protein sequence, TAPE IUPAC vocabulary (25 letters + <cls>/<sep>), upper case"
    architecture = "TapeTransformer"
    description = ("a folder with TAPE's ProteinBertConfig config.json and pytorch_model.bin (tape-proteins "
                   "save_pretrained; also the S3 names bert-base-config.json / bert-base-pytorch_model.bin)")
    pickle_allow = ()

    def detect(self, path):
        files = _release_files(Path(path))
        if files is None:
            return False
        try:
            return _is_tape_bert_config(json.loads(files[0].read_text()))
        except (ValueError, OSError):
            return False

    def convert(self, path, **options):
        files = _release_files(Path(path))
        if files is None:
            raise CheckpointError(f"{str(path)!r}: expected a folder with config.json and pytorch_model.bin (TAPE layout)")
        config = json.loads(files[0].read_text())
        if not _is_tape_bert_config(config):
            raise CheckpointError(f"{str(files[0])!r} is not TAPE's ProteinBertConfig with the IUPAC vocabulary "
                                  f"(needs {sorted(_BERT_CONFIG_KEYS)}, vocab_size 30, no model_type)")
        obj = safe_torch_load(files[1], allow=self.pickle_allow)
        if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
            raise CheckpointError(f"{str(files[1])!r} is not a TAPE state dict (a mapping of names to tensors)")
        # TAPE ties mlm.decoder.weight to the word embeddings: both names share one storage; clone them apart
        sd, storages = {}, set()
        for k, v in obj.items():
            ptr = v.untyped_storage().data_ptr()
            sd[k] = v.detach().clone() if ptr in storages else v.detach()
            storages.add(ptr)
        import inspect

        accepted = set(inspect.signature(TapeTransformer.__init__).parameters) - {"self"}
        kwargs = {k: v for k, v in tape_config_to_kwargs(config).items() if k in accepted}
        model = TapeTransformer(**kwargs)
        has_head = any(k.startswith("mlm.") for k in sd)
        # a ProteinBertModel file (no MLM head) loads the encoder; the MLM head keeps TAPE's fresh initialisation
        from_tape_state_dict(model, sd, allow_missing_head=not has_head)
        model.eval()
        model.input_spec = {**TAPETokenizer().spec(), "max_length": model.max_len}  # TAPE's iupac tokenizer
        if not has_head:
            import warnings

            warnings.warn(f"{str(files[1])!r} holds no MLM head (a ProteinBertModel file): the encoder is TAPE's, the "
                          "masked-LM head is freshly initialised (features and fine-tuning are unaffected)", stacklevel=2)
        return model


OFFICIAL = [
    OfficialWeights(
        id="songlab/tape-bert-base", method="TAPE Transformer (masked LM on Pfam)", format="tape-bert",
        source="https://s3.amazonaws.com/songlabdata/proteindata/pytorch-models/bert-base-pytorch_model.bin",
        license="BSD-3-Clause", params="92M", hf_repo=None,
        files=("bert-base-config.json", "bert-base-pytorch_model.bin"),
        citation="Rao et al., Evaluating Protein Transfer Learning with TAPE, NeurIPS 2019",
        notes="Download both files (URL prefix https://s3.amazonaws.com/songlabdata/proteindata/pytorch-models/, "
              "tape-proteins' BERT_PRETRAINED_*_ARCHIVE_MAP) into one folder; the S3 names are recognised.",
    ),
]
