"""TU-format graph classification sets (Morris et al., TUDataset) — read from the raw text files.

``load_mutag()`` returns one dict per graph {"x": one-hot node labels [n, 7], "edge_index": [2, E] (0-based,
as listed in MUTAG_A.txt, no self loops added), "y": 0/1} with labels -1 -> 0, 1 -> 1, exactly what PyG's
``TUDataset(name="MUTAG")`` holds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError


def tu_dir(name: str, root: Path | None = None) -> Path:
    if root is None:
        from fmzoo.core import data_root

        root = data_root()
    root = Path(root)
    for cand in (root / "graphs" / "TUDataset" / name / "raw", root / "TUDataset" / name / "raw", root / name / "raw", root):
        if (cand / f"{name}_A.txt").exists():
            return cand
    raise InputSpecError(f"TU dataset {name} ({name}_A.txt, ...) not found under {root}")


def _ints(path: Path, cols: int | None = None) -> np.ndarray:
    try:
        a = np.loadtxt(path, delimiter="," if cols else None, dtype=np.int64)
    except ValueError as e:
        raise InputSpecError(f"corrupt TU file {path}: {e}") from None
    return a.reshape(-1, cols) if cols else a.reshape(-1)


def load_tu(name: str = "MUTAG", root: Path | None = None, as_data: bool = False) -> list:
    """One dict per graph, or with ``as_data=True`` one ``torch_geometric.data.Data`` (x, edge_index, y [1])."""
    d = tu_dir(name, root)
    files = {k: d / f"{name}_{k}.txt" for k in ("A", "graph_indicator", "graph_labels", "node_labels")}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise InputSpecError(f"TU dataset {name} in {d}: missing {', '.join(missing)}; expected the TUDataset files "
                             f"{', '.join(p.name for p in files.values())}")
    A = _ints(files["A"], 2) - 1
    gi = _ints(files["graph_indicator"]) - 1
    gl = _ints(files["graph_labels"])
    nl = _ints(files["node_labels"])
    if len(gi) == 0 or len(gl) == 0:
        raise InputSpecError(f"{name}: expected at least one node and one graph, got {len(gi)} lines in "
                             f"{files['graph_indicator'].name} and {len(gl)} in {files['graph_labels'].name}")
    if len(nl) != len(gi):
        raise InputSpecError(f"{name}: {len(nl)} node labels for {len(gi)} nodes; expected one line of "
                             f"{files['node_labels'].name} per line of {files['graph_indicator'].name}")
    if (np.diff(gi) < 0).any():
        line = int(np.flatnonzero(np.diff(gi) < 0)[0]) + 2
        raise InputSpecError(f"{name}: {files['graph_indicator'].name} line {line} puts a node of graph {gi[line - 1] + 1} "
                             f"after one of graph {gi[line - 2] + 1}; expected the nodes listed graph by graph (graph ids "
                             "non-decreasing)")
    present = np.unique(gi)
    if gi.min() != 0 or len(present) != len(gl) or gi.max() != len(gl) - 1:
        raise InputSpecError(f"{name}: {files['graph_indicator'].name} names graphs {sorted(set((present + 1).tolist()))[:5]}"
                             f"{'...' if len(present) > 5 else ''} ({len(present)} with nodes) and "
                             f"{files['graph_labels'].name} holds {len(gl)} labels; expected every graph 1..{len(gl)} to "
                             "have nodes and one label")
    if A.size and (A.min() < 0 or A.max() >= len(gi)):
        raise InputSpecError(f"{name}: an edge of {files['A'].name} refers to node {int(A.max()) + 1 if A.max() >= len(gi) else int(A.min()) + 1}; "
                             f"expected node ids 1..{len(gi)}")
    if A.size and (gi[A[:, 0]] != gi[A[:, 1]]).any():
        row = int(np.flatnonzero(gi[A[:, 0]] != gi[A[:, 1]])[0])
        raise InputSpecError(f"{name}: {files['A'].name} line {row + 1} joins node {A[row, 0] + 1} (graph "
                             f"{gi[A[row, 0]] + 1}) to node {A[row, 1] + 1} (graph {gi[A[row, 1]] + 1}); expected edges "
                             "within one graph")
    nl = nl - nl.min()
    num_feat = int(nl.max()) + 1
    labels = {v: i for i, v in enumerate(sorted(set(gl.tolist())))}
    x_all = torch.nn.functional.one_hot(torch.from_numpy(nl), num_feat).float()
    starts = np.searchsorted(gi, np.arange(len(gl)))
    ends = np.append(starts[1:], len(gi))
    eg = gi[A[:, 0]]
    graphs = []
    for g in range(len(gl)):
        e = A[eg == g] - starts[g]
        graphs.append({"x": x_all[starts[g]:ends[g]], "edge_index": torch.from_numpy(e.T.copy()).long(),
                       "y": labels[int(gl[g])]})
    if as_data:
        from ..pyg import to_data

        return [to_data(g) for g in graphs]
    return graphs


def load_mutag(root: Path | None = None, as_data: bool = False) -> list:
    """MUTAG: 188 molecules (nodes = atoms with 7 one-hot labels), mutagenic or not (``as_data``: PyG ``Data``)."""
    return load_tu("MUTAG", root, as_data)
