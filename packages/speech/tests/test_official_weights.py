"""Official speech releases (fmzoo.speech.weights): each layout written with random weights in the release's own
format and read back through ``fmzoo.core.from_pretrained(PATH)``, compared with the reference implementation.

- transformers-wav2vec2: transformers' Wav2Vec2 itself (BASE size for the main check); pytorch_model.bin,
  sharded safetensors, preprocessor_config.json, a catalogue id from an offline Hugging Face cache;
- fairseq-wav2vec2: a fairseq .pt whose state dict carries fairseq's key names (fairseq's wav2vec2.py module names;
  mapped back from a transformers model with the inverse of transformers' conversion table), compared with that
  transformers model;
- s3prl-tera: s3prl's own TransformerModel / TransformerSpecPredictionHead (s3prl/upstream/mockingjay/model.py
  from the s3prl package) saved in the runner's checkpoint layout; its input features restated from s3prl's
  OnlinePreprocessor with transformers' HTK mel filters (torchaudio, which s3prl uses, is not installed).
"""

import argparse
import importlib.util
import json
import math
import os
import time
import warnings

import numpy as np
import pytest
import torch
from fmzoo.core import CheckpointError, InputSpecError, from_pretrained
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2ForPreTraining

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
             conv_dim=[32, 32, 32], conv_kernel=[10, 3, 3], conv_stride=[5, 2, 2], num_conv_pos_embeddings=16,
             num_conv_pos_embedding_groups=2, codevector_dim=32, proj_codevector_dim=16, num_codevectors_per_group=8)


def _hf_model(cls=Wav2Vec2ForPreTraining, seed=0, **cfg):
    torch.manual_seed(seed)
    model = cls(Wav2Vec2Config(**cfg)).eval()
    with torch.no_grad():  # layer norms away from their (1, 0) initialisation, so that a swapped key shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _audio(seconds=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(1, int(16000 * seconds), generator=g)


def _reference(hf, x):
    backbone = hf.wav2vec2
    with torch.no_grad():
        return backbone(x).last_hidden_state


def _ours(model, x):
    with torch.no_grad():
        return model(x, compute_loss=False)["last_hidden_state"]


