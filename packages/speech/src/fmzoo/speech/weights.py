"""Official speech weights: the release layouts (``WeightFormat``) and the catalogue (``OFFICIAL``).

- ``transformers-wav2vec2``: a transformers Wav2Vec2 checkpoint directory (``config.json`` + ``model.safetensors``,
  sharded ``model.safetensors.index.json`` or ``pytorch_model.bin``, and ``preprocessor_config.json``; e.g.
  ``facebook/wav2vec2-base``) loaded unchanged into fmzoo's :class:`Wav2Vec2`;
- ``fairseq-wav2vec2``: fairseq's own ``.pt`` (``wav2vec_small.pt``, ``libri960_big.pt``, ``xlsr2_300m.pt``; a dict
  with ``model`` and ``args`` (argparse.Namespace) or ``cfg`` (a plain dict)), keys mapped to transformers' names;
- ``s3prl-tera``: s3prl's TERA upstream checkpoint (``states-*.ckpt``: ``Transformer`` / ``SpecHead`` state dicts,
  ``Upstream_Config`` or ``Config`` plain dicts) into fmzoo's :class:`TERA` with s3prl's on-the-fly log-mel input.

fmzoo's Wav2Vec2 keeps transformers' parameter names and config keys, so the import is a check, not a
conversion: the config's known keys become constructor arguments (older configs get transformers' own
defaults for keys they lack), the weight-norm keys of the positional convolution are renamed to torch's
parametrization names, a bare ``Wav2Vec2Model`` state dict gains the ``wav2vec2.`` prefix, and the state dicts
must then match key for key and shape for shape. Weights are read from safetensors (one file or shards) or from
``pytorch_model.bin`` through ``fmzoo.core.weights.safe_torch_load`` (``weights_only=True``: tensors and plain
containers only; a file holding anything else is refused).

:class:`TransformersWav2Vec2` registers the layout with the core (``Plugin.weight_formats``), so
``fmzoo.core.from_pretrained(<transformers folder>)`` (and ``Wav2Vec2.from_pretrained``) detects it and converts it
once into an fmzoo checkpoint under ``$FMZOO_HUB/imported``.
"""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

from fmzoo.core.errors import CheckpointError, UsageError
from fmzoo.core.weights import OfficialWeights, WeightFormat, pickle_head, safe_torch_load

from .models.tera import TERA
from .models.wav2vec2 import (
    CTC_SPECIAL_TOKENS,
    HF_CONFIG_DEFAULTS,
    TOKENIZER_CONFIG_NAME,
    VOCAB_NAME,
    Wav2Vec2,
)

__all__ = ["from_hf", "from_official", "read_ctc_vocab",
           "from_fairseq", "from_s3prl_tera", "is_hf_config", "rename_hf_keys", "fairseq_to_hf_keys",
           "read_hf_state_dict", "PRETRAINING_HEAD", "TransformersWav2Vec2", "FairseqWav2Vec2", "S3PRLTera",
           "OFFICIAL"]

# transformers' Wav2Vec2Config defaults for keys an older config.json may lack (they differ from the paper's BASE)
OLD_CONFIG_DEFAULTS = dict(mask_time_prob=0.05, layerdrop=0.1, activation_dropout=0.1, feat_proj_dropout=0.0,
                           feat_quantizer_dropout=0.0)
PRETRAINING_HEAD = ("quantizer.", "project_hid.", "project_q.")


def is_hf_config(cfg: dict) -> bool:
    """A transformers Wav2Vec2 config.json (not an fmzoo one, which names its ``architecture``)."""
    return "architecture" not in cfg and cfg.get("model_type") == "wav2vec2"


def rename_hf_keys(sd: dict) -> dict:
    """transformers' state-dict names -> fmzoo's (weight norm as a torch parametrization; a bare model gets the
    ``wav2vec2.`` prefix of the pretraining model)."""
    out = {}
    for k, v in sd.items():
        k2 = k
        if k.endswith("pos_conv_embed.conv.weight_g"):
            k2 = k[: -len("weight_g")] + "parametrizations.weight.original0"
        elif k.endswith("pos_conv_embed.conv.weight_v"):
            k2 = k[: -len("weight_v")] + "parametrizations.weight.original1"
        out[k2] = v
    if not any(k.startswith("wav2vec2.") for k in out):  # a bare Wav2Vec2Model checkpoint
        out = {(k if k.split(".")[0] in ("quantizer", "project_hid", "project_q") else "wav2vec2." + k): v
               for k, v in out.items()}
    return out


def read_hf_state_dict(directory: Path) -> dict:
    """The state dict of a transformers folder: ``model.safetensors``, sharded safetensors
    (``model.safetensors.index.json``), ``pytorch_model.bin`` or sharded ``pytorch_model.bin.index.json``; pickles
    through ``safe_torch_load`` (weights_only). Safetensors are preferred when several are present."""
    from safetensors.torch import load_file

    def shards(index: Path) -> list[Path]:
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: unreadable shard index ({e})") from None
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not (directory / f).is_file() or Path(f).name != f]
        if missing:
            raise CheckpointError(f"{index}: shards {missing} are missing from {directory}")
        return [directory / f for f in files]

    def safetensors(path: Path) -> dict:
        try:
            return load_file(str(path))
        except Exception as e:
            raise CheckpointError(f"{path}: unreadable safetensors ({e})") from None

    def pickle(path: Path) -> dict:
        sd = safe_torch_load(path)
        if not isinstance(sd, dict) or not all(hasattr(v, "shape") for v in sd.values()):
            raise CheckpointError(f"{path}: expected a state dict of tensors")
        return dict(sd)

    if (directory / "model.safetensors").is_file():
        return safetensors(directory / "model.safetensors")
    if (directory / "model.safetensors.index.json").is_file():
        out: dict = {}
        for f in shards(directory / "model.safetensors.index.json"):
            out.update(safetensors(f))
        return out
    if (directory / "pytorch_model.bin").is_file():
        return pickle(directory / "pytorch_model.bin")
    if (directory / "pytorch_model.bin.index.json").is_file():
        out = {}
        for f in shards(directory / "pytorch_model.bin.index.json"):
            out.update(pickle(f))
        return out
    raise CheckpointError(f"{directory}: no weights (model.safetensors, model.safetensors.index.json, "
                          "pytorch_model.bin or pytorch_model.bin.index.json)")


