"""The plugin registry: domain packages register models, recipes, datasets, tables and checkpoints
through the ``fmzoo.plugins`` entry point group. Nothing here imports a domain package until asked."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from .errors import RecipeError, UnknownNameError

ENTRY_POINT_GROUP = "fmzoo.plugins"
SHIPPED_ORG = "fmzoo"  # a shipped checkpoint's id is fmzoo/<its directory name>


@dataclass
class Plugin:
    name: str
    models: dict[str, str] = field(default_factory=dict)  # class name -> "module:attr"
    methods: dict[str, str] = field(default_factory=dict)  # recipe["method"] -> "module:Method subclass"
    pretrain: dict[str, str] = field(default_factory=dict)  # recipe["method"] -> "module:fn" (before Method)
    table_runners: dict[str, str] = field(default_factory=dict)  # table name -> "module:fn"
    datasets: dict[str, str] = field(default_factory=dict)  # dataset name -> "module:fn"
    finetune: dict[str, str] = field(default_factory=dict)  # DEPRECATED: architecture -> "module:fn"; use downstream
    downstream: dict[str, str] = field(default_factory=dict)  # architecture -> "module:DownstreamHooks subclass"
    weight_formats: dict[str, str] = field(default_factory=dict)  # release layout -> "module:WeightFormat subclass"
    official: str | None = None  # "module:attr" of a list of fmzoo.core.weights.OfficialWeights
    # method -> why there are no official weights to convert (the authors released none): `fmzoo list` prints it
    no_released_weights: dict[str, str] = field(default_factory=dict)
    recipes_dir: Path | None = None
    tables_dir: Path | None = None
    checkpoints_dir: Path | None = None


def import_object(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ValueError(f"expected 'module:attribute', got {ref!r}")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


PLUGIN_ERRORS: dict[str, str] = {}


@functools.lru_cache(maxsize=1)
def plugins() -> dict[str, Plugin]:
    """Installed plugins. One that fails to load is reported (warning + PLUGIN_ERRORS), not fatal.
    ``FMZOO_PLUGINS=a,b`` loads only those entry points (empty: none, as the core's own tests run)."""
    import os
    import warnings

    only = os.environ.get("FMZOO_PLUGINS")
    wanted = None if only is None else {n.strip() for n in only.split(",") if n.strip()}
    found: dict[str, Plugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        try:
            plugin = ep.load()()
            if not isinstance(plugin, Plugin):
                raise TypeError(f"returned {type(plugin).__name__}, not fmzoo.core.Plugin")
        except Exception as exc:
            PLUGIN_ERRORS[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"fmzoo plugin {ep.name!r} failed to load: {exc}", stacklevel=2)
            continue
        found[plugin.name] = plugin
    return dict(sorted(found.items()))


def _merged(attr: str) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for plugin in plugins().values():
        for key, ref in getattr(plugin, attr).items():
            if key in out:
                raise RuntimeError(f"{attr[:-1]} {key!r} registered by both {out[key][0]!r} and {plugin.name!r}")
            out[key] = (plugin.name, ref)
    return out


def list_models() -> list[dict[str, str]]:
    """Every registered architecture and every shipped checkpoint of the installed packages."""
    rows = [{"kind": "architecture", "name": k, "package": p} for k, (p, _) in _merged("models").items()]
    for repo_id, path in shipped_checkpoints().items():
        rows.append({"kind": "checkpoint", "name": repo_id, "package": _package_of(path)})
    return rows


def _package_of(path: Path) -> str:
    for plugin in plugins().values():
        if plugin.checkpoints_dir and Path(path).is_relative_to(plugin.checkpoints_dir):
            return plugin.name
    return "?"


def model_class(architecture: str) -> type:
    models = _merged("models")
    if architecture not in models:
        known = ", ".join(sorted(models)) or "none (no fmzoo domain package installed)"
        raise UnknownNameError(f"no installed fmzoo package registers the architecture {architecture!r}; known: {known}")
    return import_object(models[architecture][1])


def shipped_checkpoints() -> dict[str, Path]:
    out = {}
    for plugin in plugins().values():
        d = plugin.checkpoints_dir
        if d and Path(d).is_dir():
            for sub in sorted(Path(d).iterdir()):
                if (sub / "config.json").is_file():
                    out[f"{SHIPPED_ORG}/{sub.name}"] = sub
    return out


def _yaml_files(attr: str) -> dict[str, Path]:
    out = {}
    for plugin in plugins().values():
        d = getattr(plugin, attr)
        if d and Path(d).is_dir():
            for f in sorted(Path(d).glob("*.yaml")):
                out[f.stem] = f
    return out


def recipes() -> dict[str, Path]:
    return _yaml_files("recipes_dir")


def tables() -> dict[str, Path]:
    return _yaml_files("tables_dir")


def load_recipe(name_or_path: str) -> dict:
    """A recipe by name (``fmzoo list``) or YAML path. A recipe may start from another with ``base: <name or path>``
    (a path relative to the recipe's folder): its mappings are merged key by key into the base's, every other value
    replaces the base's, and ``unset: [dotted.keys]`` removes keys of the base that the recipe must not have
    (e.g. ``train.halve_every`` for another schedule). The result is the resolved recipe, without ``base`` or
    ``unset``; provenance records that."""
    return _load_recipe(name_or_path, ())


def _recipe_path(name_or_path: str, folder: Path | None) -> Path:
    path = Path(name_or_path)
    if folder is not None and not path.is_absolute() and (folder / path).is_file():
        return folder / path
    if path.is_file():
        return path
    known = recipes()
    if name_or_path not in known:
        raise UnknownNameError(f"unknown recipe {name_or_path!r}; known: {', '.join(known) or 'none'}")
    return known[name_or_path]


def _load_recipe(name_or_path: str, chain: tuple[Path, ...], folder: Path | None = None) -> dict:
    path = _recipe_path(name_or_path, folder).resolve()
    if path in chain:
        raise RecipeError("recipe bases form a cycle: " + " -> ".join(str(p) for p in (*chain, path)))
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {str(path)!r} must be a mapping")
    base, unset = recipe.pop("base", None), recipe.pop("unset", None)
    if unset is not None and base is None:
        raise RecipeError(f"recipe {str(path)!r}: 'unset' removes keys of a base; this recipe has no 'base'")
    if base is not None:
        if not isinstance(base, str):
            raise RecipeError(f"recipe {str(path)!r}: 'base' must be a recipe name or path, got {base!r}")
        parent = _load_recipe(base, (*chain, path), path.parent)
        parent.pop("name", None)  # a recipe's name is its own, never its base's
        for key in unset or []:
            _unset(parent, key, path)
        recipe = _merge(parent, recipe)
    if not chain and "method" not in recipe:
        raise RecipeError(f"recipe {str(path)!r} must be a mapping with a 'method' key")
    if not chain:
        recipe.setdefault("name", path.stem)
    return recipe


def _unset(recipe: dict, dotted: str, path: Path) -> None:
    *parents, last = str(dotted).split(".")
    node = recipe
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or last not in node:
        raise RecipeError(f"recipe {str(path)!r}: cannot unset {dotted!r}: its base has no such key")
    del node[last]


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_table(name: str) -> dict:
    known = tables()
    if name not in known:
        raise UnknownNameError(f"unknown table {name!r}; known: {', '.join(known) or 'none'}")
    table = yaml.safe_load(known[name].read_text())
    if "table" in table:
        raise ValueError(f"{known[name]}: 'table' restates the file name; remove it")
    table["table"] = name
    return table


def _lookup(attr: str, key: str, what: str) -> Callable:
    merged = _merged(attr)
    if key not in merged:
        raise UnknownNameError(f"no installed fmzoo package provides the {what} {key!r}; known: {', '.join(merged) or 'none'}")
    return import_object(merged[key][1])


def pretrain_fn(method: str) -> Callable:
    return _lookup("pretrain", method, "pretraining method")


def method_class(method: str) -> type | None:
    """The ``Method`` subclass registered for a recipe's method, or None when it is registered as a function."""
    merged = _merged("methods")
    return import_object(merged[method][1]) if method in merged else None


def table_runner(table: str | dict) -> Callable:
    """The function that runs a table: its YAML's ``runner: "module:function"`` (the name is stated once, in the
    table), else a plugin's ``table_runners`` entry."""
    if not isinstance(table, dict):
        table = load_table(table) if table in tables() else {"table": table}
    ref = table.get("runner")
    if isinstance(ref, str) and ":" in ref:
        return import_object(ref)
    return _lookup("table_runners", table["table"], "table runner")


def finetune_fn(architecture: str) -> Callable:
    return _lookup("finetune", architecture, "fine-tuning entry for")


def downstream_hooks(architecture: str) -> type:
    return _lookup("downstream", architecture, "downstream hooks (fmzoo finetune/evaluate) for")


def dataset_loader(name: str) -> Callable:
    return _lookup("datasets", name, "dataset")
