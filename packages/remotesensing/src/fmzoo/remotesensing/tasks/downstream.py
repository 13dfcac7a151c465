"""``fmzoo evaluate`` / ``fmzoo finetune`` for SoftConResNet and SoftConViT checkpoints (the core's downstream
contract, ``fmzoo.core.downstream``): scene classification, every image fed through the checkpoint's own
declared preprocessing (``spec.Preprocessor``: value-range and radiometry check, per-band standardization, the
size policy, absent bands at their mean).

Options (``--option NAME=VALUE``): ``size=native`` keeps every image's size with the checkpoint's statistics,
``size=resize`` resizes to the pretraining size, ``size=N`` to N x N px (default: the checkpoint's
``size_policy``); ``radiometry=reflectance|dn`` says what GeoTIFF values are (converted to the product's scale)
and ``dn_offset=1000`` removes the +1000 of Sentinel-2 processing baseline 04.00. The size used is written in
the result's notes.

- default: the EuroSAT RGB 5-class subset under ``$FMZOO_DATA`` (the labelled set the checkpoints' 'rgb8'
  product statistics come from), fed as that 'rgb8' product;
- ``--data PATH``: an image folder, one subfolder per class (``data.folder``): 8-bit RGB PNG/JPEG, or GeoTIFF
  whose band descriptions name Sentinel-2 bands, fed as the declared product with those bands whose value
  range holds the folder's values (the spec's default product when several do).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from fmzoo.core import InputSpecError, data_root
from fmzoo.core.downstream import DownstreamHooks, Split, Task

from ..data.eurosat import CLASSES, FOLDER, load_eurosat_rgb
from ..data.folder import describe_layout, read_image_folder
from ..spec import RGB_BANDS, Preprocessor, data_radiometry, parse_size, radiometry_of

EUROSAT = "eurosat_rgb_5class"


class Scene(NamedTuple):
    """One image: raw values (C, H, W) whose channels are ``bands``, fed as the checkpoint's ``product``."""

    pixels: np.ndarray
    bands: tuple
    product: str


def product_for(spec: dict, bands, lo: float, hi: float) -> str:
    """The declared product with exactly these bands whose valid range holds [lo, hi] (the spec's default
    product when several do); InputSpecError naming what the checkpoint accepts otherwise."""
    products = (spec or {}).get("products") or {}
    matches = [k for k, p in products.items() if set(p["bands"]) == set(bands)]
    if not matches:
        accepted = "; ".join(f"{k}: {p['bands']}" for k, p in products.items()) or "none"
        raise InputSpecError(f"images with bands {list(bands)} match no input product this checkpoint declares "
                             f"(it accepts {accepted})")
    fits = [k for k in matches if products[k]["valid_range"][0] <= lo and hi <= products[k]["valid_range"][1]]
    if not fits:
        ranges = "; ".join(f"{k}: {products[k]['valid_range']}" for k in matches)
        raise InputSpecError(f"images with bands {list(bands)} span [{lo:g}, {hi:g}], outside the value range of "
                             f"every product with those bands ({ranges})")
    kind = data_radiometry(lo, hi)  # reflectance-looking data prefer a reflectance product, DN a DN product
    fits = [k for k in fits if radiometry_of(k, products[k]) == kind] or fits
    default = spec.get("default_product")
    return default if default in fits else fits[0]


def _scenes(images, bands, spec) -> list[Scene]:
    """One product per band set, chosen from the value range of all images with that band set."""
    chosen = {}
    for key in dict.fromkeys(tuple(b) for b in bands):
        sel = [x for x, b in zip(images, bands, strict=True) if tuple(b) == key]
        lo, hi = min(float(x.min()) for x in sel), max(float(x.max()) for x in sel)
        chosen[key] = product_for(spec, key, lo, hi)
    return [Scene(x, tuple(b), chosen[tuple(b)]) for x, b in zip(images, bands, strict=True)]


def _size_note(model, scenes, size) -> str:
    """What size the images are fed at, in words (from ``Preprocessor.plan_size``), for the result's notes."""
    pre = Preprocessor(model.input_spec, multiple_of=getattr(model, "patch_size", None))
    shapes = sorted({tuple(s.pixels.shape[-2:]) for s in scenes})
    plans = sorted({pre.plan_size(h, w, size)[1] for h, w in shapes})
    policy = f"--option size={size}" if size is not None else f"the checkpoint's size_policy {pre.spec['size_policy']!r}"
    shown = "; ".join(plans[:3]) + (f"; ... ({len(plans)} sizes)" if len(plans) > 3 else "")
    return f"input size ({policy}): {shown}"


class _Mixed(NamedTuple):
    """A batch of images of several sizes (native size): groups of (positions in the batch, stacked input)."""

    groups: list
    n: int


