"""Pure-PyTorch graph ops (no torch-scatter / pyg-lib): edge softmax, sparse x dense products.

Everything here is built from ``index_add_``, ``scatter_reduce`` and ``torch.sparse`` CSR products,
which ship with every PyTorch wheel.
"""
from __future__ import annotations

import warnings

import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def csr_tensor(crow, col, val, size) -> torch.Tensor:
    """A CSR tensor built from indices this package constructed itself (invariants hold by construction)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, col, val, size, check_invariants=False)


def edge_softmax(logits: torch.Tensor, dst: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Softmax of edge logits [E, H] over the incoming edges of each destination node.

    The per-node maximum is subtracted without gradient (softmax is shift invariant, so the gradient is
    unchanged) which keeps ``exp`` finite.
    """
    with torch.no_grad():
        m = torch.full((num_nodes, logits.shape[1]), float("-inf"), dtype=logits.dtype, device=logits.device)
        m = m.scatter_reduce(0, dst[:, None].expand_as(logits), logits, reduce="amax", include_self=True)
    e = (logits - m[dst]).exp()
    s = torch.zeros((num_nodes, logits.shape[1]), dtype=logits.dtype, device=logits.device).index_add_(0, dst, e)
    return e / s[dst]


class _SpMM(torch.autograd.Function):
    """C = A @ B with A a constant sparse CSR matrix; gradient only for the dense B (via A^T)."""

    @staticmethod
    def forward(ctx, a, at, b):
        ctx.at = at
        return torch.sparse.mm(a, b)

    @staticmethod
    def backward(ctx, g):
        at = ctx.at
        if callable(at):
            at = at()
        return None, None, torch.sparse.mm(at, g.contiguous())


