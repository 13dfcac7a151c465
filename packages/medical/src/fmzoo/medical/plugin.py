from pathlib import Path

from fmzoo.core import Plugin

HERE = Path(__file__).parent


def plugin() -> Plugin:
    return Plugin(
        name="medical",
        models={
            "VoCo": "fmzoo.medical.models.swin:VoCo",
            "VolumeFusionNet": "fmzoo.medical.models.swin:VolumeFusionNet",
            "SwinUNETRSegmenter": "fmzoo.medical.models.swin:SwinUNETRSegmenter",
        },
        pretrain={
            "voco": "fmzoo.medical.methods.voco:pretrain",
            "volume_fusion": "fmzoo.medical.methods.volume_fusion:pretrain",
        },
        downstream={
            "VoCo": "fmzoo.medical.tasks.downstream:VoCoHooks",
            "VolumeFusionNet": "fmzoo.medical.tasks.downstream:VolumeFusionHooks",
            "SwinUNETRSegmenter": "fmzoo.medical.tasks.downstream:SegmenterHooks",
        },
        table_runners={"medical-hippocampus": "fmzoo.medical.reproduce:run_hippocampus"},
        datasets={"msd_hippocampus": "fmzoo.medical.data.hippocampus:load_hippocampus"},
        recipes_dir=HERE / "recipes",
        tables_dir=HERE / "tables",
        checkpoints_dir=HERE / "checkpoints",
    )
