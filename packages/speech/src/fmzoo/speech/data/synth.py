"""Synthesized pretraining speech: many voices from Debian's ``espeak-ng`` and ``flite``.

FSDD has six speakers and about 20 minutes of training audio. This module adds voices: each utterance is
a random text (a digit string spoken as words, as in FSDD, or a random phrase from a small built-in word
list) spoken by a random voice (espeak-ng English accents x voice variants x pitch x rate, or one of flite's
four 16 kHz voices with a random rate), then resampled to ``sample_rate`` (default 8 kHz, FSDD's
rate, so that the synthetic audio has the band FSDD has) and written as 16-bit WAV.

The corpus is deterministic in its config (``n``, ``seed``, ``flite_fraction``, ``sample_rate``) and the
engines' versions; every file is written atomically, so an interrupted build resumes where it stopped (with the
engine versions it started with: ``engines.json``; other versions are refused).
``manifest.json`` lists each file's voice, text, duration and sha256. Install the engines with
``apt-get install espeak-ng flite`` (``scripts/setup.sh`` does, from ``shared/apt-packages.txt``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from fmzoo.core import sha256_file
from fmzoo.core.hub import atomic_write_text

from ..spec import AudioSpec, ResampleWarning, resample, validate_waveform

__all__ = ["SynthConfig", "Utterance", "plan_corpus", "build_corpus", "load_corpus", "corpus_manifest_entry",
           "ESPEAK_ACCENTS", "ESPEAK_VARIANTS", "FLITE_VOICES"]

ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029"]
ESPEAK_VARIANTS = [f"m{i}" for i in range(1, 9)] + [f"f{i}" for i in range(1, 6)] + \
    ["klatt", "klatt2", "klatt3", "klatt4"]
FLITE_VOICES = ["awb", "rms", "slt", "kal16"]  # the 16 kHz voices (kal is 8 kHz, awb_time speaks times only)

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
WORDS = """
water river stone garden window market morning evening summer winter yellow purple silver orange little
quiet heavy simple narrow gentle bright early later never always often before after under above between
open close carry follow listen answer bring build catch climb cover cross dance drive enter fill find
gather guide hold hurry join keep kick laugh lift move paint pull push reach ride rise roll shake share
shine sing sleep slide speak spend spread stand start stay swim teach throw travel turn visit walk wash
watch wonder write table chair paper pencil letter number picture kitchen station island valley forest
mountain ocean bridge castle village city road street corner field farm horse rabbit tiger eagle turtle
dolphin bread butter cheese apple lemon pepper honey coffee sugar salt cloud storm thunder rain snow wind
shadow light music voice story lesson question reason idea moment minute hour week month year today
tomorrow yesterday family friend doctor teacher farmer driver sailor captain child people neighbour
""".split()


@dataclass(frozen=True)
class SynthConfig:
    n: int = 3000                 # utterances
    seed: int = 0
    flite_fraction: float = 0.25  # share of utterances from flite (the rest from espeak-ng)
    sample_rate: int = 8000       # written rate: FSDD's, so the synthetic audio has FSDD's band

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Utterance:
    name: str
    engine: str   # "espeak-ng" | "flite"
    voice: str    # espeak "accent+variant" or flite voice name
    pitch: float  # espeak: 0-99; flite: 0 (its unit-selection voices ignore a pitch target, so none is set)
    rate: float   # espeak: words per minute; flite: duration stretch
    text: str

    def command(self, out: Path) -> list[str]:
        if self.engine == "espeak-ng":
            return ["espeak-ng", "-v", self.voice, "-p", str(int(self.pitch)), "-s", str(int(self.rate)),
                    "-w", str(out), self.text]
        return ["flite", "-voice", self.voice, "--setf", f"duration_stretch={self.rate:.2f}", "-t", self.text,
                "-o", str(out)]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return " ".join(rng.choice(DIGITS) for _ in range(rng.randint(3, 7)))
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))


def plan_corpus(cfg: SynthConfig) -> list[Utterance]:
    """The corpus's utterances (voice, prosody, text), deterministic in ``cfg``."""
    if cfg.n < 1 or not 0.0 <= cfg.flite_fraction <= 1.0:
        raise ValueError(f"need n >= 1 and 0 <= flite_fraction <= 1, got {cfg}")
    rng = random.Random(cfg.seed)
    out = []
    for i in range(cfg.n):
        text = _text(rng)
        if rng.random() < cfg.flite_fraction:
            u = Utterance(f"{i:06d}", "flite", rng.choice(FLITE_VOICES), 0.0, rng.uniform(0.8, 1.3), text)
        else:
            u = Utterance(f"{i:06d}", "espeak-ng", f"{rng.choice(ESPEAK_ACCENTS)}+{rng.choice(ESPEAK_VARIANTS)}",
                          rng.uniform(20, 80), rng.uniform(130, 190), text)
        out.append(u)
    return out


