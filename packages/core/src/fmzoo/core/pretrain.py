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


def run_pretraining(recipe: dict, run_dir: str | Path, trainer_kwargs: dict | None = None) -> Path:
    """Seed (``recipe["seed"]``, default 0) and set threads (``recipe["threads"]``), then run the method registered
    for ``recipe["method"]``; the caller's thread count is restored afterwards. Returns the checkpoint directory."""
    from .registry import pretrain_fn

    fn = pretrain_fn(recipe["method"])
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with seeded(int(recipe.get("seed", 0)), recipe_threads(recipe)):
        return fn(recipe, run_dir, dict(trainer_kwargs or {}))