def preprocessor_spec(directory: Path) -> dict:
    """``preprocessor_config.json`` (Wav2Vec2FeatureExtractor) -> input-spec arguments: ``sample_rate`` from
    ``sampling_rate``, ``do_normalize``. Absent: transformers' defaults (16 kHz, do_normalize true)."""
    path = Path(directory) / "preprocessor_config.json"
    if not path.is_file():
        return {}
    try:
        pre = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    if int(pre.get("feature_size", 1)) != 1:
        raise CheckpointError(f"{path}: feature_size {pre['feature_size']} (expected 1: raw mono waveform)")
    return {"sample_rate": int(pre.get("sampling_rate", 16000)), "do_normalize": bool(pre.get("do_normalize", True))}


def _load_into(model: Wav2Vec2, sd: dict, where, allow_missing_head: bool, ignore_prefixes: tuple) -> Wav2Vec2:
    sd = {k: v for k, v in sd.items() if not any(k.startswith(p) for p in ignore_prefixes)}
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if allow_missing_head:
        missing = [k for k in missing if not k.startswith(PRETRAINING_HEAD)]
    if missing or unexpected:
        hint = ""
        if any(k.startswith("lm_head.") for k in unexpected):
            hint = ("; lm_head.* is a CTC head: keep it with ctc_head=True (needs the release's vocab.json) or "
                    "drop it with ctc_head=False")
        raise CheckpointError(f"{where}: state dict mismatch; missing {missing[:8]}, unexpected {unexpected[:8]}{hint}")
    bad = [k for k in sd if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(f"{where}: shape mismatch for {bad[:5]}")
    if allow_missing_head and any(k.startswith(PRETRAINING_HEAD) for k in own if k not in sd):
        warnings.warn("checkpoint has no pretraining head; quantizer/project_* are freshly initialised", stacklevel=3)
    model.load_state_dict(sd, strict=False)
    return model


def read_ctc_vocab(directory: Path, rows: int) -> tuple[list[str], dict]:
    """A CTC release's ``vocab.json`` (token -> id) as the token list in id order, and the special tokens of its
    ``tokenizer_config.json`` (Wav2Vec2CTCTokenizer's defaults where it names none); ``rows``: lm_head's outputs."""
    path = Path(directory) / VOCAB_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory}: keeping the CTC head (lm_head, {rows} outputs) needs the release's "
                              f"{VOCAB_NAME}, which is not there (drop the head with ctc_head=False)")
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
        tok_cfg = json.loads((path.parent / TOKENIZER_CONFIG_NAME).read_text(encoding="utf-8")) \
            if (path.parent / TOKENIZER_CONFIG_NAME).is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{directory}: unreadable tokenizer files ({e})") from None
    if not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        raise CheckpointError(f"{path}: expected a mapping token -> id with ids 0..n-1 (Wav2Vec2CTCTokenizer's)")
    if len(vocab) != rows:
        raise CheckpointError(f"{path}: {len(vocab)} tokens, but the CTC head (lm_head) has {rows} outputs")
    tokens = {k: tok_cfg[k] for k in CTC_SPECIAL_TOKENS if isinstance(tok_cfg.get(k), (str, bool))}
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])], tokens


