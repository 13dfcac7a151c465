"""Graph attention network (Velickovic et al., 2018) in pure PyTorch, as GraphMAE uses it.

Layer semantics follow the GraphMAE PyG branch's ``GATConv``: a shared linear map ``fc`` to
``heads * out_dim``, additive attention ``leaky_relu(a_src.z_j + a_dst.z_i)`` normalised over the
incoming edges of i, attention dropout, optional residual, bias, concat (or mean) of heads, then
norm and activation. Initialisation: Xavier-normal with gain 1.414 (as the official code).

Two exact shortcuts make it fast on CPU (both are algebraic identities, not approximations):

* ``forward(..., z=...)`` accepts the already-projected features, so a caller can compute
  ``fc(x)`` as a *sparse* x dense product (Cora's bag-of-words input is 1.3 % non-zero);
* ``forward_rows(h, graph, rows)`` returns the output only at ``rows`` by aggregating neighbours in the
  *input* space and projecting afterwards: ``sum_j a_ij (h_j W) = (sum_j a_ij h_j) W`` and
  ``a_src . (h_j W) = h_j . (W^T a_src)``. GraphMAE's decoder needs only the masked rows, and its input
  (512) is much narrower than its output (1433), so this halves the decoder's matrix products.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops import EdgeCSR, edge_aggregate, edge_softmax
from .layers import create_activation, create_norm


@dataclass
class GraphIndex:
    """Edge list with self loops, split into source / destination index vectors (message j -> i)."""

    src: torch.Tensor
    dst: torch.Tensor
    num_nodes: int

    @classmethod
    def from_edge_index(cls, edge_index: torch.Tensor, num_nodes: int, add_self_loops: bool = True):
        ei = edge_index
        if add_self_loops:
            ei = ei[:, ei[0] != ei[1]]
            loops = torch.arange(num_nodes, dtype=torch.long, device=ei.device)
            ei = torch.cat([ei, torch.stack([loops, loops])], 1)
        order = torch.argsort(ei[1] * num_nodes + ei[0])  # sorted by destination (CSR rows)
        ei = ei[:, order]
        return cls(ei[0].contiguous(), ei[1].contiguous(), int(num_nodes))

    @property
    def csr(self) -> EdgeCSR:
        if getattr(self, "_csr", None) is None:
            self._csr = EdgeCSR(self.src, self.dst, self.num_nodes, self.num_nodes)
        return self._csr


class GATConv(nn.Module):
    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        attn_drop: float = 0.0,
        residual: bool = False,
        activation: str | None = None,
        norm: str | None = None,
        bias: bool = True,
    ):
        super().__init__()
        self.in_dim, self.out_dim, self.heads, self.concat = in_dim, out_dim, heads, concat
        self.negative_slope, self.attn_drop = negative_slope, attn_drop
        self.fc = nn.Linear(in_dim, heads * out_dim, bias=False)
        self.attn_src = nn.Parameter(torch.empty(1, heads, out_dim))
        self.attn_dst = nn.Parameter(torch.empty(1, heads, out_dim))
        width = heads * out_dim if concat else out_dim
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None
        if residual:
            self.res_fc = nn.Linear(in_dim, heads * out_dim, bias=False) if in_dim != heads * out_dim else nn.Identity()
        else:
            self.res_fc = None
        self.norm = create_norm(norm, width)
        self.act = create_activation(activation)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.xavier_normal_(self.fc.weight, gain=1.414)
        nn.init.xavier_normal_(self.attn_src, gain=1.414)
        nn.init.xavier_normal_(self.attn_dst, gain=1.414)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        if isinstance(self.res_fc, nn.Linear):
            nn.init.xavier_normal_(self.res_fc.weight, gain=1.414)

    def _finish(self, out: torch.Tensor) -> torch.Tensor:
        out = out.reshape(out.shape[0], -1) if self.concat else out.mean(1)
        if self.bias is not None:
            out = out + self.bias
        if self.norm is not None:
            out = self.norm(out)
        if self.act is not None:
            out = self.act(out)
        return out

    def forward(self, h: torch.Tensor | None, g: GraphIndex, z: torch.Tensor | None = None,
                res: torch.Tensor | None = None) -> torch.Tensor:
        """h: [N, in] (or None when ``z = fc(h)`` [N, heads*out] is given, with ``res`` for residual layers)."""
        H, C, N = self.heads, self.out_dim, g.num_nodes
        if z is None:
            z = self.fc(h)
        z = z.view(N, H, C)
        a_s = torch.einsum("nhc,hc->nh", z, self.attn_src[0])
        a_d = torch.einsum("nhc,hc->nh", z, self.attn_dst[0])
        logits = F.leaky_relu(a_s[g.src] + a_d[g.dst], self.negative_slope)
        alpha = edge_softmax(logits, g.dst, N)
        alpha = F.dropout(alpha, self.attn_drop, self.training)
        out = edge_aggregate(alpha, z, g.csr)
        if self.res_fc is not None:
            if res is None:
                if h is None:
                    raise ValueError("a residual GAT layer needs h or res")
                res = self.res_fc(h)
            out = out + res.view(N, H, C)
        return self._finish(out)

    def aggregate_rows(self, h: torch.Tensor, g: GraphIndex, rows: torch.Tensor) -> torch.Tensor:
        """Attention-weighted sums of the *unprojected* neighbour inputs at ``rows`` (sorted, unique):
        [M, heads, in_dim]; ``fc`` applied per head to it gives the pre-bias output of ``forward``."""
        H, N = self.heads, g.num_nodes
        W = self.fc.weight.view(H, self.out_dim, self.in_dim)
        v_src = torch.einsum("hci,hc->ih", W, self.attn_src[0])
        v_dst = torch.einsum("hci,hc->ih", W, self.attn_dst[0])
        sel = torch.zeros(N, dtype=torch.bool, device=h.device)
        sel[rows] = True
        emask = sel[g.dst]
        src, dst = g.src[emask], g.dst[emask]
        pos = torch.full((N,), -1, dtype=torch.long, device=h.device)
        pos[rows] = torch.arange(rows.numel(), device=h.device)
        dloc = pos[dst]
        logits = F.leaky_relu((h @ v_src)[src] + (h[rows] @ v_dst)[dloc], self.negative_slope)
        alpha = edge_softmax(logits, dloc, rows.numel())
        alpha = F.dropout(alpha, self.attn_drop, self.training)
        return edge_aggregate(alpha, h.unsqueeze(1).expand(N, H, self.in_dim), EdgeCSR(src, dloc, rows.numel(), N))

    def forward_rows(self, h: torch.Tensor, g: GraphIndex, rows: torch.Tensor) -> torch.Tensor:
        """The layer's output at ``rows`` only (exactly equal to ``forward(h, g)[rows]``)."""
        if isinstance(self.norm, nn.BatchNorm1d):  # batch statistics need every row
            return self.forward(h, g)[rows]
        H, C, N = self.heads, self.out_dim, g.num_nodes
        W = self.fc.weight.view(H, C, self.in_dim)
        v_src = torch.einsum("hci,hc->ih", W, self.attn_src[0])
        v_dst = torch.einsum("hci,hc->ih", W, self.attn_dst[0])
        rows_in = rows
        rows, order = torch.sort(rows)  # CSR rows must follow the destination order of the edges
        sel = torch.zeros(N, dtype=torch.bool, device=h.device)
        sel[rows] = True
        emask = sel[g.dst]
        src, dst = g.src[emask], g.dst[emask]
        pos = torch.full((N,), -1, dtype=torch.long, device=h.device)
        pos[rows] = torch.arange(rows.numel(), device=h.device)
        dloc = pos[dst]
        a_s = h @ v_src  # [N, H]
        a_d = h[rows] @ v_dst  # [M, H]
        logits = F.leaky_relu(a_s[src] + a_d[dloc], self.negative_slope)
        alpha = edge_softmax(logits, dloc, rows.numel())
        alpha = F.dropout(alpha, self.attn_drop, self.training)
        M = rows.numel()
        csr = EdgeCSR(src, dloc, M, N)
        agg = edge_aggregate(alpha, h.unsqueeze(1).expand(N, H, self.in_dim), csr)  # [M, H, in]
        if H == 1:
            out = (agg[:, 0] @ self.fc.weight.t()).view(M, 1, C)
        else:
            out = torch.einsum("mhi,hci->mhc", agg, W)
        if self.res_fc is not None:
            out = out + self.res_fc(h[rows]).view(M, H, C)
        out = self._finish(out)
        inv = torch.empty_like(order)
        inv[order] = torch.arange(order.numel(), device=order.device)
        return out[inv] if rows_in is not rows else out


