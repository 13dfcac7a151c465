"""MONAI SwinUNETR-based models: the VoCo backbone, the Volume Fusion network, and the segmenter.

All three keep MONAI's ``SwinUNETR`` parameter names (``swinViT.*``, ``encoder1.*`` ... ``encoder10.*``,
``decoder5.*`` ... ``decoder1.*``, ``out.*``), so weights move between them, and from the released
VoCo checkpoints (see ``fmzoo.medical.weights``), by name.

Paper configuration (VoCo, Luffy03/VoCo ``models/voco_head.py``): feature_size 48, window 7, patch 2,
depths (2, 2, 2, 2), heads (3, 6, 12, 24), ``use_v2=True``, projection head 1152 -> 2048 -> 2048 -> 2048.
The CPU variant shipped here keeps every structural element and changes only sizes: feature_size 12
(MONAI's minimum), window 4 (the feature maps of 32x64x32 crops are 16x32x16; a 7^3 window would be
mostly padding and 4x slower on CPU), projection head 288 -> 512 -> 512 -> 512.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fmzoo.core import HubMixin
from torch import nn

from ..spec import MR_SPEC_HIPPOCAMPUS, VolumeInput, check_network_input

ENCODER_PREFIXES = ("swinViT.", "encoder1.", "encoder2.", "encoder3.", "encoder4.", "encoder10.")


def build_swinunetr(in_channels=1, out_channels=3, feature_size=12, window_size=4, depths=(2, 2, 2, 2),
                    num_heads=(3, 6, 12, 24), use_v2=True, dropout_path_rate=0.0):
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(
        in_channels=in_channels, out_channels=out_channels, feature_size=feature_size,
        window_size=window_size, depths=tuple(depths), num_heads=tuple(num_heads), use_v2=use_v2,
        dropout_path_rate=dropout_path_rate, norm_name="instance",
    )


class ProjectionHead(nn.Module):
    """VoCo's projection head: Linear-BN(no affine, no running stats)-ReLU x2, then Linear."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Linear(in_dim, hidden_dim),
                                    nn.BatchNorm1d(hidden_dim, affine=False, track_running_stats=False), nn.ReLU(True))
        self.layer2 = nn.Sequential(nn.Linear(hidden_dim, hidden_dim),
                                    nn.BatchNorm1d(hidden_dim, affine=False, track_running_stats=False), nn.ReLU(True))
        self.layer3 = nn.Sequential(nn.Linear(hidden_dim, out_dim))

    def forward(self, x):
        return self.layer3(self.layer2(self.layer1(x)))


class VoCo(nn.Module, HubMixin):
    """The VoCo backbone: SwinUNETR's encoder path (Swin-ViT + encoder1-4 + encoder10) and projection head.

    ``forward(x) -> (B, proj_dim)`` projected crop features (what VoCo contrasts);
    ``features(x) -> (B, 24 * feature_size)`` pooled multi-scale features;
    ``to_swinunetr(out_channels)`` -> a MONAI SwinUNETR whose encoder carries these weights.
    """

    input_spec_class = VolumeInput

    def __init__(self, in_channels: int = 1, feature_size: int = 12, window_size: int = 4,
                 depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), use_v2: bool = True,
                 proj_hidden: int = 512, proj_out: int = 512, input_spec: dict | None = None):
        super().__init__()
        net = build_swinunetr(in_channels, 2, feature_size, window_size, depths, num_heads, use_v2)
        self.swinViT = net.swinViT
        self.encoder1, self.encoder2, self.encoder3 = net.encoder1, net.encoder2, net.encoder3
        self.encoder4, self.encoder10 = net.encoder4, net.encoder10
        self.normalize = True
        self.feat_dim = feature_size * (1 + 1 + 2 + 4 + 16)
        self.proj_head = ProjectionHead(self.feat_dim, proj_hidden, proj_out)
        self.input_spec = dict(input_spec or MR_SPEC_HIPPOCAMPUS)

    def encode(self, x):
        hidden = self.swinViT(x, self.normalize)
        return [self.encoder1(x), self.encoder2(hidden[0]), self.encoder3(hidden[1]),
                self.encoder4(hidden[2]), self.encoder10(hidden[4])]

    def features(self, x):
        check_network_input(x, self.input_spec)
        encs = self.encode(x)
        return torch.cat([F.adaptive_avg_pool3d(e, 1).flatten(1) for e in encs], dim=1)

    def forward(self, x):
        return self.proj_head(self.features(x))

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if k.startswith(ENCODER_PREFIXES)}

    def to_swinunetr(self, out_channels: int):
        a = self.init_args
        net = build_swinunetr(a.get("in_channels", 1), out_channels, a.get("feature_size", 12),
                              a.get("window_size", 4), a.get("depths", (2, 2, 2, 2)),
                              a.get("num_heads", (3, 6, 12, 24)), a.get("use_v2", True))
        load_into_swinunetr(net, self.encoder_state_dict(), require_prefixes=ENCODER_PREFIXES)
        return net


