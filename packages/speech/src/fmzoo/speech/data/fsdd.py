"""Free Spoken Digit Dataset (Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0).

3000 mono 8 kHz WAVs ``recordings/{digit}_{speaker}_{index}.wav``; the README's split: index 0-4 = test
(300), 5-49 = train (2700). 6 speakers x 10 digits x 50 takes. Read under ``fmzoo.core.data_root()``.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from fmzoo.core import data_root
from fmzoo.core.errors import InputSpecError

from ..spec import AudioSpec, ResampleWarning, load_audio

__all__ = ["FSDDItem", "fsdd_dir", "list_fsdd", "load_fsdd", "load_items", "ClipList", "fsdd_clips", "SPEAKERS",
           "segment_stream", "SegmentDataset", "manifest_entry"]

SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]


@dataclass(frozen=True)
class FSDDItem:
    path: Path
    digit: int
    speaker: str
    index: int

    @property
    def split(self) -> str:
        return "test" if self.index < 5 else "train"

    @property
    def speaker_id(self) -> int:
        return SPEAKERS.index(self.speaker)


def fsdd_dir(root: str | Path | None = None) -> Path:
    root = Path(root) if root is not None else data_root()
    d = root / "speech" / "fsdd" / "recordings"
    if not d.is_dir():
        raise FileNotFoundError(f"FSDD recordings not found at {d} (expected <data_root>/speech/fsdd/recordings)")
    return d


def list_fsdd(split: str = "all", root: str | Path | None = None) -> list[FSDDItem]:
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    items = []
    for p in sorted(fsdd_dir(root).glob("*.wav")):
        parts = p.stem.split("_")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            raise InputSpecError(f"{p.name}: expected an FSDD name {{digit}}_{{speaker}}_{{index}}.wav")
        item = FSDDItem(p, int(parts[0]), parts[1], int(parts[2]))
        if item.speaker not in SPEAKERS:
            raise InputSpecError(f"{p.name}: unknown speaker {item.speaker!r}; expected one of {SPEAKERS}")
        if split == "all" or item.split == split:
            items.append(item)
    if not items:
        raise FileNotFoundError(f"no FSDD recordings for split {split!r} under {fsdd_dir(root)}")
    return items


def load_fsdd(split: str = "all", spec: AudioSpec | dict | None = None, root=None, limit: int | None = None):
    """Waveforms at the spec's rate (8 kHz files resampled; the warning is issued once, not per file).

    Returns (list of float32 tensors, digit labels tensor, speaker-id tensor, items)."""
    items = list_fsdd(split, root)
    if limit is not None:
        items = items[:: max(1, len(items) // limit)][:limit]
    return load_items(items, spec)


def load_items(items: list[FSDDItem], spec: AudioSpec | dict | None = None):
    """``load_fsdd`` for a given list of items: (waveforms, digit labels, speaker ids, items)."""
    wavs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResampleWarning)
        for it in items:
            wavs.append(load_audio(it.path, spec))
    if any(issubclass(w.category, ResampleWarning) for w in caught):
        rate = (spec if isinstance(spec, AudioSpec) else AudioSpec.from_dict(spec)).sample_rate
        warnings.warn(f"FSDD: {len(items)} files resampled 8000 Hz -> {rate} Hz", ResampleWarning, stacklevel=2)
    digits = torch.tensor([it.digit for it in items])
    speakers = torch.tensor([it.speaker_id for it in items])
    return wavs, digits, speakers, items


class ClipList(Sequence):
    """Waveforms of audio files, each read (and checked, resampled) on first access and kept: a task over
    FSDD's 3000 clips reads only the clips a run touches (``fmzoo finetune`` with a label budget reads its
    labelled subset and the test split). Resampling warnings are not repeated per clip."""

    def __init__(self, paths: list[Path], spec: AudioSpec | dict | None = None):
        self.paths, self.spec, self._cache = list(paths), spec, {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]
        if i not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResampleWarning)
                self._cache[i] = load_audio(self.paths[i], self.spec)
        return self._cache[i]


def fsdd_clips(split: str, spec: AudioSpec | dict | None = None, root=None) -> tuple[ClipList, list[FSDDItem]]:
    """A split's clips ordered by length (file size: FSDD's WAVs are all 16-bit mono PCM; so that batches of
    neighbours pad little), read lazily (:class:`ClipList`), and their items (labels)."""
    items = list_fsdd(split, root)
    items = sorted(items, key=lambda it: (it.path.stat().st_size, it.path.name))
    return ClipList([it.path for it in items], spec), items


def segment_stream(wavs: list[torch.Tensor], seg_samples: int, n_segments: int, seed: int = 0,
                   extra: list[torch.Tensor] | None = None, extra_fraction: float = 0.0) -> list[torch.Tensor]:
    """Pretraining segments: random clips concatenated until ``seg_samples`` long, then cut to length.

    FSDD clips are short (mean 0.44 s = 22 wav2vec 2.0 frames), shorter than what span masking with M = 10
    and 100 distractors are designed for; concatenation gives utterance-like segments without padding.
    With ``extra`` clips (e.g. synthesized speech), each segment is built from ``extra`` with probability
    ``extra_fraction`` and from ``wavs`` otherwise (without ``extra`` the stream is unchanged)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_segments):
        source = extra if extra and rng.random() < extra_fraction else wavs
        parts, total = [], 0
        while total < seg_samples:
            w = source[rng.randrange(len(source))]
            parts.append(w)
            total += w.numel()
        seg = torch.cat(parts)
        off = rng.randrange(seg.numel() - seg_samples + 1)
        out.append(seg[off : off + seg_samples])
    return out


