"""provenance.json: what produced a checkpoint, so a reader can rerun it."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

from .files import sha256_file

_TRACKED = ("torch", "lightning", "numpy", "safetensors", "scikit-learn", "pandas")


def recipe_sha256(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()


def package_versions() -> dict[str, str]:
    out = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and name.lower().startswith("fmzoo-"):
            out[name] = dist.version
    for name in _TRACKED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return dict(sorted(out.items()))


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _data_file_entry(f) -> dict:
    if isinstance(f, dict):
        return f
    p = Path(f)
    root = os.environ.get("FMZOO_DATA")
    shown = p.as_posix()
    if root:
        try:
            shown = p.resolve().relative_to(Path(root).resolve()).as_posix()
            shown = f"$FMZOO_DATA/{shown}"
        except ValueError:
            pass
    return {"path": shown, "sha256": sha256_file(p), "bytes": p.stat().st_size}


def build_provenance(extra: dict) -> dict:
    prov = dict(extra)
    if "recipe" in prov and prov["recipe"] is not None:
        prov.setdefault("recipe_name", prov["recipe"].get("name"))
        prov["recipe_sha256"] = recipe_sha256(prov["recipe"])
    prov["data_files"] = [_data_file_entry(f) for f in prov.get("data_files", [])]
    prov.setdefault("packages", package_versions())
    prov.setdefault("python", platform.python_version())
    prov.setdefault("git_commit", git_commit())
    prov.setdefault("created_utc", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return prov
