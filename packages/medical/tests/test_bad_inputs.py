"""Every kind of bad input a user of fmzoo-medical can give is refused with a clear error that names what was
expected (or, where it is legal, handled correctly), and nothing is written on failure.

Entry points: the readers (``read_nifti`` / ``read_volume``), ``preprocess``, ``fmzoo evaluate/finetune --data``,
``make_segmenter`` / ``finetune`` (the README's Python fine-tuning path) and the networks themselves."""

import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.errors import UsageError
from fmzoo.medical.data.hippocampus import list_cases
from fmzoo.medical.spec import CT_SPEC_VOCO_PAPER, MR_SPEC_HIPPOCAMPUS, preprocess, read_nifti, read_volume
from fmzoo.medical.tasks.downstream import find_pairs
from fmzoo.medical.tasks.segmentation import evaluate, finetune, make_segmenter


def _img(hippo_root, case=None, kind="images"):
    return hippo_root / kind / f"{case or list_cases()[0]}.nii.gz"


def _msd(hippo_root, root, n=3):
    """A Decathlon-layout folder of n real image/label pairs."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for c in list_cases()[:n]:
        shutil.copy(_img(hippo_root, c), root / "imagesTr" / f"{c}.nii.gz")
        shutil.copy(_img(hippo_root, c, "labels"), root / "labelsTr" / f"{c}.nii.gz")
    return root


def _evaluate_cli(data, out, capsys) -> str:
    """``fmzoo evaluate fmzoo/voco-small --data DATA`` must exit 2 with a one-line error and write nothing."""
    assert main(["evaluate", "fmzoo/voco-small", "--data", str(data), "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not out.exists()
    return err


# --------------------------------------------------------------------------- files and volumes


def test_4d_nifti_is_refused(tmp_path):
    p = tmp_path / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 5), np.float32), np.eye(4)), p)
    with pytest.raises(InputSpecError, match=r"shape \(8, 8, 8, 5\) has 4 dimensions; expected a single-channel 3D"):
        read_volume(p)


def test_nan_voxels_are_refused(tmp_path, hippo_root):
    img = nib.load(str(_img(hippo_root)))
    a = np.asarray(img.dataobj, dtype=np.float32).copy()
    a[3, 4, 5] = np.nan
    p = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(a, img.affine), p)
    with pytest.raises(InputSpecError, match="NaN or Inf voxels; expected finite intensities"):
        preprocess(read_nifti(p), MR_SPEC_HIPPOCAMPUS)


def test_wrong_modality_intensities_are_refused(totalseg_root, hippo_root):
    with pytest.raises(InputSpecError, match="expected MR intensities .* looks like CT"):
        preprocess(read_nifti(totalseg_root / "example_ct_sm.nii.gz"), MR_SPEC_HIPPOCAMPUS)
    with pytest.raises(InputSpecError, match="expected CT in Hounsfield units"):
        preprocess(read_nifti(_img(hippo_root)), CT_SPEC_VOCO_PAPER)


def test_a_constant_image_is_refused(tmp_path):
    p = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.full((20, 20, 20), 7.0, np.float32), np.eye(4)), p)
    with pytest.raises(InputSpecError, match="every voxel is 7; expected an image with contrast"):
        preprocess(read_nifti(p), MR_SPEC_HIPPOCAMPUS)


def test_dicom_folder_mixing_two_series_is_refused(tmp_path, totalseg_root):
    import pydicom

    src = sorted((totalseg_root / "example_ct_dicom").iterdir())
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, f in enumerate(src):
        ds = pydicom.dcmread(str(f))
        if i % 2:  # every other slice belongs to another series (e.g. a second reconstruction)
            ds.SeriesInstanceUID = "1.2.3.4.5"
        ds.save_as(str(mixed / f.name))
    with pytest.raises(InputSpecError, match="mixes 2 DICOM series .*expected a folder holding one series"):
        read_volume(mixed)


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path, totalseg_root):
    src = sorted((totalseg_root / "example_ct_dicom").iterdir())
    gap = tmp_path / "gap"
    gap.mkdir()
    import pydicom

    z = sorted(src, key=lambda f: float(pydicom.dcmread(str(f), stop_before_pixels=True).ImagePositionPatient[2]))
    for f in z[:8] + z[9:]:  # the 9th slice is missing: the volume would be stretched
        shutil.copy(f, gap / f.name)
    with pytest.raises(InputSpecError, match="slice gaps vary .*expected evenly spaced slices"):
        read_volume(gap)


# --------------------------------------------------------------------------- --data folders (CLI)


def test_label_shape_differs_from_image(tmp_path, hippo_root, capsys):
    data = _msd(hippo_root, tmp_path / "d")
    c = list_cases()[1]
    lab = nib.load(str(data / "labelsTr" / f"{c}.nii.gz"))
    nib.save(nib.Nifti1Image(np.asarray(lab.dataobj)[:-2], lab.affine), data / "labelsTr" / f"{c}.nii.gz")
    assert "image shape" in _evaluate_cli(data, tmp_path / "out", capsys)


def test_label_on_another_grid_is_refused(tmp_path, hippo_root, capsys):
    """Same shape, but 2 mm voxels: the label would silently sit on other anatomy."""
    data = _msd(hippo_root, tmp_path / "d")
    c = list_cases()[1]
    lab = nib.load(str(data / "labelsTr" / f"{c}.nii.gz"))
    aff = lab.affine.copy()
    aff[:3, :3] *= 2
    nib.save(nib.Nifti1Image(np.asarray(lab.dataobj), aff), data / "labelsTr" / f"{c}.nii.gz")
    err = _evaluate_cli(data, tmp_path / "out", capsys)
    assert "differs from the image's" in err and "expected a label on the image's voxel grid" in err


@pytest.mark.parametrize("value,fragment", [(-1, "non-negative integer classes"), (1.5, "non-negative integer")])
def test_label_values_that_are_not_classes(tmp_path, hippo_root, capsys, value, fragment):
    data = _msd(hippo_root, tmp_path / "d")
    c = list_cases()[2]
    lab = nib.load(str(data / "labelsTr" / f"{c}.nii.gz"))
    y = np.asarray(lab.dataobj).astype(np.float32)
    y[0, 0, 0] = value
    nib.save(nib.Nifti1Image(y, lab.affine), data / "labelsTr" / f"{c}.nii.gz")
    assert fragment in _evaluate_cli(data, tmp_path / "out", capsys)


def test_missing_pairs_and_empty_folders(tmp_path, hippo_root, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no imagesTr/ + labelsTr/ folders" in _evaluate_cli(empty, tmp_path / "o1", capsys)
    only_labels = _msd(hippo_root, tmp_path / "l")
    (only_labels / "imagesTr" / f"{list_cases()[0]}.nii.gz").unlink()
    with pytest.raises(InputSpecError, match="label\\(s\\) in labelsTr/ without an image of the same name"):
        find_pairs(only_labels)
    only_images = _msd(hippo_root, tmp_path / "i")
    (only_images / "labelsTr" / f"{list_cases()[0]}.nii.gz").unlink()
    assert "without a label of the same name" in _evaluate_cli(only_images, tmp_path / "o2", capsys)
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    shutil.copy(_img(hippo_root), pairs / "a_label.nii.gz")
    with pytest.raises(InputSpecError, match="a_label has no a_image.nii.gz beside it"):
        find_pairs(pairs)
    assert "expected a folder" in _evaluate_cli(tmp_path / "absent", tmp_path / "o3", capsys)


def test_one_case_under_two_names_is_refused(tmp_path, hippo_root):
    data = _msd(hippo_root, tmp_path / "d")
    c = list_cases()[0]
    img = nib.load(str(data / "imagesTr" / f"{c}.nii.gz"))
    nib.save(img, data / "imagesTr" / f"{c}.nii")
    with pytest.raises(InputSpecError, match="name the same case; expected one file per case"):
        find_pairs(data)


# --------------------------------------------------------------------------- make_segmenter / finetune (Python API)


def test_make_segmenter_refuses_bad_arguments():
    with pytest.raises(UsageError, match="unknown backbone 'voco'.*expected 'scratch'"):
        make_segmenter("voco")
    with pytest.raises(TypeError, match="init must be 'scratch', a VoCo"):
        make_segmenter(3)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(UsageError, match="out_channels must be a positive integer"):
            make_segmenter("scratch", out_channels=bad)
    with pytest.raises(InputSpecError, match=r"roi_size.*multiples of 32.*\[32, 48, 32\]"):
        make_segmenter("scratch", roi_size=(32, 48, 32))
    with pytest.raises(UsageError, match="arch in_channels=2 but the input spec says in_channels=1"):
        make_segmenter("scratch", arch={"in_channels": 2})
    with pytest.raises(UsageError, match=r"unknown arch key\(s\) \['featuresize'\]"):
        make_segmenter("scratch", arch={"featuresize": 24})
    with pytest.raises(UsageError, match="not a valid SwinUNETR"):
        make_segmenter("scratch", arch={"feature_size": 13})
    voco = from_pretrained("fmzoo/voco-small")
    with pytest.raises(UsageError, match="input_spec in_channels=2 does not match the checkpoint's in_channels=1"):
        make_segmenter(voco, input_spec={**voco.input_spec, "in_channels": 2})
    with pytest.raises(UsageError, match="input_spec modality='CT' does not match the checkpoint's modality='MR'"):
        make_segmenter(voco, input_spec=CT_SPEC_VOCO_PAPER)
    with pytest.raises(UsageError, match="applies to 'scratch' only"):
        make_segmenter(voco, arch={"feature_size": 24})


def test_the_segmenter_refuses_bad_tensors():
    """Once a raw MONAI network: NaN in, NaN out. The network keeps MONAI's class and parameter names."""
    from monai.networks.nets import SwinUNETR

    torch.manual_seed(0)
    net = make_segmenter("scratch")
    assert type(net) is SwinUNETR and "swinViT.patch_embed.proj.weight" in net.state_dict()
    x = torch.rand(1, 1, 32, 64, 32)
    x[0, 0, 1, 2, 3] = float("nan")
    with pytest.raises(InputSpecError, match="NaN or Inf"):
        net(x)
    with pytest.raises(InputSpecError, match="expected 1 input channel"):
        net(torch.rand(1, 2, 32, 64, 32))
    ct = make_segmenter("scratch", input_spec=CT_SPEC_VOCO_PAPER)
    with pytest.raises(InputSpecError, match="raw Hounsfield units"):
        ct(torch.full((1, 1, 32, 32, 32), -1000.0))


