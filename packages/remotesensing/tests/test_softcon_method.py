import pytest
import torch
import torch.nn.functional as F
from fmzoo.core import InputSpecError
from fmzoo.remotesensing.methods.softcon import (
    SoftConTask,
    label_similarity,
    pixel_mask_from_keep,
    random_views,
    siamese_keep_indices,
    soft_contrastive_loss,
)
from fmzoo.remotesensing.models.backbones import SoftConResNet, SoftConViT
from fmzoo.remotesensing.models.widen import widen_input_weight
from fmzoo.remotesensing.spec import S2_L1C_ORDER


def test_identity_targets_equal_symmetric_infonce():
    torch.manual_seed(0)
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.2
    ref = 0.5 * (F.cross_entropy(logits, torch.arange(16)) + F.cross_entropy(logits.T, torch.arange(16)))
    assert torch.allclose(soft_contrastive_loss(z1, z2, None, 0.2), ref, atol=1e-6)
    assert torch.allclose(soft_contrastive_loss(z1, z2, torch.eye(16), 0.2), ref, atol=1e-6)


def test_label_similarity_jaccard_and_cosine():
    y = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.float32)
    s = label_similarity(y, "jaccard")
    assert s[0, 1] == pytest.approx(0.5) and s[0, 2] == 0 and s[1, 0] == pytest.approx(0.5)
    assert torch.all(torch.diagonal(s) == 1) and s[3, 0] == 0  # empty label vector: only itself
    c = label_similarity(y, "cosine")
    assert c[0, 1] == pytest.approx(2 ** -0.5)


def test_soft_targets_reward_label_consistent_embeddings():
    # scenes 0 and 1 share their labels; an embedding that groups them should get a lower loss than
    # one that separates every scene when the targets are soft, and the reverse under InfoNCE.
    y = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.float32)
    t = label_similarity(y)
    grouped = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    spread = torch.eye(4)
    assert soft_contrastive_loss(grouped, grouped, t, 0.1) < soft_contrastive_loss(spread, spread, t, 0.1)
    assert soft_contrastive_loss(grouped, grouped, None, 0.1) > soft_contrastive_loss(spread, spread, None, 0.1)
    for form in ("softmax", "bce"):
        assert torch.isfinite(soft_contrastive_loss(torch.randn(4, 3), torch.randn(4, 3), t, 0.1, form))


def test_siamese_mask_is_shared_and_has_the_ratio():
    g = torch.Generator().manual_seed(0)
    keep = siamese_keep_indices(4, 36, 0.25, g)
    assert keep.shape == (4, 27)
    assert all(len(set(k.tolist())) == 27 for k in keep)
    m = pixel_mask_from_keep(keep, 6, 16)
    assert m.shape == (4, 1, 96, 96)
    assert torch.allclose(m.mean((1, 2, 3)), torch.full((4,), 0.75))


def test_views_shape_and_randomness():
    x = torch.randn(3, 13, 48, 48)
    g = torch.Generator().manual_seed(0)
    v1, v2 = random_views(x, 32, generator=g), random_views(x, 32, generator=g)
    assert v1.shape == (3, 13, 32, 32) and not torch.allclose(v1, v2)


def test_widening_schemes():
    w = torch.randn(8, 3, 7, 7)
    rgb = ["B04", "B03", "B02"]
    wide = widen_input_weight(w, rgb, S2_L1C_ORDER, "copy_random")
    for j, b in enumerate(rgb):
        assert torch.equal(wide[:, S2_L1C_ORDER.index(b)], w[:, j])
    rep = widen_input_weight(w, rgb, S2_L1C_ORDER, "repeat")
    assert torch.allclose(rep[:, 0], w[:, 0] * 3 / 13) and torch.allclose(rep[:, 3], w[:, 0] * 3 / 13)
    near = widen_input_weight(w, rgb, S2_L1C_ORDER, "nearest")
    assert torch.allclose(near[:, S2_L1C_ORDER.index("B01")], w[:, 2] * 3 / 13)  # B01 nearest to blue
    assert torch.allclose(near[:, S2_L1C_ORDER.index("B12")], w[:, 0] * 3 / 13)  # SWIR nearest to red
    with pytest.raises(ValueError):
        widen_input_weight(w, rgb, S2_L1C_ORDER, "zeros")


def test_vit_token_masking_and_widening():
    torch.manual_seed(0)
    vit = SoftConViT(patch_size=8, embed_dim=32, depth=1, num_heads=2, input_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    full = vit(x)
    keep_all = torch.arange(16).expand(2, 16)
    assert torch.allclose(vit(x, keep=keep_all), full, atol=1e-5)
    assert not torch.allclose(vit(x, keep=keep_all[:, :8]), full, atol=1e-3)
    wide = vit.widen(S2_L1C_ORDER).eval()
    x13 = torch.zeros(2, 13, 32, 32)
    x13[:, [3, 2, 1]] = x
    assert torch.allclose(wide(x13), full, atol=1e-5)
    with pytest.raises(InputSpecError, match="expects 13 bands"):
        wide(x)


def test_task_step_runs_for_resnet_and_vit():
    y = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]], dtype=torch.float32)
    for model in (SoftConResNet(S2_L1C_ORDER, channels=[8, 8, 16, 16], stem_width=8, input_size=32),
                  SoftConViT(S2_L1C_ORDER, patch_size=8, embed_dim=32, depth=1, num_heads=2, input_size=32)):
        task = SoftConTask(model, view_size=32, mask_patch=8, proj_hidden=16, proj_dim=8)
        out = task.ssl_loss((torch.randn(4, 13, 24, 24), y))
        out["loss"].backward()
        assert torch.isfinite(out["loss"]) and model.backbone is not None
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