class GAT(nn.Module):
    """A stack of GATConv layers as GraphMAE builds it (``encoding`` gives the last layer act/res/norm)."""

    def __init__(self, in_dim: int, num_hidden: int, out_dim: int, num_layers: int, nhead: int, nhead_out: int,
                 activation: str | None, attn_drop: float, negative_slope: float, residual: bool,
                 norm: str | None, concat_out: bool = True, encoding: bool = False):
        super().__init__()
        last_act = activation if encoding else None
        last_res = encoding and residual
        last_norm = norm if encoding else None
        self.layers = nn.ModuleList()
        kw = dict(concat=concat_out, negative_slope=negative_slope, attn_drop=attn_drop)
        if num_layers == 1:
            self.layers.append(GATConv(in_dim, out_dim, nhead_out, residual=last_res, norm=last_norm, **kw))
        else:
            self.layers.append(GATConv(in_dim, num_hidden, nhead, residual=residual, activation=activation, norm=norm, **kw))
            for _ in range(1, num_layers - 1):
                self.layers.append(GATConv(num_hidden * nhead, num_hidden, nhead, residual=residual,
                                           activation=activation, norm=norm, **kw))
            self.layers.append(GATConv(num_hidden * nhead, out_dim, nhead_out, residual=last_res,
                                       activation=last_act, norm=last_norm, **kw))
