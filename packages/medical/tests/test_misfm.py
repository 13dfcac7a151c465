"""MIS-FM's released networks (PCT-Net, FMUNet) -> fmzoo, from files in the release's layout with random weights.

- FMUNet: the reference is PyMIC's ``pymic.net.net3d.fmunet.FMUNet`` (installed --no-deps; the file is identical to
  the release's ``net/fmunet.py``): a PyMIC checkpoint of it loads through ``fmzoo.core.from_pretrained(PATH)`` and
  gives the same logits (<= 1e-5) on a real CT crop, at the release's width.
- PCT-Net: the official network (openmedlab/MIS-FM ``net/``) is not a package; its state dict at the release's
  configuration (names, shapes, dtypes, parameter count, relative-position index checksum) was written by
  ``tests/misfm_reference.py manifest`` into ``tests/data/misfm_pctnet_release.json``. The release file is built from
  that manifest (not from fmzoo's network) and must load exactly; ``misfm_reference.py compare`` runs the numerical
  comparison against the official code where a checkout exists.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fmzoo.core import CheckpointError, InputSpecError, from_pretrained
from fmzoo.core.weights import catalogue, detect_format, import_weights
from fmzoo.medical.models.fmunet import FMUNet
from fmzoo.medical.models.pctnet import MISFM_CT_SPEC, PCTNet
from fmzoo.medical.spec import preprocess, read_nifti
from fmzoo.medical.weights import MISFMFMUNetRelease, MISFMPCTNetRelease, VoCoRelease

MANIFEST = json.loads((Path(__file__).parent / "data" / "misfm_pctnet_release.json").read_text())


def _pymic_checkpoint(sd, path, prefix=""):
    """As PyMIC's SegmentationAgent saves (valid_pred is a numpy float32 scalar), optionally with a DDP prefix."""
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = torch.optim.Adam(params, lr=1e-3)
    params[0].grad = torch.ones(2)
    opt.step()
    torch.save({"iteration": 6000, "valid_pred": np.float32(0.87),
                "model_state_dict": {prefix + k: v for k, v in sd.items()},
                "optimizer_state_dict": opt.state_dict()}, path)


def _release_from_manifest(seed=0):
    """The release's state dict built from the official manifest: random tensors of the official names and shapes;
    the relative-position index is fmzoo's, checked against the official checksum."""
    from fmzoo.medical.models.pctnet import relative_position_index

    g = torch.Generator().manual_seed(seed)
    index = relative_position_index(6)
    assert [hashlib.sha256(index.numpy().tobytes()).hexdigest()] == MANIFEST["relative_position_index_sha256"]
    sd = {}
    for name, shape, dtype in MANIFEST["state_dict"]:
        if name.endswith("relative_position_index"):
            sd[name] = index.clone()
        elif dtype == "int64":  # num_batches_tracked
            sd[name] = torch.tensor(1000, dtype=torch.int64)
        elif name.endswith("running_var"):
            sd[name] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[name] = torch.randn(shape, generator=g) * 0.02
    return sd


def test_pctnet_has_the_official_structure():
    """fmzoo's PCT-Net at the release's configuration = the official state dict: names in order, shapes, dtypes,
    parameter count (45,289,554 with 5 classes), the official relative-position index."""
    cfg = MANIFEST["config"]
    with torch.device("meta"):
        net = PCTNet(class_num=cfg["class_num"], input_size=cfg["input_size"], feature_chns=cfg["feature_chns"],
                     resolution_mode=cfg["resolution_mode"])
    ours = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in net.state_dict().items()]
    assert ours == MANIFEST["state_dict"]
    assert sum(p.numel() for p in net.parameters()) == MANIFEST["n_parameters"] == 45_289_554