def test_finetune_refuses_labels_that_do_not_fit(hippo_root):
    from fmzoo.medical.data.hippocampus import load_case

    x, y = load_case(list_cases()[0])
    torch.manual_seed(0)
    net = make_segmenter("scratch", out_channels=2)  # background + one class, but the labels hold 0, 1, 2
    with pytest.raises(InputSpecError, match=r"holds classes \[0, 1, 2\]; the network predicts 2 classes"):
        finetune(net, [x], [y], steps=1)
    with pytest.raises(InputSpecError, match="label 0 has shape .* but its image has shape"):
        finetune(net, [x], [y[:-1]], steps=1)
    with pytest.raises(InputSpecError, match="1 image volume\\(s\\) but 2 label volume\\(s\\)"):
        finetune(net, [x], [y, y], steps=1)
    with pytest.raises(UsageError, match="roi must be 3 positive multiples of 32"):
        finetune(net, [x], [y], roi=(30, 64, 32), steps=1)
    with pytest.raises(UsageError, match="steps must be a positive integer"):
        finetune(net, [x], [y], steps=0)


def test_a_volume_smaller_than_the_roi_is_padded_and_predicted_on_its_grid(hippo_root):
    """Legal input: a 20x24x16 crop (smaller than the 32x64x32 ROI) trains (zero-padded crops) and is predicted by
    sliding-window inference on its own grid."""
    from fmzoo.medical.data.hippocampus import load_case

    x, y = load_case(list_cases()[0])
    x, y = np.ascontiguousarray(x[:20, :24, :16]), np.ascontiguousarray(y[:20, :24, :16])
    torch.manual_seed(0)
    net = make_segmenter("scratch")
    fit = finetune(net, [x], [y], steps=1)
    assert np.isfinite(fit["final_loss"])
    res = evaluate(net, [x], [y])
    assert 0.0 <= res["mean_dice"] <= 1.0
