"""The package's rooms point down: tasks and methods use models/data/spec, models and data never reach up,
tasks never use methods, and no module imports itself back through another."""

import ast
from pathlib import Path

import fmzoo.remotesensing as pkg

ROOT = Path(pkg.__file__).parent
FORBIDDEN = {"models": {"tasks", "methods"}, "data": {"tasks", "methods", "models"},
             "spec": {"tasks", "methods", "models", "data"}, "tasks": {"methods"}, "methods": {"tasks"}}


def _imports() -> dict[str, set[str]]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        pkg_parts = parts[:-1]  # the package a relative import starts from
        mod = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg_parts[: len(pkg_parts) - node.level + 1]
                    target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                elif (node.module or "").startswith("fmzoo.remotesensing"):
                    target = node.module[len("fmzoo.remotesensing"):].lstrip(".")
                else:
                    continue
                found.add(target)
            elif isinstance(node, ast.Import):
                found |= {a.name[len("fmzoo.remotesensing"):].lstrip(".") for a in node.names
                          if a.name.startswith("fmzoo.remotesensing")}
        out[mod] = found
    return out


def test_layers_point_down_and_no_cycles():
    graph = _imports()
    assert "tasks.downstream" in graph and "spec" in graph["models.backbones"]
    bad = [(m, t) for m, targets in graph.items() for t in targets
           if t.split(".")[0] in FORBIDDEN.get(m.split(".")[0], set())]
    assert bad == []
    # no cycles among the package's modules
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for t in graph.get(m, ()):
            t = t if t in graph else t.rsplit(".", 1)[0]
            assert state.get(t) != "open", f"import cycle: {' -> '.join([*stack, m, t])}"
            if t in graph and t not in state:
                visit(t, [*stack, m])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [])
