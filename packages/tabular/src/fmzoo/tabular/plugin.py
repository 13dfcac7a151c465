from pathlib import Path

from fmzoo.core import Plugin

HERE = Path(__file__).parent


def pretrain_tjepa(recipe: dict, run_dir, trainer_kwargs: dict):
    """The ``tjepa`` recipe method: ``methods.tjepa.pretrain`` with a recipe's ``evaluate`` block run by
    ``tasks.downstream.recipe_evaluation`` (wired here, so that methods never import tasks)."""
    from .methods.tjepa import pretrain
    from .tasks.downstream import recipe_evaluation

    return pretrain(recipe, run_dir, trainer_kwargs, evaluate=recipe_evaluation)


def plugin() -> Plugin:
    return Plugin(
        name="tabular",
        models={"TJEPA": "fmzoo.tabular.models.tjepa:TJEPA"},
        pretrain={"tjepa": "fmzoo.tabular.plugin:pretrain_tjepa"},
        table_runners={
            "tjepa-adult": "fmzoo.tabular.reproduce:run_adult",
            "tjepa-diamonds": "fmzoo.tabular.reproduce:run_diamonds",
        },
        datasets={"adult": "fmzoo.tabular.data.adult:load_adult", "diamonds": "fmzoo.tabular.data.diamonds:load_diamonds"},
        downstream={"TJEPA": "fmzoo.tabular.tasks.downstream:TJEPAHooks"},
        recipes_dir=HERE / "recipes",
        tables_dir=HERE / "tables",
        checkpoints_dir=HERE / "checkpoints",
    )
