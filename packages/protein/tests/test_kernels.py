"""The CPU training kernels of the TAPE Transformer compute TAPE's function: the fused-QKV attention with dropout
(``_DropoutAttention``), the cheaper dropout mask (``keep_mask``), the reused buffers, and the MLM loss computed
on the chosen positions only."""

import math

import pytest
import torch
import torch.nn.functional as F
from fmzoo.protein import TapeTransformer
from fmzoo.protein.methods.mlm import mlm_loss
from fmzoo.protein.models import layers
from fmzoo.protein.models.layers import Dropout, keep_mask, pooled_empty
from fmzoo.protein.models.transformer import attention


def test_keep_mask_rate_seed_and_workspace():
    g = torch.Generator().manual_seed(3)
    m = keep_mask((400, 1000), 0.1, generator=g)
    assert m.dtype == torch.bool and m.shape == (400, 1000)
    # 400k Bernoulli(0.9) draws: the rate within 5 standard deviations (sd = 4.7e-4)
    assert abs(m.float().mean().item() - 0.9) < 5 * math.sqrt(0.09 / m.numel())
    again = keep_mask((400, 1000), 0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(m, again)
    ws = torch.empty(400 * 1000 + 8)
    in_ws = keep_mask((400, 1000), 0.1, generator=torch.Generator().manual_seed(3), workspace=ws)
    assert torch.equal(m, in_ws)
    assert not torch.equal(m, keep_mask((400, 1000), 0.1, generator=torch.Generator().manual_seed(4)))
    assert keep_mask((3, 5), 0.0).all() and not keep_mask((3, 5), 1.0).any()
    odd = keep_mask((7, 3), 0.5, generator=torch.Generator().manual_seed(0))  # odd element count
    assert odd.shape == (7, 3)


def test_dropout_module_matches_mask_and_scale():
    x = torch.randn(6, 9, 16, requires_grad=True)
    d = Dropout(0.25).train()
    torch.manual_seed(11)
    y = d(x)
    torch.manual_seed(11)
    keep = keep_mask(x.shape, 0.25)
    torch.testing.assert_close(y, x * keep / 0.75, rtol=0, atol=1e-6)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, keep.float() / 0.75, rtol=0, atol=1e-6)
    assert torch.equal(d.eval()(x), x)


def _reference_attention(q, k, v, bias, keep, p):
    s = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
    if bias is not None:
        s = s + bias
    return (torch.softmax(s, -1) * keep / (1 - p)) @ v


@pytest.mark.parametrize("padded", [False, True])
def test_dropout_attention_matches_reference(padded):
    """Forward and all three input gradients against autograd through the plain formula with the same mask."""
    B, H, L, d, p = 2, 3, 18, 8, 0.3
    q, k, v = (torch.randn(B, H, L, d, dtype=torch.float32, requires_grad=True) for _ in range(3))
    bias = None
    if padded:
        mask = torch.ones(B, L)
        mask[1, 11:] = 0
        bias = (1.0 - mask[:, None, None, :]) * -10000.0
    grad = torch.randn(B, H, L, d)
    torch.manual_seed(5)
    out = attention(q, k, v, bias, p)
    got = torch.autograd.grad(out, (q, k, v), grad)
    torch.manual_seed(5)
    keep = keep_mask((B * H, L, L), p).view(B, H, L, L)
    ref = _reference_attention(q, k, v, bias, keep, p)
    want = torch.autograd.grad(ref, (q, k, v), grad)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # without dropout (eval) it is PyTorch's SDPA with the same additive mask
    torch.testing.assert_close(attention(q, k, v, bias, 0.0), _reference_attention(q, k, v, bias, 1.0, 0.0),
                               rtol=1e-5, atol=1e-5)


def test_pooled_buffer_reused_only_when_free():
    a = pooled_empty((4, 8, 8))
    a_ptr = a.data_ptr()
    b = pooled_empty((4, 8, 8))  # ``a`` still referenced: a different buffer
    assert b.data_ptr() != a_ptr
    del a
    c = pooled_empty((4, 8, 8))  # free again: handed back out
    assert c.data_ptr() == a_ptr
    # a graph that still saves its probabilities (retain_graph) keeps them from being reused
    q = torch.randn(1, 2, 8, 4, requires_grad=True)
    out = attention(q, q, q, None, 0.2)
    used = {e[0].data_ptr() for e in layers._WORK.pool if layers._storage_refs(e[0]) != e[1]}
    assert used
    fresh = pooled_empty((2, 8, 8))
    assert fresh.data_ptr() not in used
    out.sum().backward()
    held = pooled_empty((3, 8, 8))  # in use: survives the release
    layers.release_buffers()
    kept = {e[0].data_ptr() for e in layers._WORK.pool}
    assert kept == {t.data_ptr() for t in (held, b, c, fresh)}  # the free ones (the attention's) are gone


def test_mlm_loss_on_chosen_positions_equals_full_head():
    """The head on the chosen positions only gives TAPE's loss (cross-entropy over all positions, ignore -1) and the
    same gradients."""
    torch.manual_seed(0)
    model = TapeTransformer(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                            max_position_embeddings=64, hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0).train()
    ids = torch.randint(5, 30, (3, 20))
    mask = torch.ones_like(ids)
    mask[2, 15:] = 0
    ids[2, 15:] = 0
    targets = torch.full_like(ids, -1)
    targets[:, 3:15:4] = ids[:, 3:15:4]
    loss, acc = mlm_loss(model, ids, mask, targets)
    g = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    logits = model(ids, mask)["logits"]
    ref = F.cross_entropy(logits.reshape(-1, 30), targets.reshape(-1), ignore_index=-1)
    g_ref = torch.autograd.grad(ref, list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    for a, b in zip(g, g_ref, strict=True):
        if b is None or a is None:
            assert (a is None or not a.any()) and (b is None or not b.any())
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    sel = targets != -1
    assert acc.item() == pytest.approx((logits.argmax(-1)[sel] == targets[sel]).float().mean().item())


def test_training_forward_uses_the_fast_attention(monkeypatch):
    """fp32 CPU training with attention dropout goes through ``_DropoutAttention`` (SDPA would fall back to its
    unfused math path); eval goes through SDPA."""
    from fmzoo.protein.models import transformer

    calls = []
    orig = transformer._DropoutAttention.apply
    monkeypatch.setattr(transformer._DropoutAttention, "apply", lambda *a: calls.append(1) or orig(*a))
    model = TapeTransformer(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                            max_position_embeddings=64)
    ids = torch.randint(5, 30, (2, 12))
    model.train()(ids)
    assert len(calls) == 2
    model.eval()(ids)
    assert len(calls) == 2
