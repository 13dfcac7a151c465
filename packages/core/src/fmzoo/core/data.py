"""Where the real data lives. Readers take a root directory; tests and CI point it at ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path


def _repo_default() -> Path | None:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "packages").is_dir() and (parent / "pyproject.toml").is_file():
            candidate = parent.parent / "shared" / "data"
            return candidate if candidate.is_dir() else None
    return None


def data_root(required: bool = True) -> Path | None:
    """``$FMZOO_DATA``, else ``<repo>/../shared/data`` (or ``./../shared/data``) when it exists."""
    env = os.environ.get("FMZOO_DATA")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"FMZOO_DATA={env!r} is not a directory")
        return root
    for candidate in (_repo_default(), Path.cwd().parent / "shared" / "data"):
        if candidate is not None and candidate.is_dir():
            return candidate
    if required:
        raise FileNotFoundError(
            "no data root: set FMZOO_DATA to the folder holding the datasets (e.g. ../shared/data)"
        )
    return None


def data_path(*parts: str) -> Path:
    """A file or folder under the data root, with a clear error naming what is missing."""
    root = data_root()
    path = root.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{'/'.join(parts)!r} is not under the data root {str(root)!r}")
    return path
