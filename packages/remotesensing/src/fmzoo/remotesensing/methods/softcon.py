"""SoftCon-style continual pretraining (Wang, Albrecht & Zhu, "Multi-label Guided Soft Contrastive
Learning for Efficient Earth Observation Pretraining", arXiv:2405.20462).

The official repository (zhu-xlab/softcon, read at commit b687e46) ships model definitions and
weights but no training code, so the objective below follows the paper's description:

- **Soft contrastive loss.** Two augmented views of each image in a batch are encoded and projected;
  the N x N cross-view cosine similarities (divided by a temperature) are trained towards *soft*
  targets: the similarity of the images' multi-label land-cover vectors (Jaccard by default, cosine
  optional), with 1 on the diagonal (the two views of one image). With identity targets the loss
  is exactly the symmetric InfoNCE. ``form="softmax"`` (default) is a cross-entropy between each
  row's softmax and its row-normalized targets; ``form="bce"`` is a per-pair binary cross-entropy
  of sigmoid(similarity / temperature) against the targets. (Our choice of these two concrete
  forms is our reading of the paper; the official code that would fix it is not published.)
- **Siamese masking.** The same random patch mask is applied to both views of an image (ViT: the
  same patch tokens are dropped in both branches; ResNet: the same input patches are zeroed, i.e.
  set to the band mean after standardization), so neither branch can lean on the well-initialised
  bands alone.
- **Continual pretraining with band widening.** The backbone starts from an existing checkpoint; its
  input layer is widened to the new band set with :mod:`fmzoo.remotesensing.models.widen`.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fmzoo.core import InputSpecError, RecipeError, runtime
from fmzoo.core.method import Method, PretrainData
from fmzoo.core.training import SSLTask, fit, gather_global_batch, per_device_batch, training_seconds
from torch import nn

from ..models.backbones import SoftConResNet, SoftConViT

ARCHS = {"SoftConResNet": SoftConResNet, "SoftConViT": SoftConViT}
# ``model`` of each architecture: ``arch`` and its network's parameters
ARCH_MODEL_KEYS = {name: ("arch", *inspect.signature(cls).parameters) for name, cls in ARCHS.items()}

# --------------------------------------------------------------------------- the loss


def label_similarity(labels: torch.Tensor, kind: str = "jaccard") -> torch.Tensor:
    """Cross-scene similarity of multi-hot label vectors (N, C) -> (N, N) in [0, 1], diagonal 1."""
    y = labels.float()
    if kind == "jaccard":
        inter = y @ y.T
        union = y.sum(1, keepdim=True) + y.sum(1, keepdim=True).T - inter
        sim = torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))
    elif kind == "cosine":
        yn = F.normalize(y, dim=1)
        sim = yn @ yn.T
    else:
        raise ValueError(f"label similarity must be 'jaccard' or 'cosine', got {kind!r}")
    sim = sim.clamp(0, 1)
    sim.fill_diagonal_(1.0)
    return sim


def soft_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, targets: torch.Tensor | None = None,
                          temperature: float = 0.1, form: str = "softmax") -> torch.Tensor:
    """Soft contrastive loss between two views' projections (N, D); ``targets`` (N, N) in [0, 1]
    (None = identity = InfoNCE)."""
    n = z1.shape[0]
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / temperature
    t = torch.eye(n, device=z1.device, dtype=logits.dtype) if targets is None else targets.to(logits.dtype)
    if t.shape != (n, n):
        raise ValueError(f"targets must be ({n}, {n}), got {tuple(t.shape)}")
    if form == "softmax":
        p_row = t / t.sum(1, keepdim=True)
        p_col = t.T / t.T.sum(1, keepdim=True)
        l1 = -(p_row * F.log_softmax(logits, dim=1)).sum(1).mean()
        l2 = -(p_col * F.log_softmax(logits.T, dim=1)).sum(1).mean()
        return 0.5 * (l1 + l2)
    if form == "bce":
        return F.binary_cross_entropy_with_logits(logits, t)
    raise ValueError(f"form must be 'softmax' or 'bce', got {form!r}")


# --------------------------------------------------------------------------- views and masks


def random_views(x: torch.Tensor, out_size: int, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), flip: bool = True,
                 jitter: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched random-resized-crop + flips + brightness/contrast jitter (on standardized input), via one
    affine ``grid_sample``; output (B, C, out_size, out_size)."""
    b = x.shape[0]
    g = generator
    area = torch.empty(b).uniform_(scale[0], scale[1], generator=g)
    logr = torch.empty(b).uniform_(np.log(ratio[0]), np.log(ratio[1]), generator=g)
    r = torch.exp(logr)
    sw = torch.sqrt(area * r).clamp(max=1.0)  # crop width / image width
    sh = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(b, generator=g) * 2 - 1) * (1 - sw)
    cy = (torch.rand(b, generator=g) * 2 - 1) * (1 - sh)
    fx = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    fy = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sw * fx, cx
    theta[:, 1, 1], theta[:, 1, 2] = sh * fy, cy
    grid = F.affine_grid(theta, (b, x.shape[1], out_size, out_size), align_corners=False)
    v = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if jitter:
        a = 1 + (torch.rand(b, 1, 1, 1, generator=g) * 2 - 1) * jitter
        c = (torch.rand(b, 1, 1, 1, generator=g) * 2 - 1) * jitter
        v = v * a + c
    return v


