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

``preprocess(volume, spec)`` applies it with MONAI's transforms (as VoCo's training code does): reorient to
``axcodes`` (``Orientation``, a documented conversion), resample to ``spacing`` when it differs by more than
``spacing_tolerance`` (``Spacing``, documented conversion; ``resample_spacing=False`` makes it an error instead),
then the intensity window (CT, Hounsfield units: ``ScaleIntensityRange``) or percentile normalisation (MR:
``ScaleIntensityRangePercentiles``). ``monai_transforms(spec)`` is the same chain as a MONAI ``Compose``. Bad inputs raise
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
from fmzoo.core.spec import InputSpec

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


_AXES = ({"L", "R"}, {"A", "P"}, {"S", "I"})
ROI_DIVISOR = 32  # SwinUNETR's total downsampling (patch embedding 2 x four 2x merges): crops must be multiples


def _positive_numbers(value, n: int) -> bool:
    return (isinstance(value, list) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                    for v in value))


class VolumeInput(InputSpec):
    """A 3D CT or MR volume (what every medical network here takes), as ``preprocess`` and the networks read it:

    - ``modality``: "CT" (Hounsfield units) or "MR"; ``check_modality`` tests the raw intensities against it;
    - ``axcodes``: the orientation the network was trained in, one letter per axis from L/R, A/P, S/I ("RAS");
    - ``spacing``: 3 positive voxel sizes in mm (in the axcodes order); ``spacing_tolerance`` (optional, default
      0.05): the relative difference below which a volume is not resampled, in [0, 1);
    - ``intensity``: {"kind": "window", "a_min" < "a_max" (HU)} or {"kind": "percentile", 0 <= "lower" < "upper"
      <= 100}, each with optional "b_min" < "b_max" (the output range, default [0, 1]) and "clip" (default true);
    - ``roi_size``: the crop / sliding-window size, 3 positive multiples of ``roi_divisor`` (32: SwinUNETR's
      downsampling);
    - ``in_channels``: channels the network takes (a positive integer; the readers give single-channel volumes).
    """

    modality = "3d-volume"
    required = {"modality": str, "axcodes": str, "spacing": list, "intensity": dict, "roi_size": list,
                "in_channels": int}
    optional = {"spacing_tolerance": (int, float)}
    roi_divisor = ROI_DIVISOR  # the network's total downsampling; a network with another one subclasses and sets it

    @classmethod
    def check(cls, spec: dict, where: str) -> None:
        if spec["modality"] not in ("CT", "MR"):
            raise InputSpecError(f"{where}['modality']: expected 'CT' or 'MR', got {spec['modality']!r}")
        ax = spec["axcodes"]
        if len(ax) != 3 or any(sum(c in pair for c in ax) != 1 for pair in _AXES):
            raise InputSpecError(f"{where}['axcodes']: expected 3 letters, one of L/R, one of A/P, one of S/I "
                                 f"(e.g. 'RAS'), got {ax!r}")
        if not _positive_numbers(spec["spacing"], 3):
            raise InputSpecError(f"{where}['spacing']: expected 3 positive voxel sizes in mm, got {spec['spacing']!r}")
        if not all(MIN_SPACING_MM <= v <= MAX_SPACING_MM for v in spec["spacing"]):
            raise InputSpecError(f"{where}['spacing']: expected voxel sizes in [{MIN_SPACING_MM}, {MAX_SPACING_MM}] "
                                 f"mm, got {spec['spacing']!r}")
        tol = spec.get("spacing_tolerance", 0.05)
        if not (math.isfinite(tol) and 0 <= tol < 1):
            raise InputSpecError(f"{where}['spacing_tolerance']: expected a relative tolerance in [0, 1), got {tol!r}")
        roi = spec["roi_size"]
        if not (isinstance(roi, list) and len(roi) == 3
                and all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in roi)):
            raise InputSpecError(f"{where}['roi_size']: expected 3 positive integers, got {roi!r}")
        if any(r % cls.roi_divisor for r in roi):
            raise InputSpecError(f"{where}['roi_size']: expected multiples of {cls.roi_divisor} (the network "
                                 f"downsamples by {cls.roi_divisor}), got {roi!r}")
        if spec["in_channels"] < 1:
            raise InputSpecError(f"{where}['in_channels']: expected a positive integer, got {spec['in_channels']!r}")
        _check_intensity(spec["intensity"], f"{where}['intensity']")


