"""models/fast_swin.py computes MONAI's function: same weights -> same outputs and gradients (float64: to 1e-10;
float32: the VoCo loss within float32's own rounding noise), for the autograd path and the no-grad (SDPA) path."""

import copy

import pytest
import torch
from fmzoo.medical.models.fast_swin import FastInstanceNorm3d, FastWindowAttention, speed_up
from fmzoo.medical.models.swin import VoCo, build_swinunetr
from monai.networks.nets.swin_unetr import WindowAttention


def _pair(dtype):
    torch.manual_seed(0)
    ref = VoCo(feature_size=12, window_size=4, proj_hidden=32, proj_out=32).to(dtype)
    with torch.no_grad():  # non-zero relative-position biases, so that a wrongly indexed bias would show
        for m in ref.modules():
            if isinstance(m, WindowAttention):
                m.relative_position_bias_table.normal_(0, 0.5)
    return ref, speed_up(copy.deepcopy(ref))


def _grads(net, x):
    net.zero_grad()
    y = net(x)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
    return y.detach(), {k: p.grad.detach().clone() for k, p in net.named_parameters()}


def test_same_function_and_gradients_float64():
    ref, fast = _pair(torch.float64)
    assert sum(type(m) is FastWindowAttention for m in fast.modules()) == 8  # 4 stages x 2 blocks
    assert any(type(m) is FastInstanceNorm3d for m in fast.modules())
    assert not any(type(m) in (FastWindowAttention, FastInstanceNorm3d) for m in ref.modules())  # ref untouched
    assert list(fast.state_dict()) == list(ref.state_dict())
    x = torch.rand(2, 1, 32, 64, 32, dtype=torch.float64)  # 16x32x16 tokens: shifted windows with a mask
    ya, ga = _grads(ref, x)
    yb, gb = _grads(fast, x)
    assert torch.allclose(ya, yb, rtol=0, atol=1e-10)
    scale = max(g.abs().max() for g in ga.values())
    for k in ga:
        assert (ga[k] - gb[k]).abs().max() <= 1e-9 * scale, k
    # the relative-position bias gets a real gradient through the fused path (shifted blocks: bias + mask)
    key = "swinViT.layers1.0.blocks.1.attn.relative_position_bias_table"
    assert gb[key].abs().max() > 1e-6 * scale
    with torch.no_grad():  # no autograd: the SDPA path
        assert torch.allclose(ref(x), fast(x), rtol=0, atol=1e-10)
    one = torch.rand(1, 12, 1, 1, 1, dtype=torch.float64)  # the parent's refusal of one voxel per channel is kept
    for norm in (torch.nn.InstanceNorm3d(12), speed_up(torch.nn.Sequential(torch.nn.InstanceNorm3d(12)))[0]):
        with pytest.raises(ValueError, match="more than 1 spatial element"):
            norm(one)


def test_voco_loss_float32_and_monai_class_untouched(hippo_root):
    from fmzoo.medical.data.hippocampus import load_case
    from fmzoo.medical.methods.voco import VoCoDataset, VoCoGeometry, make_task

    geom = VoCoGeometry((32, 64, 32), (2, 1, 1), (32, 64, 32), 1)  # 2 bases + 1 random crop
    x, _ = load_case("hippocampus_003")
    batch = {k: v[None] for k, v in VoCoDataset([x], geom, foreground_threshold=0.05)[0].items()}
    out = {}
    for fast in (False, True):
        torch.manual_seed(0)
        task = make_task(VoCo(proj_hidden=32, proj_out=32), lr=1e-3, max_steps=2, fast_kernels=fast)
        loss = task.ssl_loss(batch)["loss"]
        loss.backward()
        out[fast] = (loss.item(), task.model.swinViT.patch_embed.proj.weight.grad.clone())
        assert any(type(m) is FastWindowAttention for m in task.teacher.modules()) == fast
    # float32: MONAI's own loss here differs from its float64 loss by ~5e-5 (relative), the fast path's by ~7e-5;
    # equality of the function is the float64 test above
    assert abs(out[True][0] - out[False][0]) <= 5e-4 * abs(out[False][0])
    g0, g1 = out[False][1], out[True][1]
    assert (g0 - g1).abs().max() <= 1e-3 * g0.abs().max()
    # MONAI's own class is not patched: a new SwinUNETR still runs MONAI's WindowAttention
    assert not any(type(m) is FastWindowAttention for m in build_swinunetr().modules())
