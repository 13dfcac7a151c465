"""fmzoo evaluate / finetune on the speech encoders (the core's protocols, this package's hooks), on real FSDD
clips: the shipped checkpoints through the CLI on a WAV folder + labels.csv, the FSDD tasks, the pooled features,
and the table's smoke run."""

import csv
import json
import math
import shutil
import warnings

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.downstream import hooks_for, train_network
from fmzoo.core.hub import read_config
from fmzoo.speech.data.fsdd import SPEAKERS, fsdd_dir, list_fsdd
from fmzoo.speech.models.tera import TERA
from fmzoo.speech.plugin import plugin
from fmzoo.speech.spec import ResampleWarning
from fmzoo.speech.tasks.downstream import SpeechHooks
from fmzoo.speech.tasks.probe import layer_means

SHIPPED = sorted(d.name for d in plugin().checkpoints_dir.iterdir() if (d / "config.json").is_file())
TINY_TERA = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


def _wav_folder(root, n_train=4, n_test=2, split_column=True, speakers=SPEAKERS, label="label"):
    """A slice of real FSDD written out as a user's folder: the WAV files and labels.csv (file,label[,split])."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for spk in speakers:
        clips = [it for it in list_fsdd("all") if it.speaker == spk and it.digit == 3]
        for it in clips[:n_test] + clips[-n_train:]:  # index 0.. are FSDD's test clips, the last ones training
            shutil.copy(it.path, root / it.path.name)
            rows.append({"file": it.path.name, label: spk, "split": it.split})
    with (root / "labels.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["file", label, "split"] if split_column else ["file", label], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return root


def test_every_shipped_checkpoint_resolves_to_speech_hooks():
    assert SHIPPED == ["tera-small", "wav2vec2-small"]
    for name in SHIPPED:
        arch = read_config(plugin().checkpoints_dir / name)["architecture"]
        hooks = hooks_for(arch)
        assert isinstance(hooks, SpeechHooks) and hooks.datasets[0] == "fsdd-speaker"
    assert not plugin().finetune  # the old entry is gone


def _check_rows(result: dict, n_seeds: int) -> None:
    for row in result["rows"]:
        acc = row["metrics"]["accuracy"]
        assert row["seeds"] == list(range(n_seeds)) and acc["n"] == n_seeds
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in acc["values"])
    assert "labels.csv" in result["source"] and "split column" in result["source"]
    assert (result["train_examples"], result["test_examples"]) == (24, 12)


def test_cli_evaluate_and_finetune_tera_on_a_wav_folder(tmp_path, capsys):
    data = _wav_folder(tmp_path / "clips", label="speaker")
    args = ["fmzoo/tera-small", "--data", str(data), "--target", "speaker", "--no-progress"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        assert main(["evaluate", *args, "--seeds", "0", "1", "--per-class", "3", "--out", str(tmp_path / "e")]) == 0
        assert main(["finetune", *args, "--per-class", "2", "--epochs", "1", "--out", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert "linear probe" in out and "fine-tuned end to end (1 epochs)" in out and "majority class" in out
    ev = json.loads((tmp_path / "e" / "evaluate.json").read_text())
    ft = json.loads((tmp_path / "f" / "finetune.json").read_text())
    _check_rows(ev, 2)
    _check_rows(ft, 1)
    assert [r["protocol"] for r in ev["rows"]] == ["linear probe", "kNN (k=20, cosine)"]
    assert ev["rows"][0]["n_labelled"] == [18, 18] and ft["rows"][0]["n_labelled"] == [12]
    assert all(math.isfinite(v) for v in ft["rows"][0]["final_train_loss"])
    # the frozen probe separates FSDD's speakers from 3 clips each of one word: well above the majority class
    assert ev["rows"][0]["metrics"]["accuracy"]["mean"] > ev["baseline"]["metrics"]["accuracy"]["mean"] + 0.3


def test_cli_finetune_wav2vec2_on_a_wav_folder(tmp_path, capsys):
    """wav2vec 2.0 through the CLI (its evaluate features: test_features_are_the_uniform_layer_mean...)."""
    data = _wav_folder(tmp_path / "clips")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        assert main(["finetune", "fmzoo/wav2vec2-small", "--data", str(data), "--per-class", "2", "--epochs", "1",
                     "--no-progress", "--out", str(tmp_path / "f")]) == 0
    assert "fine-tuned end to end (1 epochs)" in capsys.readouterr().out
    ft = json.loads((tmp_path / "f" / "finetune.json").read_text())
    _check_rows(ft, 1)
    assert ft["architecture"] == "Wav2Vec2" and ft["budget"] == "2 per class" and ft["rows"][0]["n_labelled"] == [12]
    assert all(math.isfinite(v) for v in ft["rows"][0]["final_train_loss"])


def test_wav_folder_split_and_refusals(tmp_path):
    from fmzoo.speech.data.folder import load_labelled_folder

    data = _wav_folder(tmp_path / "a", n_train=3, n_test=2, split_column=False, speakers=SPEAKERS[:3])
    with pytest.warns(ResampleWarning, match="15 of 15 files resampled to 16000 Hz"):
        d = load_labelled_folder(data / "labels.csv", {"sample_rate": 16000})
    assert d.class_names == sorted(SPEAKERS[:3]) and (len(d.train_y), len(d.test_y)) == (12, 3)  # 20 % of 5 per class
    assert sorted(d.test_y.tolist()) == [0, 1, 2] and "stratified" in d.source
    assert [w.numel() for w in d.train_wavs] == sorted(w.numel() for w in d.train_wavs)  # ordered by length
    text = (data / "labels.csv").read_text()
    (data / "labels.csv").write_text(text.replace("file,label", "file,speaker"))  # --target speaker
    d2 = load_labelled_folder(data, {"sample_rate": 8000}, label="speaker")  # FSDD's own rate: nothing resampled
    assert d2.class_names == d.class_names and np.array_equal(d2.test_y, d.test_y) and "'speaker'" in d2.source
    with pytest.raises(InputSpecError, match="columns file,label"):
        load_labelled_folder(data)
    (data / "labels.csv").write_text("file,label\nmissing.wav,a\n3_theo_0.wav,b\n")
    with pytest.raises(InputSpecError, match="no audio file 'missing.wav'"):
        load_labelled_folder(data)
    (data / "labels.csv").unlink()
    (data / "other.csv").write_text("file,label\n")
    (data / "more.csv").write_text("file,label\n")
    with pytest.raises(InputSpecError, match="expected a labels.csv"):
        load_labelled_folder(data)


def test_fsdd_tasks_read_only_what_they_touch():
    model = from_pretrained("fmzoo/tera-small")
    hooks = SpeechHooks()
    speaker, digit = hooks.load(model, None, None), hooks.load(model, "fsdd-digit", None)
    assert (speaker.name, speaker.n_outputs, digit.n_outputs) == ("fsdd-speaker", 6, 10)
    assert (len(speaker.train), len(speaker.test)) == (2700, 300)
    assert np.bincount(speaker.test.targets).tolist() == [50] * 6 and np.bincount(digit.test.targets).tolist() == [30] * 10
    clips = speaker.train.items
    first, last = clips[0], clips[len(clips) - 1]
    assert first.numel() <= last.numel() and len(clips._cache) == 2  # ordered by length; read on access only
    assert "8000 Hz resampled to 16000 Hz" in speaker.source and str(fsdd_dir().parent) in speaker.source


@pytest.mark.parametrize("name", SHIPPED)
def test_features_are_the_uniform_layer_mean_of_the_table_probe(name):
    """evaluate's features = SUPERB's weighted layer sum at equal weights, over valid frames of padded batches."""
    from fmzoo.speech.data.fsdd import load_fsdd

    model = from_pretrained(f"fmzoo/{name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        wavs = load_fsdd("test", model.input_spec, limit=10)[0]
    hooks = SpeechHooks()
    with torch.no_grad():
        feats = hooks.features(model, hooks.collate(model, wavs))
    ref = layer_means(model, wavs).mean(1)
    assert feats.shape == (10, model.hidden_size)
    assert torch.allclose(feats, ref, atol=1e-4), (feats - ref).abs().max()


def test_finetuning_trains_a_copy_and_freezing_keeps_the_encoder():
    from fmzoo.speech.data.fsdd import load_fsdd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        wavs, _, speakers, _ = load_fsdd("train", limit=24)
    torch.manual_seed(0)
    hooks = SpeechHooks()
    from fmzoo.core.downstream import Split, Task

    task = Task("t", "classification", Split(wavs[:16], speakers[:16].numpy()), Split(wavs[16:], speakers[16:].numpy()),
                n_outputs=6, metric="accuracy")
    for freeze in (False, True):
        up = TERA(**TINY_TERA)
        before = {k: v.clone() for k, v in up.state_dict().items()}
        net = hooks.network(up, task, freeze=freeze)
        train_network(hooks, net, up, task, task.train, seed=0, epochs=1, lr=1e-3, batch_size=8, weight_decay=0.0)
        moved = any(not torch.equal(before[k], v) for k, v in up.state_dict().items() if v.is_floating_point())
        assert moved != freeze
        assert not torch.equal(net.head.layer_weights.detach(), torch.zeros(up.num_layers))  # the head learns


def test_reproduce_smoke_gives_every_row(tmp_path):
    from fmzoo.core.registry import load_table
    from fmzoo.core.reproduce import reproduce

    result = reproduce("speech-fsdd", smoke=True, out_dir=tmp_path, echo=lambda *a: None)
    table = load_table("speech-fsdd")
    assert result["setting"] == "smoke"
    assert sorted((r["model"], r["init"]) for r in result["rows"]) == sorted((r["model"], r["init"]) for r in table["rows"])
    for r in result["rows"]:
        assert r["seeds"] == [0] and 0.0 <= r["ours"] <= 1.0 and "smoke" in r["note"]
    saved = json.loads((tmp_path / "speech-fsdd.json").read_text())
    assert len(saved["rows"]) == 20