def _check_intensity(it: dict, where: str) -> None:
    def number(key):
        v = it.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputSpecError(f"{where}[{key!r}]: expected a finite number, got {v!r}")
        return float(v)

    kind = it.get("kind")
    if kind == "window":
        lo, hi = number("a_min"), number("a_max")
        if not lo < hi:
            raise InputSpecError(f"{where}: expected a_min < a_max (the HU window), got [{lo}, {hi}]")
    elif kind == "percentile":
        lo, hi = number("lower"), number("upper")
        if not 0 <= lo < hi <= 100:
            raise InputSpecError(f"{where}: expected 0 <= lower < upper <= 100 (percentiles), got [{lo}, {hi}]")
    else:
        raise InputSpecError(f"{where}['kind']: expected 'window' (CT, HU) or 'percentile' (MR), got {kind!r}")
    b_min = number("b_min") if "b_min" in it else 0.0
    b_max = number("b_max") if "b_max" in it else 1.0
    if not b_min < b_max:
        raise InputSpecError(f"{where}: expected b_min < b_max (the output range), got [{b_min}, {b_max}]")
    if "clip" in it and not isinstance(it["clip"], bool):
        raise InputSpecError(f"{where}['clip']: expected true/false, got {it['clip']!r}")


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
    series = {}
    for ds, _ in slices:
        uid = str(getattr(ds, "SeriesInstanceUID", ""))
        series[uid] = series.get(uid, 0) + 1
    if len(series) > 1:
        listed = ", ".join(f"{uid or '(no SeriesInstanceUID)'}: {n} file(s)" for uid, n in sorted(series.items()))
        raise InputSpecError(f"{str(directory)!r} mixes {len(series)} DICOM series ({listed}); expected a folder "
                             "holding one series: move each series into a folder of its own")
    if len(slices) < 2:
        raise InputSpecError(f"{str(directory)!r} holds a single slice: a 2D image, expected a 3D series")
    ds0 = slices[0][0]
    shapes = sorted({tuple(a.shape) for _, a in slices})
    orients = {tuple(round(float(v), 4) for v in getattr(d, "ImageOrientationPatient", ())) for d, _ in slices}
    if len(shapes) > 1 or len(orients) > 1:
        raise InputSpecError(f"{str(directory)!r}: the slices do not form one volume (slice sizes {shapes}, "
                             f"{len(orients)} orientation(s)); expected one series of equally sized parallel slices")
    row, col = np.array(ds0.ImageOrientationPatient[:3], float), np.array(ds0.ImageOrientationPatient[3:], float)
    normal = np.cross(row, col)
    slices.sort(key=lambda s: float(np.dot(normal, np.array(s[0].ImagePositionPatient, float))))
    pos = np.array([np.array(s[0].ImagePositionPatient, float) for s in slices])
    gaps = np.diff(pos @ normal)
    dz = float(np.median(gaps))
    if not np.isfinite(dz) or dz <= 0 or np.any(gaps <= 1e-6 * max(dz, 1e-12)):
        raise InputSpecError(f"{str(directory)!r}: slice positions do not give a positive spacing (median gap {dz}, "
                             f"{int(np.sum(gaps <= 1e-6 * max(dz, 1e-12)))} repeated position(s)); expected one "
                             "series without duplicate slices")
    if np.max(np.abs(gaps - dz)) > 0.05 * dz:
        raise InputSpecError(f"{str(directory)!r}: slice gaps vary from {float(gaps.min()):.4g} to "
                             f"{float(gaps.max()):.4g} mm (missing slices?); expected evenly spaced slices")
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


