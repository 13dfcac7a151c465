"""Registers fmzoo-remotesensing with the fmzoo core (entry point group ``fmzoo.plugins``)."""

from pathlib import Path

from fmzoo.core import Plugin

HERE = Path(__file__).parent


def plugin() -> Plugin:
    return Plugin(
        name="remotesensing",
        models={
            "SoftConResNet": "fmzoo.remotesensing.models.backbones:SoftConResNet",
            "SoftConViT": "fmzoo.remotesensing.models.backbones:SoftConViT",
        },
        methods={"softcon": "fmzoo.remotesensing.methods.softcon:SoftCon"},
        datasets={
            "eurosat_rgb_5class": "fmzoo.remotesensing.data.eurosat:load_eurosat_rgb",
            "eolearn_testeopatch": "fmzoo.remotesensing.data.eopatch:load_eopatch",
        },
        downstream={
            "SoftConResNet": "fmzoo.remotesensing.tasks.downstream:SoftConResNetHooks",
            "SoftConViT": "fmzoo.remotesensing.tasks.downstream:SoftConViTHooks",
        },
        weight_formats={"softcon-rn50": "fmzoo.remotesensing.weights:SoftConRN50",
                        "softcon-vit": "fmzoo.remotesensing.weights:SoftConViTRelease"},
        official="fmzoo.remotesensing.weights:OFFICIAL",
        recipes_dir=HERE / "recipes",
        tables_dir=HERE / "tables",
        checkpoints_dir=HERE / "checkpoints",
    )
