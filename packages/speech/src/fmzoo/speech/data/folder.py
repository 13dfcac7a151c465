"""A user's labelled audio: a folder of audio files (WAV, FLAC, ... whatever soundfile reads) and a labels CSV.

``labels.csv`` (in the folder, or given as the path itself with files relative to its folder) has a header with
columns ``file`` and ``label`` (or another label column, named with ``fmzoo ... --target NAME``), and optionally
``split`` (``train`` or ``test``). Without ``split``, a fixed
stratified split puts 20 % of every class (at least one clip of a class with two or more) in the test split.
Every clip is read and checked with the checkpoint's input spec (:func:`fmzoo.speech.spec.load_audio`: mono,
finite, not clipped, long enough) and resampled to its rate (one ResampleWarning for the folder)."""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fmzoo.core.errors import InputSpecError

from ..spec import AudioSpec, ResampleWarning, load_audio

__all__ = ["LabelledAudio", "load_labelled_folder", "load_audio_folder", "audio_files", "FORMAT"]

FORMAT = ("a folder of audio files (WAV) with labels.csv: header file,label[,split] (split: train|test; "
          "without it 20% of every class is held out; --target NAME: another label column), files relative to the "
          "CSV's folder")
TEST_SHARE = 0.2


@dataclass
class LabelledAudio:
    train_wavs: list
    train_y: np.ndarray
    test_wavs: list
    test_y: np.ndarray
    class_names: list[str]
    source: str


def _csv_path(path: Path) -> Path:
    if path.is_dir():
        csvs = sorted(path.glob("*.csv"))
        if (path / "labels.csv").is_file():
            return path / "labels.csv"
        if len(csvs) == 1:
            return csvs[0]
        raise InputSpecError(f"{path}: expected a labels.csv (columns file,label[,split]) in the folder, "
                             f"found {len(csvs)} CSV files {[c.name for c in csvs][:5]}")
    if path.suffix.lower() != ".csv":
        raise InputSpecError(f"{path}: expected a folder with labels.csv or the CSV file itself, got a {path.suffix} file")
    return path


def _read_rows(csv_path: Path, label: str) -> list[dict]:
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if "file" not in cols or label not in cols:
            raise InputSpecError(f"{csv_path.name}: expected a header with columns file,{label}[,split], got {cols}")
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    rows = [r for r in rows if any(r.values())]
    if not rows:
        raise InputSpecError(f"{csv_path.name}: no labelled rows")
    for i, r in enumerate(rows, start=2):
        if not r["file"] or not r[label]:
            raise InputSpecError(f"{csv_path.name}, line {i}: empty file or {label}")
        if "split" in r and r["split"] not in ("train", "test", ""):
            raise InputSpecError(f"{csv_path.name}, line {i}: split must be 'train' or 'test', got {r['split']!r}")
    return rows


def _class_names(labels: list[str]) -> list[str]:
    names = sorted(set(labels))
    try:  # numeric labels in numeric order (2 before 10)
        return sorted(names, key=float)
    except ValueError:
        return names


def _stratified_test(y: np.ndarray) -> np.ndarray:
    """A fixed (seed 0) stratified hold-out: TEST_SHARE of every class, at least one of a class with >= 2 clips."""
    rng = np.random.default_rng(0)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = int(round(TEST_SHARE * len(members)))
        k = max(k, 1) if len(members) >= 2 else 0
        test[rng.permutation(members)[:k]] = True
    return test


