import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.medical.spec import (
    CT_SPEC_VOCO_PAPER,
    MR_SPEC_HIPPOCAMPUS,
    check_network_input,
    preprocess,
    read_nifti,
    read_volume,
    resample,
)


def _case(hippo_root, name="hippocampus_001"):
    return hippo_root / "images" / f"{name}.nii.gz"


def test_reads_real_hippocampus_and_normalises(hippo_root):
    vol = read_nifti(_case(hippo_root))
    assert vol.array.ndim == 3 and vol.axcodes == "RAS"
    assert np.allclose(vol.spacing, (1.0, 1.0, 1.0))
    x = preprocess(vol, MR_SPEC_HIPPOCAMPUS)
    assert x.shape == vol.array.shape and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    # percentile normalisation: 0.5th..99.5th percentile maps to [0, 1]
    lo, hi = np.percentile(vol.array, [0.5, 99.5])
    mid = vol.array[(vol.array > lo) & (vol.array < hi)][:50]
    assert np.allclose(x[(vol.array > lo) & (vol.array < hi)][:50], (mid - lo) / (hi - lo), atol=1e-5)


def test_2d_image_is_rejected(tmp_path):
    p = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32), np.float32), np.eye(4)), p)
    with pytest.raises(InputSpecError, match="2D image"):
        read_nifti(p)
    p3 = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 1), np.float32), np.eye(4)), p3)
    with pytest.raises(InputSpecError, match="2D image"):
        read_nifti(p3)


def test_4d_multichannel_is_rejected(tmp_path):
    p = tmp_path / "multi.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.float32), np.eye(4)), p)
    with pytest.raises(InputSpecError, match="4 dimensions"):
        read_nifti(p)


def test_truncated_and_corrupt_nifti(tmp_path, hippo_root):
    src = _case(hippo_root)
    data = src.read_bytes()
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputSpecError, match="truncated or corrupt"):
        read_nifti(trunc)
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(gzip.compress(b"not a nifti header" * 10))
    with pytest.raises(InputSpecError, match="not a readable NIfTI"):
        read_nifti(junk)
    with pytest.raises(InputSpecError, match="no such file"):
        read_nifti(tmp_path / "absent.nii.gz")
    with pytest.raises(InputSpecError, match="unsupported format"):
        read_volume(tmp_path / "x.png")


def test_missing_spacing(tmp_path):
    img = nib.Nifti1Image(np.random.rand(10, 10, 10).astype(np.float32), None)
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    p = tmp_path / "nospace.nii"
    nib.save(img, p)
    with pytest.raises(InputSpecError, match="no spatial information"):
        read_nifti(p)
    vol = read_nifti(p, allow_missing_spacing=True)
    assert not vol.has_spatial_info
    with pytest.raises(InputSpecError, match="missing spacing"):
        preprocess(vol, MR_SPEC_HIPPOCAMPUS)


def test_wrong_orientation_is_converted(tmp_path, hippo_root):
    vol = read_nifti(_case(hippo_root))
    # the same voxels stored LPS-flipped (x and y reversed), with the matching affine
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[0, 3], flip[1, 3] = vol.array.shape[0] - 1, vol.array.shape[1] - 1
    aff = vol.affine @ flip
    p = tmp_path / "lps.nii.gz"
    nib.save(nib.Nifti1Image(vol.array[::-1, ::-1].copy(), aff), p)
    other = read_nifti(p)
    assert other.axcodes == "LPS"
    a = preprocess(vol, MR_SPEC_HIPPOCAMPUS)
    b = preprocess(other, MR_SPEC_HIPPOCAMPUS)
    assert np.array_equal(a, b)


def test_spacing_is_resampled_or_rejected(tmp_path, hippo_root):
    vol = read_nifti(_case(hippo_root))
    p = tmp_path / "2mm.nii.gz"
    nib.save(nib.Nifti1Image(vol.array[::2, ::2, ::2].copy(), np.diag([2.0, 2.0, 2.0, 1.0])), p)
    v2 = read_nifti(p)
    x = preprocess(v2, MR_SPEC_HIPPOCAMPUS)
    # MONAI Spacing (as VoCo's training): the corner voxel centres stay, so n voxels of 2 mm become 2n - 1 of 1 mm,
    # and every 2 mm voxel's value sits unchanged at every second 1 mm voxel
    assert x.shape == tuple(2 * s - 1 for s in v2.array.shape)
    up = resample(v2, (1.0, 1.0, 1.0))
    assert np.allclose(up.array[::2, ::2, ::2], v2.array, atol=1e-3)
    assert np.allclose(up.spacing, (1, 1, 1)) and np.allclose(up.affine[:3, 3], v2.affine[:3, 3])
    with pytest.raises(InputSpecError, match="differs from the spec"):
        preprocess(v2, MR_SPEC_HIPPOCAMPUS, resample_spacing=False)


def test_modality_check_and_ct_window(totalseg_root):
    ct = read_nifti(totalseg_root / "example_ct_sm.nii.gz")
    with pytest.raises(InputSpecError, match="looks like CT"):
        preprocess(ct, MR_SPEC_HIPPOCAMPUS)
    x = preprocess(ct, CT_SPEC_VOCO_PAPER)  # 3 mm -> 1.5 mm, HU window [-175, 250] -> [0, 1]
    assert x.min() == 0.0 and x.max() == 1.0
    assert x.shape[0] == pytest.approx(2 * ct.array.shape[0], abs=1)
    mr = read_nifti(totalseg_root / "example_mr_sm.nii.gz")
    with pytest.raises(InputSpecError, match="looks like MR"):
        preprocess(mr, CT_SPEC_VOCO_PAPER)


