"""torch-geometric interoperability: the graph models take a ``torch_geometric.data.Data`` / ``Batch`` where they
take tensors, and the readers can return ``Data`` objects.

* ``GraphMAE.embed(data)`` -> node embeddings ``[data.num_nodes, num_hidden]`` (rows aligned with ``data.x``; a
  ``Batch`` of several graphs works too: attention never crosses graphs).
* ``MolGIN(data)`` -> atom representations (as the official ``GNN(data)``); ``MolGIN.embed(batch)`` -> one
  mean-pooled embedding per graph ``[batch.num_graphs, emb_dim]`` (a single ``Data``: ``[1, emb_dim]``).
* ``GraphMAEGIN(data)`` -> node representations; ``GraphMAEGIN.embed(batch)`` -> one sum-pooled embedding per graph.
* Readers: every reader takes ``as_data=True`` and then returns PyG objects: ``load_cora`` / ``load_planetoid`` (one
  ``Data``), ``load_mutag`` / ``load_tu`` and ``load_moleculenet`` (a list of ``Data``); without it they return the
  package's own types (``NodeGraph``, graph dicts, ``MolDataset``), which ``NodeGraph.to_pyg()``,
  ``MolDataset.to_pyg()`` and ``graphs_to_batch(graphs)`` convert; ``smiles_to_data(smiles, features="hu" | "ogb")``
  gives one molecule (``"ogb"``: the ids of ``torch_geometric.utils.from_smiles``).

The models never import torch_geometric: anything with tensor attributes ``x`` and ``edge_index`` (and ``edge_attr``
for molecules, ``batch`` / ``num_graphs`` for several graphs) is accepted.
"""
from __future__ import annotations

import torch
from fmzoo.core import InputSpecError


def is_graph_data(obj) -> bool:
    """A torch_geometric ``Data`` / ``Batch`` (or anything with tensor attributes ``x`` and ``edge_index``)."""
    return not torch.is_tensor(obj) and torch.is_tensor(getattr(obj, "x", None)) \
        and torch.is_tensor(getattr(obj, "edge_index", None))


def data_tensors(obj, who: str, keys=("x", "edge_index")) -> tuple:
    """The tensors ``keys`` of a torch_geometric ``Data`` / ``Batch`` given where a model takes them; an
    InputSpecError naming the missing ones (a ``Data`` without node features ``x``, a tensor without edges, ...)."""
    missing = [k for k in keys if not torch.is_tensor(getattr(obj, k, None))]
    if missing or torch.is_tensor(obj):
        missing = missing if not torch.is_tensor(obj) else list(keys[1:])
        raise InputSpecError(f"{who}: expected the tensors ({', '.join(keys)}) or a torch_geometric Data / Batch holding "
                             f"them; got a {type(obj).__name__} without {', '.join(missing)}")
    return tuple(getattr(obj, k) for k in keys)


def graph_batch(data) -> tuple[torch.Tensor, int]:
    """(batch vector, number of graphs) of a ``Batch``; a single ``Data`` is one graph."""
    batch = getattr(data, "batch", None)
    n = data.x.shape[0]
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=data.x.device), 1
    num_graphs = getattr(data, "num_graphs", None)
    return batch, int(num_graphs) if num_graphs is not None else int(batch.max()) + 1 if n else 0


def to_data(graph: dict):
    """One graph dict of the readers ({"x", "edge_index"[, "edge_attr"][, "y"]}) -> ``torch_geometric.data.Data``."""
    from torch_geometric.data import Data

    kw = {k: v for k, v in graph.items() if k in ("x", "edge_index", "edge_attr")}
    if "y" in graph:
        y = graph["y"]
        kw["y"] = y if torch.is_tensor(y) else torch.tensor([y])
    return Data(**kw)


def graphs_to_batch(graphs: list):
    """Reader graph dicts (or ``Data``) -> one ``torch_geometric.data.Batch`` (disjoint union, ``batch`` vector)."""
    from torch_geometric.data import Batch

    return Batch.from_data_list([g if is_graph_data(g) else to_data(g) for g in graphs])
