"""The one pretraining entry point: every recipe runs through ``run_pretraining``, which owns the process state
(seed and CPU threads, from the recipe) around the method's registered function."""

from __future__ import annotations

from pathlib import Path

from .runtime import seeded


def recipe_threads(recipe: dict) -> int | None:
    """The recipe's ``threads`` (None: keep the process's count)."""
    threads = recipe.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"recipe {recipe.get('name')!r}: 'threads' must be a positive integer, got {threads!r}")
    return threads


def check_recipe(recipe: dict) -> None:
    """Everything about a recipe that can be checked before a run starts: its method is installed, its keys (top
    level, and inside the sections the method declares) and its ``threads``. Raises RecipeError/UnknownNameError."""
    from .errors import RecipeError
    from .registry import method_class, pretrain_fn

    if not isinstance(recipe.get("method"), str):
        raise RecipeError(f"recipe {recipe.get('name')!r}: 'method' must name an installed method, "
                          f"got {recipe.get('method')!r}")
    cls = method_class(recipe["method"])
    if cls is not None:
        cls.validate(recipe)
    else:
        pretrain_fn(recipe["method"])  # an unknown method is named here, with the known ones
    try:
        recipe_threads(recipe)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None


def run_pretraining(recipe: dict, run_dir: str | Path, trainer_kwargs: dict | None = None,
                    data_path: str | Path | None = None) -> Path:
    """Seed (``recipe["seed"]``, default 0) and set threads (``recipe["threads"]``), then run the method registered
    for ``recipe["method"]`` (a ``Method`` subclass through ``fmzoo.core.method.pretrain``, or a function); the
    caller's thread count is restored afterwards. ``data_path``: the user's own data instead of the recipe's
    dataset (methods that support it). Returns the checkpoint directory."""
    from .method import pretrain
    from .registry import method_class, pretrain_fn

    check_recipe(recipe)
    cls = method_class(recipe["method"])
    if cls is None and data_path is not None:
        raise ValueError(f"method {recipe['method']!r} does not take --data yet (it is not a fmzoo.core.Method)")
    fn = pretrain_fn(recipe["method"]) if cls is None else None
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with seeded(int(recipe.get("seed", 0)), recipe_threads(recipe)):
        if cls is not None:
            return pretrain(cls, recipe, run_dir, dict(trainer_kwargs or {}), Path(data_path) if data_path else None)
        return fn(recipe, run_dir, dict(trainer_kwargs or {}))
