"""The fast layers behind T-JEPA's encoder/predictor: the same module as nn.TransformerEncoderLayer, PyTorch's
forward wherever no dropout is active, and dropout drawn with nn.Dropout's distribution."""

import pytest
import torch
from fmzoo.tabular.models.layers import Dropout, TransformerEncoderLayer, bernoulli_positions, dropout
from torch import nn


def _pair(dim=16, heads=4, ff=64, p=0.1, depth=3):
    torch.manual_seed(0)
    ref = nn.TransformerEncoder(nn.TransformerEncoderLayer(dim, heads, ff, p, batch_first=True), depth, enable_nested_tensor=False)
    torch.manual_seed(0)
    new = nn.TransformerEncoder(TransformerEncoderLayer(dim, heads, ff, p), depth, enable_nested_tensor=False)
    return ref, new


def test_same_parameters_names_and_init_as_torch_layer():
    ref, new = _pair()
    a, b = ref.state_dict(), new.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_stock_forward_bit_for_bit_in_eval_and_float_close_without_dropout():
    """Eval (the frozen representations) runs PyTorch's own forward, so the shipped checkpoints' numbers do not move;
    training with every rate 0 (end-to-end fine-tuning) takes the unfused padded-softmax path: the stock layer's
    output and gradients up to float32 rounding."""
    ref, new = _pair()
    x = torch.randn(4096, 15, 16)
    with torch.no_grad():
        assert torch.equal(ref.eval()(x), new.eval()(x))
    for m in (ref, new):
        for mod in m.modules():
            if isinstance(mod, nn.Dropout):
                mod.p = 0.0
            elif isinstance(mod, nn.MultiheadAttention):
                mod.dropout = 0.0
    xr, xn = x[:64].clone().requires_grad_(), x[:64].clone().requires_grad_()
    yr, yn = ref.train()(xr), new.train()(xn)
    torch.testing.assert_close(yn, yr, rtol=1e-5, atol=1e-5)
    yr.square().sum().backward()
    yn.square().sum().backward()
    torch.testing.assert_close(xn.grad, xr.grad, rtol=1e-4, atol=1e-4)
    for pr, pn in zip(ref.parameters(), new.parameters(), strict=True):
        torch.testing.assert_close(pn.grad, pr.grad, rtol=1e-4, atol=1e-4)
    # the fast path ran: the stock layer's fused attention is not called in training
    calls = []
    hook = new.layers[0].self_attn.register_forward_hook(lambda *a: calls.append(1))
    new.train()(xn)
    hook.remove()
    assert not calls


def test_training_forward_with_dropout_matches_stock_in_expectation():
    ref, new = _pair(p=0.2, depth=1)
    x = torch.randn(16, 6, 16)
    torch.manual_seed(1)
    mean_new = torch.stack([new.train()(x) for _ in range(400)]).mean(0)
    mean_ref = torch.stack([ref.train()(x) for _ in range(400)]).mean(0)
    assert (mean_new - mean_ref).abs().mean() < 0.03  # same distribution of outputs, different draws
    assert (mean_new - new.eval()(x)).abs().mean() > 0.01  # dropout was active


@pytest.mark.parametrize("p", [0.01, 0.2])  # the sparse and the mask branch of ``dropout``
def test_attention_weight_dropout_is_applied_to_the_softmax_weights(p):
    """In training the attention weights are dropped at rate p and rescaled, as in nn.MultiheadAttention;
    rebuilt here from the same draws (the attention draws nothing else)."""
    layer = TransformerEncoderLayer(8, 2, 16, p).train()
    x = torch.randn(256, 7, 8)
    torch.manual_seed(3)
    out = layer.attention(x)
    a = layer.self_attn
    q, k, v = nn.functional.linear(x, a.in_proj_weight, a.in_proj_bias).view(256, 7, 3, 2, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)
    torch.manual_seed(3)
    kept = dropout(torch.ones_like(weights), p)  # 0 where dropped, 1 / (1 - p) elsewhere
    assert 0 < int((kept == 0).sum()) < weights.numel()
    ref = a.out_proj(((weights * kept) @ v).transpose(1, 2).reshape(256, 7, 8))
    assert torch.allclose(out, ref, atol=1e-6)
    assert not torch.allclose(out, layer.eval().attention(x), atol=1e-4)  # dropout was active in training


@pytest.mark.parametrize("p", [0.002, 0.03, 0.25])
def test_dropout_rate_scale_gradient_and_eval(p):
    torch.manual_seed(0)
    x = torch.ones(1000, 1000, requires_grad=True)
    y = dropout(x, p)
    rate = float((y == 0).float().mean())
    assert abs(rate - p) < 5 * (p * (1 - p) / 1e6) ** 0.5 + 1e-5, rate
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)  # gradient flows only through kept units
    d = Dropout(p)
    assert isinstance(d, nn.Dropout) and torch.equal(d.eval()(x), x)
    assert torch.equal(dropout(x, 0.0), x) and torch.equal(dropout(x, 1.0), torch.zeros_like(x))


def test_bernoulli_positions_are_uniform_sorted_and_in_range():
    torch.manual_seed(0)
    n, p, reps = 200, 0.02, 5000
    counts = torch.zeros(n)
    for _ in range(reps):
        pos = bernoulli_positions(n, p)
        assert len(pos) == 0 or (int(pos.min()) >= 0 and int(pos.max()) < n and bool((pos.diff() > 0).all()))
        counts[pos] += 1
    expected = reps * p
    chi2 = float(((counts - expected) ** 2 / (expected * (1 - p))).sum())
    assert chi2 < n + 5 * (2 * n) ** 0.5, chi2  # each position selected with probability p, independently of the rest
    # a large n at a large rate keeps the overall rate
    big = bernoulli_positions(10_000_000, 0.5)
    assert abs(len(big) / 1e7 - 0.5) < 0.001
