from pathlib import Path

from fmzoo.core import Plugin

HERE = Path(__file__).parent


def plugin() -> Plugin:
    return Plugin(
        name="tabular",
        models={"TJEPA": "fmzoo.tabular.models.tjepa:TJEPA"},
        methods={"tjepa": "fmzoo.tabular.methods.tjepa:TJEPAPretraining"},
        datasets={"adult": "fmzoo.tabular.data.adult:load_adult", "diamonds": "fmzoo.tabular.data.diamonds:load_diamonds"},
        downstream={"TJEPA": "fmzoo.tabular.tasks.downstream:TJEPAHooks"},
        no_released_weights={"T-JEPA": "Thimonier et al. (2024) released code (jose-melo/t-jepa), no pretrained weights"},
        recipes_dir=HERE / "recipes",
        tables_dir=HERE / "tables",
        checkpoints_dir=HERE / "checkpoints",
    )
