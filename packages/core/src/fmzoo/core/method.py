"""One base class for every self-supervised method, and the one pipeline that runs it.

A domain writes one ``Method`` subclass per ``methods/<method>.py`` and registers it in ``Plugin.methods`` under
the recipe's ``method`` name. The subclass gives hooks (torchgeo's ``BaseTask`` ``configure_*`` idea): the data it
pretrains on, the model, the Lightning ``SSLTask``; optionally the loader, a plain-loop ``fit``, an evaluation after
training and the card. ``pretrain`` runs the rest for every method alike: global batch -> per-process batch and
step count, Lightning fit with progress bar, checkpoints and ``--resume``, the training record, provenance, card
and the checkpoint (``run_pretraining`` has already seeded and set the recipe's threads).

Recipes share one top-level layout, validated before anything runs (an unknown key is an error that names it):
``method``, ``name``, ``seed``, ``threads``, ``dataset``, ``data`` (options of the data hook), ``model``
(architecture arguments), ``train`` (``batch_size`` = the global batch, ``max_epochs``, optimiser and schedule
values; ``precision``, ``gradient_clip_val`` and ``gradient_clip_algorithm`` ("norm" or "value", as the official
code clips) go to Lightning's Trainer), ``card``, ``evaluate`` and ``trainer_overrides`` (written by ``fmzoo pretrain``), plus the method's own
sections named in ``Method.recipe_sections`` (e.g. ``mask``, ``loss``). The keys inside a section are checked the same
way for every section the method declares in ``Method.recipe_keys`` (a typo such as ``train.max_epoch`` for
``max_epochs`` is an error naming it and listing the known keys)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import RecipeError
from .runtime import generator

COMMON_SECTIONS = ("method", "name", "seed", "threads", "dataset", "data", "model", "train", "card", "evaluate",
                   "trainer_overrides", "description")
# the ``train`` keys the core itself reads (``pretrain``/``training.fit``); a method that declares its ``train`` keys
# in ``Method.recipe_keys`` lists these with its own (the official names differ: GraphMAE says ``max_epoch``)
CORE_TRAIN_KEYS = ("batch_size", "max_epochs", "precision", "gradient_clip_val", "gradient_clip_algorithm")


@dataclass
class PretrainData:
    """What a method pretrains on: a map-style ``dataset`` (its length counts the steps), the files it was read
    from (hashed into provenance) and a sentence for the card saying what was seen."""

    dataset: Any
    files: list = field(default_factory=list)
    description: str = ""
    collate_fn: Any = None
    extra: dict = field(default_factory=dict)  # anything the model/task hooks need (a schema, feature sizes, ...)


class Method:
    """Hooks of one SSL method; see the module docstring. ``self.recipe``, ``self.run_dir`` and ``self.seed`` are
    set; ``self.data_path`` is the user's ``fmzoo pretrain --data PATH`` (None: the recipe's dataset)."""

    recipe_sections: ClassVar[tuple[str, ...]] = ()  # the method's own top-level recipe sections
    # the keys each nested section takes, e.g. {"train": (*CORE_TRAIN_KEYS, "lr"), "mask": ("ratio",)}: a section
    # named here is checked at load (an unknown key such as a typo is an error naming it and the known keys); a
    # section not named is free-form (not checked)
    recipe_keys: ClassVar[dict[str, tuple[str, ...]]] = {}
    citation: ClassVar[str] = ""
    default_batch_size: ClassVar[int] = 32
    default_epochs: ClassVar[int] = 1

    def __init__(self, recipe: dict, run_dir: Path, data_path: Path | None = None):
        self.recipe, self.run_dir, self.data_path = recipe, Path(run_dir), data_path
        self.seed = int(recipe.get("seed", 0))

    # -- the recipe ---------------------------------------------------------------------------------
    @classmethod
    def validate(cls, recipe: dict) -> None:
        allowed = set(COMMON_SECTIONS) | set(cls.recipe_sections)
        unknown = sorted(set(recipe) - allowed)
        if unknown:
            raise RecipeError(f"recipe {recipe.get('name')!r} (method {recipe.get('method')!r}): unknown key(s) "
                              f"{', '.join(unknown)}; a {cls.__name__} recipe takes {', '.join(sorted(allowed))}")
        for section in ("model", "train", "data", "card", "evaluate"):
            if section in recipe and recipe[section] is not None and not isinstance(recipe[section], dict):
                raise RecipeError(f"recipe {recipe.get('name')!r}: {section!r} must be a mapping, "
                                  f"got {type(recipe[section]).__name__}")
        cls.validate_sections(recipe)
        if recipe.get("card") is not None:
            from .card import CardData

            CardData.from_dict(recipe["card"], f"recipe {recipe.get('name')!r}: card")

    @classmethod
    def validate_sections(cls, recipe: dict) -> None:
        """Check the keys of every nested section the method declares in ``recipe_keys``."""
        for section, keys in cls.recipe_keys.items():
            value = recipe.get(section)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise RecipeError(f"recipe {recipe.get('name')!r}: {section!r} must be a mapping, "
                                  f"got {type(value).__name__}")
            unknown = sorted(str(k) for k in set(value) - set(keys))
            if unknown:
                raise RecipeError(
                    f"recipe {recipe.get('name')!r} (method {recipe.get('method')!r}): unknown key(s) in {section!r}: "
                    f"{', '.join(f'{section}.{k}' for k in unknown)}; {section!r} of a {cls.__name__} recipe takes "
                    f"{', '.join(sorted(keys)) or 'no keys'}")

    @property
    def train_cfg(self) -> dict:
        return dict(self.recipe.get("train") or {})

    def global_batch(self) -> int:
        return int(self.train_cfg.get("batch_size", self.default_batch_size))

    def max_epochs(self) -> int:
        return int(self.train_cfg.get("max_epochs", self.default_epochs))

    # -- hooks ----------------------------------------------------------------------------------------
    def data(self) -> PretrainData:
        raise NotImplementedError

    def model(self, data: PretrainData):
        raise NotImplementedError

    def task(self, model, data: PretrainData, steps_per_epoch: int, max_epochs: int):
        raise NotImplementedError

    def loader(self, data: PretrainData, batch_size: int):
        """This process's loader: shuffled by a generator of its own seeded with the recipe's seed."""
        from torch.utils.data import DataLoader

        n = len(data.dataset)
        return DataLoader(data.dataset, batch_size=batch_size, shuffle=True, generator=generator(self.seed),
                          drop_last=n > batch_size, collate_fn=data.collate_fn, num_workers=0)

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict):
        """Lightning by default (returns the Trainer); a plain-loop method overrides this and returns a
        ``PlainRun`` with its metrics and ``one_part_record(seconds, steps)``."""
        from .training import fit

        return fit(task, loader, self.run_dir, max_epochs=max_epochs, **trainer_kwargs)

    def evaluate(self, model, data: PretrainData) -> dict:
        """Metrics measured after pretraining (recorded in provenance and the card); none by default."""
        return {}

    def card(self, data: PretrainData, metrics: dict) -> dict:
        card = dict(self.recipe.get("card") or {})
        card.setdefault("title", f"{type(self).__name__} ({self.recipe.get('name')})")
        if self.citation:
            card.setdefault("citation", self.citation)
        if data.description:  # the user's own data replace the recipe's description: the card says what was seen
            card["training_data"] = data.description if self.data_path is not None else card.get(
                "training_data", data.description)
        return card

    def provenance(self, data: PretrainData) -> dict:
        """Method-specific facts for provenance.json (e.g. tokens seen)."""
        return {}


@dataclass
class PlainRun:
    """What a plain-loop ``Method.fit`` returns instead of a Lightning Trainer."""

    callback_metrics: dict
    record: dict  # fmzoo.core.training.one_part_record(seconds, steps)
    global_rank: int = 0


def pretrain(method_cls: type[Method], recipe: dict, run_dir: Path, trainer_kwargs: dict,
             data_path: Path | None = None) -> Path:
    """Run ``method_cls`` on ``recipe``; returns the checkpoint directory ``run_dir/checkpoint``."""
    from .training import per_device_batch, publish_run

    method_cls.validate(recipe)
    method = method_cls(recipe, run_dir, data_path)
    kw = dict(trainer_kwargs)
    for key in ("precision", "gradient_clip_val", "gradient_clip_algorithm"):  # train: values Lightning applies
        if key in method.train_cfg:
            kw.setdefault(key, method.train_cfg[key])
    data = method.data()
    model = method.model(data)
    global_batch = method.global_batch()
    batch_size = per_device_batch(global_batch, kw)
    max_epochs = int(kw.pop("max_epochs", None) or method.max_epochs())
    steps_per_epoch = max(1, math.ceil(len(data.dataset) / global_batch))  # global batches, never len(loader)
    task = method.task(model, data, steps_per_epoch, max_epochs)
    trainer = method.fit(task, method.loader(data, batch_size), max_epochs, kw)
    out = Path(run_dir) / "checkpoint"
    if getattr(trainer, "global_rank", 0) != 0:
        return out
    model.eval()
    metrics = {k: float(v) for k, v in getattr(trainer, "callback_metrics", {}).items()}
    metrics.update(method.evaluate(model, data))
    provenance = {"recipe": recipe, "seeds": [method.seed], "data_files": [str(f) for f in data.files],
                  "metrics": metrics, "epochs": max_epochs, **method.provenance(data)}
    if data_path is not None:
        provenance["data_path"] = str(data_path)
    if isinstance(trainer, PlainRun):
        provenance["training"], trainer = trainer.record, None
    return publish_run(model, out, card=method.card(data, metrics), provenance=provenance, trainer=trainer)
