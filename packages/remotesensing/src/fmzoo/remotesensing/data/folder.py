"""A labelled image folder (the everyday layout of a scene-classification set): one subfolder per class,

    PATH/<class>/<image>                       -> split into train/test here (see ``read_image_folder``)
    PATH/train/<class>/<image>, PATH/test/<class>/<image>   (or val/ for test, as EuroSAT ships)

Images are 8-bit RGB PNG/JPEG (bands B04/B03/B02) or GeoTIFF (.tif/.tiff) whose band descriptions name
Sentinel-2 bands (``data.geotiff.read_geotiff``). Each image comes back with its band names, so the
checkpoint's declared products decide how it is fed (``spec.Preprocessor``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fmzoo.core import InputSpecError

from ..spec import RGB_BANDS
from .eurosat import decode_rgb
from .geotiff import read_geotiff

RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
GEOTIFF_SUFFIXES = (".tif", ".tiff")
SUFFIXES = RGB_SUFFIXES + GEOTIFF_SUFFIXES
TEST_FRACTION = 0.2  # the share of each class held out when the folder has no train/test split
SPLIT_SEED = 0  # that split is fixed: every label budget and seed scores on the same test images


@dataclass
class LabelledImages:
    """``images[i]``: a (C, H, W) array whose channels are ``bands[i]``; ``labels[i]`` indexes ``classes``."""

    images: list
    bands: list
    labels: np.ndarray
    files: list
    classes: list


def describe_layout() -> str:
    return ("an image folder with one subfolder per class (PATH/<class>/..., or PATH/train/<class>/... and "
            "PATH/test/<class>/... or val/): 8-bit RGB PNG/JPEG, or GeoTIFF (.tif/.tiff) whose band "
            "descriptions name Sentinel-2 bands (B01..B12, B8A) or Sentinel-1 polarisations (VV, VH)")


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    odd = [p for p in files if p.suffix.lower() not in SUFFIXES]
    if odd:
        raise InputSpecError(f"{str(odd[0])!r} is not a supported image: expected {', '.join(SUFFIXES)} "
                             "(8-bit RGB PNG/JPEG or GeoTIFF with Sentinel-2 band descriptions)")
    return files


def _read(path: Path) -> tuple[np.ndarray, list[str]]:
    if path.suffix.lower() in RGB_SUFFIXES:
        return decode_rgb(path), list(RGB_BANDS)
    sample = read_geotiff(path)
    return sample["image"].numpy(), list(sample["bands"])


def _read_split(root: Path, classes: list[str] | None = None) -> LabelledImages:
    dirs = _class_dirs(root)
    if not dirs:
        raise InputSpecError(f"{str(root)!r} has no class subfolders: expected {describe_layout()}")
    names = [d.name for d in dirs]
    if classes is not None:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise InputSpecError(f"{str(root)!r} has classes {unknown} that the training split lacks ({classes})")
    classes = list(classes if classes is not None else names)
    images, bands, labels, files = [], [], [], []
    for d in dirs:
        found = _image_files(d)
        if not found:
            raise InputSpecError(f"class folder {str(d)!r} holds no image ({', '.join(SUFFIXES)})")
        for f in found:
            x, b = _read(f)
            images.append(x)
            bands.append(b)
            labels.append(classes.index(d.name))
            files.append(f)
    return LabelledImages(images, bands, np.asarray(labels, dtype=np.int64), files, classes)


def _subset(data: LabelledImages, idx) -> LabelledImages:
    return LabelledImages([data.images[i] for i in idx], [data.bands[i] for i in idx], data.labels[idx],
                          [data.files[i] for i in idx], data.classes)


def read_image_folder(path: str | Path) -> tuple[LabelledImages, LabelledImages, str]:
    """(train, test, how the split was made). With train/ and test/ (or val/) subfolders those are the splits;
    otherwise every class keeps ``TEST_FRACTION`` of its images (at least one) for test, drawn once with
    ``SPLIT_SEED``; a class needs two images."""
    root = Path(path)
    if not root.is_dir():
        raise InputSpecError(f"--data {str(root)!r} is not a folder: expected {describe_layout()}")
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        train = _read_split(root / "train")
        return train, _read_split(test_dir, train.classes), f"{root}: train/ and {test_dir.name}/ as given"
    data = _read_split(root)
    rng = np.random.default_rng(SPLIT_SEED)
    test_idx = []
    for c, name in enumerate(data.classes):
        members = np.flatnonzero(data.labels == c)
        if len(members) < 2:
            raise InputSpecError(f"class {name!r} has {len(members)} image; a class needs at least 2 (one to train, "
                                 "one to test), or give PATH/train/ and PATH/test/")
        k = max(1, int(round(TEST_FRACTION * len(members))))
        test_idx.append(rng.choice(members, k, replace=False))
    test_idx = np.sort(np.concatenate(test_idx))
    train_idx = np.setdiff1d(np.arange(len(data.labels)), test_idx)
    how = (f"{root}: {TEST_FRACTION:.0%} of every class held out for test (fixed split, seed {SPLIT_SEED})")
    return _subset(data, train_idx), _subset(data, test_idx), how
