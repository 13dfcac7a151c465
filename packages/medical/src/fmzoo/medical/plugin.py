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
            "PCTNet": "fmzoo.medical.models.pctnet:PCTNet",
            "FMUNet": "fmzoo.medical.models.fmunet:FMUNet",
        },
        methods={
            "voco": "fmzoo.medical.methods.voco:VoCoMethod",
            "volume_fusion": "fmzoo.medical.methods.volume_fusion:VolumeFusionMethod",
        },
        downstream={
            "VoCo": "fmzoo.medical.tasks.downstream:VoCoHooks",
            "VolumeFusionNet": "fmzoo.medical.tasks.downstream:VolumeFusionHooks",
            "SwinUNETRSegmenter": "fmzoo.medical.tasks.downstream:SegmenterHooks",
            "PCTNet": "fmzoo.medical.tasks.downstream:MISFMHooks",
            "FMUNet": "fmzoo.medical.tasks.downstream:MISFMHooks",
        },
        datasets={"msd_hippocampus": "fmzoo.medical.data.hippocampus:load_hippocampus"},
        weight_formats={"voco": "fmzoo.medical.weights:VoCoRelease",
                        "misfm_pctnet": "fmzoo.medical.weights:MISFMPCTNetRelease",
                        "misfm_fmunet": "fmzoo.medical.weights:MISFMFMUNetRelease"},
        official="fmzoo.medical.weights:OFFICIAL",
        recipes_dir=HERE / "recipes",
        tables_dir=HERE / "tables",
        checkpoints_dir=HERE / "checkpoints",
    )
