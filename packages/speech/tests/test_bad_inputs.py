"""Bad inputs (issue "reliability"): each is refused with fmzoo.core.InputSpecError whose message says what was
expected and what was given, and a refused run writes nothing (no result folder, no file in the user's folder, nothing
in the hub). Files go through ``fmzoo evaluate --data`` (a real FSDD folder plus one bad clip); inputs a file cannot
carry (a switched-off resampler, a dtype) through the model's ``prepare``."""

import csv
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.cli import main
from fmzoo.speech.data.folder import load_labelled_folder
from fmzoo.speech.models.wav2vec2 import Wav2Vec2
from fmzoo.speech.spec import ResampleWarning, load_audio

SR = 16000
CLIPS = ["3_george_5.wav", "3_george_6.wav", "3_jackson_5.wav", "3_jackson_6.wav"]  # real FSDD training clips


def _tone(seconds=0.5, amp=0.3, sr=SR):
    return (amp * np.sin(2 * np.pi * 220 * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _write(path, data, sr=SR, subtype="FLOAT"):
    sf.write(str(path), data, sr, subtype=subtype)


# name -> (writes the bad file, regex over the message: what was expected ... what was given)
BAD_FILES = {
    "stereo": (lambda p: _write(p, np.stack([_tone(), _tone()], 1)), r"expected mono.*got 2 channels"),
    "nan": (lambda p: _write(p, np.where(np.arange(SR) == 7, np.nan, _tone(1.0))),
            r"expected finite samples, got 1 NaN and 0 infinite values \(first at sample 7\)"),
    "inf": (lambda p: _write(p, np.where(np.arange(SR) == 9, np.inf, _tone(1.0))),
            r"expected finite samples, got 0 NaN and 1 infinite"),
    "empty": (lambda p: _write(p, np.zeros(0, np.float32)), r"empty audio \(0 samples\); expected at least"),
    "too short": (lambda p: _write(p, _tone(0.01)), r"audio too short: 10\.0 ms; expected at least 25 ms"),
    "unnormalised (int16 scale as float)": (lambda p: _write(p, _tone() * 32767),
                                            r"expected samples in \[-1, 1\].*got peak \|x\| = 9\.83e\+03"),
    "clipped": (lambda p: _write(p, np.sign(_tone()) * 1.0), r"clipped audio: 100\.0% .* expected at most 1\.0%"),
    "not audio": (lambda p: p.write_text("file,label\n" * 100), r"not a readable audio file.*expected an audio file"),
}


def _user_folder(root, fsdd_dir):
    """Four real FSDD clips (two speakers) and labels.csv, as a user's --data folder."""
    root.mkdir()
    rows = []
    for name in CLIPS:
        shutil.copy(fsdd_dir / name, root / name)
        rows.append({"file": name, "label": name.split("_")[1]})
    return rows


def _labels(root, rows):
    with (root / "labels.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, ["file", "label"])
        w.writeheader()
        w.writerows(rows)


def _snapshot(*dirs):
    return {p: p.stat().st_mtime_ns for d in dirs if d.exists() for p in d.rglob("*")}


def _refused_by_the_cli(tmp_path, capsys, data, match):
    """``fmzoo evaluate --data`` exits 2 with the message, and writes nothing anywhere."""
    hub, out = tmp_path / "hub", tmp_path / "out"
    before = _snapshot(data, hub)
    assert main(["evaluate", "fmzoo/tera-small", "--data", str(data), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "fmzoo evaluate: error:" in err
    assert re.search(match, err), err
    assert not out.exists() and _snapshot(data, hub) == before


@pytest.fixture
def env(tmp_path, tmp_hub, data_root):
    return tmp_path, data_root / "speech" / "fsdd" / "recordings"


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_clip_in_a_user_folder(env, capsys, case):
    tmp_path, fsdd = env
    write, match = BAD_FILES[case]
    data = tmp_path / "clips"
    rows = _user_folder(data, fsdd)
    write(data / "bad.wav")
    _labels(data, rows + [{"file": "bad.wav", "label": "george"}])
    with pytest.raises(InputSpecError, match=match):  # the library's error ...
        load_labelled_folder(data, {"sample_rate": 8000})
    _refused_by_the_cli(tmp_path, capsys, data, "bad.wav: " + match)  # ... and the CLI's, naming the file


def test_labels_csv_naming_missing_files(env, capsys):
    tmp_path, fsdd = env
    data = tmp_path / "clips"
    rows = _user_folder(data, fsdd)
    _labels(data, rows + [{"file": "gone_1.wav", "label": "george"}, {"file": "sub/gone_2.wav", "label": "jackson"}])
    match = (r"labels\.csv: no audio file 'gone_1\.wav' \(line 6\), 'sub/gone_2\.wav' \(line 7\) in .*: 2 of 6 files "
             r"named in the CSV are missing; expected every file path relative to the CSV's folder")
    with pytest.raises(InputSpecError, match=match):
        load_labelled_folder(data, {"sample_rate": 8000})
    _refused_by_the_cli(tmp_path, capsys, data, match)


def test_labels_csv_without_the_columns(env, capsys):
    tmp_path, fsdd = env
    data = tmp_path / "clips"
    _user_folder(data, fsdd)
    (data / "labels.csv").write_text("path,speaker\n" + "".join(f"{c},x\n" for c in CLIPS))
    _refused_by_the_cli(tmp_path, capsys, data, r"expected a header with columns file,label\[,split\], got \['path', 'speaker'\]")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Wav2Vec2(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                    conv_dim=[16] * 7, num_conv_pos_embeddings=16, codevector_dim=32, proj_codevector_dim=32,
                    resample=False).eval()


@pytest.mark.parametrize("wav, sr, match", [
    (_tone(sr=8000), 8000, r"expected sample rate 16000 Hz, got 8000 Hz \(resampling is switched off\)"),
    (_tone().astype(np.complex64), SR, r"expected a real-valued waveform \(float, or integer PCM\), got dtype complex64"),
    (np.array(["0.1"] * 800), SR, r"expected a real-valued waveform .*got dtype <U3"),
    (np.zeros((2, 3, 400), np.float32), SR, r"expected a 1-D mono waveform \[samples\], got shape \(2, 3, 400\)"),
])
def test_bad_waveforms_given_to_the_model(tiny, wav, sr, match):
    with pytest.raises(InputSpecError, match=match):
        tiny.prepare(wav, sr)


def test_a_real_clip_at_its_own_rate_is_refused_without_resampling(data_root, tiny):
    path = data_root / "speech" / "fsdd" / "recordings" / CLIPS[0]
    with pytest.raises(InputSpecError, match=r"3_george_5\.wav: expected sample rate 16000 Hz, got 8000 Hz"):
        load_audio(path, tiny.input_spec)
    with pytest.warns(ResampleWarning, match="8000 Hz -> 16000 Hz"):  # the same clip with resampling allowed
        assert load_audio(path, {**tiny.input_spec, "resample": True}).numel() > 0
