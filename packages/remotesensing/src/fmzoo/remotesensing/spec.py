"""The input spec of a checkpoint: band names (Sentinel-2 MSI) and the preprocessing the spec implies.

Band names and wavelengths, with the aliases users type (``canonical_band``), come first; then the spec
itself and its enforcement.

Corley et al. ("Revisiting pre-trained remote sensing model benchmarks: resizing and normalization
matters", 2023) showed that the same backbone gains up to ~26 kNN points on EuroSAT when the input is
resized to the pretraining size and standardized as in pretraining. So every checkpoint here carries

    input_spec = {
      "bands": [...model channel order...], "wavelengths_nm": [...],
      "input_size": 96,                 # pretraining size (pixels)
      "gsd_m": 10.0,
      "size_policy": "resize",          # other sizes: "resize" to input_size (bilinear, announced by a
                                        # ResizeWarning), "native" kept as they are, "error" refused;
                                        # a call overrides it (size="native" | "resize" | pixels)
      "missing_bands": "mean",          # declared: model bands absent from the input get the band mean
                                        # (0 after standardization); "error" refuses
      "default_product": "s2_l1c_reflectance",
      "products": {                     # one entry per accepted input product (value range + stats)
        "rgb8": {"bands": ["B04","B03","B02"], "valid_range": [0, 255], "scale": 1.0, "radiometry": "rgb8",
                  "mean": [...], "std": [...], "description": "..."},
        ...
      },
    }

and :class:`Preprocessor` enforces it: band count/names, value range, reflectance vs digital numbers, NaN, size;
standardizes with the product's statistics. :class:`RemoteSensingInput` validates the spec itself (at save and
load, through ``fmzoo.core.spec``). Anything it cannot convert as declared raises :class:`fmzoo.core.InputSpecError`
naming what was expected and what was given.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from fmzoo.core import InputSpecError
from fmzoo.core.spec import InputSpec

# ------------------------------------------------------------------------------------------- bands

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

# Sentinel-1 C-SAR polarisations (GRD, dual-pol IW), with the C-band wavelength c / 5.405 GHz in nm.
S1_BANDS: dict[str, float] = {"VV": 55_465_764.0, "VH": 55_465_764.0}
S1_GRD_ORDER: list[str] = list(S1_BANDS)
BAND_WAVELENGTHS: dict[str, float] = {**S2_BANDS, **S1_BANDS}

_ALIASES = {
    "red": "B04", "r": "B04", "green": "B03", "g": "B03", "blue": "B02", "b": "B02",
    "nir": "B08", "rededge1": "B05", "rededge2": "B06", "rededge3": "B07", "nir08": "B8A",
    "narrownir": "B8A", "watervapour": "B09", "cirrus": "B10", "swir1": "B11", "swir16": "B11",
    "swir2": "B12", "swir22": "B12", "coastal": "B01", "aerosol": "B01",
    "vv": "VV", "vh": "VH",
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
        f"unknown band {name!r}: expected a Sentinel-2 band name ({', '.join(S2_BANDS)}), a Sentinel-1 "
        f"polarisation ({', '.join(S1_BANDS)}) or an alias "
        f"({', '.join(sorted(_ALIASES))})"
    )


def canonical_bands(names) -> list[str]:
    out = [canonical_band(n) for n in names]
    dup = sorted({b for b in out if out.count(b) > 1})
    if dup:
        raise InputSpecError(f"band list {list(names)!r} names {dup} more than once")
    return out


def wavelengths(names) -> list[float]:
    return [BAND_WAVELENGTHS[canonical_band(n)] for n in names]


def modality_of(bands: Sequence[str]) -> str:
    """'optical' (Sentinel-2 bands), 'sar' (Sentinel-1 polarisations) or 'optical+sar'."""
    kinds = {"sar" if b in S1_BANDS else "optical" for b in canonical_bands(bands)}
    return "+".join(sorted(kinds)) if len(kinds) > 1 else next(iter(kinds), "optical")


# ------------------------------------------------------------------------------------------- the spec
SIZE_POLICIES = ("resize", "native", "error")
MISSING_POLICIES = ("mean", "error")
RADIOMETRIES = ("reflectance", "dn", "rgb8", "db", "other")
S2_QUANTIFICATION = 10_000.0  # Sentinel-2 L1C/L2A: reflectance = DN / 10000 (QUANTIFICATION_VALUE)
S2_BASELINE_OFFSET = 1000.0  # processing baseline 04.00 (25 Jan 2022 on): DN = reflectance x 10000 + 1000
REFLECTANCE_MAX = 2.0  # data whose values all lie at or below this read as reflectance (0-1, bright clouds ~1.5)
DN_MIN = 100.0  # data reaching at least this read as digital numbers (a DN of 100 is a reflectance of 0.01)
MIN_SIZE = 8  # smallest side a backbone here is fed (a ResNet's stride-32 map is 1x1 from 8 px on)


class ResizeWarning(UserWarning):
    """Emitted whenever the preprocessor resizes or crops an image (never silent); filter it to silence it."""


def make_input_spec(bands: Sequence[str], input_size: int, gsd_m: float = 10.0, size_policy: str = "resize",
                    missing_bands: str = "mean") -> dict:
    bands = canonical_bands(bands)
    if size_policy not in SIZE_POLICIES:
        raise ValueError(f"size_policy must be one of {SIZE_POLICIES}, got {size_policy!r}")
    if missing_bands not in MISSING_POLICIES:
        raise ValueError(f"missing_bands must be one of {MISSING_POLICIES}, got {missing_bands!r}")
    return {
        "modality": modality_of(bands),
        "bands": bands,
        "wavelengths_nm": wavelengths(bands),
        "input_size": int(input_size),
        "gsd_m": float(gsd_m),
        "size_policy": size_policy,
        "missing_bands": missing_bands,
        "default_product": None,
        "products": {},
    }


def add_product(spec: dict, name: str, bands: Sequence[str], mean: Sequence[float], std: Sequence[float],
                valid_range: Sequence[float], scale: float = 1.0, description: str = "",
                default: bool = False, radiometry: str | None = None) -> dict:
    """Declare an accepted input product: its bands, value range, scale and per-band statistics
    (statistics are of the *scaled* values, i.e. after multiplying by ``scale``). ``radiometry`` says what the
    product's raw values are ('reflectance', 'dn', 'rgb8', 'db', 'other'); left out, it is read from the name
    (``*_reflectance``, ``*_dn``, ``rgb8``, ``*_db``) as for checkpoints written before the key existed."""
    bands = canonical_bands(bands)
    unknown = [b for b in bands if b not in spec["bands"]]
    if unknown:
        raise ValueError(f"product {name!r}: bands {unknown} are not model bands {spec['bands']}")
    if not (len(mean) == len(std) == len(bands)):
        raise ValueError(f"product {name!r}: {len(bands)} bands but {len(mean)} means / {len(std)} stds")
    if any(s <= 0 for s in std):
        raise ValueError(f"product {name!r}: std must be > 0, got {list(std)}")
    if radiometry is not None and radiometry not in RADIOMETRIES:
        raise ValueError(f"product {name!r}: radiometry must be one of {RADIOMETRIES}, got {radiometry!r}")
    spec = copy.deepcopy(spec)
    spec["products"][name] = {
        "bands": bands,
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "valid_range": [float(valid_range[0]), float(valid_range[1])],
        "scale": float(scale),
        "description": description,
    }
    if radiometry is not None:
        spec["products"][name]["radiometry"] = radiometry
    if default or spec.get("default_product") is None:
        spec["default_product"] = name
    return spec


def radiometry_of(name: str, product: Mapping) -> str:
    """What a product's raw values are: its ``radiometry`` key, else read from its name."""
    if product.get("radiometry"):
        return product["radiometry"]
    low = name.lower()
    if "reflectance" in low:
        return "reflectance"
    if low.endswith("_dn") or low == "dn":
        return "dn"
    if low == "rgb8":
        return "rgb8"
    if low.endswith("_db"):
        return "db"
    return "other"


