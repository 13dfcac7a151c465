import copy

import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.graph.models.gat import GATConv, GraphIndex
from fmzoo.graph.models.graphmae import GraphMAE, sce_loss
from fmzoo.graph.ops import EdgeCSR, edge_aggregate, edge_softmax


def random_graph(n=40, f=30, density=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, f, generator=g) < density).float() * torch.rand(n, f, generator=g)
    x[0] = 0  # an all-zero feature row must work too
    src = torch.randint(0, n, (3 * n,), generator=g)
    dst = torch.randint(0, n, (3 * n,), generator=g)
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    return x, ei


def test_sce_loss_values():
    x = torch.randn(5, 8)
    assert sce_loss(x, 2 * x, 3).item() == pytest.approx(0.0, abs=1e-6)
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert sce_loss(a, b, 3).item() == pytest.approx(1.0)
    assert sce_loss(a, -a, 3).item() == pytest.approx(8.0)  # (1 - (-1))^3
    c = torch.tensor([[1.0, 1.0]])
    assert sce_loss(a, c, 2).item() == pytest.approx((1 - 2 ** -0.5) ** 2, rel=1e-5)


def test_edge_softmax_and_aggregate_gradcheck():
    x, ei = random_graph(12, 5)
    gi = GraphIndex.from_edge_index(ei, 12)
    logits = torch.randn(gi.src.numel(), 2, dtype=torch.double)
    a = edge_softmax(logits, gi.dst, 12)
    s = torch.zeros(12, 2, dtype=torch.double).index_add_(0, gi.dst, a)
    assert torch.allclose(s, torch.ones_like(s))
    csr = EdgeCSR(gi.src, gi.dst, 12, 12)
    alpha = torch.rand(gi.src.numel(), 2, dtype=torch.double, requires_grad=True)
    z = torch.randn(12, 2, 3, dtype=torch.double, requires_grad=True)
    ref = torch.zeros(12, 2, 3, dtype=torch.double).index_add_(0, gi.dst, alpha.unsqueeze(-1) * z[gi.src])
    assert torch.allclose(edge_aggregate(alpha, z, csr), ref)
    assert torch.autograd.gradcheck(lambda a_, z_: edge_aggregate(a_, z_, csr), (alpha, z))


def test_forward_rows_equals_forward():
    torch.manual_seed(0)
    x, ei = random_graph(30, 10)
    gi = GraphIndex.from_edge_index(ei, 30)
    conv = GATConv(10, 7, heads=2, residual=True).eval()
    rows = torch.tensor([5, 1, 17, 3])
    assert torch.allclose(conv.forward_rows(x, gi, rows), conv(x, gi)[rows], atol=1e-5)


def test_sparse_path_matches_dense_path():
    """The fast (sparse input, row-only decoder, implicit SCE) path equals the plain dense computation."""
    x, ei = random_graph(60, 40)
    torch.manual_seed(0)
    m = GraphMAE(40, num_hidden=16, nhead=4, feat_drop=0.0, attn_drop=0.0, mask_rate=0.5, replace_rate=0.2)
    with torch.no_grad():
        m.enc_mask_token.normal_()
        m.decoder.layers[0].bias.normal_()
    md = copy.deepcopy(m)
    md.sparse_input = False
    pg = m.prepare(x, ei)
    losses = []
    for mod in (m, md):
        torch.manual_seed(1)
        loss = mod.loss_prepared(pg)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (n, p), (_, q) in zip(m.named_parameters(), md.named_parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), n
    m.eval(), md.eval()
    assert torch.allclose(m.embed(x, ei), md.embed(x, ei), atol=1e-5)


def test_sparse_dropout_statistics():
    """With dropout on, the sparse first layer is unbiased: its mean over draws equals the no-dropout value."""
    x, ei = random_graph(20, 15, density=0.5)
    torch.manual_seed(0)
    m = GraphMAE(15, num_hidden=8, nhead=2, feat_drop=0.5)
    with torch.no_grad():
        m.enc_mask_token.normal_()
    pg = m.prepare(x, ei)
    tokens = torch.tensor([2, 5, 7])
    rows = torch.arange(20)
    rows[tokens] = -1
    m.train()
    with torch.no_grad():
        acc = sum(m._first_layer_proj(pg, rows, tokens)[0] for _ in range(3000)) / 3000
        m.eval()
        exact = m._first_layer_proj(pg, rows, tokens)[0]
    assert torch.allclose(acc, exact, atol=0.06 * exact.abs().max().item())


def test_masking_counts():
    m = GraphMAE(10, num_hidden=8, nhead=2, mask_rate=0.5, replace_rate=0.05)
    mask, keep, token, noise, src = m.mask_nodes(2708)
    assert mask.numel() == 1354 and keep.numel() == 1354
    assert noise.numel() == int(0.05 * 1354) == src.numel()
    assert token.numel() == int(0.95 * 1354)
    assert not set(token.tolist()) & set(noise.tolist())
    assert set(token.tolist()) | set(noise.tolist()) <= set(mask.tolist())


def test_training_reduces_loss():
    torch.manual_seed(0)
    x, ei = random_graph(80, 30)
    m = GraphMAE(30, num_hidden=16, nhead=2)
    from fmzoo.graph.methods.graphmae import pretrain_loop

    out = pretrain_loop(m, type("G", (), {"x": x, "edge_index": ei})(), 60, lr=1e-2)
    assert sum(out["losses"][-10:]) / 10 < 0.8 * sum(out["losses"][:5]) / 5


def test_bad_inputs(tmp_path):
    x, ei = random_graph(20, 8)
    m = GraphMAE(8, num_hidden=8, nhead=2)
    m.save_pretrained(tmp_path / "ck")
    m2 = GraphMAE.from_pretrained(tmp_path / "ck")
    assert torch.allclose(m2.embed(x, ei), m.eval().embed(x, ei), atol=1e-6)
    with pytest.raises(InputSpecError, match="expects 8 node features.*got 9"):
        m2.embed(torch.rand(20, 9), ei)
    with pytest.raises(InputSpecError, match="no edges"):
        m2.embed(x, torch.empty(2, 0, dtype=torch.long))
    with pytest.raises(InputSpecError, match="no edges"):
        m2.embed(x, torch.arange(20).repeat(2, 1))  # self loops only
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InputSpecError, match="NaN"):
        m2.embed(bad, ei)
    with pytest.raises(InputSpecError, match=r"edge 1 \(25 -> 2\) refers to an id outside 0\.\.19"):
        m2.embed(x, torch.tensor([[0, 25], [1, 2]]))
    with pytest.raises(InputSpecError, match=r"\[2, num_edges\]"):
        m2.embed(x, torch.tensor([0, 1, 2]))
    with pytest.raises(InputSpecError, match="2-D"):
        m2.embed(torch.rand(20), ei)
