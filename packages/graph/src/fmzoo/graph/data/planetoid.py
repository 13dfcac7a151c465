"""Planetoid (Yang et al., 2016) raw-file reader for Cora, without PyG's download machinery.

The raw files ``ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}`` are Python-2 pickles. They are read
with a *restricted* unpickler that only resolves the handful of numpy / scipy / builtin classes these
files contain, so a tampered file cannot execute code (it fails with ``CheckpointError``-like
``InputSpecError`` naming the forbidden class instead).

The result follows PyG's ``Planetoid(name, split="public")`` + ``NormalizeFeatures`` exactly, which is
what the official GraphMAE PyG branch loads: row-normalised bag-of-words features, the public split
(140 train / 500 val / 1000 test), an undirected edge set, self loops removed (the GraphMAE code then
adds one self loop per node, see :func:`graph_with_self_loops`).
"""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("scipy.sparse.csr", "csr_matrix"),
    ("scipy.sparse._csr", "csr_matrix"),
    ("__builtin__", "list"),
    ("builtins", "list"),
    ("collections", "defaultdict"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):  # noqa: D401
        if (module, name) not in _ALLOWED:
            raise InputSpecError(
                f"Planetoid raw file refers to {module}.{name}; only numpy arrays, scipy CSR matrices, "
                "lists and defaultdicts are allowed (refusing to unpickle anything else)"
            )
        if module == "__builtin__":
            module = "builtins"
        if module.startswith("numpy") and name == "_reconstruct":
            from numpy import ndarray  # noqa: F401

            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if module.startswith("scipy.sparse"):
            import scipy.sparse

            return scipy.sparse.csr_matrix
        return super().find_class(module, name)


def safe_load_pickle(path: Path):
    """Unpickle a Planetoid raw file with an allow-list of classes (latin1 for the Python-2 pickles)."""
    data = Path(path).read_bytes()
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except InputSpecError:
        raise
    except Exception as e:  # truncated / corrupt
        raise InputSpecError(f"cannot read Planetoid raw file {path}: {type(e).__name__}: {e}") from e


@dataclass
class NodeGraph:
    """A single graph for transductive node classification (what the Cora reader returns)."""

    x: torch.Tensor  # [N, F] float32 (dense; use .x_sparse() for the CSR form)
    edge_index: torch.Tensor  # [2, E] long, undirected, no self loops
    y: torch.Tensor  # [N] long
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    name: str = "graph"

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1

    def to_pyg(self):
        """The graph as a ``torch_geometric.data.Data`` (x, edge_index, y, train/val/test masks), the same tensors
        as PyG's ``Planetoid(name, split="public", transform=NormalizeFeatures())[0]``."""
        from torch_geometric.data import Data

        return Data(x=self.x, edge_index=self.edge_index, y=self.y, train_mask=self.train_mask,
                    val_mask=self.val_mask, test_mask=self.test_mask)


def planetoid_root(root: Path | None = None, name: str = "Cora") -> Path:
    if root is None:
        from fmzoo.core import data_root

        root = data_root()
    root = Path(root)
    for cand in (root / "graphs" / "planetoid" / name / "raw", root / "planetoid" / name / "raw", root / name / "raw", root):
        if (cand / f"ind.{name.lower()}.graph").exists():
            return cand
    raise InputSpecError(f"Planetoid {name} raw files (ind.{name.lower()}.*) not found under {root}")


def load_planetoid(name: str = "Cora", root: Path | None = None, normalize_features: bool = True,
                   as_data: bool = False):
    """A Planetoid set, public split: a ``NodeGraph``, or with ``as_data=True`` a ``torch_geometric.data.Data``
    (the tensors of PyG's ``Planetoid(root, name, split="public", transform=NormalizeFeatures())[0]``)."""
    raw = planetoid_root(root, name)
    n = name.lower()
    objs = {}
    for key in ("x", "tx", "allx", "y", "ty", "ally", "graph"):
        p = raw / f"ind.{n}.{key}"
        if not p.exists():
            raise InputSpecError(f"missing Planetoid raw file {p}")
        objs[key] = safe_load_pickle(p)
    try:
        test_index = np.loadtxt(raw / f"ind.{n}.test.index", dtype=np.int64).reshape(-1)
    except ValueError as e:
        raise InputSpecError(f"corrupt ind.{n}.test.index: {e}") from e
    x, tx, allx = (objs[k].toarray().astype(np.float32) for k in ("x", "tx", "allx"))
    y, ty, ally = (np.asarray(objs[k]) for k in ("y", "ty", "ally"))
    sorted_test = np.sort(test_index)
    if n == "citeseer":  # isolated test nodes (as PyG does)
        full = np.arange(sorted_test.min(), sorted_test.max() + 1)
        tx_ext = np.zeros((len(full), tx.shape[1]), np.float32)
        tx_ext[sorted_test - sorted_test.min()] = tx
        ty_ext = np.zeros((len(full), ty.shape[1]), ty.dtype)
        ty_ext[sorted_test - sorted_test.min()] = ty
        tx, ty = tx_ext, ty_ext
    feats = np.concatenate([allx, tx], 0)
    labels = np.concatenate([ally, ty], 0)
    feats[test_index] = feats[sorted_test]
    labels[test_index] = labels[sorted_test]
    if feats.shape[0] != labels.shape[0]:
        raise InputSpecError(f"{name}: {feats.shape[0]} feature rows but {labels.shape[0]} label rows")
    num_nodes = feats.shape[0]
    graph = objs["graph"]
    rows, cols = [], []
    for src, nbrs in graph.items():
        for dst in nbrs:
            rows.append(src)
            cols.append(dst)
    ei = torch.tensor([rows + cols, cols + rows], dtype=torch.long)
    ei = ei[:, ei[0] != ei[1]]
    if ei.numel() and int(ei.max()) >= num_nodes:
        raise InputSpecError(f"{name}: edge refers to node {int(ei.max())} but there are {num_nodes} nodes")
    ei = torch.unique(ei, dim=1)  # coalesce (sorted by row, then col)
    xt = torch.from_numpy(feats)
    if normalize_features:  # PyG NormalizeFeatures: row / row-sum (rows summing to 0 stay 0)
        s = xt.sum(1, keepdim=True)
        xt = xt / s.clamp(min=1e-12) * (s > 0)
    yt = torch.from_numpy(labels.argmax(1)).long()
    train = torch.zeros(num_nodes, dtype=torch.bool)
    train[: y.shape[0]] = True
    val = torch.zeros(num_nodes, dtype=torch.bool)
    val[y.shape[0] : y.shape[0] + 500] = True
    test = torch.zeros(num_nodes, dtype=torch.bool)
    test[torch.from_numpy(test_index)] = True
    g = NodeGraph(xt.contiguous(), ei, yt, train, val, test, name=name)
    return g.to_pyg() if as_data else g


def load_cora(root: Path | None = None, as_data: bool = False):
    """Cora, public Planetoid split, row-normalised features (2708 nodes, 1433 features, 7 classes): a ``NodeGraph``,
    or with ``as_data=True`` a ``torch_geometric.data.Data``."""
    return load_planetoid("Cora", root, as_data=as_data)


def graph_with_self_loops(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Remove existing self loops and add exactly one per node (GraphMAE's preprocessing)."""
    ei = edge_index[:, edge_index[0] != edge_index[1]]
    loops = torch.arange(num_nodes, dtype=torch.long)
    return torch.cat([ei, torch.stack([loops, loops])], 1)
