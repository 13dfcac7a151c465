"""What a GPHT checkpoint's provenance.json says about its data: the recipe's datasets, its default dataset."""
from __future__ import annotations

import json
from pathlib import Path

from fmzoo.core import InputSpecError


def checkpoint_recipe(checkpoint_dir: str | Path | None) -> dict | None:
    """The recipe recorded in ``checkpoint_dir/provenance.json``; None without a directory or without the file
    (a checkpoint saved outside ``fmzoo pretrain``). An unreadable file is an InputSpecError naming it."""
    if checkpoint_dir is None:
        return None
    path = Path(checkpoint_dir) / "provenance.json"
    if not path.is_file():
        return None
    try:
        recipe = json.loads(path.read_text()).get("recipe")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise InputSpecError(f"{path}: expected a JSON object with a 'recipe' entry ({exc}); name the data "
                             "explicitly instead (--dataset NAME)") from None
    return recipe if isinstance(recipe, dict) else None


def recipe_datasets(recipe: dict | None) -> list[str]:
    """The datasets whose train splits the recipe trained on (``data.datasets``), in the recipe's order."""
    if not recipe:
        return []
    names = (recipe.get("data") or {}).get("datasets") or []
    return [str(n) for n in names]


def default_dataset(recipe: dict | None, known) -> tuple[str | None, str]:
    """The dataset a checkpoint is naturally evaluated on, and why (for the task's source line).

    - trained on one dataset (a fine-tune such as gpht-etth1, or a from-scratch control such as gpht-etth2-scratch):
      that dataset;
    - trained on a mixture: the first dataset the recipe itself evaluates on (``evaluate.datasets``): ETTh1 for
      gpht-mixed, ETTh2 for gpht-mixed-no-etth2 (the dataset it holds out, for the zero-shot comparison);
    - otherwise (no provenance, or datasets this package does not know): None, the caller's default.
    """
    if not recipe:
        return None, ""
    name = recipe.get("name", "?")
    trained = recipe_datasets(recipe)
    if len(trained) == 1 and trained[0] in known:
        return trained[0], f"the dataset recipe {name} trained on"
    evaluated = [str(n) for n in ((recipe.get("evaluate") or {}).get("datasets") or [])]
    if len(trained) > 1 and evaluated and evaluated[0] in known:
        return evaluated[0], f"the dataset recipe {name} (a mixture) evaluates on"
    return None, ""
