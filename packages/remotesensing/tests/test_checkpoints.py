"""The shipped checkpoints: loading, their preprocessing, widening on our RGB weights, and the
preprocessing bar (own preprocessing beats a wrong one, measured here on real EuroSAT images)."""

import json

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained, shipped_checkpoints
from fmzoo.remotesensing.data.eopatch import load_eopatch
from fmzoo.remotesensing.data.eurosat import load_eurosat_rgb
from fmzoo.remotesensing.data.geotiff import read_geotiff, write_geotiff
from fmzoo.remotesensing.models.backbones import SoftConResNet
from fmzoo.remotesensing.spec import S2_L1C_ORDER
from fmzoo.remotesensing.tasks.probe import knn_accuracy

SOFTCON, RGB = "fmzoo/softcon-resnet-small", "fmzoo/rgb-resnet-small-eurosat"


@pytest.fixture(scope="module")
def softcon():
    return from_pretrained(SOFTCON)


def test_shipped_and_small():
    shipped = shipped_checkpoints()
    for rid in (SOFTCON, RGB):
        assert rid in shipped
        files = {p.name: p.stat().st_size for p in shipped[rid].iterdir()}
        assert set(files) >= {"config.json", "model.safetensors", "README.md", "provenance.json"}
        assert sum(files.values()) <= 10 * 2**20


def test_config_carries_size_and_per_band_normalization(softcon):
    assert isinstance(softcon, SoftConResNet) and softcon.bands == S2_L1C_ORDER
    spec = softcon.input_spec
    assert spec["input_size"] == 96 and spec["size_policy"] == "resize"
    refl = spec["products"]["s2_l1c_reflectance"]
    assert len(refl["mean"]) == len(refl["std"]) == 13 and refl["valid_range"] == [0.0, 2.0]
    assert spec["products"]["s2_l1c_dn"]["scale"] == pytest.approx(1e-4)
    assert spec["products"]["rgb8"]["bands"] == ["B04", "B03", "B02"]
    prov = json.loads((shipped_checkpoints()[SOFTCON] / "provenance.json").read_text())
    assert prov["init_from"] == RGB and prov["recipe"]["loss"]["targets"] == "multilabel"


def test_embed_applies_own_preprocessing_on_real_s2(softcon, tmp_path, rs_root):
    p = load_eopatch(rs_root)
    img = p["image"][0]  # (13, 101, 100) reflectance
    f = softcon.embed(img)
    assert f.shape == (1, softcon.num_features) and torch.isfinite(f).all()
    # same result from DN values, from a GeoTIFF read and from a torchgeo-style sample dict
    assert torch.allclose(softcon.embed(img * 10000, product="s2_l1c_dn"), f, atol=1e-4)
    tif = write_geotiff(tmp_path / "s2.tif", img, p["bands"], p["crs"], p["bounds"])
    assert torch.allclose(softcon.embed(read_geotiff(tif)), f, atol=1e-5)
    shuffled = img[::-1].copy()
    assert torch.allclose(softcon.embed({"image": torch.from_numpy(shuffled), "bands": p["bands"][::-1]}), f, atol=1e-5)
    # unnamed, DN pick the DN product by their range; named as reflectance they fail clearly, as do band counts
    assert torch.allclose(softcon.embed(img * 10000), f, atol=1e-4)
    with pytest.raises(InputSpecError, match="digital numbers.*expects reflectance"):
        softcon.embed(img * 10000, product="s2_l1c_reflectance")
    with pytest.raises(InputSpecError, match="matches no product"):
        softcon.embed(img[:5])
    with pytest.raises(InputSpecError, match="expects 13 bands"):
        softcon(torch.zeros(1, 3, 96, 96))


def test_rgb8_product_and_wrong_scaling(softcon, rs_root):
    x, _ = load_eurosat_rgb("test", rs_root, limit=8)
    assert softcon.embed(x, product="rgb8").shape == (8, softcon.num_features)
    with pytest.raises(InputSpecError, match="already divided by 255"):
        softcon.embed(x / 255.0, product="rgb8")


def test_widening_our_rgb_checkpoint_is_exact_on_real_images(rs_root):
    rgb = from_pretrained(RGB)
    wide = rgb.widen(S2_L1C_ORDER, scheme="copy_random", seed=3).eval()
    assert wide.input_spec["products"]["rgb8"] == rgb.input_spec["products"]["rgb8"]
    x, _ = load_eurosat_rgb("test", rs_root, limit=16)
    a, b = rgb.embed(x, product="rgb8"), wide.embed(x, product="rgb8")
    assert torch.allclose(a, b, atol=1e-4)
    # the new bands do matter once they carry signal
    z = wide.preprocess(torch.from_numpy(x), product="rgb8")
    z[:, S2_L1C_ORDER.index("B08")] = 1.0
    with torch.no_grad():
        assert not torch.allclose(wide(z), b, atol=1e-3)


def test_own_preprocessing_beats_wrong_one(softcon, rs_root):
    train = load_eurosat_rgb("train", rs_root, limit=400, seed=0)
    test = load_eurosat_rgb("test", rs_root, limit=200, seed=0)
    own = knn_accuracy(softcon, train, test, size="resized", norm="standardized")
    wrong = knn_accuracy(softcon, train, test, size="native", norm="div255")
    assert own > wrong, (own, wrong)
    assert own > 60.0  # 5 classes: chance is ~23 % (largest class)


