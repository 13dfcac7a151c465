from pathlib import Path

from fmzoo.core import Plugin

HERE = Path(__file__).parent


def plugin() -> Plugin:
    return Plugin(
        name="protein",
        models={
            "TapeTransformer": "fmzoo.protein.models.transformer:TapeTransformer",
            "TapeResNet": "fmzoo.protein.models.resnet:TapeResNet",
            "TapeTaskModel": "fmzoo.protein.models.task:TapeTaskModel",
        },
        methods={"tape_mlm": "fmzoo.protein.methods.mlm:TapeMLM"},
        downstream={
            "TapeTransformer": "fmzoo.protein.tasks.downstream:TapeHooks",
            "TapeResNet": "fmzoo.protein.tasks.downstream:TapeHooks",
            "TapeTaskModel": "fmzoo.protein.tasks.downstream:TapeHooks",
        },
        datasets={
            "flip_secondary_structure": "fmzoo.protein.data.secondary_structure:load_flip_ss",
            "cb513": "fmzoo.protein.data.secondary_structure:load_cb513",
            "flip_gb1": "fmzoo.protein.data.gb1:load_gb1",
            "flip_sequences": "fmzoo.protein.data.fasta:load_pretraining_sequences",
        },
        weight_formats={"tape-bert": "fmzoo.protein.weights:TapeBertRelease"},
        official="fmzoo.protein.weights:OFFICIAL",
        recipes_dir=HERE / "recipes", tables_dir=HERE / "tables", checkpoints_dir=HERE / "checkpoints",
    )
