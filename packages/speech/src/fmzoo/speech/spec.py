"""Audio input: what a speech checkpoint accepts (its typed input spec), reading files (soundfile), validation
against the spec, resampling, log-mel features.

The spec travels with the weights as the JSON dict ``config.json["input_spec"]``. Its keys are stated once, in the
:class:`AudioSpec` dataclass (names, Python types, defaults); :class:`AudioInput` (an
:class:`fmzoo.core.spec.InputSpec`) derives its JSON key tables from those fields, and its two subclasses add what
each model kind writes: :class:`WaveformInput` (wav2vec 2.0: raw samples, ``do_normalize``) and
:class:`LogMelInput` (TERA: the log-mel ``features`` block). The core validates a model's spec against its class
when it is saved and loaded; :class:`AudioSpec` is the runtime view that :func:`validate_waveform` enforces.

No torchaudio: resampling is polyphase (scipy.signal.resample_poly), the mel filterbank and deltas are
written here in torch. Every refusal is an :class:`fmzoo.core.errors.InputSpecError` naming what was
expected and what was given.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from fmzoo.core.errors import InputSpecError
from fmzoo.core.spec import InputSpec

__all__ = [
    "AudioSpec",
    "AudioInput",
    "WaveformInput",
    "LogMelInput",
    "ResampleWarning",
    "load_audio",
    "validate_waveform",
    "pcm_to_float",
    "resample",
    "mel_filterbank",
    "log_mel",
    "deltas",
    "cmvn",
    "s3prl_log_mel",
]


class ResampleWarning(UserWarning):
    """Audio was resampled to the model's sample rate."""


@dataclass
class AudioSpec:
    """What a speech model accepts, as :func:`validate_waveform` enforces it: the runtime view of the audio keys of
    an input spec, and the one place where those keys, their types and defaults are stated (:class:`AudioInput`
    derives its JSON tables from these fields)."""

    sample_rate: int = 16000
    channels: int = 1  # mono only: multi-channel audio is refused, not mixed down
    min_seconds: float = 0.025  # one 25 ms analysis window / the wav2vec 2.0 receptive field (400 samples)
    max_clipped_fraction: float | None = 0.01  # refuse audio with more than 1% of samples at full scale (None: off)
    resample: bool = True  # resample other rates (with a ResampleWarning) instead of refusing them

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> AudioSpec:
        d = dict(d or {})
        keys = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in keys})


_JSON_TYPES = {"int": int, "float": (int, float), "float | None": (int, float, type(None)), "bool": bool}
_REQUIRED = ("sample_rate", "channels")  # every shipped and imported speech spec states these two


class AudioInput(InputSpec):
    """An audio input spec: the :class:`AudioSpec` keys (``sample_rate`` and ``channels`` required), checked for
    a positive rate, mono, a non-negative minimum duration and a clipping fraction in [0, 1]."""

    modality = "audio"
    required = {f.name: _JSON_TYPES[f.type] for f in fields(AudioSpec) if f.name in _REQUIRED}
    optional = {f.name: _JSON_TYPES[f.type] for f in fields(AudioSpec) if f.name not in _REQUIRED}

    @classmethod
    def check(cls, spec: dict, where: str) -> None:
        if spec["sample_rate"] <= 0:
            raise InputSpecError(f"{where}['sample_rate']: expected a positive rate in Hz, got {spec['sample_rate']}")
        if spec["channels"] != 1:
            raise InputSpecError(f"{where}['channels']: expected 1 (speech models take mono audio; "
                                 f"validate_waveform refuses other channel counts), got {spec['channels']}")
        if spec.get("min_seconds", 0) < 0:
            raise InputSpecError(f"{where}['min_seconds']: expected >= 0, got {spec['min_seconds']}")
        clip = spec.get("max_clipped_fraction")
        if clip is not None and not 0 <= clip <= 1:
            raise InputSpecError(f"{where}['max_clipped_fraction']: expected a fraction in [0, 1] or null, got {clip}")


class WaveformInput(AudioInput):
    """wav2vec 2.0's input: the raw waveform; ``do_normalize`` says whether it is scaled to zero mean / unit
    variance per utterance (absent in checkpoints shipped before it was written: the model's init_args hold it),
    ``features`` describes it in words."""

    modality = "audio-waveform"
    optional = {**AudioInput.optional, "do_normalize": bool, "features": str}


_CMVN = ("utterance", "global", "none")


