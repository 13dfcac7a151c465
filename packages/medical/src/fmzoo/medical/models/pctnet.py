"""PCT-Net: MIS-FM's pyramid convolution-transformer segmentation network (Wang et al. 2023, arXiv:2306.16925).

Written for fmzoo from the description of the paper and the released network code of github.com/openmedlab/MIS-FM
(``net/pct_net.py``, ``net/transformer.py``; Apache-2.0), so that the released checkpoint loads BY NAME: every module
has the official attribute name and nesting, hence the official ``state_dict`` keys::

    embeddings.{0,1,2}.{proj, conv0, conv1, down1, down2}        # one multi-scale embedding per resolution mode
    pyramid_ct.{down3, down4, up3, up4, out_conv2, out_conv3,
                convtrans_{e2,e3,e4,d2,d3}.{conv.conv_conv, trans.blocks.N, norm_layer}}
    pred_heads.{0,1,2}.{up1, up2, conv0, conv1, out_conv0, out_conv1}

Structure (as the official code computes it):

- ``PatchEmbedding``: a 3x3x3 (or 1x3x3) convolution and a pre-activation ``ConvBlock`` (BN-PReLU-Conv-BN-PReLU-
  Dropout-Conv) at full resolution, a max-pool + BN-PReLU-Conv ``DownSample`` and a ``ConvBlock`` at 1/2, and a
  second ``DownSample`` to 1/4 (per axis: ``resolution_mode`` 0 = [4, 4, 4], 1 = [2, 4, 4], 2 = [1, 4, 4]; a
  "2D" level pools and convolves in-plane only, kernel 1x3x3);
- ``PyramidConvTrans`` on the 1/4 map: three levels (channels ft[2:5]) of ``ConvTransBlock`` = a ``ConvBlock`` in
  parallel with a Swin-Transformer ``BasicLayer`` (window 6, shifted every other block, depth 2, heads 4/8/16),
  summed; encoder e2 -> e3 -> e4 with max-pool downsampling, decoder d3 -> d2 with transposed-convolution
  ``UpCatBlock`` (upsample the coarse map, concatenate with the skip, BN-PReLU-Conv);
- ``PredictionHead``: two ``UpCatBlock`` + ``ConvBlock`` back to full resolution and a 1x1x1 BN-PReLU-Conv output.

Kept exactly because the released weights depend on them: the relative-position index of ``WindowAttention`` is
the official one (its first coordinate is scaled by ``3 * w - 1`` and the second by ``2 * w - 1``, not Swin's
``(2w - 1)^2`` / ``2w - 1``, so only part of the bias table is used and some offsets share a row); the unused
``norm_layer`` LayerNorm of every ``ConvTransBlock``; the three embeddings and three prediction heads of which one
runs (``resolution_mode``); the ``out_conv*`` layers of the multi-scale outputs. A block's window shrinks to the
smallest side of its ``input_resolution`` (without shift) when that side is not larger than the window, as in the
official ``SwinTransformerBlock``, while the layer's attention mask keeps the configured window and shift.

Deviation, named: the official Swin block asserts that its input has exactly ``input_resolution`` voxels; here the
block uses the sizes of the tensor it is given (identical results at ``input_size``; other sizes run instead of
failing an assert). The fmzoo model ``PCTNet`` still requires the spec's ROI (the size the weights were trained at).

Axis convention: the official network is fed PyMIC's (D, H, W) arrays (SimpleITK order: slices first); fmzoo's
volumes are (X, Y, Z) in RAS. ``PCTNet.forward`` takes fmzoo's (B, C, X, Y, Z) and runs the network on the
transposed (B, C, Z, Y, X) tensor, so the official ``input_size`` [64, 128, 128] (D, H, W) is the ROI
[128, 128, 64] (X, Y, Z) and ``resolution_mode`` 1 keeps the slice axis Z at half the in-plane downsampling, as
the release intends. ``forward_dhw`` runs the official layout unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fmzoo.core import HubMixin, InputSpecError
from torch import nn

from ..spec import VolumeInput, check_network_input

# The release's preprocessing as an fmzoo input spec. What the release states: CT; PyMIC's Volume Fusion recipe
# (HiLab-git/PyMIC_examples seg_self_sup/lung/luna_preprocess.py) clips HU to [-1000, 1000] and maps it to [-1, 1];
# patches of [64, 128, 128] (D, H, W) = ROI [128, 128, 64] (X, Y, Z). What it does not state, fmzoo's assumption:
# the voxel spacing (PyMIC trains at each volume's native spacing; 1 mm isotropic is recorded here, override
# ``input_spec`` when your data differ) and the orientation (PyMIC does not reorient; RAS here).
MISFM_CT_SPEC = {
    "modality": "CT",
    "axcodes": "RAS",
    "spacing": [1.0, 1.0, 1.0],
    "spacing_tolerance": 0.05,
    "intensity": {"kind": "window", "a_min": -1000.0, "a_max": 1000.0, "b_min": -1.0, "b_max": 1.0},
    "roi_size": [128, 128, 64],
    "in_channels": 1,
}

# The release's configuration (demo/pctnet_{scratch,pretrain}.cfg of openmedlab/MIS-FM; defaults of net/pct_net.py)
RELEASE_ARGS = {
    "in_chns": 1,
    "input_size": [64, 128, 128],
    "feature_chns": [24, 48, 128, 256, 512],
    "dropout": [0.0, 0.0, 0.2, 0.2, 0.2],
    "depths": [2, 2, 2],
    "num_heads": [4, 8, 16],
    "window_sizes": [6, 6, 6],
    "resolution_mode": 1,
}
RESOLUTION_SCALE = {0: (4, 4, 4), 1: (2, 4, 4), 2: (1, 4, 4)}
# (conv_dims, down_dims) of the embedding / prediction head of each resolution mode
MODE_DIMS = {0: ((3, 3), (3, 3)), 1: ((2, 3), (2, 3)), 2: ((2, 2), (2, 2))}
ENCODER_PREFIXES = ("embeddings.", "pyramid_ct.down3.", "pyramid_ct.down4.", "pyramid_ct.convtrans_e2.",
                    "pyramid_ct.convtrans_e3.", "pyramid_ct.convtrans_e4.")


def _kernel(dim: int):
    """Convolution kernel and padding of a "2D" (in-plane, 1x3x3) or 3D (3x3x3) level."""
    if dim not in (2, 3):
        raise ValueError(f"a level's dimension must be 2 (in-plane) or 3, got {dim}")
    return ((1, 3, 3), (0, 1, 1)) if dim == 2 else (3, 1)


def _pool(dim: int):
    return (1, 2, 2) if dim == 2 else 2


def _bn_act_conv(cin: int, cout: int, kernel, padding) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm3d(cin), nn.PReLU(), nn.Conv3d(cin, cout, kernel_size=kernel, padding=padding))


# --------------------------------------------------------------------------------- convolutional parts


class ConvBlock(nn.Module):
    """BN-PReLU-Conv-BN-PReLU-Dropout-Conv (``conv_conv`` indices 0..6, as the release)."""

    def __init__(self, in_channels: int, out_channels: int, dim: int = 3, dropout_p: float = 0.0):
        super().__init__()
        k, p = _kernel(dim)
        self.conv_conv = nn.Sequential(
            nn.BatchNorm3d(in_channels), nn.PReLU(), nn.Conv3d(in_channels, out_channels, kernel_size=k, padding=p),
            nn.BatchNorm3d(out_channels), nn.PReLU(), nn.Dropout(dropout_p),
            nn.Conv3d(out_channels, out_channels, kernel_size=k, padding=p))

    def forward(self, x):
        return self.conv_conv(x)


class DownSample(nn.Module):
    """Max-pool (2 or 1x2x2), then BN-PReLU-Conv."""

    def __init__(self, in_channels: int, out_channels: int, down_dim: int = 3, conv_dim: int = 3):
        super().__init__()
        self.pool = nn.MaxPool3d(_pool(down_dim))
        self.conv = _bn_act_conv(in_channels, out_channels, *_kernel(conv_dim))

    def forward(self, x):
        return self.conv(self.pool(x))


class ConvLayer(nn.Module):
    """BN-PReLU-Conv (1x1x1 by default): the output layers."""

    def __init__(self, in_channels: int, out_channels: int, kernel=1, padding=0):
        super().__init__()
        self.conv = _bn_act_conv(in_channels, out_channels, kernel, padding)

    def forward(self, x):
        return self.conv(x)


class UpCatBlock(nn.Module):
    """Upsample the coarse map (BN-PReLU-ConvTranspose, stride 2 or 1x2x2), concatenate [fine, upsampled],
    BN-PReLU-Conv back to the fine map's channels."""

    def __init__(self, chns_l: int, chns_h: int, up_dim: int = 3, conv_dim: int = 3):
        super().__init__()
        stride = _pool(up_dim)
        self.up = nn.Sequential(nn.BatchNorm3d(chns_h), nn.PReLU(),
                                nn.ConvTranspose3d(chns_h, chns_l, kernel_size=stride, stride=stride))
        self.conv = _bn_act_conv(2 * chns_l, chns_l, *_kernel(conv_dim))

    def forward(self, x_l, x_h):
        return self.conv(torch.cat([x_l, self.up(x_h)], dim=1))


