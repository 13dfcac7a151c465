"""T-JEPA step speed-ups that keep the numbers: the softmax padded to 16 columns, the one-pass sparse dropout (and
ReLU + dropout), the chunked feed-forward that recomputes its hidden activations in backward, the multi-tensor EMA
update; the official mask-size draw and gradient clamp of the context encoder."""

import pytest
import torch
from fmzoo.core.pretrain import run_pretraining
from fmzoo.tabular.methods.tjepa import TJEPATask
from fmzoo.tabular.models import layers
from fmzoo.tabular.models.layers import (
    TransformerEncoderLayer,
    bernoulli_positions,
    dropout,
    feed_forward,
    relu_dropout,
    softmax_lastdim,
)
from fmzoo.tabular.models.tjepa import TJEPA, FeatureMaskSampler

CARDS = [3, 5, 2]


def _old_dropout(x, p):
    """The previous sparse dropout: out-of-place index_fill on the scaled tensor (same draws)."""
    pos = bernoulli_positions(x.numel(), p, x.device)
    return (x * (1.0 / (1.0 - p))).reshape(-1).index_fill(0, pos, 0.0).reshape(x.shape)


@pytest.mark.parametrize("width", [1, 2, 5, 8, 14, 15, 16, 17, 31])
def test_softmax_lastdim_equals_torch_softmax_values_and_gradient(width):
    torch.manual_seed(0)
    s = (torch.randn(64, 4, 9, width) * 5).requires_grad_()
    s2 = s.detach().clone().requires_grad_()
    a, b = torch.softmax(s, -1), softmax_lastdim(s2)
    assert b.shape == a.shape
    assert (a - b).abs().max() < 1e-6
    g = torch.randn_like(a)
    a.backward(g)
    b.backward(g)
    assert (s.grad - s2.grad).abs().max() < 1e-6
    assert torch.isfinite(s2.grad).all()


@pytest.mark.parametrize("fn", ["dropout", "relu_dropout"])
def test_one_pass_sparse_dropout_is_bit_identical_to_the_out_of_place_one(fn):
    """Same seed, same draws: the same output and input gradient, bit for bit, also for a strided input (the
    positions count in row-major order)."""
    p = 0.02
    base = torch.randn(32, 24, 40)
    for x0 in (base, base.transpose(1, 2)):
        x_old, x_new = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        torch.manual_seed(5)
        y_old = _old_dropout(torch.relu(x_old) if fn == "relu_dropout" else x_old, p)
        torch.manual_seed(5)
        y_new = relu_dropout(x_new, p) if fn == "relu_dropout" else dropout(x_new, p)
        assert torch.equal(y_old, y_new)
        assert 0 < int((y_new == 0).sum())
        g = torch.randn(y_old.shape)
        y_old.backward(g)
        y_new.backward(g)
        assert torch.equal(x_old.grad, x_new.grad)


def test_training_layer_output_and_gradients_match_the_unpadded_computation(monkeypatch):
    """A T-JEPA layer in training (dropout active, attention weights included): the padded softmax and one-pass
    dropouts give the unpadded, out-of-place computation's loss and gradients to ~1e-7 under the same seed."""

    def run(new: bool):
        torch.manual_seed(0)
        layer = TransformerEncoderLayer(16, 4, 64, 0.004).train()
        x = torch.randn(512, 11, 16, requires_grad=True)
        if not new:
            monkeypatch.setattr(layers, "softmax_lastdim", lambda s: torch.softmax(s, dim=-1))
            monkeypatch.setattr(layers, "dropout", lambda t, p, training=True: _old_dropout(t, p) if training and p else t)
            monkeypatch.setattr(layers, "relu_dropout", lambda t, p, training=True: layers.dropout(torch.relu(t), p, training))
        torch.manual_seed(1)
        y = layer(x)
        y.square().mean().backward()
        monkeypatch.undo()
        return y.detach(), [x.grad, *(p.grad for p in layer.parameters())]

    (y_old, g_old), (y_new, g_new) = run(False), run(True)
    assert (y_old - y_new).abs().max() < 1e-6
    for a, b in zip(g_old, g_new, strict=True):
        assert (a - b).abs().max() < 1e-6


def _saved_numels(fn):
    """Run ``fn`` recording the number of elements of every tensor autograd saves for backward."""
    sizes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        out = fn()
    return out, sizes


