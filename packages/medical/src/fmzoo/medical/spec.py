"""Reading 3D medical volumes and the input spec that travels with the weights.

An input spec is a JSON dict stored in a checkpoint's config.json::

    {"modality": "MR" | "CT",
     "axcodes": "RAS",                      # orientation the network was trained in
     "spacing": [1.0, 1.0, 1.0],            # mm, in the axcodes order
     "spacing_tolerance": 0.05,             # relative
     "intensity": {"kind": "percentile", "lower": 0.5, "upper": 99.5, "b_min": 0.0, "b_max": 1.0}
               or {"kind": "window", "a_min": -175.0, "a_max": 250.0, "b_min": 0.0, "b_max": 1.0},
     "roi_size": [32, 64, 32],              # crop / sliding-window size
     "in_channels": 1}

``preprocess(volume, spec)`` applies it: reorient to ``axcodes`` (a documented conversion), resample
to ``spacing`` when it differs (documented conversion; ``resample=False`` makes it an error instead),
then the intensity window (CT, Hounsfield units) or percentile normalisation (MR). Bad inputs raise
``fmzoo.core.InputSpecError`` naming what was expected and what was given: a 2D image, a 4D/
multi-channel image, a file that is corrupt or truncated, a header without spatial information
(missing spacing), NaN/Inf voxels, or a volume that does not look like the spec's modality.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError

MR_SPEC_HIPPOCAMPUS = {
    "modality": "MR",
    "axcodes": "RAS",
    "spacing": [1.0, 1.0, 1.0],
    "spacing_tolerance": 0.05,
    "intensity": {"kind": "percentile", "lower": 0.5, "upper": 99.5, "b_min": 0.0, "b_max": 1.0},
    "roi_size": [32, 64, 32],
    "in_channels": 1,
}

# The VoCo paper's CT preprocessing (Luffy03/VoCo voco_train.py defaults): RAS, 1.5 mm, HU window
# [-175, 250] -> [0, 1]; 96^3 sub-volumes (resized to 64^3 during pretraining).
CT_SPEC_VOCO_PAPER = {
    "modality": "CT",
    "axcodes": "RAS",
    "spacing": [1.5, 1.5, 1.5],
    "spacing_tolerance": 0.05,
    "intensity": {"kind": "window", "a_min": -175.0, "a_max": 250.0, "b_min": 0.0, "b_max": 1.0},
    "roi_size": [96, 96, 96],
    "in_channels": 1,
}


@dataclass
class Volume:
    """A 3D scalar volume with its voxel-to-world affine (RAS+ world, as NIfTI defines it)."""

    array: np.ndarray  # (X, Y, Z) float32
    affine: np.ndarray  # 4x4
    source: str = ""
    has_spatial_info: bool = True
    meta: dict = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def axcodes(self) -> str:
        import nibabel as nib

        return "".join(nib.aff2axcodes(self.affine))


# --------------------------------------------------------------------------- readers


# NIfTI spatial units (xyzt_units & 7) -> millimetres. Code 0 ("unknown") is read as mm, the convention of ITK,
# MONAI and most writers (nibabel's own default header has code 0); codes 4-7 are undefined and refused.
NIFTI_MM_PER_UNIT = {"unknown": 1.0, "mm": 1.0, "meter": 1000.0, "micron": 1e-3}
MIN_SPACING_MM, MAX_SPACING_MM = 1e-3, 100.0  # plausible voxel sizes of a medical volume (1 um .. 10 cm)
MAX_RESAMPLED_VOXELS = 2**30  # 4 GiB of float32: the largest volume ``resample`` will allocate


def _nifti_mm_per_unit(hdr, where: str) -> float:
    try:
        unit = hdr.get_xyzt_units()[0]
    except (KeyError, ValueError):
        unit = None
    if unit not in NIFTI_MM_PER_UNIT:
        raise InputSpecError(
            f"{where!r}: the header's spatial unit code {int(hdr['xyzt_units']) & 7} (xyzt_units "
            f"{int(hdr['xyzt_units'])}) is not a NIfTI length unit (0 unknown = mm, 1 meter, 2 mm, 3 micron): "
            "voxel spacing cannot be read in millimetres"
        )
    return NIFTI_MM_PER_UNIT[unit]


def read_nifti(path: str | Path, allow_missing_spacing: bool = False) -> Volume:
    """Read a 3D NIfTI (.nii / .nii.gz) with clear errors for what cannot be a 3D volume."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputSpecError(f"{str(path)!r}: no such file")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # ImageFileError, gzip errors, header errors
        raise InputSpecError(
            f"{str(path)!r} is not a readable NIfTI file (corrupt or not NIfTI): {type(exc).__name__}: {exc}"
        ) from None
    shape = tuple(int(s) for s in img.shape)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (EOFError, OSError, ValueError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputSpecError(
            f"{str(path)!r}: the voxel data cannot be read ({type(exc).__name__}: {exc}); "
            f"the file is truncated or corrupt (header says shape {shape})"
        ) from None
    data = _as_3d(data, str(path))
    hdr = img.header
    qcode, scode = int(hdr["qform_code"]), int(hdr["sform_code"])
    to_mm = _nifti_mm_per_unit(hdr, str(path))
    zooms = [float(z) * to_mm for z in hdr.get_zooms()[:3]]
    has_spatial = (qcode > 0 or scode > 0) and all(np.isfinite(zooms)) and all(z > 0 for z in zooms)
    if not has_spatial and not allow_missing_spacing:
        raise InputSpecError(
            f"{str(path)!r} has no spatial information (qform_code={qcode}, sform_code={scode}, "
            f"pixdim={zooms}): voxel spacing and orientation are unknown. Expected a NIfTI with a qform or "
            "sform; pass allow_missing_spacing=True to assume the header's pixdim and RAS axes"
        )
    if has_spatial:
        affine = np.array(img.affine, dtype=np.float64)
        affine[:3, :] *= to_mm  # world coordinates (and so spacing) in millimetres, whatever the file's unit
    else:
        affine = np.diag([*(z if z > 0 else 1.0 for z in zooms), 1.0])
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if has_spatial and not np.all((spacing >= MIN_SPACING_MM) & (spacing <= MAX_SPACING_MM)):
        raise InputSpecError(
            f"{str(path)!r}: voxel spacing {tuple(float(f'{v:.4g}') for v in spacing)} mm (header pixdim "
            f"{tuple(float(f'{z:.4g}') for z in hdr.get_zooms()[:3])} in {hdr.get_xyzt_units()[0]!r}) is outside "
            f"[{MIN_SPACING_MM}, {MAX_SPACING_MM}] mm: wrong spatial units in the header (xyzt_units)? Fix the header "
            "(e.g. nibabel header.set_xyzt_units('mm'))"
        )
    return Volume(data, np.asarray(affine, dtype=np.float64), str(path), has_spatial,
                  {"qform_code": qcode, "sform_code": scode, "header_dtype": str(hdr.get_data_dtype())})


def read_dicom_series(directory: str | Path) -> Volume:
    """Read one DICOM series (a folder of slices) into an LPS->RAS affine volume. Needs ``pydicom``."""
    import pydicom
    directory = Path(directory)
    files = sorted(p for p in directory.iterdir() if p.is_file())
    if not files:
        raise InputSpecError(f"{str(directory)!r} holds no DICOM files")
    slices = []
    for f in files:
        try:
            ds = pydicom.dcmread(str(f))
            arr = ds.pixel_array.astype(np.float32)
        except Exception as exc:
            raise InputSpecError(f"{str(f)!r} is not a readable DICOM slice: {type(exc).__name__}: {exc}") from None
        if not hasattr(ds, "ImagePositionPatient") or not hasattr(ds, "PixelSpacing"):
            raise InputSpecError(f"{str(f)!r} lacks ImagePositionPatient/PixelSpacing: spacing is unknown")
        arr = arr * float(getattr(ds, "RescaleSlope", 1.0)) + float(getattr(ds, "RescaleIntercept", 0.0))
        slices.append((ds, arr))
    if len(slices) < 2:
        raise InputSpecError(f"{str(directory)!r} holds a single slice: a 2D image, expected a 3D series")
    ds0 = slices[0][0]
    row, col = np.array(ds0.ImageOrientationPatient[:3], float), np.array(ds0.ImageOrientationPatient[3:], float)
    normal = np.cross(row, col)
    slices.sort(key=lambda s: float(np.dot(normal, np.array(s[0].ImagePositionPatient, float))))
    pos = np.array([np.array(s[0].ImagePositionPatient, float) for s in slices])
    dz = float(np.median(np.diff(pos @ normal)))
    if not np.isfinite(dz) or dz <= 0:
        raise InputSpecError(f"{str(directory)!r}: slice positions do not give a positive spacing ({dz})")
    dr, dc = (float(v) for v in ds0.PixelSpacing)  # row spacing (between rows), column spacing
    # pixel_array is (rows, cols); index (i=col, j=row, k=slice) in LPS: x = pos + i*dc*row + j*dr*col + k*dz*n
    vol = np.stack([s[1].T for s in slices], axis=-1)  # (cols, rows, slices)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = row * dc, col * dr, normal * dz, pos[0]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS -> RAS
    return Volume(vol.astype(np.float32), affine, str(directory), True, {"modality": str(getattr(ds0, "Modality", ""))})


def read_volume(path: str | Path, **kwargs) -> Volume:
    path = Path(path)
    if path.is_dir():
        return read_dicom_series(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti(path, **kwargs)
    raise InputSpecError(f"{str(path)!r}: unsupported format; expected .nii, .nii.gz or a DICOM series folder")


def _as_3d(data: np.ndarray, where: str) -> np.ndarray:
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 2 or (data.ndim == 3 and min(data.shape) == 1):
        raise InputSpecError(
            f"{where}: a 2D image of shape {tuple(data.shape)}; expected a 3D volume (X, Y, Z) with at least "
            "2 voxels along every axis"
        )
    if data.ndim != 3:
        raise InputSpecError(
            f"{where}: shape {tuple(data.shape)} has {data.ndim} dimensions; expected a single-channel 3D volume "
            "(X, Y, Z). Split multi-channel / 4D series into separate volumes first"
        )
    return data


# --------------------------------------------------------------------------- preprocessing


def validate_spec(spec: dict) -> dict:
    required = ("modality", "axcodes", "spacing", "intensity", "roi_size", "in_channels")
    missing = [k for k in required if k not in spec]
    if missing:
        raise InputSpecError(f"input spec lacks {missing}; it must hold {list(required)}")
    if spec["modality"] not in ("CT", "MR"):
        raise InputSpecError(f"input spec modality must be 'CT' or 'MR', got {spec['modality']!r}")
    kind = spec["intensity"].get("kind")
    if kind not in ("window", "percentile"):
        raise InputSpecError(f"intensity kind must be 'window' (CT) or 'percentile' (MR), got {kind!r}")
    return spec


def reorient(vol: Volume, axcodes: str) -> Volume:
    """Permute/flip the voxel array so its axes follow ``axcodes`` (e.g. 'RAS'); the affine follows."""
    import nibabel as nib
    from nibabel import orientations as nio

    cur = nio.io_orientation(vol.affine)
    tgt = nio.axcodes2ornt(tuple(axcodes))
    xform = nio.ornt_transform(cur, tgt)
    if np.array_equal(xform, np.array([[0, 1], [1, 1], [2, 1]])):
        return vol
    arr = nio.apply_orientation(vol.array, xform)
    aff = vol.affine @ nio.inv_ornt_aff(xform, vol.array.shape)
    out = Volume(np.ascontiguousarray(arr, dtype=np.float32), aff, vol.source, vol.has_spatial_info, dict(vol.meta))
    assert "".join(nib.aff2axcodes(out.affine)) == axcodes
    return out


def resample(vol: Volume, spacing, mode: str = "trilinear") -> Volume:
    cur = np.array(vol.spacing)
    tgt = np.array(spacing, dtype=float)
    new_shape = [max(2, int(round(s * c / t))) for s, c, t in zip(vol.array.shape, cur, tgt, strict=True)]
    if math.prod(new_shape) > MAX_RESAMPLED_VOXELS:  # checked before anything is allocated
        raise InputSpecError(
            f"{vol.source or 'volume'}: resampling {tuple(vol.array.shape)} voxels of "
            f"{tuple(float(f'{c:.4g}') for c in cur)} mm to {tuple(float(t) for t in tgt)} mm would give "
            f"{tuple(new_shape)} voxels (more than {MAX_RESAMPLED_VOXELS:,}); wrong spacing or units in the file?"
        )
    x = torch.from_numpy(vol.array)[None, None]
    if mode == "nearest":
        y = torch.nn.functional.interpolate(x, size=new_shape, mode="nearest")
    else:
        y = torch.nn.functional.interpolate(x, size=new_shape, mode="trilinear", align_corners=False)
    aff = vol.affine.copy()
    aff[:3, :3] = aff[:3, :3] / cur * tgt
    return Volume(y[0, 0].numpy(), aff, vol.source, vol.has_spatial_info, dict(vol.meta))


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """(C, X, Y, Z) -> (C, *size), trilinear with align_corners=True (MONAI Resized 'bilinear' in 3D): how VoCo's
    pretraining resizes volumes and crops, and how the fine-tuning protocol resizes to the pretraining scale."""
    import torch.nn.functional as F

    if tuple(x.shape[1:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=tuple(int(s) for s in size), mode="trilinear", align_corners=True)[0]


def check_modality(arr: np.ndarray, modality: str, where: str = "volume") -> None:
    """A cheap, documented plausibility check: CT is in Hounsfield units (air ~ -1000), MR is >= 0."""
    lo = float(np.percentile(arr, 0.5))
    if modality == "MR" and lo < -200:
        raise InputSpecError(
            f"{where}: expected MR intensities (non-negative), but 0.5th percentile is {lo:.0f}, which looks like CT "
            "in Hounsfield units; use a CT checkpoint or pass check_modality=False"
        )
    if modality == "CT" and float(arr.min()) > -200:
        raise InputSpecError(
            f"{where}: expected CT in Hounsfield units (air near -1000), but the minimum is {float(arr.min()):.0f}; "
            "this looks like MR or an already-normalised image. Use an MR checkpoint or pass check_modality=False"
        )


def normalize_intensity(arr: np.ndarray, intensity: dict) -> np.ndarray:
    b_min, b_max = float(intensity.get("b_min", 0.0)), float(intensity.get("b_max", 1.0))
    if intensity["kind"] == "window":
        lo, hi = float(intensity["a_min"]), float(intensity["a_max"])
    else:
        lo, hi = (float(v) for v in np.percentile(arr, [intensity["lower"], intensity["upper"]]))
    if hi <= lo:
        hi = lo + 1e-6
    out = (arr - lo) / (hi - lo)
    if intensity.get("clip", True):
        out = np.clip(out, 0.0, 1.0)
    return (out * (b_max - b_min) + b_min).astype(np.float32)


def preprocess(vol: Volume, spec: dict, resample_spacing: bool = True, check_modality_: bool = True,
               label: bool = False) -> np.ndarray:
    """Volume -> network-ready float32 array (X, Y, Z) following ``spec``; labels skip intensity steps."""
    validate_spec(spec)
    where = vol.source or "volume"
    if not np.isfinite(vol.array).all():
        raise InputSpecError(f"{where}: contains NaN or Inf voxels; expected finite intensities")
    if not vol.has_spatial_info:
        raise InputSpecError(f"{where}: missing spacing/orientation; the spec expects {spec['spacing']} mm {spec['axcodes']}")
    v = reorient(vol, spec["axcodes"])
    cur, tgt = np.array(v.spacing), np.array(spec["spacing"], dtype=float)
    tol = float(spec.get("spacing_tolerance", 0.05))
    if np.any(np.abs(cur - tgt) > tol * tgt):
        if not resample_spacing:
            raise InputSpecError(
                f"{where}: voxel spacing {tuple(round(c, 3) for c in cur)} mm differs from the spec's "
                f"{tuple(tgt)} mm (tolerance {tol:.0%}); resample first or allow resample_spacing=True"
            )
        v = resample(v, tgt, mode="nearest" if label else "trilinear")
    if label:
        return np.rint(v.array).astype(np.int64)
    if check_modality_:
        check_modality(v.array, spec["modality"], where)
    return normalize_intensity(v.array, spec["intensity"])


def check_network_input(x: torch.Tensor, spec: dict | None, divisor: int = 32, sliding: bool = False) -> None:
    """Validate a batch for a network: (B, C, X, Y, Z), finite, C = spec in_channels, sizes % divisor."""
    if not torch.is_tensor(x):
        raise InputSpecError(f"expected a torch.Tensor of shape (B, C, X, Y, Z), got {type(x).__name__}")
    if x.ndim == 4 and spec is not None:
        raise InputSpecError(
            f"got a 4D tensor {tuple(x.shape)}: a 2D image batch (B, C, H, W)? expected a 3D batch (B, C, X, Y, Z)"
        )
    if x.ndim != 5:
        raise InputSpecError(f"expected a 5D tensor (B, C, X, Y, Z), got shape {tuple(x.shape)}")
    cin = int((spec or {}).get("in_channels", x.shape[1]))
    if x.shape[1] != cin:
        raise InputSpecError(f"expected {cin} input channel(s), got {x.shape[1]} (shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        raise InputSpecError("input contains NaN or Inf")
    intensity = (spec or {}).get("intensity") or {}
    if intensity.get("kind") == "window" and intensity.get("clip", True) and x.numel():
        # a clipped window maps every voxel into [b_min, b_max]; allow augmentation-sized excursions, not raw HU
        b_min, b_max = float(intensity.get("b_min", 0.0)), float(intensity.get("b_max", 1.0))
        margin = 0.5 * (b_max - b_min)
        lo, hi = float(x.min()), float(x.max())
        if lo < b_min - margin or hi > b_max + margin:
            raise InputSpecError(
                f"input values span [{lo:.4g}, {hi:.4g}], but this network expects the {spec.get('modality', '')} "
                f"window [{intensity.get('a_min')}, {intensity.get('a_max')}] mapped to [{b_min}, {b_max}] and clipped: "
                "raw Hounsfield units? Apply fmzoo.medical.preprocess(volume, model.input_spec) first"
            )
    if not sliding and any(s % divisor for s in x.shape[2:]):
        raise InputSpecError(
            f"spatial size {tuple(x.shape[2:])} is not divisible by {divisor} (SwinUNETR's total downsampling); "
            "pad/crop to a multiple, or use sliding-window inference"
        )
