"""The medical InputSpec (``VolumeInput``): every medical model declares it, every shipped and imported checkpoint
carries a valid one, and a broken spec is refused at save time and at load time with the key named."""

import copy
import json

import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.core.spec import spec_class_of
from fmzoo.medical.models.swin import SwinUNETRSegmenter, VoCo, VolumeFusionNet
from fmzoo.medical.spec import CT_SPEC_VOCO_PAPER, MR_SPEC_HIPPOCAMPUS, VolumeInput

# (how the spec is broken, the key the message must name, a fragment of the message)
BROKEN = [
    (lambda s: s.pop("spacing"), "spacing", "missing"),
    (lambda s: s.pop("intensity"), "intensity", "missing"),
    (lambda s: s.update(in_channels="1"), "in_channels", "expected an integer"),
    (lambda s: s.update(spacing="1mm"), "spacing", "expected a list"),
    (lambda s: s.update(modality="PET"), "modality", "'CT' or 'MR'"),
    (lambda s: s.update(axcodes="RAR"), "axcodes", "one of L/R, one of A/P, one of S/I"),
    (lambda s: s.update(roi_size=[32, 60, 32]), "roi_size", "multiples of 32"),
    (lambda s: s.update(spacing=[1.0, -1.0, 1.0]), "spacing", "positive voxel sizes"),
    (lambda s: s.update(spacing_tolerance=1.5), "spacing_tolerance", "[0, 1)"),
    (lambda s: s["intensity"].update(kind="zscore"), "kind", "'window' (CT, HU) or 'percentile'"),
    (lambda s: s["intensity"].update(lower=99.5, upper=0.5), "intensity", "lower < upper"),
    (lambda s: s["intensity"].update(b_min=1.0, b_max=0.0), "intensity", "b_min < b_max"),
]


def _broken(edit):
    spec = copy.deepcopy(MR_SPEC_HIPPOCAMPUS)
    edit(spec)
    return spec


def test_every_medical_model_declares_the_volume_spec():
    for cls in (VoCo, VolumeFusionNet, SwinUNETRSegmenter):
        assert spec_class_of(cls) is VolumeInput
    assert VolumeInput.validate(MR_SPEC_HIPPOCAMPUS) is MR_SPEC_HIPPOCAMPUS
    assert VolumeInput.validate(CT_SPEC_VOCO_PAPER) is CT_SPEC_VOCO_PAPER


@pytest.mark.parametrize("name", ["voco-small", "volumefusion-small"])
def test_shipped_checkpoints_load_and_save_with_their_spec(name, tmp_path):
    model = from_pretrained(f"fmzoo/{name}")
    VolumeInput.validate(model.input_spec)
    out = tmp_path / name
    model.save_pretrained(out)
    again = from_pretrained(str(out))
    assert again.input_spec == model.input_spec
    w = "swinViT.patch_embed.proj.weight"
    assert torch.equal(again.state_dict()[w], model.state_dict()[w].to(again.state_dict()[w].dtype))


@pytest.mark.parametrize("edit,key,fragment", BROKEN)
def test_broken_spec_is_refused_when_saving(edit, key, fragment, tmp_path):
    seg = SwinUNETRSegmenter(feature_size=12, input_spec=_broken(edit))
    with pytest.raises(InputSpecError) as err:
        seg.save_pretrained(tmp_path / "seg")
    assert key in str(err.value) and fragment in str(err.value)
    assert not (tmp_path / "seg" / "config.json").exists()  # nothing written


@pytest.fixture(scope="module")
def saved_segmenter(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "seg"
    SwinUNETRSegmenter().save_pretrained(path)
    return path


@pytest.mark.parametrize("edit,key,fragment", BROKEN[:7])
def test_broken_spec_is_refused_when_loading(edit, key, fragment, saved_segmenter, tmp_path):
    """A config.json edited by hand (the weights untouched) no longer loads, and the error names the key."""
    import shutil

    path = tmp_path / "edited"
    shutil.copytree(saved_segmenter, path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["input_spec"] = _broken(edit)
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputSpecError) as err:
        from_pretrained(str(path))
    assert key in str(err.value) and fragment in str(err.value) and "config.json" in str(err.value)


def test_an_imported_voco_carries_the_ct_spec_and_saves(tmp_path):
    from fmzoo.medical.models.swin import ENCODER_PREFIXES, build_swinunetr
    from fmzoo.medical.weights import voco_from_state_dict

    torch.manual_seed(0)
    ref = build_swinunetr(1, 2, 12, 7)
    model, _ = voco_from_state_dict({k: v for k, v in ref.state_dict().items() if k.startswith(ENCODER_PREFIXES)})
    assert model.input_spec == CT_SPEC_VOCO_PAPER
    model.save_pretrained(tmp_path / "voco")
    assert from_pretrained(str(tmp_path / "voco")).input_spec == CT_SPEC_VOCO_PAPER