class PatchEmbedding(nn.Module):
    """The multi-scale embedding: full-resolution and 1/2 convolutional features, and the 1/4 map the pyramid
    takes."""

    def __init__(self, in_chns: int, ft_chns, conv_dims, down_dims, dropout):
        super().__init__()
        k, p = _kernel(conv_dims[0])
        self.proj = nn.Conv3d(in_chns, ft_chns[0], kernel_size=k, padding=p)
        self.conv0 = ConvBlock(ft_chns[0], ft_chns[0], conv_dims[0], dropout[0])
        self.conv1 = ConvBlock(ft_chns[1], ft_chns[1], conv_dims[1], dropout[1])
        self.down1 = DownSample(ft_chns[0], ft_chns[1], down_dims[0], conv_dims[1])
        self.down2 = DownSample(ft_chns[1], ft_chns[2], down_dims[1], 3)

    def forward(self, x):
        x0 = self.conv0(self.proj(x))
        x1 = self.conv1(self.down1(x0))
        return x0, x1, self.down2(x1)


class PredictionHead(nn.Module):
    """The decoder from the pyramid's 1/4 output back to full resolution."""

    def __init__(self, ft_chns, conv_dims, down_dims, dropout, class_num: int, multiscale_pred: bool = False):
        super().__init__()
        self.up1 = UpCatBlock(ft_chns[0], ft_chns[1], down_dims[0], conv_dims[0])
        self.up2 = UpCatBlock(ft_chns[1], ft_chns[2], down_dims[1], conv_dims[1])
        self.conv0 = ConvBlock(ft_chns[0], ft_chns[0], conv_dims[0], dropout[0])
        self.conv1 = ConvBlock(ft_chns[1], ft_chns[1], conv_dims[1], dropout[1])
        self.out_conv0 = ConvLayer(ft_chns[0], class_num)
        self.multiscale_pred = multiscale_pred
        self.out_conv1 = ConvLayer(ft_chns[1], class_num)

    def forward(self, x0, x1, x2):
        if self.multiscale_pred:
            x2, out2, out3 = x2
        d1 = self.conv1(self.up2(x1, x2))
        d0 = self.conv0(self.up1(x0, d1))
        out = self.out_conv0(d0)
        if self.multiscale_pred:
            return [out, self.out_conv1(d1), out2, out3]
        return out


