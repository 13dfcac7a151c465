"""GIN with edge features for molecules (Hu et al., "Strategies for Pre-training Graph Neural Networks",
ICLR 2020) — the encoder of GraphMAE's transfer-learning experiments — and GraphMAE's molecular objective.

Parameter names follow the official code (``x_embedding1/2``, ``gnns.<i>.mlp.{0,2}``,
``gnns.<i>.edge_embedding1/2``, ``batch_norms.<i>``), so the released GraphMAE chem checkpoint
(``chem/init_weights/pretrained.pth``: a ``GNN`` state dict) maps 1:1 (see ``fmzoo.graph.weights``).

Message passing in pure PyTorch (``index_add_``): ``h_i' = MLP(sum_{j in N(i) + i} (h_j + e_ji))`` with a
self loop of bond type 4; batch norm; ReLU on all but the last layer; dropout; JK "last".

``forward`` / ``embed`` (frozen features, fine-tuning, official weights) keep the official arithmetic bit for bit.
GraphMAE pretraining (``MolGIN.encode`` + ``MolGraphMAEDecoder.forward_masked``, used by ``mol_mae_loss``)
computes the same function with less work (float rounding aside: sums in another order; in 256 MoleculeNet
molecules about 48 instead of 70 GFLOP per training step):
- bond embeddings: ``sum_j e_ji = C @ T`` with ``T`` the 18 (bond type, direction) sums of the two embedding
  tables and ``C`` the per-atom counts of incoming bond codes (self loop included), instead of one embedding row
  per directed edge and its backward;
- repeated atoms: two atoms whose radius-k neighbourhoods carry the same features (a Weisfeiler-Lehman colour over
  atom and bond features) have the same layer-k input sum, so the layer's MLP runs once per colour and the rows
  are copied back before batch norm (exact; used while colours repeat and dropout is off: dropout would make the
  copies differ). In 256 MoleculeNet molecules with GraphMAE's [MASK] atoms, layer 1 has ~10 % distinct rows,
  layer 2 ~60 %, later layers ~90 %;
- GraphMAE's decoder (``MolGraphMAEDecoder.forward_masked``): the loss reads only the masked atoms, so its GIN layer
  aggregates into and runs its MLP on the masked atoms only, and its PReLU + linear run only on the unmasked atoms
  that send a message to one (the masked atoms' own inputs are re-masked to zero).
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
from ..spec import (
    MOLECULE_FEATURES,
    MOLECULE_FEATURIZER,
    MoleculeInput,
    molecule_features,
    validate_mol_batch,
)

NUM_BOND_CODE = NUM_BOND_TYPE * NUM_BOND_DIR  # bond code = type * NUM_BOND_DIR + direction
SELF_LOOP_CODE = SELF_LOOP_BOND * NUM_BOND_DIR  # self loop: bond type 4, direction 0
DEDUPE_MAX_SHARE = 0.85  # run a layer per WL colour only while colours are at most this share of the atoms


class MolGraphIndex:
    """Per-batch message structure (built once, shared by every layer, encoder and decoder): directed bonds
    ``src -> dst`` (self loops implicit), their bond codes, the per-atom counts of incoming bond codes (self loop
    included) and the bonds grouped by destination (for the WL colours)."""

    def __init__(self, edge_index: torch.Tensor, edge_attr: torch.Tensor, num_nodes: int):
        self.n = num_nodes
        self.src, self.dst = edge_index[0], edge_index[1]
        self.code = edge_attr[:, 0] * NUM_BOND_DIR + edge_attr[:, 1]
        counts = torch.bincount(self.dst * NUM_BOND_CODE + self.code, minlength=num_nodes * NUM_BOND_CODE)
        counts = counts.view(num_nodes, NUM_BOND_CODE)
        counts[:, SELF_LOOP_CODE] += 1
        self.code_counts = counts  # [n, 18] long; cast to the features' dtype where used
        self._by_dst = None

    def counts(self, dtype, rows=None):
        c = self.code_counts if rows is None else self.code_counts.index_select(0, rows)
        return c.to(dtype)

    def refine(self, colour: torch.Tensor) -> torch.Tensor:
        """One WL step over the messages of ``sum_{j in N(i) + i} (h_j + e_ji)``: the new colour of atom i is the
        sorted multiset of (colour of j, bond code of j -> i), self loop included. Equal new colours imply equal
        sums for any features that are equal on equal old colours."""
        if self._by_dst is None:
            deg = torch.bincount(self.dst, minlength=self.n)
            order = torch.argsort(self.dst, stable=True)
            start = torch.cumsum(deg, 0) - deg
            pos = torch.arange(order.numel(), device=order.device) - torch.repeat_interleave(start, deg)
            self._by_dst = (order, self.dst[order], pos, int(deg.max()) + 1 if self.n and deg.numel() else 1)
        order, dst_sorted, pos, width = self._by_dst
        keys = torch.full((self.n, width), -1, dtype=torch.long, device=colour.device)
        keys[:, 0] = colour * NUM_BOND_CODE + SELF_LOOP_CODE
        keys[dst_sorted, pos + 1] = colour[self.src[order]] * NUM_BOND_CODE + self.code[order]
        keys = keys.sort(1).values
        # distinct rows: fold the columns one at a time into dense ids (exact, unlike a hash; faster than unique(dim=0))
        ids = keys[:, 0]
        for j in range(1, width):
            col = keys[:, j] + 1  # -1 (padding) -> 0
            ids = torch.unique(ids * (int(col.max()) + 1) + col, return_inverse=True)[1]
        return torch.unique(ids, return_inverse=True)[1]

    def into(self, rows: torch.Tensor):
        """Bonds whose destination is one of ``rows`` (distinct atoms): (their sources, the destination's
        position in ``rows``)."""
        where = torch.full((self.n,), -1, dtype=torch.long, device=rows.device)
        where[rows] = torch.arange(rows.numel(), device=rows.device)
        local = where.index_select(0, self.dst)
        keep = local >= 0
        return self.src[keep], local[keep]


def first_of_each(colour: torch.Tensor, k: int) -> torch.Tensor:
    """One atom index per colour 0..k-1 (the first)."""
    n = colour.numel()
    return torch.full((k,), n, dtype=torch.long, device=colour.device).scatter_reduce_(
        0, colour, torch.arange(n, device=colour.device), "amin")


class GINConv(nn.Module):
    def __init__(self, emb_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.ReLU(), nn.Linear(2 * emb_dim, out_dim))
        self.edge_embedding1 = nn.Embedding(NUM_BOND_TYPE, emb_dim)
        self.edge_embedding2 = nn.Embedding(NUM_BOND_DIR, emb_dim)
        nn.init.xavier_uniform_(self.edge_embedding1.weight)
        nn.init.xavier_uniform_(self.edge_embedding2.weight)

    def bond_table(self) -> torch.Tensor:
        """[18, emb_dim]: edge_embedding1(type) + edge_embedding2(direction) for every bond code."""
        w1, w2 = self.edge_embedding1.weight, self.edge_embedding2.weight
        return (w1[:, None, :] + w2[None, :, :]).reshape(-1, w1.shape[1])

    def aggregate(self, x, g: MolGraphIndex, rows=None):
        """``sum_{j in N(i) + i} (x_j + e_ji)`` for every atom, or for the distinct atoms ``rows`` (in that order)."""
        if rows is None:
            src, dst, own = g.src, g.dst, x
        else:
            (src, dst), own = g.into(rows), x.index_select(0, rows)
        agg = own.index_add(0, dst, x.index_select(0, src))
        return agg + g.counts(agg.dtype, rows) @ self.bond_table().to(agg.dtype)

    def forward(self, x, edge_index, edge_attr):
        """The official arithmetic (one message per directed bond and self loop, summed in that order)."""
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
                           "featurizer": MOLECULE_FEATURIZER, "features": MOLECULE_FEATURES}

    def forward(self, x, edge_index=None, edge_attr=None):
        """Atom representations [num_atoms, emb_dim]: ``model(x, edge_index, edge_attr)`` or ``model(data)`` of a
        torch_geometric ``Data`` / ``Batch`` (as the official ``GNN``)."""
        if edge_index is None and not torch.is_tensor(x):
            x, edge_index, edge_attr = (*data_tensors(x, "MolGIN", ("x", "edge_index")), getattr(x, "edge_attr", None))
        if edge_index is None or edge_attr is None:
            raise InputSpecError("MolGIN takes (x, edge_index, edge_attr) or a torch_geometric Data / Batch with "
                                 "x, edge_index and edge_attr (Hu et al. 2020 bond features)")
        validate_mol_batch(x, edge_index, edge_attr, "MolGIN")
        return self._stack(x, lambda i, h: self.gnns[i](h, edge_index, edge_attr))

    def encode(self, x, g: MolGraphIndex):
        """``forward`` on a validated batch with its ``MolGraphIndex``, computed with less work (pretraining's
        path; see the module docstring): the same function, float rounding aside."""
        # WL colours of the atoms' inputs; off under dropout (copies would differ)
        state = {"colour": None}
        if g.n and not (self.training and self.drop_ratio > 0):
            state["colour"] = torch.unique(x[:, 0] * NUM_CHIRALITY + x[:, 1], return_inverse=True)[1]

        def layer(i, h):
            conv, colour = self.gnns[i], state["colour"]
            if colour is not None:
                colour = g.refine(colour)
                k = int(colour.max()) + 1
                if k > DEDUPE_MAX_SHARE * g.n:
                    colour = None  # colours only refine further: no later layer repeats enough either
                state["colour"] = colour
            if colour is None:
                return conv.mlp(conv.aggregate(h, g))
            return conv.mlp(conv.aggregate(h, g, first_of_each(colour, k))).index_select(0, colour)
        return self._stack(x, layer)

    def _stack(self, x, layer):
        h = self.x_embedding1(x[:, 0]) + self.x_embedding2(x[:, 1])
        hs = [h]
        for i in range(self.num_layer):
            h = self.batch_norms[i](layer(i, hs[-1]))
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

            graphs, _ = featurize(list(data), strict=True, features=molecule_features(self.input_spec))
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

        graphs, _ = featurize(smiles, strict=True, features=molecule_features(self.input_spec))
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
        """Atom-type predictions for every atom [num_atoms, out_dim] (the official decoder's output)."""
        h = self.enc_to_dec(self.activation(h))
        h = h.index_fill(0, masked, 0.0)
        return self.conv(h, edge_index, edge_attr)

    def forward_masked(self, h, edge_index, edge_attr, masked, graph: MolGraphIndex | None = None):
        """``forward(...)[masked]`` computed for the masked atoms only (the rows GraphMAE's loss reads)."""
        g = graph if graph is not None else MolGraphIndex(edge_index, edge_attr, h.shape[0])
        rows, inv = torch.unique(masked, return_inverse=True)
        is_masked = torch.zeros(g.n, dtype=torch.bool, device=h.device)
        is_masked[rows] = True
        src, dst = g.into(rows)
        live = ~is_masked.index_select(0, src)  # a masked atom's input is re-masked to zero: its message is e_ji
        src, dst = src[live], dst[live]
        senders, pos = torch.unique(src, return_inverse=True)
        z = self.enc_to_dec(self.activation(h.index_select(0, senders)))
        agg = torch.zeros(rows.numel(), z.shape[1], dtype=z.dtype, device=z.device).index_add_(
            0, dst, z.index_select(0, pos))
        agg = agg + g.counts(agg.dtype, rows) @ self.conv.bond_table().to(agg.dtype)
        return self.conv.mlp(agg).index_select(0, inv)


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