@pytest.mark.parametrize("p", [0.0, 0.02])
def test_chunked_feed_forward_equals_the_unchunked_one_and_stores_no_hidden(monkeypatch, p):
    """Many small chunks (dropped positions in most of them): the stock linear2(dropout(relu(linear1(x)))) output
    and every gradient to float32 rounding, the same draws; no [rows, ff] tensor kept for backward."""
    torch.manual_seed(0)
    lin1, lin2 = torch.nn.Linear(16, 64), torch.nn.Linear(64, 16)
    x0, g = torch.randn(50, 7, 16), torch.randn(50, 7, 16)

    def run(chunked):
        monkeypatch.setattr(layers, "FF_CHUNK_ABOVE", 0 if chunked else 1 << 40)
        monkeypatch.setattr(layers, "FF_CHUNK_ELEMENTS", 64 * 23)  # 23-row chunks: 16 of them, the last one partial
        x = x0.clone().requires_grad_()
        for t in (*lin1.parameters(), *lin2.parameters()):
            t.grad = None
        torch.manual_seed(3)
        y, saved = _saved_numels(lambda: feed_forward(x, lin1, lin2, p))
        y.backward(g)
        return y.detach(), [x.grad, *(t.grad for t in (*lin1.parameters(), *lin2.parameters()))], saved

    (y0, g0, s0), (y1, g1, s1) = run(False), run(True)
    assert (y0 - y1).abs().max() < 1e-6
    for a, b in zip(g0, g1, strict=True):
        assert (a - b).abs().max() < 1e-5 * max(1.0, float(a.abs().max()))
    assert 350 * 64 in s0 and max(s1) < 350 * 64
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast takes the unchunked path (per-operation dtypes)
        assert feed_forward(x0, lin1, lin2, p).dtype == torch.bfloat16
    if p:
        with torch.no_grad():
            assert float((y0 - lin2(torch.relu(lin1(x0)))).abs().max()) > 1e-4  # dropout was active


def test_mask_sizes_are_drawn_as_the_official_collator_draws_them():
    """lo + round((hi - lo) * u), u = torch.rand(1) of the generator, context then target (the official
    MaskCollator._sample_num_mask): the end sizes half as frequent as the inner ones, and a generator seeded with the
    official collator's seed gives its sizes."""
    s = FeatureMaskSampler(14, 0.136, 0.368, 0.156, 0.622, num_preds=4)
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(2, generator=g)
        expect = (2 + int(torch.round(3 * u[0])), 2 + int(torch.round(7 * u[1])))
        if sum(expect) <= 14:  # (no redraw needed: 5 + 9 = 14)
            keep, targets = s(4, torch.Generator().manual_seed(seed))
            assert (keep.shape[1], targets[0].shape[1]) == expect
    g = torch.Generator().manual_seed(0)
    counts = torch.bincount(torch.tensor([s(1, g)[0].shape[1] for _ in range(6000)]), minlength=6)[2:].float() / 6000
    assert torch.allclose(counts, torch.tensor([1 / 6, 1 / 3, 1 / 3, 1 / 6]), atol=0.025), counts


def _model():
    torch.manual_seed(0)
    return TJEPA(2, CARDS, dim=8, depth=1, heads=2, ff_dim=16, pred_dim=8, pred_depth=1, pred_heads=2, pred_ff_dim=16)


def test_multi_tensor_ema_update_equals_the_per_tensor_loop():
    m = _model()
    with torch.no_grad():
        for p in m.context_encoder.parameters():
            p.add_(torch.randn_like(p))
    expect = [pt.mul(0.99).add_(pc, alpha=1 - 0.99) for pt, pc in zip(m.target_encoder.parameters(),
                                                                      m.context_encoder.parameters(), strict=True)]
    m.update_target(0.99)
    for a, b in zip(expect, m.target_encoder.parameters(), strict=True):
        assert torch.equal(a, b)


