"""Shipping: the one path by which a pretraining run becomes a checkpoint inside a package (``fmzoo ship``).

A shipped checkpoint is a folder ``<package>/checkpoints/<name>`` with the run's own files (config.json,
model.safetensors, provenance.json, preprocessor_config.json where there is one) and a README.md rendered from the
card that provenance.json holds. Shipping copies the files (the weights' sha256 checked against config.json),
merges card changes (``--card FILE.yaml``: CardData keys) and reproduction results (``--results``: ``fmzoo
reproduce`` JSON) into that card, renders it, and swaps the folder in whole: an interrupted ship leaves the old
checkpoint as it was. Re-shipping a shipped id re-renders it in place (weights untouched). ``check_cards`` is the
test that every shipped README is what its provenance renders.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from . import registry
from .card import CardData, card_of, refresh_card, render_card
from .errors import CheckpointError, UsageError
from .files import sha256_file
from .hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, _own_files, check_checkpoint_dir
from .registry import SHIPPED_ORG


def _checkpoint_of(source: str | Path) -> Path:
    """The checkpoint folder of a run directory, a checkpoint directory or a shipped id."""
    shipped = registry.shipped_checkpoints()
    if str(source) in shipped:
        return shipped[str(source)]
    path = Path(source)
    if (path / "checkpoint" / CONFIG_NAME).is_file():  # a run directory of `fmzoo pretrain`
        path = path / "checkpoint"
    check_checkpoint_dir(path)
    config = json.loads((path / CONFIG_NAME).read_text())
    if config.get("weights_sha256") and sha256_file(path / WEIGHTS_NAME) != config["weights_sha256"]:
        raise CheckpointError(f"{path / WEIGHTS_NAME}: its sha256 does not match config.json's weights_sha256; "
                              "not shipping a checkpoint whose weights changed after it was written")
    return path


def package_checkpoints_dir(architecture: str, package: str | None = None) -> Path:
    """The checkpoints folder of ``package`` (a plugin name), or of the package that registers ``architecture``."""
    found = registry.plugins()
    if package is not None:
        if package not in found:
            raise UsageError(f"--package {package!r}: installed fmzoo packages are {', '.join(found) or 'none'}")
        plugin = found[package]
    else:
        owners = [p for p in found.values() if architecture in p.models]
        if not owners:
            raise UsageError(f"no installed fmzoo package registers {architecture!r}; name one with --package")
        plugin = owners[0]
    if plugin.checkpoints_dir is None:
        raise UsageError(f"package {plugin.name!r} declares no checkpoints folder (Plugin.checkpoints_dir)")
    return Path(plugin.checkpoints_dir)


def _card_changes(card_file: str | Path | None) -> dict:
    if card_file is None:
        return {}
    import yaml

    changes = yaml.safe_load(Path(card_file).read_text()) or {}
    if not isinstance(changes, dict):
        raise UsageError(f"--card {card_file}: expected a YAML mapping of card keys, got {type(changes).__name__}")
    return changes


def ship(source: str | Path, name: str | None = None, package: str | None = None, results=(),
         card_file: str | Path | None = None, replace: bool = False, dest_root: str | Path | None = None) -> Path:
    """Ship ``source`` (run dir, checkpoint dir or shipped id) as ``<package>/checkpoints/<name>``; returns it.

    ``results``: ``fmzoo reproduce`` result dicts (or JSON file paths) whose rows join the card; ``card_file``: a
    YAML file of CardData keys that replace the card's. An existing checkpoint of that name is replaced only with
    ``replace=True`` (a shipped id given as ``source`` is re-rendered in place)."""
    src = _checkpoint_of(source)
    results = [json.loads(Path(r).read_text()) if isinstance(r, str | Path) else r for r in results]
    config = json.loads((src / CONFIG_NAME).read_text())
    prov = json.loads((src / "provenance.json").read_text()) if (src / "provenance.json").is_file() else {}
    changes = _card_changes(card_file)
    card = CardData.from_dict({**card_of(prov, config).to_dict(), **changes}, f"--card {card_file}")
    name = name or src.name
    if "/" in name or name.startswith("."):
        raise UsageError(f"--name {name!r}: a shipped checkpoint's name is one folder name (its id is "
                         f"{SHIPPED_ORG}/<name>)")
    root = Path(dest_root) if dest_root is not None else package_checkpoints_dir(config["architecture"], package)
    dest = root / name
    if dest.resolve() == src.resolve():  # re-ship in place: only the card and provenance change
        refresh_card(dest, results or None, card)
        return dest
    if dest.exists() and not replace:
        raise UsageError(f"{dest} exists: give --replace to ship over {SHIPPED_ORG}/{name} (its folder is swapped "
                         "in whole, never edited in place)")
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{name}.ship-{uuid.uuid4().hex[:8]}"
    old = root / f".{name}.old-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        for f in _own_files(src):
            if f != CARD_NAME:
                shutil.copyfile(src / f, staging / f)
        if not (staging / "provenance.json").exists():
            (staging / "provenance.json").write_text("{}\n")
        refresh_card(staging, results or None, card)
        if dest.exists():
            dest.rename(old)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and dest.exists():
            shutil.rmtree(old)
        elif old.exists():  # the swap failed half-way: put the old checkpoint back
            old.rename(dest)
    return dest


def check_cards(checkpoints: dict[str, Path] | None = None) -> list[str]:
    """Shipped checkpoints whose README.md is not what their provenance.json's card renders (empty: all agree)."""
    bad = []
    for cid, path in sorted((checkpoints or registry.shipped_checkpoints()).items()):
        config = json.loads((path / CONFIG_NAME).read_text())
        prov = json.loads((path / "provenance.json").read_text())
        if not prov.get("card"):
            bad.append(f"{cid}: provenance.json holds no card")
        elif (path / CARD_NAME).read_text() != render_card(config, card_of(prov, config), prov):
            bad.append(f"{cid}: README.md differs from the card provenance.json renders (re-ship it: fmzoo ship {cid})")
    return bad