def from_hf(directory: str | Path, *, ctc_head: bool | None = None, allow_missing_head: bool = False,
            ignore_prefixes: tuple[str, ...] = (), **spec) -> Wav2Vec2:
    """fmzoo's Wav2Vec2 from a transformers checkpoint directory, its weights loaded strictly.

    ``facebook/wav2vec2-base``-style checkpoints (with quantizer) load strictly. A CTC release
    (``Wav2Vec2ForCTC``: ``lm_head.*``, no quantizer) keeps its CTC head with ``ctc_head=True`` (the vocabulary and
    special tokens from its ``vocab.json`` / ``tokenizer_config.json``; logits as ``Wav2Vec2ForCTC``'s) or drops it
    with ``ctc_head=False``; ``ctc_head=None`` (the default) keeps a head the folder has. Either way the missing
    pretraining head is freshly initialised (with a warning). A bare ``Wav2Vec2Model`` needs
    ``allow_missing_head=True``. The input spec comes from ``preprocessor_config.json`` (``sampling_rate``,
    ``do_normalize``); ``spec`` (``sample_rate``, ``resample``, ``do_normalize``) overrides it."""
    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{directory}: no config.json")
    hf = json.loads(cfg_path.read_text())
    if hf.get("model_type") not in (None, "wav2vec2"):
        raise CheckpointError(f"{directory}: model_type {hf.get('model_type')!r} is not 'wav2vec2'")
    if hf.get("add_adapter"):
        raise CheckpointError(f"{directory}: Wav2Vec2 adapters (add_adapter=true) are not supported")
    kwargs = {k: hf[k] for k in HF_CONFIG_DEFAULTS if k in hf}
    for k, v in OLD_CONFIG_DEFAULTS.items():
        kwargs.setdefault(k, v)
    spec = {**preprocessor_spec(directory), **spec}
    sd = rename_hf_keys(read_hf_state_dict(directory))
    has_head = "lm_head.weight" in sd
    ignore_prefixes = tuple(ignore_prefixes)
    if any("lm_head".startswith(p) or p.startswith("lm_head") for p in ignore_prefixes):
        if ctc_head:
            raise CheckpointError(f"{directory}: ctc_head=True but ignore_prefixes {ignore_prefixes} drops lm_head")
        ctc_head = False
    if ctc_head and not has_head:
        raise CheckpointError(f"{directory}: ctc_head=True, but the weights hold no CTC head (lm_head.weight)")
    keep = has_head if ctc_head is None else bool(ctc_head)
    if has_head and not keep:
        ignore_prefixes = (*ignore_prefixes, "lm_head.")
    if has_head:  # a CTC release has no quantizer: its pretraining head is freshly initialised
        allow_missing_head = True
    ctc = {}
    if keep:
        vocab, tokens = read_ctc_vocab(directory, int(sd["lm_head.weight"].shape[0]))
        ctc = dict(ctc_vocab=vocab, ctc_tokens=tokens, final_dropout=float(hf.get("final_dropout", 0.1)))
        pad_id = hf.get("pad_token_id")
        if pad_id is not None and not (0 <= int(pad_id) < len(vocab)):
            raise CheckpointError(f"{directory}: config.json's pad_token_id {pad_id} is outside vocab.json's "
                                  f"{len(vocab)} tokens")
        if pad_id is not None and vocab[int(pad_id)] != tokens.get("pad_token", CTC_SPECIAL_TOKENS["pad_token"]):
            raise CheckpointError(f"{directory}: config.json's pad_token_id {pad_id} (the CTC blank) is "
                                  f"{vocab[int(pad_id)]!r} in vocab.json, not the tokenizer's pad token")
    model = Wav2Vec2(**spec, **ctc, **kwargs)
    return _load_into(model, sd, directory, allow_missing_head, ignore_prefixes)


def from_official(entry_id: str, *, ctc_head: bool | None = None, revision: str | None = None) -> Wav2Vec2:
    """A catalogue entry of the transformers layout as fmzoo's Wav2Vec2, with its CTC head kept (``ctc_head=True``:
    the release's ``vocab.json`` and ``tokenizer_config.json`` are fetched too) or dropped (``False``) as asked;
    ``None``: the entry's own options (``facebook/wav2vec2-base-960h``: dropped, what
    ``fmzoo.core.from_pretrained(ID)`` gives). Converted once and cached like every official import (the cache key
    includes the options, so both variants coexist)."""
    from dataclasses import replace

    from fmzoo.core import from_pretrained
    from fmzoo.core.weights import catalogue, resolve_official

    entry = catalogue().get(entry_id)
    if entry is None:
        raise UsageError(f"{entry_id!r} is not in the official catalogue (`fmzoo list`)")
    if ctc_head is not None:
        if entry.format != TransformersWav2Vec2.name:
            raise UsageError(f"{entry_id}: ctc_head applies to the {TransformersWav2Vec2.name} layout, not "
                             f"{entry.format}")
        drops = "lm_head" in entry.options.get("ignore_prefixes", ())
        if ctc_head or not drops:
            options = {k: v for k, v in entry.options.items() if k not in ("ignore_prefixes", "allow_missing_head")}
            extra = (VOCAB_NAME, TOKENIZER_CONFIG_NAME) if ctc_head else ()
            files = entry.files + tuple(f for f in extra if f not in entry.files)
            notes = entry.notes if not ctc_head else (
                f"Loaded with its CTC head kept (lm_head over the vocab.json characters; Wav2Vec2ForCTC's logits, "
                f"greedy decoding as Wav2Vec2Processor.batch_decode). {entry.notes}")
            entry = replace(entry, options={**options, "ctc_head": bool(ctc_head)}, files=files, notes=notes)
    return from_pretrained(resolve_official(entry, revision))


class TransformersWav2Vec2(WeightFormat):
    """The transformers layout (what ``Wav2Vec2ForPreTraining.save_pretrained`` writes and the Hub serves)."""

    name = "transformers-wav2vec2"
    input = "16 kHz mono waveform, zero mean / unit variance per utterance where the release normalises"
    architecture = "Wav2Vec2"
    description = ("a transformers Wav2Vec2 folder: config.json (model_type wav2vec2), preprocessor_config.json, and "
                   "model.safetensors, sharded safetensors (model.safetensors.index.json) or pytorch_model.bin")

    def detect(self, path: Path) -> bool:
        config = Path(path) / "config.json"
        if not config.is_file():
            return False
        try:
            return is_hf_config(json.loads(config.read_text()))
        except (OSError, json.JSONDecodeError):
            return False

    def convert(self, path: Path, **options) -> Wav2Vec2:
        """``from_hf`` (options: ``ctc_head``, ``allow_missing_head``, ``ignore_prefixes``, ``sample_rate``,
        ``resample``, ``do_normalize``); the release's preprocessing (``preprocessor_config.json``) is the model's
        input spec."""
        options = dict(options)
        if "ignore_prefixes" in options:
            options["ignore_prefixes"] = tuple(options["ignore_prefixes"])
        return from_hf(path, **options).eval()


