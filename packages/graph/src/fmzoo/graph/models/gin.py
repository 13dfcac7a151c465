"""GIN with edge features for molecules (Hu et al., "Strategies for Pre-training Graph Neural Networks",
ICLR 2020) — the encoder of GraphMAE's transfer-learning experiments — and GraphMAE's molecular objective.

Parameter names follow the official code (``x_embedding1/2``, ``gnns.<i>.mlp.{0,2}``,
``gnns.<i>.edge_embedding1/2``, ``batch_norms.<i>``), so the released GraphMAE chem checkpoint
(``chem/init_weights/pretrained.pth``: a ``GNN`` state dict) maps 1:1 (see ``fmzoo.graph.weights``).

Message passing in pure PyTorch (``index_add_``; pretraining: CSR products): ``h_i' = MLP(sum_{j in N(i) + i} (h_j + e_ji))`` with a
self loop of bond type 4; batch norm; ReLU on all but the last layer; dropout; JK "last".

``forward`` / ``embed`` (frozen features, fine-tuning, official weights) keep the official arithmetic bit for bit.
GraphMAE pretraining (``MolGIN.encode_padded`` + ``MolGraphMAEDecoder.masked_padded``, used by ``mol_mae_loss``)
computes the same function with less work (float rounding aside: sums in another order; in 256 MoleculeNet
molecules about 40 instead of 70 GFLOP per training step):
- message sums as one sparse (CSR) product per layer, ``S @ h`` with the self loop in S (its transpose in the
  backward), instead of a gather of one row per directed bond and a scatter-add;
- bond embeddings: ``sum_j e_ji = C @ T`` with ``T`` the 18 (bond type, direction) sums of the two embedding
  tables and ``C`` the per-atom counts of incoming bond codes (self loop included), instead of one embedding row
  per directed edge and its backward;
- repeated atoms: two atoms whose radius-k neighbourhoods carry the same features (a Weisfeiler-Lehman colour over
  atom and bond features) have the same layer-k input sum, so the layer's MLP runs once per colour and the rows
  are copied back before batch norm (exact; used while colours repeat and dropout is off: dropout would make the
  copies differ). In 256 MoleculeNet molecules with GraphMAE's [MASK] atoms, layer 1 has ~10 % distinct rows,
  layer 2 ~60 %, later layers ~90 %;
- the first linear layer of each GIN MLP runs once per distinct *input* row (the previous layer's colours) before
  the sum over messages (it is linear, and the bond embeddings pass through it as their 18-row table): layer 2's
  first linear then runs on ~10 % of the atoms, layer 3's on ~60 %;
- feature widths carried padded with zero columns to a multiple of 16 (300 -> 304; weights, embeddings, batch-norm
  parameters and statistics padded with zeros, so the padding stays zero and the real columns, gradients and
  running statistics are unchanged): MKL's single-thread GEMMs with a 300-wide output run ~1.5x slower than 304;
- GraphMAE's decoder (``MolGraphMAEDecoder.forward_masked``): the loss reads only the masked atoms, so its GIN layer
  aggregates into and runs its MLP on the masked atoms only, its PReLU runs only on the unmasked atoms that send a
  message to one (the masked atoms' own inputs are re-masked to zero), and its ``enc_to_dec`` linear, which
  nothing separates from the GIN layer's first linear but the (linear) sum over messages, is multiplied into that
  layer's weight (one product on the masked rows instead of two).
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
from ..ops import SumMatrix
from ..pyg import data_tensors, graph_batch, is_graph_data
from ..spec import (
    MOLECULE_FEATURES,
    MOLECULE_FEATURIZER,
    MoleculeInput,
    molecule_features,
    validate_mol_batch,
)

PAD_MULTIPLE = 16  # pretraining's path carries feature widths rounded up to this (see the module docstring)
NUM_BOND_CODE = NUM_BOND_TYPE * NUM_BOND_DIR  # bond code = type * NUM_BOND_DIR + direction
SELF_LOOP_CODE = SELF_LOOP_BOND * NUM_BOND_DIR  # self loop: bond type 4, direction 0
DEDUPE_MAX_SHARE = 0.97  # run a layer per WL colour only while colours are at most this share of the atoms


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
        self._cache = {}

    def counts(self, dtype, rows=None):
        if rows is None:
            if ("counts", dtype) not in self._cache:
                self._cache["counts", dtype] = self.code_counts.to(dtype)
            return self._cache["counts", dtype]
        return self.code_counts.index_select(0, rows).to(dtype)

    def sum_matrix(self, rows=None, colour=None, k: int = 0) -> SumMatrix:
        """The sparse matrix S with ``(S @ v)_r = sum_{j in N(i) + i} v_j`` for the atoms i = ``rows`` (all atoms if
        None), or, given the atoms' ``colour`` (0..k-1), ``sum_{j in N(i) + i} v_{colour(j)}`` for v with one row per
        colour."""
        if rows is None and colour is None and "A" in self._cache:
            return self._cache["A"]
        if rows is None:
            loops = torch.arange(self.n, device=self.src.device)
            row, src = torch.cat([self.dst, loops]), torch.cat([self.src, loops])
        else:
            src, local = self.into(rows)
            row, src = torch.cat([local, torch.arange(rows.numel(), device=rows.device)]), torch.cat([src, rows])
        n_rows = self.n if rows is None else rows.numel()
        s = SumMatrix(row, src if colour is None else colour.index_select(0, src), n_rows,
                      self.n if colour is None else k)
        if rows is None and colour is None:
            self._cache["A"] = s
        return s

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


def _pad_cols(w: torch.Tensor, p: int) -> torch.Tensor:
    """``w`` with ``p`` zero columns appended (differentiable; the gradient of the real columns is unchanged)."""
    return F.pad(w, (0, p)) if p else w


def _pad_rows(w: torch.Tensor, p: int) -> torch.Tensor:
    return F.pad(w, (0, 0, 0, p)) if p else w


def _padding(d: int) -> int:
    return -d % PAD_MULTIPLE


def batch_norm_padded(bn: nn.BatchNorm1d, y: torch.Tensor, p: int) -> torch.Tensor:
    """``bn`` on ``y`` [n, d + p] whose last ``p`` columns are zero: those stay zero (their scale and shift are
    zero); the real columns, the running statistics and ``num_batches_tracked`` are as ``bn(y[:, :d])``."""
    if not p:
        return bn(y)
    d = bn.num_features
    rm, rv = _pad_cols(bn.running_mean, p), F.pad(bn.running_var, (0, p), value=1.0)
    out = F.batch_norm(y, rm, rv, _pad_cols(bn.weight, p), _pad_cols(bn.bias, p), bn.training, bn.momentum, bn.eps)
    if bn.training:
        with torch.no_grad():
            bn.running_mean.copy_(rm[:d])
            bn.running_var.copy_(rv[:d])
            bn.num_batches_tracked.add_(1)
    return out


class GINConv(nn.Module):
    def __init__(self, emb_dim: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.ReLU(), nn.Linear(2 * emb_dim, out_dim))
        self.edge_embedding1 = nn.Embedding(NUM_BOND_TYPE, emb_dim)
        self.edge_embedding2 = nn.Embedding(NUM_BOND_DIR, emb_dim)
        nn.init.xavier_uniform_(self.edge_embedding1.weight)
        nn.init.xavier_uniform_(self.edge_embedding2.weight)

    def bond_table(self, p: int = 0) -> torch.Tensor:
        """[18, emb_dim (+ p zero columns)]: edge_embedding1(type) + edge_embedding2(direction) for every bond
        code."""
        w1, w2 = _pad_cols(self.edge_embedding1.weight, p), _pad_cols(self.edge_embedding2.weight, p)
        return (w1[:, None, :] + w2[None, :, :]).reshape(-1, w1.shape[1])

    def aggregate(self, x, g: MolGraphIndex, rows=None, p: int = 0):
        """``sum_{j in N(i) + i} (x_j + e_ji)`` for every atom, or for the distinct atoms ``rows`` (in that order);
        ``x`` may carry ``p`` zero columns (kept)."""
        return g.sum_matrix(rows).addmm(g.counts(x.dtype, rows) @ self.bond_table(p).to(x.dtype), x)

    def first_linear_table(self, dtype) -> torch.Tensor:
        """[18, 2 emb_dim]: the bond table through the MLP's first linear layer, its bias on the self-loop row (every
        atom counts exactly one self loop, so ``counts @ table`` carries the bias once per atom)."""
        l1 = self.mlp[0]
        table = F.linear(self.bond_table().to(dtype), l1.weight)
        return table.index_add(0, torch.tensor([SELF_LOOP_CODE], device=table.device), l1.bias[None].to(dtype))

    def mlp_from_colours(self, h, colour, k: int, g: MolGraphIndex, rows=None, p: int = 0):
        """``mlp_padded(aggregate(h, g, rows, p), p, p)`` for ``h`` whose rows are equal on equal ``colour``
        (0..k-1): the first linear layer runs on the k distinct rows of h and its outputs are summed over the
        messages (it is linear; the bond embeddings go through it as their 18-row table)."""
        l1, l2 = self.mlp[0], self.mlp[2]
        q = F.linear(h.index_select(0, first_of_each(colour, k)), _pad_cols(l1.weight, p))  # [k, 2 emb_dim]
        z = g.sum_matrix(rows, colour, k).addmm(g.counts(q.dtype, rows) @ self.first_linear_table(q.dtype), q).relu_()
        return F.linear(z, _pad_rows(l2.weight, p), _pad_cols(l2.bias, p))

    def mlp_padded(self, x, p_in: int = 0, p_out: int = 0):
        """``mlp`` on ``x`` whose last ``p_in`` columns are zero, with ``p_out`` zero columns appended to the output
        (the weights padded with zeros: the same function; MKL's GEMMs are ~1.5x faster when the output width is a
        multiple of 16, e.g. 304 instead of 300)."""
        if not (p_in or p_out):
            return self.mlp(x)
        l1, l2 = self.mlp[0], self.mlp[2]
        z = F.linear(x, _pad_cols(l1.weight, p_in), l1.bias).relu_()
        return F.linear(z, _pad_rows(l2.weight, p_out), _pad_cols(l2.bias, p_out))

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
        h, p = self.encode_padded(x, g)
        return h[:, : h.shape[1] - p].contiguous() if p else h

    def padding(self) -> int:
        """Zero columns ``encode_padded`` appends to the features (0 where padding would change the function's
        random draws (dropout) or batch norm is not the default kind)."""
        bn_ok = all(b.affine and b.track_running_stats and b.momentum is not None for b in self.batch_norms)
        return _padding(self.emb_dim) if bn_ok and not (self.training and self.drop_ratio > 0) else 0

    def encode_padded(self, x, g: MolGraphIndex):
        """``encode`` with the features carried ``p`` columns wider (zeros): (output, p) where the output's last p
        columns are zero (p = 0 unless JK is "last")."""
        # WL colours of the layers' inputs (equal colour: equal rows); off under dropout (copies would differ)
        state = {"colour": None, "k": 0}
        if g.n and not (self.training and self.drop_ratio > 0):
            colour = torch.unique(x[:, 0] * NUM_CHIRALITY + x[:, 1], return_inverse=True)[1]
            state = {"colour": colour, "k": int(colour.max()) + 1}
        p = self.padding()

        def layer(i, h):
            conv, colour, k = self.gnns[i], state["colour"], state["k"]
            rows = new = None
            if colour is not None:
                new = g.refine(colour)  # colour of this layer's input sums (and so of its output rows)
                k_new = int(new.max()) + 1
                rows = first_of_each(new, k_new) if k_new <= DEDUPE_MAX_SHARE * g.n else None
                # colours only refine further: once they hardly repeat, no later layer repeats enough either
                state["colour"], state["k"] = (new, k_new) if rows is not None else (None, 0)
            if colour is not None:  # first linear layer once per distinct input row
                y = conv.mlp_from_colours(h, colour, k, g, rows, p)
            else:
                y = conv.mlp_padded(conv.aggregate(h, g, rows, p), p, p)
            return y if rows is None else y.index_select(0, new)
        return self._stack(x, layer, p), (p if self.JK == "last" else 0)

    def _stack(self, x, layer, p: int = 0):
        e1, e2 = self.x_embedding1.weight, self.x_embedding2.weight
        h = F.embedding(x[:, 0], _pad_cols(e1, p)) + F.embedding(x[:, 1], _pad_cols(e2, p))
        hs = [h]
        for i in range(self.num_layer):
            h = batch_norm_padded(self.batch_norms[i], layer(i, hs[-1]), p)
            if i < self.num_layer - 1:
                h = F.relu(h)
            h = F.dropout(h, self.drop_ratio, self.training)
            hs.append(h)
        if p and self.JK != "last":
            hs = [t[:, : self.emb_dim] for t in hs]
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
        return self.masked_padded(h, masked, g, 0)

    def masked_padded(self, h, masked, g: MolGraphIndex, p: int):
        """``forward_masked`` on encoder output ``h`` carrying ``p`` zero columns (``MolGIN.encode_padded``)."""
        rows, inv = torch.unique(masked, return_inverse=True)
        is_masked = torch.zeros(g.n, dtype=torch.bool, device=h.device)
        is_masked[rows] = True
        src, dst = g.into(rows)
        live = ~is_masked.index_select(0, src)  # a masked atom's input is re-masked to zero: its message is e_ji
        src, dst = src[live], dst[live]
        senders, pos = torch.unique(src, return_inverse=True)
        # enc_to_dec and the GIN layer's first linear are linear maps with nothing between them but the sum over
        # messages: sum the PReLU outputs first, then apply the two weights as one product (on the masked rows)
        l1, l2 = self.conv.mlp[0], self.conv.mlp[2]
        a = SumMatrix(dst, pos, rows.numel(), senders.numel(), h.dtype).mm(self.activation(h.index_select(0, senders)))
        pre = (g.counts(h.dtype, rows) @ self.conv.first_linear_table(h.dtype)).addmm_(
            a, _pad_cols(l1.weight @ self.enc_to_dec.weight, p).t())
        return F.linear(pre.relu_(), l2.weight, l2.bias).index_select(0, inv)


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