def test_pctnet_release_file_loads_exactly(tmp_hub, tmp_path, totalseg_root):
    sd = _release_from_manifest()
    path = tmp_path / "pctnet_ct10k_volf.pt"
    _pymic_checkpoint(sd, path, prefix="module.")
    assert MISFMPCTNetRelease().detect(path) and not MISFMFMUNetRelease().detect(path)
    assert not VoCoRelease().detect(path) and detect_format(path).name == "misfm_pctnet"
    model = from_pretrained(path)
    assert type(model).__name__ == "PCTNet" and not model.training
    own = model.state_dict()
    assert sorted(own) == sorted(sd) and all(torch.equal(own[k], sd[k]) for k in sd)
    a = model.init_args
    assert (a["feature_chns"], a["class_num"], a["depths"], a["num_heads"], a["window_sizes"], a["resolution_mode"]) == (
        [24, 48, 128, 256, 512], 5, [2, 2, 2], [4, 8, 16], [6, 6, 6], 1)
    assert model.input_spec == MISFM_CT_SPEC and model.roi_xyz() == (128, 128, 64)
    # the converted checkpoint is cached: the pickle is read once; its provenance names the file's sha256
    assert import_weights(path) == model.checkpoint_dir
    prov = json.loads((model.checkpoint_dir / "provenance.json").read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest in json.dumps(prov)
    # the network runs on a real CT volume preprocessed with the release's spec (at a reduced size here: the release
    # ROI takes ~50 s on one CPU thread); raw HU and a wrong ROI are refused
    ct = preprocess(read_nifti(totalseg_root / "example_ct_sm.nii.gz"), {**MISFM_CT_SPEC, "spacing": [3.0, 3.0, 3.0]})
    assert ct.min() >= -1 and ct.max() <= 1
    x = torch.from_numpy(np.ascontiguousarray(ct[:64, :64, :16]))[None, None]
    with torch.no_grad():
        y = model.forward_dhw(x.permute(0, 1, 4, 3, 2))
    assert y.shape == (1, 5, 16, 64, 64) and torch.isfinite(y).all()
    with pytest.raises(InputSpecError, match=r"exactly its ROI \[128, 128, 64\]"):
        model(x)
    with pytest.raises(InputSpecError, match="raw Hounsfield units"):
        model(torch.full((1, 1, 128, 128, 64), -1000.0))


def test_pctnet_file_that_does_not_fit_is_refused(tmp_hub, tmp_path):
    sd = _release_from_manifest()
    del sd["pyramid_ct.convtrans_e4.trans.blocks.1.mlp.fc2.weight"]
    _pymic_checkpoint(sd, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"1 weights absent \(e.g. pyramid_ct.convtrans_e4"):
        import_weights(tmp_path / "partial.pt", "misfm_pctnet")
    # what the converter reads the architecture from, alone (small files)
    head = {k: sd[k] for k in ("embeddings.0.proj.weight", "embeddings.0.down1.conv.2.weight",
                               "embeddings.0.down2.conv.2.weight", "pyramid_ct.down3.conv.2.weight",
                               "pyramid_ct.down4.conv.2.weight", "pred_heads.0.out_conv0.conv.2.weight")}
    for level in ("e2", "e3", "e4"):
        key = f"pyramid_ct.convtrans_{level}.trans.blocks.0.attn.relative_position_bias_table"
        head[key] = sd[key]
    bad = {**head, "pyramid_ct.convtrans_e2.trans.blocks.0.attn.relative_position_bias_table": torch.zeros(1000, 4)}
    _pymic_checkpoint(bad, tmp_path / "bad_window.pt")
    with pytest.raises(CheckpointError, match="not \\(2w - 1\\)\\^3"):
        import_weights(tmp_path / "bad_window.pt", "misfm_pctnet")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model_state_dict": head, "scheduler": Evil()}, tmp_path / "evil.pt")
    assert MISFMPCTNetRelease().detect(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="does not unpickle"):
        from_pretrained(tmp_path / "evil.pt")
    assert not marker.exists()


def test_numpy1_scalar_in_a_2023_checkpoint_is_allowed(tmp_hub, tmp_path):
    """A file pickled under numpy 1 names ``numpy.core.multiarray.scalar``; the allow-list accepts both spellings
    (and nothing else)."""
    import zipfile

    from fmzoo.core.weights import safe_torch_load
    from fmzoo.medical.weights import _misfm_allow, read_pymic_checkpoint

    path = tmp_path / "new.pt"
    torch.save({"valid_pred": np.float32(0.5), "model_state_dict": {"project.weight": torch.ones(2)}}, path)
    old = tmp_path / "old.pt"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(item, data)
    for p in (path, old):
        with pytest.raises(CheckpointError, match="does not unpickle"):
            safe_torch_load(p)  # without the format's allow-list
        assert safe_torch_load(p, allow=_misfm_allow())["valid_pred"] == np.float32(0.5)
        sd, meta = read_pymic_checkpoint(p)
        assert list(sd) == ["project.weight"] and meta == {"valid_pred": 0.5}


def _pymic_fmunet(seed=0):
    from pymic.net.net3d.fmunet import FMUNet as Reference  # PyMIC 0.6.2 = the release's net/fmunet.py

    torch.manual_seed(seed)
    ref = Reference({"in_chns": 1, "class_num": 5, "feature_chns": [32, 64, 128, 256, 512], "dropout": 0.2,
                     "depth": 2, "res_mode": 0, "multiscale_pred": False})
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in ref.parameters():
            if p.ndim == 1:  # InstanceNorm affine and biases: not at their trivial initial values
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return ref.eval()


def test_fmunet_release_equals_pymic(tmp_hub, tmp_path, totalseg_root):
    """The release's size (feature_chns 32..512, 47.4M parameters) on a real CT crop: logits equal PyMIC's."""
    ref = _pymic_fmunet()
    path = tmp_path / "fmunet_abk1k_volf.pt"
    _pymic_checkpoint(ref.state_dict(), path)
    assert MISFMFMUNetRelease().detect(path) and not MISFMPCTNetRelease().detect(path)
    model = from_pretrained(path)
    assert type(model).__name__ == "FMUNet"
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters()) == 47_371_572
    assert (model.init_args["feature_chns"], model.init_args["res_mode"], model.init_args["depth"]) == (
        [32, 64, 128, 256, 512], 0, 2)
    ct = preprocess(read_nifti(totalseg_root / "example_ct_sm.nii.gz"), {**MISFM_CT_SPEC, "spacing": [3.0, 3.0, 3.0]})
    x = torch.from_numpy(np.ascontiguousarray(ct[:64, :64, :16]))[None, None]  # (X, Y, Z), a multiple of 16
    with torch.no_grad():
        y_ref = ref(x.permute(0, 1, 4, 3, 2)).permute(0, 1, 4, 3, 2)  # PyMIC's (D, H, W) order
        y = model(x)
    assert y.shape == (1, 5, 64, 64, 16)
    assert (y - y_ref).abs().max().item() <= 1e-5
    with pytest.raises(InputSpecError, match="divisible by"):
        model(x[..., :12])


