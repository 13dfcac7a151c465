"""provenance.json: what produced a checkpoint, so a reader can rerun it."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field, fields
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path
from typing import Any

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


@dataclass
class Provenance:
    """What produced a checkpoint, typed: provenance.json is ``to_dict()`` of this. The keys every checkpoint has
    are fields; what a method adds of its own (tokens seen, audio seconds, ...) goes in ``extra`` and is written
    at the top level beside them, so the file's layout does not change. ``from_dict`` reads every provenance.json
    fmzoo has written (a single ``seed`` before ``seeds``)."""

    recipe: dict | None = None
    recipe_name: str | None = None
    recipe_sha256: str | None = None
    seeds: list[int] | None = None
    data_files: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    training: dict | None = None  # seconds and steps of each part of the run (fmzoo.core.training)
    card: dict | None = None  # the whole card (CardData.to_dict()): README.md is rendered from it
    evaluations: dict = field(default_factory=dict)  # "table:setting" -> fmzoo reproduce rows
    imported_from: dict | None = None  # official weights: source, format, files with sha256
    init_from: str | None = None  # a continued run: the checkpoint it started from
    data_path: str | None = None  # fmzoo pretrain --data PATH
    packages: dict = field(default_factory=dict)
    python: str | None = None
    git_commit: str | None = None
    created_utc: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict | None) -> Provenance:
        d = dict(d or {})
        if d.get("seeds") is None and d.get("seed") is not None:  # written before provenance was typed
            d["seeds"] = [d.pop("seed")]
        d.pop("seed", None)
        known = {f.name for f in fields(cls)} - {"extra"}
        kwargs = {k: v for k in list(d) if k in known and (v := d.pop(k)) is not None}  # a None is the default
        return cls(**kwargs, extra={**d.pop("extra", {}), **d})

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "extra" and v not in (None, {}) or k == "data_files"}
        clash = set(self.extra) & {f.name for f in fields(self)}
        if clash:
            raise ValueError(f"provenance extra keys {sorted(clash)} shadow typed fields; set the fields instead")
        return {**out, **self.extra}


def build_provenance(extra: dict | Provenance) -> dict:
    """provenance.json for a checkpoint being saved: the run's facts plus the recipe's hash, the data files'
    hashes, package versions, Python, git commit and time."""
    prov = Provenance.from_dict(extra.to_dict() if isinstance(extra, Provenance) else extra)
    if prov.recipe is not None:
        prov.recipe_name = prov.recipe_name or prov.recipe.get("name")
        prov.recipe_sha256 = recipe_sha256(prov.recipe)
    prov.data_files = [_data_file_entry(f) for f in prov.data_files]
    prov.packages = prov.packages or package_versions()
    prov.python = prov.python or platform.python_version()
    prov.git_commit = prov.git_commit or git_commit()
    prov.created_utc = prov.created_utc or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return prov.to_dict()