# --------------------------------------------------------------------------------- Swin parts


class DropPath(nn.Module):
    """Stochastic depth per sample (inverted scaling by the keep probability); identity in eval mode."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def relative_position_index(w: int) -> torch.Tensor:
    """The release's index into the bias table for a w^3 window (see the module docstring for its scaling)."""
    grid = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    rel = (grid[:, :, None] - grid[:, None, :]).permute(1, 2, 0) + (w - 1)
    return rel[..., 0] * (3 * w - 1) + rel[..., 1] * (2 * w - 1) + rel[..., 2]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a cubic window with a learned relative-position bias."""

    def __init__(self, dim: int, window: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.window, self.num_heads = int(window), int(num_heads)
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 3, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)].reshape(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, self.num_heads, n, n) + mask[None, :, None]).view(-1, self.num_heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(b, n, c)))


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, S, H, W, C) -> (B * windows, w^3, C)."""
    b, s, h, ww, c = x.shape
    x = x.view(b, s // w, w, h // w, w, ww // w, w, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(-1, w * w * w, c)


def window_reverse(windows: torch.Tensor, w: int, s: int, h: int, ww: int) -> torch.Tensor:
    b = windows.shape[0] // ((s // w) * (h // w) * (ww // w))
    x = windows.view(b, s // w, h // w, ww // w, w, w, w, -1).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(b, s, h, ww, -1)


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, input_resolution, num_heads: int, window_size: int = 6, shift_size: int = 0,
                 mlp_ratio: float = 4.0, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.input_resolution = tuple(int(r) for r in input_resolution)
        self.window_size, self.shift_size = int(window_size), int(shift_size)
        if min(self.input_resolution) <= self.window_size:  # as the release: one window, no shift
            self.shift_size, self.window_size = 0, min(self.input_resolution)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x, size, mask):
        s, h, w = size
        b, n, c = x.shape
        ws, sh = self.window_size, self.shift_size
        y = self.norm1(x).view(b, s, h, w, c)
        pads = [(ws - d % ws) % ws for d in (s, h, w)]
        y = F.pad(y, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        sp, hp, wp = y.shape[1:4]
        if sh > 0:
            y = torch.roll(y, shifts=(-sh, -sh, -sh), dims=(1, 2, 3))
        y = self.attn(window_partition(y, ws), mask if sh > 0 else None)
        y = window_reverse(y.view(-1, ws, ws, ws, c), ws, sp, hp, wp)
        if sh > 0:
            y = torch.roll(y, shifts=(sh, sh, sh), dims=(1, 2, 3))
        y = y[:, :s, :h, :w].reshape(b, n, c)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    """``depth`` Swin blocks, every odd one shifted by half a window; no patch merging."""

    def __init__(self, dim: int, input_resolution, depth: int, num_heads: int, window_size: int = 6,
                 mlp_ratio: float = 4.0, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.window_size, self.shift_size = int(window_size), int(window_size) // 2
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                                 mlp_ratio, drop, attn_drop, drop_path) for i in range(depth)])

    def attention_mask(self, size, device) -> torch.Tensor:
        """The shifted windows' mask (0 within a region, -100 across regions), computed with the layer's window."""
        ws, sh = self.window_size, self.shift_size
        padded = [-(-d // ws) * ws for d in size]
        img = torch.zeros((1, *padded, 1), device=device)
        cuts = (slice(0, -ws), slice(-ws, -sh), slice(-sh, None))
        label = 0
        for a in cuts:
            for b in cuts:
                for c in cuts:
                    img[:, a, b, c, :] = label
                    label += 1
        win = window_partition(img, ws).squeeze(-1)
        diff = win.unsqueeze(1) - win.unsqueeze(2)
        return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)

    def forward(self, x, size):
        mask = self.attention_mask(size, x.device)
        for blk in self.blocks:
            x = blk(x, size, mask)
        return x


class ConvTransBlock(nn.Module):
    """A ``ConvBlock`` and a Swin ``BasicLayer`` in parallel on the same map, summed."""

    def __init__(self, input_resolution, chns: int, depth: int = 2, num_head: int = 4, window_size: int = 6,
                 mlp_ratio: float = 4.0, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.2):
        super().__init__()
        self.conv = ConvBlock(chns, chns, dim=3, dropout_p=drop_rate)
        self.trans = BasicLayer(chns, input_resolution, depth, num_head, window_size, mlp_ratio, drop_rate,
                                attn_drop_rate, drop_path_rate)
        self.norm_layer = nn.LayerNorm(chns)  # in the release's state dict; its forward does not use it
        self.pos_drop = nn.Dropout(drop_rate)

    def forward(self, x):
        b, c, s, h, w = x.shape
        y_conv = self.conv(x)  # first, as the release (the order its dropout draws in)
        tokens = self.pos_drop(x.flatten(2).transpose(1, 2))
        y = self.trans(tokens, (s, h, w)).view(b, s, h, w, c).permute(0, 4, 1, 2, 3)
        return y_conv + y


class PyramidConvTrans(nn.Module):
    def __init__(self, input_size, ft_chns, dropout, depths, num_heads, window_sizes, class_num: int,
                 multiscale_pred: bool = False):
        super().__init__()
        self.down3 = DownSample(ft_chns[0], ft_chns[1], 3, 3)
        self.down4 = DownSample(ft_chns[1], ft_chns[2], 3, 3)
        self.up3 = UpCatBlock(ft_chns[0], ft_chns[1], 3, 3)
        self.up4 = UpCatBlock(ft_chns[1], ft_chns[2], 3, 3)
        res = [list(input_size)]
        for _ in range(2):
            res.append([r // 2 for r in res[-1]])

        def block(level):
            return ConvTransBlock(res[level], ft_chns[level], depths[level], num_heads[level], window_sizes[level],
                                  drop_rate=dropout[level], attn_drop_rate=dropout[level])

        self.convtrans_e2, self.convtrans_d2 = block(0), block(0)
        self.convtrans_e3, self.convtrans_d3 = block(1), block(1)
        self.convtrans_e4 = block(2)
        self.multiscale_pred = multiscale_pred
        self.out_conv2 = ConvLayer(ft_chns[0], class_num)
        self.out_conv3 = ConvLayer(ft_chns[1], class_num)

    def forward(self, x):
        x2 = self.convtrans_e2(x)
        x3 = self.convtrans_e3(self.down3(x2))
        x4 = self.convtrans_e4(self.down4(x3))
        d3 = self.convtrans_d3(self.up4(x3, x4))
        d2 = self.convtrans_d2(self.up3(x2, d3))
        if self.multiscale_pred:
            return d2, self.out_conv2(d2), self.out_conv3(d3)
        return d2


# --------------------------------------------------------------------------------- the fmzoo model


class XYZNetwork:
    """fmzoo's (B, C, X, Y, Z) around a network written in PyMIC's (B, C, D, H, W) layout (``forward_dhw``): the
    input is checked (``check_input``), transposed in and out; ``predict`` slides ``roi_xyz()`` windows over whole
    volumes (MONAI, Gaussian blending). Shared by MIS-FM's PCT-Net and FMUNet."""

    def forward(self, x):
        self.check_input(x)
        out = self.forward_dhw(x.permute(0, 1, 4, 3, 2))
        if isinstance(out, list):
            return [o.permute(0, 1, 4, 3, 2) for o in out]
        return out.permute(0, 1, 4, 3, 2)

    @torch.no_grad()
    def predict(self, x, overlap: float = 0.5, sw_batch_size: int = 2):
        """Sliding-window logits of whole volumes (B, C, X, Y, Z) of any size (MONAI, Gaussian blending)."""
        from .swin import sliding_window_logits

        check_network_input(x, self.input_spec, sliding=True)
        return sliding_window_logits(self, x, self.roi_xyz(), overlap, sw_batch_size)


class PCTNet(XYZNetwork, nn.Module, HubMixin):
    """MIS-FM's PCT-Net with the release's parameter names (see the module docstring).

    ``forward(x)``: fmzoo's (B, C, X, Y, Z) of exactly the spec's ROI -> logits (B, class_num, X, Y, Z) (a list of 4
    maps, full to 1/8 resolution, when ``multiscale_pred``); ``forward_dhw`` is the official layout;
    ``predict`` slides the ROI over whole volumes; ``to_segmenter(n)`` is the same network with a fresh
    ``n``-class output layer for fine-tuning (every other weight kept)."""

    input_spec_class = VolumeInput

    def __init__(self, in_chns: int = 1, class_num: int = 5, input_size=(64, 128, 128),
                 feature_chns=(24, 48, 128, 256, 512), dropout=(0.0, 0.0, 0.2, 0.2, 0.2), depths=(2, 2, 2),
                 num_heads=(4, 8, 16), window_sizes=(6, 6, 6), resolution_mode: int = 1, multiscale_pred: bool = False,
                 input_spec: dict | None = None):
        super().__init__()
        if resolution_mode not in RESOLUTION_SCALE:
            raise ValueError(f"resolution_mode must be 0, 1 or 2 (isotropic / near-isotropic / anisotropic), got "
                             f"{resolution_mode!r}")
        if len(feature_chns) != 5 or len(dropout) != 5:
            raise ValueError(f"feature_chns and dropout need 5 entries (one per level), got {list(feature_chns)} and "
                             f"{list(dropout)}")
        self.resolution_mode, self.multiscale_pred = int(resolution_mode), bool(multiscale_pred)
        self.input_size = tuple(int(s) for s in input_size)
        scale = RESOLUTION_SCALE[self.resolution_mode]
        bad = [s for s, f in zip(self.input_size, scale, strict=True) if s % (4 * f)]
        if bad:
            raise ValueError(f"input_size {list(self.input_size)} (D, H, W) must be divisible by {[4 * f for f in scale]} "
                             f"(the embedding's {list(scale)} and the pyramid's two halvings)")
        pyramid_size = [s // f for s, f in zip(self.input_size, scale, strict=True)]
        ft = [int(c) for c in feature_chns]
        drop = [float(d) for d in dropout]
        self.embeddings = nn.ModuleList([PatchEmbedding(in_chns, ft[:3], *MODE_DIMS[m], drop[:3]) for m in range(3)])
        self.pyramid_ct = PyramidConvTrans(pyramid_size, ft[2:], drop[2:], depths, num_heads, window_sizes, class_num,
                                           multiscale_pred)
        self.pred_heads = nn.ModuleList([PredictionHead(ft[:3], *MODE_DIMS[m], drop[:3], class_num, multiscale_pred)
                                         for m in range(3)])
        self.input_spec = dict(input_spec if input_spec is not None else MISFM_CT_SPEC)
        roi = [int(r) for r in self.input_spec.get("roi_size", self.roi_xyz())]
        if roi != list(self.roi_xyz()):
            raise InputSpecError(f"input_spec['roi_size'] {roi} (X, Y, Z) must be PCT-Net's input_size "
                                 f"{list(self.input_size)} (D, H, W) reversed, {list(self.roi_xyz())}")

    # the official forward, on (B, C, D, H, W)
    def forward_dhw(self, x):
        x0, x1, x2 = self.embeddings[self.resolution_mode](x)
        return self.pred_heads[self.resolution_mode](x0, x1, self.pyramid_ct(x2))

    def roi_xyz(self) -> tuple[int, int, int]:
        return tuple(reversed(self.input_size))

    def check_input(self, x) -> None:
        check_network_input(x, self.input_spec, sliding=True)
        if tuple(x.shape[2:]) != self.roi_xyz():
            raise InputSpecError(f"PCT-Net takes inputs of exactly its ROI {list(self.roi_xyz())} (X, Y, Z) (its Swin "
                                 f"windows are fixed at input_size {list(self.input_size)} D, H, W), got spatial size "
                                 f"{list(x.shape[2:])}; crop/pad to the ROI or use predict() for whole volumes")

    def encoder_prefixes(self) -> tuple[str, ...]:
        return ENCODER_PREFIXES

    def to_segmenter(self, class_num: int) -> PCTNet:
        """This network with ``class_num`` outputs: every weight is kept but the last convolution of the output
        layers (``out_conv*.conv.2``), which is fresh."""
        args = {**self.init_args, "class_num": int(class_num), "multiscale_pred": False,
                "input_spec": dict(self.input_spec)}
        net = PCTNet(**args)
        sd = {k: v for k, v in self.state_dict().items() if not _is_output_conv(k)}
        missing, unexpected = net.load_state_dict(sd, strict=False)
        assert not unexpected and all(_is_output_conv(k) for k in missing), (missing, unexpected)
        return net


def _is_output_conv(key: str) -> bool:
    return ".out_conv" in key and ".conv.2." in key