class SoftConResNetHooks(DownstreamHooks):
    datasets = (EUROSAT,)
    data_format = describe_layout()
    options = ("size", "radiometry", "dn_offset")
    size = None  # None: the checkpoint's size_policy; 'native', 'resize' or pixels
    radiometry = None  # what --data GeoTIFF values are: 'reflectance' or 'dn' (None: read from their range)
    dn_offset = None  # Sentinel-2 processing-baseline offset in the --data DN (1000 from baseline 04.00 on)

    def configure(self, options: dict) -> None:
        super().configure(options)
        self.size = parse_size(self.size)
        if self.radiometry is not None and self.radiometry not in ("reflectance", "dn"):
            raise InputSpecError(f"--option radiometry must be 'reflectance' or 'dn', got {self.radiometry!r}")
        if self.dn_offset is not None and (isinstance(self.dn_offset, bool)
                                           or not isinstance(self.dn_offset, (int, float)) or self.dn_offset < 0):
            raise InputSpecError(f"--option dn_offset must be a non-negative number (1000 for Sentinel-2 processing "
                                 f"baseline 04.00 and later, 0 for none), got {self.dn_offset!r}")
    # the few-label fine-tuning protocol of the softcon-eurosat table: AdamW 1e-3, weight decay 1e-4, batch 25
    epochs = 30
    lr = 1e-3
    weight_decay = 1e-4
    batch_size = 25
    eval_batch_size = 256

    def load(self, model, dataset, path) -> Task:
        spec = getattr(model, "input_spec", None)
        if not spec or not spec.get("products"):
            raise InputSpecError("this checkpoint carries no input spec with declared products: it cannot be fed raw "
                                 "imagery")
        if path is not None:
            return self._folder_task(model, spec, Path(path))
        if (dataset or EUROSAT) != EUROSAT:
            raise InputSpecError(f"unknown dataset {dataset!r}: {type(model).__name__} checkpoints take {EUROSAT}")
        if not any(set(p["bands"]) == set(RGB_BANDS) for p in spec["products"].values()):
            accepted = "; ".join(f"{k}: {len(p['bands'])} bands" for k, p in spec["products"].items())
            raise InputSpecError(f"the default data ({EUROSAT}) is 8-bit RGB, which this checkpoint does not take (it "
                                 f"declares {accepted}); give --data PATH: {describe_layout()}")
        product = product_for(spec, RGB_BANDS, 0, 255)
        (x, y), (xt, yt) = load_eurosat_rgb("train"), load_eurosat_rgb("test")
        rgb = tuple(RGB_BANDS)
        train, test = Split([Scene(i, rgb, product) for i in x], y), Split([Scene(i, rgb, product) for i in xt], yt)
        return Task(
            EUROSAT, "classification", train, test,
            n_outputs=len(CLASSES), metric="accuracy", class_names=list(CLASSES),
            source=(f"EuroSAT RGB 5-class subset ({', '.join(CLASSES)}; not the 10-class benchmark), "
                    f"{data_root() / FOLDER}, test = the source's val split; fed as product {product!r}"),
            notes=(f"{_size_note(model, train.items[:1], self.size)}; checkpoint preprocessing: "
                   f"{model.preprocessor.describe(self.size)}"),
        )

    def _folder_task(self, model, spec: dict, path: Path) -> Task:
        train, test, how = read_image_folder(path)
        scenes = _scenes(train.images + test.images, train.bands + test.bands, spec)
        products = sorted({s.product for s in scenes})
        for product in products:  # refuse a radiometry or size mismatch now, with its message, not mid-run
            first = next(s for s in scenes if s.product == product)
            self._preprocess(model, [first])
        return Task(
            path.name or str(path), "classification",
            Split(scenes[: len(train.images)], train.labels), Split(scenes[len(train.images):], test.labels),
            n_outputs=len(train.classes), metric="accuracy", class_names=list(train.classes),
            source=f"{how}; fed as product {', '.join(map(repr, products))}",
            notes=_size_note(model, scenes, self.size),
        )

    def _preprocess(self, model, scenes):
        first = scenes[0]
        return model.preprocess(np.stack([s.pixels for s in scenes]), bands=list(first.bands), product=first.product,
                                size=self.size, radiometry=self.radiometry, dn_offset=self.dn_offset)

    def collate(self, model, items):
        """Scenes -> standardized model input: one preprocessing call per group of images sharing size, bands and
        product (one group for EuroSAT). Groups of one output size are stacked; images kept at several native
        sizes come back as a ``_Mixed`` batch that ``features`` runs group by group."""
        items = list(items)
        groups: dict = {}
        for i, s in enumerate(items):
            groups.setdefault((s.pixels.shape, s.bands, s.product), []).append(i)
        parts = [(idx, self._preprocess(model, [items[i] for i in idx])) for idx in groups.values()]
        if len({tuple(x.shape[-2:]) for _, x in parts}) > 1:
            return _Mixed(parts, len(items))
        if len(parts) == 1:
            return parts[0][1]
        order = torch.as_tensor([i for idx, _ in parts for i in idx])
        return torch.cat([x for _, x in parts])[torch.argsort(order)]

    def features(self, model, inputs):
        # the pooled features: global average pool (ResNet), class token (ViT)
        if isinstance(inputs, _Mixed):  # group by group, then back to the batch order
            order = torch.as_tensor([i for idx, _ in inputs.groups for i in idx])
            return torch.cat([model(x) for _, x in inputs.groups])[torch.argsort(order)]
        return model(inputs)


class SoftConViTHooks(SoftConResNetHooks):
    # a transformer fine-tuned end to end with AdamW takes a lower rate than a ResNet: 1e-4 at batch 25
    lr = 1e-4
