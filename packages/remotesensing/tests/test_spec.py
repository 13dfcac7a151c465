import copy

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.remotesensing.spec import (
    S2_L1C_ORDER,
    Preprocessor,
    add_product,
    canonical_band,
    canonical_bands,
    make_input_spec,
)


def test_band_names_and_aliases():
    assert canonical_band("B4") == "B04"
    assert canonical_band("b8a") == "B8A"
    assert canonical_band("red") == "B04" and canonical_band("NIR") == "B08"
    with pytest.raises(InputSpecError, match="unknown band"):
        canonical_band("B14")
    with pytest.raises(InputSpecError, match="more than once"):
        canonical_bands(["B04", "red"])


def _spec():
    spec = make_input_spec(S2_L1C_ORDER, 32)
    spec = add_product(spec, "s2_l1c_reflectance", S2_L1C_ORDER, [0.1] * 13, [0.05] * 13, (0, 2.0), default=True)
    spec = add_product(spec, "s2_l1c_dn", S2_L1C_ORDER, [0.1] * 13, [0.05] * 13, (0, 20000), scale=1e-4)
    spec = add_product(spec, "rgb8", ["B04", "B03", "B02"], [80, 90, 100], [40, 35, 30], (0, 255))
    return spec


def test_standardize_resize_and_missing_bands():
    pre = Preprocessor(_spec())
    rgb = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    out = pre(rgb, product="rgb8")
    assert out.shape == (2, 13, 32, 32)
    # bands absent from the product are their mean: 0 after standardization
    others = [i for i, b in enumerate(S2_L1C_ORDER) if b not in ("B04", "B03", "B02")]
    assert out[:, others].abs().max() == 0
    # B04 channel = standardized red, resized
    red = (rgb[:, :1].float() - 80) / 40
    red = torch.nn.functional.interpolate(red, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(out[:, 3:4], red, atol=1e-5)


def test_band_order_is_honoured():
    pre = Preprocessor(_spec())
    rgb = torch.randint(0, 256, (1, 3, 32, 32)).float()
    a = pre(rgb, bands=["red", "green", "blue"])
    b = pre(rgb.flip(1), bands=["B02", "B03", "B04"])
    assert torch.allclose(a, b)


def test_dn_and_reflectance_agree_and_wrong_range_is_refused():
    pre = Preprocessor(_spec())
    refl = torch.rand(1, 13, 32, 32) * 0.5
    assert torch.allclose(pre(refl, product="s2_l1c_reflectance"), pre(refl * 10000, product="s2_l1c_dn"), atol=1e-4)
    # unnamed, DN pick the DN product by their range; fed as reflectance they are refused, both scales named
    assert torch.allclose(pre(refl * 10000), pre(refl), atol=1e-4)
    with pytest.raises(InputSpecError, match="digital numbers.*expects reflectance"):
        pre(refl * 10000, product="s2_l1c_reflectance")
    with pytest.raises(InputSpecError, match="reflectance.*expects Sentinel-2 digital numbers"):
        pre(refl, product="s2_l1c_dn")
    with pytest.raises(InputSpecError, match="already divided by 255"):
        pre(torch.rand(1, 3, 32, 32), product="rgb8")
    with pytest.raises(InputSpecError, match="expects"):
        pre(torch.full((1, 3, 32, 32), 300.0), product="rgb8")


def test_clear_errors_for_bad_inputs():
    pre = Preprocessor(_spec())
    with pytest.raises(InputSpecError, match="matches no product"):
        pre(torch.rand(1, 5, 32, 32))
    with pytest.raises(InputSpecError, match="NaN"):
        x = torch.rand(1, 13, 32, 32)
        x[0, 0, 0, 0] = float("nan")
        pre(x)
    with pytest.raises(InputSpecError, match="channels"):
        pre(torch.rand(1, 3, 32, 32) * 255, bands=["B04", "B03"])
    with pytest.raises(InputSpecError, match="unknown input product"):
        pre(torch.rand(1, 13, 32, 32), product="landsat")
    with pytest.raises(InputSpecError, match="shape"):
        pre(torch.rand(32, 32))
    with pytest.raises(InputSpecError, match="'image'"):
        pre({"mask": torch.zeros(1, 4, 4)})
    spec = _spec()
    spec["size_policy"] = "error"
    with pytest.raises(InputSpecError, match="pretrained at 32x32"):
        Preprocessor(spec)(torch.rand(1, 13, 64, 64) * 0.3)


def test_torchgeo_sample_dict():
    pre = Preprocessor(_spec())
    img = np.random.default_rng(0).uniform(0, 0.4, (13, 32, 32)).astype(np.float32)
    sample = {"image": torch.from_numpy(img), "bands": list(S2_L1C_ORDER)}
    assert torch.allclose(pre(sample), pre(img))


# ------------------------------------------------------------------------------------------- the spec class


def _edited(tmp_path, edit):
    """The shipped RGB checkpoint copied with its config.json input_spec edited."""
    import json
    import shutil

    from fmzoo.core import resolve_checkpoint

    dst = tmp_path / "ck"
    shutil.copytree(resolve_checkpoint("fmzoo/rgb-resnet-small-eurosat"), dst)
    config = json.loads((dst / "config.json").read_text())
    edit(config["input_spec"])
    (dst / "config.json").write_text(json.dumps(config))
    return dst


BROKEN = [  # (edit, words the error must hold)
    (lambda s: s.pop("products"), r"missing \['products'\]"),
    (lambda s: s.update(input_size="96"), r"\['input_size'\]: expected an integer, got '96'"),
    (lambda s: s.update(size_policy="stretch"), r"\['size_policy'\]: expected one of \['resize', 'native', 'error'\]"),
    (lambda s: s.update(default_product="s2_l1c_dn"), r"\['default_product'\]: expected one of the declared products"),
    (lambda s: s["products"]["rgb8"].update(mean=[1.0, 2.0]), r"\['products.rgb8'\]: expected 3 means and stds"),
    (lambda s: s["products"]["rgb8"].update(bands=["B04", "B03", "B08"]),
     r"\['products.rgb8.bands'\]: expected model bands .* got \['B08'\] outside them"),
    (lambda s: s["products"]["rgb8"].update(valid_range=[255, 0]), r"valid_range'\]: expected \[low, high\]"),
    (lambda s: s.update(bands=["red", "green", "blue"]), r"\['bands'\]: expected canonical band names"),
]


@pytest.mark.parametrize("edit,words", BROKEN)
def test_a_broken_spec_is_refused_at_load_and_at_save(tmp_path, edit, words):
    from fmzoo.core import from_pretrained
    from fmzoo.remotesensing.models.backbones import SoftConResNet
    from fmzoo.remotesensing.spec import RemoteSensingInput

    with pytest.raises(InputSpecError, match=words):
        from_pretrained(_edited(tmp_path, edit))
    model = from_pretrained("fmzoo/rgb-resnet-small-eurosat")
    assert type(model).input_spec_class is RemoteSensingInput
    spec = copy.deepcopy(model.input_spec)
    edit(spec)
    model.input_spec = spec
    with pytest.raises(InputSpecError, match=words):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out" / "config.json").exists()
    assert SoftConResNet.input_spec_class.validate(from_pretrained("fmzoo/softcon-resnet-small").input_spec)
