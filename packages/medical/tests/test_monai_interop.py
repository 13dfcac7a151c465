"""MONAI interop: the input spec as a MONAI Compose (the path ``preprocess`` itself runs), its inverse, and MONAI
bundle export read back by ``monai.bundle`` offline."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from fmzoo.core import from_pretrained
from fmzoo.core.errors import UsageError
from fmzoo.medical.monai_interop import export_bundle
from fmzoo.medical.spec import (
    CT_SPEC_VOCO_PAPER,
    MR_SPEC_HIPPOCAMPUS,
    monai_transforms,
    preprocess,
    read_nifti,
    read_volume,
)


def _anisotropic(hippo_root, tmp_path, case="hippocampus_001", zooms=(0.8, 1.0, 1.5)):
    """A real hippocampus volume and its label, the same voxels declared anisotropic (resampled to 1 mm)."""
    out = []
    for kind in ("images", "labels"):
        img = nib.load(str(hippo_root / kind / f"{case}.nii.gz"))
        aff = img.affine.copy()
        aff[:3, :3] = aff[:3, :3] @ np.diag(zooms)
        p = tmp_path / f"{kind}_{case}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff, img.header), p)
        out.append(p)
    return out


@pytest.mark.parametrize("setting", ["1mm", "anisotropic", "ct"])
def test_preprocess_is_the_monai_chain(setting, hippo_root, totalseg_root, tmp_path):
    """fmzoo's preprocess and monai_transforms(spec) give the same arrays, image and label, at 1 mm (nothing to
    resample), 0.8 x 1.0 x 1.5 mm -> 1 mm (MR percentiles) and 3 mm CT -> 1.5 mm (HU window)."""
    if setting == "1mm":
        image, label = (hippo_root / k / "hippocampus_001.nii.gz" for k in ("images", "labels"))
        spec = MR_SPEC_HIPPOCAMPUS
    elif setting == "anisotropic":
        (image, label), spec = _anisotropic(hippo_root, tmp_path), MR_SPEC_HIPPOCAMPUS
    else:
        image, label, spec = totalseg_root / "example_ct_sm.nii.gz", None, CT_SPEC_VOCO_PAPER
    ours = preprocess(read_volume(image), spec)
    chain = monai_transforms(spec, label_key="label" if label else None)
    out = chain({"image": str(image), **({"label": str(label)} if label else {})})
    ref = out["image"][0].numpy()
    assert ref.shape == ours.shape and float(np.abs(ref - ours).max()) <= 1e-6
    if label:
        ours_y = preprocess(read_volume(label), spec, label=True)
        assert np.array_equal(out["label"][0].numpy().astype(np.int64), ours_y)
        assert set(np.unique(ours_y)) <= {0, 1, 2}


def test_the_chain_inverts_a_label_map_back_to_the_input_grid(hippo_root, tmp_path):
    """2 mm -> 1 mm and back: nearest-neighbour labels return exactly, on the original affine."""
    lab = nib.load(str(hippo_root / "labels" / "hippocampus_001.nii.gz"))
    y = np.asarray(lab.dataobj)[::2, ::2, ::2].astype(np.float32)
    img = nib.load(str(hippo_root / "images" / "hippocampus_001.nii.gz"))
    x = np.asarray(img.dataobj)[::2, ::2, ::2].astype(np.float32)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(x, aff), tmp_path / "x.nii.gz")
    nib.save(nib.Nifti1Image(y, aff), tmp_path / "y.nii.gz")
    chain = monai_transforms(MR_SPEC_HIPPOCAMPUS)
    out = chain({"image": str(tmp_path / "x.nii.gz"), "label": str(tmp_path / "y.nii.gz")})
    assert tuple(out["label"].shape[1:]) == tuple(2 * s - 1 for s in y.shape)
    back = chain.inverse(out)
    assert tuple(back["label"].shape[1:]) == y.shape
    assert np.array_equal(back["label"][0].numpy(), y)
    assert np.allclose(back["label"].affine.numpy(), aff)


@pytest.fixture(scope="module")
def voco_bundle(tmp_path_factory):
    return export_bundle("fmzoo/voco-small", tmp_path_factory.mktemp("b") / "voco_bundle")


def test_bundle_metadata_reads_with_monai_bundle(voco_bundle):
    import monai
    from monai.bundle import ConfigParser

    meta = ConfigParser.load_config_file(str(voco_bundle / "configs" / "metadata.json"))
    for key in ("version", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
                "task", "description", "authors", "copyright", "network_data_format", "changelog"):
        assert key in meta, key
    assert meta["monai_version"] == monai.__version__
    image = meta["network_data_format"]["inputs"]["image"]
    assert image["num_channels"] == 1 and image["spatial_shape"] == [32, 64, 32] and image["modality"] == "MR"
    assert meta["network_data_format"]["outputs"]["pred"]["format"] == "segmentation"
    parser = ConfigParser()
    parser.read_meta(str(voco_bundle / "configs" / "metadata.json"))
    assert parser.get("_meta_")["version"] == "0.1.0"
    assert (voco_bundle / "docs" / "README.md").read_text().startswith("---")  # the checkpoint's card


def test_bundle_inference_config_builds_the_network_with_the_checkpoint_weights(voco_bundle, hippo_root, tmp_path):
    from monai.bundle import ConfigParser
    from monai.networks.nets import SwinUNETR

    parser = ConfigParser()
    parser.read_config(str(voco_bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(voco_bundle)
    parser["device"] = "$torch.device('cpu')"
    data = tmp_path / "data"
    data.mkdir()
    case = hippo_root / "images" / "hippocampus_001.nii.gz"
    (data / case.name).write_bytes(case.read_bytes())
    parser["dataset_dir"] = str(data)
    parser["output_dir"] = str(tmp_path / "eval")
    net = parser.get_parsed_content("network")
    assert isinstance(net, SwinUNETR)
    parser.get_parsed_content("load_weights")
    voco = from_pretrained("fmzoo/voco-small")
    own = net.state_dict()
    for k, v in voco.encoder_state_dict().items():
        assert torch.equal(own[k], v.to(own[k].dtype)), k
    # the bundle's preprocessing is the spec's: the same array as fmzoo's preprocess
    item = parser.get_parsed_content("dataset")[0]
    assert np.allclose(item["image"][0].numpy(), preprocess(read_nifti(case), voco.input_spec), atol=1e-6)
    torch.manual_seed(0)
    net.eval()
    out = parser.get_parsed_content("infer")(item)  # sliding window, inverted onto the input grid, argmax, saved
    assert tuple(out["pred"].shape[1:]) == read_nifti(case).array.shape
    assert len(list((tmp_path / "eval").glob("*.nii.gz"))) == 1


def test_bundle_weights_are_safetensors_and_export_never_overwrites(voco_bundle, tmp_path):
    from safetensors import safe_open

    with safe_open(str(voco_bundle / "models" / "model.safetensors"), "pt") as f:
        assert "swinViT.patch_embed.proj.weight" in f.keys()
        assert not any(k.startswith("proj_head.") for k in f.keys())  # VoCo's projection head is no SwinUNETR layer
    assert not list(voco_bundle.rglob("*.pt")) and not list(voco_bundle.rglob("*.pth"))
    with pytest.raises(UsageError, match="exists and is not empty"):
        export_bundle("fmzoo/voco-small", voco_bundle)
    with pytest.raises(UsageError, match="expected a fmzoo-medical model"):
        export_bundle(torch.nn.Linear(2, 2), tmp_path / "x")


def test_volume_fusion_bundle_loads_strictly(tmp_path):
    from monai.bundle import ConfigParser

    out = export_bundle("fmzoo/volumefusion-small", tmp_path / "vf")
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 5
    parser = ConfigParser()
    parser.read_config(str(out / "configs" / "inference.json"))
    parser["bundle_root"] = str(out)
    parser["device"] = "$torch.device('cpu')"
    parser.get_parsed_content("load_weights")  # strict=True: every SwinUNETR weight is in the file
