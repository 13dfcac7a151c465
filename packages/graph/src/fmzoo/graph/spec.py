"""What the graph domain's models take: one :class:`~fmzoo.core.spec.InputSpec` per kind of input (the ``input_spec``
dict a checkpoint carries), and the checks of the tensors fed to a model, each an ``InputSpecError`` naming what was
expected and what was given.

* :class:`NodeGraphInput`: a graph with ``num_features`` float features per node (``GraphMAE``'s GAT, ``GraphMAEGIN``).
* :class:`MoleculeInput`: molecules featurised as Hu et al. 2020 (``MolGIN``): integer atom and bond ids; the spec's
  ``features`` names the featurisation ("hu"; a checkpoint without the key was saved before it existed and means "hu").
  A batch featurised otherwise (``features="ogb"``, ``torch_geometric.utils.from_smiles``: 9 atom / 3 bond ids) is
  refused with an ``InputSpecError`` naming the featurisation the model expects.
"""
from __future__ import annotations

import warnings

import torch
from fmzoo.core import CheckpointError, InputSpecError
from fmzoo.core.spec import InputSpec

from .data.molecules import (
    NUM_ATOM_TYPE,
    NUM_BOND_DIR,
    NUM_BOND_TYPE,
    NUM_CHIRALITY,
    NUM_OGB_ATOM_FEATURES,
    NUM_OGB_BOND_FEATURES,
)

#: the featuriser whose atom / bond ids MolGIN's embedding tables index (the only one this package has)
MOLECULE_FEATURIZER = "fmzoo.graph.data.molecules.smiles_to_graph (Hu et al. 2020)"
#: the ``features=`` value of that featuriser (``input_spec["features"]``; absent in older checkpoints = this)
MOLECULE_FEATURES = "hu"


class NodeGraphInput(InputSpec):
    """A graph whose nodes carry ``num_features`` float features (``GraphMAE``: row-normalised bag of words;
    ``GraphMAEGIN``: one-hot node labels). ``num_features`` is what the model and ``fmzoo evaluate --data`` check a
    graph against; ``features`` / ``graph`` say in words how the features and edges were prepared."""

    modality = "graph"
    required = {"num_features": int}
    optional = {"features": str, "graph": str}

    @classmethod
    def check(cls, spec, where):
        if spec["num_features"] < 1:
            raise InputSpecError(f"{where}['num_features']: expected a positive number of node features, got "
                                 f"{spec['num_features']}")


class MoleculeInput(InputSpec):
    """Molecules as Hu et al. 2020 featurise them: atom ids [type, chirality], bond ids [type, direction]; the ids
    index ``MolGIN``'s embedding tables, so a checkpoint can only name the featuriser that makes them. ``features``:
    the ``features=`` value of that featuriser, "hu" (absent in checkpoints saved before the key existed: "hu")."""

    modality = "molecule"
    required = {"atom_features": str, "bond_features": str, "featurizer": str}
    optional = {"release": str,  # what an imported official file was pretrained with (graph/weights.py)
                "features": str}

    @classmethod
    def check(cls, spec, where):
        if spec.get("features", MOLECULE_FEATURES) != MOLECULE_FEATURES:
            raise InputSpecError(f"{where}['features']: expected {MOLECULE_FEATURES!r} (Hu et al. 2020 ids, the only "
                                 "featurisation MolGIN's embedding tables index; 'ogb' features, as "
                                 f"torch_geometric.utils.from_smiles gives them, fit no fmzoo model), got "
                                 f"{spec['features']!r}")
        if spec["featurizer"] != MOLECULE_FEATURIZER:
            raise InputSpecError(f"{where}['featurizer']: expected {MOLECULE_FEATURIZER!r} (the featuriser whose "
                                 f"atom and bond ids MolGIN's embeddings index), got {spec['featurizer']!r}")


