"""FMUNet: the modified 3D UNet that MIS-FM's release pretrains with Volume Fusion (``fmunet_abd1k_volf.pt``).

Written for fmzoo from the network of the release (github.com/openmedlab/MIS-FM ``net/fmunet.py``, identical to PyMIC's
``pymic/net/net3d/fmunet.py``; Apache-2.0) with the official attribute names, so the released state dict loads by
name::

    project                                   # Conv3d in_chns -> ft[0]
    encoder.{en_conv0..4, down0..3}           # ResConv: ``conv_list.N`` = IN(affine)-LeakyReLU-Dropout-Conv, residual
    decoder.{upcat0..3, de_conv0..4}          # UpCatConv: IN-LeakyReLU-1x1 Conv + trilinear x2 (align_corners)
    out_layers.{0..3}                         # IN-LeakyReLU-Conv to class_num (full .. 1/8 resolution)

``res_mode`` 0 / 1 / 2 makes the two finest levels 3D/3D, 2D/3D or 2D/2D ("2D": 1x3x3 kernels, 1x2x2 strides);
``depth`` residual convolutions per ``ResConv``. The decoder's ``de_conv4`` is applied to the bottleneck before
upsampling, as the release does. Only ``out_layers[0]`` runs unless ``multiscale_pred`` (the release's training mode
with deep supervision returns all four maps; its evaluation mode returns the full-resolution one).

Axis convention as ``PCTNet``: ``forward`` takes fmzoo's (B, C, X, Y, Z) and runs the network on (B, C, Z, Y, X),
PyMIC's (D, H, W); ``forward_dhw`` is the official layout. The network is fully convolutional: any size divisible by
its total downsampling (16 per 3D axis) is accepted.
"""

from __future__ import annotations

import torch
from fmzoo.core import HubMixin, InputSpecError
from torch import nn

from ..spec import VolumeInput, check_network_input
from .pctnet import MISFM_CT_SPEC, XYZNetwork

RELEASE_ARGS = {"in_chns": 1, "feature_chns": [32, 64, 128, 256, 512], "dropout": 0.2, "depth": 2, "res_mode": 0}
LEVEL_DIMS = {0: (3, 3), 1: (2, 3), 2: (2, 2)}  # the dimensions (2 = in-plane) of levels 0 and 1 per res_mode
ENCODER_PREFIXES = ("project.", "encoder.")


def _conv(dim: int):
    return ((1, 3, 3), (0, 1, 1)) if dim == 2 else (3, 1)


def _stride(dim: int):
    return (1, 2, 2) if dim == 2 else 2


class ResConv(nn.Module):
    def __init__(self, channels: int, dim: int = 3, dropout_p: float = 0.0, depth: int = 2):
        super().__init__()
        k, p = _conv(dim)
        self.conv_list = nn.ModuleList([
            nn.Sequential(nn.InstanceNorm3d(channels, affine=True), nn.LeakyReLU(), nn.Dropout(dropout_p),
                          nn.Conv3d(channels, channels, kernel_size=k, padding=p)) for _ in range(depth)])

    def forward(self, x):
        for conv in self.conv_list:
            x = conv(x) + x
        return x


class DownSample(nn.Module):
    """IN-LeakyReLU-strided Conv."""

    def __init__(self, in_channels: int, out_channels: int, dim: int = 3):
        super().__init__()
        k, p = _conv(dim)
        self.down = nn.Sequential(nn.InstanceNorm3d(in_channels, affine=True), nn.LeakyReLU(),
                                  nn.Conv3d(in_channels, out_channels, kernel_size=k, padding=p, stride=_stride(dim)))

    def forward(self, x):
        return self.down(x)


class UpCatConv(nn.Module):
    """Upsample the coarse map (IN-LeakyReLU-1x1 Conv, trilinear x2 with aligned corners), concatenate
    [fine, upsampled], IN-LeakyReLU-Conv."""

    def __init__(self, in_channels1: int, in_channels2: int, out_channels: int, dim: int = 3):
        super().__init__()
        k, p = _conv(dim)
        self.up = nn.Sequential(nn.InstanceNorm3d(in_channels1, affine=True), nn.LeakyReLU(),
                                nn.Conv3d(in_channels1, in_channels2, kernel_size=1, padding=0),
                                nn.Upsample(scale_factor=_stride(dim), mode="trilinear", align_corners=True))
        self.conv = nn.Sequential(nn.InstanceNorm3d(2 * in_channels2, affine=True), nn.LeakyReLU(),
                                  nn.Conv3d(2 * in_channels2, out_channels, kernel_size=k, padding=p))

    def forward(self, x_l, x_h):
        return self.conv(torch.cat([x_h, self.up(x_l)], dim=1))


class Encoder(nn.Module):
    def __init__(self, ft, res_mode: int = 0, dropout_p: float = 0.0, depth: int = 2):
        super().__init__()
        d0, d1 = LEVEL_DIMS[res_mode]
        self.en_conv0 = ResConv(ft[0], d0, 0.0, depth)
        self.en_conv1 = ResConv(ft[1], d1, 0.0, depth)
        self.en_conv2 = ResConv(ft[2], 3, dropout_p, depth)
        self.en_conv3 = ResConv(ft[3], 3, dropout_p, depth)
        self.en_conv4 = ResConv(ft[4], 3, dropout_p, depth)
        self.down0 = DownSample(ft[0], ft[1], d0)
        self.down1 = DownSample(ft[1], ft[2], d1)
        self.down2 = DownSample(ft[2], ft[3], 3)
        self.down3 = DownSample(ft[3], ft[4], 3)

    def forward(self, x):
        x0 = self.en_conv0(x)
        x1 = self.en_conv1(self.down0(x0))
        x2 = self.en_conv2(self.down1(x1))
        x3 = self.en_conv3(self.down2(x2))
        return [x0, x1, x2, x3, self.en_conv4(self.down3(x3))]


