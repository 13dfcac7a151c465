"""GraphMAE (Hou et al., "GraphMAE: Self-Supervised Masked Graph Autoencoders", KDD 2022) for node graphs.

Faithful to the paper and the official code (THUDM/GraphMAE, PyG branch):

* mask ``mask_rate`` of the nodes; of those, ``1 - replace_rate`` get their features replaced by a
  learnable [MASK] token (``enc_mask_token``, zero-initialised, added to zeroed rows) and
  ``replace_rate`` get the features of random nodes; the rest keep their features;
* a GAT encoder (``num_layers`` x ``num_hidden`` split over ``nhead`` heads, activation and
  optional norm / residual on every encoder layer);
* ``encoder_to_decoder`` (linear, no bias), then **re-mask**: the masked rows of the code are set to 0;
* a one-layer GAT decoder (``nhead_out`` heads) reconstructing the input features;
* scaled cosine error on the masked nodes: ``mean_i (1 - cos(x_i, z_i))^gamma``.

Feature dropout (``feat_drop``) is applied before every GAT layer (encoder and decoder) and attention
dropout (``attn_drop``) on the attention weights, as in the official code.

Speed (``sparse_input=True``, the default) — exact reformulations, same distribution of every random
draw as the dense computation:

* the first layer's ``dropout(x_masked) @ W`` is computed as one sparse x dense product: the kept and
  random-replaced rows are gathered from a CSR copy of ``x`` (dropout applied to their non-zeros), and
  the [MASK]-token rows use ``dropout(m)_i @ W = (m @ W - (d_i * m) @ W) / (1 - p)`` where ``d_i`` is
  the sparse set of *dropped* coordinates (density p) — so the per-row, per-coordinate dropout of the
  dense token rows is reproduced without a dense product;
* the decoder only produces the masked rows, aggregating in its 512-wide input space before
  projecting to the feature width (see ``GATConv.forward_rows``).

``sparse_input=False`` is the plain dense computation (used as the benchmark baseline and in the
equivalence tests).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from fmzoo.core import HubMixin

from ..ops import csr_tensor, spmm
from ..pyg import data_tensors
from ..spec import NodeGraphInput, spec_num_features, validate_graph
from .gat import GAT, GraphIndex


def sce_loss(x: torch.Tensor, y: torch.Tensor, alpha: float = 3.0) -> torch.Tensor:
    """Scaled cosine error (GraphMAE eq. 4): mean over rows of (1 - cos(x, y)) ** alpha."""
    x = F.normalize(x, p=2, dim=-1)
    y = F.normalize(y, p=2, dim=-1)
    return (1 - (x * y).sum(dim=-1)).pow(alpha).mean()


class PreparedGraph:
    """A graph made ready for fast repeated GraphMAE steps (self loops, CSR copy of the features)."""

    def __init__(self, x: torch.Tensor, edge_index: torch.Tensor):
        self.x = x.contiguous()
        self.num_nodes = x.shape[0]
        self.g = GraphIndex.from_edge_index(edge_index, self.num_nodes, add_self_loops=True)
        csr = self.x.to_sparse_csr()
        self.crow, self.col, self.val = csr.crow_indices(), csr.col_indices(), csr.values()
        self.density = self.val.numel() / max(1, self.x.numel())
        xhat = F.normalize(self.x, p=2, dim=-1).to_sparse_csr()  # SCE targets, unit rows
        self.yhat = (xhat.crow_indices(), xhat.col_indices(), xhat.values())


class GraphMAE(nn.Module, HubMixin):
    input_spec_class = NodeGraphInput

    def __init__(
        self,
        in_dim: int,
        num_hidden: int = 512,
        num_layers: int = 2,
        nhead: int = 4,
        nhead_out: int = 1,
        activation: str = "prelu",
        feat_drop: float = 0.2,
        attn_drop: float = 0.1,
        negative_slope: float = 0.2,
        residual: bool = False,
        norm: str | None = None,
        mask_rate: float = 0.5,
        replace_rate: float = 0.05,
        alpha_l: float = 3.0,
        concat_hidden: bool = False,
        sparse_input: bool = True,
    ):
        super().__init__()
        if num_hidden % nhead or num_hidden % nhead_out:
            raise ValueError(f"num_hidden={num_hidden} must be divisible by nhead={nhead} and nhead_out={nhead_out}")
        self.in_dim, self.num_hidden, self.num_layers = in_dim, num_hidden, num_layers
        self.mask_rate, self.replace_rate, self.alpha_l = mask_rate, replace_rate, alpha_l
        self.feat_drop, self.concat_hidden, self.sparse_input = feat_drop, concat_hidden, sparse_input
        enc_hidden = num_hidden // nhead
        self.encoder = GAT(in_dim, enc_hidden, enc_hidden, num_layers, nhead, nhead, activation, attn_drop,
                           negative_slope, residual, norm, concat_out=True, encoding=True)
        self.decoder = GAT(num_hidden, num_hidden // nhead_out, in_dim, 1, nhead, nhead_out, activation, attn_drop,
                           negative_slope, residual, norm, concat_out=True, encoding=False)
        self.enc_mask_token = nn.Parameter(torch.zeros(1, in_dim))
        self.encoder_to_decoder = nn.Linear(num_hidden * (num_layers if concat_hidden else 1), num_hidden, bias=False)
        self.input_spec = {"num_features": in_dim, "features": "row-normalised (sum to 1) node features",
                           "graph": "undirected edge_index; one self loop per node is added by the model"}

    # ------------------------------------------------------------------ input handling
    def prepare(self, x: torch.Tensor, edge_index: torch.Tensor) -> PreparedGraph:
        validate_graph(x, edge_index, spec_num_features(self))
        return PreparedGraph(x.float(), edge_index.long())

    # ------------------------------------------------------------------ encoder
    def _first_layer_proj(self, pg: PreparedGraph, row_src: torch.Tensor | None, token_nodes: torch.Tensor | None):
        """fc(dropout(x_used)) of the first encoder layer via a sparse product (see module docstring)."""
        conv = self.encoder.layers[0]
        W = conv.fc.weight.t()  # [F, H*C]
        N, Fdim = pg.num_nodes, self.in_dim
        if row_src is None:
            crow, col, val = pg.crow, pg.col, pg.val
        else:
            from ..ops import csr_gather_rows

            crow, col, val = csr_gather_rows(pg.crow, pg.col, pg.val, row_src)
        p = self.feat_drop if self.training else 0.0
        if p > 0:
            val = val * (torch.rand_like(val) >= p) / (1 - p)
        parts_w = [W]
        if token_nodes is not None and token_nodes.numel():
            m = self.enc_mask_token[0]
            if p > 0:
                # dropped coordinates of every token row, as a sparse block appended on the right
                drop = torch.rand(token_nodes.numel(), Fdim) < p
                t_row, t_col = drop.nonzero(as_tuple=True)
                node_of = token_nodes[t_row]
                # merge the two CSR blocks: [x_used | -drop/(1-p)] @ [W ; m*W]
                r1 = torch.repeat_interleave(torch.arange(N), crow[1:] - crow[:-1])
                rows = torch.cat([r1, node_of])
                cols = torch.cat([col, t_col + Fdim])
                vals = torch.cat([val, torch.full((t_col.numel(),), -1.0 / (1 - p))])
                order = torch.argsort(rows * (2 * Fdim) + cols)
                a = torch.sparse_coo_tensor(torch.stack([rows[order], cols[order]]), vals[order], (N, 2 * Fdim),
                                            is_coalesced=True, check_invariants=False).to_sparse_csr()
                parts_w.append(m[:, None] * W)
                z = spmm(a, torch.cat(parts_w, 0))
                tok = (m @ W) / (1 - p)
            else:
                a = csr_tensor(crow, col, val, (N, Fdim))
                z = spmm(a, W)
                tok = m @ W
            add = torch.zeros(N, 1, dtype=z.dtype)
            add[token_nodes] = 1.0
            z = z + add * tok
        else:
            a = csr_tensor(crow, col, val, (N, Fdim))
            z = spmm(a, W)
        res = None
        if conv.res_fc is not None:
            raise NotImplementedError("sparse_input with a residual first layer: use sparse_input=False")
        return z, res

    def _encode(self, pg: PreparedGraph, x_used: torch.Tensor | None, row_src=None, token_nodes=None, hidden=False):
        hs = []
        layers = self.encoder.layers
        if self.sparse_input and x_used is None:
            z, res = self._first_layer_proj(pg, row_src, token_nodes)
            h = layers[0](None, pg.g, z=z, res=res)
        else:
            h = layers[0](F.dropout(x_used, self.feat_drop, self.training), pg.g)
        hs.append(h)
        for layer in layers[1:]:
            h = layer(F.dropout(h, self.feat_drop, self.training), pg.g)
            hs.append(h)
        return (h, hs) if hidden else h

    def embed(self, x, edge_index: torch.Tensor | None = None) -> torch.Tensor:
        """Node embeddings [N, num_hidden] of the (unmasked) graph, as used by the linear probe: ``embed(x,
        edge_index)`` or ``embed(data)`` of a torch_geometric ``Data`` / ``Batch`` (rows aligned with ``data.x``)."""
        if edge_index is None:
            x, edge_index = data_tensors(x, "GraphMAE.embed")
        return self.embed_prepared(self.prepare(x, edge_index))

    def embed_prepared(self, pg: PreparedGraph) -> torch.Tensor:
        return self._encode(pg, None if self.sparse_input else pg.x)

    forward = embed

    # ------------------------------------------------------------------ pretraining objective
    def mask_nodes(self, num_nodes: int, device=None):
        """The official masking draw: (mask_nodes, keep_nodes, token_nodes, noise_nodes, noise_source)."""
        perm = torch.randperm(num_nodes, device=device)
        n_mask = int(self.mask_rate * num_nodes)
        mask_nodes, keep_nodes = perm[:n_mask], perm[n_mask:]
        if self.replace_rate > 0:
            n_noise = int(self.replace_rate * n_mask)
            perm_mask = torch.randperm(n_mask, device=device)
            token_nodes = mask_nodes[perm_mask[: int((1 - self.replace_rate) * n_mask)]]
            noise_nodes = mask_nodes[perm_mask[-int(self.replace_rate * n_mask):]] if n_noise > 0 else mask_nodes[:0]
            noise_src = torch.randperm(num_nodes, device=device)[:n_noise]
        else:
            token_nodes = mask_nodes
            noise_nodes = mask_nodes[:0]
            noise_src = mask_nodes[:0]
        return mask_nodes, keep_nodes, token_nodes, noise_nodes, noise_src

    def loss_prepared(self, pg: PreparedGraph) -> torch.Tensor:
        N = pg.num_nodes
        mask_nodes, _, token_nodes, noise_nodes, noise_src = self.mask_nodes(N, pg.x.device)
        if self.sparse_input:
            row_src = torch.arange(N)
            row_src[token_nodes] = -1
            row_src[noise_nodes] = noise_src
            enc, hs = self._encode(pg, None, row_src=row_src, token_nodes=token_nodes, hidden=True)
        else:
            out_x = pg.x.clone()
            out_x[token_nodes] = 0.0
            out_x[noise_nodes] = pg.x[noise_src]
            out_x[token_nodes] += self.enc_mask_token
            enc, hs = self._encode(pg, out_x, hidden=True)
        if self.concat_hidden:
            enc = torch.cat(hs, 1)
        rep = self.encoder_to_decoder(enc)
        rep = rep.index_fill(0, mask_nodes, 0.0)  # re-mask
        dec = self.decoder.layers[0]
        rep = F.dropout(rep, self.feat_drop, self.training)
        if self.sparse_input and self._implicit_decoder_ok():
            return self._implicit_sce(dec, rep, pg, mask_nodes)
        if self.sparse_input:
            x_rec = dec.forward_rows(rep, pg.g, mask_nodes)
        else:
            x_rec = dec(rep, pg.g)[mask_nodes]
        return sce_loss(x_rec, pg.x[mask_nodes], self.alpha_l)

    def _implicit_decoder_ok(self) -> bool:
        dec = self.decoder.layers[0]
        return dec.heads == 1 and dec.norm is None and dec.act is None and dec.res_fc is None

    def _implicit_sce(self, dec, rep: torch.Tensor, pg: PreparedGraph, mask_nodes: torch.Tensor) -> torch.Tensor:
        """SCE of the decoder output on the masked rows without materialising the [M, F] reconstruction.

        With ``a_i`` the attention-aggregated decoder input of node i, the reconstruction is
        ``r_i = W a_i + b`` (W: [F, d]); with unit targets ``y_i`` (sparse):
        ``r_i . y_i = a_i . (W^T y_i) + b . y_i`` (a sparse product) and
        ``|r_i|^2 = a_i^T (W^T W) a_i + 2 a_i . (W^T b) + |b|^2`` (a d x d Gram matrix, d = 512 << F).
        Equal to ``sce_loss(dec(rep)[mask], x[mask])`` up to float rounding (tested).
        """
        from ..ops import csr_gather_rows

        rows, _ = torch.sort(mask_nodes)
        a = dec.aggregate_rows(rep, pg.g, rows)[:, 0]  # [M, d]
        W, b = dec.fc.weight, dec.bias  # [F, d], [F]
        crow, col, val = csr_gather_rows(*pg.yhat, rows)
        Y = csr_tensor(crow, col, val, (rows.numel(), self.in_dim))
        Wb = torch.cat([W, b[:, None]], 1)  # [F, d + 1]
        t = spmm(Y, Wb)  # [M, d + 1]: rows W^T y_i and b . y_i
        dot = (a * t[:, :-1]).sum(-1) + t[:, -1]
        gram = W.t() @ W
        sq = ((a @ gram) * a).sum(-1) + 2 * (a @ (W.t() @ b)) + (b * b).sum()
        norm = sq.clamp_min(1e-24).sqrt().clamp_min(1e-12)
        ynorm = torch.zeros(rows.numel(), dtype=val.dtype).index_add_(
            0, torch.repeat_interleave(torch.arange(rows.numel()), crow[1:] - crow[:-1]), val * val).sqrt()
        cos = dot / norm * (ynorm > 0)  # F.normalize maps an all-zero target row to 0 -> cos 0
        return (1 - cos).pow(self.alpha_l).mean()

    def loss(self, x, edge_index: torch.Tensor | None = None) -> torch.Tensor:
        if edge_index is None:
            x, edge_index = data_tensors(x, "GraphMAE.loss")
        return self.loss_prepared(self.prepare(x, edge_index))
