"""The eo-learn TestEOPatch: a real Sentinel-2 L1C patch (13 bands x 5 reference dates, 101x100 px,
10 m, EPSG:32633, Slovenia) with a land-use/land-cover mask.

SoftCon's multi-label supervision comes from land-cover maps (Dynamic World over SSL4EO-S12): each
image gets a multi-hot vector of the classes present. Here the same construction is made from the
patch's LULC mask: a random crop's label vector marks every LULC class covering at least
``min_fraction`` of its valid pixels. This is a single small patch, not SSL4EO-S12-ML: enough to run
the method on real multispectral data, far too little to expect the paper's transfer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError, data_root

from ..spec import S2_L1C_ORDER

FOLDER = "remote_sensing/eolearn_testeopatch"
BANDS = list(S2_L1C_ORDER)  # REFERENCE_SCENES band order: B01..B08, B8A, B09..B12
LULC_CLASSES = {1: "cultivated land", 2: "forest", 3: "grassland", 4: "shrubland", 8: "artificial surface"}
LULC_IDS = list(LULC_CLASSES)
CRS = "EPSG:32633"


def _npy(path: Path, expect_ndim: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} not found under the data root")
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputSpecError(f"{str(path)!r} is not a readable .npy array (corrupt or truncated): {exc}") from None
    if a.ndim != expect_ndim:
        raise InputSpecError(f"{str(path)!r}: expected {expect_ndim} dimensions, got shape {a.shape}")
    return a


def load_eopatch(root: str | Path | None = None) -> dict:
    """``{"image": float32 (T=5, 13, 101, 100) reflectance, "lulc": uint16 (101, 100), "bands": [...],
    "crs": "EPSG:32633", "bounds": (xmin, ymin, xmax, ymax), "timestamps": [...]}``."""
    base = (Path(root) if root is not None else data_root()) / FOLDER
    scenes = _npy(base / "REFERENCE_SCENES.npy", 4)
    if scenes.shape[-1] != 13:
        raise InputSpecError(f"REFERENCE_SCENES should have 13 bands, got shape {scenes.shape}")
    lulc = _npy(base / "mask_timeless" / "LULC.npy", 3)[..., 0]
    if lulc.shape != scenes.shape[1:3]:
        raise InputSpecError(f"LULC mask {lulc.shape} does not match the scenes {scenes.shape[1:3]}")
    bbox = json.loads((base / "bbox.geojson").read_text())["coordinates"][0]
    xs, ys = [p[0] for p in bbox], [p[1] for p in bbox]
    return {
        "image": np.ascontiguousarray(scenes.transpose(0, 3, 1, 2).astype(np.float32)),
        "lulc": lulc.astype(np.int64),
        "bands": list(BANDS),
        "crs": CRS,
        "bounds": (min(xs), min(ys), max(xs), max(ys)),
        "timestamps": None,  # the 5 reference scenes carry no dates of their own
    }


def multilabel_vector(lulc_crop: np.ndarray, min_fraction: float = 0.02) -> np.ndarray:
    """Multi-hot vector over LULC_IDS of the classes covering >= min_fraction of the valid pixels."""
    valid = lulc_crop[lulc_crop > 0]
    out = np.zeros(len(LULC_IDS), dtype=np.float32)
    if valid.size == 0:
        return out
    for i, c in enumerate(LULC_IDS):
        if (valid == c).mean() >= min_fraction:
            out[i] = 1.0
    return out


class EOPatchMultiLabelCrops(torch.utils.data.Dataset):
    """Random crops (random date, random position) of the 13-band patch with their multi-label vector.

    ``length`` crops make one epoch; crop ``i`` of epoch ``e`` is drawn from a generator seeded with
    (seed, e, i) so runs are reproducible. Items: ``(image float32 (13, crop, crop), labels (5,))``.
    """

    def __init__(self, crop: int = 48, length: int = 2048, min_fraction: float = 0.02, seed: int = 0,
                 root: str | Path | None = None):
        patch = load_eopatch(root)
        self.scenes, self.lulc = patch["image"], patch["lulc"]
        t, c, h, w = self.scenes.shape
        if crop > min(h, w):
            raise ValueError(f"crop {crop} is larger than the patch {h}x{w}")
        self.crop, self.length, self.min_fraction, self.seed = crop, length, min_fraction, seed
        self.epoch = 0
        self.bands = patch["bands"]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        t, _, h, w = self.scenes.shape
        d = int(rng.integers(t))
        y0, x0 = int(rng.integers(h - self.crop + 1)), int(rng.integers(w - self.crop + 1))
        img = self.scenes[d, :, y0:y0 + self.crop, x0:x0 + self.crop]
        lab = multilabel_vector(self.lulc[y0:y0 + self.crop, x0:x0 + self.crop], self.min_fraction)
        return torch.from_numpy(np.ascontiguousarray(img)), torch.from_numpy(lab)
