"""Bad inputs to the remote-sensing models, each refused with an InputSpecError that names what was expected and
what was given (and nothing written where a command fails). Real data: the eo-learn Sentinel-2 patch (13 bands,
reflectance) and EuroSAT RGB JPEGs under FMZOO_DATA."""

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.downstream import hooks_for
from fmzoo.remotesensing.data.eopatch import load_eopatch
from fmzoo.remotesensing.data.eurosat import load_eurosat_rgb
from fmzoo.remotesensing.data.folder import read_image_folder
from fmzoo.remotesensing.data.geotiff import read_geotiff, write_geotiff
from fmzoo.remotesensing.models.backbones import SoftConViT
from fmzoo.remotesensing.spec import RGB_BANDS, S2_L1C_ORDER, ResizeWarning, add_product, make_input_spec
from PIL import Image

SOFTCON, RGB = "fmzoo/softcon-resnet-small", "fmzoo/rgb-resnet-small-eurosat"


@pytest.fixture(scope="module")
def s2(rs_root):
    """Real Sentinel-2 L1C reflectance, one date, 13 bands, 96x96 px (values 0.0005-0.53)."""
    return load_eopatch(rs_root)["image"][0, :, :96, :96].copy()


@pytest.fixture(scope="module")
def softcon():
    return from_pretrained(SOFTCON)


@pytest.fixture(scope="module")
def rgb8(rs_root):
    return load_eurosat_rgb("test", limit=4, seed=0)[0]


def test_wrong_band_count_and_names(softcon, s2):
    with pytest.raises(InputSpecError, match=r"5 channels.*matches no product.*s2_l1c_reflectance: 13 bands"):
        softcon.embed(s2[:5])
    with pytest.raises(InputSpecError, match=r"bands names 12 channels.*the input has 13 channels"):
        softcon.embed(s2, bands=S2_L1C_ORDER[:12])
    with pytest.raises(InputSpecError, match=r"unknown band 'B14': expected a Sentinel-2 band name"):
        softcon.embed(s2, bands=[*S2_L1C_ORDER[:12], "B14"])
    with pytest.raises(InputSpecError, match=r"names \['B04'\] more than once"):
        softcon.embed(s2, bands=[*S2_L1C_ORDER[:12], "red"])
    # the forward pass itself names the band count it expects
    with pytest.raises(InputSpecError, match=r"expects 13 bands .* got 3 channels"):
        softcon(torch.zeros(1, 3, 96, 96))


def test_band_order_given_by_name_is_honoured(softcon, s2):
    """A band order that differs from the model's is reordered by name, not silently misread."""
    perm = np.random.default_rng(0).permutation(13)
    shuffled = s2[perm]
    names = [S2_L1C_ORDER[i] for i in perm]
    assert torch.allclose(softcon.embed(shuffled, bands=names, size="native"),
                          softcon.embed(s2, size="native"), atol=1e-5)
    # unnamed, the same shuffled array reads as B01..B12 and gives other features: why names matter
    assert not torch.allclose(softcon.embed(shuffled, size="native"), softcon.embed(s2, size="native"), atol=1e-3)


def test_nan_and_inf_are_refused(softcon, s2):
    for bad in (np.nan, np.inf):
        x = s2.copy()
        x[4, 10, 10] = bad
        with pytest.raises(InputSpecError, match="NaN or infinite values; mask or fill them"):
            softcon.embed(x)


def test_dtypes_that_are_not_pixel_values(softcon, s2):
    with pytest.raises(InputSpecError, match="expected numeric pixel values.*dtype <U"):
        softcon.embed(np.array([["a"]]))
    with pytest.raises(InputSpecError, match="expected numeric pixel values.*complex"):
        softcon.embed(s2.astype(np.complex64))
    with pytest.raises(InputSpecError, match="expected real pixel values.*torch.bool"):
        softcon.embed(torch.zeros(13, 32, 32, dtype=torch.bool))
    with pytest.raises(InputSpecError, match="expected a tensor, array or torchgeo sample dict, got list"):
        softcon.embed([[0.1, 0.2]])
    with pytest.raises(InputSpecError, match=r"expected an image \(C,H,W\) or batch \(B,C,H,W\), got shape \(96, 96\)"):
        softcon.embed(s2[0])
    # float64 is accepted and gives the float32 result
    assert torch.allclose(softcon.embed(s2.astype(np.float64), size="native"), softcon.embed(s2, size="native"),
                          atol=1e-5)