def spmm(a: torch.Tensor, b: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse (constant) x dense with autograd for the dense operand only."""
    if not b.requires_grad:
        return torch.sparse.mm(a, b)
    if at is None:
        def at():  # transposed CSR, built lazily only when the backward pass runs
            return a.t().to_sparse_csr()
    return _SpMM.apply(a, at, b)


def csr_gather_rows(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, rows: torch.Tensor):
    """Rows ``rows`` (with repetition; -1 = empty row) of a CSR matrix, as (crow, col, val) of a new CSR."""
    valid = rows >= 0
    r = rows.clamp(min=0)
    lengths = (crow[r + 1] - crow[r]) * valid
    new_crow = torch.zeros(rows.numel() + 1, dtype=crow.dtype, device=crow.device)
    new_crow[1:] = torch.cumsum(lengths, 0)
    total = int(new_crow[-1])
    row_of = torch.repeat_interleave(torch.arange(rows.numel(), device=crow.device), lengths)
    src = crow[r][row_of] + (torch.arange(total, device=crow.device) - new_crow[:-1][row_of])
    return new_crow, col[src], val[src]


def _crow(rows: torch.Tensor, n: int) -> torch.Tensor:
    """CSR row pointers [n + 1] of entries whose row indices are ``rows`` (the entries sorted by row)."""
    crow = torch.zeros(n + 1, dtype=torch.long, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return crow


class EdgeCSR:
    """CSR views of an edge list sorted by destination: rows = dst (size n_dst), columns = src (n_src)."""

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, n_dst: int, n_src: int):
        if dst.numel() > 1 and bool((dst[1:] < dst[:-1]).any()):
            raise ValueError("EdgeCSR needs edges sorted by destination")
        self.src, self.dst, self.n_dst, self.n_src = src, dst, n_dst, n_src
        self.crow = _crow(dst, n_dst)
        self.perm_t = torch.argsort(src, stable=True)  # edges sorted by source: the transposed CSR
        self.crow_t = _crow(src, n_src)
        self.col_t = dst[self.perm_t]

    def mat(self, values: torch.Tensor) -> torch.Tensor:
        return csr_tensor(self.crow, self.src, values, (self.n_dst, self.n_src))

    def mat_t(self, values: torch.Tensor) -> torch.Tensor:
        return csr_tensor(self.crow_t, self.col_t, values[self.perm_t], (self.n_src, self.n_dst))


class _EdgeAggregate(torch.autograd.Function):
    """out[i, h] = sum_{e: dst_e = i} alpha[e, h] * z[src_e, h]  (CSR SpMM forward, SpMM + SDDMM backward)."""

    @staticmethod
    def forward(ctx, alpha, z, csr: EdgeCSR):
        ctx.csr = csr
        ctx.save_for_backward(alpha, z)
        H = alpha.shape[1]
        outs = [torch.sparse.mm(csr.mat(alpha[:, h].contiguous()), z[:, h].contiguous()) for h in range(H)]
        return torch.stack(outs, 1)

    @staticmethod
    def backward(ctx, g):
        alpha, z = ctx.saved_tensors
        csr = ctx.csr
        H = alpha.shape[1]
        g = g.contiguous()
        d_alpha = d_z = None
        if ctx.needs_input_grad[1]:
            d_z = torch.stack([torch.sparse.mm(csr.mat_t(alpha[:, h].contiguous()), g[:, h].contiguous())
                               for h in range(H)], 1)
        if ctx.needs_input_grad[0]:
            pattern = csr.mat(torch.ones(csr.src.numel(), dtype=g.dtype, device=g.device))
            d_alpha = torch.stack([torch.sparse.sampled_addmm(pattern, g[:, h].contiguous(), z[:, h].t(), beta=0.0).values()
                                   for h in range(H)], 1)
        return d_alpha, d_z, None


def edge_aggregate(alpha: torch.Tensor, z: torch.Tensor, csr: EdgeCSR) -> torch.Tensor:
    """alpha [E, H], z [n_src, H, C] -> [n_dst, H, C]; edges in ``csr`` order (sorted by destination)."""
    return _EdgeAggregate.apply(alpha, z, csr)


class SumMatrix:
    """A constant 0/1/count matrix [n_rows, n_cols] given as (row, col) pairs (repeated pairs add up), kept as CSR
    together with its transpose, for ``out = base + S @ x`` with autograd for ``base`` and ``x``."""

    def __init__(self, row: torch.Tensor, col: torch.Tensor, n_rows: int, n_cols: int, dtype=torch.float32):
        m = max(n_cols, 1)
        key, cnt = torch.unique(row * m + col, return_counts=True)  # sorted by (row, col), repeats summed
        r, c, v = key // m, key % m, cnt.to(dtype)
        self.shape = (n_rows, n_cols)
        self.a = csr_tensor(_crow(r, n_rows), c, v, self.shape)
        order = torch.argsort(c * n_rows + r)
        self.at = csr_tensor(_crow(c[order], n_cols), r[order], v[order], (n_cols, n_rows))

    def to(self, dtype):
        if self.a.dtype == dtype:
            return self
        other = object.__new__(SumMatrix)
        other.shape, other.a, other.at = self.shape, self.a.to(dtype), self.at.to(dtype)
        return other

    def addmm(self, base: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``base + S @ x`` (one CSR product; the backward is ``S^T @ grad``), accumulated into ``base`` in place
        (pass a fresh intermediate that nothing else reads)."""
        return _SumAddmm.apply(base, x, self.to(x.dtype))

    def mm(self, x: torch.Tensor) -> torch.Tensor:
        """``S @ x``."""
        if not (self.shape[0] and self.shape[1]):  # MKL's sparse product refuses empty operands
            return x.new_zeros(self.shape[0], x.shape[1]) + 0 * x.sum()
        s = self.to(x.dtype)
        return spmm(s.a, x, s.at)


class _SumAddmm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, base, x, s: SumMatrix):
        ctx.s = s
        ctx.mark_dirty(base)
        return base.addmm_(s.a, x)

    @staticmethod
    def backward(ctx, g):
        gx = torch.sparse.mm(ctx.s.at, g.contiguous()) if ctx.needs_input_grad[1] else None
        return (g if ctx.needs_input_grad[0] else None), gx, None
