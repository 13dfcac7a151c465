"""fmzoo-medical: VoCo and Volume Fusion self-supervised 3D pretraining on MONAI's SwinUNETR,
input specs for CT/MR volumes, few-label segmentation fine-tuning, and import of released VoCo weights."""

from .spec import (
    CT_SPEC_VOCO_PAPER,
    MR_SPEC_HIPPOCAMPUS,
    Volume,
    preprocess,
    read_dicom_series,
    read_nifti,
    read_volume,
)

__all__ = [
    "CT_SPEC_VOCO_PAPER", "MR_SPEC_HIPPOCAMPUS", "Volume", "preprocess", "read_dicom_series", "read_nifti",
    "read_volume", "VoCo", "VolumeFusionNet", "SwinUNETRSegmenter", "import_voco_state_dict",
]


def __getattr__(name):
    if name in ("VoCo", "VolumeFusionNet", "SwinUNETRSegmenter"):
        from .models import swin

        return getattr(swin, name)
    if name == "import_voco_state_dict":
        from .weights import import_voco_state_dict

        return import_voco_state_dict
    raise AttributeError(name)