def _write_hf(folder, hf, weights="bin", do_normalize=True, shards=2):
    folder.mkdir(parents=True)
    hf.config.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=do_normalize, sampling_rate=16000).save_pretrained(folder)
    sd = {k: v.contiguous() for k, v in hf.state_dict().items()}
    if weights == "bin":  # what facebook/wav2vec2-base's main branch holds
        torch.save(sd, folder / "pytorch_model.bin")
    elif weights == "safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    else:  # sharded safetensors, as save_pretrained writes large models
        from safetensors.torch import save_file

        keys = sorted(sd)
        weight_map = {}
        for i in range(shards):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = keys[i::shards]
            save_file({k: sd[k] for k in part}, str(folder / name), metadata={"format": "pt"})
            weight_map.update({k: name for k in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


# ------------------------------------------------------------------------------------------- transformers layout


def test_base_size_pytorch_model_bin_matches_transformers(tmp_path, tmp_hub):
    """The bar: transformers Wav2Vec2 at BASE size (12 x 768), pytorch_model.bin (facebook/wav2vec2-base's main holds
    only that) -> fmzoo.core.from_pretrained(PATH) -> last hidden states within 1e-5 on 1 s of audio."""
    t0 = time.time()
    hf = _hf_model()
    assert hf.config.num_hidden_layers == 12 and hf.config.hidden_size == 768
    folder = _write_hf(tmp_path / "wav2vec2-base", hf, "bin")
    model = from_pretrained(folder)
    x = _audio()
    diff = (_ours(model, x) - _reference(hf, x)).abs().max().item()
    print(f"\n[transformers-wav2vec2, BASE 12x768, pytorch_model.bin] max |diff| {diff:.2e} ({time.time() - t0:.1f} s)")
    assert diff <= 1e-5
    assert model.input_spec["sample_rate"] == 16000 and model.input_spec["do_normalize"] is True
    prov = json.loads(next((tmp_hub / "imported" / "transformers-wav2vec2").iterdir()).joinpath(
        "provenance.json").read_text())
    assert {f["name"] for f in prov["imported_from"]["files"]} >= {"pytorch_model.bin", "preprocessor_config.json"}
    # the input checks enforce the spec: 16 kHz (another rate refused when resampling is not allowed), normalised
    with pytest.raises(InputSpecError, match="16000"):
        model.prepare(np.zeros(8000, dtype=np.float32) + 0.1, 8000, resample_ok=False)
    wav = 0.3 * np.sin(np.linspace(0, 800, 16000)).astype(np.float32) + 0.2
    prepared = model.prepare(wav, 16000)
    assert abs(float(prepared.mean())) < 1e-5 and abs(float(prepared.std(unbiased=False)) - 1) < 1e-3


def test_preprocessor_without_normalisation_is_kept(tmp_path, tmp_hub):
    hf = _hf_model(**SMALL)
    model = from_pretrained(_write_hf(tmp_path / "raw", hf, "safetensors", do_normalize=False))
    assert model.input_spec["do_normalize"] is False
    wav = (0.3 * np.sin(np.linspace(0, 800, 16000)) + 0.2).astype(np.float32)
    assert torch.allclose(model.prepare(wav, 16000), torch.from_numpy(wav))


def test_sharded_safetensors_match_transformers(tmp_path, tmp_hub):
    hf = _hf_model(seed=1, **SMALL)
    model = from_pretrained(_write_hf(tmp_path / "sharded", hf, "sharded", shards=3))
    x = _audio(seed=1)
    assert (_ours(model, x) - _reference(hf, x)).abs().max().item() <= 1e-5


def test_pickled_bin_with_code_is_refused(tmp_path, tmp_hub):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = _write_hf(tmp_path / "evil", _hf_model(**SMALL), "bin")
    torch.save({"wav2vec2.masked_spec_embed": Evil()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="does not unpickle"):
        from_pretrained(folder)
    assert not marker.exists()


def _hf_cache(root, repo, commit, folder):
    snap = root / f"models--{repo.replace('/', '--')}" / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    ref = root / f"models--{repo.replace('/', '--')}" / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)


def test_ctc_release_by_id_from_an_offline_hf_cache_drops_its_head(tmp_path, tmp_hub, monkeypatch):
    """facebook/wav2vec2-base-960h (Wav2Vec2ForCTC, model.safetensors) resolved by its catalogue id from a Hugging
    Face cache, offline: the encoder equals transformers', the CTC head is dropped (fmzoo's Wav2Vec2 has none)."""
    hf = _hf_model(Wav2Vec2ForCTC, seed=2, vocab_size=32, **SMALL)
    folder = _write_hf(tmp_path / "w960", hf, "safetensors")
    (folder / "vocab.json").write_text("{}")  # in the repository, not among the catalogue's files
    _hf_cache(tmp_path / "hf", "facebook/wav2vec2-base-960h", "c" * 40, folder)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = from_pretrained("facebook/wav2vec2-base-960h")
    x = _audio(seed=2)
    assert (_ours(model, x) - _reference(hf, x)).abs().max().item() <= 1e-5
    assert not any(k.startswith("lm_head") for k in model.state_dict())
    card = next((tmp_hub / "imported" / "transformers-wav2vec2").iterdir()).joinpath("README.md").read_text()
    assert "base_model: facebook/wav2vec2-base-960h" in card and "license: apache-2.0" in card


# the character vocabulary of wav2vec 2.0's English CTC releases (facebook/wav2vec2-base-960h's vocab.json: CTC blank
# <pad>, then <s> </s> <unk>, the word delimiter |, letters by frequency and the apostrophe) and its tokenizer_config
CTC_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]
CTC_TOKENIZER_CONFIG = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                        "do_lower_case": False, "return_attention_mask": False, "do_normalize": True}


def _ctc_release(folder, hf, vocab=True):
    _write_hf(folder, hf, "safetensors")
    if vocab:
        (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(CTC_VOCAB)}))
        (folder / "tokenizer_config.json").write_text(json.dumps(CTC_TOKENIZER_CONFIG))
    return folder


def _ctc_reference(hf, x):
    with torch.no_grad():
        return hf(x).logits


