"""The package's rooms import downwards only: models/data never import tasks/methods, tasks never import methods,
data never imports models, and no module imports itself back through a cycle (every import statement, lazy ones
inside functions included, read from the source)."""

import ast
from pathlib import Path

import fmzoo.medical

ROOT = Path(fmzoo.medical.__file__).parent
PKG = "fmzoo.medical"
# room -> rooms it must not import
FORBIDDEN = {"models": {"tasks", "methods", "reproduce"}, "data": {"tasks", "methods", "models", "reproduce"},
             "tasks": {"methods", "reproduce"}, "methods": {"tasks", "reproduce"},
             "spec": {"tasks", "methods", "models", "data", "reproduce", "weights"}}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PKG, *parts])


def imports(path: Path) -> set[str]:
    """The fmzoo.medical modules ``path`` imports (relative imports resolved)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith(PKG)}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith(PKG):
                # "from .models import swin" imports the submodule swin
                subs = [f"{target}.{a.name}" for a in node.names]
                out |= {s for s in subs if _exists(s)} or {target}
    return out


def _exists(name: str) -> bool:
    rel = Path(*name.split(".")[2:])
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def room(name: str) -> str:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 else ""


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in ROOT.rglob("*.py")}


def test_rooms_exist():
    for d in ("models", "methods", "data", "tasks", "recipes", "tables", "checkpoints"):
        assert (ROOT / d).is_dir(), d
    for f in ("spec.py", "weights.py", "plugin.py", "reproduce.py"):
        assert (ROOT / f).is_file(), f
    assert not (ROOT / "io.py").exists() and not (ROOT / "voco_import.py").exists()


def test_layers_point_down():
    bad = [(src, dst) for src, targets in graph().items() for dst in targets
           if room(dst) in FORBIDDEN.get(room(src), set())]
    assert bad == []


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            if nxt == node or nxt not in g:
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for n in sorted(g):
        if n not in state:
            visit(n, [n])
    # the package __init__ re-exports lazily from its submodules; a submodule importing the package itself
    # ("from fmzoo.medical import X") would make a cycle and is reported too
    assert cycles == []
