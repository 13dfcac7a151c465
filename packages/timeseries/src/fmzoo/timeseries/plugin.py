from pathlib import Path

from fmzoo.core import Plugin

HERE = Path(__file__).parent


def plugin() -> Plugin:
    return Plugin(
        name="timeseries",
        models={"GPHT": "fmzoo.timeseries.models.gpht:GPHT"},
        methods={"gpht": "fmzoo.timeseries.methods.gpht:GPHTPretraining"},
        downstream={"GPHT": "fmzoo.timeseries.tasks.downstream:GPHTHooks"},
        no_released_weights={"GPHT": "Liu et al. (KDD 2024) released code (icantnamemyself/GPHT), no pretrained weights"},
        datasets={"ETTh1": "fmzoo.timeseries.data.ltsf:load_etth1", "ETTh2": "fmzoo.timeseries.data.ltsf:load_etth2",
                  "ETTm1": "fmzoo.timeseries.data.ltsf:load_ettm1",
                  "exchange_rate": "fmzoo.timeseries.data.ltsf:load_exchange_rate",
                  "illness": "fmzoo.timeseries.data.ltsf:load_illness"},
        recipes_dir=HERE / "recipes", tables_dir=HERE / "tables", checkpoints_dir=HERE / "checkpoints",
    )