def test_reflectance_fed_as_dn_is_refused_naming_both_scales(softcon, s2):
    """The issue's silent wrong result: reflectance passed with product='s2_l1c_dn' was scaled by 1e-4."""
    with pytest.raises(InputSpecError, match=r"span \[[\d.e-]+, [\d.]+\]: that is reflectance \(0-1.*product "
                                             r"'s2_l1c_dn' expects Sentinel-2 digital numbers \(0-10000\+.*"
                                             r"product='s2_l1c_reflectance'.*radiometry='reflectance'"):
        softcon.embed(s2, product="s2_l1c_dn")
    dn = np.round(s2 * 10_000).astype(np.uint16)
    with pytest.raises(InputSpecError, match=r"that is Sentinel-2 digital numbers .* product 's2_l1c_reflectance' "
                                             r"expects reflectance \(0-1"):
        softcon.embed(dn.astype(np.float32), product="s2_l1c_reflectance")
    # said explicitly, each scale is converted to the product's: the same features as the matching product
    ref = softcon.embed(s2, product="s2_l1c_reflectance", size="native")
    assert torch.allclose(softcon.embed(s2, product="s2_l1c_dn", radiometry="reflectance", size="native"), ref,
                          atol=1e-4)
    assert torch.allclose(softcon.embed(dn, product="s2_l1c_reflectance", radiometry="dn", size="native"), ref,
                          atol=1e-3)
    assert torch.allclose(softcon.embed(dn, size="native"), ref, atol=1e-3)  # DN picked by name and range
    # a stated radiometry that contradicts the values is refused too
    with pytest.raises(InputSpecError, match=r"radiometry='dn' says the input holds Sentinel-2 digital numbers.*"
                                             r"which is reflectance"):
        softcon.embed(s2, radiometry="dn")
    with pytest.raises(InputSpecError, match="radiometry must be 'reflectance' or 'dn'"):
        softcon.embed(s2, radiometry="toa")


def test_processing_baseline_offset(softcon, s2):
    """Sentinel-2 DN from processing baseline 04.00 on carry +1000: refused until dn_offset says so."""
    dn = np.round(s2 * 10_000).astype(np.float32)
    shifted = dn + 1000
    with pytest.raises(InputSpecError, match=r"every non-zero value .* >= 1000 .*processing baseline 04.00.*"
                                             r"reflectance x 10000 \+ 1000.*dn_offset=1000"):
        softcon.embed(shifted, product="s2_l1c_dn")
    want = softcon.embed(dn, product="s2_l1c_dn", size="native")
    assert torch.allclose(softcon.embed(shifted, product="s2_l1c_dn", dn_offset=1000, size="native"), want, atol=1e-4)
    assert torch.allclose(softcon.embed(shifted, dn_offset=1000, size="native"), want, atol=1e-4)
    with pytest.raises(InputSpecError, match="dn_offset=1000 applies to digital numbers; the input holds reflectance"):
        softcon.embed(s2, dn_offset=1000)


def test_rgb8_already_divided_and_out_of_range(rgb8):
    model = from_pretrained(RGB)
    with pytest.raises(InputSpecError, match="already divided by 255.*expects raw 8-bit values 0-255"):
        model.embed(rgb8 / 255.0)
    with pytest.raises(InputSpecError, match=r"span \[\d+, \d+\] but product 'rgb8' expects \[0, 255\]"):
        model.embed(rgb8.astype(np.float32) * 4)
    with pytest.raises(InputSpecError, match="radiometry=/dn_offset= convert Sentinel-2.*'rgb8' takes 8-bit RGB"):
        model.embed(rgb8, radiometry="dn")


def test_sizes_too_small_bad_and_announced(softcon, s2):
    with pytest.raises(InputSpecError, match="image of 4x4 px is too small: this model needs at least 8x8 px"):
        softcon.embed(s2[:, :4, :4])
    with pytest.raises(InputSpecError, match="size must be 'native'.*'resize'.*or a number of pixels >= 8, got 'big'"):
        softcon.embed(s2, size="big")
    with pytest.raises(InputSpecError, match="give size= or the older resize=, not both"):
        softcon.embed(s2, size="native", resize=True)
    with pytest.warns(ResizeWarning, match=r"40x40 px resized to 96x96 px \(the pretraining size\); size='native' keeps "
                      "the input size") as caught:
        softcon.embed(s2[:, :40, :40])
    assert all(len(str(w.message)) <= 120 for w in caught)
    spec = dict(softcon.input_spec, size_policy="error")
    strict = type(softcon)(**softcon.init_args)
    strict.input_spec = spec
    with pytest.raises(InputSpecError, match="is 40x40 px but this checkpoint was pretrained at 96x96 px and its "
                                             "size_policy is 'error'"):
        strict.embed(s2[:, :40, :40])