def test_nan_volume_is_rejected(tmp_path):
    a = np.random.rand(8, 8, 8).astype(np.float32)
    a[1, 2, 3] = np.nan
    p = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(a, np.eye(4)), p)
    with pytest.raises(InputSpecError, match="NaN"):
        preprocess(read_nifti(p), MR_SPEC_HIPPOCAMPUS)


def test_network_input_checks():
    spec = MR_SPEC_HIPPOCAMPUS
    with pytest.raises(InputSpecError, match="2D image batch"):
        check_network_input(torch.zeros(1, 1, 32, 32), spec)
    with pytest.raises(InputSpecError, match="1 input channel"):
        check_network_input(torch.zeros(1, 2, 32, 64, 32), spec)
    with pytest.raises(InputSpecError, match="not divisible by 32"):
        check_network_input(torch.zeros(1, 1, 35, 64, 32), spec)
    check_network_input(torch.zeros(1, 1, 35, 64, 32), spec, sliding=True)
    bad = torch.zeros(1, 1, 32, 64, 32)
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(InputSpecError, match="NaN"):
        check_network_input(bad, spec)


def test_dicom_series_reads(totalseg_root):
    vol = read_volume(totalseg_root / "example_ct_dicom")
    assert vol.array.shape[-1] == 20 and vol.array.min() < -500  # CT in HU
    seg = read_nifti(totalseg_root / "example_seg_dicom.nii.gz")
    assert vol.array.shape == seg.array.shape


def test_copy_of_real_file_roundtrips(tmp_path, hippo_root):
    dst = tmp_path / "copy.nii.gz"
    shutil.copy(_case(hippo_root), dst)
    assert np.array_equal(read_nifti(dst).array, read_nifti(_case(hippo_root)).array)


def _with_units(src, dst, unit, scale, code=None):
    """A real volume rewritten with its world coordinates in another NIfTI spatial unit (``scale`` file units per
    mm), or with a raw ``xyzt_units`` code."""
    img = nib.load(str(src))
    aff = img.affine.copy()
    aff[:3, :] *= scale
    out = nib.Nifti1Image(np.asarray(img.dataobj), aff, img.header.copy())
    out.header.set_xyzt_units(xyz=unit)
    if code is not None:
        out.header["xyzt_units"] = code
    nib.save(out, dst)
    return dst


@pytest.mark.parametrize("unit,scale", [("meter", 1e-3), ("micron", 1e3), ("mm", 1.0)])
def test_spatial_units_are_read_as_millimetres(tmp_path, hippo_root, unit, scale):
    """1 mm voxels stored in metres (pixdim 0.001) or microns (pixdim 1000) read as 1 mm: once a silent 2x2x2
    volume, or a 259 TB allocation."""
    ref = read_nifti(_case(hippo_root))
    vol = read_nifti(_with_units(_case(hippo_root), tmp_path / f"{unit}.nii.gz", unit, scale))
    assert nib.load(str(tmp_path / f"{unit}.nii.gz")).header.get_xyzt_units()[0] == unit
    assert vol.spacing == pytest.approx(ref.spacing, rel=1e-5)
    assert np.allclose(vol.affine, ref.affine, rtol=1e-5, atol=1e-4)
    assert np.array_equal(preprocess(vol, MR_SPEC_HIPPOCAMPUS), preprocess(ref, MR_SPEC_HIPPOCAMPUS))


def test_unknown_units_and_absurd_spacing_are_refused(tmp_path, hippo_root):
    src = _case(hippo_root)
    with pytest.raises(InputSpecError, match="unit code 5 .*not a NIfTI length unit"):
        read_nifti(_with_units(src, tmp_path / "code5.nii.gz", "mm", 1.0, code=5))
    # 1 mm pixdim labelled as metres: 1000 mm voxels, not a medical volume
    with pytest.raises(InputSpecError, match=r"outside \[0.001, 100.0\] mm: wrong spatial units"):
        read_nifti(_with_units(src, tmp_path / "m.nii.gz", "meter", 1.0))
    # 1 mm pixdim labelled as microns: 1 um voxels are at the limit, 0.5 um beyond it
    with pytest.raises(InputSpecError, match="outside"):
        read_nifti(_with_units(src, tmp_path / "um.nii.gz", "micron", 0.5))
    # code 0 ("unknown", nibabel's default) is read as mm, as ITK and MONAI do
    assert read_nifti(_with_units(src, tmp_path / "unknown.nii.gz", "unknown", 1.0)).spacing == pytest.approx((1, 1, 1))


def test_resampled_size_is_bounded_before_allocating(tmp_path, hippo_root):
    """50 mm voxels are a legal header, but resampling the hippocampus crop to 1 mm would need ~10^10 voxels."""
    big = read_nifti(_with_units(_case(hippo_root), tmp_path / "50mm.nii.gz", "mm", 50.0))
    assert big.spacing == pytest.approx((50, 50, 50))
    with pytest.raises(InputSpecError, match="would give .* voxels \\(more than 1,073,741,824\\)"):
        preprocess(big, MR_SPEC_HIPPOCAMPUS)
