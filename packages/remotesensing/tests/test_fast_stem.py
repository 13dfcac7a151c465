"""The ResNet stem's two exact speed-ups (models.backbones): skipping all-zero bands in the first convolution
(without gradients) and the channels-last max pool give the same features and the same training as timm's plain
modules, bit for bit."""

import copy

import torch
from fmzoo.remotesensing.models.backbones import ChannelsLastMaxPool2d, PresentBandsConv2d, SoftConResNet
from fmzoo.remotesensing.spec import S2_L1C_ORDER
from torch import nn


def _pair():
    torch.manual_seed(0)
    fast = SoftConResNet(bands=list(S2_L1C_ORDER), input_size=32)
    plain = copy.deepcopy(fast)
    plain.backbone.conv1.__class__ = nn.Conv2d
    plain.backbone.maxpool.__class__ = nn.MaxPool2d
    return fast, plain


def _rgb_batch(n, px, gen):
    x = torch.zeros(n, 13, px, px)  # B02, B03, B04 present (standardized), the other 10 bands at their mean (0)
    x[:, 1:4] = torch.randn(n, 3, px, px, generator=gen)
    return x


def test_stem_modules_are_the_fast_ones_with_timm_names():
    fast, plain = _pair()
    assert isinstance(fast.backbone.conv1, PresentBandsConv2d) and isinstance(fast.backbone.maxpool, ChannelsLastMaxPool2d)
    assert list(fast.state_dict()) == list(plain.state_dict())  # the same parameter names (checkpoints load as before)


def test_absent_bands_are_skipped_and_features_are_identical(monkeypatch):
    fast, plain = _pair()
    seen = []
    original = nn.Conv2d._conv_forward

    def spy(self, x, w, b):
        if self is fast.backbone.conv1:
            seen.append(x.shape[1])
        return original(self, x, w, b)

    monkeypatch.setattr(nn.Conv2d, "_conv_forward", spy)
    gen = torch.Generator().manual_seed(1)
    fast.eval(), plain.eval()
    with torch.no_grad():
        for n, px in ((8, 32), (3, 48)):
            x = _rgb_batch(n, px, gen)
            assert torch.equal(fast(x), plain(x))
        full = torch.randn(4, 13, 32, 32, generator=gen)  # every band present: the plain path
        assert torch.equal(fast(full), plain(full))
        scattered = torch.zeros(2, 13, 32, 32)
        scattered[:, [0, 5, 12]] = torch.randn(2, 3, 32, 32, generator=gen)  # non-contiguous bands
        assert torch.equal(fast(scattered), plain(scattered))
        plain.train(), fast.train()
    x = _rgb_batch(4, 32, gen)
    assert torch.equal(fast(x), plain(x))  # with gradients: the full convolution (bit-identical weight gradients)
    assert seen == [3, 3, 13, 3, 13]


def test_training_through_the_fast_stem_is_identical():
    fast, plain = _pair()
    fast.train(), plain.train()
    before = fast.backbone.conv1.weight.detach().clone()
    opts = [torch.optim.AdamW(m.parameters(), 1e-2, weight_decay=1e-2) for m in (fast, plain)]
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        x = _rgb_batch(6, 32, gen)
        for m, opt in zip((fast, plain), opts, strict=True):
            loss = m(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (name, p), q in zip(fast.named_parameters(), plain.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert not torch.equal(fast.backbone.conv1.weight[:, 1:4], before[:, 1:4])  # the present bands' weights trained
