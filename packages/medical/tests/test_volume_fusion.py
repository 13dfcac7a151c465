import numpy as np
import pytest
import torch
from fmzoo.medical.methods.volume_fusion import (
    VolumeFusionDataset,
    crop_for_fusion,
    dice_ce_loss,
    volume_fusion,
)


def test_fusion_is_a_discrete_blend():
    rng = np.random.default_rng(0)
    fg = rng.random((32, 64, 32)).astype(np.float32)
    bg = rng.random((32, 64, 32)).astype(np.float32)
    x, y = volume_fusion(fg, bg, rng, num_classes=5, fg_ratio=0.7, size_min=(4, 4, 4), size_max=(16, 16, 16))
    assert y.min() >= 0 and y.max() <= 4
    alpha = y / 4.0
    assert np.allclose(x, alpha * fg + (1 - alpha) * bg, atol=1e-6)
    # class 4 voxels are the foreground sub-volume, class 0 the background one
    assert np.allclose(x[y == 4], fg[y == 4]) and np.allclose(x[y == 0], bg[y == 0])


def test_fusion_block_structure_and_ratio():
    rng = np.random.default_rng(3)
    ratios = []
    for _ in range(30):
        fg, bg = np.ones((32, 64, 32), np.float32), np.zeros((32, 64, 32), np.float32)
        x, y = volume_fusion(fg, bg, rng, 5, 0.7, (4, 4, 4), (16, 16, 16))
        assert set(np.unique(y)) <= {0, 1, 2, 3, 4}
        ratios.append((y > 0).mean())
        # each class region is a union of equal-size boxes: the fused value equals k/4 exactly
        assert np.allclose(x, y / 4.0)
    # 70 % of the tiled blocks are foreground; the untiled border (offsets) lowers the voxel fraction a bit
    assert 0.45 < np.mean(ratios) <= 0.7 + 1e-6


def test_crop_for_fusion_shapes_and_range(hippo_root):
    from fmzoo.medical.data.hippocampus import load_case

    x, _ = load_case("hippocampus_001")
    rng = np.random.default_rng(0)
    a, b = crop_for_fusion(x, (32, 64, 32), rng)
    assert a.shape == b.shape == (32, 64, 32)
    assert np.isfinite(a).all() and -0.01 <= a.min() and a.max() <= 1.01
    a0, b0 = crop_for_fusion(x, (32, 64, 32), np.random.default_rng(1), aug_mode=0)
    assert not np.allclose(a0, b0)  # two different crops of one volume


def test_dataset_item(hippo_root):
    from fmzoo.medical.data.hippocampus import load_case

    x, _ = load_case("hippocampus_001")
    ds = VolumeFusionDataset([x], (32, 64, 32), size_min=(4, 4, 4), size_max=(16, 16, 16))
    img, lab = ds[0]
    assert img.shape == (1, 32, 64, 32) and lab.shape == (32, 64, 32) and lab.dtype == torch.int64


def test_dice_ce_loss_behaviour():
    y = torch.randint(0, 5, (1, 8, 8, 8))
    perfect = torch.nn.functional.one_hot(y, 5).movedim(-1, 1).float() * 20
    out = dice_ce_loss(perfect, y)
    assert float(out["loss"]) < 1e-3
    bad = dice_ce_loss(torch.zeros(1, 5, 8, 8, 8), y)
    assert float(bad["ce"]) == pytest.approx(np.log(5), rel=1e-4)


def test_forward_does_not_depend_on_uninitialised_memory(monkeypatch):
    """Regression: the size check once ran the NaN check on ``torch.empty(...)`` (uninitialised memory), so a
    finite batch could be rejected at random ("input contains NaN or Inf") mid-pretraining."""
    from fmzoo.medical.models.swin import VolumeFusionNet

    net = VolumeFusionNet().eval()
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, **k: real_empty(*a, **k).fill_(float("nan")))
    with torch.no_grad():
        out = net(torch.rand(1, 1, 32, 64, 32))
    assert out.shape == (1, 5, 32, 64, 32) and torch.isfinite(out).all()
