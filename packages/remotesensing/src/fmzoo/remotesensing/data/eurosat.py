"""EuroSAT RGB (Helber et al. 2019), the 5-class subset staged under the data root.

``remote_sensing/eurosat_rgb_5class/dataset/{train,val}/<Class>/<Class>_<n>.jpg``: 64x64 8-bit RGB
(Sentinel-2 B04/B03/B02 rendered to JPEG), classes Forest, Industrial, Pasture, Residential, River
(3000/2500/2000/3000/2500 images, split 80/20 by the source repository). This is NOT the 10-class
EuroSAT benchmark; every result computed on it says so.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError, data_root

from ..spec import RGB_BANDS

FOLDER = "remote_sensing/eurosat_rgb_5class"
CLASSES = ["Forest", "Industrial", "Pasture", "Residential", "River"]
BANDS = list(RGB_BANDS)
SPLITS = {"train": "train", "val": "val", "test": "val"}  # the source has train/val only; val is our test


def _files(root: Path, split: str) -> list[tuple[Path, int]]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    base = root / FOLDER / "dataset" / SPLITS[split]
    if not base.is_dir():
        raise FileNotFoundError(f"EuroSAT 5-class folder {str(base)!r} not found under the data root")
    out = []
    for label, cls in enumerate(CLASSES):
        files = sorted((base / cls).glob("*.jpg"))
        if not files:
            raise FileNotFoundError(f"no images for class {cls!r} in {str(base)!r}")
        out += [(f, label) for f in files]
    return out


def decode_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != "RGB":
                raise InputSpecError(f"{str(path)!r} is {im.mode}, expected an RGB image")
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputSpecError(f"{str(path)!r} is not a readable image (corrupt or truncated): {exc}") from None


@functools.lru_cache(maxsize=4)
def _index(root: str, split: str) -> tuple[tuple[Path, ...], np.ndarray]:
    files = _files(Path(root), split)
    return tuple(f for f, _ in files), np.array([y for _, y in files], dtype=np.int64)


def _decode(files) -> np.ndarray:
    imgs = np.stack([decode_rgb(f) for f in files])
    if imgs.shape[1:] != (3, 64, 64):
        raise InputSpecError(f"EuroSAT images should be 3x64x64, got {imgs.shape[1:]}")
    return imgs


@functools.lru_cache(maxsize=4)
def _load(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    files, y = _index(root, split)
    return _decode(files), y


def load_eurosat_rgb(split: str = "train", root: str | Path | None = None, limit: int | None = None,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, 64, 64) in B04/B03/B02 order and int labels; ``limit`` draws a stratified
    random subset of that size (seeded; only those images are decoded)."""
    root = Path(root) if root is not None else data_root()
    files, y = _index(str(root), split)
    if limit is not None and limit < len(y):
        rng = np.random.default_rng(seed)
        counts = np.bincount(y, minlength=len(CLASSES))
        quota = limit * counts / len(y)
        k = np.floor(quota).astype(int)
        for c in np.argsort(-(quota - k))[: limit - k.sum()]:  # largest remainders get the rest
            k[c] += 1
        idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), k[c], replace=False)
                                      for c in range(len(CLASSES))]))
        return _decode([files[i] for i in idx]), y[idx]
    return _load(str(root), split)


def eurosat_split_digest(root: str | Path | None = None, split: str = "train") -> dict:
    """One provenance entry for a whole split: sha256 over the sorted (relative path, file sha256) list."""
    import hashlib

    from fmzoo.core import sha256_file

    root = Path(root) if root is not None else data_root()
    files = _files(root, split)
    h = hashlib.sha256()
    for f, _ in files:
        h.update(f"{f.relative_to(root).as_posix()} {sha256_file(f)}\n".encode())
    return {"path": f"$FMZOO_DATA/{FOLDER}/dataset/{SPLITS[split]} ({len(files)} jpg; sha256 of the sorted "
                    "'path sha256' lines)", "sha256": h.hexdigest(), "files": len(files)}


class EuroSATRGB(torch.utils.data.Dataset):
    """torchgeo-style samples: ``{"image": uint8 tensor (3,64,64), "label": int, "bands": [...]}``."""

    classes = CLASSES
    bands = BANDS

    def __init__(self, split: str = "train", root: str | Path | None = None, limit: int | None = None, seed: int = 0):
        self.images, self.labels = load_eurosat_rgb(split, root, limit, seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.from_numpy(self.images[i]), "label": int(self.labels[i]), "bands": list(self.bands)}
