"""Pretraining entry points on real FSDD audio (tiny settings), the plugin and its recipes/tables."""

import json

import pytest
import yaml
from fmzoo.core import RecipeError, load_recipe
from fmzoo.core.pretrain import run_pretraining
from fmzoo.core.registry import method_class, table_runner
from fmzoo.speech.plugin import plugin

TINY_W2V = dict(conv_dim=[16, 16, 16, 16, 16, 16, 16], hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                codevector_dim=16, proj_codevector_dim=16, num_codevectors_per_group=8, num_negatives=10)


@pytest.mark.parametrize("method", ["wav2vec2", "tera"])
def test_pretrain_writes_a_checkpoint_with_provenance(tmp_path, method):
    if method == "wav2vec2":
        recipe = {"name": "t", "method": "wav2vec2", "seed": 0, "threads": 1, "model": TINY_W2V, "epochs": 1,
                  "batch_size": 2, "data": {"segment_seconds": 0.5, "segments_per_epoch": 4, "limit": 40}}
        cls = "Wav2Vec2"
    else:
        recipe = {"name": "t", "method": "tera", "seed": 0, "threads": 1, "epochs": 1, "batch_size": 2,
                  "model": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                            "intermediate_size": 64, "cmvn": "global"},
                  "data": {"segment_seconds": 0.5, "segments_per_epoch": 4, "limit": 40}}
        cls = "TERA"
    ckpt = run_pretraining(recipe, tmp_path / "run", {"progress": False})  # seeds and sets threads, as `fmzoo pretrain`
    cfg = json.loads((ckpt / "config.json").read_text())
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert cfg["architecture"] == cls and prov["metrics"]["steps"] == 2
    assert prov["seeds"] == [0] and "seed" not in prov and prov["epochs"] == 1  # the core's provenance
    assert prov["data_files"][0]["path"].endswith("(train split: 40 clips)")
    assert "FSDD train split only" in prov["audio_seen"]
    from fmzoo.core import from_pretrained

    m = from_pretrained(ckpt)
    assert type(m).__name__ == cls and not m.training
    if cls == "TERA":  # global CMVN statistics were computed from the training clips and saved
        assert float(m.cmvn_std.min()) > 0 and float(m.cmvn_mean.abs().sum()) > 0
    assert (ckpt / "model.safetensors").stat().st_size > 0


@pytest.mark.parametrize("name", ["wav2vec2-small", "tera-small"])
def test_unknown_recipe_key_is_an_error_naming_it(tmp_path, name):
    recipe = load_recipe(name)
    with pytest.raises(RecipeError, match="unknown key.*optimizer"):  # a misspelt 'optim' must not be ignored
        run_pretraining({**recipe, "optimizer": {"lr": 1.0}}, tmp_path / "run", {"progress": False})
    if name == "wav2vec2-small":  # TERA's alteration policy is not a wav2vec 2.0 setting
        with pytest.raises(RecipeError, match="unknown key.*policy"):
            run_pretraining({**recipe, "policy": {"mask_proportion": 0.1}}, tmp_path / "run", {"progress": False})
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_cli_pretrain_on_a_folder_of_wav_files(tmp_path):
    """``fmzoo pretrain RECIPE --data FOLDER``: real FSDD clips copied into a user's folder (one in a subfolder, at
    their own 8 kHz) replace the recipe's dataset; the card and provenance say what was seen."""
    import shutil

    from fmzoo.core import from_pretrained
    from fmzoo.core.cli import main
    from fmzoo.speech.data.fsdd import list_fsdd

    items = list_fsdd("train")[::300][:8]
    (tmp_path / "mine" / "more").mkdir(parents=True)
    for i, it in enumerate(items):
        shutil.copy(it.path, tmp_path / "mine" / ("more" if i == 0 else "") / f"clip{i}.wav")
    (tmp_path / "mine" / "notes.txt").write_text("not audio: skipped")
    recipe = {"name": "t", "method": "tera", "seed": 0, "threads": 1, "epochs": 1, "batch_size": 2,
              "model": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                        "cmvn": "global"}, "data": {"segment_seconds": 0.5, "segments_per_epoch": 4},
              "card": {"title": "tiny TERA on my clips"}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.warns(UserWarning, match="8 of 8 files resampled to 16000 Hz"):
        assert main(["pretrain", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--data",
                     str(tmp_path / "mine"), "--no-progress"]) == 0
    ckpt = tmp_path / "run" / "checkpoint"
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["data_path"].endswith("mine") and prov["seeds"] == [0] and prov["metrics"]["steps"] == 2
    assert sorted(f["path"].rsplit("/", 1)[-1] for f in prov["data_files"]) == [f"clip{i}.wav" for i in range(8)]
    assert all(len(f["sha256"]) == 64 for f in prov["data_files"])
    assert prov["audio_seen"].startswith("8 WAV files of mine (the user's own audio") and "FSDD" not in prov["audio_seen"]
    card = (ckpt / "README.md").read_text()
    assert "8 WAV files of mine (the user's own audio" in card and "tiny TERA on my clips" in card
    assert float(from_pretrained(ckpt).cmvn_std.min()) > 0  # global CMVN from the user's clips