class SegmentDataset(torch.utils.data.Dataset):
    """``length`` pretraining segments per epoch, drawn on the fly; item i of epoch e is reproducible from
    (``seed``, e, i). Set ``epoch`` at the start of every epoch (see methods/_common.EpochSeed).

    Growing pool (``pool`` > 0, used by wav2vec 2.0): the k-th segment drawn in the run (k = e * length + i)
    is segment ``k mod P(k)`` of a fixed, nested family of segments, with P(k) = ``pool`` * 2 ** (k //
    ``pool_doubling``): the run starts on a small set of segments that it revisits (with fresh masks and
    distractors) and the set doubles every ``pool_doubling`` segments until, late in the run, practically every
    segment is new. See the wav2vec2-small recipe for why."""

    def __init__(self, wavs: list[torch.Tensor], seg_samples: int, length: int, seed: int = 0, transform=None,
                 pool: int = 0, pool_doubling: int = 0, extra: list[torch.Tensor] | None = None,
                 extra_fraction: float = 0.0):
        if pool < 0 or pool_doubling < 0 or (pool > 0) != (pool_doubling > 0):
            raise ValueError("pool and pool_doubling must both be positive (growing pool) or both 0 (off)")
        if not 0.0 <= extra_fraction <= 1.0 or (extra_fraction > 0 and not extra):
            raise ValueError(f"extra_fraction must be in [0, 1] and needs extra clips, got {extra_fraction}")
        self.extra, self.extra_fraction = extra, float(extra_fraction)
        self.wavs, self.seg, self.length, self.seed, self.transform = wavs, seg_samples, length, seed, transform
        self.pool, self.pool_doubling = int(pool), int(pool_doubling)
        self.epoch = 0

    def __len__(self):
        return self.length

    def pool_size(self, k: int) -> int:
        return self.pool * 2 ** min(k // self.pool_doubling, 40) if self.pool else 0

    def segment_seed(self, i: int) -> int:
        if not self.pool:
            return (self.seed * 1_000_003 + self.epoch) * 1_000_033 + i
        k = self.epoch * self.length + i
        return (self.seed * 1_000_003 + 7_777_777) * 1_000_033 + k % self.pool_size(k)

    def __getitem__(self, i):
        x = segment_stream(self.wavs, self.seg, 1, seed=self.segment_seed(i), extra=self.extra,
                           extra_fraction=self.extra_fraction)[0]
        return self.transform(x) if self.transform is not None else x


def manifest_entry(items: list[FSDDItem], split: str) -> dict:
    """One provenance entry for a set of clips: count, bytes and the sha256 of the sorted manifest of
    ``<sha256>  <file name>`` lines (the per-file digests are recomputable from the files)."""
    import hashlib

    from fmzoo.core import sha256_file

    lines = sorted(f"{sha256_file(it.path)}  {it.path.name}" for it in items)
    return {"path": f"$FMZOO_DATA/speech/fsdd/recordings ({split} split: {len(items)} clips)",
            "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            "sha256_of": "sorted '<sha256>  <name>' manifest lines",
            "bytes": sum(it.path.stat().st_size for it in items)}