def test_ctc_release_with_its_head_kept_matches_wav2vec2forctc(tmp_path, tmp_hub):
    """The CTC head kept (the default for a folder that has one): transformers' Wav2Vec2ForCTC at BASE size with
    random weights and the release's vocab.json -> fmzoo.core.from_pretrained(PATH) -> logits within 1e-5, and greedy
    decoding gives the strings of transformers' Wav2Vec2Processor.batch_decode; the converted checkpoint is itself a
    CTC folder for transformers (Wav2Vec2ForCTC, Wav2Vec2Processor)."""
    from transformers import Wav2Vec2Processor

    t0 = time.time()
    hf = _hf_model(Wav2Vec2ForCTC, seed=3, vocab_size=len(CTC_VOCAB))
    assert hf.config.num_hidden_layers == 12 and hf.config.hidden_size == 768
    folder = _ctc_release(tmp_path / "w960", hf)
    with pytest.warns(UserWarning, match="no pretraining head"):
        model = from_pretrained(folder)
    assert model.has_ctc_head and model.ctc_vocab == CTC_VOCAB
    x = _audio(seed=3)
    ref = _ctc_reference(hf, x)
    with torch.no_grad():
        ours = model.ctc_logits(x)
    diff = (ours - ref).abs().max().item()
    print(f"\n[Wav2Vec2ForCTC, BASE 12x768, lm_head kept] max |logit diff| {diff:.2e} ({time.time() - t0:.1f} s)")
    assert diff <= 1e-5 and ref.abs().max().item() > 0.1
    processor = Wav2Vec2Processor.from_pretrained(folder)
    assert model.ctc_decode(ours) == processor.batch_decode(ref.argmax(-1))
    # every decoding rule on one id sequence: repeats merged, blanks dropped, | a space, specials kept, stripped
    ids = torch.tensor([[4, 0, 11, 11, 5, 5, 0, 15, 15, 0, 15, 8, 4, 4, 18, 27, 1, 3, 2, 0, 12, 4]])
    logits = torch.nn.functional.one_hot(ids, len(CTC_VOCAB)).float()
    assert model.ctc_decode(logits) == processor.batch_decode(ids) == ["HELLO W'<s><unk></s>S"]
    # the converted checkpoint carries the head and the tokenizer files: transformers reads it back as a CTC model
    saved = model.checkpoint_dir
    assert json.loads((saved / "vocab.json").read_text()) == {t: i for i, t in enumerate(CTC_VOCAB)}
    assert "pipeline_tag: automatic-speech-recognition" in (saved / "README.md").read_text()
    back = Wav2Vec2ForCTC.from_pretrained(saved).eval()
    assert (_ctc_reference(back, x) - ref).abs().max().item() <= 1e-5
    assert Wav2Vec2Processor.from_pretrained(saved).batch_decode(ref.argmax(-1)) == model.ctc_decode(ours)


def test_ctc_head_dropped_when_asked_and_refused_without_its_vocabulary(tmp_path, tmp_hub):
    from fmzoo.speech.weights import from_hf

    hf = _hf_model(Wav2Vec2ForCTC, seed=4, vocab_size=len(CTC_VOCAB), **SMALL)
    folder = _ctc_release(tmp_path / "ctc", hf)
    with pytest.warns(UserWarning, match="no pretraining head"):
        dropped = from_hf(folder, ctc_head=False).eval()
    assert not dropped.has_ctc_head and not any(k.startswith("lm_head") for k in dropped.state_dict())
    x = _audio(seed=4)
    assert (_ours(dropped, x) - _reference(hf, x)).abs().max().item() <= 1e-5
    with pytest.raises(Exception, match="no CTC head"):
        dropped.ctc_logits(x)
    bare = _ctc_release(tmp_path / "bare", hf, vocab=False)
    with pytest.raises(CheckpointError, match="vocab.json"):
        from_hf(bare, ctc_head=True)
    with pytest.raises(CheckpointError, match="no CTC head"):
        from_hf(_write_hf(tmp_path / "pre", _hf_model(**SMALL), "safetensors"), ctc_head=True)


