"""The packages share one layout: the same rooms, layers that only point down, and no import cycles.

Imports are read from the source (module level and inside functions alike: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ("graph", "medical", "protein", "remotesensing", "speech", "tabular", "timeseries")
ROOMS = ("models", "methods", "data", "tasks", "spec.py", "plugin.py", "recipes", "tables", "checkpoints")
# room -> rooms it must never import (layers point down: methods -> tasks -> models -> spec, data)
# methods sit above tasks (a method may score its encoder with a downstream probe after pretraining), never below
FORBIDDEN = {"models": {"tasks", "methods", "reproduce"}, "data": {"tasks", "methods", "models", "reproduce"},
             "tasks": {"methods", "reproduce"}, "methods": {"reproduce"}, "spec": {"tasks", "methods", "reproduce"},
             "weights": {"tasks", "methods", "reproduce"}}  # official-weight import builds models, nothing above


def _modules(package_dir: Path, prefix: str) -> dict[str, Path]:
    out = {}
    for f in sorted(package_dir.rglob("*.py")):
        parts = list(f.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([prefix, *parts])] = f
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import a.b.c` depends on the deepest known module
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph(src: Path, prefix: str) -> dict[str, set[str]]:
    mods = _modules(src, prefix)
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _package_init_edges_ignored(graph: dict[str, set[str]], top: str) -> dict[str, set[str]]:
    """A sub-package's ``__init__`` re-exporting its own modules is not a dependency of those modules on it."""
    return {m: {t for t in deps if not (m.startswith(t + ".") and t != top)} for m, deps in graph.items()}


@pytest.mark.parametrize("domain", ("core", *DOMAINS))
def test_no_import_cycle(domain):
    top = f"fmzoo.{domain}"
    graph = _package_init_edges_ignored(_graph(ROOT / "packages" / domain / "src" / "fmzoo" / domain, top), top)
    graph = {m: deps - {top} for m, deps in graph.items()}  # the top-level __init__ only re-exports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


@pytest.mark.parametrize("domain", DOMAINS)
def test_rooms_and_layers(domain):
    src = ROOT / "packages" / domain / "src" / "fmzoo" / domain
    missing = [room for room in ROOMS if not (src / room).exists()]
    assert not missing, f"fmzoo-{domain} lacks {missing}"
    top = f"fmzoo.{domain}"
    wrong = []
    for module, deps in _graph(src, top).items():
        room = module.removeprefix(top + ".").split(".")[0]
        for dep in deps:
            if dep.startswith(top + ".") and dep.removeprefix(top + ".").split(".")[0] in FORBIDDEN.get(room, ()):
                wrong.append(f"{module} -> {dep}")
    assert not wrong, "layers must point down (models/data below tasks and methods): " + "; ".join(sorted(wrong))


def test_core_imports_no_domain():
    graph = _graph(ROOT / "packages" / "core" / "src" / "fmzoo" / "core", "fmzoo.core")
    src = "\n".join(p.read_text() for p in (ROOT / "packages" / "core" / "src").rglob("*.py"))
    assert not any(f"fmzoo.{d}" in src for d in DOMAINS), "the core must not import a domain package"
    assert graph  # the reader found the core's modules


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_every_table_names_its_runner_once():
    import yaml
    from fmzoo.core.registry import import_object, load_table, tables

    assert len(tables()) == 13
    for name, path in tables().items():
        raw = yaml.safe_load(path.read_text())
        assert "table" not in raw, f"{path}: 'table' restates the file name"
        assert isinstance(raw.get("runner"), str) and ":" in raw["runner"], f"{path}: runner: 'module:function'"
        assert callable(import_object(raw["runner"])) and load_table(name)["table"] == name


def test_a_recipe_is_named_once_by_its_file():
    import yaml
    from fmzoo.core.registry import recipes

    named = [name for name, path in recipes().items() if "name" in (yaml.safe_load(path.read_text()) or {})]
    assert named == [], f"recipes that repeat their file name in a name: key: {named}"


@pytest.mark.parametrize("package", ("core", *DOMAINS))
def test_torch_floor_makes_weights_only_loading_safe(package):
    """Official pickled releases are read with ``torch.load(weights_only=True)``, which is safe only from torch 2.6:
    every package that depends on torch must say so itself, not only through fmzoo-core."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    meta = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())
    torch = [Requirement(r) for r in meta["project"]["dependencies"] if Requirement(r).name == "torch"]
    assert torch, f"packages/{package}/pyproject.toml does not declare torch"
    assert not torch[0].specifier.contains(Version("2.5.1")), (
        f"packages/{package}: torch requirement {torch[0]} admits 2.5, where weights_only loading is not safe")
    assert torch[0].specifier.contains(Version("2.6.0"))
