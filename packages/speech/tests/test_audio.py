"""Input spec and features: clear errors for bad audio, resampling, log-mel against transformers' numpy code."""

import io
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from fmzoo.core.errors import InputSpecError
from fmzoo.speech.data.fsdd import fsdd_dir, list_fsdd
from fmzoo.speech.spec import (
    AudioSpec,
    ResampleWarning,
    deltas,
    load_audio,
    log_mel,
    mel_filterbank,
    resample,
    validate_waveform,
)


def _sine(freq, sr, seconds=0.5, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_real_fsdd_file_resampled_with_warning_or_refused():
    path = fsdd_dir() / "0_george_0.wav"
    assert sf.info(str(path)).samplerate == 8000
    with pytest.warns(ResampleWarning, match="8000 Hz -> 16000 Hz"):
        x = load_audio(path)
    raw, _ = sf.read(str(path), dtype="float32")
    assert x.dtype == torch.float32 and abs(x.numel() - 2 * raw.size) <= 1
    with pytest.raises(InputSpecError, match="expected sample rate 16000 Hz, got 8000 Hz"):
        load_audio(path, resample_ok=False)
    with pytest.raises(InputSpecError, match="8000 Hz"):
        load_audio(path, AudioSpec(resample=False))


def test_resample_keeps_a_tone():
    y = resample(_sine(1000, 8000), 8000, 16000).numpy()
    spec = np.abs(np.fft.rfft(y[2000:6000] * np.hanning(4000)))
    peak_hz = np.argmax(spec) * 16000 / 4000
    assert abs(peak_hz - 1000) <= 4
    ref = _sine(1000, 16000)
    assert np.max(np.abs(y[200:-200] - ref[200:-200])) < 0.01


@pytest.mark.parametrize(
    "wav, match",
    [
        (np.zeros((8000, 2), np.float32) + 0.1, "expected mono"),
        (np.zeros(0, np.float32), "empty audio"),
        (np.full(100, 0.1, np.float32), "too short"),
        (np.array([0.1, np.nan] * 4000, np.float32), "NaN"),
        (np.sign(_sine(100, 16000)) * 1.0, "clipped"),
        (_sine(100, 16000) * 3, r"expected samples in \[-1, 1\]"),
        (np.zeros((2, 3, 4), np.float32), "1-D mono"),
    ],
)
def test_bad_waveforms_raise_clear_errors(wav, match):
    with pytest.raises(InputSpecError, match=match):
        validate_waveform(wav, 16000)


def test_int16_pcm_is_scaled():
    x = validate_waveform((_sine(200, 16000) * 32767).astype(np.int16), 16000)
    assert 0.45 < float(x.abs().max()) <= 0.5001


def test_int16_pcm_is_read_as_soundfile_reads_it_full_scale_included():
    """Regression (issue "reliability"): valid int16 audio holding -32768 was refused ("peak |x| = 1", int16 divided
    by 32767). Integer PCM is now scaled as soundfile/torchaudio do: / 32768, so a real FSDD clip given as its int16
    samples equals soundfile's float reading exactly, and a full-scale negative sample is -1.0, not clipping."""
    path = fsdd_dir() / "0_george_0.wav"
    pcm, sr = sf.read(str(path), dtype="int16")
    ref, _ = sf.read(str(path), dtype="float32")
    spec = AudioSpec(sample_rate=sr)
    assert torch.equal(validate_waveform(pcm, sr, spec), torch.from_numpy(ref))
    pcm = pcm.copy()
    pcm[100] = -32768  # one full-scale sample: valid PCM (0.05 % of the clip, below the clipping limit)
    x = validate_waveform(pcm, sr, spec)
    assert float(x[100]) == -1.0 and float(x.max()) < 1.0
    u8 = np.array([0, 128, 255] * 200, np.uint8)  # 8-bit WAV is unsigned, offset 128 (silence = 128)
    assert np.allclose(validate_waveform(u8, 16000, AudioSpec(max_clipped_fraction=None)).numpy()[:3],
                       [-1.0, 0.0, 127 / 128])


def test_non_audio_and_truncated_files(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio at all " * 50)
    with pytest.raises(InputSpecError, match="not a readable audio file"):
        load_audio(bad)
    buf = io.BytesIO()
    sf.write(buf, _sine(300, 16000, 1.0), 16000, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputSpecError, match="truncated"):
        load_audio(trunc)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([_sine(300, 16000), _sine(500, 16000)], 1), 16000)
    with pytest.raises(InputSpecError, match="expected mono.*2 channels"):
        load_audio(stereo)
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "missing.wav")


def test_log_mel_matches_transformers_numpy_reference():
    from transformers.audio_utils import mel_filter_bank, spectrogram

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)
        wav = load_audio(fsdd_dir() / "3_theo_7.wav")
    ours = log_mel(wav, 16000, 80).numpy()
    fb = mel_filter_bank(201, 80, 0.0, 8000.0, 16000, norm=None, mel_scale="htk")
    assert np.allclose(mel_filterbank(400, 80, 16000).numpy(), fb, atol=1e-6)
    win = np.hanning(401)[:-1]  # periodic Hann, as torch.hann_window
    ref = spectrogram(wav.numpy().astype(np.float64), win, 400, 160, power=2.0, center=False, mel_filters=fb,
                      mel_floor=1e-30, dtype=np.float64)
    ref = np.log(ref.T + 1e-6)
    assert ours.shape == ref.shape == (1 + (wav.numel() - 400) // 160, 80)
    assert np.max(np.abs(ours - ref)) < 1e-3


def test_deltas_of_a_ramp():
    f = torch.arange(20.0)[:, None].repeat(1, 3)
    d = deltas(f, order=2)
    assert d.shape == (20, 9)
    assert torch.allclose(d[2:-2, 3:6], torch.ones(16, 3))
    assert torch.allclose(d[4:-4, 6:9], torch.zeros(12, 3), atol=1e-6)


def test_fsdd_split_follows_readme():
    train, test = list_fsdd("train"), list_fsdd("test")
    assert len(train) == 2700 and len(test) == 300
    assert all(it.index >= 5 for it in train) and all(it.index < 5 for it in test)
    assert {it.speaker for it in test} == {it.speaker for it in train} and len({it.speaker for it in train}) == 6