def test_vit_native_size_needs_patch_multiples(rgb8):
    torch.manual_seed(0)
    vit = SoftConViT(bands=RGB_BANDS, patch_size=8, embed_dim=32, depth=1, num_heads=2, input_size=32)
    vit.input_spec = add_product(make_input_spec(RGB_BANDS, 32), "rgb8", RGB_BANDS, [80.0] * 3, [40.0] * 3, (0, 255))
    x = rgb8[:, :, :60, :60]
    with pytest.warns(ResizeWarning, match=r"60x60 px centre-cropped to 56x56 px \(native, a multiple of the 8 px "
                      r"patch\); size='resize' gives 32x32 px") as caught:
        out = vit.embed(x, size="native")
    assert all(len(str(w.message)) <= 120 for w in caught)
    assert torch.allclose(out, vit.embed(x[:, :, 2:58, 2:58], size="native"), atol=1e-5)
    with pytest.raises(InputSpecError, match="size 60 is not a multiple of the model's 8 px patch"):
        vit.embed(x, size=60)
    with pytest.raises(InputSpecError, match="image of 60x4 px is too small: this model needs at least 8x8 px"):
        vit.embed(rgb8[:, :, :60, :4], size="native")


def test_geotiff_without_band_descriptions(tmp_path, s2):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "plain.tif"
    with rasterio.open(path, "w", driver="GTiff", height=32, width=32, count=13, dtype="float32",
                       transform=from_origin(0, 0, 10, 10)) as dst:
        dst.write(s2[:, :32, :32])
    with pytest.raises(InputSpecError, match="has 13 bands without descriptions; pass bands=\\[...\\] naming each"):
        read_geotiff(path)
    with pytest.raises(InputSpecError, match="has 13 bands but bands= names 3"):
        read_geotiff(path, bands=RGB_BANDS)
    assert read_geotiff(path, bands=S2_L1C_ORDER)["bands"] == S2_L1C_ORDER


def test_image_folder_with_an_empty_class_and_a_lone_image(tmp_path, rgb8):
    for cls, n in (("forest", 3), ("river", 0)):
        (tmp_path / "a" / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rgb8[i].transpose(1, 2, 0)).save(tmp_path / "a" / cls / f"{i}.png")
    with pytest.raises(InputSpecError, match=r"class folder '.*river' holds no image \(.png, .jpg"):
        read_image_folder(tmp_path / "a")
    Image.fromarray(rgb8[3].transpose(1, 2, 0)).save(tmp_path / "a" / "river" / "0.png")
    with pytest.raises(InputSpecError, match="class 'river' has 1 image; a class needs at least 2"):
        read_image_folder(tmp_path / "a")


def test_cli_refuses_a_dn_offset_folder_and_bad_options_without_writing(tmp_path, s2, capsys):
    """A GeoTIFF folder of baseline-04.00 DN: the CLI exits 2 naming both scales and writes nothing; with
    --option dn_offset=1000 the same folder is read (checked at load, before any training)."""
    p = load_eopatch()
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(2):
            img = np.round(p["image"][i, :, 32 * i:32 * i + 32, :32] * 10_000 + 1000).astype(np.uint16)
            write_geotiff(tmp_path / "data" / c / f"{i}.tif", img, p["bands"], p["crs"], p["bounds"])
    out = tmp_path / "out"
    assert main(["evaluate", SOFTCON, "--data", str(tmp_path / "data"), "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "processing baseline 04.00" in err and "dn_offset=1000" in err and not out.exists()
    assert main(["evaluate", SOFTCON, "--data", str(tmp_path / "data"), "--option", "size=huge", "--no-progress",
                 "--out", str(out)]) == 2
    assert "size must be 'native'" in capsys.readouterr().err and not out.exists()
    hooks = hooks_for("SoftConResNet")
    hooks.configure({"dn_offset": 1000, "size": "native"})
    task = hooks.load(from_pretrained(SOFTCON), None, tmp_path / "data")
    assert "32x32 px kept (native size" in task.notes
    with pytest.raises(InputSpecError, match="dn_offset must be a non-negative number"):
        hooks_for("SoftConResNet").configure({"dn_offset": "yes"})