def siamese_keep_indices(batch: int, num_patches: int, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, K) indices of the patches kept (K = round(N * (1 - ratio))), sorted; shared by both views."""
    keep = max(1, int(round(num_patches * (1 - ratio))))
    noise = torch.rand(batch, num_patches, generator=generator)
    return noise.argsort(dim=1)[:, :keep].sort(dim=1).values


def pixel_mask_from_keep(keep: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """(B, K) kept patch indices on a grid x grid layout -> (B, 1, grid*patch, grid*patch) 0/1 mask."""
    b = keep.shape[0]
    m = torch.zeros(b, grid * grid)
    m.scatter_(1, keep, 1.0)
    m = m.view(b, 1, grid, grid)
    return m.repeat_interleave(patch, 2).repeat_interleave(patch, 3)


# --------------------------------------------------------------------------- the Lightning task


class SoftConTask(SSLTask):
    """Backbone + MLP projector trained with the soft contrastive loss and Siamese masking.

    Batches: ``x`` (B, C, H, W) standardized images, or ``(x, labels)`` with multi-hot labels (B, L)
    for soft targets (without labels the targets are the identity: plain InfoNCE).
    """

    def __init__(self, model: nn.Module, lr: float = 1e-3, weight_decay: float = 1e-4, warmup_steps: int = 0,
                 max_steps: int | None = None, temperature: float = 0.1, form: str = "softmax",
                 label_sim: str = "jaccard", mask_ratio: float = 0.3, mask_patch: int = 16, view_size: int = 96,
                 view_scale: tuple[float, float] = (0.25, 1.0), jitter: float = 0.2, proj_hidden: int = 512,
                 proj_dim: int = 128, seed: int = 0):
        super().__init__(model, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps, max_steps=max_steps)
        d = model.num_features
        self.projector = nn.Sequential(nn.Linear(d, proj_hidden), nn.BatchNorm1d(proj_hidden), nn.ReLU(inplace=True),
                                       nn.Linear(proj_hidden, proj_dim))
        self.cfg = dict(temperature=temperature, form=form, label_sim=label_sim, mask_ratio=mask_ratio,
                        mask_patch=mask_patch, view_size=view_size, view_scale=tuple(view_scale), jitter=jitter)
        self.seed, self.gen = seed, runtime.generator(seed)  # the method's own stream of views and masks
        self.token_masking = hasattr(model, "patch_size")
        if view_size % (model.patch_size if self.token_masking else mask_patch):
            raise ValueError(f"view_size {view_size} must be a multiple of the mask patch size")

    def seed_own_generators(self, rank: int) -> None:
        self.gen = runtime.generator(self.seed + rank)

    def encode_pair(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.cfg
        v1 = random_views(x, c["view_size"], c["view_scale"], jitter=c["jitter"], generator=self.gen)
        v2 = random_views(x, c["view_size"], c["view_scale"], jitter=c["jitter"], generator=self.gen)
        if c["mask_ratio"] > 0:
            if self.token_masking:
                grid = c["view_size"] // self.model.patch_size
                keep = siamese_keep_indices(x.shape[0], grid * grid, c["mask_ratio"], self.gen)
                return self.model(v1, keep=keep), self.model(v2, keep=keep)
            grid = c["view_size"] // c["mask_patch"]
            keep = siamese_keep_indices(x.shape[0], grid * grid, c["mask_ratio"], self.gen)
            m = pixel_mask_from_keep(keep, grid, c["mask_patch"]).to(v1.dtype)
            v1, v2 = v1 * m, v2 * m
        return self.model(v1), self.model(v2)

    def ssl_loss(self, batch):
        if isinstance(batch, (tuple, list)):
            x, labels = batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            x, labels = batch, None
        h1, h2 = self.encode_pair(x)
        z1, z2 = self.projector(h1), self.projector(h2)
        # in-batch pairs span the global batch: under DDP every process scores all processes' rows
        z1, z2, *rest = gather_global_batch(z1, z2, *([labels] if labels is not None else []))
        labels = rest[0] if rest else None
        targets = label_similarity(labels, self.cfg["label_sim"]) if labels is not None else None
        loss = soft_contrastive_loss(z1, z2, targets, self.cfg["temperature"], self.cfg["form"])
        out = {"loss": loss}
        if targets is not None:
            out["mean_target"] = targets.mean().detach()
        return out


# --------------------------------------------------------------------------- datasets for recipes


class _StandardizedTensors(torch.utils.data.Dataset):
    """uint8/float images standardized on the fly with a product's statistics (+ optional labels)."""

    def __init__(self, images, mean, std, scale: float = 1.0, labels=None):
        self.images, self.labels = images, labels
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.scale = scale

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = (torch.as_tensor(self.images[i]).float() * self.scale - self.mean) / self.std
        return x if self.labels is None else (x, torch.as_tensor(self.labels[i]))


