"""The shipped checkpoints: load offline by id, stay small, carry a card, enforce their input spec, and the
wav2vec 2.0 one is a transformers checkpoint as it stands."""

import json
import warnings

import pytest
import torch
from fmzoo.core import from_pretrained
from fmzoo.core.errors import InputSpecError
from fmzoo.speech.data.fsdd import fsdd_dir
from fmzoo.speech.plugin import plugin
from fmzoo.speech.spec import ResampleWarning, load_audio

NAMES = ["tera-small", "wav2vec2-small"]


@pytest.mark.parametrize("name", NAMES)
def test_shipped_checkpoint_files(name):
    d = plugin().checkpoints_dir / name
    assert (d / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    card = (d / "README.md").read_text()
    assert "CPU" in card and "FSDD" in card and "## The paper's numbers" in card
    prov = json.loads((d / "provenance.json").read_text())
    assert "FSDD train split only" in prov["audio_seen"] and prov["metrics"]["steps"] > 0
    assert prov["recipe"]["name"] == name


@pytest.mark.parametrize("name", NAMES)
def test_load_by_id_and_encode_real_audio(name):
    m = from_pretrained(f"fmzoo/{name}")
    path = fsdd_dir() / "5_nicolas_2.wav"  # a test-split clip, 8 kHz
    with pytest.warns(ResampleWarning):
        wav = load_audio(path, m.input_spec)
    with pytest.raises(InputSpecError, match="8000 Hz"):
        load_audio(path, m.input_spec, resample_ok=False)
    x = m.prepare(wav, 16000)
    hs, _ = m.encode(x[None])
    assert len(hs) == m.num_layers and all(torch.isfinite(h).all() for h in hs)
    assert hs[-1].shape[-1] == m.hidden_size


def test_wav2vec2_small_is_a_transformers_checkpoint():
    from transformers import Wav2Vec2ForPreTraining

    d = plugin().checkpoints_dir / "wav2vec2-small"
    hf = Wav2Vec2ForPreTraining.from_pretrained(d).eval()
    ours = from_pretrained("fmzoo/wav2vec2-small")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        x = ours.prepare(load_audio(fsdd_dir() / "7_theo_0.wav"), 16000)[None]
    with torch.no_grad():
        a = hf.wav2vec2(x, output_hidden_states=True)
        b = ours(x, compute_loss=False)
    d_max = max(float((h1 - h2).abs().max()) for h1, h2 in zip(a.hidden_states, b["hidden_states"], strict=True))
    assert d_max < 1e-5
