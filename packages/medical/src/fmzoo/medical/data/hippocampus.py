"""Medical Segmentation Decathlon Task04 Hippocampus (MRI crops, manual labels 0/1/2), read from
``<data_root>/medical3d/msd_hippocampus/{images,labels}/hippocampus_XXX.nii.gz``.

Split used everywhere in fmzoo-medical (deterministic, by sorted case id): every 5th case (position
0, 5, 10, ... in the sorted list) is the test set (52 cases); the other 208 are the training pool.
Self-supervised pretraining sees only the training pool's images (never their labels, never the
test cases); label budgets (1/5/20/all) are drawn from the training pool with a seeded RNG.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..spec import MR_SPEC_HIPPOCAMPUS, InputSpecError, check_pair, preprocess, read_nifti

CLASSES = {0: "background", 1: "anterior", 2: "posterior"}
FOLDER = ("medical3d", "msd_hippocampus")


def hippocampus_root(root: str | Path | None = None) -> Path:
    if root is None:
        from fmzoo.core import data_root

        root = data_root()
    path = Path(root).joinpath(*FOLDER)
    if not (path / "images").is_dir() or not (path / "labels").is_dir():
        raise FileNotFoundError(f"{str(path)!r} lacks images/ and labels/ (MSD Task04 Hippocampus)")
    return path


def list_cases(root: str | Path | None = None) -> list[str]:
    base = hippocampus_root(root)
    cases = sorted(p.name[: -len(".nii.gz")] for p in (base / "images").glob("hippocampus_*.nii.gz"))
    return [c for c in cases if (base / "labels" / f"{c}.nii.gz").is_file()]


def split_cases(cases: list[str]) -> tuple[list[str], list[str]]:
    """(train_pool, test): every 5th sorted case is test."""
    cases = sorted(cases)
    test = cases[::5]
    train = [c for i, c in enumerate(cases) if i % 5]
    return train, test


def label_budget_cases(train_pool: list[str], n: int | str, seed: int) -> list[str]:
    if n == "all" or (isinstance(n, int) and n >= len(train_pool)):
        return list(train_pool)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"label budget must be a positive int or 'all', got {n!r}")
    rng = np.random.default_rng(1000 + seed)
    idx = rng.choice(len(train_pool), size=n, replace=False)
    return [train_pool[i] for i in sorted(idx)]


@functools.lru_cache(maxsize=512)
def _load_case_cached(base: str, case: str, spec_key: str) -> tuple[np.ndarray, np.ndarray]:
    import json

    spec = json.loads(spec_key)
    img = read_nifti(Path(base) / "images" / f"{case}.nii.gz")
    lab = read_nifti(Path(base) / "labels" / f"{case}.nii.gz")
    check_pair(img, lab, case)
    x = preprocess(img, spec)
    y = preprocess(lab, spec, label=True)
    if y.min() < 0 or y.max() > 2:
        raise InputSpecError(f"{case}: labels outside {{0, 1, 2}}: {np.unique(y)}")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_case(case: str, root: str | Path | None = None, spec: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 (X,Y,Z) normalised per ``spec``, label int64 (X,Y,Z)) for one case."""
    import json

    spec = spec or MR_SPEC_HIPPOCAMPUS
    return _load_case_cached(str(hippocampus_root(root)), case, json.dumps(spec, sort_keys=True))


def load_hippocampus(root: str | Path | None = None, cases: list[str] | None = None, spec: dict | None = None) -> dict:
    """Dataset entry point: {"train": [...case ids], "test": [...], "load": callable(case) -> (x, y)}."""
    all_cases = list_cases(root)
    train, test = split_cases(all_cases)
    return {
        "train": train, "test": test, "classes": CLASSES, "spec": spec or MR_SPEC_HIPPOCAMPUS,
        "load": lambda c: load_case(c, root, spec),
    }
