"""GeoTIFF input (rasterio) as torchgeo-style sample dicts.

``read_geotiff(path, bands=None)`` -> ``{"image": tensor (C,H,W), "bands": [...], "crs": str,
"transform": tuple, "bounds": tuple}``. Band names come from ``bands=`` or else from the file's band
descriptions (e.g. "B04"); a file whose bands cannot be named raises InputSpecError, because a model
cannot be fed unnamed channels safely.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError

from ..spec import canonical_bands


def read_geotiff(path: str | Path, bands: Sequence[str] | None = None, window=None) -> dict:
    import rasterio
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GeoTIFF {str(path)!r} does not exist")
    try:
        with rasterio.open(path) as src:
            data = src.read(window=window)
            descriptions = list(src.descriptions)
            nodata = src.nodata
            crs = src.crs.to_string() if src.crs else None
            transform = tuple(src.window_transform(window) if window is not None else src.transform)[:6]
            bounds = tuple(src.window_bounds(window)) if window is not None else tuple(src.bounds)
    except RasterioIOError as exc:
        raise InputSpecError(f"{str(path)!r} is not a readable GeoTIFF (corrupt or truncated): {exc}") from None
    if bands is not None:
        names = canonical_bands(bands)
        if len(names) != data.shape[0]:
            raise InputSpecError(f"{str(path)!r} has {data.shape[0]} bands but bands= names {len(names)}: {list(bands)}")
    elif all(descriptions):
        names = canonical_bands(descriptions)
    else:
        raise InputSpecError(
            f"{str(path)!r} has {data.shape[0]} bands without descriptions; pass bands=[...] naming each band"
        )
    img = data.astype(np.float32)
    if nodata is not None and np.any(data == nodata):
        img[data == nodata] = np.nan  # the preprocessor refuses NaN: the caller must fill or mask
    return {"image": torch.from_numpy(img), "bands": names, "crs": crs, "transform": transform, "bounds": bounds}


def write_geotiff(path: str | Path, image: np.ndarray, bands: Sequence[str], crs: str, bounds: Sequence[float]) -> Path:
    """Write a (C,H,W) array with band descriptions (used to export the EOPatch and in tests)."""
    import rasterio
    from rasterio.transform import from_bounds

    image = np.asarray(image)
    c, h, w = image.shape
    transform = from_bounds(*bounds, width=w, height=h)
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=c, dtype=image.dtype.name,
                       crs=crs, transform=transform) as dst:
        dst.write(image)
        for i, b in enumerate(canonical_bands(bands), start=1):
            dst.set_band_description(i, b)
    return Path(path)
