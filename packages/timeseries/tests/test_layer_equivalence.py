"""The fast encoder layer computes the official formulas: a plain reference written as the official code computes
(einsum scores, triangular -inf mask, softmax(scale * scores), dropout on the attention weights, Conv1d(k=1)
feed-forward with its dropouts in the channels-first layout) gives the same output and gradients, with dropout on
and the same seed (same masks), for contexts below and above the 16-column softmax padding."""
import math

import pytest
import torch
import torch.nn.functional as F
from fmzoo.timeseries.models.gpht import CausalEncoderLayer


def reference_layer(layer: CausalEncoderLayer, x: torch.Tensor) -> torch.Tensor:
    n, t, d = x.shape
    h = layer.n_heads
    drop = layer.dropout
    q, k, v = (getattr(layer, name)(x).view(n, t, h, d // h) for name in ("q", "k", "v"))
    scores = torch.einsum("blhe,bshe->bhls", q, k)
    scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1), -math.inf)
    a = drop(torch.softmax(scores / math.sqrt(d // h), dim=-1))
    out = torch.einsum("bhls,bshd->blhd", a, v).reshape(n, t, d)
    x = layer.norm1(x + drop(layer.o(out)))
    y = drop(layer.act(F.conv1d(x.transpose(1, 2), layer.ff1.weight[:, :, None], layer.ff1.bias)))  # [n, d_ff, t]
    y = drop(F.conv1d(y, layer.ff2.weight[:, :, None], layer.ff2.bias).transpose(1, 2))
    return layer.norm2(x + y)


@pytest.mark.parametrize("tokens", [7, 20])
@pytest.mark.parametrize("train", [False, True])
def test_layer_matches_the_official_formulas(tokens, train):
    torch.manual_seed(0)
    layer = CausalEncoderLayer(32, 4, 64, dropout=0.1).train(train)
    x = torch.randn(6, tokens, 32, requires_grad=True)
    torch.manual_seed(7)
    y = layer(x)
    gy = torch.autograd.grad(y.square().sum(), [x, *layer.parameters()])
    torch.manual_seed(7)
    r = reference_layer(layer, x)
    gr = torch.autograd.grad(r.square().sum(), [x, *layer.parameters()])
    torch.testing.assert_close(y, r, rtol=1e-5, atol=1e-5)
    for a, b in zip(gy, gr, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    if train:  # dropout really acts: another seed, another output
        torch.manual_seed(8)
        assert not torch.allclose(layer(x), y)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("tokens", [1, 7, 20])
def test_inference_layer_is_the_same_layer(tokens, activation):
    """Without gradients (eval) the layer runs ``infer`` (fused GEMMs, unpadded softmax): the same output as the
    official-formula path, and with ``last_only`` the same last row."""
    torch.manual_seed(0)
    layer = CausalEncoderLayer(32, 4, 64, dropout=0.1, activation=activation).eval()
    x = torch.randn(5, tokens, 32)
    ref = reference_layer(layer, x)  # grad mode on: the training-path formulas (dropout off in eval)
    with torch.no_grad():
        assert layer.fast_inference()
        y = layer(x)
        last = layer.infer(x, last_only=True)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    assert last.shape == (5, 1, 32)
    torch.testing.assert_close(last, ref[:, -1:], rtol=1e-5, atol=1e-5)
    layer.train()  # training mode with dropout: the official-mask path even without gradients
    with torch.no_grad():
        assert not layer.fast_inference()
        torch.manual_seed(3)
        a = layer(x)
        torch.manual_seed(3)
        b = reference_layer(layer, x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
