"""fmzoo checkpoints as torchgeo ``WeightsEnum`` members: torchgeo's own constructors (``torchgeo.models.resnet18``,
``resnet50``, ``vit_small_patch14_dinov2``) fed with the member give fmzoo's features on real EuroSAT RGB images and
real Sentinel-2 L1C pixels (eo-learn patch), and the member's ``transforms`` give fmzoo's preprocessing. Official
releases are files written in the official layout with random weights. No network."""

import copy
import json
import pickle
import shutil
import warnings

import pytest
import torch
import torchgeo.models as tgm
from fmzoo.core import CheckpointError, InputSpecError, from_pretrained
from fmzoo.core.errors import UsageError
from fmzoo.remotesensing.data.eopatch import load_eopatch
from fmzoo.remotesensing.data.eurosat import load_eurosat_rgb
from fmzoo.remotesensing.models.backbones import SoftConViT
from fmzoo.remotesensing.torchgeo_weights import (
    CropToMultiple,
    FmzooResNet_Weights,
    FmzooWeightsEnum,
    RequireSize,
    Rescale,
    build_model,
    torchgeo_weights,
)
from fmzoo.remotesensing.weights import _torchgeo_stats
from torchvision.models._api import WeightsEnum

TOL = 1e-5
SHIPPED = "fmzoo/rgb-resnet-small-eurosat"


@pytest.fixture(scope="module")
def eurosat():
    x, _ = load_eurosat_rgb("test", limit=12, seed=0)  # real 64 px RGB scenes, stratified over the 5 classes
    return torch.from_numpy(x)


@pytest.fixture(scope="module")
def s2_reflectance():
    return torch.from_numpy(load_eopatch()["image"][:2])  # 2 real 13-band L1C scenes (reflectance), 101x100 px