# ------------------------------------------------------------------------------------------- pickled releases




def _numpy_scalars() -> list:
    """numpy scalars and their dtypes (fairseq's logged metrics; pure data, rebuilt from bytes) under the module
    names numpy 1 and numpy 2 pickle them with."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1
        from numpy.core.multiarray import scalar
    out: list = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in ("Float64DType", "Float32DType", "Float16DType", "Int64DType",
                                            "Int32DType", "BoolDType") if hasattr(dtypes, n)]
    return out


def _namespace_to_dict(x):
    import argparse

    return vars(x) if isinstance(x, argparse.Namespace) else x


# ------------------------------------------------------------------------------------------- fairseq wav2vec 2.0

# fairseq Wav2Vec2Config defaults (fairseq/models/wav2vec/wav2vec2.py) for keys an ``args``/``cfg`` may lack
FAIRSEQ_DEFAULTS = dict(
    extractor_mode="default", encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
    encoder_attention_heads=12, activation_fn="gelu", dropout=0.1, attention_dropout=0.1, activation_dropout=0.0,
    encoder_layerdrop=0.0, dropout_input=0.0, dropout_features=0.0, final_dim=0, layer_norm_first=False,
    conv_feature_layers="[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]", conv_bias=False,
    logit_temp=0.1, quantize_targets=False, latent_vars=320, latent_groups=2, latent_dim=0, mask_length=10,
    mask_prob=0.65, num_negatives=100, conv_pos=128, conv_pos_groups=16,
)


def _conv_layers(spec) -> list:
    """fairseq's ``conv_feature_layers`` string, e.g. ``"[(512, 10, 5)] + [(512, 3, 2)] * 4"``, evaluated
    without ``eval``: lists and tuples of integers joined by ``+`` and repeated by ``* n``."""
    if isinstance(spec, (list, tuple)):
        return [tuple(int(v) for v in t) for t in spec]

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return ev(node.left) + ev(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return ev(node.left) * ev(node.right)
        raise CheckpointError(f"conv_feature_layers {spec!r}: only lists of (dim, kernel, stride) tuples, + and * n")

    try:
        layers = ev(ast.parse(str(spec), mode="eval"))
    except SyntaxError as e:
        raise CheckpointError(f"conv_feature_layers {spec!r} is not a list expression ({e})") from None
    return [tuple(int(v) for v in t) for t in layers]


def fairseq_config(obj: dict) -> tuple[dict, dict, bool]:
    """(model config, task config, fine-tuned?) from a fairseq checkpoint's ``cfg`` (a plain dict, written by
    ``OmegaConf.to_container``) or legacy ``args`` (argparse.Namespace); a fine-tuned model's pretraining config
    is its ``w2v_args``."""
    if isinstance(obj.get("cfg"), dict):
        model, task = dict(obj["cfg"].get("model") or {}), dict(obj["cfg"].get("task") or {})
    elif obj.get("args") is not None:
        model = dict(_namespace_to_dict(obj["args"]))
        task = model
    else:
        raise CheckpointError("fairseq checkpoint without 'cfg' or 'args': its architecture is unknown")
    finetuned = "w2v_args" in model or "w2v_path" in model
    if finetuned:
        w2v = _namespace_to_dict(model.get("w2v_args"))
        if not isinstance(w2v, dict):
            raise CheckpointError("fine-tuned fairseq checkpoint without w2v_args (the pretraining config); convert "
                                  "the pretrained checkpoint it names in w2v_path instead")
        if isinstance(w2v.get("model"), dict):
            model, task = dict(w2v["model"]), dict(w2v.get("task") or task)
        else:
            model, task = dict(w2v), dict(w2v)
    return model, task, finetuned


def fairseq_hf_config(model: dict) -> dict:
    """fairseq's Wav2Vec2Config -> transformers' Wav2Vec2Config keys (as transformers' conversion script sets them)."""
    c = {**FAIRSEQ_DEFAULTS, **{k: v for k, v in model.items() if v is not None}}
    if c.get("_name") not in (None, "wav2vec2") or c.get("arch") not in (None, "wav2vec2"):
        raise CheckpointError(f"fairseq model {c.get('_name') or c.get('arch')!r} is not wav2vec2")
    if c["extractor_mode"] not in ("default", "layer_norm"):
        raise CheckpointError(f"fairseq extractor_mode {c['extractor_mode']!r} is not supported")
    if c["activation_fn"] not in ("gelu", "relu", "swish"):
        raise CheckpointError(f"fairseq activation_fn {c['activation_fn']!r} is not supported (gelu, relu, swish)")
    # architecture switches of later fairseq models that transformers' Wav2Vec2 (and fmzoo's) do not compute
    unsupported = {k: c.get(k) for k, ok in (("pos_conv_depth", 1), ("conv_pos_batch_norm", False),
                                              ("layer_type", "transformer"), ("quantize_input", False),
                                              ("target_glu", False), ("quantizer_depth", 1))
                   if c.get(k) is not None and c.get(k) != ok}
    if unsupported:
        raise CheckpointError(f"fairseq wav2vec2 options fmzoo does not reproduce: {unsupported}")
    layers = _conv_layers(c["conv_feature_layers"])
    final_dim = int(c["final_dim"]) if int(c["final_dim"]) > 0 else int(c["encoder_embed_dim"])
    return dict(
        hidden_size=int(c["encoder_embed_dim"]), num_hidden_layers=int(c["encoder_layers"]),
        num_attention_heads=int(c["encoder_attention_heads"]), intermediate_size=int(c["encoder_ffn_embed_dim"]),
        hidden_act=str(c["activation_fn"]), hidden_dropout=float(c["dropout"]),
        attention_dropout=float(c["attention_dropout"]), activation_dropout=float(c["activation_dropout"]),
        feat_proj_dropout=float(c["dropout_input"]), feat_quantizer_dropout=float(c["dropout_features"]),
        layerdrop=float(c["encoder_layerdrop"]), layer_norm_eps=1e-5,
        feat_extract_norm="group" if c["extractor_mode"] == "default" else "layer", feat_extract_activation="gelu",
        conv_dim=[t[0] for t in layers], conv_kernel=[t[1] for t in layers], conv_stride=[t[2] for t in layers],
        conv_bias=bool(c["conv_bias"]), num_conv_pos_embeddings=int(c["conv_pos"]),
        num_conv_pos_embedding_groups=int(c["conv_pos_groups"]), do_stable_layer_norm=bool(c["layer_norm_first"]),
        mask_time_prob=float(c["mask_prob"]), mask_time_length=int(c["mask_length"]),
        num_codevectors_per_group=int(c["latent_vars"]), num_codevector_groups=int(c["latent_groups"]),
        contrastive_logits_temperature=float(c["logit_temp"]), num_negatives=int(c["num_negatives"]),
        codevector_dim=int(c["latent_dim"]) if int(c["latent_dim"]) > 0 else final_dim, proj_codevector_dim=final_dim,
    )


# fairseq module path -> transformers' (the table of transformers' convert_wav2vec2_original_pytorch_checkpoint_to_
# pytorch.py, plus the pretraining head's names: quantizer.vars / final_proj)
_FAIRSEQ_LAYER = {"self_attn.k_proj": "attention.k_proj", "self_attn.v_proj": "attention.v_proj",
                  "self_attn.q_proj": "attention.q_proj", "self_attn.out_proj": "attention.out_proj",
                  "self_attn_layer_norm": "layer_norm", "fc1": "feed_forward.intermediate_dense",
                  "fc2": "feed_forward.output_dense", "final_layer_norm": "final_layer_norm"}
_FAIRSEQ_TOP = {"post_extract_proj": "wav2vec2.feature_projection.projection",
                "layer_norm": "wav2vec2.feature_projection.layer_norm", "encoder.layer_norm": "wav2vec2.encoder.layer_norm",
                "quantizer.weight_proj": "quantizer.weight_proj", "project_q": "project_q", "final_proj": "project_hid"}
_POS = "wav2vec2.encoder.pos_conv_embed.conv."


def fairseq_to_hf_keys(sd: dict, feat_extract_norm: str) -> tuple[dict, list[str]]:
    """fairseq wav2vec 2.0 state-dict names -> fmzoo's (= transformers' Wav2Vec2ForPreTraining, weight norm as a torch
    parametrization). Returns (mapped, dropped): ``w2v_encoder.proj`` (a fine-tuned model's CTC head) is dropped;
    any other unknown key raises."""
    out, dropped, unknown = {}, [], []
    for key, v in sd.items():
        k = key.removeprefix("w2v_encoder.w2v_model.")
        if key.startswith("w2v_encoder.proj."):
            dropped.append(key)
            continue
        new = None
        parts = k.split(".")
        if k.startswith("feature_extractor.conv_layers.") and len(parts) >= 5:
            i, sub, leaf = parts[2], parts[3], parts[-1]
            base = f"wav2vec2.feature_extractor.conv_layers.{i}."
            if sub == "0":
                new = base + "conv." + leaf
            elif sub == "2" and (len(parts) == 5 or parts[4] == "1"):  # GroupNorm (.2.w) / LayerNorm in Sequential (.2.1.w)
                if (feat_extract_norm == "group") == (len(parts) == 5):
                    new = base + "layer_norm." + leaf
        elif k == "mask_emb":
            new = "wav2vec2.masked_spec_embed"
        elif k == "quantizer.vars":
            new = "quantizer.codevectors"
        elif k.startswith("encoder.pos_conv.0."):
            leaf = k[len("encoder.pos_conv.0."):]
            new = _POS + {"weight_g": "parametrizations.weight.original0",
                          "weight_v": "parametrizations.weight.original1"}.get(leaf, leaf)
        elif k.startswith("encoder.layers.") and len(parts) >= 5:
            mod = ".".join(parts[3:-1])
            if mod in _FAIRSEQ_LAYER:
                new = f"wav2vec2.encoder.layers.{parts[2]}.{_FAIRSEQ_LAYER[mod]}.{parts[-1]}"
        elif ".".join(parts[:-1]) in _FAIRSEQ_TOP:
            new = _FAIRSEQ_TOP[".".join(parts[:-1])] + "." + parts[-1]
        if new is None:
            unknown.append(key)
        else:
            out[new] = v
    if unknown:
        raise CheckpointError(f"fairseq wav2vec 2.0 keys fmzoo does not map: {unknown[:8]}")
    return out, dropped


FAIRSEQ_ALLOW_DOC = "argparse.Namespace (legacy args), numpy scalars and dtypes (logged metrics)"


def _fairseq_allow() -> tuple:
    import argparse

    return (argparse.Namespace, *_numpy_scalars())


def from_fairseq(path: str | Path, *, allow_missing_head: bool | None = None, sample_rate: int | None = None,
                 do_normalize: bool | None = None, resample: bool = True) -> Wav2Vec2:
    """fmzoo's Wav2Vec2 from a fairseq wav2vec 2.0 checkpoint (``wav2vec_small.pt`` and kin), unpickled with
    ``safe_torch_load`` and the allow-list ``argparse.Namespace`` + numpy scalars; an OmegaConf ``DictConfig`` or any
    other class is refused. The input spec comes from the task config (``sample_rate``, ``normalize``: the BASE
    LibriSpeech models were trained on unnormalised waveforms, the LV-60 / XLS-R ones normalised). A fine-tuned
    checkpoint (``w2v_encoder.*``) loads its encoder; its CTC head is dropped and the pretraining head is fresh."""
    path = Path(path)
    obj = safe_torch_load(path, allow=_fairseq_allow())
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise CheckpointError(f"{path}: not a fairseq checkpoint (a dict with a 'model' state dict)")
    model_cfg, task_cfg, finetuned = fairseq_config(obj)
    hf = fairseq_hf_config(model_cfg)
    sd, dropped = fairseq_to_hf_keys(obj["model"], hf["feat_extract_norm"])
    if dropped:
        warnings.warn(f"{path.name}: dropped the CTC head {dropped} (its letters are in fairseq's separate "
                      "dict.ltr.txt, not in the .pt; the transformers release of the same model keeps its head: "
                      "from_hf(..., ctc_head=True))", stacklevel=2)
    spec = dict(sample_rate=int(sample_rate or task_cfg.get("sample_rate") or 16000), resample=resample,
                do_normalize=bool(task_cfg.get("normalize", False)) if do_normalize is None else bool(do_normalize))
    model = Wav2Vec2(**spec, **hf)
    no_head = not any(k.startswith(PRETRAINING_HEAD) for k in sd)
    allow = (finetuned or no_head) if allow_missing_head is None else allow_missing_head
    return _load_into(model, sd, path, allow, ())


class FairseqWav2Vec2(WeightFormat):
    """fairseq's wav2vec 2.0 release files (``dl.fbaipublicfiles.com/fairseq/wav2vec/*.pt``)."""

    name = "fairseq-wav2vec2"
    input = "16 kHz mono waveform (normalised per utterance where the release's task.normalize is set)"
    architecture = "Wav2Vec2"
    description = ("a fairseq wav2vec 2.0 .pt file: {'model': state dict (post_extract_proj, "
                   "feature_extractor.conv_layers...), 'args': Namespace or 'cfg': dict}")

    pickle_allow = _fairseq_allow()

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_file():
            return False
        head = pickle_head(path)
        return b"post_extract_proj" in head and b"feature_extractor.conv_layers" in head

    def convert(self, path: Path, **options) -> Wav2Vec2:
        """``from_fairseq`` (options: ``allow_missing_head``, ``sample_rate``, ``do_normalize``, ``resample``)."""
        return from_fairseq(path, **options).eval()


# ------------------------------------------------------------------------------------------- s3prl TERA


def s3prl_tera_config(obj: dict) -> dict:
    """The upstream config of an s3prl TERA / Mockingjay checkpoint: ``Config`` in legacy files, else
    ``Upstream_Config`` (s3prl's ``TransformerBuilder``)."""
    for key in ("Config", "Upstream_Config"):
        cfg = obj.get(key)
        if isinstance(cfg, dict) and "transformer" in cfg:
            return cfg
    raise CheckpointError("s3prl checkpoint without a 'transformer' section in Config / Upstream_Config")


def s3prl_tera_keys(transformer: dict, head: dict | None, num_layers: int) -> dict:
    """s3prl's TransformerModel / TransformerSpecPredictionHead names -> fmzoo's TERA (torch
    ``nn.TransformerEncoderLayer``: query/key/value are stacked into ``in_proj``). TF-style ``gamma``/``beta``
    LayerNorm names of old files are read as ``weight``/``bias``, as s3prl's loader does."""
    import torch

    def fix(sd):
        return {k.replace("gamma", "weight").replace("beta", "bias"): v for k, v in sd.items()}

    t = fix(transformer)
    out = {}
    used = set()

    def take(k):
        used.add(k)
        return t[k]

    try:
        for leaf in ("weight", "bias"):
            out[f"spec_transform.{leaf}"] = take(f"input_representations.spec_transform.{leaf}")
            out[f"input_norm.{leaf}"] = take(f"input_representations.LayerNorm.{leaf}")
            for i in range(num_layers):
                p = f"encoder.layer.{i}."
                q, k, v = (take(p + f"attention.self.{n}.{leaf}") for n in ("query", "key", "value"))
                out[f"layers.{i}.self_attn.in_proj_{leaf}"] = torch.cat([q, k, v], 0)
                out[f"layers.{i}.self_attn.out_proj.{leaf}"] = take(p + f"attention.output.dense.{leaf}")
                out[f"layers.{i}.norm1.{leaf}"] = take(p + f"attention.output.LayerNorm.{leaf}")
                out[f"layers.{i}.linear1.{leaf}"] = take(p + f"intermediate.dense.{leaf}")
                out[f"layers.{i}.linear2.{leaf}"] = take(p + f"output.dense.{leaf}")
                out[f"layers.{i}.norm2.{leaf}"] = take(p + f"output.LayerNorm.{leaf}")
    except KeyError as e:
        raise CheckpointError(f"s3prl Transformer state dict lacks {e}") from None
    extra = [k for k in t if k not in used]
    if extra:
        raise CheckpointError(f"s3prl Transformer keys fmzoo does not map: {extra[:8]}")
    if head is not None:
        h = fix(head)
        try:
            for leaf in ("weight", "bias"):
                out[f"head.0.{leaf}"] = h[f"dense.{leaf}"]
                out[f"head.2.{leaf}"] = h[f"LayerNorm.{leaf}"]
                out[f"head.3.{leaf}"] = h[f"output.{leaf}"]
        except KeyError as e:
            raise CheckpointError(f"s3prl SpecHead state dict lacks {e}") from None
    return out


def from_s3prl_tera(path: str | Path, *, resample: bool = True) -> TERA:
    """fmzoo's TERA from an s3prl TERA upstream checkpoint (``states-*.ckpt``), unpickled with ``safe_torch_load``
    and the allow-list ``argparse.Namespace`` (the runner's ``Args``) + numpy scalars. The s3prl model is a
    post-LN BERT encoder over s3prl's on-the-fly log-mel (``audio`` config: ``target_level`` dB, 25/10 ms, 80 mels,
    log, per-utterance CMVN), reproduced by the ``s3prl`` frontend of :meth:`TERA.featurize`. Refused: kaldi fbank
    inputs (``audio.kaldi``), deltas, pre-LN and non-GELU encoders."""
    path = Path(path)
    obj = safe_torch_load(path, allow=_fairseq_allow())
    if not isinstance(obj, dict) or not isinstance(obj.get("Transformer"), dict):
        raise CheckpointError(f"{path}: not an s3prl upstream checkpoint (a dict with a 'Transformer' state dict)")
    cfg = s3prl_tera_config(obj)
    t, audio = cfg["transformer"], cfg.get("audio")
    if not isinstance(audio, dict):
        raise CheckpointError(f"{path}: no 'audio' config (pre-extracted features): s3prl's on-the-fly extraction "
                              "is what fmzoo reproduces")
    if "kaldi" in audio:
        raise CheckpointError(f"{path}: kaldi {audio['kaldi'].get('feat_type')} input (torchaudio's kaldi "
                              "compliance features) is not reproduced by fmzoo; the log-mel releases are")
    inp = audio.get("input") or {}
    if inp.get("feat_type") != "mel" or not inp.get("log", False) or int(inp.get("delta", 0)) != 0:
        raise CheckpointError(f"{path}: input features {inp} (fmzoo reproduces feat_type mel, log, delta 0)")
    if t.get("pre_layer_norm"):
        raise CheckpointError(f"{path}: pre-LN s3prl Transformer (pre_layer_norm) is not supported")
    if str(t.get("hidden_act", "gelu")) != "gelu":
        raise CheckpointError(f"{path}: hidden_act {t.get('hidden_act')!r} (fmzoo's TERA uses GELU)")
    n_mels = int(audio.get("n_mels", 40))
    seq = int((cfg.get("task") or {}).get("sequence_length", 0) or 0)
    model = TERA(
        input_dim=n_mels, hidden_size=int(t["hidden_size"]), num_hidden_layers=int(t["num_hidden_layers"]),
        num_attention_heads=int(t["num_attention_heads"]), intermediate_size=int(t["intermediate_size"]),
        hidden_dropout=float(t["hidden_dropout_prob"]), attention_dropout=float(t["attention_probs_dropout_prob"]),
        layer_norm_eps=float(t["layer_norm_eps"]), max_positions=seq if seq > 0 else 24000,
        sample_rate=int(audio.get("sample_rate", 16000)), n_mels=n_mels, win_ms=float(audio.get("win_ms", 25)),
        hop_ms=float(audio.get("hop_ms", 10)), cmvn="utterance" if inp.get("cmvn", False) else "none",
        resample=resample, frontend="s3prl", target_level=float(audio.get("target_level", -25)),
    )
    if int(audio.get("n_freq", 201)) != 201 or model.feat_cfg["win_ms"] != 25 or model.feat_cfg["hop_ms"] != 10:
        raise CheckpointError(f"{path}: STFT settings {audio} differ from s3prl's 201 bins / 25 ms / 10 ms")
    head = obj.get("SpecHead") if isinstance(obj.get("SpecHead"), dict) else None
    sd = s3prl_tera_keys(obj["Transformer"], head, int(t["num_hidden_layers"]))
    own = model.state_dict()
    if head is not None and tuple(sd["head.3.weight"].shape) != tuple(own["head.3.weight"].shape):
        warnings.warn(f"{path.name}: SpecHead predicts {sd['head.3.weight'].shape[0]} dims, not the input's "
                      f"{n_mels}; the reconstruction head is freshly initialised", stacklevel=2)
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    bad = [k for k in sd if tuple(sd[k].shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(f"{path}: shape mismatch for {bad[:5]}")
    missing = [k for k in own if k not in sd and not k.startswith("head.") and k not in ("cmvn_mean", "cmvn_std")]
    if missing:
        raise CheckpointError(f"{path}: missing {missing[:8]}")
    model.load_state_dict(sd, strict=False)
    return model


class S3PRLTera(WeightFormat):
    """s3prl's TERA upstream checkpoints (``states-*.ckpt``; the s3prl hub's ``tera_*`` entries)."""

    name = "s3prl-tera"
    input = "16 kHz mono waveform -> s3prl log-mel (the release's n_mels, 25/10 ms; per-utterance CMVN if it sets cmvn)"
    architecture = "TERA"
    description = ("an s3prl TERA upstream .ckpt: {'Transformer': state dict (input_representations, encoder.layer), "
                   "'SpecHead': state dict, 'Upstream_Config' or 'Config': dict with transformer/task/audio}")

    pickle_allow = _fairseq_allow()  # the runner's Args (argparse.Namespace) + numpy scalars

    def detect(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_file():
            return False
        head = pickle_head(path)
        return b"Transformer" in head and b"input_representations.spec_transform" in head

    def convert(self, path: Path, **options) -> TERA:
        """``from_s3prl_tera`` (option: ``resample``)."""
        return from_s3prl_tera(path, **options).eval()


# ------------------------------------------------------------------------------------------- catalogue

_W2V_CITE = ("Baevski, Zhou, Mohamed, Auli. wav2vec 2.0: A Framework for Self-Supervised Learning of Speech "
             "Representations. NeurIPS 2020.")
_XLSR_CITE = ("Babu et al. XLS-R: Self-supervised Cross-lingual Speech Representation Learning at Scale. "
              "Interspeech 2022.")
_TERA_CITE = ("Liu, Li, Lee. TERA: Self-Supervised Learning of Transformer Encoder Representation for Speech. "
              "IEEE/ACM TASLP 29, 2021.")
_HF_FILES = ("config.json", "preprocessor_config.json")

OFFICIAL = [
    OfficialWeights(
        id="facebook/wav2vec2-base", method="wav2vec 2.0", format="transformers-wav2vec2",
        source="https://huggingface.co/facebook/wav2vec2-base", license="apache-2.0", params="95M",
        hf_repo="facebook/wav2vec2-base", files=(*_HF_FILES, "pytorch_model.bin"), citation=_W2V_CITE,
        notes="BASE, pretrained on LibriSpeech 960 h, with its quantizer (Wav2Vec2ForPreTraining). The repository "
              "holds pytorch_model.bin only (read with torch.load(weights_only=True)).",
    ),
    OfficialWeights(
        id="facebook/wav2vec2-large-lv60", method="wav2vec 2.0", format="transformers-wav2vec2",
        source="https://huggingface.co/facebook/wav2vec2-large-lv60", license="apache-2.0", params="317M",
        hf_repo="facebook/wav2vec2-large-lv60", files=(*_HF_FILES, "pytorch_model.bin"), citation=_W2V_CITE,
        notes="LARGE, pretrained on Libri-Light 60k h (layer-norm feature encoder, pre-LN Transformer).",
    ),
    OfficialWeights(
        id="facebook/wav2vec2-base-960h", method="wav2vec 2.0", format="transformers-wav2vec2",
        source="https://huggingface.co/facebook/wav2vec2-base-960h", license="apache-2.0", params="95M",
        hf_repo="facebook/wav2vec2-base-960h", files=(*_HF_FILES, "model.safetensors"), citation=_W2V_CITE,
        options={"allow_missing_head": True, "ignore_prefixes": ["lm_head"]},
        notes="BASE fine-tuned for CTC on LibriSpeech 960 h. By this id the encoder only: its CTC head (lm_head, 32 "
              "characters) is dropped; fmzoo.speech.weights.from_official(ID, ctc_head=True) keeps it. The "
              "checkpoint has no quantizer, so the pretraining head is freshly initialised.",
    ),
    OfficialWeights(
        id="facebook/wav2vec2-xls-r-300m", method="wav2vec 2.0 (XLS-R)", format="transformers-wav2vec2",
        source="https://huggingface.co/facebook/wav2vec2-xls-r-300m", license="apache-2.0", params="300M",
        hf_repo="facebook/wav2vec2-xls-r-300m", files=(*_HF_FILES, "pytorch_model.bin"), citation=_XLSR_CITE,
        notes="XLS-R 300M, pretrained on 436k h of speech in 128 languages.",
    ),
    OfficialWeights(
        id="fairseq/wav2vec_small", method="wav2vec 2.0", format="fairseq-wav2vec2",
        source="https://dl.fbaipublicfiles.com/fairseq/wav2vec/wav2vec_small.pt", license="mit", params="95M",
        hf_repo=None, files=("wav2vec_small.pt",), citation=_W2V_CITE,
        notes="fairseq's own BASE LibriSpeech 960 h file (the source of facebook/wav2vec2-base); trained on "
              "unnormalised waveforms (task.normalize false), which the converted input spec keeps.",
    ),
    OfficialWeights(
        id="s3prl/tera_960hr", method="TERA", format="s3prl-tera",
        source="https://huggingface.co/s3prl/tera", license="apache-2.0", params="21M", hf_repo="s3prl/tera",
        files=("tera_logMelBase_T_F_M_AdamW_b32_1m_960hr_drop1/states-1000000.ckpt",), citation=_TERA_CITE,
        notes="s3prl's tera_960hr: logMelBase-T-F-M (time + frequency + magnitude alteration), AdamW, batch 32, 1M "
              "steps on LibriSpeech 960 h, dropout 0.1. Input: s3prl's 80-d log-mel at -25 dB with per-utterance "
              "CMVN, at most 1500 frames (15 s) per forward, as s3prl's sequence_length.",
    ),
    OfficialWeights(
        id="s3prl/tera_100hr", method="TERA", format="s3prl-tera",
        source="https://www.dropbox.com/s/l9ryl82k64m1lsk/states-200000.ckpt?dl=1", license="apache-2.0",
        params="21M", hf_repo=None, files=("states-200000.ckpt",), citation=_TERA_CITE,
        notes="s3prl's tera_100hr: logMelBase-T-F-M, 200k steps on LibriSpeech train-clean-100; hosted on Dropbox "
              "(not the Hugging Face Hub): download it and `fmzoo import states-200000.ckpt --id s3prl/tera_100hr`.",
    ),
]