def check_pair(image: Volume, label: Volume, where: str = "case") -> None:
    """An image and its label volume must share the voxel grid: the same shape and the same affine (spacing,
    orientation and origin within 1e-3 mm), else the label would be resampled onto a different place."""
    if image.array.shape != label.array.shape:
        raise InputSpecError(f"{where}: image shape {image.array.shape} != label shape {label.array.shape}; expected "
                             "a label volume on the image's voxel grid")
    if image.has_spatial_info and label.has_spatial_info and not np.allclose(image.affine, label.affine, atol=1e-3):
        raise InputSpecError(f"{where}: the label's affine (spacing {tuple(round(v, 4) for v in label.spacing)} mm, "
                             f"{label.axcodes}, origin {tuple(np.round(label.affine[:3, 3], 3))}) differs from the "
                             f"image's (spacing {tuple(round(v, 4) for v in image.spacing)} mm, {image.axcodes}, origin "
                             f"{tuple(np.round(image.affine[:3, 3], 3))}); expected a label on the image's voxel grid")


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


def validate_spec(spec: dict, where: str = "input_spec") -> dict:
    """``spec`` if it is a valid :class:`VolumeInput`, else an InputSpecError naming the key."""
    return VolumeInput.validate(spec, where)


# Geometry and intensity run through MONAI's own transforms (Orientation, Spacing, ScaleIntensityRange /
# ScaleIntensityRangePercentiles): the transforms the released VoCo weights were trained with (Luffy03/VoCo
# utils/data_utils.py). ``monai_transforms(spec)`` is the same chain as dictionary transforms from a file path.


RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # axis letters of NIfTI's RAS+ world, stated (MONAI's default moves)


def _to_monai(vol: Volume):
    from monai.data import MetaTensor

    return MetaTensor(torch.from_numpy(np.ascontiguousarray(vol.array, dtype=np.float32))[None],
                      affine=torch.as_tensor(vol.affine, dtype=torch.float64))


def _from_monai(t, vol: Volume) -> Volume:
    arr = np.ascontiguousarray(t.as_tensor()[0].numpy(), dtype=np.float32)
    return Volume(arr, np.asarray(t.affine.numpy(), dtype=np.float64), vol.source, vol.has_spatial_info, dict(vol.meta))


def reorient(vol: Volume, axcodes: str) -> Volume:
    """Permute/flip the voxel array so its axes follow ``axcodes`` (e.g. 'RAS'); the affine follows (MONAI
    ``Orientation``)."""
    from monai.transforms import Orientation

    if vol.axcodes == axcodes:
        return vol
    return _from_monai(Orientation(axcodes=axcodes, labels=RAS_LABELS)(_to_monai(vol)), vol)


def resample(vol: Volume, spacing, mode: str = "bilinear") -> Volume:
    """Resample to ``spacing`` mm with MONAI ``Spacing`` (``mode`` "bilinear" (trilinear in 3D) for images,
    "nearest" for labels). The output size is bounded before anything is allocated."""
    from monai.transforms import Spacing

    cur = np.array(vol.spacing)
    tgt = np.array(spacing, dtype=float)
    new_shape = [max(2, int(round(s * c / t))) for s, c, t in zip(vol.array.shape, cur, tgt, strict=True)]
    if math.prod(new_shape) > MAX_RESAMPLED_VOXELS:  # checked before anything is allocated
        raise InputSpecError(
            f"{vol.source or 'volume'}: resampling {tuple(vol.array.shape)} voxels of "
            f"{tuple(float(f'{c:.4g}') for c in cur)} mm to {tuple(float(t) for t in tgt)} mm would give "
            f"{tuple(new_shape)} voxels (more than {MAX_RESAMPLED_VOXELS:,}); wrong spacing or units in the file?"
        )
    mode = {"trilinear": "bilinear"}.get(mode, mode)
    return _from_monai(Spacing(pixdim=[float(t) for t in tgt], mode=mode)(_to_monai(vol)), vol)