class LogMelInput(AudioInput):
    """TERA's input: the waveform turned into log-mel frames as ``features`` states (what :meth:`TERA.featurize`
    computes): ``type`` "log-mel", the rate it is computed at (must equal the spec's ``sample_rate``, to which
    audio is resampled), ``n_mels`` x (``delta_order`` + 1) dims, ``win_ms``/``hop_ms`` framing, ``cmvn``; the s3prl
    frontend adds ``frontend`` "s3prl" and ``target_level`` (dB RMS, or null)."""

    modality = "audio-log-mel"
    required = {**AudioInput.required, "features": dict}
    _FEATURES = {"type": str, "sample_rate": int, "n_mels": int, "win_ms": (int, float), "hop_ms": (int, float),
                 "delta_order": int, "cmvn": str}

    @classmethod
    def check(cls, spec: dict, where: str) -> None:
        super().check(spec, where)
        f = spec["features"]
        here = f"{where}['features']"
        missing = [k for k in cls._FEATURES if k not in f]
        if missing:
            raise InputSpecError(f"{here}: a log-mel feature block needs the keys {sorted(cls._FEATURES)}; "
                                 f"missing {missing} (has {sorted(f)})")
        for key, types in cls._FEATURES.items():
            if not isinstance(f[key], types) or isinstance(f[key], bool):
                raise InputSpecError(f"{here}[{key!r}]: expected {getattr(types, '__name__', 'a number')}, "
                                     f"got {f[key]!r} ({type(f[key]).__name__})")
        if f["type"] != "log-mel":
            raise InputSpecError(f"{here}['type']: expected 'log-mel', got {f['type']!r}")
        if f["sample_rate"] != spec["sample_rate"]:
            raise InputSpecError(f"{here}['sample_rate']: features are computed at the rate audio is resampled "
                                 f"to; expected {spec['sample_rate']} (the spec's sample_rate), got {f['sample_rate']}")
        if f["cmvn"] not in _CMVN:
            raise InputSpecError(f"{here}['cmvn']: expected one of {list(_CMVN)}, got {f['cmvn']!r}")
        for key in ("n_mels", "win_ms", "hop_ms"):
            if f[key] <= 0:
                raise InputSpecError(f"{here}[{key!r}]: expected a positive value, got {f[key]}")
        if f["delta_order"] < 0:
            raise InputSpecError(f"{here}['delta_order']: expected >= 0, got {f['delta_order']}")
        if f.get("frontend", "fmzoo") not in ("fmzoo", "s3prl"):
            raise InputSpecError(f"{here}['frontend']: expected 'fmzoo' or 's3prl', got {f['frontend']!r}")