@pytest.mark.parametrize("res_mode", [1, 2])
def test_fmunet_res_mode_read_from_the_kernels(tmp_hub, tmp_path, res_mode):
    from pymic.net.net3d.fmunet import FMUNet as Reference

    ref = Reference({"in_chns": 1, "class_num": 4, "feature_chns": [4, 8, 8, 16, 16], "dropout": 0.0,
                     "depth": 1, "res_mode": res_mode, "multiscale_pred": False}).eval()
    _pymic_checkpoint(ref.state_dict(), tmp_path / "f.pt")
    model = from_pretrained(tmp_path / "f.pt")
    assert (model.init_args["res_mode"], model.init_args["depth"], model.init_args["class_num"]) == (res_mode, 1, 4)
    x = torch.rand(1, 1, 32, 32, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x.permute(0, 1, 4, 3, 2)).permute(0, 1, 4, 3, 2), atol=1e-6)
    # fine-tuning keeps every weight but the last output convolutions
    seg = model.to_segmenter(3)
    assert seg.out_layers[0][2].weight.shape[0] == 3 and seg.input_spec == model.input_spec
    kept = {k: v for k, v in seg.state_dict().items() if not (k.startswith("out_layers.") and ".2." in k)}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in kept.items())


def test_catalogue_and_cli_import(tmp_hub, tmp_path, capsys):
    from fmzoo.core.cli import main

    cat = catalogue()
    ids = ["openmedlab/MIS-FM-PCTNet", "openmedlab/PCTNet-CT10k-VolF", "openmedlab/FMUNet-AbdomenCT1K-VolF"]
    assert all(cat[i].license == "apache-2.0" and cat[i].hf_repo is None and "MIS-FM" in cat[i].source for i in ids)
    assert [cat[i].format for i in ids] == ["misfm_pctnet", "misfm_pctnet", "misfm_fmunet"]
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(i in out for i in ids), out
    with pytest.raises(CheckpointError, match="not on the Hugging Face Hub|download"):
        from_pretrained("openmedlab/PCTNet-CT10k-VolF")
    small = FMUNet(feature_chns=[4, 8, 8, 16, 16], depth=1)  # the layout is what matters here, not the width
    _pymic_checkpoint(small.state_dict(), tmp_path / "fmunet_abk1k_volf.pt")
    assert main(["import", str(tmp_path / "fmunet_abk1k_volf.pt"), "--id", ids[2], "--out", str(tmp_path / "conv")]) == 0
    model = from_pretrained(tmp_path / "conv")
    assert type(model).__name__ == "FMUNet"
    card = (tmp_path / "conv" / "README.md").read_text()
    assert "apache-2.0" in card and ids[2] in card


