"""The typed input specs (fmzoo.core.spec.InputSpec subclasses in fmzoo.speech.spec): every speech model class
declares one, the shipped checkpoints' specs fit theirs, and a broken spec is refused when a model is saved and
when a checkpoint is loaded, with a message naming the key."""

import json
from dataclasses import fields

import pytest
from fmzoo.core import from_pretrained
from fmzoo.core.errors import InputSpecError
from fmzoo.speech.models.tera import TERA
from fmzoo.speech.models.wav2vec2 import Wav2Vec2
from fmzoo.speech.spec import AudioInput, AudioSpec, LogMelInput, WaveformInput

TINY_W2V = dict(conv_dim=[16, 16], conv_stride=[5, 2], conv_kernel=[10, 3], hidden_size=16, num_hidden_layers=1,
                num_attention_heads=2, intermediate_size=32, num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2,
                num_codevectors_per_group=4, codevector_dim=8, proj_codevector_dim=8, num_negatives=3)
TINY_TERA = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)


def test_every_model_class_declares_its_spec_and_the_keys_are_stated_once():
    assert Wav2Vec2.input_spec_class is WaveformInput and TERA.input_spec_class is LogMelInput
    assert issubclass(WaveformInput, AudioInput) and issubclass(LogMelInput, AudioInput)
    # the audio keys come from the AudioSpec dataclass (the runtime view), not from a second list
    assert set(AudioInput.required) | set(AudioInput.optional) == {f.name for f in fields(AudioSpec)}
    AudioInput.validate(AudioSpec().to_dict())


@pytest.mark.parametrize("name,cls", [("tera-small", LogMelInput), ("wav2vec2-small", WaveformInput)])
def test_shipped_specs_fit_their_class(name, cls):
    m = from_pretrained(f"fmzoo/{name}")
    assert type(m).input_spec_class is cls
    assert cls.validate(m.input_spec) is m.input_spec


@pytest.mark.parametrize("make", [lambda: Wav2Vec2(**TINY_W2V), lambda: TERA(**TINY_TERA)])
@pytest.mark.parametrize("edit,key", [
    (lambda s: s.pop("sample_rate"), "sample_rate"),  # a missing key
    (lambda s: s.update(sample_rate="16k"), "sample_rate"),  # a wrong JSON type
    (lambda s: s.update(channels=2), "channels"),  # a rule: mono only
    (lambda s: s.update(max_clipped_fraction=3), "max_clipped_fraction"),
])
def test_broken_spec_refused_at_save_and_at_load(tmp_path, make, edit, key):
    m = make()
    m.save_pretrained(tmp_path / "ok")
    back = from_pretrained(tmp_path / "ok")
    assert back.input_spec == m.input_spec
    # save time: the model's own spec is broken
    edit(m.input_spec)
    with pytest.raises(InputSpecError, match=key):
        m.save_pretrained(tmp_path / "bad")
    # load time: an edited config.json
    cfg_path = tmp_path / "ok" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    edit(cfg["input_spec"])
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(InputSpecError, match=key):
        from_pretrained(tmp_path / "ok")


def test_log_mel_rules_across_keys(tmp_path):
    m = TERA(**TINY_TERA)
    spec = m.input_spec
    with pytest.raises(InputSpecError, match=r"\['features'\]\['sample_rate'\].*expected 16000"):
        LogMelInput.validate({**spec, "features": {**spec["features"], "sample_rate": 8000}})
    with pytest.raises(InputSpecError, match="cmvn"):
        LogMelInput.validate({**spec, "features": {**spec["features"], "cmvn": "per-speaker"}})
    with pytest.raises(InputSpecError, match="n_mels"):
        LogMelInput.validate({**spec, "features": {k: v for k, v in spec["features"].items() if k != "n_mels"}})
    with pytest.raises(InputSpecError, match="features"):
        LogMelInput.validate({k: v for k, v in spec.items() if k != "features"})
    m.input_spec["features"]["sample_rate"] = 22050  # refused at save time too
    with pytest.raises(InputSpecError, match="sample_rate"):
        m.save_pretrained(tmp_path / "bad")


def test_waveform_spec_types():
    spec = Wav2Vec2(**TINY_W2V).input_spec
    with pytest.raises(InputSpecError, match="do_normalize"):
        WaveformInput.validate({**spec, "do_normalize": "yes"})
    WaveformInput.validate({k: v for k, v in spec.items() if k != "do_normalize"})  # older checkpoints lack it