def _read_clips(paths: list[Path], spec, where: Path) -> tuple[list, int, int]:
    """Every clip read and checked with the spec (:func:`load_audio`) and resampled to its rate, with one
    ResampleWarning for all of them: (waveforms, number resampled, the rate)."""
    wavs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResampleWarning)
        for p in paths:
            wavs.append(load_audio(p, spec))
    resampled = sum(issubclass(w.category, ResampleWarning) for w in caught)
    rate = (spec if isinstance(spec, AudioSpec) else AudioSpec.from_dict(spec)).sample_rate
    if resampled:
        warnings.warn(f"{where}: {resampled} of {len(paths)} files resampled to {rate} Hz", ResampleWarning, stacklevel=3)
    for w in caught:  # anything other than resampling is passed on
        if not issubclass(w.category, ResampleWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return wavs, resampled, rate


def audio_files(path: str | Path) -> list[Path]:
    """The WAV files of an unlabelled folder (searched recursively, in sorted order) or a single WAV file:
    the ``--data PATH`` of ``fmzoo pretrain`` (no labels needed)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".wav":
            raise InputSpecError(f"{path}: expected a folder of WAV files (or one .wav file), got a {path.suffix!r} file")
        return [path]
    if not path.is_dir():
        raise InputSpecError(f"{path}: no such folder; expected a folder of WAV files")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".wav")
    if not files:
        raise InputSpecError(f"{path}: no .wav files in the folder (searched recursively); expected a folder of WAV files")
    return files


def load_audio_folder(path: str | Path, spec: AudioSpec | dict | None = None) -> tuple[list, list[Path], str]:
    """An unlabelled folder of WAV files (see :func:`audio_files`), every clip read as in
    :func:`load_labelled_folder`: (waveforms, files, a sentence saying what was read)."""
    files = audio_files(path)
    wavs, resampled, rate = _read_clips(files, spec, Path(path))
    seconds = sum(w.numel() for w in wavs) / rate
    return wavs, files, (f"{len(files)} WAV files of {Path(path).name} (the user's own audio, {seconds:.1f} s; "
                         f"{resampled} resampled to {rate} Hz)")


def load_labelled_folder(path: str | Path, spec: AudioSpec | dict | None = None, label: str | None = None) -> LabelledAudio:
    """The clips and labels of a folder (see the module docstring); ``label``: the label column (default ``label``)."""
    path = Path(path)
    label = label or "label"
    csv_path = _csv_path(path)
    rows = _read_rows(csv_path, label)
    folder = csv_path.parent
    names = _class_names([r[label] for r in rows])
    if len(names) < 2:
        raise InputSpecError(f"{csv_path.name}: a classification task needs at least two labels, got {names}")
    y = np.array([names.index(r[label]) for r in rows], dtype=np.int64)
    if any(r.get("split") for r in rows):
        if not all(r.get("split") for r in rows):
            raise InputSpecError(f"{csv_path.name}: give a split for every row or for none")
        test = np.array([r["split"] == "test" for r in rows])
        how = "the CSV's split column"
    else:
        test = _stratified_test(y)
        how = f"a fixed stratified {TEST_SHARE:.0%} hold-out per class (seed 0)"
    missing = [(i, r["file"]) for i, r in enumerate(rows, start=2) if not (folder / r["file"]).is_file()]
    if missing:  # every missing file at once, before any clip is read
        listed = ", ".join(f"{f!r} (line {i})" for i, f in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputSpecError(f"{csv_path.name}: no audio file {listed} in {folder}: {len(missing)} of {len(rows)} "
                             "files named in the CSV are missing; expected every file path relative to the CSV's folder")
    wavs, resampled, rate = _read_clips([folder / r["file"] for r in rows], spec, folder)
    # each split ordered by length (stable), so that batches of neighbours pad little
    idx_tr, idx_te = (sorted(np.flatnonzero(sel), key=lambda i: wavs[i].numel()) for sel in (~test, test))
    if len(idx_tr) == 0 or len(idx_te) == 0:
        raise InputSpecError(f"{csv_path.name}: the {'train' if len(idx_tr) == 0 else 'test'} split is empty ({how})")
    source = (f"{csv_path} ({len(rows)} clips, {len(names)} labels in column {label!r}; split: {how}; "
              f"{resampled} resampled to {rate} Hz)")
    return LabelledAudio([wavs[i] for i in idx_tr], y[idx_tr], [wavs[i] for i in idx_te], y[idx_te], names, source)