class _StandardizedCrops(torch.utils.data.Dataset):
    def __init__(self, crops, mean, std):
        self.crops = crops
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self):
        return len(self.crops)

    def __getitem__(self, i):
        x, y = self.crops[i]
        return (x - self.mean) / self.std, y


def _epoch_callback(ds):
    import lightning as L

    class SetEpoch(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            ds.set_epoch(trainer.current_epoch)

    return SetEpoch()


# --------------------------------------------------------------------------- recipe -> checkpoint


def describe_data(dcfg: dict, n_images: int | None = None) -> str:
    if dcfg["name"] == "eurosat_rgb":
        n = n_images if n_images is not None else (dcfg.get("limit") or 10400)
        return (f"EuroSAT RGB 5-class subset (Forest, Industrial, Pasture, Residential, River), train split: "
                f"{n} 64x64 8-bit RGB images, labels unused; views resized to the pretraining size")
    if dcfg["name"] == "eopatch_s2":
        return (f"eo-learn TestEOPatch: one real Sentinel-2 L1C patch (13 bands x 5 reference dates, 101x100 px, "
                f"10 m, Slovenia); random {dcfg.get('crop', 48)} px crops ({dcfg.get('length', 2048)} per epoch) "
                f"with multi-hot vectors of the LULC classes covering >= {dcfg.get('min_fraction', 0.02):g} of each crop")
    raise ValueError(f"unknown data.name {dcfg['name']!r} (eurosat_rgb, eopatch_s2)")


def build_model(recipe: dict):
    """The backbone a recipe asks for: fresh, or continued from a checkpoint and widened."""
    from fmzoo.core import from_pretrained

    mcfg = dict(recipe["model"])
    arch = mcfg.pop("arch")
    classes = ARCHS
    if arch not in classes:
        raise ValueError(f"model.arch must be one of {sorted(classes)}, got {arch!r}")
    init = recipe.get("init") or {}
    if init.get("from"):
        base = from_pretrained(init["from"])
        if type(base).__name__ != arch:
            raise ValueError(f"init.from {init['from']!r} is a {type(base).__name__}, recipe wants {arch}")
        model = base.widen(mcfg["bands"], scheme=init.get("widen_scheme", "copy_random"), seed=int(recipe.get("seed", 0)))
        return model, base
    return classes[arch](**mcfg), None


def pretrain_loader(ds, batch_size: int, seed: int, trainer_kwargs: dict) -> torch.utils.data.DataLoader:
    """This process's loader: ``batch_size`` is the recipe's global batch, each of the run's processes loads
    its share (the optimizer steps, ``images_per_second`` and any step schedule count global batches)."""
    return torch.utils.data.DataLoader(ds, batch_size=per_device_batch(batch_size, trainer_kwargs), shuffle=True,
                                       drop_last=True, num_workers=0, generator=runtime.generator(seed))


class SoftCon(Method):
    """A SoftCon recipe -> checkpoint (config, safetensors, card, provenance), run by ``fmzoo.core.method.pretrain``
    through ``fmzoo.core.pretrain.run_pretraining`` (which seeds with the recipe's ``seed`` and sets its ``threads``).

    The recipes keep the global batch and the epochs in ``trainer`` (``trainer.batch_size``, ``trainer.max_epochs``;
    any other ``trainer`` key is passed to the Lightning fit) and the optimiser in ``optim``. ``--data PATH`` (a folder
    of images, see ``_folder_data``) replaces the recipe's ``data`` only where the loss needs no labels
    (``loss.targets: identity``); the multi-label soft targets need per-image land-cover vectors that a plain folder
    lacks, so such recipes refuse ``--data`` with an InputSpecError."""

    recipe_sections = ("init", "loss", "masking", "views", "projector", "optim", "trainer")
    # the keys the hooks read. ``model``: ``arch`` and the parameters of either network (``validate`` then checks them
    # against ``arch``); ``trainer``: the global batch and epochs plus the Trainer values ``fit`` passes on (the
    # command line's devices/strategy/accelerator/progress override a recipe's); ``train`` is other methods' layout
    # and is refused (SoftCon's recipes say ``trainer``); ``evaluate`` is not read
    recipe_keys = {
        "model": tuple(dict.fromkeys(k for keys in ARCH_MODEL_KEYS.values() for k in keys)),
        "data": ("name", "limit", "crop", "length", "min_fraction"),
        "init": ("from", "widen_scheme"),
        "loss": ("targets", "temperature", "form", "label_similarity"),
        "masking": ("ratio", "patch"),
        "views": ("scale", "jitter"),
        "projector": ("hidden", "dim"),
        "optim": ("lr", "weight_decay", "warmup_steps"),
        "trainer": ("batch_size", "max_epochs", "max_steps", "precision", "gradient_clip_val",
                    "gradient_clip_algorithm", "log_every_n_steps"),
        "train": (),
        "evaluate": (),
    }

    @classmethod
    def validate(cls, recipe: dict) -> None:
        super().validate(recipe)
        model = recipe.get("model")
        if model is None:
            return
        arch = model.get("arch")
        if arch not in ARCHS:
            raise RecipeError(f"recipe {recipe.get('name')!r}: model.arch must be one of {sorted(ARCHS)}, got {arch!r}")
        unknown = sorted(str(k) for k in set(model) - set(ARCH_MODEL_KEYS[arch]))
        if unknown:
            raise RecipeError(f"recipe {recipe.get('name')!r} (method {recipe.get('method')!r}): unknown key(s) in "
                              f"'model' for arch {arch!r}: {', '.join(f'model.{k}' for k in unknown)}; a {arch} "
                              f"model takes {', '.join(ARCH_MODEL_KEYS[arch])}")
    default_batch_size = 128
    default_epochs = 1

    def _trainer_cfg(self) -> dict:
        return dict(self.recipe.get("trainer") or {})

    def global_batch(self) -> int:
        return int(self._trainer_cfg().get("batch_size", self.default_batch_size))

    def max_epochs(self) -> int:
        return int(self._trainer_cfg().get("max_epochs", self.default_epochs))

    def data(self) -> PretrainData:
        # the model first (a fresh init draws from the global RNG before the data: the order of the function this
        # class replaced); loading the data then declares the input product the model was trained on
        loss_cfg = self.recipe.get("loss") or {}
        targets = loss_cfg.get("targets", "identity")
        if self.data_path is not None and targets != "identity":
            raise InputSpecError(
                f"--data is not supported for recipe {self.recipe.get('name')!r}: its loss.targets is {targets!r}, soft "
                "targets built from per-image multi-label land-cover vectors, which a plain image folder lacks. Use "
                "a recipe with loss.targets: identity (label-free InfoNCE, e.g. rgb-resnet-small-eurosat) for --data")
        model, base = build_model(self.recipe)
        self._model, self._base = model, base
        data = self._folder_data(model) if self.data_path is not None else self._recipe_data(model, targets)
        self._data = data  # fit() hands its epoch callbacks to the trainer
        return data

    def _recipe_data(self, model, targets: str) -> PretrainData:
        from fmzoo.core import data_root

        from ..data.eopatch import EOPatchMultiLabelCrops, load_eopatch
        from ..data.eurosat import eurosat_split_digest, load_eurosat_rgb
        from ..spec import add_product, band_stats

        dcfg, seed, root = self.recipe["data"], self.seed, data_root()
        callbacks = []
        if dcfg["name"] == "eurosat_rgb":
            if targets != "identity":
                raise ValueError("eurosat_rgb pretraining has no land-cover labels: loss.targets must be 'identity'")
            x, _ = load_eurosat_rgb("train", root, limit=dcfg.get("limit"), seed=seed)  # labels are never used
            mean, std = band_stats(x[: min(len(x), 4000)])
            model.input_spec = add_product(
                model.input_spec, "rgb8", ["B04", "B03", "B02"], mean, std, (0, 255),
                description="8-bit RGB composite (EuroSAT RGB JPEG): statistics of the EuroSAT 5-class train split",
                default=True)
            ds = _StandardizedTensors(x, mean, std)
            files = [eurosat_split_digest(root, "train")]
            desc = describe_data(dcfg, n_images=len(x))
        elif dcfg["name"] == "eopatch_s2":
            patch = load_eopatch(root)
            mean, std = band_stats(patch["image"].reshape(-1, 13, *patch["image"].shape[-2:]))
            spec = add_product(model.input_spec, "s2_l1c_reflectance", patch["bands"], mean, std, (0.0, 2.0),
                               description="Sentinel-2 L1C top-of-atmosphere reflectance (DN / 10000): statistics of the eo-learn TestEOPatch reference scenes",
                               default=True)
            spec = add_product(spec, "s2_l1c_dn", patch["bands"], mean, std, (0.0, 20000.0), scale=1e-4,
                               description="Sentinel-2 L1C digital numbers (reflectance x 10000); scaled by 1e-4, then as s2_l1c_reflectance")
            model.input_spec = spec
            crops = EOPatchMultiLabelCrops(crop=int(dcfg.get("crop", 48)), length=int(dcfg.get("length", 2048)),
                                           min_fraction=float(dcfg.get("min_fraction", 0.02)), seed=seed, root=root)
            ds = _StandardizedCrops(crops, mean, std)
            callbacks.append(_epoch_callback(crops))
            base_dir = root / "remote_sensing/eolearn_testeopatch"
            files = [base_dir / "REFERENCE_SCENES.npy", base_dir / "mask_timeless/LULC.npy"]
            desc = describe_data(dcfg)
        else:
            raise ValueError(f"unknown data.name {dcfg['name']!r} (eurosat_rgb, eopatch_s2)")
        return PretrainData(ds, files, desc, extra={"callbacks": callbacks})

    def _folder_data(self, model) -> PretrainData:
        """``--data PATH``: every image under PATH (subfolders allowed, their names unused: no labels are read),
        8-bit RGB PNG/JPEG or GeoTIFF with band descriptions (``data.folder``), all of one size and all holding the
        model's bands (reordered to the model's order). The statistics of these images are declared as the
        checkpoint's default input product: ``rgb8`` for PNG/JPEG, ``geotiff`` (range = the values seen) else."""
        from ..data.folder import GEOTIFF_SUFFIXES, _image_files, _read, describe_layout
        from ..spec import add_product, band_stats, canonical_bands

        root = Path(self.data_path)
        if not root.is_dir():
            raise InputSpecError(f"--data {str(root)!r} is not a folder: expected a folder of images (subfolders "
                                 f"allowed, labels unused) as in {describe_layout()}")
        files = _image_files(root)
        if not files:
            raise InputSpecError(f"--data {str(root)!r} holds no image (.png, .jpg, .jpeg, .tif, .tiff)")
        want = list(model.bands)
        images, shape = [], None
        for f in files:
            x, bands = _read(f)
            bands = canonical_bands(bands)
            missing = [b for b in want if b not in bands]
            if missing:
                raise InputSpecError(f"{str(f)!r} has bands {bands}; this recipe's model reads {want} (missing "
                                     f"{missing})")
            x = np.asarray(x)[[bands.index(b) for b in want]]
            if shape is None:
                shape = x.shape
            elif x.shape != shape:
                raise InputSpecError(f"{str(f)!r} is {x.shape[1]}x{x.shape[2]} px but {str(files[0])!r} is "
                                     f"{shape[1]}x{shape[2]}: pretraining batches need images of one size")
            if not np.isfinite(x).all():
                raise InputSpecError(f"{str(f)!r} holds nodata/NaN pixels: fill or crop them before pretraining")
            images.append(x)
        x = np.stack(images)
        geotiff = any(f.suffix.lower() in GEOTIFF_SUFFIXES for f in files)
        mean, std = band_stats(x[: min(len(x), 4000)])
        desc = (f"{len(files)} {shape[1]}x{shape[2]} px images from {root} (--data; bands {', '.join(want)}; "
                f"{'GeoTIFF' if geotiff else '8-bit RGB PNG/JPEG'}), no labels used")
        if geotiff:
            product, valid = "geotiff", (float(x.min()), float(x.max()))
        else:
            product, valid = "rgb8", (0, 255)
        model.input_spec = add_product(model.input_spec, product, want, mean, std, valid,
                                       description=f"the pixel values of the --data images: statistics of {root}",
                                       default=True)
        return PretrainData(_StandardizedTensors(x, mean, std), files, desc, extra={"callbacks": []})

    def model(self, data: PretrainData):
        return self._model

    def task(self, model, data: PretrainData, steps_per_epoch: int, max_epochs: int):
        loss_cfg = self.recipe.get("loss") or {}
        mask_cfg, view_cfg = self.recipe.get("masking") or {}, self.recipe.get("views") or {}
        opt, proj = self.recipe.get("optim") or {}, self.recipe.get("projector") or {}
        return SoftConTask(  # no max_steps: the schedule is warmup then constant, as the recipes were trained
            model, lr=float(opt.get("lr", 1e-3)), weight_decay=float(opt.get("weight_decay", 1e-4)),
            warmup_steps=int(opt.get("warmup_steps", 0)), temperature=float(loss_cfg.get("temperature", 0.1)),
            form=loss_cfg.get("form", "softmax"), label_sim=loss_cfg.get("label_similarity", "jaccard"),
            mask_ratio=float(mask_cfg.get("ratio", 0.3)), mask_patch=int(mask_cfg.get("patch", 16)),
            view_size=int(model.input_spec["input_size"]), view_scale=tuple(view_cfg.get("scale", (0.25, 1.0))),
            jitter=float(view_cfg.get("jitter", 0.2)), proj_hidden=int(proj.get("hidden", 512)),
            proj_dim=int(proj.get("dim", 128)), seed=self.seed,
        )

    def loader(self, data: PretrainData, batch_size: int):
        # full batches only (drop_last always): in-batch negatives and BatchNorm want the recipe's batch
        if self.data_path is not None and len(data.dataset) < batch_size:
            raise InputSpecError(f"--data {str(self.data_path)!r} holds {len(data.dataset)} images, fewer than one "
                                 f"batch ({batch_size} per process): add images or lower trainer.batch_size")
        return torch.utils.data.DataLoader(data.dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                           num_workers=0, generator=runtime.generator(self.seed))

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict):
        extra = {k: v for k, v in self._trainer_cfg().items() if k not in ("batch_size", "max_epochs")}
        kw = {**extra, **trainer_kwargs}
        kw.setdefault("log_every_n_steps", 10)
        self._trainer = fit(task, loader, self.run_dir, max_epochs=max_epochs,
                            callbacks=self._data.extra["callbacks"], **kw)
        return self._trainer

    def evaluate(self, model, data: PretrainData) -> dict:
        seconds, steps = training_seconds(self._trainer), int(self._trainer.global_step)
        return {"train_seconds": round(seconds, 1), "steps": steps,
                "images_per_second": round(steps * self.global_batch() / max(seconds, 1e-9), 1)}

    def card(self, data: PretrainData, metrics: dict) -> dict:
        card = copy.deepcopy(self.recipe.get("card") or {})
        card.setdefault("title", self.recipe["name"])
        if self.data_path is not None:  # the card says what was seen
            card["training_data"] = data.description
        card.setdefault("training_data", data.description)
        return card

    def provenance(self, data: PretrainData) -> dict:
        from fmzoo.core.hub import sha256_file

        init = self.recipe.get("init") or {}
        prov = {"data_files": [p if isinstance(p, dict) else str(p) for p in data.files],
                "training_data": data.description}
        if init.get("from"):  # only a continued run names its start (the typed Provenance field)
            prov["init_from"] = init["from"]
        if self._base is not None:
            prov["init_from_sha256"] = sha256_file(Path(_resolve(init["from"])) / "model.safetensors")
        return prov


def _resolve(id_or_path: str) -> Path:
    from fmzoo.core import resolve_checkpoint

    return resolve_checkpoint(id_or_path)
