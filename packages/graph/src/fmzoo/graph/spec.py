"""Input-spec checks of the graph domain's models: what a checkpoint can take, and an ``InputSpecError`` naming
what was expected when it cannot (node graphs for ``GraphMAE`` / ``GraphMAEGIN``, molecule batches for ``MolGIN``)."""
from __future__ import annotations

import torch
from fmzoo.core import InputSpecError

from .data.molecules import NUM_ATOM_TYPE, NUM_BOND_DIR, NUM_BOND_TYPE, NUM_CHIRALITY


def validate_graph(x: torch.Tensor, edge_index: torch.Tensor, in_dim: int | None, what: str = "graph",
                   require_edges: bool = True) -> None:
    """Raise InputSpecError for node features / edges a model cannot take."""
    if not torch.is_tensor(x) or x.dim() != 2:
        raise InputSpecError(f"{what}: node features must be a 2-D tensor [num_nodes, num_features], got "
                             f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    if in_dim is not None and x.shape[1] != in_dim:
        raise InputSpecError(f"{what}: the checkpoint expects {in_dim} node features (input_spec num_features), "
                             f"got {x.shape[1]}")
    if not torch.is_floating_point(x):
        raise InputSpecError(f"{what}: node features must be floating point, got {x.dtype}")
    if x.is_sparse or x.layout != torch.strided:
        bad = (~torch.isfinite(x.coalesce().values() if x.is_sparse else x.values())).any()
    else:
        bad = (~torch.isfinite(x)).any()
    if bool(bad):
        raise InputSpecError(f"{what}: node features contain NaN or infinite values")
    if not torch.is_tensor(edge_index) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise InputSpecError(f"{what}: edge_index must be a [2, num_edges] tensor, got "
                             f"{tuple(edge_index.shape) if torch.is_tensor(edge_index) else type(edge_index).__name__}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise InputSpecError(f"{what}: edge_index must be integer, got {edge_index.dtype}")
    n = x.shape[0]
    if require_edges and (edge_index[0] != edge_index[1]).sum() == 0:
        raise InputSpecError(f"{what}: the graph has no edges (besides self loops); GraphMAE's GAT needs neighbours")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        raise InputSpecError(f"{what}: edge_index refers to node {int(edge_index.max())} (or a negative id) but "
                             f"there are {n} nodes")


def validate_mol_batch(x, edge_index, edge_attr):
    """Raise InputSpecError for a molecule batch ``MolGIN`` cannot take (Hu et al. 2020 atom / bond features)."""
    if x.dim() != 2 or x.shape[1] != 2 or x.dtype != torch.long:
        raise InputSpecError(f"molecule atoms must be a long tensor [num_atoms, 2] (atom type, chirality), got "
                             f"{tuple(x.shape)} {x.dtype}")
    if x.shape[0] == 0:
        raise InputSpecError("molecule batch has no atoms")
    if int(x[:, 0].min()) < 0 or int(x[:, 0].max()) >= NUM_ATOM_TYPE or int(x[:, 1].min()) < 0 \
            or int(x[:, 1].max()) >= NUM_CHIRALITY:
        raise InputSpecError(f"atom features out of range: atom type must be in [0, {NUM_ATOM_TYPE}), chirality in "
                             f"[0, {NUM_CHIRALITY})")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_attr.shape != (edge_index.shape[1], 2):
        raise InputSpecError(f"edge_index must be [2, E] and edge_attr [E, 2], got {tuple(edge_index.shape)} and "
                             f"{tuple(edge_attr.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= x.shape[0]):
        raise InputSpecError(f"edge_index refers to atom {int(edge_index.max())} but there are {x.shape[0]} atoms")
    if edge_attr.numel() and (int(edge_attr[:, 0].max()) >= NUM_BOND_TYPE or int(edge_attr[:, 1].max()) >= NUM_BOND_DIR
                              or int(edge_attr.min()) < 0):
        raise InputSpecError("bond features out of range (bond type in [0, 6), direction in [0, 3))")
