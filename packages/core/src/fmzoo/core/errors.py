"""The errors fmzoo raises on purpose. Each message names what was expected and what was given."""


class InputSpecError(ValueError):
    """An input does not match the input spec that travels with a model's weights."""


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated, or does not match its config."""


class RepoIdError(ValueError):
    """A repo id is malformed or unsafe (``..``, absolute paths, odd characters)."""


class RecipeError(ValueError):
    """A recipe that does not fit its method's layout (an unknown key, a section of the wrong type)."""


class UsageError(Exception):
    """A command-line argument or option that cannot be used; the CLI prints it on one line and exits with 2."""


class UnknownNameError(KeyError):
    """A name (recipe, table, dataset, architecture, ...) that no installed package registers."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