class VolumeFusionNet(nn.Module, HubMixin):
    """Volume Fusion (MIS-FM) pretraining network: a full MONAI SwinUNETR predicting the fusion class
    (``num_classes`` = number of discrete fusion coefficients) of every voxel.

    Network choice: MIS-FM's own PCT-Net is not reimplemented; we use MONAI's SwinUNETR (same
    configuration as the VoCo backbone) so that scratch, VoCo and Volume Fusion are compared on one
    architecture downstream. Every weight except the 1x1x1 output layer transfers to segmentation.
    """

    input_spec_class = VolumeInput

    def __init__(self, in_channels: int = 1, num_classes: int = 5, feature_size: int = 12, window_size: int = 4,
                 depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), use_v2: bool = True, input_spec: dict | None = None):
        super().__init__()
        net = build_swinunetr(in_channels, num_classes, feature_size, window_size, depths, num_heads, use_v2)
        for name, child in net.named_children():
            self.add_module(name, child)
        self.normalize = net.normalize
        self.input_spec = dict(input_spec or MR_SPEC_HIPPOCAMPUS)

    def _check_input_size(self, spatial_shape):  # used by SwinUNETR.forward
        check_network_input(torch.zeros(1, 1, *spatial_shape), None)  # zeros: torch.empty may hold NaN

    def forward(self, x):
        from monai.networks.nets import SwinUNETR

        check_network_input(x, self.input_spec)
        return SwinUNETR.forward(self, x)

    def to_swinunetr(self, out_channels: int):
        a = self.init_args
        net = build_swinunetr(a.get("in_channels", 1), out_channels, a.get("feature_size", 12),
                              a.get("window_size", 4), a.get("depths", (2, 2, 2, 2)),
                              a.get("num_heads", (3, 6, 12, 24)), a.get("use_v2", True))
        sd = {k: v for k, v in self.state_dict().items() if not k.startswith("out.")}
        load_into_swinunetr(net, sd, require_prefixes=ENCODER_PREFIXES + ("decoder",))
        return net


class SwinUNETRSegmenter(nn.Module, HubMixin):
    """A fine-tuned SwinUNETR segmenter carrying its input spec; ``predict`` runs sliding-window inference."""

    input_spec_class = VolumeInput

    def __init__(self, in_channels: int = 1, out_channels: int = 3, feature_size: int = 12, window_size: int = 4,
                 depths=(2, 2, 2, 2), num_heads=(3, 6, 12, 24), use_v2: bool = True, input_spec: dict | None = None):
        super().__init__()
        self.net = build_swinunetr(in_channels, out_channels, feature_size, window_size, depths, num_heads, use_v2)
        self.input_spec = dict(input_spec or MR_SPEC_HIPPOCAMPUS)

    def forward(self, x):
        check_network_input(x, self.input_spec)
        return self.net(x)

    @torch.no_grad()
    def predict(self, x, overlap: float = 0.5, sw_batch_size: int = 4):
        check_network_input(x, self.input_spec, sliding=True)
        return sliding_window_logits(self.net, x, self.input_spec["roi_size"], overlap, sw_batch_size).argmax(1)


def sliding_window_logits(net, x: torch.Tensor, roi_size, overlap: float = 0.5, sw_batch_size: int = 4) -> torch.Tensor:
    """MONAI sliding-window inference (Gaussian blending) of a whole volume batch (B, C, X, Y, Z) of any size."""
    from monai.inferers import sliding_window_inference

    out = sliding_window_inference(x, roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, predictor=net,
                                   overlap=overlap, mode="gaussian")
    return out.as_tensor() if hasattr(out, "as_tensor") else out


def load_into_swinunetr(net: nn.Module, state_dict: dict, require_prefixes=ENCODER_PREFIXES) -> dict:
    """Load ``state_dict`` into a MONAI SwinUNETR by name. Every SwinUNETR key under ``require_prefixes``
    must be present with the same shape (else a clear error); returns {"loaded", "missing", "unexpected"}."""
    from fmzoo.core import CheckpointError

    own = net.state_dict()
    unexpected = sorted(k for k in state_dict if k not in own)
    mismatched = sorted(k for k in state_dict if k in own and tuple(state_dict[k].shape) != tuple(own[k].shape))
    required = [k for k in own if k.startswith(tuple(require_prefixes))]
    absent = sorted(k for k in required if k not in state_dict)
    if mismatched or absent:
        detail = []
        if mismatched:
            k = mismatched[0]
            detail.append(f"{len(mismatched)} shape mismatches (e.g. {k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)})")
        if absent:
            detail.append(f"{len(absent)} required keys absent (e.g. {absent[0]})")
        raise CheckpointError("state dict does not fit this SwinUNETR: " + "; ".join(detail))
    merged = dict(own)
    loaded = []
    for k, v in state_dict.items():
        if k in own:
            merged[k] = v.to(own[k].dtype)
            loaded.append(k)
    net.load_state_dict(merged, strict=True)
    return {"loaded": sorted(loaded), "missing": sorted(k for k in own if k not in state_dict), "unexpected": unexpected}
