"""Band names and wavelengths (Sentinel-2 MSI), with the aliases users type."""

from __future__ import annotations

from fmzoo.core import InputSpecError

# Sentinel-2A central wavelengths in nm (ESA S2 MSI spectral response, L1C band order).
S2_BANDS: dict[str, float] = {
    "B01": 442.7,
    "B02": 492.4,
    "B03": 559.8,
    "B04": 664.6,
    "B05": 704.1,
    "B06": 740.5,
    "B07": 782.8,
    "B08": 832.8,
    "B8A": 864.7,
    "B09": 945.1,
    "B10": 1373.5,
    "B11": 1613.7,
    "B12": 2202.4,
}
S2_L1C_ORDER: list[str] = list(S2_BANDS)
RGB_BANDS: list[str] = ["B04", "B03", "B02"]  # red, green, blue as Sentinel-2 bands

_ALIASES = {
    "red": "B04", "r": "B04", "green": "B03", "g": "B03", "blue": "B02", "b": "B02",
    "nir": "B08", "rededge1": "B05", "rededge2": "B06", "rededge3": "B07", "nir08": "B8A",
    "narrownir": "B8A", "watervapour": "B09", "cirrus": "B10", "swir1": "B11", "swir16": "B11",
    "swir2": "B12", "swir22": "B12", "coastal": "B01", "aerosol": "B01",
}


def canonical_band(name: str) -> str:
    """'B4', 'b04', 'red' -> 'B04'; 'B8a' -> 'B8A'. Unknown names raise InputSpecError."""
    if not isinstance(name, str):
        raise InputSpecError(f"band names must be strings, got {name!r}")
    key = name.strip().replace("_", "").replace("-", "").replace(" ", "").lower()
    if key in _ALIASES:
        return _ALIASES[key]
    if key.startswith("b"):
        rest = key[1:].upper()
        if rest == "8A":
            return "B8A"
        if rest.isdigit():
            cand = f"B{int(rest):02d}"
            if cand in S2_BANDS:
                return cand
    raise InputSpecError(
        f"unknown band {name!r}: expected a Sentinel-2 band name ({', '.join(S2_BANDS)}) or an alias "
        f"({', '.join(sorted(_ALIASES))})"
    )


def canonical_bands(names) -> list[str]:
    out = [canonical_band(n) for n in names]
    dup = sorted({b for b in out if out.count(b) > 1})
    if dup:
        raise InputSpecError(f"band list {list(names)!r} names {dup} more than once")
    return out


def wavelengths(names) -> list[float]:
    return [S2_BANDS[canonical_band(n)] for n in names]
