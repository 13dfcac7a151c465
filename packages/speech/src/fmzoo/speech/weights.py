"""Official wav2vec 2.0 weights: a transformers Wav2Vec2 checkpoint directory (``config.json`` +
``model.safetensors``, e.g. ``facebook/wav2vec2-base``) loaded unchanged into fmzoo's :class:`Wav2Vec2`.

fmzoo's Wav2Vec2 keeps transformers' parameter names and config keys, so the import is a check, not a
conversion: the config's known keys become constructor arguments (older configs get transformers' own
defaults for keys they lack), the weight-norm keys of the positional convolution are renamed to torch's
parametrization names, a bare ``Wav2Vec2Model`` state dict gains the ``wav2vec2.`` prefix, and the state dicts
must then match key for key and shape for shape. Safetensors only (pickle checkpoints are refused).

:class:`TransformersWav2Vec2` registers the layout with the core (``Plugin.weight_formats``), so
``fmzoo.core.from_pretrained(<transformers folder>)`` (and ``Wav2Vec2.from_pretrained``) detects it and converts it
once into an fmzoo checkpoint under ``$FMZOO_HUB/imported``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from fmzoo.core.errors import CheckpointError
from fmzoo.core.weights import WeightFormat

from .models.wav2vec2 import HF_CONFIG_DEFAULTS, Wav2Vec2

__all__ = ["from_hf", "is_hf_config", "rename_hf_keys", "PRETRAINING_HEAD", "TransformersWav2Vec2"]

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


def from_hf(directory: str | Path, *, allow_missing_head: bool = False, ignore_prefixes: tuple[str, ...] = (),
            **spec) -> Wav2Vec2:
    """fmzoo's Wav2Vec2 from a transformers checkpoint directory, its weights loaded strictly.

    ``facebook/wav2vec2-base``-style checkpoints (with quantizer) load strictly. A checkpoint without the
    pretraining head (``Wav2Vec2Model``/``ForCTC``) needs ``allow_missing_head=True`` (the head is then freshly
    initialised) and ``ignore_prefixes=("lm_head",)`` for its task head. ``spec``: input-spec arguments
    (``sample_rate``, ``resample``)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, w_path = directory / "config.json", directory / "model.safetensors"
    if not cfg_path.is_file():
        raise CheckpointError(f"{directory}: no config.json")
    if not w_path.is_file():
        raise CheckpointError(f"{directory}: no model.safetensors (pickle checkpoints are refused; convert to safetensors)")
    hf = json.loads(cfg_path.read_text())
    if hf.get("model_type") not in (None, "wav2vec2"):
        raise CheckpointError(f"{directory}: model_type {hf.get('model_type')!r} is not 'wav2vec2'")
    if hf.get("add_adapter"):
        raise CheckpointError(f"{directory}: Wav2Vec2 adapters (add_adapter=true) are not supported")
    kwargs = {k: hf[k] for k in HF_CONFIG_DEFAULTS if k in hf}
    for k, v in OLD_CONFIG_DEFAULTS.items():
        kwargs.setdefault(k, v)
    model = Wav2Vec2(**spec, **kwargs)
    try:
        sd = load_file(str(w_path))
    except Exception as e:
        raise CheckpointError(f"{w_path}: unreadable safetensors ({e})") from e
    sd = rename_hf_keys(sd)
    sd = {k: v for k, v in sd.items() if not any(k.startswith(p) for p in ignore_prefixes)}
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if allow_missing_head:
        missing = [k for k in missing if not k.startswith(PRETRAINING_HEAD)]
    if missing or unexpected:
        raise CheckpointError(f"{directory}: state dict mismatch; missing {missing[:8]}, unexpected {unexpected[:8]}")
    bad = [k for k in sd if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(f"{directory}: shape mismatch for {bad[:5]}")
    if allow_missing_head and any(k.startswith(PRETRAINING_HEAD) for k in own if k not in sd):
        warnings.warn("checkpoint has no pretraining head; quantizer/project_* are freshly initialised", stacklevel=2)
    model.load_state_dict(sd, strict=False)
    return model


class TransformersWav2Vec2(WeightFormat):
    """The transformers layout (what ``Wav2Vec2ForPreTraining.save_pretrained`` writes and the Hub serves)."""

    name = "transformers-wav2vec2"
    architecture = "Wav2Vec2"
    description = "a transformers Wav2Vec2 folder: config.json (model_type wav2vec2) + model.safetensors"

    def detect(self, path: Path) -> bool:
        config = Path(path) / "config.json"
        if not config.is_file():
            return False
        try:
            return is_hf_config(json.loads(config.read_text()))
        except (OSError, json.JSONDecodeError):
            return False

    def convert(self, path: Path, **options) -> Wav2Vec2:
        """``from_hf`` (options: ``allow_missing_head``, ``ignore_prefixes``, ``sample_rate``, ``resample``); the
        release's preprocessing is the model's input spec: 16 kHz mono, normalised per utterance."""
        options = dict(options)
        if "ignore_prefixes" in options:
            options["ignore_prefixes"] = tuple(options["ignore_prefixes"])
        return from_hf(path, **options).eval()