def test_broken_spec_is_refused(tmp_path):
    model = FMUNet(feature_chns=[4, 8, 8, 16, 16], depth=1)
    model.input_spec = {k: v for k, v in MISFM_CT_SPEC.items() if k != "spacing"}
    with pytest.raises(InputSpecError, match="spacing"):
        model.save_pretrained(tmp_path / "m")
    with pytest.raises(InputSpecError, match="roi_size"):
        PCTNet(feature_chns=[4, 8, 8, 8, 8], num_heads=[1, 1, 1], input_spec={**MISFM_CT_SPEC, "roi_size": [64, 64, 64]})
    model.input_spec = dict(MISFM_CT_SPEC)
    model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["input_spec"]["intensity"] = {"kind": "window", "a_min": 1000.0, "a_max": -1000.0}
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputSpecError, match="a_min < a_max"):
        from_pretrained(tmp_path / "m")


def _ct_pairs(folder, n=3, shape=(40, 36, 30)):
    """Synthetic CT cases in HU at 1 mm with a two-class label (the layout `--data` reads)."""
    import nibabel as nib

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.normal(-800, 100, shape).astype(np.float32)
        lab = np.zeros(shape, np.int16)
        lab[10:25, 8:20, 6:18] = 1
        img[lab == 1] = rng.normal(60, 20, int(lab.sum()))
        nib.save(nib.Nifti1Image(img, np.eye(4)), folder / f"case{i}_image.nii.gz")
        nib.save(nib.Nifti1Image(lab, np.eye(4)), folder / f"case{i}_label.nii.gz")


@pytest.mark.parametrize("arch", ["PCTNet", "FMUNet"])
def test_cli_finetune_and_evaluate_an_imported_release(arch, tmp_hub, tmp_path, capsys):
    """The release's layout at a small width and ROI (32^3): `fmzoo import` then `fmzoo finetune` / `evaluate`."""
    from fmzoo.core.cli import main

    spec = {**MISFM_CT_SPEC, "roi_size": [32, 32, 32]}
    if arch == "PCTNet":
        net = PCTNet(class_num=5, input_size=[32, 32, 32], feature_chns=[4, 8, 8, 8, 16], num_heads=[1, 1, 2],
                     resolution_mode=0, input_spec=spec)
        options = {"input_size": [32, 32, 32], "resolution_mode": 0, "input_spec": spec}
    else:
        net = FMUNet(class_num=5, feature_chns=[4, 8, 8, 16, 16], depth=1, input_spec=spec)
        options = {"input_spec": spec}
    _pymic_checkpoint(net.state_dict(), tmp_path / "release.pt")
    out = import_weights(tmp_path / "release.pt", **options)
    model = from_pretrained(out)
    assert model.input_spec["roi_size"] == [32, 32, 32]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values(), strict=True))
    _ct_pairs(tmp_path / "ct")
    for mode in ("finetune", "evaluate"):
        assert main([mode, str(out), "--data", str(tmp_path / "ct"), "--seeds", "0", "--n-labelled", "2", "--steps",
                     "1", "--batch-size", "1", "--threads", "1", "--no-progress"]) == 0
        text = capsys.readouterr().out
        assert "2 labelled" in text and "dice" in text, text
    assert "frozen encoder" in text
