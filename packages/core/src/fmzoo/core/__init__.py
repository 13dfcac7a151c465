"""fmzoo.core: the hub, model cards, the plugin registry, Lightning training, evaluation protocols,
paper reproduction and the ``fmzoo`` CLI, shared by every fmzoo domain package."""

from .data import data_path, data_root
from .errors import CheckpointError, InputSpecError, RecipeError, RepoIdError
from .hub import (
    HubMixin,
    LocalHub,
    hub_root,
    is_offline,
    publish_dir,
    resolve_checkpoint,
    sha256_file,
    validate_repo_id,
)
from .registry import Plugin, list_models, load_recipe, load_table, plugins, shipped_checkpoints

__version__ = "0.1.0"


def __getattr__(name):
    if name == "publish_run":  # lives with training (it records the trainer); imported on first use, with Lightning
        from .training import publish_run

        return publish_run
    if name in ("finetune", "evaluate", "format_result"):  # the Python form of `fmzoo finetune` / `evaluate`
        from . import downstream

        return getattr(downstream, name)
    raise AttributeError(f"module 'fmzoo.core' has no attribute {name!r}")


def from_pretrained(id_or_path, revision=None, **overrides):
    """Load any fmzoo checkpoint; the class comes from config.json through the plugin registry."""
    return HubMixin.from_pretrained.__func__(HubMixin, id_or_path, revision=revision, **overrides)


__all__ = [
    "CheckpointError", "HubMixin", "RecipeError", "InputSpecError", "LocalHub", "Plugin", "RepoIdError",
    "data_path", "data_root", "evaluate", "finetune", "format_result", "from_pretrained", "hub_root", "is_offline", "list_models", "load_recipe",
    "load_table", "plugins", "publish_dir", "publish_run", "resolve_checkpoint", "sha256_file",
    "shipped_checkpoints", "validate_repo_id",
]