def resample(wav: np.ndarray | torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited polyphase resampling (Kaiser-windowed FIR) along the last axis."""
    from scipy.signal import resample_poly

    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    if orig_sr == new_sr:
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    g = math.gcd(int(orig_sr), int(new_sr))
    y = resample_poly(x.astype(np.float64), int(new_sr) // g, int(orig_sr) // g, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))


def pcm_to_float(x: np.ndarray) -> np.ndarray:
    """Integer PCM -> float32 in [-1, 1), as soundfile and torchaudio read it: signed n-bit samples divided by
    2**(n-1) (int16: / 32768, so -32768 -> -1.0 and 32767 -> 0.99997), unsigned ones (8-bit WAV) offset by
    2**(n-1) first (uint8 128 -> 0.0)."""
    info = np.iinfo(x.dtype)
    half = float(2 ** (info.bits - 1))
    y = x.astype(np.float64)
    if info.min == 0:  # unsigned PCM is offset binary
        y = y - half
    return (y / half).astype(np.float32)


def validate_waveform(
    wav: np.ndarray | torch.Tensor,
    sample_rate: int,
    spec: AudioSpec | dict | None = None,
    *,
    resample_ok: bool | None = None,
    source: str = "waveform",
) -> torch.Tensor:
    """Check a waveform against ``spec`` and return a mono float32 tensor at ``spec.sample_rate``.

    ``wav``: shape ``[samples]`` or ``[samples, channels]`` (soundfile's layout) or ``[1, samples]``;
    floats in [-1, 1]. Integer PCM is scaled to [-1, 1) as soundfile reads it (:func:`pcm_to_float`).
    """
    spec = spec if isinstance(spec, AudioSpec) else AudioSpec.from_dict(spec)
    resample_ok = spec.resample if resample_ok is None else resample_ok
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    if x.dtype.kind in "iu":
        x = pcm_to_float(x)
    elif x.dtype.kind != "f":
        raise InputSpecError(f"{source}: expected a real-valued waveform (float, or integer PCM), got dtype {x.dtype}")
    if x.ndim == 2:
        if 1 in x.shape:
            x = x.reshape(-1)
        else:
            raise InputSpecError(
                f"{source}: expected mono audio (channels={spec.channels}), got {min(x.shape)} channels "
                f"(shape {tuple(x.shape)}); mix down or pick a channel first"
            )
    elif x.ndim != 1:
        raise InputSpecError(f"{source}: expected a 1-D mono waveform [samples], got shape {tuple(x.shape)}")
    if x.size == 0:
        raise InputSpecError(f"{source}: empty audio (0 samples); expected at least {spec.min_seconds} s")
    finite = np.isfinite(x)
    if not np.all(finite):
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        raise InputSpecError(
            f"{source}: expected finite samples, got {n_nan} NaN and {n_inf} infinite values "
            f"(first at sample {int(np.flatnonzero(~finite.reshape(-1))[0])})"
        )
    peak = float(np.max(np.abs(x)))
    if peak > 1.0 + 1e-6:
        raise InputSpecError(
            f"{source}: expected samples in [-1, 1] (normalised PCM), got peak |x| = {peak:.3g}"
            + (" (integer PCM stored as float? pass the integer array, or divide by 32768)" if peak >= 256 else "")
        )
    if peak > 0 and spec.max_clipped_fraction is not None:
        clipped = float(np.mean(np.abs(x) >= 0.999))
        if clipped > spec.max_clipped_fraction:
            raise InputSpecError(
                f"{source}: clipped audio: {clipped:.1%} of samples at full scale; expected at most "
                f"{spec.max_clipped_fraction:.1%}"
            )
    if int(sample_rate) != spec.sample_rate:
        if not resample_ok:
            raise InputSpecError(
                f"{source}: expected sample rate {spec.sample_rate} Hz, got {sample_rate} Hz "
                "(resampling is switched off)"
            )
        warnings.warn(
            f"{source}: resampling {sample_rate} Hz -> {spec.sample_rate} Hz", ResampleWarning, stacklevel=2
        )
        t = resample(x, int(sample_rate), spec.sample_rate)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    dur = t.numel() / spec.sample_rate
    if dur < spec.min_seconds:
        raise InputSpecError(
            f"{source}: audio too short: {dur * 1000:.1f} ms; expected at least {spec.min_seconds * 1000:.0f} ms"
        )
    return t


def load_audio(path: str | Path, spec: AudioSpec | dict | None = None, *, resample_ok: bool | None = None) -> torch.Tensor:
    """Read an audio file with soundfile and validate it (see :func:`validate_waveform`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no audio file at {str(path)!r}")
    try:
        info = sf.info(str(path))
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as e:  # not audio, corrupt header
        raise InputSpecError(f"{path.name}: not a readable audio file ({e}); expected an audio file that soundfile "
                             "reads (WAV, FLAC, OGG, ...)") from e
    if info.frames and data.shape[0] < info.frames:
        raise InputSpecError(f"{path.name}: truncated audio: header says {info.frames} frames, read {data.shape[0]}")
    if path.suffix.lower() == ".wav" and info.format == "WAV":
        _check_wav_size(path, info)
    return validate_waveform(data, sr, spec, resample_ok=resample_ok, source=path.name)


def _check_wav_size(path: Path, info) -> None:
    """A RIFF/WAV whose data chunk promises more bytes than the file holds is truncated."""
    with open(path, "rb") as f:
        head = f.read(4096)
    i = head.find(b"data")
    if i < 0 or i + 8 > len(head):
        return
    declared = int.from_bytes(head[i + 4 : i + 8], "little")
    available = path.stat().st_size - (i + 8)
    if declared != 0xFFFFFFFF and declared > available:
        raise InputSpecError(
            f"{path.name}: truncated WAV: data chunk declares {declared} bytes, file holds {available}"
        )


# ----------------------------------------------------------------------------------------------- features


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """HTK-scale triangular filters, shape [n_fft // 2 + 1, n_mels] (no area normalisation)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    pts = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    lower, center, upper = pts[:-2], pts[1:-1], pts[2:]
    up = (freqs[:, None] - lower[None]) / (center - lower)[None]
    down = (upper[None] - freqs[:, None]) / (upper - center)[None]
    fb = np.clip(np.minimum(up, down), 0.0, None)
    return torch.from_numpy(fb.astype(np.float32))


_FB_CACHE: dict = {}


def log_mel(
    wav: torch.Tensor,
    sample_rate: int = 16000,
    n_mels: int = 80,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Log mel power spectrogram: ``[samples]`` -> ``[frames, n_mels]`` (or batched ``[B, S]`` -> ``[B, F, M]``).

    Hann window of ``win_ms``, hop ``hop_ms``, n_fft = window length (400 / 160 at 16 kHz, TERA's setting).
    """
    win = int(round(sample_rate * win_ms / 1000))
    hop = int(round(sample_rate * hop_ms / 1000))
    squeeze = wav.dim() == 1
    x = wav[None] if squeeze else wav
    if x.shape[-1] < win:
        raise InputSpecError(f"audio too short for one {win_ms} ms frame: {x.shape[-1]} samples < {win}")
    key = (win, n_mels, sample_rate)
    if key not in _FB_CACHE:
        _FB_CACHE[key] = (mel_filterbank(win, n_mels, sample_rate), torch.hann_window(win))
    fb, window = _FB_CACHE[key]
    spec = torch.stft(x.float(), n_fft=win, hop_length=hop, win_length=win, window=window, center=False, return_complex=True)
    power = spec.real.pow(2) + spec.imag.pow(2)  # [B, freq, frames]
    mel = torch.matmul(power.transpose(1, 2), fb)  # [B, frames, mels]
    out = torch.log(mel + eps)
    return out[0] if squeeze else out


def s3prl_log_mel(
    wav: torch.Tensor,
    sample_rate: int = 16000,
    n_mels: int = 80,
    win_ms: float = 25.0,
    hop_ms: float = 10.0,
    n_freq: int = 201,
    target_level: float | None = -25.0,
    cmvn: bool = True,
    eps: float = 1e-10,
) -> torch.Tensor:
    """s3prl's on-the-fly log-mel input of its TERA / Mockingjay upstreams (``OnlinePreprocessor`` with
    ``feat_type: mel, log: True, delta: 0``), computed without torchaudio: ``[samples]`` -> ``[frames, n_mels]``.

    The waveform is scaled to ``target_level`` dB RMS (``x * 10**(level/20) / (rms + 1e-10)``); power STFT with
    n_fft = 2 (n_freq - 1), a periodic Hann window of ``win_ms``, hop ``hop_ms``, centred frames with reflect
    padding; HTK mel filters without area normalisation over 0 .. sample_rate // 2 (torchaudio's ``MelScale``);
    ``log(mel + 1e-10)``; then per-utterance CMVN with the unbiased standard deviation, ``(f - mean) / (std + 1e-10)``.
    """
    x = wav.float()
    if target_level is not None:
        rms = x.pow(2).mean().pow(0.5)
        x = x * (10 ** (target_level / 20)) / (rms + 1e-10)
    win = int(round(win_ms * sample_rate / 1000))
    hop = int(round(hop_ms * sample_rate / 1000))
    n_fft = (n_freq - 1) * 2
    if x.shape[-1] <= n_fft // 2:  # reflect padding needs more samples than half a window
        raise InputSpecError(f"audio too short for s3prl's centred {n_fft}-point STFT: {x.shape[-1]} samples "
                             f"<= {n_fft // 2}")
    key = ("s3prl", n_fft, win, n_mels, sample_rate)
    if key not in _FB_CACHE:
        fb = mel_filterbank(n_fft, n_mels, sample_rate, 0.0, float(sample_rate // 2))
        _FB_CACHE[key] = (fb, torch.hann_window(win))
    fb, window = _FB_CACHE[key]
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    power = spec.abs().pow(2)  # [freq, frames]
    feat = torch.log(torch.matmul(power.transpose(-1, -2), fb) + eps)  # [frames, mels]
    if cmvn:
        feat = (feat - feat.mean(dim=-2, keepdim=True)) / (feat.std(dim=-2, keepdim=True) + eps)
    return feat


def cmvn(feat: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-utterance mean and variance normalisation over time (dim -2)."""
    mu = feat.mean(dim=-2, keepdim=True)
    sd = feat.std(dim=-2, keepdim=True, unbiased=False)
    return (feat - mu) / (sd + eps)


def deltas(feat: torch.Tensor, order: int = 1, window: int = 2) -> torch.Tensor:
    """Regression deltas along time (dim -2), edge-padded; returns ``[..., frames, dims * (order + 1)]``."""
    outs = [feat]
    cur = feat
    denom = 2 * sum(n * n for n in range(1, window + 1))
    for _ in range(order):
        t = cur.shape[-2]
        idx = torch.arange(t)
        d = torch.zeros_like(cur)
        for n in range(1, window + 1):
            fwd = cur.index_select(-2, (idx + n).clamp(max=t - 1))
            bwd = cur.index_select(-2, (idx - n).clamp(min=0))
            d = d + n * (fwd - bwd)
        cur = d / denom
        outs.append(cur)
    return torch.cat(outs, dim=-1)
