"""Released VoCo files -> ``fmzoo.core.from_pretrained(PATH)`` / catalogue ids, equal to MONAI's SwinUNETR.

Every file is written here in a released layout with random weights (nothing is downloaded):
- TPAMI (Luffy503/VoCo on the Hub, ``VoCo_{B,L,H}_SSL_head.pt``): ``Self-supervised/voco_train.py`` saves
  ``{"global_step", "state_dict": VoCoHead.state_dict()}`` under DDP, i.e. ``module.backbone.<SwinUNETR encoder>``,
  ``module.student.<projection head>``, ``module.teacher.<projection head>``;
- CVPR (``VoCo_10k.pt``): a SwinUNETR-named dict (``module.`` / ``swin_vit`` variants, as ``Finetune/BTCV/main.py``
  fixes them), or the pretraining ``VoCoHead`` with two whole networks ``student.`` / ``teacher.``.
The reference is MONAI's own ``SwinUNETR`` (what the releases are loaded into) and VoCo's pooled multi-scale encoder
features (``models/voco_head.py:Swin.forward``) computed from its modules.
"""

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fmzoo.core import CheckpointError, InputSpecError, from_pretrained
from fmzoo.core.weights import catalogue, import_weights
from fmzoo.medical.models.swin import ENCODER_PREFIXES, ProjectionHead, build_swinunetr
from fmzoo.medical.spec import CT_SPEC_VOCO_PAPER
from fmzoo.medical.weights import VoCoRelease

FS_SMALL = 12  # same layout at MONAI's smallest width, where the size does not matter (layouts, CLI)


def _reference(fs, seed=0, head=1024):
    torch.manual_seed(seed)
    return build_swinunetr(1, 21, fs, 7, use_v2=True).eval(), ProjectionHead(24 * fs, head, head)


def _tpami_release(path, fs, seed=0):
    """VoCo_{B,L,H}_SSL_head.pt as voco_train.py writes it (VoCoHead under DDP, wrapped in state_dict)."""
    ref, head = _reference(fs, seed)
    sd = {f"module.backbone.{k}": v for k, v in ref.state_dict().items() if k.startswith(ENCODER_PREFIXES)}
    for k, v in head.state_dict().items():
        sd[f"module.student.{k}"] = v
        sd[f"module.teacher.{k}"] = torch.randn_like(v)  # the EMA teacher: not what is loaded
    torch.save({"global_step": 250000, "state_dict": sd}, path)
    return ref, head


def _voco_features(net, x):
    """VoCo's Swin.forward: SwinUNETR's encoder maps, each average-pooled, concatenated."""
    h = net.swinViT(x, net.normalize)
    encs = [net.encoder1(x), net.encoder2(h[0]), net.encoder3(h[1]), net.encoder4(h[2]), net.encoder10(h[4])]
    return h, torch.cat([F.adaptive_avg_pool3d(e, 1).flatten(1) for e in encs], 1)


@pytest.fixture(scope="module")
def voco_b(tmp_path_factory):
    path = tmp_path_factory.mktemp("release") / "VoCo_B_SSL_head.pt"
    ref, head = _tpami_release(path, 48)
    return path, ref, head


def test_voco_b_release_equals_monai_swinunetr(voco_b, tmp_hub):
    """The real VoCo-B size (feature size 48, window 7, use_v2): Swin-ViT outputs and VoCo's features to 1e-5."""
    path, ref, head = voco_b
    assert VoCoRelease().detect(path)
    model = from_pretrained(path).eval()
    assert type(model).__name__ == "VoCo"
    assert (model.init_args["feature_size"], model.init_args["window_size"], model.init_args["proj_hidden"]) == (48, 7, 1024)
    x = torch.rand(1, 1, 64, 32, 32)  # the deepest map is 2x1x1 (instance norm needs more than one voxel)
    with torch.no_grad():
        h_ref, f_ref = _voco_features(ref, x)
        h = model.swinViT(x, model.normalize)
        f = model.features(x)
        z = torch.randn(4, 24 * 48)
        head_diff = (model.proj_head(z) - head(z)).abs().max().item()
    swin_diff = max((a - b).abs().max().item() for a, b in zip(h_ref, h, strict=True))
    assert swin_diff <= 1e-5 and (f - f_ref).abs().max().item() <= 1e-5 and head_diff <= 1e-5
    # the release's preprocessing travels with the weights and the network enforces it
    assert model.input_spec == CT_SPEC_VOCO_PAPER
    assert model.input_spec["spacing"] == [1.5, 1.5, 1.5] and model.input_spec["roi_size"] == [96, 96, 96]
    with pytest.raises(InputSpecError, match="raw Hounsfield units"):
        model.features(torch.full((1, 1, 32, 32, 32), -1000.0))


def test_hub_ids_from_an_offline_hf_cache(voco_b, tmp_hub, tmp_path, monkeypatch):
    path, ref, _ = voco_b
    snap = tmp_path / "hf" / "models--Luffy503--VoCo" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    try:
        os.link(path, snap / "VoCo_B_SSL_head.pt")  # the cache holds the file itself (a blob in a real cache)
    except OSError:
        shutil.copyfile(path, snap / "VoCo_B_SSL_head.pt")
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("c" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = from_pretrained("Luffy503/VoCo-B")
    mine = model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in ref.state_dict().items() if k.startswith(ENCODER_PREFIXES))
    (card_dir,) = (tmp_hub / "imported" / "voco").iterdir()
    card = (card_dir / "README.md").read_text()
    assert "license: apache-2.0" in card and "base_model: Luffy503/VoCo" in card
    prov = json.loads((card_dir / "provenance.json").read_text())["imported_from"]
    assert prov["id"] == "Luffy503/VoCo-B" and prov["files"][0]["name"] == "VoCo_B_SSL_head.pt"
    with pytest.raises(CheckpointError, match="offline"):
        from_pretrained("Luffy503/VoCo-L")  # not in this cache
    with pytest.raises(CheckpointError, match="not on the Hugging Face Hub.*fmzoo import"):
        from_pretrained("Luffy03/VoCo-10k")  # the CVPR file is on Dropbox
    with pytest.raises(CheckpointError, match="feature_size 48 network, expected 96"):
        import_weights(path, "voco", entry=catalogue()["Luffy503/VoCo-L"])  # the L id given the B file


