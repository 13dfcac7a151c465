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
    A = _ints(d / f"{name}_A.txt", 2) - 1
    gi = _ints(d / f"{name}_graph_indicator.txt") - 1
    gl = _ints(d / f"{name}_graph_labels.txt")
    nl_path = d / f"{name}_node_labels.txt"
    if not nl_path.exists():
        raise InputSpecError(f"{name}: node labels file missing ({nl_path})")
    nl = _ints(nl_path)
    if len(nl) != len(gi):
        raise InputSpecError(f"{name}: {len(nl)} node labels for {len(gi)} nodes")
    if A.size and (A.min() < 0 or A.max() >= len(gi)):
        raise InputSpecError(f"{name}: an edge refers to a node outside 1..{len(gi)}")
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
