"""``fmzoo evaluate`` / ``fmzoo finetune`` for SoftConResNet and SoftConViT checkpoints (the core's downstream
contract, ``fmzoo.core.downstream``): scene classification, every image fed through the checkpoint's own
declared preprocessing (``spec.Preprocessor``: value-range check, per-band standardization, resize to the
pretraining size, absent bands at their mean).

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
from ..spec import RGB_BANDS

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


class SoftConResNetHooks(DownstreamHooks):
    datasets = (EUROSAT,)
    data_format = describe_layout()
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
            return self._folder_task(spec, Path(path))
        if (dataset or EUROSAT) != EUROSAT:
            raise InputSpecError(f"unknown dataset {dataset!r}: {type(model).__name__} checkpoints take {EUROSAT}")
        if not any(set(p["bands"]) == set(RGB_BANDS) for p in spec["products"].values()):
            accepted = "; ".join(f"{k}: {len(p['bands'])} bands" for k, p in spec["products"].items())
            raise InputSpecError(f"the default data ({EUROSAT}) is 8-bit RGB, which this checkpoint does not take (it "
                                 f"declares {accepted}); give --data PATH: {describe_layout()}")
        product = product_for(spec, RGB_BANDS, 0, 255)
        (x, y), (xt, yt) = load_eurosat_rgb("train"), load_eurosat_rgb("test")
        rgb = tuple(RGB_BANDS)
        return Task(
            EUROSAT, "classification",
            Split([Scene(i, rgb, product) for i in x], y), Split([Scene(i, rgb, product) for i in xt], yt),
            n_outputs=len(CLASSES), metric="accuracy", class_names=list(CLASSES),
            source=(f"EuroSAT RGB 5-class subset ({', '.join(CLASSES)}; not the 10-class benchmark), "
                    f"{data_root() / FOLDER}, test = the source's val split; fed as product {product!r}"),
            notes=f"checkpoint preprocessing: {model.preprocessor.describe()}",
        )

    def _folder_task(self, spec: dict, path: Path) -> Task:
        train, test, how = read_image_folder(path)
        scenes = _scenes(train.images + test.images, train.bands + test.bands, spec)
        products = sorted({s.product for s in scenes})
        return Task(
            path.name or str(path), "classification",
            Split(scenes[: len(train.images)], train.labels), Split(scenes[len(train.images):], test.labels),
            n_outputs=len(train.classes), metric="accuracy", class_names=list(train.classes),
            source=f"{how}; fed as product {', '.join(map(repr, products))}",
        )

    def collate(self, model, items):
        """Scenes -> standardized model input: one preprocessing call when the batch shares size, bands and
        product (always, for EuroSAT), else image by image (each resized to the pretraining size)."""
        items = list(items)
        first = items[0]
        if all(s.pixels.shape == first.pixels.shape and s.bands == first.bands and s.product == first.product
               for s in items):
            return model.preprocess(np.stack([s.pixels for s in items]), bands=list(first.bands), product=first.product)
        return torch.cat([model.preprocess(s.pixels, bands=list(s.bands), product=s.product) for s in items])

    def features(self, model, inputs):
        return model(inputs)  # the pooled features: global average pool (ResNet), class token (ViT)


class SoftConViTHooks(SoftConResNetHooks):
    # a transformer fine-tuned end to end with AdamW takes a lower rate than a ResNet: 1e-4 at batch 25
    lr = 1e-4
