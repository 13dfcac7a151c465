"""The downstream heads, with and without T-JEPA's per-token front end."""

import pytest
import torch
from fmzoo.tabular.tasks.heads import MLPHead, PerTokenProjection, ResNetHead, make_head


def test_per_token_projection_is_one_linear_map_per_token():
    torch.manual_seed(0)
    proj = PerTokenProjection(n_tokens=3, dim=4)
    x = torch.randn(5, 3 * 4)
    out = proj(x)
    assert out.shape == (5, 3)
    tokens = x.view(5, 3, 4)
    for t in range(3):
        expected = tokens[:, t] @ proj.weight[t] + proj.bias[t]
        torch.testing.assert_close(out[:, t], expected)


@pytest.mark.parametrize("cls", [MLPHead, ResNetHead])
def test_heads_take_token_latents_or_raw_features(cls):
    torch.manual_seed(0)
    on_tokens = cls(15 * 16, 2, n_tokens=15).eval()
    assert isinstance(on_tokens[0], PerTokenProjection)
    assert on_tokens(torch.randn(4, 15 * 16)).shape == (4, 2)
    raw = cls(108, 2).eval()
    assert not isinstance(raw[0], PerTokenProjection)
    assert raw(torch.randn(4, 108)).shape == (4, 2)


def test_width_not_a_multiple_of_tokens_is_an_error():
    with pytest.raises(ValueError, match="not a multiple of n_tokens=15"):
        make_head("mlp", 100, 2, n_tokens=15)
    with pytest.raises(ValueError, match="head must be one of"):
        make_head("transformer", 100, 2)


def test_dropout_drops_at_rate_p_keeps_the_mean_and_is_identity_in_eval():
    from fmzoo.tabular.tasks.heads import Dropout

    torch.manual_seed(0)
    d, x = Dropout(0.25), torch.ones(400, 500)
    y = d(x)
    assert abs(float((y == 0).float().mean()) - 0.25) < 0.01
    assert abs(float(y.mean()) - 1.0) < 0.01 and torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.75))
    x.requires_grad_(True)
    y = d(x)
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)  # gradient flows only through kept units
    assert torch.equal(d.eval()(x), x)