def test_pretrain_data_path_refusals(tmp_path):
    from fmzoo.core import InputSpecError

    recipe = {**load_recipe("wav2vec2-small"), "epochs": 1}
    (tmp_path / "empty").mkdir()
    (tmp_path / "a.flac").write_bytes(b"")
    for path, match in [(tmp_path / "empty", "no .wav files"), (tmp_path / "nope", "no such folder"),
                        (tmp_path / "a.flac", "expected a folder of WAV files")]:
        with pytest.raises(InputSpecError, match=match):
            run_pretraining(recipe, tmp_path / "run", {"progress": False}, data_path=path)


def test_plugin_recipes_and_table():
    p = plugin()
    assert set(p.models) == {"Wav2Vec2", "TERA"} and set(p.methods) == {"wav2vec2", "tera"} and not p.pretrain
    names = {f.stem for f in p.recipes_dir.glob("*.yaml")}
    assert {"wav2vec2-small", "wav2vec2-base", "tera-small", "tera-base"} <= names
    for f in p.recipes_dir.glob("*.yaml"):
        r = load_recipe(str(f))
        assert r["method"] in p.methods and r["name"] == f.stem
        method_class(r["method"]).validate(r)  # every shipped recipe's keys are known to its Method
    table = yaml.safe_load((p.tables_dir / "speech-fsdd.yaml").read_text())
    assert table["runner"] == "fmzoo.speech.reproduce:run_fsdd" and callable(table_runner("speech-fsdd"))
    assert {r["init"] for r in table["rows"]} == {"scratch", "pretrained"}
    # the paper BASE recipes build the paper's architectures
    from fmzoo.speech.models.wav2vec2 import HF_CONFIG_DEFAULTS

    assert HF_CONFIG_DEFAULTS["mask_time_prob"] == 0.65 and HF_CONFIG_DEFAULTS["mask_time_length"] == 10
    assert HF_CONFIG_DEFAULTS["num_codevector_groups"] == 2 and HF_CONFIG_DEFAULTS["num_codevectors_per_group"] == 320
    assert HF_CONFIG_DEFAULTS["num_negatives"] == 100 and HF_CONFIG_DEFAULTS["contrastive_logits_temperature"] == 0.1


def test_table_few_label_rows_probe_only_n_clips_per_speaker(monkeypatch):
    """The few-label speaker rows train the probe on exactly n labelled clips of every speaker (label_budget),
    and the table lists a row for each of them."""
    import torch
    from fmzoo.speech import reproduce

    seen = []

    def fake_probe(tr, ytr, te, yte, n, seed=0):
        seen.append((len(tr), sorted(torch.bincount(ytr, minlength=n).tolist())))
        return {"accuracy": 0.5}

    monkeypatch.setattr(reproduce, "train_probe", fake_probe)
    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(120, 2, 4, generator=g), torch.randn(30, 2, 4, generator=g)
    ytr = {"digit": torch.arange(120) % 10, "speaker": torch.arange(120) % 6}
    yte = {"digit": torch.arange(30) % 10, "speaker": torch.arange(30) % 6}
    res = reproduce._probe_both(tr, te, ytr, yte, seed=1)
    assert set(res) == {"digit", "speaker"} | {f"speaker@{n}" for n in reproduce.FEW_LABELS}
    assert seen[0][0] == seen[1][0] == 120
    for (size, counts), n in zip(seen[2:], reproduce.FEW_LABELS, strict=True):
        assert size == 6 * n and counts == [n] * 6
    p = plugin()
    table = yaml.safe_load((p.tables_dir / "speech-fsdd.yaml").read_text())
    models = {r["model"] for r in table["rows"]}
    for n in reproduce.FEW_LABELS:
        for m in ("log-mel", "TERA", "wav2vec 2.0"):
            assert f"{m} [speaker, {n} labels/speaker]" in models


def test_growing_segment_pool_revisits_then_grows():
    """wav2vec2-small's data schedule: segment k of the run is segment k mod P(k) of a nested family, with
    P doubling every ``pool_doubling`` draws; pool=0 keeps fresh segments every epoch."""
    import torch
    from fmzoo.speech.data.fsdd import SegmentDataset

    wavs = [torch.randn(int(n)) for n in torch.randint(3000, 9000, (20,))]
    ds = SegmentDataset(wavs, 8000, length=4, seed=0, pool=2, pool_doubling=4)
    draws = []
    for epoch in range(3):
        ds.epoch = epoch
        draws += [ds[i] for i in range(4)]
    assert [ds.pool_size(k) for k in (0, 3, 4, 7, 8, 11)] == [2, 2, 4, 4, 8, 8]
    assert torch.equal(draws[0], draws[2]) and torch.equal(draws[1], draws[3])  # pool of 2 revisited
    assert not torch.equal(draws[0], draws[1])
    assert torch.equal(draws[4], draws[0]) and not torch.equal(draws[6], draws[0])  # nested, then new ones
    assert len({tuple(d[:5].tolist()) for d in draws[8:]}) == 4  # pool of 8: four distinct draws
    fresh = SegmentDataset(wavs, 8000, length=4, seed=0)
    a = fresh[0]
    fresh.epoch = 1
    assert not torch.equal(a, fresh[0])
    with pytest.raises(ValueError):
        SegmentDataset(wavs, 8000, length=4, pool=2)
