"""Graph-level GraphMAE (the paper's graph classification setting, e.g. MUTAG) with GIN encoder and decoder.

As the official PyG branch (``GIN`` with ``ApplyNodeFunc``): every encoder layer is
``GINConv(eps=0)`` with ``MLP = Linear -> BatchNorm -> PReLU -> Linear`` followed by BatchNorm and PReLU
(also the last layer, ``encoding=True``); feature dropout before every layer; one self loop per node is added
to the edges (so the centre node counts twice in ``(1 + eps) h_i + sum_j h_j``, as in the official code).
The decoder is one GIN layer with a plain MLP (no outer norm/activation). Masking / re-mask / SCE as the
node-level GraphMAE. Embeddings are sum-pooled per graph.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from fmzoo.core import HubMixin

from ..pyg import data_tensors, graph_batch
from ..spec import NodeGraphInput, spec_num_features, validate_graph
from .graphmae import sce_loss
from .layers import create_activation, create_norm


class MLP2(nn.Module):
    def __init__(self, i, h, o, activation="prelu", norm="batchnorm"):
        super().__init__()
        self.linears = nn.ModuleList([nn.Linear(i, h), nn.Linear(h, o)])
        self.norms = nn.ModuleList([create_norm(norm, h) or nn.Identity()])
        self.activations = nn.ModuleList([create_activation(activation)])

    def forward(self, x):
        return self.linears[1](self.activations[0](self.norms[0](self.linears[0](x))))


class GINLayer(nn.Module):
    def __init__(self, i, h, o, activation="prelu", norm="batchnorm", outer: bool = True):
        super().__init__()
        self.mlp = MLP2(i, h, o, activation, norm)
        self.norm = (create_norm(norm, o) or nn.Identity()) if outer else None
        self.act = create_activation(activation) if outer else None

    def forward(self, x, src, dst):
        agg = x + torch.zeros_like(x).index_add_(0, dst, x[src])  # (1 + eps) x_i + sum_j x_j, eps = 0
        h = self.mlp(agg)
        if self.norm is not None:
            h = self.act(self.norm(h))
        return h


class GraphMAEGIN(nn.Module, HubMixin):
    input_spec_class = NodeGraphInput

    def __init__(self, in_dim: int, num_hidden: int = 32, num_layers: int = 5, activation: str = "prelu",
                 norm: str = "batchnorm", feat_drop: float = 0.2, mask_rate: float = 0.75, replace_rate: float = 0.1,
                 alpha_l: float = 2.0):
        super().__init__()
        self.in_dim, self.feat_drop = in_dim, feat_drop
        self.mask_rate, self.replace_rate, self.alpha_l = mask_rate, replace_rate, alpha_l
        dims = [in_dim] + [num_hidden] * num_layers
        self.encoder = nn.ModuleList([GINLayer(dims[i], num_hidden, num_hidden, activation, norm, outer=True)
                                      for i in range(num_layers)])
        self.decoder = GINLayer(num_hidden, num_hidden, in_dim, activation, norm, outer=False)
        self.enc_mask_token = nn.Parameter(torch.zeros(1, in_dim))
        self.encoder_to_decoder = nn.Linear(num_hidden, num_hidden, bias=False)
        self.input_spec = {"num_features": in_dim, "features": "one-hot node labels",
                           "graph": "undirected edge_index; one self loop per node is added by the model"}

    @staticmethod
    def _edges(edge_index, n):
        ei = edge_index[:, edge_index[0] != edge_index[1]]
        loops = torch.arange(n)
        return torch.cat([ei[0], loops]), torch.cat([ei[1], loops])

    def encode(self, x, edge_index):
        src, dst = self._edges(edge_index, x.shape[0])
        h = x
        for layer in self.encoder:
            h = layer(F.dropout(h, self.feat_drop, self.training), src, dst)
        return h

    def forward(self, x, edge_index=None):
        """Node representations [N, num_hidden]: ``model(x, edge_index)`` or ``model(data)`` (torch_geometric)."""
        if edge_index is None:
            x, edge_index = data_tensors(x, "GraphMAEGIN")
        validate_graph(x, edge_index, spec_num_features(self), require_edges=False)
        return self.encode(x, edge_index)

    def embed(self, x, edge_index=None, batch=None, num_graphs=None):
        """One sum-pooled embedding per graph [num_graphs, num_hidden]: ``embed(x, edge_index, batch, num_graphs)``
        or ``embed(data)`` of a torch_geometric ``Batch`` (a single ``Data``: one row)."""
        if edge_index is None:
            data = x
            x, edge_index = data_tensors(data, "GraphMAEGIN.embed")
            batch, num_graphs = graph_batch(data)
        if batch is None:
            batch, num_graphs = torch.zeros(x.shape[0], dtype=torch.long), 1
        elif num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        h = self(x, edge_index)
        return torch.zeros(num_graphs, h.shape[1], dtype=h.dtype).index_add_(0, batch, h)  # sum pooling

    def loss(self, x, edge_index):
        n = x.shape[0]
        perm = torch.randperm(n)
        nm = int(self.mask_rate * n)
        mask, _ = perm[:nm], perm[nm:]
        out = x.clone()
        n_noise = int(self.replace_rate * nm)
        if n_noise > 0:
            p2 = torch.randperm(nm)
            token = mask[p2[: int((1 - self.replace_rate) * nm)]]
            noise = mask[p2[-n_noise:]]
            out[token] = 0.0
            out[noise] = x[torch.randperm(n)[:n_noise]]
        else:
            token = mask
            out[token] = 0.0
        out[token] += self.enc_mask_token
        h = self.encode(out, edge_index)
        rep = self.encoder_to_decoder(h).index_fill(0, mask, 0.0)
        src, dst = self._edges(edge_index, n)
        rec = self.decoder(F.dropout(rep, self.feat_drop, self.training), src, dst)
        return sce_loss(rec[mask], x[mask], self.alpha_l)


def collate_tu(graphs: list[dict]) -> dict:
    xs, eis, bs, off = [], [], [], 0
    for i, g in enumerate(graphs):
        xs.append(g["x"])
        eis.append(g["edge_index"] + off)
        bs.append(torch.full((g["x"].shape[0],), i, dtype=torch.long))
        off += g["x"].shape[0]
    return {"x": torch.cat(xs), "edge_index": torch.cat(eis, 1), "batch": torch.cat(bs), "num_graphs": len(graphs),
            "y": torch.tensor([g["y"] for g in graphs])}
