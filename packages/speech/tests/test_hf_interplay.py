"""wav2vec 2.0 checkpoints as transformers folders: preprocessor_config.json (Wav2Vec2FeatureExtractor),
tokenizer_config.json and card metadata on the shipped folder and on every newly saved one, and transformers' own
feature extractor, AutoModel and plain feature-extraction pipeline giving our hidden states on a real FSDD clip."""

import json
import warnings

import pytest
import torch
from fmzoo.core import from_pretrained
from fmzoo.speech.data.fsdd import fsdd_dir
from fmzoo.speech.models.wav2vec2 import Wav2Vec2
from fmzoo.speech.plugin import plugin
from fmzoo.speech.spec import ResampleWarning, load_audio
from fmzoo.speech.weights import preprocessor_spec

transformers = pytest.importorskip("transformers")
SHIPPED = plugin().checkpoints_dir / "wav2vec2-small"
TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, conv_dim=[16] * 7,
            num_conv_pos_embeddings=16, codevector_dim=32, proj_codevector_dim=32)


def _card_meta(path):
    from huggingface_hub import ModelCard

    return ModelCard.load(path / "README.md").data.to_dict()


def test_shipped_folder_has_the_feature_extractor_and_card_metadata():
    ours = from_pretrained("fmzoo/wav2vec2-small")
    shipped = json.loads((SHIPPED / "preprocessor_config.json").read_text())
    assert shipped == ours.preprocessor_config()  # the file is what save_pretrained writes today
    assert shipped["sampling_rate"] == ours.input_spec["sample_rate"] == 16000
    assert shipped["do_normalize"] is True and shipped["feature_size"] == 1 and shipped["padding_value"] == 0.0
    assert shipped["return_attention_mask"] is False  # group-norm feature encoder, as facebook/wav2vec2-base
    meta = _card_meta(SHIPPED)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "feature-extraction"
    fe = transformers.AutoFeatureExtractor.from_pretrained(SHIPPED)
    assert type(fe).__name__ == "Wav2Vec2FeatureExtractor"
    assert (fe.sampling_rate, fe.do_normalize, fe.feature_size, fe.return_attention_mask) == (16000, True, 1, False)
    cfg = transformers.AutoConfig.from_pretrained(SHIPPED)  # config.json already carries Wav2Vec2Config's keys
    assert cfg.model_type == "wav2vec2" and cfg.hidden_size == ours.hidden_size
    # the "tokenizer" of a model that reads no text is its waveform feature extractor (what pipeline() calls)
    shipped_tok = json.loads((SHIPPED / "tokenizer_config.json").read_text())
    assert shipped_tok == ours.tokenizer_files()["tokenizer_config.json"]
    assert not (SHIPPED / "vocab.json").exists()
    assert type(transformers.AutoTokenizer.from_pretrained(SHIPPED)).__name__ == "Wav2Vec2FeatureExtractor"


@pytest.mark.parametrize("folder", ["shipped", "saved"])
def test_plain_transformers_pipeline_gives_our_hidden_states_on_a_real_clip(folder, tmp_path, monkeypatch):
    """``pipeline("feature-extraction", model=DIR)``, nothing else passed, offline (AutoModel -> Wav2Vec2Model;
    AutoTokenizer -> the folder's Wav2Vec2FeatureExtractor, which normalises the raw waveform) on a real FSDD clip
    equals fmzoo's prepare + encode, for the shipped folder and for a checkpoint saved now."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ours = from_pretrained("fmzoo/wav2vec2-small")
    directory = SHIPPED
    if folder == "saved":
        directory = ours.save_pretrained(tmp_path / "saved", card={"title": "re-saved"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        wav = load_audio(fsdd_dir() / "2_yweweler_0.wav", ours.input_spec)  # a test-split clip, 8 -> 16 kHz
    hs, _ = ours.encode(ours.prepare(wav, 16000)[None])
    pipe = transformers.pipeline("feature-extraction", model=str(directory), device="cpu")
    assert type(pipe.model).__name__ == "Wav2Vec2Model"
    assert type(pipe.tokenizer).__name__ == "Wav2Vec2FeatureExtractor"
    out = pipe(wav.numpy(), return_tensors=True)  # the unnormalised waveform: the extractor normalises it
    out = torch.as_tensor(out).reshape(hs[-1].shape)
    assert float((out - hs[-1]).abs().max()) <= 1e-5
    assert float(hs[-1].abs().max()) > 0.1  # not a trivial match of zeros


def test_new_checkpoints_get_the_feature_extractor(tmp_path):
    torch.manual_seed(0)
    group = Wav2Vec2(**TINY, do_normalize=False, sample_rate=8000)
    group.save_pretrained(tmp_path / "g", card={"title": "tiny"})
    pre = json.loads((tmp_path / "g" / "preprocessor_config.json").read_text())
    assert (pre["sampling_rate"], pre["do_normalize"], pre["return_attention_mask"]) == (8000, False, False)
    assert preprocessor_spec(tmp_path / "g") == {"sample_rate": 8000, "do_normalize": False}  # our import reads it back
    meta = _card_meta(tmp_path / "g")
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "feature-extraction"
    reloaded = from_pretrained(tmp_path / "g")
    assert reloaded.preprocessor_config() == pre
    layer = Wav2Vec2(**TINY, feat_extract_norm="layer", do_stable_layer_norm=True)
    layer.save_hf(tmp_path / "l")
    fe = transformers.AutoFeatureExtractor.from_pretrained(tmp_path / "l")
    assert (fe.sampling_rate, fe.do_normalize, fe.return_attention_mask) == (16000, True, True)
    assert json.loads((tmp_path / "l" / "tokenizer_config.json").read_text()) == {
        "tokenizer_class": "Wav2Vec2FeatureExtractor"}
    assert json.loads((tmp_path / "g" / "tokenizer_config.json").read_text()) == {
        "tokenizer_class": "Wav2Vec2FeatureExtractor"}
    layer.save_pretrained(tmp_path / "c", card={"library_name": "fmzoo"})  # an explicit card value wins
    assert _card_meta(tmp_path / "c")["library_name"] == "fmzoo"
