"""Released VoCo checkpoints -> MONAI SwinUNETR, tested on synthetic state dicts in their layouts."""

import pytest
import torch
from fmzoo.core import CheckpointError
from fmzoo.medical.models.swin import ENCODER_PREFIXES, build_swinunetr
from fmzoo.medical.weights import (
    import_voco_file,
    import_voco_state_dict,
    strip_prefixes,
    to_fmzoo_voco,
    unwrap_state_dict,
)
from safetensors.torch import save_file

FS = 12  # the released models use 48/96/192; a small width keeps the test fast, the layout is the same


def _released_like(prefix="module.backbone.", rename_swin=True, wrapper="state_dict", out_channels=21):
    """A state dict laid out like the VoCo releases: SwinUNETR(use_v2) keys under a wrapper and prefixes,
    'swin_vit' naming, a projection head, and an output layer with another class count."""
    torch.manual_seed(0)
    src = build_swinunetr(1, out_channels, FS, 7)
    sd = {}
    for k, v in src.state_dict().items():
        k2 = k.replace("swinViT", "swin_vit") if rename_swin else k
        sd[prefix + k2] = v.clone()
    sd[prefix + "proj_head.layer1.0.weight"] = torch.randn(64, 24 * FS)
    return (({wrapper: sd} if wrapper else sd), src)


def test_strip_prefixes_like_their_loader():
    sd = {"module.backbone.swin_vit.layers1.0.x": torch.zeros(1), "module.encoder1.y": torch.zeros(1)}
    assert set(strip_prefixes(sd)) == {"swinViT.layers1.0.x", "encoder1.y"}
    head = {"student.swinViT.a": torch.ones(1), "teacher.swinViT.a": torch.zeros(1)}
    assert strip_prefixes(head) == {"swinViT.a": torch.ones(1)}
    for w in ("state_dict", "network_weights", "net", "student"):
        assert set(unwrap_state_dict({w: {"a": torch.zeros(1)}, "epoch": 3})) == {"a"}


@pytest.mark.parametrize("prefix,wrapper", [("module.backbone.", "state_dict"), ("module.", None), ("", "net")])
def test_import_into_monai_layout(prefix, wrapper):
    obj, src = _released_like(prefix=prefix, wrapper=wrapper)
    net, report = import_voco_state_dict(obj, out_channels=3, feature_size=FS, window_size=7)
    mine, theirs = net.state_dict(), src.state_dict()
    enc = [k for k in mine if k.startswith(ENCODER_PREFIXES)]
    assert report["encoder_coverage"] == 1.0 and report["swin_coverage"] == 1.0
    for k in enc:
        assert torch.equal(mine[k], theirs[k]), k
    # decoder blocks transfer too (same layout); the 21-class output layer and the projection head do not
    assert torch.equal(mine["decoder1.conv_block.conv1.conv.weight"], theirs["decoder1.conv_block.conv1.conv.weight"])
    assert "out.conv.conv.weight" in report["skipped"] and "shape" in report["skipped"]["out.conv.conv.weight"]
    assert report["skipped"]["proj_head.layer1.0.weight"] == "not in SwinUNETR"
    assert not torch.equal(mine["out.conv.conv.weight"][:1], theirs["out.conv.conv.weight"][:1])


def test_raw_voco_head_keeps_student():
    torch.manual_seed(1)
    student = build_swinunetr(1, 2, FS, 7).state_dict()
    sd = {f"student.{k}": v for k, v in student.items() if k.startswith(ENCODER_PREFIXES)}
    sd.update({f"teacher.{k}": torch.zeros_like(v) for k, v in student.items() if k.startswith(ENCODER_PREFIXES)})
    net, report = import_voco_state_dict(sd, out_channels=3, feature_size=FS, window_size=7)
    assert torch.equal(net.state_dict()["swinViT.patch_embed.proj.weight"], student["swinViT.patch_embed.proj.weight"])
    assert report["encoder_coverage"] == 1.0


def test_wrong_width_or_file_is_an_error(tmp_path):
    obj, _ = _released_like()
    with pytest.raises(CheckpointError, match="feature_size"):
        import_voco_state_dict(obj, feature_size=24)
    with pytest.raises(CheckpointError, match="no tensors"):
        import_voco_state_dict({"epoch": 1})
    pt = tmp_path / "VoCo_B_SSL_head.pt"
    pt.write_bytes(b"\x80\x04junk")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint|does not unpickle"):
        import_voco_file(pt)  # read with torch.load(weights_only=True) only; junk is refused
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        import_voco_file(bad)


def test_safetensors_file_and_fmzoo_voco(tmp_path):
    obj, src = _released_like(wrapper=None)
    f = tmp_path / "voco.safetensors"
    save_file({k: v.contiguous() for k, v in obj.items()}, f)
    net, report = import_voco_file(f, out_channels=3, feature_size=FS, window_size=7)
    assert report["encoder_coverage"] == 1.0
    model, _ = to_fmzoo_voco(obj, feature_size=FS, window_size=7, proj_hidden=32, proj_out=32)
    assert torch.equal(model.encoder10.layer.conv1.conv.weight, src.encoder10.layer.conv1.conv.weight)
    assert model.input_spec["modality"] == "CT"
