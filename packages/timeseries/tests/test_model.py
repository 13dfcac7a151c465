import pytest
import torch
from fmzoo.core import CheckpointError, InputSpecError
from fmzoo.timeseries.models.gpht import GPHT, GPHTStage


def test_forward_shapes_and_channel_independence(tiny_gpht):
    m = tiny_gpht()
    x = torch.randn(3, 96, 4)
    y = m(x)
    assert y.shape == x.shape
    # channel independence: a multivariate batch equals each channel forecast on its own
    for c in range(4):
        torch.testing.assert_close(y[:, :, c], m(x[:, :, c].contiguous()), rtol=1e-5, atol=1e-5)


def test_instance_norm_makes_forecasts_affine_equivariant(tiny_gpht):
    m = tiny_gpht()
    x = torch.randn(5, 96)
    torch.testing.assert_close(m(3.0 * x + 7.0), 3.0 * m(x) + 7.0, rtol=1e-4, atol=1e-3)


def test_stage_is_causal_over_tokens():
    torch.manual_seed(0)
    stage = GPHTStage(rate=4, token_len=24, d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout=0.0,
                      activation="gelu").eval()
    x = torch.randn(2, 96)
    x2 = x.clone()
    x2[:, 48:] += torch.randn(2, 48) * 5  # change tokens 2 and 3 only
    y, y2 = stage(x), stage(x2)
    torch.testing.assert_close(y[:, :48], y2[:, :48])  # forecasts made from tokens 0,1 do not see the future
    assert not torch.allclose(y[:, 48:], y2[:, 48:])


def test_hierarchical_residual_stages_are_summed(tiny_gpht):
    m = tiny_gpht()
    x = torch.randn(2, 96)
    mean = x.mean(1, keepdim=True)
    std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + m.eps)
    z = (x - mean) / std
    o1 = m.stages[0](z)
    z2 = z - torch.cat([torch.zeros(2, 24), o1[:, :-24]], 1)
    o2 = m.stages[1](z2)
    z3 = z2 - torch.cat([torch.zeros(2, 24), o2[:, :-24]], 1)
    o3 = m.stages[2](z3)
    torch.testing.assert_close(m(x), (o1 + o2 + o3) * std + mean, rtol=1e-5, atol=1e-5)
    # coarse-to-fine: stage 0 pools by 4 -> 6 values per token, stage 2 sees the full resolution
    assert [s.patch for s in m.stages] == [6, 12, 24]


@pytest.mark.parametrize("horizon", [1, 24, 50, 96, 200])
def test_any_horizon_autoregressive(horizon, tiny_gpht):
    m = tiny_gpht()
    x = torch.randn(2, 120, 3)
    out = m.generate(x, horizon)
    assert out.shape == (2, horizon, 3)
    # first token = next-token output of the forward pass on the last context_len steps
    torch.testing.assert_close(out[:, :min(horizon, 24)], m(x[:, -96:])[:, -24:][:, :min(horizon, 24)])
    # autoregressive consistency: a longer forecast extends a shorter one
    if horizon > 24:
        torch.testing.assert_close(out[:, :24], m.generate(x, 24))


def test_input_errors(tiny_gpht):
    m = tiny_gpht()
    with pytest.raises(InputSpecError, match="multiple of token_len"):
        m(torch.randn(2, 100))
    with pytest.raises(InputSpecError, match="NaN"):
        m(torch.full((2, 96), float("nan")))
    with pytest.raises(InputSpecError, match="context_len"):
        m.generate(torch.randn(2, 48), 24)
    with pytest.raises(InputSpecError, match="horizon"):
        m.generate(torch.randn(2, 96), 0)
    with pytest.raises(InputSpecError):
        m.forecast([1, 2, 3], 5)
    with pytest.raises(InputSpecError, match="NaN"):
        m.forecast(torch.full((1, 96), float("nan")), 5)


def test_training_reduces_next_token_loss_on_real_data(etth1, tiny_gpht):
    from fmzoo.timeseries.data.ltsf import MixtureWindows

    ds = MixtureWindows(["ETTh1"], context_len=96, token_len=24)
    g = torch.Generator().manual_seed(0)
    batch = torch.stack([ds[int(i)] for i in torch.randint(len(ds), (128,), generator=g)])
    m = tiny_gpht().train()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(m.eval().next_token_loss(batch))
    m.train()
    for _ in range(40):
        loss = m.next_token_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(m.eval().next_token_loss(batch))
    assert after < 0.8 * before


def test_save_load_roundtrip_and_corruption(tmp_path, tiny_gpht):
    m = tiny_gpht()
    m.save_pretrained(tmp_path / "ck")
    m2 = GPHT.from_pretrained(tmp_path / "ck")
    x = torch.randn(2, 96)
    torch.testing.assert_close(m.generate(x, 30), m2.generate(x, 30))
    assert m2.input_spec["context_len"] == 96 and m2.pooling == [4, 2, 1]
    w = tmp_path / "ck" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        GPHT.from_pretrained(tmp_path / "ck")