_SCALE_WORDS = {
    "reflectance": "reflectance (0-1; DN / 10000)",
    "dn": "Sentinel-2 digital numbers (0-10000+, reflectance x 10000; + 1000 from processing baseline 04.00)",
    "rgb8": "8-bit RGB (0-255)",
    "db": "backscatter in dB",
}


def data_radiometry(lo: float, hi: float) -> str | None:
    """'reflectance' or 'dn' as the data's value range suggests (None: the range cannot tell)."""
    if hi <= REFLECTANCE_MAX and lo >= -0.5:
        return "reflectance"
    if hi >= DN_MIN:
        return "dn"
    return None


class RemoteSensingInput(InputSpec):
    """Multispectral / SAR imagery (Sentinel-2 bands, Sentinel-1 polarisations) as ``Preprocessor`` reads it: the
    model's band order, the pretraining size and what to do with other sizes, absent bands, and the accepted input
    products (bands, value range, scale, per-band statistics)."""

    modality = "multispectral-image"
    required = {"bands": list, "input_size": int, "size_policy": str, "missing_bands": str, "products": dict,
                "default_product": (str, type(None))}
    optional = {"modality": str, "wavelengths_nm": list, "gsd_m": (int, float), "min_size": int}

    @classmethod
    def check(cls, spec: dict, where: str) -> None:
        def bad(key, msg):
            raise InputSpecError(f"{where}[{key!r}]: {msg}")

        if not spec["bands"]:
            bad("bands", "expected at least one band name, got []")
        try:
            bands = canonical_bands(spec["bands"])
        except InputSpecError as exc:
            bad("bands", str(exc))
        if bands != list(spec["bands"]):
            bad("bands", f"expected canonical band names {bands}, got {spec['bands']}")
        if "wavelengths_nm" in spec and len(spec["wavelengths_nm"]) != len(bands):
            bad("wavelengths_nm", f"expected one wavelength per band ({len(bands)}), got {len(spec['wavelengths_nm'])}")
        if spec["input_size"] < MIN_SIZE:
            bad("input_size", f"expected a pretraining size of at least {MIN_SIZE} px, got {spec['input_size']}")
        if spec["size_policy"] not in SIZE_POLICIES:
            bad("size_policy", f"expected one of {list(SIZE_POLICIES)}, got {spec['size_policy']!r}")
        if spec["missing_bands"] not in MISSING_POLICIES:
            bad("missing_bands", f"expected one of {list(MISSING_POLICIES)}, got {spec['missing_bands']!r}")
        products, default = spec["products"], spec["default_product"]
        if products and default not in products:
            bad("default_product", f"expected one of the declared products {sorted(products)}, got {default!r}")
        if not products and default is not None:
            bad("default_product", f"names {default!r} but no product is declared")
        for name, prod in products.items():
            key = f"products.{name}"
            if not isinstance(prod, dict):
                bad(key, f"expected an object, got {type(prod).__name__}")
            lacking = [k for k in ("bands", "mean", "std", "valid_range", "scale") if k not in prod]
            if lacking:
                bad(key, f"expected keys bands, mean, std, valid_range, scale; missing {lacking}")
            outside = [b for b in prod["bands"] if b not in bands]
            if outside:
                bad(f"{key}.bands", f"expected model bands {bands}, got {outside} outside them")
            n = len(prod["bands"])
            if len(prod["mean"]) != n or len(prod["std"]) != n:
                bad(key, f"expected {n} means and stds (one per band), got {len(prod['mean'])} / {len(prod['std'])}")
            if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in prod["std"]):
                bad(f"{key}.std", f"expected positive numbers, got {prod['std']}")
            vr = prod["valid_range"]
            if not (isinstance(vr, list) and len(vr) == 2 and all(isinstance(v, (int, float)) for v in vr)
                    and vr[0] < vr[1]):
                bad(f"{key}.valid_range", f"expected [low, high] with low < high, got {vr!r}")
            if not isinstance(prod["scale"], (int, float)) or isinstance(prod["scale"], bool) or prod["scale"] <= 0:
                bad(f"{key}.scale", f"expected a positive number, got {prod['scale']!r}")
            if prod.get("radiometry") is not None and prod["radiometry"] not in RADIOMETRIES:
                bad(f"{key}.radiometry", f"expected one of {list(RADIOMETRIES)}, got {prod['radiometry']!r}")