def test_ctc_release_by_id_keeps_its_head_when_asked(tmp_path, tmp_hub, monkeypatch):
    """facebook/wav2vec2-base-960h from an offline Hugging Face cache: by its id the head is dropped (the catalogue's
    default), with from_official(ID, ctc_head=True) it is kept (Wav2Vec2ForCTC's logits)."""
    from fmzoo.speech.weights import from_official

    hf = _hf_model(Wav2Vec2ForCTC, seed=5, vocab_size=len(CTC_VOCAB), **SMALL)
    _hf_cache(tmp_path / "hf", "facebook/wav2vec2-base-960h", "d" * 40, _ctc_release(tmp_path / "w960", hf))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    x = _audio(seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kept = from_official("facebook/wav2vec2-base-960h", ctc_head=True)
        dropped = from_pretrained("facebook/wav2vec2-base-960h")
    with torch.no_grad():
        assert (kept.ctc_logits(x) - _ctc_reference(hf, x)).abs().max().item() <= 1e-5
    assert kept.ctc_vocab == CTC_VOCAB and not dropped.has_ctc_head
    assert (_ours(dropped, x) - _reference(hf, x)).abs().max().item() <= 1e-5
    assert "ctc_head=True" in (kept.checkpoint_dir / "README.md").read_text()
    # transcribe (fmzoo's input checks and normalisation, then greedy CTC) = the transformers processor + model
    from transformers import Wav2Vec2Processor

    processor = Wav2Vec2Processor.from_pretrained(tmp_path / "w960")
    wav = (0.2 * np.random.default_rng(5).standard_normal(12000)).astype(np.float32)
    inputs = processor(wav, sampling_rate=16000, return_tensors="pt")
    expected = processor.batch_decode(_ctc_reference(hf, inputs.input_values).argmax(-1))
    assert kept.transcribe(wav, 16000) == kept.transcribe([wav], 16000) == expected and expected[0]


def test_catalogue_entries():
    from fmzoo.core.weights import catalogue

    cat = catalogue()
    for id_ in ("facebook/wav2vec2-base", "facebook/wav2vec2-large-lv60", "facebook/wav2vec2-base-960h",
                "facebook/wav2vec2-xls-r-300m", "fairseq/wav2vec_small", "s3prl/tera_960hr", "s3prl/tera_100hr"):
        assert id_ in cat, id_
    assert cat["facebook/wav2vec2-base"].files[-1] == "pytorch_model.bin"
    assert cat["facebook/wav2vec2-base-960h"].options["ignore_prefixes"] == ["lm_head"]
    assert cat["s3prl/tera_960hr"].hf_repo == "s3prl/tera" and cat["s3prl/tera_100hr"].hf_repo is None
    with pytest.raises(CheckpointError, match="fmzoo import FILE --format s3prl-tera --id s3prl/tera_100hr"):
        from_pretrained("s3prl/tera_100hr")


# ------------------------------------------------------------------------------------------- fairseq layout

# transformers module path -> fairseq's (fairseq/models/wav2vec/wav2vec2.py; inverse of transformers' MAPPING)
_TO_FAIRSEQ_LAYER = {"attention.k_proj": "self_attn.k_proj", "attention.v_proj": "self_attn.v_proj",
                     "attention.q_proj": "self_attn.q_proj", "attention.out_proj": "self_attn.out_proj",
                     "layer_norm": "self_attn_layer_norm", "feed_forward.intermediate_dense": "fc1",
                     "feed_forward.output_dense": "fc2", "final_layer_norm": "final_layer_norm"}


def _to_fairseq(hf_sd, group_norm, prefix=""):
    out = {}
    for k, v in hf_sd.items():
        p = k.split(".")
        if k.startswith("wav2vec2.feature_extractor.conv_layers."):
            i, mod, leaf = p[3], p[4], p[-1]
            new = f"feature_extractor.conv_layers.{i}." + ("0." if mod == "conv" else ("2." if group_norm else "2.1."))
            new += leaf
        elif k == "wav2vec2.masked_spec_embed":
            new = "mask_emb"
        elif k.startswith("wav2vec2.feature_projection.projection."):
            new = "post_extract_proj." + p[-1]
        elif k.startswith("wav2vec2.feature_projection.layer_norm."):
            new = "layer_norm." + p[-1]
        elif k.startswith("wav2vec2.encoder.pos_conv_embed.conv."):
            new = "encoder.pos_conv.0." + {"original0": "weight_g", "original1": "weight_v"}.get(p[-1], p[-1])
        elif k.startswith("wav2vec2.encoder.layers."):
            new = f"encoder.layers.{p[3]}.{_TO_FAIRSEQ_LAYER['.'.join(p[4:-1])]}.{p[-1]}"
        elif k.startswith("wav2vec2.encoder.layer_norm."):
            new = "encoder.layer_norm." + p[-1]
        elif k == "quantizer.codevectors":
            new = "quantizer.vars"
        elif k.startswith("project_hid."):
            new = "final_proj." + p[-1]
        elif k.startswith("lm_head."):
            out["w2v_encoder.proj." + p[-1]] = v
            continue
        else:  # quantizer.weight_proj, project_q: the same names
            new = k
        out[prefix + new] = v
    return out


BASE_ARGS = dict(arch="wav2vec2", task="audio_pretraining", extractor_mode="default", encoder_layers=12,
                 encoder_embed_dim=768, encoder_ffn_embed_dim=3072, encoder_attention_heads=12, activation_fn="gelu",
                 conv_feature_layers="[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
                 conv_bias=False, final_dim=256, latent_vars=320, latent_groups=2, latent_dim=0, quantize_targets=True,
                 layer_norm_first=False, conv_pos=128, conv_pos_groups=16, normalize=False, sample_rate=16000,
                 mask_prob=0.65, mask_length=10, logit_temp=0.1, num_negatives=100)


def test_fairseq_base_pt_matches_transformers(tmp_path, tmp_hub):
    """wav2vec_small.pt's layout at its real size: {'args': Namespace, 'model': fairseq keys, optimizer history,
    extra_state with numpy-scalar metrics}; converted == the transformers model the weights came from."""
    t0 = time.time()
    hf = _hf_model(seed=3, num_codevectors_per_group=320, codevector_dim=256, proj_codevector_dim=256)
    sd = _to_fairseq(hf.state_dict(), group_norm=True)
    assert "post_extract_proj.weight" in sd and "encoder.pos_conv.0.weight_g" in sd and "quantizer.vars" in sd
    ckpt = {"args": argparse.Namespace(**BASE_ARGS), "model": sd,
            "optimizer_history": [{"criterion_name": "Wav2vecCriterion", "optimizer_name": "FairseqAdam",
                                   "lr_scheduler_state": {"best": 1.5}, "num_updates": 400000}],
            "extra_state": {"metrics": {"train": [("loss", "loss", "AverageMeter", {"val": np.float64(2.5)})]},
                            "train_iterator": {"epoch": 10}, "val_loss": np.float64(1.25)},
            "last_optimizer_state": None}
    torch.save(ckpt, tmp_path / "wav2vec_small.pt")
    model = from_pretrained(tmp_path / "wav2vec_small.pt")
    x = _audio(seed=3)
    diff = (_ours(model, x) - _reference(hf, x)).abs().max().item()
    print(f"\n[fairseq-wav2vec2, BASE 12x768] max |diff| {diff:.2e} ({time.time() - t0:.1f} s)")
    assert diff <= 1e-5
    assert model.input_spec["do_normalize"] is False  # the BASE LibriSpeech model: task.normalize false
    with torch.no_grad():  # the pretraining head too (quantizer.vars -> codevectors, final_proj -> project_hid)
        q_ours = model.project_q(model.quantizer(model.wav2vec2.feature_projection(
            model.wav2vec2.feature_extractor(x).transpose(1, 2))[1])[0])
        feats = hf.wav2vec2.feature_projection(hf.wav2vec2.feature_extractor(x).transpose(1, 2))[1]
        q_ref = hf.project_q(hf.quantizer(feats)[0])
    assert (q_ours - q_ref).abs().max().item() <= 1e-5


def test_fairseq_finetuned_cfg_dict_layer_norm_variant(tmp_path, tmp_hub):
    """A hydra-era fine-tuned file: 'cfg' (plain dict, as fairseq writes it with OmegaConf.to_container), the LV-60
    architecture (layer-norm feature encoder, conv bias, pre-LN), keys under w2v_encoder.w2v_model., a CTC head."""
    cfg = dict(SMALL, feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True, vocab_size=12)
    hf = _hf_model(Wav2Vec2ForCTC, seed=4, **cfg)
    sd = _to_fairseq(hf.state_dict(), group_norm=False, prefix="w2v_encoder.w2v_model.")
    w2v_model = dict(_name="wav2vec2", extractor_mode="layer_norm", encoder_layers=2, encoder_embed_dim=32,
                     encoder_ffn_embed_dim=64, encoder_attention_heads=2, activation_fn="gelu",
                     conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 2", conv_bias=True, layer_norm_first=True,
                     conv_pos=16, conv_pos_groups=2, quantize_targets=True, latent_vars=8, latent_groups=2,
                     latent_dim=32, final_dim=16)
    ckpt = {"args": None, "model": sd,
            "cfg": {"model": {"_name": "wav2vec_ctc", "w2v_path": "/x/pretrained.pt",
                              "w2v_args": {"model": w2v_model, "task": {"normalize": True, "sample_rate": 16000}}},
                    "task": {"_name": "audio_finetuning", "normalize": True}}}
    torch.save(ckpt, tmp_path / "finetuned.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = from_pretrained(tmp_path / "finetuned.pt")
    assert any("CTC head" in str(w.message) for w in caught)
    x = _audio(seed=4)
    assert (_ours(model, x) - _reference(hf, x)).abs().max().item() <= 1e-5
    assert model.input_spec["do_normalize"] is True


def test_fairseq_file_with_other_objects_is_refused(tmp_path, tmp_hub):
    class Unlisted:  # e.g. an OmegaConf DictConfig pickled into 'cfg': a class outside the allow-list
        def __reduce__(self):
            return (argparse.ArgumentParser, ())

    hf = _hf_model(**SMALL)
    torch.save({"cfg": Unlisted(), "model": _to_fairseq(hf.state_dict(), True)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="does not unpickle"):
        from_pretrained(tmp_path / "x.pt")


# ------------------------------------------------------------------------------------------- s3prl TERA


def _s3prl_model_module():
    import s3prl  # the reference package (pip install s3prl --no-deps: its model code needs torch and numpy only)

    path = os.path.join(os.path.dirname(s3prl.__file__), "upstream", "mockingjay", "model.py")
    spec = importlib.util.spec_from_file_location("s3prl_mockingjay_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# s3prl/pretrain/tera/exp_model_config/logMelBase-T-F-M.yaml (the tera_960hr / tera_100hr configuration)
TERA_UPSTREAM = {
    "transformer": dict(input_dim=-1, hidden_size=768, num_hidden_layers=3, num_attention_heads=12,
                        intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1, initializer_range=0.02, layer_norm_eps=1e-12,
                        share_layer=False, pre_layer_norm=False),
    "task": dict(loss="L1", sequence_length=1500, position_encoding_size=768, mask_proportion=0.15,
                 mask_consecutive_min=7, mask_consecutive_max=7, mask_allow_overlap=True, mask_bucket_ratio=1.5,
                 mask_frequency=0.2, noise_proportion=0.15),
    "audio": dict(target_level=-25, win_ms=25, hop_ms=10, n_freq=201, n_mels=80, n_mfcc=13,
                  input=dict(feat_type="mel", channel=0, log=True, delta=0, cmvn=True),
                  target=dict(feat_type="mel", channel=1, log=True, delta=0, cmvn=True)),
}


def _s3prl_features(wav):
    """s3prl's OnlinePreprocessor (feat_type mel, log, delta 0, cmvn) restated step by step from its source, with
    transformers' HTK mel filters standing in for torchaudio's MelScale (norm None, mel_scale htk)."""
    from transformers.audio_utils import mel_filter_bank

    x = wav * (10 ** (-25 / 20)) / (wav.pow(2).mean().pow(0.5) + 1e-10)  # _normalize_wav_decibel
    spec = torch.stft(x, n_fft=400, hop_length=160, win_length=400, window=torch.hann_window(400), center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    linear = torch.view_as_real(spec).pow(2).sum(-1)  # _magphase: |X|^2
    fb = torch.from_numpy(mel_filter_bank(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0,
                                          max_frequency=8000.0, sampling_rate=16000, norm=None,
                                          mel_scale="htk")).float()
    mel = torch.matmul(linear.transpose(-1, -2), fb).transpose(-1, -2)  # MelScale: [mels, frames]
    feat = (mel + 1e-10).log()
    feat = (feat - feat.mean(dim=-1, keepdim=True)) / (feat.std(dim=-1, keepdim=True) + 1e-10)
    return feat.transpose(0, 1)  # [frames, mels]


def _s3prl_positions(seq_len, hidden):  # builder.get_sinusoid_table (numpy, float64), as s3prl computes it
    pos = np.arange(seq_len)[:, None] / np.power(10000, 2 * (np.arange(hidden) // 2) / hidden)[None]
    pos[:, 0::2], pos[:, 1::2] = np.sin(pos[:, 0::2]), np.cos(pos[:, 1::2])
    return torch.FloatTensor(pos)


def _s3prl_tera_release(seed: int = 5):
    """tera_960hr's layout at its real size with random weights: s3prl's TransformerModel and SpecHead (eval mode) and
    the dict its runner saves (also the official-size benchmark's writer)."""
    mj = _s3prl_model_module()
    torch.manual_seed(seed)
    config = mj.TransformerConfig(TERA_UPSTREAM["transformer"])
    ref = mj.TransformerModel(config, 80).eval()
    head = mj.TransformerSpecPredictionHead(config, 80).eval()
    with torch.no_grad():
        for p in list(ref.parameters()) + list(head.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    ckpt = {"Transformer": ref.state_dict(), "SpecHead": head.state_dict(),
            "Optimizer": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]}, "Step": 1000000,
            "Args": argparse.Namespace(upstream="tera", config="config_runner.yaml", seed=1337),
            "Config": {"runner": {"total_steps": 1000000}, "optimizer": {"name": "AdamW", "lr": 2e-4}},
            "Upstream_Config": TERA_UPSTREAM}
    return ref, head, ckpt


def test_s3prl_tera_checkpoint_matches_s3prl(tmp_path, tmp_hub):
    """tera_960hr's layout at its real size (3 x 768, 80 log-mel): s3prl's TransformerModel + SpecHead, saved as the
    runner saves them ({'Transformer', 'SpecHead', 'Optimizer', 'Step', 'Args', 'Config', 'Upstream_Config'});
    converted hidden states (input representation + 3 layers) == s3prl's on 1 s of audio."""
    t0 = time.time()
    ref, head, ckpt = _s3prl_tera_release()
    torch.save(ckpt, tmp_path / "states-1000000.ckpt")
    model = from_pretrained(tmp_path / "states-1000000.ckpt")

    wav = _audio(seed=5)[0]
    feats_ref = _s3prl_features(wav)
    feats = model.prepare(wav.numpy(), 16000)
    feat_diff = (feats - feats_ref).abs().max().item()
    with torch.no_grad():
        t = feats_ref.shape[0]
        layers_ref = ref(feats_ref[None], _s3prl_positions(t, 768)[None], torch.ones(1, t),
                         output_all_encoded_layers=True)
        layers, _ = model.encode(feats[None])
        pred_ref, _ = head(layers_ref[-1])
        pred = model(feats[None])["prediction"]
    diff = max((a - b).abs().max().item() for a, b in zip(layers, layers_ref, strict=True))
    print(f"\n[s3prl-tera, 3x768] features max |diff| {feat_diff:.2e}; hidden states max |diff| {diff:.2e}; "
          f"SpecHead {(pred - pred_ref).abs().max().item():.2e} ({time.time() - t0:.1f} s)")
    assert len(layers) == 4 and feat_diff <= 1e-4 and diff <= 1e-5
    assert (pred - pred_ref).abs().max().item() <= 1e-5
    # and the transformer alone on identical inputs (no feature difference in the way)
    with torch.no_grad():
        only = max((a - b).abs().max().item() for a, b in zip(model.encode(feats_ref[None])[0], layers_ref,
                                                                 strict=True))
    assert only <= 1e-5
    spec = model.input_spec
    assert spec["sample_rate"] == 16000 and spec["features"]["frontend"] == "s3prl"
    assert spec["features"]["target_level"] == -25
    with pytest.raises(InputSpecError, match="16000"):
        model.prepare(np.full(8000, 0.1, dtype=np.float32), 8000, resample_ok=False)
    with pytest.raises(InputSpecError, match="1500"):  # s3prl's sequence_length: longer input is chunked there
        model.encode(torch.zeros(1, 1501, 80))


def test_s3prl_kaldi_fbank_release_is_refused(tmp_path, tmp_hub):
    mj = _s3prl_model_module()
    cfg = json.loads(json.dumps(TERA_UPSTREAM))
    cfg["transformer"].update(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=1)
    cfg["audio"] = {"kaldi": {"feat_type": "fbank"}}
    ref = mj.TransformerModel(mj.TransformerConfig(cfg["transformer"]), 240)
    torch.save({"Transformer": ref.state_dict(), "Upstream_Config": cfg, "Config": {}}, tmp_path / "fbank.ckpt")
    with pytest.raises(CheckpointError, match="kaldi fbank"):
        from_pretrained(tmp_path / "fbank.ckpt")


# ------------------------------------------------------------------------------------------- downstream


@pytest.mark.parametrize("release", ["pretraining", "ctc"])
def test_cli_finetune_on_an_imported_wav2vec2_folder(release, tmp_path, tmp_hub, capsys):
    """`fmzoo finetune PATH --seeds 0 --per-class 2 --epochs 1` on a transformers release folder (small config): a
    pretraining release, and a CTC release whose head is kept on import and ignored by the downstream network (it
    reads the encoder's layers; the CTC head gets no gradient and is not part of the result)."""
    import csv
    import shutil

    from fmzoo.core.cli import main
    from fmzoo.speech.data.fsdd import SPEAKERS, list_fsdd
    from fmzoo.speech.spec import ResampleWarning

    if release == "ctc":
        folder = _ctc_release(tmp_path / "release", _hf_model(Wav2Vec2ForCTC, vocab_size=len(CTC_VOCAB), **SMALL))
    else:
        folder = _write_hf(tmp_path / "release", _hf_model(**SMALL), "bin")
    data = tmp_path / "clips"  # real FSDD clips as a user's folder: 4 training + 2 test clips of digit 3 per speaker
    data.mkdir()
    rows = []
    for spk in SPEAKERS:
        clips = [it for it in list_fsdd("all") if it.speaker == spk and it.digit == 3]
        for it in clips[:2] + clips[-4:]:
            shutil.copy(it.path, data / it.path.name)
            rows.append({"file": it.path.name, "label": spk, "split": it.split})
    with (data / "labels.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["file", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        warnings.filterwarnings("ignore", "checkpoint has no pretraining head")
        assert main(["finetune", str(folder), "--data", str(data), "--seeds", "0", "--per-class", "2", "--epochs",
                     "1", "--no-progress", "--out", str(tmp_path / "f")]) == 0
    ft = json.loads((tmp_path / "f" / "finetune.json").read_text())
    assert ft["architecture"] == "Wav2Vec2" and ft["rows"][0]["n_labelled"] == [12]
    imported = json.loads(next((tmp_hub / "imported" / "transformers-wav2vec2").iterdir()).joinpath(
        "config.json").read_text())
    assert (imported["init_args"]["ctc_vocab"] == CTC_VOCAB) if release == "ctc" else \
        imported["init_args"]["ctc_vocab"] is None
    assert all(math.isfinite(v) for v in ft["rows"][0]["final_train_loss"])


def test_fairseq_architecture_switches_outside_wav2vec2_are_refused(tmp_path, tmp_hub):
    hf = _hf_model(**SMALL)
    args = dict(BASE_ARGS, encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
                conv_feature_layers="[(32, 10, 5)] + [(32, 3, 2)] * 2", conv_pos=16, conv_pos_groups=2, latent_vars=8,
                latent_dim=32, final_dim=16, conv_pos_batch_norm=True)
    torch.save({"args": argparse.Namespace(**args), "model": _to_fairseq(hf.state_dict(), True)}, tmp_path / "bn.pt")
    with pytest.raises(CheckpointError, match="conv_pos_batch_norm"):
        from_pretrained(tmp_path / "bn.pt")