class Decoder(nn.Module):
    def __init__(self, ft, res_mode: int = 0, dropout_p: float = 0.0, depth: int = 2):
        super().__init__()
        d0, d1 = LEVEL_DIMS[res_mode]
        self.upcat0 = UpCatConv(ft[1], ft[0], ft[0], d0)
        self.upcat1 = UpCatConv(ft[2], ft[1], ft[1], d1)
        self.upcat2 = UpCatConv(ft[3], ft[2], ft[2], 3)
        self.upcat3 = UpCatConv(ft[4], ft[3], ft[3], 3)
        self.de_conv0 = ResConv(ft[0], d0, 0.0, depth)
        self.de_conv1 = ResConv(ft[1], d1, 0.0, depth)
        self.de_conv2 = ResConv(ft[2], 3, dropout_p, depth)
        self.de_conv3 = ResConv(ft[3], 3, dropout_p, depth)
        self.de_conv4 = ResConv(ft[4], 3, dropout_p, depth)

    def forward(self, feats):
        x0, x1, x2, x3, x4 = feats
        d4 = self.de_conv4(x4)
        d3 = self.de_conv3(self.upcat3(d4, x3))
        d2 = self.de_conv2(self.upcat2(d3, x2))
        d1 = self.de_conv1(self.upcat1(d2, x1))
        return [self.de_conv0(self.upcat0(d1, x0)), d1, d2, d3]


class FMUNet(XYZNetwork, nn.Module, HubMixin):
    """MIS-FM's FMUNet with the release's parameter names (see the module docstring).

    ``forward(x)``: (B, C, X, Y, Z) -> logits (B, class_num, X, Y, Z) (a list of 4 maps, full to 1/8 resolution,
    when ``multiscale_pred``); ``predict`` slides the spec's ROI over whole volumes; ``to_segmenter(n)`` keeps every
    weight but the last convolution of the output layers."""

    input_spec_class = VolumeInput

    def __init__(self, in_chns: int = 1, class_num: int = 5, feature_chns=(32, 64, 128, 256, 512), dropout: float = 0.2,
                 depth: int = 2, res_mode: int = 0, multiscale_pred: bool = False, input_spec: dict | None = None):
        super().__init__()
        if res_mode not in LEVEL_DIMS:
            raise ValueError(f"res_mode must be 0, 1 or 2, got {res_mode!r}")
        if len(feature_chns) != 5:
            raise ValueError(f"feature_chns needs 5 entries (one per level), got {list(feature_chns)}")
        ft = [int(c) for c in feature_chns]
        self.res_mode, self.multiscale_pred = int(res_mode), bool(multiscale_pred)
        d0, d1 = LEVEL_DIMS[self.res_mode]
        k, p = _conv(d0)
        self.project = nn.Conv3d(in_chns, ft[0], kernel_size=k, padding=p)
        self.encoder = Encoder(ft, self.res_mode, float(dropout), int(depth))
        self.decoder = Decoder(ft, self.res_mode, float(dropout), int(depth))
        self.out_layers = nn.ModuleList()
        for i, dim in enumerate((d0, d1, 3, 3)):
            k, p = _conv(dim)
            self.out_layers.append(nn.Sequential(nn.InstanceNorm3d(ft[i], affine=True), nn.LeakyReLU(),
                                                 nn.Conv3d(ft[i], class_num, kernel_size=k, padding=p)))
        for m in self.modules():  # the release's default initialisation ("he", negative slope 0.01)
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, a=1e-2)
                nn.init.zeros_(m.bias)
        self.input_spec = dict(input_spec if input_spec is not None else MISFM_CT_SPEC)

    def downsampling(self) -> tuple[int, int, int]:
        """Total downsampling per (D, H, W) axis."""
        d0, d1 = LEVEL_DIMS[self.res_mode]
        depth_axis = 4 * (2 if d0 == 3 else 1) * (2 if d1 == 3 else 1)
        return (depth_axis, 16, 16)

    def forward_dhw(self, x):
        d = self.decoder(self.encoder(self.project(x)))
        out = self.out_layers[0](d[0])
        if self.multiscale_pred:
            return [out, *(self.out_layers[i](d[i]) for i in range(1, 4))]
        return out

    def roi_xyz(self) -> tuple[int, int, int]:
        return tuple(self.input_spec["roi_size"])

    def check_input(self, x) -> None:
        check_network_input(x, self.input_spec, sliding=True)
        need = tuple(reversed(self.downsampling()))  # (X, Y, Z)
        if any(s % n for s, n in zip(x.shape[2:], need, strict=True)):
            raise InputSpecError(f"FMUNet needs spatial sizes divisible by {list(need)} (X, Y, Z), got "
                                 f"{list(x.shape[2:])}; pad/crop, or use predict() for whole volumes")

    def encoder_prefixes(self) -> tuple[str, ...]:
        return ENCODER_PREFIXES

    def to_segmenter(self, class_num: int) -> FMUNet:
        args = {**self.init_args, "class_num": int(class_num), "multiscale_pred": False,
                "input_spec": dict(self.input_spec)}
        net = FMUNet(**args)
        sd = {k: v for k, v in self.state_dict().items() if not k.startswith("out_layers.")
              or not k.endswith((".2.weight", ".2.bias"))}
        missing, unexpected = net.load_state_dict(sd, strict=False)
        assert not unexpected and all(k.startswith("out_layers.") for k in missing), (missing, unexpected)
        return net
