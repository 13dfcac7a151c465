"""Synthesized pretraining speech (espeak-ng + flite, installed by scripts/setup.sh) and segment mixing."""

import hashlib
import json

import pytest
import soundfile as sf
import torch
from fmzoo.speech.data import synth
from fmzoo.speech.data.fsdd import SegmentDataset, segment_stream
from fmzoo.speech.data.synth import SynthConfig, build_corpus, load_corpus, plan_corpus


def test_plan_is_deterministic_and_mixes_engines_and_voices():
    cfg = SynthConfig(n=400, seed=3, flite_fraction=0.25)
    plan = plan_corpus(cfg)
    assert plan == plan_corpus(cfg) and plan != plan_corpus(SynthConfig(n=400, seed=4))
    flite = [u for u in plan if u.engine == "flite"]
    assert 0.18 < len(flite) / len(plan) < 0.32
    assert {u.voice for u in flite} == set(synth.FLITE_VOICES)
    espeak_voices = {u.voice for u in plan if u.engine == "espeak-ng"}
    assert len(espeak_voices) > 60  # accents x variants
    assert all(u.text and set(u.text.split()) <= set(synth.WORDS) | set(synth.DIGITS) for u in plan)
    with pytest.raises(ValueError):
        plan_corpus(SynthConfig(n=0))


def test_corpus_is_built_at_fsdd_rate_resumes_and_checks_its_files(tmp_path):
    cfg = SynthConfig(n=6, seed=1, flite_fraction=0.5)
    out = build_corpus(tmp_path, cfg)
    doc = json.loads((out / "manifest.json").read_text())
    assert [e["name"] for e in doc["utterances"]] == [u.name for u in plan_corpus(cfg)]
    assert {e["engine"] for e in doc["utterances"]} == {"espeak-ng", "flite"}
    assert all(v != "unknown" for v in doc["engines"].values())
    for e in doc["utterances"]:
        info = sf.info(str(out / f"{e['name']}.wav"))
        assert info.samplerate == 8000 and info.channels == 1 and info.duration > 0.5
    wavs = load_corpus(out, {"sample_rate": 16000})
    assert len(wavs) == 6 and all(w.dtype == torch.float32 and w.abs().max() <= 0.91 for w in wavs)
    # a 16 kHz copy of 8 kHz audio has (almost) nothing above 4 kHz: the band FSDD has
    spec = torch.fft.rfft(wavs[0]).abs() ** 2
    assert spec[len(spec) // 2 + 100:].sum() < 1e-3 * spec.sum()

    # interrupted build: no manifest, one file missing -> only that file is made again
    (out / "manifest.json").unlink()
    kept = out / f"{doc['utterances'][1]['name']}.wav"
    mtime = kept.stat().st_mtime_ns
    (out / f"{doc['utterances'][0]['name']}.wav").unlink()
    assert build_corpus(tmp_path, cfg) == out
    assert kept.stat().st_mtime_ns == mtime
    assert json.loads((out / "manifest.json").read_text())["utterances"] == doc["utterances"]  # same audio again

    from fmzoo.speech.spec import load_audio
    assert torch.equal(load_corpus(out, {"sample_rate": 16000})[1], load_audio(kept, {"sample_rate": 16000}))

    # a resume with other engine versions than the build started with is refused (mixed corpus)
    (out / "manifest.json").unlink()
    (out / "engines.json").write_text(json.dumps({"espeak-ng": "espeak-ng 0.0", "flite": "flite 0.0"}))
    with pytest.raises(RuntimeError, match="started with"):
        build_corpus(tmp_path, cfg)
    (out / "engines.json").unlink()
    assert json.loads((build_corpus(tmp_path, cfg) / "manifest.json").read_text())["engines"] == doc["engines"]

    data, sr = sf.read(str(kept))
    sf.write(str(kept), data[: len(data) // 2], sr)  # a modified (truncated) file is refused
    with pytest.raises(ValueError, match="sha256"):
        load_corpus(out, {"sample_rate": 16000})


def test_missing_engine_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get install espeak-ng flite"):
        build_corpus(tmp_path, SynthConfig(n=4, flite_fraction=0.5))


def test_segments_mix_extra_clips_by_fraction_and_are_unchanged_without_them():
    fsdd = [torch.full((300,), 1.0), torch.full((500,), 1.0)]
    extra = [torch.full((700,), 2.0)]
    # without extra clips the stream is the one every shipped checkpoint was pretrained on: this digest was
    # computed with the code before extra clips existed (commit 1d98ff8)
    ramps = [torch.arange(n, dtype=torch.float32) / n for n in (300, 500, 700, 1100)]
    ds = SegmentDataset(ramps, 1000, 16, seed=3, pool=4, pool_doubling=8)
    digest = hashlib.sha256()
    for epoch in range(3):
        ds.epoch = epoch
        for i in range(len(ds)):
            digest.update(ds[i].numpy().tobytes())
    assert digest.hexdigest()[:16] == "09cf261fd99eecac"
    mixed = segment_stream(fsdd, 1000, 400, seed=5, extra=extra, extra_fraction=0.5)
    from_extra = [bool((s == 2.0).all()) for s in mixed]
    assert all((s == 2.0).all() or (s == 1.0).all() for s in mixed)  # one source per segment
    assert 0.42 < sum(from_extra) / len(mixed) < 0.58
    only = segment_stream(fsdd, 1000, 20, seed=5, extra=extra, extra_fraction=1.0)
    assert all((s == 2.0).all() for s in only)
    ds = SegmentDataset(fsdd, 1000, 8, extra=extra, extra_fraction=0.5)
    assert torch.equal(ds[3], ds[3]) and ds[3].shape == (1000,)
    with pytest.raises(ValueError, match="extra"):
        SegmentDataset(fsdd, 1000, 8, extra_fraction=0.5)


def test_pretraining_audio_records_the_synthetic_corpus(tmp_path):
    from fmzoo.speech.methods._common import pretraining_audio

    recipe = {"data": {"limit": 20, "synthetic": {"n": 4, "seed": 0, "flite_fraction": 0.5, "fraction": 0.3}}}
    audio = pretraining_audio(recipe, {"sample_rate": 16000}, tmp_path)
    assert len(audio.wavs) == 20 and len(audio.extra) == 4 and audio.extra_fraction == 0.3
    assert len(audio.data_files) == 2 and audio.data_files[1]["config"]["n"] == 4
    assert "synthesized speech" in audio.audio_seen and "30% of the segments" in audio.audio_seen
    assert "50% espeak-ng" in audio.audio_seen and "50% flite" in audio.audio_seen
    assert list((tmp_path / "synthetic").glob("synth-*/manifest.json"))
    plain = pretraining_audio({"data": {"limit": 20}}, {"sample_rate": 16000}, tmp_path / "plain")
    assert not plain.extra and "FSDD train split only" in plain.audio_seen and len(plain.data_files) == 1