def _cvpr_flat(path, prefix="module.", seed=1):
    """VoCo_10k.pt as the CVPR fine-tuning code reads it: SwinUNETR keys, 'module.' and 'swin_vit' to be fixed."""
    torch.manual_seed(seed)
    ref = build_swinunetr(1, 14, FS_SMALL, 7)
    torch.save({prefix + k.replace("swinViT", "swin_vit"): v for k, v in ref.state_dict().items()}, path)
    return ref


def _cvpr_head(path, seed=2):
    """The CVPR pretraining VoCoHead: two whole networks (student, EMA teacher), each with a 2048-wide head."""
    ref, head = _reference(FS_SMALL, seed, head=2048)
    sd = {}
    for who in ("student", "teacher"):
        for k, v in ref.state_dict().items():
            if k.startswith(ENCODER_PREFIXES):
                sd[f"{who}.{k}"] = v if who == "student" else torch.zeros_like(v)
        for k, v in head.state_dict().items():
            sd[f"{who}.proj_head.{k}"] = v
    torch.save({"global_step": 5, "state_dict": sd}, path)
    return ref, head


def test_cvpr_and_safetensors_layouts(tmp_hub, tmp_path):
    from safetensors.torch import save_file

    flat = _cvpr_flat(tmp_path / "VoCo_10k.pt")
    ref_h, head_h = _cvpr_head(tmp_path / "model_final.pt")
    st = _cvpr_flat(tmp_path / "tmp.pt", prefix="", seed=3)
    save_file({k.replace("swinViT", "swin_vit"): v.contiguous() for k, v in st.state_dict().items()},
              tmp_path / "voco.safetensors")
    for file, ref in (("VoCo_10k.pt", flat), ("model_final.pt", ref_h), ("voco.safetensors", st)):
        model = from_pretrained(tmp_path / file)
        mine = model.state_dict()
        for k, v in ref.state_dict().items():
            if k.startswith(ENCODER_PREFIXES):
                assert torch.equal(mine[k], v), (file, k)
    assert torch.equal(mine["encoder10.layer.conv1.conv.weight"], st.encoder10.layer.conv1.conv.weight)
    head_model = from_pretrained(tmp_path / "model_final.pt")  # the student's head, not the teacher's
    assert head_model.init_args["proj_hidden"] == 2048
    assert torch.equal(head_model.proj_head.layer3[0].weight, head_h.layer3[0].weight)


def test_detect_is_specific_and_code_in_a_file_never_runs(tmp_hub, tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    assert not VoCoRelease().detect(tmp_path / "other.pt")
    assert not VoCoRelease().detect(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _cvpr_flat(tmp_path / "VoCo_10k.pt")
    sd = torch.load(tmp_path / "VoCo_10k.pt", weights_only=True)
    torch.save({"state_dict": sd, "optimizer": Evil()}, tmp_path / "VoCo_10k.pt")  # as the CVPR code saves optimiser objects
    assert VoCoRelease().detect(tmp_path / "VoCo_10k.pt")  # from the names in the pickle, without unpickling
    with pytest.raises(CheckpointError, match="does not unpickle"):
        from_pretrained(tmp_path / "VoCo_10k.pt")
    assert not marker.exists()
    torch.save({"state_dict": {k: v for k, v in sd.items() if "encoder10" not in k or "conv1" not in k}},
               tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="not a complete VoCo encoder"):
        import_weights(tmp_path / "partial.pt", "voco")


def _ct_pairs(folder, n=3, shape=(40, 36, 32)):
    """Synthetic CT cases in HU at 1.5 mm with a two-class label (the layout `--data` reads)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    aff = np.diag([1.5, 1.5, 1.5, 1.0])
    for i in range(n):
        img = rng.normal(-800, 100, shape).astype(np.float32)
        lab = np.zeros(shape, np.int16)
        lab[10:25, 8:20, 6:18] = 1
        img[lab == 1] = rng.normal(60, 20, int(lab.sum()))
        nib.save(nib.Nifti1Image(img, aff), folder / f"case{i}_image.nii.gz")
        nib.save(nib.Nifti1Image(lab, aff), folder / f"case{i}_label.nii.gz")


def test_cli_finetune_on_an_imported_voco_file(tmp_hub, tmp_path, capsys):
    from fmzoo.core.cli import main

    _tpami_release(tmp_path / "VoCo_S_SSL_head.pt", FS_SMALL)
    _ct_pairs(tmp_path / "ct")
    # one optimiser step on one 96^3 crop (VoCo's ROI), then sliding-window Dice on the one test case
    assert main(["finetune", str(tmp_path / "VoCo_S_SSL_head.pt"), "--data", str(tmp_path / "ct"), "--seeds", "0",
                 "--n-labelled", "2", "--steps", "1", "--batch-size", "1", "--threads", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 labelled" in out and "dice" in out, out
