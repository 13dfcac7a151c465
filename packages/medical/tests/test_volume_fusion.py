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


class _PythonRandom:
    """numpy-Generator-like calls answered by Python's ``random`` (PyMIC's generator), call for call."""

    def __init__(self, rnd):
        self.r = rnd

    def random(self):
        return self.r.random()

    def integers(self, lo, hi):  # numpy [lo, hi) -> random.randint [lo, hi - 1]
        return self.r.randint(lo, hi - 1)

    def uniform(self, a, b):
        return self.r.uniform(a, b)

    def shuffle(self, x):
        self.r.shuffle(x)


def _pymic_with_stubs(monkeypatch):
    """PyMIC 0.6.2 (installed --no-deps as a test reference): its package __init__s import SimpleITK, h5py, imops and
    scikit-image, which Volume Fusion's path never uses; empty stand-ins for those imports only."""
    import importlib
    import sys
    import types

    for name in ("SimpleITK", "h5py", "imops", "skimage", "skimage.exposure", "skimage.transform"):
        try:
            importlib.import_module(name)
        except ImportError:
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["imops"].crop_to_box = getattr(sys.modules["imops"], "crop_to_box", None)
    for sub in ("exposure", "transform"):
        setattr(sys.modules["skimage"], sub, sys.modules[f"skimage.{sub}"])
    from pymic import TaskType
    from pymic.loss.loss_dict_seg import SegLossDict
    from pymic.loss.seg.combined import CombinedLoss
    from pymic.transform.crop4vf import Crop4VolumeFusion, VolumeFusion

    return TaskType, SegLossDict, CombinedLoss, Crop4VolumeFusion, VolumeFusion


def test_fusion_crop_and_loss_equal_pymic_with_the_same_draws(monkeypatch):
    """Faithfulness to the official VolF (PyMIC crop4vf.py): fed the same random stream, fmzoo's volume_fusion gives
    PyMIC VolumeFusion's fused image and labels, crop_for_fusion (intensity mode: no rescale / flip) gives
    Crop4VolumeFusion's two views, and dice_ce_loss equals the config's CombinedLoss([Dice, CE], [0.5, 0.5])."""
    import random

    TaskType, SegLossDict, CombinedLoss, Crop4VolumeFusion, VolumeFusion = _pymic_with_stubs(monkeypatch)
    params = {"task": TaskType.SEGMENTATION, "volumefusion_cls_num": 5, "volumefusion_foreground_ratio": 0.7,
              "volumefusion_patchsize_min": [4, 4, 4], "volumefusion_patchsize_max": [16, 16, 16],
              "crop4volumefusion_output_size": [16, 24, 16], "crop4volumefusion_augentation_mode": 1}
    g = np.random.default_rng(0)
    for seed in range(4):
        fg, bg = g.random((2, 32, 64, 32), dtype=np.float32)
        random.seed(seed)
        ref = VolumeFusion(params)({"image": (fg[None], bg[None])})
        random.seed(seed)
        x, y = volume_fusion(fg, bg, _PythonRandom(random), 5, 0.7, (4, 4, 4), (16, 16, 16))
        assert np.array_equal(ref["label"][0], y)
        assert np.allclose(ref["image"][0], x, atol=1e-6)
        vol = g.random((20, 40, 30), dtype=np.float32)
        random.seed(seed)
        p1, p2 = Crop4VolumeFusion(params)({"image": vol[None].copy()})["image"]
        random.seed(seed)
        q1, q2 = crop_for_fusion(vol, (16, 24, 16), _PythonRandom(random), aug_mode=1)
        assert np.allclose(p1[0], q1, atol=1e-5) and np.allclose(p2[0], q2, atol=1e-5)
    logits = torch.randn(2, 5, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 5, (2, 8, 8, 8), generator=torch.Generator().manual_seed(1))
    onehot = torch.nn.functional.one_hot(y, 5).movedim(-1, 1).float()
    ref = CombinedLoss({"loss_type": ["DiceLoss", "CrossEntropyLoss"], "loss_weight": [0.5, 0.5]}, SegLossDict)
    assert float(dice_ce_loss(logits, y)["loss"]) == pytest.approx(float(ref({"prediction": logits,
                                                                                "ground_truth": onehot})), rel=1e-6)


def test_task_trains_channels_last_with_the_same_loss_and_restores_the_layout():
    from fmzoo.medical.methods.volume_fusion import make_task
    from fmzoo.medical.models.swin import VolumeFusionNet

    torch.manual_seed(0)
    task = make_task(VolumeFusionNet(feature_size=12, window_size=4))
    x = torch.rand(1, 1, 32, 64, 32)  # the smallest SwinUNETR input with 2 voxels at its bottleneck
    y = torch.randint(0, 5, (1, 32, 64, 32))
    before = task.ssl_loss((x, y))
    with torch.no_grad():
        logits = task.model(x)
    assert float(before["voxel_acc"]) == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    task.on_fit_start()
    convs = [p for p in task.model.parameters() if p.dim() == 5]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in convs)
    during = task.ssl_loss((x, y))
    assert float(during["loss"]) == pytest.approx(float(before["loss"]), rel=1e-5)
    task.on_fit_end()
    assert all(p.is_contiguous() for p in task.model.parameters())  # safetensors stores contiguous tensors only