def spec_num_features(model) -> int:
    """The node-feature count a graph model takes: its ``in_dim``, which its ``input_spec`` must repeat (an edited
    config.json whose ``num_features`` disagrees with the weights is a CheckpointError, not a later shape error)."""
    n = (model.input_spec or {}).get("num_features", model.in_dim)
    if n != model.in_dim:
        raise CheckpointError(f"{type(model).__name__}: input_spec num_features={n!r} but the weights take "
                              f"{model.in_dim} node features")
    return n


class DuplicateEdgeWarning(UserWarning):
    """An edge_index lists the same directed edge more than once: the models count it once per listing."""


def _describe(t) -> str:
    return f"shape {tuple(t.shape)} {t.dtype}" if torch.is_tensor(t) else type(t).__name__


def _check_edges(edge_index, num_nodes: int, what: str, unit: str = "node") -> None:
    """edge_index must be an integer [2, num_edges] tensor of ids in [0, num_nodes)."""
    if not torch.is_tensor(edge_index) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise InputSpecError(f"{what}: expected edge_index as a [2, num_edges] tensor ({unit} ids: row 0 source, row 1 "
                             f"target), got {_describe(edge_index)}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise InputSpecError(f"{what}: expected edge_index of integer {unit} ids (torch.long), got {edge_index.dtype}")
    if edge_index.numel():
        bad = (edge_index < 0) | (edge_index >= num_nodes)
        if bool(bad.any()):
            col = int(bad.any(0).nonzero()[0])
            raise InputSpecError(f"{what}: edge {col} ({int(edge_index[0, col])} -> {int(edge_index[1, col])}) refers to "
                                 f"an id outside 0..{num_nodes - 1}; expected {unit} ids of the {num_nodes} rows of x "
                                 f"({int(bad.any(0).sum())} such edges)")


def _warn_duplicates(edge_index, what: str) -> None:
    n = edge_index.shape[1]
    if n and torch.unique(edge_index, dim=1).shape[1] < n:
        dup = n - torch.unique(edge_index, dim=1).shape[1]
        warnings.warn(f"{what}: {dup} of {n} edges repeat an earlier (source, target) pair; they count once per "
                      "listing (parallel edges, as DGL / torch_geometric treat them), which changes the result; pass "
                      "torch.unique(edge_index, dim=1) for a simple graph", DuplicateEdgeWarning, stacklevel=4)


def validate_graph(x: torch.Tensor, edge_index: torch.Tensor, in_dim: int | None, what: str = "graph",
                   require_edges: bool = True) -> None:
    """Raise InputSpecError for node features / edges a model cannot take. Self loops are allowed (the models drop
    them and add one per node); repeated edges are allowed with a :class:`DuplicateEdgeWarning` (they count twice)."""
    if not torch.is_tensor(x) or x.dim() != 2:
        raise InputSpecError(f"{what}: expected node features x as a 2-D tensor [num_nodes, num_features], got "
                             f"{_describe(x)}")
    if x.shape[0] == 0:
        raise InputSpecError(f"{what}: expected a graph with at least one node, got x of shape {tuple(x.shape)}")
    if in_dim is not None and x.shape[1] != in_dim:
        raise InputSpecError(f"{what}: the checkpoint expects {in_dim} node features (input_spec num_features), "
                             f"got {x.shape[1]}")
    if not torch.is_floating_point(x):
        raise InputSpecError(f"{what}: expected floating-point node features, got {x.dtype}")
    values = (x.coalesce().values() if x.is_sparse else x.values()) if x.layout != torch.strided else x
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        where = "" if x.layout != torch.strided else f" (first at node {int(bad.any(1).nonzero()[0])})"
        raise InputSpecError(f"{what}: expected finite node features, got {int(torch.isnan(values).sum())} NaN and "
                             f"{int(torch.isinf(values).sum())} infinite values{where}")
    n = x.shape[0]
    _check_edges(edge_index, n, what)
    if require_edges and (edge_index[0] != edge_index[1]).sum() == 0:
        raise InputSpecError(f"{what}: expected edges between nodes, got no edges (besides self loops) among {n} "
                             "nodes; GraphMAE's GAT needs neighbours")
    _warn_duplicates(edge_index, what)


def molecule_features(spec) -> str:
    """The featurisation a molecule model's ``input_spec`` names ("hu" where the key is absent: older checkpoints)."""
    return (spec or {}).get("features", MOLECULE_FEATURES)


def _looks_ogb(x, edge_attr) -> bool:
    """Atom ids [n, 9] (and bond ids [e, 3] where given): ``features="ogb"`` / ``torch_geometric.utils.from_smiles``."""
    return torch.is_tensor(x) and x.dim() == 2 and x.shape[1] == NUM_OGB_ATOM_FEATURES \
        and (not torch.is_tensor(edge_attr) or edge_attr.dim() != 2 or edge_attr.shape[1] == NUM_OGB_BOND_FEATURES)


def validate_mol_batch(x, edge_index, edge_attr, who: str = "MolGIN"):
    """Raise InputSpecError for a molecule batch ``MolGIN`` cannot take (Hu et al. 2020 atom / bond features). A batch
    of the other featurisation (``features="ogb"``, ``torch_geometric.utils.from_smiles``) is named as such."""
    expects = (f"{who} takes Hu et al. 2020 features (input_spec features={MOLECULE_FEATURES!r}: smiles_to_data, "
               "featurize, load_moleculenet with their default features='hu', or SMILES given to embed())")
    if _looks_ogb(x, edge_attr):
        raise InputSpecError(f"{expects}; got the 'ogb' featurisation (atom ids [num_atoms, {NUM_OGB_ATOM_FEATURES}], bond "
                             f"ids [num_edges, {NUM_OGB_BOND_FEATURES}]: features='ogb' or torch_geometric.utils.from_smiles), "
                             "whose ids the model's embedding tables do not index")
    if not torch.is_tensor(x) or x.dim() != 2 or x.shape[1] != 2 or x.dtype not in (torch.int64, torch.int32):
        raise InputSpecError(f"molecule atoms: expected an integer tensor [num_atoms, 2] (atom type, chirality), got "
                             f"{_describe(x)}; {expects}")
    if x.shape[0] == 0:
        raise InputSpecError("molecule batch: expected at least one atom, got none")
    if int(x[:, 0].min()) < 0 or int(x[:, 0].max()) >= NUM_ATOM_TYPE or int(x[:, 1].min()) < 0 \
            or int(x[:, 1].max()) >= NUM_CHIRALITY:
        raise InputSpecError(f"atom features out of range: expected atom type in [0, {NUM_ATOM_TYPE}) and chirality "
                             f"in [0, {NUM_CHIRALITY}), got types {int(x[:, 0].min())}..{int(x[:, 0].max())} and "
                             f"chirality {int(x[:, 1].min())}..{int(x[:, 1].max())}; {expects}")
    _check_edges(edge_index, x.shape[0], "molecule batch", unit="atom")
    if not torch.is_tensor(edge_attr) or edge_attr.shape != (edge_index.shape[1], 2) \
            or edge_attr.dtype not in (torch.int64, torch.int32):
        raise InputSpecError(f"molecule bonds: expected edge_attr as an integer tensor [num_edges={edge_index.shape[1]}, "
                             f"2] (bond type, direction), got {_describe(edge_attr)}; {expects}")
    if edge_attr.numel() and (int(edge_attr[:, 0].max()) >= NUM_BOND_TYPE or int(edge_attr[:, 1].max()) >= NUM_BOND_DIR
                              or int(edge_attr.min()) < 0):
        raise InputSpecError(f"bond features out of range: expected bond type in [0, {NUM_BOND_TYPE}) and direction "
                             f"in [0, {NUM_BOND_DIR}), got types {int(edge_attr[:, 0].min())}..{int(edge_attr[:, 0].max())}"
                             f" and directions {int(edge_attr[:, 1].min())}..{int(edge_attr[:, 1].max())}; {expects}")