def test_token_states_and_differentiable_rollout(tiny_gpht):
    m = tiny_gpht()
    x = torch.randn(3, 96)
    feats = m.token_states(x)
    assert feats.shape == (3, 3 * 16)  # last-token state of each of the 3 stages
    # coarse to fine; the last stage's state is what its head maps to the forecast of the next token
    states = []
    torch.testing.assert_close(m._hierarchy(x, states), m(x))
    torch.testing.assert_close(feats, torch.cat(states, dim=-1))
    mean, std = x.mean(1, keepdim=True), torch.sqrt(x.var(1, keepdim=True, unbiased=False) + m.eps)
    torch.testing.assert_close(sum(s.head(h) for s, h in zip(m.stages, states, strict=True)) * std + mean, m(x)[:, -24:])
    with pytest.raises(InputSpecError, match="univariate"):
        m.token_states(torch.randn(2, 96, 2))
    out = m.rollout(x, 30)
    torch.testing.assert_close(out, m.generate(x, 30))
    out.pow(2).mean().backward()
    assert m.stages[0].embed.weight.grad is not None and m.stages[0].embed.weight.grad.abs().sum() > 0


def _etth1_gpht(**kw):
    from fmzoo.timeseries.models.gpht import GPHT

    cfg = dict(context_len=336, token_len=48, pooling=[8, 4, 2, 1], d_model=32, n_heads=4, d_ff=64, n_layers=2,
               dropout=0.1)
    cfg.update(kw)
    torch.manual_seed(0)
    return GPHT(**cfg).eval()


def test_inference_path_is_the_uncached_hierarchy_on_etth1(etth1, monkeypatch):
    """generate's inference path (next token only: the last stage's last layer on one row per series; series in
    blocks; oneDNN-fused linears) gives the forecasts of the full hierarchy re-run at every step (the path with
    gradients, which is the official computation) on real ETTh1 test windows, within float rounding."""
    from fmzoo.timeseries.data.ltsf import eval_windows
    from fmzoo.timeseries.models import gpht

    m = _etth1_gpht()
    ctx, _ = eval_windows(etth1, "test", 192, max_windows=6)  # [6, 336, 7] (normalized as the official loader)
    flat = ctx.permute(0, 2, 1).reshape(-1, 336)
    with torch.no_grad():
        nxt = m._next_token(flat)
        full = m._hierarchy(flat)
        fast = m.generate(ctx, 192)
        monkeypatch.setattr(gpht, "_CHUNK_ROWS", 30)  # 4 series (7 tokens each) per block: 11 blocks
        blocks = m.generate(ctx, 192)
    torch.testing.assert_close(nxt, full[:, -48:], rtol=1e-5, atol=1e-5)
    slow = m.rollout(ctx, 192).detach()  # gradients on: every step runs the whole hierarchy on every token
    assert slow.shape == fast.shape == (6, 192, 7)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blocks, fast, rtol=1e-6, atol=1e-6)
    assert fast.std() > 0.1  # not a constant forecast


def test_inference_path_under_bf16_autocast_and_in_training_mode(etth1):
    """Under CPU bf16 autocast the inference path uses F.linear (autocast applies): close to fp32 at bf16 precision;
    in training mode with dropout, generate draws dropout (the training path), so two seeds differ."""
    from fmzoo.timeseries.data.ltsf import eval_windows

    m = _etth1_gpht()
    ctx, _ = eval_windows(etth1, "test", 96, max_windows=2)
    with torch.no_grad():
        ref = m.generate(ctx, 96)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m.generate(ctx, 96)
        assert low.dtype == torch.float32
        assert 0 < float((low - ref).abs().max()) < 0.2 * float(ref.abs().max())
        m.train()
        torch.manual_seed(1)
        a = m.generate(ctx, 48)
        torch.manual_seed(2)
        assert not torch.allclose(a, m.generate(ctx, 48))


def test_flop_counter_sees_the_inference_path(etth1):
    """torch.utils.flop_counter counts the oneDNN linears of the inference path (benchmarks report FLOP bounds
    from it): the next-token-only path counts a little less than the full hierarchy re-run at every step (the last
    stage's last layer on one row per series), not a fraction of it."""
    from fmzoo.timeseries.data.ltsf import eval_windows
    from torch.utils.flop_counter import FlopCounterMode

    m = _etth1_gpht()
    ctx, _ = eval_windows(etth1, "test", 96, max_windows=2)
    with torch.no_grad(), FlopCounterMode(display=False) as fast:
        m.generate(ctx, 96)
    with FlopCounterMode(display=False) as full:
        m.rollout(ctx, 96)  # gradients on: aten matmuls over every token of every stage
    ratio = fast.get_total_flops() / full.get_total_flops()
    # the pruned share: 6 of 7 rows of the last stage's last layer (q, o, feed-forward) in 1 of 8 layers
    assert 0.85 < ratio < 0.99, ratio
