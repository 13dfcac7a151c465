"""GIN with edge features for molecules (Hu et al., "Strategies for Pre-training Graph Neural Networks",
ICLR 2020) — the encoder of GraphMAE's transfer-learning experiments — and GraphMAE's molecular objective.

Parameter names follow the official code (``x_embedding1/2``, ``gnns.<i>.mlp.{0,2}``,
``gnns.<i>.edge_embedding1/2``, ``batch_norms.<i>``), so the released GraphMAE chem checkpoint
(``chem/init_weights/pretrained.pth``: a ``GNN`` state dict) maps 1:1 (see ``fmzoo.graph.weights``).

Message passing in pure PyTorch (``index_add_``): ``h_i' = MLP(sum_{j in N(i) + i} (h_j + e_ji))`` with a
self loop of bond type 4; batch norm; ReLU on all but the last layer; dropout; JK "last".
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from fmzoo.core import HubMixin, InputSpecError

from ..data.molecules import (
    MASK_ATOM,
    NUM_ATOM_TYPE,
    NUM_BOND_DIR,
    NUM_BOND_TYPE,
    NUM_CHIRALITY,
    SELF_LOOP_BOND,
)
from ..pyg import data_tensors, graph_batch, is_graph_data
from ..spec import MOLECULE_FEATURIZER, MoleculeInput, validate_mol_batch


class GINConv(nn.Module):
    def __init__(self, emb_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.ReLU(), nn.Linear(2 * emb_dim, out_dim))
        self.edge_embedding1 = nn.Embedding(NUM_BOND_TYPE, emb_dim)
        self.edge_embedding2 = nn.Embedding(NUM_BOND_DIR, emb_dim)
        nn.init.xavier_uniform_(self.edge_embedding1.weight)
        nn.init.xavier_uniform_(self.edge_embedding2.weight)

    def forward(self, x, edge_index, edge_attr):
        n = x.shape[0]
        loops = torch.arange(n, device=x.device)
        src = torch.cat([edge_index[0], loops])
        dst = torch.cat([edge_index[1], loops])
        btype = torch.cat([edge_attr[:, 0], torch.full((n,), SELF_LOOP_BOND, dtype=torch.long, device=x.device)])
        bdir = torch.cat([edge_attr[:, 1], torch.zeros(n, dtype=torch.long, device=x.device)])
        msg = x[src] + self.edge_embedding1(btype) + self.edge_embedding2(bdir)
        agg = torch.zeros_like(x).index_add_(0, dst, msg)
        return self.mlp(agg)


class MolGIN(nn.Module, HubMixin):
    """The molecular GIN encoder: node representations [num_atoms, emb_dim]; ``pool`` -> graph embeddings."""

    input_spec_class = MoleculeInput

    def __init__(self, num_layer: int = 5, emb_dim: int = 300, JK: str = "last", drop_ratio: float = 0.0):
        super().__init__()
        if num_layer < 2:
            raise ValueError("MolGIN needs at least 2 layers")
        self.num_layer, self.emb_dim, self.JK, self.drop_ratio = num_layer, emb_dim, JK, drop_ratio
        self.x_embedding1 = nn.Embedding(NUM_ATOM_TYPE, emb_dim)
        self.x_embedding2 = nn.Embedding(NUM_CHIRALITY, emb_dim)
        nn.init.xavier_uniform_(self.x_embedding1.weight)
        nn.init.xavier_uniform_(self.x_embedding2.weight)
        self.gnns = nn.ModuleList([GINConv(emb_dim, emb_dim) for _ in range(num_layer)])
        self.batch_norms = nn.ModuleList([nn.BatchNorm1d(emb_dim) for _ in range(num_layer)])
        self.input_spec = {"atom_features": "[atom type = atomic number - 1 (0..117; 119 = mask), chirality 0..2]",
                           "bond_features": "[bond type 0..3 (single, double, triple, aromatic), direction 0..2]",
                           "featurizer": MOLECULE_FEATURIZER}

    def forward(self, x, edge_index=None, edge_attr=None):
        """Atom representations [num_atoms, emb_dim]: ``model(x, edge_index, edge_attr)`` or ``model(data)`` of a
        torch_geometric ``Data`` / ``Batch`` (as the official ``GNN``)."""
        if edge_index is None and not torch.is_tensor(x):
            x, edge_index, edge_attr = (*data_tensors(x, "MolGIN", ("x", "edge_index")), getattr(x, "edge_attr", None))
        if edge_index is None or edge_attr is None:
            raise InputSpecError("MolGIN takes (x, edge_index, edge_attr) or a torch_geometric Data / Batch with "
                                 "x, edge_index and edge_attr (Hu et al. 2020 bond features)")
        validate_mol_batch(x, edge_index, edge_attr)
        h = self.x_embedding1(x[:, 0]) + self.x_embedding2(x[:, 1])
        hs = [h]
        for i in range(self.num_layer):
            h = self.batch_norms[i](self.gnns[i](hs[-1], edge_index, edge_attr))
            if i < self.num_layer - 1:
                h = F.relu(h)
            h = F.dropout(h, self.drop_ratio, self.training)
            hs.append(h)
        if self.JK == "concat":
            return torch.cat(hs, 1)
        if self.JK == "max":
            return torch.stack(hs).max(0)[0]
        if self.JK == "sum":
            return torch.stack(hs).sum(0)
        return hs[-1]

    @staticmethod
    def pool(h, batch, num_graphs, how: str = "mean"):
        out = torch.zeros(num_graphs, h.shape[1], dtype=h.dtype, device=h.device).index_add_(0, batch, h)
        if how == "sum":
            return out
        cnt = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(h.dtype)
        return out / cnt[:, None]

    def embed(self, data, how: str = "mean") -> torch.Tensor:
        """One embedding per graph [num_graphs, emb_dim] (mean of the atom representations, the official
        ``GNN_graphpred`` pooling) of a torch_geometric ``Batch`` (a single ``Data``: one row) or of a list of
        SMILES. Computed as the model is (``eval()`` for frozen features); no ``torch.no_grad`` here."""
        if isinstance(data, (list, tuple)) and all(isinstance(s, str) for s in data):
            from ..data.molecules import collate, featurize

            graphs, _ = featurize(list(data), strict=True)
            b = collate(graphs)
            return self.pool(self(b["x"], b["edge_index"], b["edge_attr"]), b["batch"], b["num_graphs"], how)
        if not is_graph_data(data):
            raise InputSpecError(f"MolGIN.embed takes a torch_geometric Data / Batch or a list of SMILES, got "
                                 f"{type(data).__name__}")
        batch, num_graphs = graph_batch(data)
        return self.pool(self(data), batch, num_graphs, how)

    def embed_smiles(self, smiles: list[str]) -> torch.Tensor:
        """Mean-pooled graph embeddings [n, emb_dim] of SMILES (invalid SMILES -> InputSpecError with its row)."""
        from ..data.molecules import collate, featurize

        graphs, _ = featurize(smiles, strict=True)
        b = collate(graphs)
        with torch.no_grad():
            return self.pool(self(b["x"], b["edge_index"], b["edge_attr"]), b["batch"], b["num_graphs"])


class MolGraphMAEDecoder(nn.Module):
    """GraphMAE chem decoder (official ``GNNDecoder``): PReLU -> linear (no bias) -> re-mask -> GIN layer."""

    def __init__(self, hidden: int = 300, out_dim: int = 119):
        super().__init__()
        self.activation = nn.PReLU()
        self.enc_to_dec = nn.Linear(hidden, hidden, bias=False)
        self.conv = GINConv(hidden, out_dim)

    def forward(self, h, edge_index, edge_attr, masked):
        h = self.enc_to_dec(self.activation(h))
        h = h.index_fill(0, masked, 0.0)
        return self.conv(h, edge_index, edge_attr)


def mask_atoms(x: torch.Tensor, batch: torch.Tensor, num_graphs: int, mask_rate: float, generator=None):
    """Official ``MaskAtom``: per molecule, ``int(n * mask_rate + 1)`` atoms get [MASK] (type 119, chirality 0)."""
    masked = []
    counts = torch.bincount(batch, minlength=num_graphs).tolist()
    start = 0
    for n in counts:
        k = min(n, int(n * mask_rate + 1))
        masked.append(start + torch.randperm(n, generator=generator)[:k])
        start += n
    masked = torch.cat(masked)
    xm = x.clone()
    xm[masked, 0] = MASK_ATOM
    xm[masked, 1] = 0
    return xm, masked