def test_torchgeo_rasterdataset_samples(softcon, tmp_path, rs_root):
    """A real torchgeo RasterDataset over a GeoTIFF of the S2 patch feeds the model its sample dicts."""
    from torchgeo.datasets import RasterDataset
    from torchgeo.samplers import GridGeoSampler

    p = load_eopatch(rs_root)
    write_geotiff(tmp_path / "s2_t0.tif", p["image"][0], p["bands"], p["crs"], p["bounds"])

    class S2Patch(RasterDataset):
        filename_glob = "*.tif"
        is_image = True
        separate_files = False
        all_bands = tuple(p["bands"])
        rgb_bands = ("B04", "B03", "B02")

    ds = S2Patch(str(tmp_path))
    query = next(iter(GridGeoSampler(ds, size=64, stride=64)))
    sample = ds[query]
    f = softcon.embed(sample, bands=list(ds.bands))
    # the same window cut from the array (rows counted from the north edge) gives the same pixels/features
    xmin, ymin, xmax, ymax = p["bounds"]
    res_y, res_x = (ymax - ymin) / p["image"].shape[-2], (xmax - xmin) / p["image"].shape[-1]
    r0, c0 = round((ymax - query[1].stop) / res_y), round((query[0].start - xmin) / res_x)
    window = p["image"][0][:, r0:r0 + 64, c0:c0 + 64]
    assert np.allclose(sample["image"].numpy(), window)
    direct = softcon.embed(window)
    assert f.shape == direct.shape
    assert torch.allclose(f, direct, atol=1e-4)


def test_native_size_with_the_checkpoint_statistics(rs_root):
    """size='native' keeps the 64 px EuroSAT images and standardizes them with the checkpoint's statistics (no
    resize, no warning); the default follows size_policy 'resize' and says so."""
    import warnings

    from fmzoo.remotesensing.spec import ResizeWarning

    model = from_pretrained(RGB)
    x = load_eurosat_rgb("test", rs_root, limit=8, seed=0)[0]
    prod = model.input_spec["products"]["rgb8"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # native size: nothing resized, nothing to announce
        native = model.preprocess(x, size="native")
    want = (torch.from_numpy(x).float() - torch.tensor(prod["mean"]).view(1, 3, 1, 1)) / torch.tensor(
        prod["std"]).view(1, 3, 1, 1)
    assert native.shape == (8, 3, 64, 64) and torch.allclose(native, want, atol=1e-6)
    with pytest.warns(ResizeWarning, match=r"64x64 px resized to 96x96 px \(the pretraining size\)"):
        resized = model.preprocess(x)
    assert resized.shape == (8, 3, 96, 96)
    assert torch.equal(model.preprocess(x, resize=False), native)  # the former switch now means native size
    with pytest.warns(ResizeWarning, match=r"64x64 px resized to 128x128 px \(size=128\)"):
        assert model.preprocess(x, size=128).shape == (8, 3, 128, 128)
    assert model.embed(x, size="native").shape == model.embed(x).shape == (8, model.num_features)


def test_timm_sees_the_checkpoint_preprocessing(rs_root):
    """The backbones come from timm.create_model with a pretrained_cfg made from the input spec; timm's own data
    config reproduces the checkpoint's normalisation; the state dict keys are unchanged."""
    import timm
    from safetensors.torch import load_file
    from timm.data import create_transform, resolve_data_config

    model = from_pretrained(RGB)
    keys = set(load_file(str(model.checkpoint_dir / "model.safetensors")))
    assert set(model.state_dict()) == keys
    cfg = model.backbone.pretrained_cfg
    assert cfg == model.backbone.default_cfg == model.pretrained_cfg
    assert (cfg["num_classes"], cfg["first_conv"], cfg["classifier"], cfg["license"]) == (0, "conv1", "fc", "apache-2.0")
    data = resolve_data_config({}, model=model.backbone)
    assert data["input_size"] == (3, 96, 96) and data["interpolation"] == "bilinear" and data["crop_pct"] == 1.0
    # timm's eval transform on a real EuroSAT image = fmzoo's own preprocessing at the pretraining size
    from PIL import Image

    x = load_eurosat_rgb("test", rs_root, limit=1, seed=0)[0][0]
    tf = create_transform(**data, is_training=False)
    ours = model.preprocess(x[None], size="native")[0]  # 64 px: no resize on either side
    assert torch.allclose(create_transform(**{**data, "input_size": (3, 64, 64)})(Image.fromarray(x.transpose(1, 2, 0))),
                          ours, atol=1e-4)
    assert tf(Image.fromarray(x.transpose(1, 2, 0))).shape == (3, 96, 96)
    # the 13-band checkpoint states its reflectance statistics; a paper-sized ResNet-50 is named as timm's resnet50
    softcon = from_pretrained(SOFTCON)
    refl = softcon.input_spec["products"]["s2_l1c_reflectance"]
    assert softcon.backbone.pretrained_cfg["mean"] == tuple(refl["mean"])
    assert softcon.backbone.pretrained_cfg["input_size"] == (13, 96, 96)
    rn50 = SoftConResNet(bands=S2_L1C_ORDER, block="bottleneck", layers=[3, 4, 6, 3], channels=[64, 128, 256, 512],
                         stem_width=64, input_size=224)
    assert rn50.pretrained_cfg["architecture"] == "resnet50"
    assert set(rn50.backbone.state_dict()) == set(timm.create_model("resnet50", in_chans=13, num_classes=0).state_dict())