def test_encoder_gradient_clamp_covers_the_context_encoder_only_and_is_removable():
    """As the official Encoder's hooks: every context-encoder gradient in [-1, 1]; the predictor's untouched."""
    m = _model()
    x_num, x_cat = torch.randn(64, 2), torch.stack([torch.randint(0, c, (64,)) for c in CARDS], 1)
    keep, targets = FeatureMaskSampler(m.n_features, num_preds=2)(64, torch.Generator().manual_seed(0))

    def grads():
        m.zero_grad()
        (m.jepa_loss(x_num, x_cat, keep, targets) * 1e6).backward()
        return ({n: p.grad.clone() for n, p in m.context_encoder.named_parameters() if p.grad is not None},
                {n: p.grad.clone() for n, p in m.predictor.named_parameters() if p.grad is not None})

    enc0, pred0 = grads()
    assert max(g.abs().max() for g in enc0.values()) > 1  # large enough to be clamped
    handles = m.clamp_encoder_gradients(1.0)
    enc1, pred1 = grads()
    for n, g in enc1.items():
        assert torch.equal(g, enc0[n].clamp(-1, 1)), n
    for n, g in pred1.items():
        assert torch.equal(g, pred0[n]), n
    for h in handles:
        h.remove()
    enc2, _ = grads()
    assert all(torch.equal(enc2[n], enc0[n]) for n in enc0)
    with pytest.raises(ValueError, match="must be > 0"):
        m.clamp_encoder_gradients(0)


def test_recipe_encoder_grad_clamp_reaches_training(monkeypatch, tmp_path, data_root):
    """optim.encoder_grad_clamp in a recipe clamps the context encoder's gradients while fitting (hooks in place
    at every optimizer step) and leaves no hooks behind; a bad value is refused naming the key."""
    seen = []
    orig = TJEPATask.on_before_optimizer_step if hasattr(TJEPATask, "on_before_optimizer_step") else None

    def spy(self, optimizer, *args):
        seen.append(max(float(p.grad.abs().max()) for p in self.model.context_encoder.parameters() if p.grad is not None))
        seen_hooks.append(len(self._clamp_hooks))
        if orig is not None:
            return orig(self, optimizer, *args)

    seen_hooks: list = []
    monkeypatch.setattr(TJEPATask, "on_before_optimizer_step", spy)
    recipe = {"name": "tiny-clamp", "method": "tjepa", "dataset": "adult", "seed": 0, "max_rows": 64,
              "model": dict(dim=8, depth=1, heads=2, ff_dim=16, pred_dim=8, pred_depth=1, pred_heads=2, pred_ff_dim=16),
              "optim": {"lr": 1e-3, "encoder_grad_clamp": 1e-4}, "trainer": {"max_epochs": 1, "batch_size": 64}}
    run_pretraining(recipe, tmp_path / "run", {"progress": False})
    assert len(seen) == 1 and all(s <= 1e-4 for s in seen) and all(n > 0 for n in seen_hooks)
    assert not any(p._backward_hooks for p in TJEPA.from_pretrained(str(tmp_path / "run" / "checkpoint")).parameters())
    from fmzoo.core import RecipeError

    for bad in (-1, "one"):
        with pytest.raises(RecipeError, match="optim.encoder_grad_clamp: expected a number > 0"):
            TJEPATask(_model(), mask={"num_preds": 2}, encoder_grad_clamp=bad)


def test_adult_recipes_are_the_official_defaults_or_name_their_deviations():
    """tjepa-adult follows the official defaults on the predictor width and gradient clamp; tjepa-adult-deep100
    (the shipped checkpoint's recipe) keeps its 64 / no clamp and names both, so it still reproduces the shipped
    checkpoint's provenance."""
    import json
    from pathlib import Path

    import fmzoo.tabular as tab
    from fmzoo.core.registry import load_recipe

    r = load_recipe("tjepa-adult")
    assert r["model"]["pred_ff_dim"] == 256 and r["optim"]["encoder_grad_clamp"] == 1.0
    assert "width 16 per feature token instead of 64" in r["card"]["limitations"]
    d = load_recipe("tjepa-adult-deep100")
    assert d["model"]["pred_ff_dim"] == 64 and "encoder_grad_clamp" not in d["optim"]
    assert "predictor feed-forward width 64 (official 256)" in d["card"]["limitations"]
    shipped = json.loads((Path(tab.__file__).parent / "checkpoints" / "tjepa-adult" / "provenance.json").read_text())
    for key in ("method", "dataset", "seed", "model", "mask", "optim", "trainer"):
        assert d[key] == shipped["recipe"][key], key