def band_stats(x: np.ndarray | torch.Tensor, channel_axis: int = 1) -> tuple[list[float], list[float]]:
    """Per-band mean and std of an image stack (float64 accumulation)."""
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    a = np.moveaxis(a, channel_axis, 0).reshape(a.shape[channel_axis], -1).astype(np.float64)
    return a.mean(1).tolist(), a.std(1).tolist()


def parse_size(size) -> str | int | None:
    """A per-call size: None (the checkpoint's policy), 'native', 'resize' or a positive pixel count."""
    if size is None or size in ("native", "resize"):
        return size
    if isinstance(size, str) and size.strip().isdigit():
        size = int(size)
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= MIN_SIZE:
        return int(size)
    raise InputSpecError(f"size must be 'native' (keep the input size), 'resize' (the pretraining size) or a "
                         f"number of pixels >= {MIN_SIZE}, got {size!r}")


class Preprocessor:
    """Applies a checkpoint's input spec: raw product values -> standardized model input.

    ``__call__(x, bands=None, product=None, size=None, radiometry=None, dn_offset=None)`` accepts a tensor/array
    ``(C,H,W)`` or ``(B,C,H,W)``, or a torchgeo sample dict (``{"image": ...}``, optional ``"bands"``); returns a
    float tensor ``(B, len(spec bands), H', W')``.

    Size (``size=None`` follows the spec's ``size_policy``): ``'resize'`` to the pretraining size (bilinear,
    antialiased), ``'native'`` keeps the input size (a ViT's input is centre-cropped to a multiple of its patch,
    its position embeddings interpolated by the model), an int resizes to that square size; ``size_policy
    'error'`` refuses other sizes. Every resize or crop emits a :class:`ResizeWarning`; ``plan_size`` says what
    will be done without doing it.

    Radiometry: a product states whether it takes reflectance or digital numbers; input whose value range says the
    other scale is refused with both scales named, unless ``radiometry=`` says what the input is (then it is
    converted: DN = reflectance x 10000). Sentinel-2 DN of processing baseline 04.00 and later carry a +1000
    offset: 10+-band DN whose every non-zero value is >= 1000 are refused until ``dn_offset=`` says it (1000: the
    offset is subtracted, values below it clipped to 0; 0: no offset).
    """

    def __init__(self, spec: Mapping, multiple_of: int | None = None, min_size: int | None = None):
        if not spec or "bands" not in spec or "products" not in spec:
            raise InputSpecError("this model carries no input spec (bands, products); it cannot preprocess raw input")
        if not spec["products"]:
            raise InputSpecError("the input spec declares no input product (value range and statistics)")
        self.spec = dict(spec)
        self.bands = list(spec["bands"])
        self.input_size = int(spec["input_size"])
        self.multiple_of = int(multiple_of) if multiple_of else None
        self.min_size = max(int(min_size or spec.get("min_size") or MIN_SIZE), self.multiple_of or 0)

    # -- helpers -----------------------------------------------------------------------------
    def _pick_product(self, product: str | None, n_channels: int, bands: list[str] | None,
                      x: torch.Tensor | None = None) -> str:
        """The product named, else the one with these bands (or this many channels); among several, the one whose
        radiometry the data's value range shows (DN -> a DN product), else the spec's default."""
        products = self.spec["products"]
        if product is not None:
            if product not in products:
                raise InputSpecError(f"unknown input product {product!r}; this checkpoint accepts {sorted(products)}")
            return product
        if bands is not None:
            matches = [k for k, p in products.items() if set(p["bands"]) == set(bands)]
        else:
            matches = [k for k, p in products.items() if len(p["bands"]) == n_channels]
        if len(matches) > 1 and x is not None and x.numel():
            kind = data_radiometry(float(x.min()), float(x.max()))
            matches = [k for k in matches if radiometry_of(k, products[k]) == kind] or matches
        if len(matches) == 1:
            return matches[0]
        default = self.spec.get("default_product")
        if len(matches) > 1 and default in matches:
            return default
        if not matches:
            desc = ", ".join(f"{k}: {len(p['bands'])} bands {p['bands']}" for k, p in products.items())
            raise InputSpecError(
                f"input has {n_channels} channels{f' {bands}' if bands else ''}, which matches no product this "
                f"checkpoint accepts ({desc}); pass bands=[...] naming each channel and product=..."
            )
        raise InputSpecError(f"input matches several products {matches}; pass product=... explicitly")

    def _alternative(self, name: str, kind: str) -> str:
        """' or product=X' for a declared product with the same bands and the data's radiometry."""
        bands = set(self.spec["products"][name]["bands"])
        alt = [k for k, p in self.spec["products"].items() if k != name and set(p["bands"]) == bands
               and radiometry_of(k, p) == kind]
        return f"pass product={alt[0]!r}, or " if alt else ""

    def _radiometry(self, x: torch.Tensor, name: str, prod: dict, radiometry: str | None,
                    dn_offset: float | None) -> torch.Tensor:
        """Refuse reflectance fed as DN and DN fed as reflectance (both scales named); convert when ``radiometry``
        says what the input is; handle the processing-baseline offset of Sentinel-2 DN."""
        want = radiometry_of(name, prod)
        if want not in ("reflectance", "dn"):
            if radiometry is not None or dn_offset is not None:
                raise InputSpecError(f"radiometry=/dn_offset= convert Sentinel-2 reflectance and digital numbers; "
                                     f"product {name!r} takes {_SCALE_WORDS.get(want, want)}")
            return x
        finite = x[torch.isfinite(x)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 0.0)
        have = data_radiometry(lo, hi)
        if radiometry is not None:
            if radiometry not in ("reflectance", "dn"):
                raise InputSpecError(f"radiometry must be 'reflectance' or 'dn' (what the input holds), got "
                                     f"{radiometry!r}")
            if have is not None and have != radiometry:
                raise InputSpecError(f"radiometry={radiometry!r} says the input holds {_SCALE_WORDS[radiometry]}, "
                                     f"but its values span [{lo:.4g}, {hi:.4g}], which is {_SCALE_WORDS[have]}")
            have = radiometry
        elif have is not None and have != want:
            raise InputSpecError(
                f"input values span [{lo:.4g}, {hi:.4g}]: that is {_SCALE_WORDS[have]}, but product {name!r} expects "
                f"{_SCALE_WORDS[want]}; {self._alternative(name, have)}pass radiometry={have!r} to convert "
                f"(DN = reflectance x 10000)")
        if dn_offset is not None and have != "dn":
            raise InputSpecError(f"dn_offset={dn_offset!r} applies to digital numbers; the input holds "
                                 f"{_SCALE_WORDS.get(have, 'values that are neither')} (span [{lo:.4g}, {hi:.4g}])")
        if have == "dn":
            if dn_offset is None and len(prod["bands"]) >= 10:
                nonzero = finite[finite != 0]
                if nonzero.numel() and float(nonzero.min()) >= S2_BASELINE_OFFSET:
                    raise InputSpecError(
                        f"every non-zero value of these {len(prod['bands'])}-band digital numbers is >= "
                        f"{S2_BASELINE_OFFSET:g} (span [{float(nonzero.min()):.4g}, {hi:.4g}]): that is Sentinel-2 "
                        f"DN of processing baseline 04.00 or later (reflectance x 10000 + 1000), while product "
                        f"{name!r} expects DN without that offset (reflectance x 10000); pass dn_offset=1000 to "
                        "subtract it, or dn_offset=0 if these DN carry no offset")
            if dn_offset:
                x = (x - float(dn_offset)).clamp_min(0.0)
            if want == "reflectance":
                x = x / S2_QUANTIFICATION
        elif have == "reflectance" and want == "dn":  # only reached when radiometry= asked for the conversion
            x = x * S2_QUANTIFICATION
        return x

    def _check_range(self, x: torch.Tensor, name: str, prod: dict) -> None:
        lo, hi = prod["valid_range"]
        xmin, xmax = float(x.min()), float(x.max())
        if xmin < lo - 1e-6 or xmax > hi + 1e-6:
            hint = ""
            if name == "rgb8" and xmax > hi:
                hint = " (rgb8 expects 8-bit values 0-255)"
            raise InputSpecError(
                f"input values span [{xmin:.4g}, {xmax:.4g}] but product {name!r} expects [{lo:g}, {hi:g}]{hint}"
            )
        if name == "rgb8" and xmax <= 1.0 and x.numel() > 64:
            raise InputSpecError(
                f"input values span [{xmin:.4g}, {xmax:.4g}]: they look already divided by 255, but product "
                "'rgb8' expects raw 8-bit values 0-255 (the checkpoint applies its own normalization)"
            )

    def plan_size(self, h: int, w: int, size=None) -> tuple[tuple[int, int], str]:
        """The (height, width) an ``h`` x ``w`` input is fed at under ``size`` (None: the spec's policy) and a
        sentence saying so; InputSpecError when the policy refuses it."""
        size = parse_size(size)
        policy = size if isinstance(size, str) else ("fixed" if size is not None else self.spec.get("size_policy",
                                                                                                      "resize"))
        s = self.input_size
        if min(h, w) < self.min_size:
            raise InputSpecError(f"image of {h}x{w} px is too small: this model needs at least "
                                 f"{self.min_size}x{self.min_size} px")
        if policy == "error":
            if (h, w) != (s, s):
                raise InputSpecError(
                    f"input is {h}x{w} px but this checkpoint was pretrained at {s}x{s} px and its size_policy is "
                    "'error'; pass size='resize' to resize it, or size='native' to keep its size")
            return (h, w), f"{h}x{w} px, the pretraining size"
        if policy == "native":
            m = self.multiple_of
            if m and (h % m or w % m):
                th, tw = h - h % m, w - w % m
                return (th, tw), (f"{h}x{w} px centre-cropped to {th}x{tw} px (native size, a multiple of the "
                                  f"{m} px patch; pretraining size {s}x{s} px)")
            return (h, w), f"{h}x{w} px kept (native size; pretraining size {s}x{s} px)"
        target = s if policy == "resize" else int(size)
        if self.multiple_of and target % self.multiple_of:
            raise InputSpecError(f"size {target} is not a multiple of the model's {self.multiple_of} px patch")
        why = ("the pretraining size" if target == s and policy == "resize" else f"size={target}")
        if (h, w) == (target, target):
            return (h, w), f"{h}x{w} px, {why}"
        return (target, target), f"{h}x{w} px resized to {target}x{target} px ({why})"

    # -- main --------------------------------------------------------------------------------
    def __call__(self, x, bands: Sequence[str] | None = None, product: str | None = None, size=None,
                 radiometry: str | None = None, dn_offset: float | None = None,
                 resize: bool | None = None) -> torch.Tensor:
        if resize is not None:  # the former switch: True = the pretraining size, False = keep the input size
            if size is not None:
                raise InputSpecError("give size= or the older resize=, not both")
            size = "resize" if resize else "native"
        size = parse_size(size)
        if isinstance(x, Mapping):
            if "image" not in x:
                raise InputSpecError(f"sample dict has no 'image' key (keys: {sorted(x)}); expected a torchgeo sample")
            if bands is None and x.get("bands") is not None:
                bands = x["bands"]
            x = x["image"]
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "biuf":
                raise InputSpecError(f"expected numeric pixel values (integers or floats), got an array of dtype "
                                     f"{x.dtype}")
            x = torch.from_numpy(np.ascontiguousarray(x))
        if not torch.is_tensor(x):
            raise InputSpecError(f"expected a tensor, array or torchgeo sample dict, got {type(x).__name__}")
        if x.is_complex() or x.dtype == torch.bool:
            raise InputSpecError(f"expected real pixel values (integers or floats), got a {x.dtype} tensor")
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4:
            raise InputSpecError(f"expected an image (C,H,W) or batch (B,C,H,W), got shape {tuple(x.shape)}")
        if x.dtype == torch.float64:
            x = x.double()  # scaled in float64 (DN of 1e4 and offsets stay exact), then float32 for the model
        else:
            x = x.float()
        if not torch.isfinite(x).all():
            raise InputSpecError("input contains NaN or infinite values; mask or fill them before the model")
        n, c, h, w = x.shape
        if bands is not None:
            bands = canonical_bands(bands)
            if len(bands) != c:
                raise InputSpecError(f"bands names {len(bands)} channels {bands} but the input has {c} channels")
        name = self._pick_product(product, c, bands, x)
        prod = self.spec["products"][name]
        if bands is None:
            if c != len(prod["bands"]):
                raise InputSpecError(
                    f"product {name!r} has {len(prod['bands'])} bands {prod['bands']} but the input has {c} channels"
                )
            bands = list(prod["bands"])
        if set(bands) != set(prod["bands"]):
            raise InputSpecError(f"input bands {bands} differ from product {name!r} bands {prod['bands']}")
        (th, tw), how = self.plan_size(h, w, size)  # refuse a size before any work
        x = self._radiometry(x, name, prod, radiometry, dn_offset)
        self._check_range(x, name, prod)
        # reorder to the product's band order, scale, standardize
        order = [bands.index(b) for b in prod["bands"]]
        x = x[:, order] * prod["scale"]
        mean = torch.tensor(prod["mean"], dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(prod["std"], dtype=x.dtype).view(1, -1, 1, 1)
        x = ((x - mean) / std).float()
        # size: as planned (resize / keep / crop to a patch multiple), announced whenever it changes the image
        if (th, tw) != (h, w):
            if size == "native" or (size is None and self.spec.get("size_policy") == "native"):
                top, left = (h - th) // 2, (w - tw) // 2
                x = x[..., top:top + th, left:left + tw]
                s = self.input_size  # the warning stays under ~120 characters (plan_size's sentence is longer)
                what = (f"{h}x{w} px centre-cropped to {th}x{tw} px (native, a multiple of the "
                        f"{self.multiple_of} px patch); size='resize' gives {s}x{s} px")
            else:
                x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
                what = f"{how}; size='native' keeps the input size"
            warnings.warn(ResizeWarning(what), stacklevel=3)
        # place product bands into the model's band order; missing bands = mean (0 when standardized)
        missing = [b for b in self.bands if b not in prod["bands"]]
        if missing and self.spec.get("missing_bands", "mean") != "mean":
            raise InputSpecError(f"input lacks model bands {missing} and this checkpoint's missing_bands policy is 'error'")
        if missing or prod["bands"] != self.bands:
            out = x.new_zeros(n, len(self.bands), x.shape[-2], x.shape[-1])
            for i, b in enumerate(prod["bands"]):
                out[:, self.bands.index(b)] = x[:, i]
            x = out
        return x

    def describe(self, size=None) -> str:
        size = parse_size(size)
        policy = self.spec.get("size_policy") if size is None else size
        lines = [f"bands {self.bands}, pretrained at {self.input_size}x{self.input_size} px, "
                 f"size {policy}{' (per-call override)' if size is not None else ' (size_policy)'}, "
                 f"missing bands {self.spec.get('missing_bands')}"]
        for k, p in self.spec["products"].items():
            lines.append(f"  product {k} ({radiometry_of(k, p)}): bands {p['bands']} range {p['valid_range']} "
                         f"scale {p['scale']} mean {np.round(p['mean'], 4).tolist()} "
                         f"std {np.round(p['std'], 4).tolist()}")
        return "\n".join(lines)