def _fmzoo(model, x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ResizeWarning of every resize
        return model.embed(x, **kw), model.preprocess(x, **kw)


def _features(tg_model, x):
    with torch.no_grad():
        return tg_model.eval()(x)


@pytest.mark.parametrize("member, repo_id", [
    (FmzooResNet_Weights.RGB_RESNET_SMALL_EUROSAT, "fmzoo/rgb-resnet-small-eurosat"),
    (FmzooResNet_Weights.SOFTCON_RESNET_SMALL_RGB, "fmzoo/softcon-resnet-small"),
])
def test_shipped_members_give_fmzoo_features_on_eurosat(member, repo_id, eurosat):
    assert isinstance(member, WeightsEnum) and member.url.startswith("file://")
    meta = member.meta
    assert meta["ssl_method"] == "softcon" and meta["publication"] == "https://arxiv.org/abs/2405.20462"
    assert meta["input_bands"] == ["B4", "B3", "B2"] and meta["license"] == "apache-2.0"
    assert meta["size_policy"] == "resize" and meta["img_size"] == 96 and meta["fmzoo_id"] == repo_id
    model = from_pretrained(repo_id)
    assert meta["in_chans"] == len(model.bands) == len(meta["bands"])
    ref, pre = _fmzoo(model, eurosat)
    t = member.transforms(eurosat)  # uint8 (B, 3, 64, 64), as decoded
    assert torch.equal(t, pre) and t.shape == (12, len(model.bands), 96, 96)
    assert torch.equal(member.transforms(eurosat[0]), pre[0])  # one (C, H, W) image
    tg = tgm.resnet18(weights=member, num_classes=0, **meta["model_kwargs"])  # torchgeo's own constructor
    assert (_features(tg, t) - ref).abs().max() <= TOL
    assert (_features(build_model(member, num_classes=0), t) - ref).abs().max() <= TOL
    sd = member.get_state_dict(progress=False)
    assert set(sd) == set(tg.state_dict())
    own = model.state_dict()
    assert all(torch.equal(v, own[f"backbone.{k}"]) for k, v in sd.items())


@pytest.mark.parametrize("member, scale", [(FmzooResNet_Weights.SOFTCON_RESNET_SMALL, 1.0),
                                           (FmzooResNet_Weights.SOFTCON_RESNET_SMALL_DN, 1e4)])
def test_shipped_s2_members_on_real_l1c_pixels(member, scale, s2_reflectance):
    x = (s2_reflectance * scale).round() if scale != 1 else s2_reflectance
    model = from_pretrained("fmzoo/softcon-resnet-small")
    ref, pre = _fmzoo(model, x)
    t = member.transforms(x)
    assert torch.equal(t, pre)
    assert member.meta["bands"][8] == "B8a" and member.meta["radiometry"] == ("dn" if scale != 1 else "reflectance")
    tg = tgm.resnet18(weights=member, num_classes=0, **member.meta["model_kwargs"])
    assert (_features(tg, t) - ref).abs().max() <= TOL
    mean, std, _ = _torchgeo_stats(member.transforms)  # what from_torchgeo reads back
    prod = model.input_spec["products"][member.meta["product"]]
    assert (mean, std) == (prod["mean"], prod["std"])
    assert any(isinstance(m, Rescale) and m.factor == prod["scale"] for m in member.transforms) == (scale != 1)


def test_torchgeo_weights_returns_the_shipped_members():
    assert torchgeo_weights(SHIPPED) is FmzooResNet_Weights.RGB_RESNET_SMALL_EUROSAT
    assert torchgeo_weights("fmzoo/softcon-resnet-small", product="s2_l1c_dn") is FmzooResNet_Weights.SOFTCON_RESNET_SMALL_DN
    with pytest.raises(UsageError, match=r"product 'nope' is not declared.*rgb8"):
        torchgeo_weights(SHIPPED, product="nope")


def _official_rn50(path):
    import torchvision

    ref = torchvision.models.resnet50()
    ref.conv1 = torch.nn.Conv2d(13, 64, kernel_size=7, stride=2, padding=3, bias=False)
    ref.fc = torch.nn.Identity()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, b in ref.named_buffers():
            if name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
    torch.save(ref.state_dict(), path)  # the release's layout: bare torchvision keys
    return ref.eval()


def test_imported_softcon_rn50_through_torchgeo_resnet50(isolated_hub, tmp_path, s2_reflectance):
    _official_rn50(tmp_path / "B13_rn50_softcon.pth")
    model = from_pretrained(tmp_path / "B13_rn50_softcon.pth")  # converted once into the hub's imported/ cache
    member = torchgeo_weights(tmp_path / "B13_rn50_softcon.pth")
    assert isinstance(member, FmzooWeightsEnum) and member is torchgeo_weights(tmp_path / "B13_rn50_softcon.pth")
    assert repr(member) == "SoftConResNet_Weights.B13_RN50_SOFTCON"
    assert pickle.loads(pickle.dumps(member)) is member  # by name (DataLoader workers, Lightning hparams)
    static = FmzooResNet_Weights.SOFTCON_RESNET_SMALL_DN
    assert pickle.loads(pickle.dumps(static)) is static and copy.deepcopy(static) is static
    meta = member.meta
    assert (meta["model"], meta["model_kwargs"], meta["in_chans"], meta["img_size"]) == ("resnet50", {}, 13, 224)
    assert (meta["dataset"], meta["repo"], meta["license"]) == ("SSL4EO-S12", "https://github.com/zhu-xlab/softcon",
                                                                "cc-by-4.0")
    assert meta["product"] == "s2_l1c_reflectance"
    ref, pre = _fmzoo(model, s2_reflectance)
    t = member.transforms(s2_reflectance)
    assert t.shape == (2, 13, 224, 224) and torch.equal(t, pre)
    tg = tgm.resnet50(weights=member, num_classes=0)  # exactly torchgeo's usage, no extra arguments
    assert (_features(tg, t) - ref).abs().max() <= TOL


def test_imported_softcon_vit_through_torchgeo_dinov2(isolated_hub, tmp_path, s2_reflectance):
    ref = tgm.vit_small_patch14_dinov2(None, in_chans=13, img_size=224, num_classes=0)
    sd = dict(ref.state_dict())
    sd["mask_token"] = torch.randn(1, 384)  # the DINOv2 release holds it; timm's model does not
    torch.save(sd, tmp_path / "B13_vits14_softcon.pth")
    member = torchgeo_weights(tmp_path / "B13_vits14_softcon.pth")
    assert member.meta["model"] == "vit_small_patch14_dinov2" and "mask_token" not in member.get_state_dict()
    model = from_pretrained(tmp_path / "B13_vits14_softcon.pth")
    x = s2_reflectance[:1]
    emb, pre = _fmzoo(model, x)
    t = member.transforms(x)
    assert torch.equal(t, pre)
    tg = tgm.vit_small_patch14_dinov2(weights=member, num_classes=0)
    assert (_features(tg, t) - emb).abs().max() <= TOL


def _copy_checkpoint(tmp_path, policy):
    src = from_pretrained(SHIPPED).checkpoint_dir
    dst = tmp_path / f"rgb-{policy}"
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["input_spec"]["size_policy"] = policy
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_size_policies_native_and_error(isolated_hub, tmp_path, eurosat):
    native = torchgeo_weights(_copy_checkpoint(tmp_path, "native"))
    assert native.meta["size_policy"] == "native" and native.meta["fmzoo_id"].endswith("rgb-native")
    model = from_pretrained(SHIPPED)
    ref, pre = _fmzoo(model, eurosat, size="native")
    t = native.transforms(eurosat)
    assert torch.equal(t, pre) and t.shape[-1] == 64  # native: no resize
    assert (_features(build_model(native, num_classes=0), t) - ref).abs().max() <= TOL
    strict = torchgeo_weights(_copy_checkpoint(tmp_path, "error"))
    assert any(isinstance(m, RequireSize) for m in strict.transforms)
    with pytest.raises(InputSpecError, match=r"64x64 px but this checkpoint was pretrained at 96x96"):
        strict.transforms(eurosat)


def test_small_vit_native_crop_to_patch(isolated_hub, tmp_path, eurosat):
    """A ViT checkpoint with size_policy native: the transforms crop to a multiple of the patch as fmzoo does."""
    torch.manual_seed(0)
    vit = SoftConViT(patch_size=8, embed_dim=64, depth=2, num_heads=2, input_size=96)
    spec = dict(from_pretrained(SHIPPED).input_spec, size_policy="native")
    vit.input_spec = spec
    vit.save_pretrained(tmp_path / "vit")
    member = torchgeo_weights(tmp_path / "vit")
    assert member.meta["model"] == "vit_base_patch16_224" and member.meta["model_kwargs"]["patch_size"] == 8
    x = eurosat[:, :, 1:62, 2:63]  # 61x61: cropped to 56x56
    ref, pre = _fmzoo(from_pretrained(tmp_path / "vit"), x)
    t = member.transforms(x)
    assert any(isinstance(m, CropToMultiple) for m in member.transforms)
    assert torch.equal(t, pre) and t.shape[-2:] == (56, 56)
    assert (_features(build_model(member, num_classes=0), t) - ref).abs().max() <= TOL


def test_https_url_reads_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FMZOO_OFFLINE", "1")
    url = "https://huggingface.co/someone/rgb-resnet-small-eurosat/resolve/main/model.safetensors"
    member = torchgeo_weights(SHIPPED, url=url)
    assert member is not FmzooResNet_Weights.RGB_RESNET_SMALL_EUROSAT and member.url == url
    with pytest.raises(CheckpointError, match="not in torch.hub's cache.*networking is off"):
        member.get_state_dict(model_dir=tmp_path)
    local = FmzooResNet_Weights.RGB_RESNET_SMALL_EUROSAT
    shutil.copy(local.url[len("file://"):], tmp_path / "model.safetensors")  # as a finished download leaves it
    got, want = member.get_state_dict(model_dir=tmp_path), local.get_state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    with open(tmp_path / "model.safetensors", "r+b") as f:  # a corrupt copy is refused
        f.seek(-4, 2)
        f.write(b"\0\0\0\0")
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        member.get_state_dict(model_dir=tmp_path)


def test_transforms_refuse_what_fmzoo_refuses(eurosat, s2_reflectance):
    rgb = FmzooResNet_Weights.RGB_RESNET_SMALL_EUROSAT.transforms
    with pytest.raises(InputSpecError, match="already divided by 255"):
        rgb(eurosat.float() / 255)
    with pytest.raises(InputSpecError, match="has 3 bands"):
        rgb(s2_reflectance)
    with pytest.raises(InputSpecError, match="reflectance"):  # reflectance fed to the DN member
        FmzooResNet_Weights.SOFTCON_RESNET_SMALL_DN.transforms(s2_reflectance)
    with pytest.raises(InputSpecError, match="dn_offset=1000"):  # baseline-04.00 DN (+1000 offset)
        FmzooResNet_Weights.SOFTCON_RESNET_SMALL_DN.transforms((s2_reflectance * 1e4).round() + 1000)


def test_not_a_remote_sensing_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "GraphMAE", "fmzoo_package": "graph",
                                                      "init_args": {}}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UsageError, match="fmzoo remote-sensing checkpoints"):
        torchgeo_weights(tmp_path)