def _require(engines: set[str]) -> None:
    missing = [e for e in sorted(engines) if shutil.which(e) is None]
    if missing:
        raise FileNotFoundError(f"speech synthesis needs {', '.join(missing)} on PATH: apt-get install "
                                f"{' '.join(missing)} (scripts/setup.sh installs shared/apt-packages.txt)")


def _synthesize(u: Utterance, path: Path, sample_rate: int) -> None:
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.wav"
        proc = subprocess.run(u.command(raw), capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not raw.exists() or raw.stat().st_size <= 44:
            raise RuntimeError(f"{u.engine} failed for utterance {u.name} ({u.voice}): {proc.stderr.strip()[:300]}")
        data, sr = sf.read(str(raw), dtype="float32", always_2d=True)
        wav = resample(data[:, 0], sr, sample_rate).numpy()
        peak = float(np.abs(wav).max())
        if not np.isfinite(peak) or peak == 0.0:
            raise RuntimeError(f"{u.engine} produced silence or non-finite samples for utterance {u.name}")
        wav = wav * (0.9 / peak) if peak > 0.9 else wav  # keep the polyphase filter's overshoot off full scale
        part = Path(tmp) / "out.wav"
        sf.write(str(part), wav, sample_rate, subtype="PCM_16")
        os.replace(part, path)  # atomic: a file under its final name is always complete


def build_corpus(root: str | Path, cfg: SynthConfig = SynthConfig(), log=None) -> Path:
    """Synthesize (or finish synthesizing) the corpus under ``root/<cfg key>``; returns that directory."""
    plan = plan_corpus(cfg)
    out = Path(root) / f"synth-{cfg.key()}"
    manifest = out / "manifest.json"
    if manifest.exists():
        return out
    engines = sorted({u.engine for u in plan})
    _require(set(engines))
    out.mkdir(parents=True, exist_ok=True)
    versions = {e: _version(e) for e in engines}
    started = out / "engines.json"  # the versions the first files were made with: a resume must match them
    if started.exists() and json.loads(started.read_text()) != versions:
        raise RuntimeError(f"{out} was started with {json.loads(started.read_text())} but {versions} are installed: "
                           f"a corpus mixing engine versions would not be the one its manifest describes; delete {out} "
                           "to build it again with these engines")
    atomic_write_text(started, json.dumps(versions, indent=1))
    for i, u in enumerate(plan):
        path = out / f"{u.name}.wav"
        if not path.exists():
            _synthesize(u, path, cfg.sample_rate)
        if log is not None and (i + 1) % 500 == 0:
            log(f"[synth] {i + 1}/{len(plan)} utterances")
    entries = [dict(asdict(u), sha256=sha256_file(out / f"{u.name}.wav"),
                    seconds=round(sf.info(str(out / f"{u.name}.wav")).duration, 4)) for u in plan]
    doc = {"config": asdict(cfg), "engines": versions, "utterances": entries}
    atomic_write_text(manifest, json.dumps(doc, indent=1))  # a unique temporary name: DDP ranks may race here
    return out


def _version(engine: str) -> str:
    proc = subprocess.run([engine, "--version"], capture_output=True, text=True, timeout=30)
    lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if "version" in ln.lower() or "NG" in ln]
    return lines[0] if lines else "unknown"


def load_corpus(corpus_dir: str | Path, spec: AudioSpec | dict | None = None) -> list[torch.Tensor]:
    """Waveforms of a built corpus at the spec's rate, checked against the manifest's sha256."""
    corpus_dir = Path(corpus_dir)
    manifest = corpus_dir / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(f"{manifest} missing: build the corpus first (build_corpus)")
    doc = json.loads(manifest.read_text())
    wavs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResampleWarning)  # written at FSDD's 8 kHz on purpose
        for e in doc["utterances"]:
            path = corpus_dir / f"{e['name']}.wav"
            raw = path.read_bytes()  # hashed and decoded from one read
            if hashlib.sha256(raw).hexdigest() != e["sha256"]:
                raise ValueError(f"{path}: sha256 differs from the corpus manifest (modified or corrupt file)")
            data, sr = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
            wavs.append(validate_waveform(data, sr, spec, source=path.name))
    return wavs


def corpus_manifest_entry(corpus_dir: str | Path) -> dict:
    """One provenance entry for a built corpus (the manifest's sha256 covers every file's sha256)."""
    corpus_dir = Path(corpus_dir)
    doc = json.loads((corpus_dir / "manifest.json").read_text())
    seconds = sum(e["seconds"] for e in doc["utterances"])  # recorded at build time: no file is read again
    return {"path": f"synthesized corpus {corpus_dir.name} ({len(doc['utterances'])} utterances, "
                    f"{seconds / 60:.1f} min; engines {doc['engines']})",
            "sha256": sha256_file(corpus_dir / "manifest.json"), "sha256_of": "manifest.json",
            "config": doc["config"], "seconds": round(seconds, 1)}