def intensity_transform(intensity: dict, keys=None):
    """The spec's intensity step as a MONAI transform: ``ScaleIntensityRange`` (a CT window in HU) or
    ``ScaleIntensityRangePercentiles`` (MR), to [b_min, b_max], clipped unless ``clip`` is false. ``keys``: the
    dictionary version on those keys."""
    from monai import transforms as mt

    b_min, b_max = float(intensity.get("b_min", 0.0)), float(intensity.get("b_max", 1.0))
    clip = bool(intensity.get("clip", True))
    if intensity["kind"] == "window":
        args = {"a_min": float(intensity["a_min"]), "a_max": float(intensity["a_max"]), "b_min": b_min,
                "b_max": b_max, "clip": clip}
        return mt.ScaleIntensityRange(**args) if keys is None else mt.ScaleIntensityRanged(keys, **args)
    args = {"lower": float(intensity["lower"]), "upper": float(intensity["upper"]), "b_min": b_min, "b_max": b_max,
            "clip": clip, "relative": False, "channel_wise": False}
    return mt.ScaleIntensityRangePercentiles(**args) if keys is None else mt.ScaleIntensityRangePercentilesd(keys, **args)


def normalize_intensity(arr: np.ndarray, intensity: dict) -> np.ndarray:
    out = intensity_transform(intensity)(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None])
    out = out.as_tensor() if hasattr(out, "as_tensor") else out
    return np.ascontiguousarray(out[0].numpy(), dtype=np.float32)


def monai_transforms(spec: dict, image_key: str = "image", label_key: str | None = "label", load: bool = True):
    """The spec's preprocessing as a ``monai.transforms.Compose`` of dictionary transforms, as a MONAI user (and
    VoCo's training code) writes it: LoadImaged -> EnsureChannelFirstd -> Orientationd(axcodes) ->
    Spacingd(spacing; bilinear for the image, nearest for the label) -> the intensity step on the image.
    Input ``{image_key: path, label_key: path}`` (``load=False``: arrays or MetaTensors with an affine);
    ``label_key=None``: images only. Orientation and spacing are invertible (``compose.inverse(out)``, or
    ``Invertd`` on a prediction) to bring a label map back to the original grid.

    Differences from ``preprocess``: no reader checks (units, NaN, 2D/4D, modality: read with fmzoo's readers for
    those), and Spacingd always resamples, where ``preprocess`` keeps spacings within ``spacing_tolerance``."""
    from monai import transforms as mt

    spec = validate_spec(spec, "monai_transforms(spec)")
    keys = [image_key] + ([label_key] if label_key else [])
    steps = [mt.LoadImaged(keys, image_only=True)] if load else []
    steps += [
        mt.EnsureChannelFirstd(keys),
        mt.Orientationd(keys, axcodes=spec["axcodes"], labels=RAS_LABELS),
        mt.Spacingd(keys, pixdim=[float(v) for v in spec["spacing"]],
                    mode=["bilinear"] + (["nearest"] if label_key else [])),
        intensity_transform(spec["intensity"], [image_key]),
    ]
    return mt.Compose(steps)


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
        v = resample(v, tgt, mode="nearest" if label else "bilinear")
    if label:
        return np.rint(v.array).astype(np.int64)
    if check_modality_:
        check_modality(v.array, spec["modality"], where)
    if float(v.array.min()) == float(v.array.max()):
        raise InputSpecError(f"{where}: every voxel is {float(v.array.min()):g}; expected an image with contrast "
                             f"(its {spec['intensity']['kind']} scaling would give a constant)")
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
