"""The released SoftCon weights: files written in the official layouts with random weights (torchvision's ResNet-50
as the official README builds it, timm's / torchgeo's DINOv2 ViT-S/14 with the DINOv2 key names), converted through
``fmzoo.core.from_pretrained(PATH)`` and compared with the reference model; catalogue ids resolved offline from a
Hugging Face cache laid out here; torchgeo's WeightsEnum members mapped onto the catalogue; and ``fmzoo evaluate`` /
``fmzoo finetune`` on an imported RN50 with 13-band GeoTIFFs of real Sentinel-2 pixels. No network."""

import json
import os

import numpy as np
import pytest
import torch
import torchvision
from fmzoo.core import CheckpointError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.weights import catalogue
from fmzoo.remotesensing.data.eopatch import load_eopatch
from fmzoo.remotesensing.data.geotiff import write_geotiff
from fmzoo.remotesensing.models.backbones import SoftConResNet, SoftConViT
from fmzoo.remotesensing.spec import S2_L1C_ORDER
from fmzoo.remotesensing.weights import OFFICIAL, from_torchgeo, official_from_torchgeo
from torchgeo.models import (
    ResNet50_Weights,
    ViTBase14_DINOv2_Weights,
    ViTSmall14_DINOv2_Weights,
    vit_small_patch14_dinov2,
)
from torchgeo.models import resnet as tg_resnet

TOL = 1e-5
TG_ENC_REVISION = "bae909781911f8ec034b4b959992fae17b973c0c"


def _randomize(model, seed=0):
    """Every parameter and BatchNorm statistic random (LayerScale, norms and running stats included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if name.endswith("weight") and p.ndim == 1 else 0.0  # norm scales around 1
            p.copy_(base + torch.randn(p.shape, generator=gen) * (0.02 if p.ndim > 1 else 0.1))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return model.eval()


def _torchvision_rn50(in_chans=13):
    """The official README's model: torchvision resnet50, conv1 for the bands, fc = Identity."""
    ref = torchvision.models.resnet50(num_classes=10)
    ref.conv1 = torch.nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    ref.fc = torch.nn.Identity()
    return _randomize(ref)


def _dinov2_vits14(in_chans=13, mask_token=True, seed=0):
    """timm's vit_small_patch14_dinov2 through torchgeo's constructor, its state dict in the DINOv2 layout (the
    official DinoVisionTransformer's names; ``mask_token`` as that model holds it)."""
    ref = _randomize(vit_small_patch14_dinov2(None, in_chans=in_chans, img_size=224, num_classes=0), seed)
    sd = dict(ref.state_dict())
    if mask_token:
        sd["mask_token"] = torch.randn(1, 384, generator=torch.Generator().manual_seed(seed + 1))
    return ref, sd


def test_rn50_release_equals_torchvision_and_torchgeo(isolated_hub, tmp_path):
    ref = _torchvision_rn50()
    torch.save(ref.state_dict(), tmp_path / "B13_rn50_softcon.pth")  # as released: bare torchvision keys, no fc
    model = from_pretrained(tmp_path / "B13_rn50_softcon.pth")
    assert isinstance(model, SoftConResNet) and model.bands == S2_L1C_ORDER
    tg = tg_resnet.resnet50(None, in_chans=13, num_classes=0)  # torchgeo's loader: timm resnet50, strict=False
    missing, unexpected = tg.load_state_dict(ref.state_dict(), strict=False)
    assert set(missing) <= {"fc.weight", "fc.bias"} and not unexpected
    for size in (64, 224):
        x = torch.randn(1, 13, size, size)
        with torch.no_grad():
            out = model(x)
            assert (out - ref(x)).abs().max() <= TOL and (out - tg.eval()(x)).abs().max() <= TOL
    spec = model.input_spec
    assert spec["input_size"] == 224 and spec["bands"] == S2_L1C_ORDER and spec["default_product"] == "s2_l1c_reflectance"
    assert spec["products"]["s2_l1c_dn"]["mean"] == tg_resnet._mean_s2
    assert spec["products"]["s2_l1c_dn"]["std"] == tg_resnet._std_s2
    # timm sees the release's preprocessing: reflectance statistics (DN stats / 10000), 224 px, resnet50
    from fmzoo.remotesensing.weights import from_softcon_resnet

    cfg = model.backbone.pretrained_cfg
    assert (cfg["architecture"], cfg["input_size"], cfg["num_classes"]) == ("resnet50", (13, 224, 224), 0)
    assert cfg["mean"] == pytest.approx([m / 1e4 for m in tg_resnet._mean_s2])
    direct = from_softcon_resnet(tmp_path / "B13_rn50_softcon.pth").pretrained_cfg
    assert (direct["hf_hub_id"], direct["hf_hub_filename"], direct["license"]) == (
        "wangyi111/softcon", "B13_rn50_softcon.pth", "cc-by-4.0")
    # a training-wrapper prefix and a classifier left in the file are tolerated
    wrapped = {f"module.backbone.{k}": v for k, v in ref.state_dict().items()}
    wrapped["module.backbone.fc.weight"] = torch.zeros(10, 2048)
    torch.save({"state_dict": wrapped}, tmp_path / "wrapped.pth")
    with pytest.warns(UserWarning, match="dropped the release's classifier"):
        again = from_pretrained(tmp_path / "wrapped.pth")
    x = torch.randn(1, 13, 64, 64)
    with torch.no_grad():
        assert (again(x) - ref(x)).abs().max() <= TOL


def test_vits14_release_equals_the_dinov2_reference(isolated_hub, tmp_path):
    ref, sd = _dinov2_vits14()
    torch.save(sd, tmp_path / "B13_vits14_softcon.pth")
    model = from_pretrained(tmp_path / "B13_vits14_softcon.pth")
    assert isinstance(model, SoftConViT) and model.init_args["init_values"] and model.init_args["mask_token"]
    assert torch.equal(model.mask_token, sd["mask_token"])
    x = torch.randn(2, 13, 224, 224)  # the release's size: 16 x 16 patches of 14 px
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= TOL
    assert model.input_spec["input_size"] == 224
    assert model.backbone.pretrained_cfg["architecture"] == "vit_small_patch14_dinov2"
    with torch.no_grad():  # DINOv2's masked input: no patch masked = the plain forward; masked patches change it
        none = torch.zeros(2, 256, dtype=torch.bool)
        assert torch.equal(model(x, masks=none), model(x))
        assert (model(x, masks=~none) - model(x)).abs().max() > 1e-3


def test_torchgeo_enc_file_and_enum_map_onto_the_catalogue(isolated_hub, tmp_path):
    """The torchgeo enum's file (``*_softcon_enc.pth``: no mask_token, as timm's model holds it) loads by its enum;
    the enum's bands and Normalize statistics become the converted model's spec."""
    entry = official_from_torchgeo(ViTSmall14_DINOv2_Weights.SENTINEL1_GRD_SOFTCON)
    assert (entry.id, entry.format, entry.files, entry.revision, entry.hf_repo) == (
        "wangyi111/softcon-vits14-s1", "softcon-vit", ("B2_vits14_softcon_enc.pth",), TG_ENC_REVISION, "wangyi111/softcon")
    assert entry.options == {"bands": ["VV", "VH"], "mean": [-12.59, -20.26], "std": [5.26, 5.91]}
    rn = official_from_torchgeo(ResNet50_Weights.SENTINEL2_ALL_SOFTCON)
    assert rn.files == ("B13_rn50_softcon.pth",) and rn.format == "softcon-rn50" and rn.id == "wangyi111/softcon-rn50-s2"
    assert official_from_torchgeo(ViTBase14_DINOv2_Weights.SENTINEL2_ALL_SOFTCON).id == "wangyi111/softcon-vitb14-s2"
    with pytest.raises(CheckpointError, match="not a SoftCon release"):
        official_from_torchgeo(ResNet50_Weights.SENTINEL2_ALL_MOCO)

    ref, sd = _dinov2_vits14(in_chans=2, mask_token=False, seed=3)
    torch.save(sd, tmp_path / "B2_vits14_softcon_enc.pth")
    model = from_torchgeo(ViTSmall14_DINOv2_Weights.SENTINEL1_GRD_SOFTCON, path=tmp_path / "B2_vits14_softcon_enc.pth")
    assert model.bands == ["VV", "VH"] and model.mask_token is None and model.input_spec["modality"] == "sar"
    x = torch.randn(1, 2, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= TOL
    # raw dB backscatter through the declared product = torchgeo's Normalize
    raw = torch.randn(1, 2, 224, 224) * 5 - 15
    expected = (raw - torch.tensor([-12.59, -20.26]).view(1, 2, 1, 1)) / torch.tensor([5.26, 5.91]).view(1, 2, 1, 1)
    assert torch.allclose(model.preprocess(raw, bands=["VV", "VH"]), expected, atol=1e-5)


def _hf_cache(root, repo, commit, ref, files):
    """The Hugging Face cache layout: snapshots/<commit>/<file>, refs/<ref> -> commit."""
    base = root / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in files:
        (snap / f.name).write_bytes(f.read_bytes())
    if ref:
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / ref).write_text(commit)


def test_catalogue_ids_resolve_offline_from_the_hf_cache(isolated_hub, tmp_path, monkeypatch):
    assert {e.id for e in OFFICIAL} <= set(catalogue())
    assert {e.files[0] for e in OFFICIAL} == {f"B{b}_{a}_softcon.pth" for b in (13, 2) for a in ("rn50", "vits14",
                                                                                               "vitb14")}
    assert all(e.hf_repo == "wangyi111/softcon" and e.license == "cc-by-4.0" for e in OFFICIAL)
    ref = _torchvision_rn50(in_chans=2)
    (tmp_path / "rel").mkdir()
    torch.save(ref.state_dict(), tmp_path / "rel" / "B2_rn50_softcon.pth")
    _hf_cache(tmp_path / "hf", "wangyi111/softcon", "c" * 40, "main", [tmp_path / "rel" / "B2_rn50_softcon.pth"])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = from_pretrained("wangyi111/softcon-rn50-s1")
    x = torch.randn(1, 2, 64, 64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= TOL
    assert model.bands == ["VV", "VH"] and model.input_spec["default_product"] == "s1_grd_db"
    (card,) = [p.read_text() for p in (isolated_hub / "imported" / "softcon-rn50").glob("*/README.md")]
    assert "base_model: wangyi111/softcon" in card and "license: cc-by-4.0" in card
    # torchgeo's pinned revision of the _enc files, from the same cache (snapshot by commit, no ref)
    _, sd = _dinov2_vits14(in_chans=2, mask_token=False, seed=5)
    torch.save(sd, tmp_path / "rel" / "B2_vits14_softcon_enc.pth")
    _hf_cache(tmp_path / "hf", "wangyi111/softcon", TG_ENC_REVISION, None, [tmp_path / "rel" / "B2_vits14_softcon_enc.pth"])
    vit = from_torchgeo(ViTSmall14_DINOv2_Weights.SENTINEL1_GRD_SOFTCON)
    assert torch.equal(vit.backbone.cls_token, sd["cls_token"])


def test_a_release_holding_code_is_refused_and_never_run(isolated_hub, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    sd = dict(_torchvision_rn50().state_dict())
    sd["layer4.2.conv3.extra"] = Evil()
    torch.save(sd, tmp_path / "B13_rn50_softcon.pth")
    with pytest.raises(CheckpointError, match="does not unpickle"):
        from_pretrained(tmp_path / "B13_rn50_softcon.pth")
    assert not marker.exists()


def _eopatch_folder(root, rs_root, per_class=4):
    """13-band GeoTIFF crops (24 px) of the real eo-learn Sentinel-2 patch, one folder per majority LULC class."""
    p = load_eopatch(rs_root)
    crops = {}
    for t in range(p["image"].shape[0]):
        for y0 in range(0, 96, 24):
            for x0 in range(0, 96, 24):
                lulc = p["lulc"][y0:y0 + 24, x0:x0 + 24]
                crops.setdefault(int(np.bincount(lulc.ravel()).argmax()), []).append(p["image"][t, :, y0:y0 + 24,
                                                                                           x0:x0 + 24])
    classes = [c for c, v in crops.items() if c > 0 and len(v) >= per_class][:2]
    for c in classes:
        (root / f"lulc{c}").mkdir(parents=True)
        for i, img in enumerate(crops[c][:per_class]):
            write_geotiff(root / f"lulc{c}" / f"{i}.tif", img.round(6), p["bands"], p["crs"], p["bounds"])
    return root


def test_cli_evaluate_and_finetune_an_imported_rn50_on_real_sentinel2(isolated_hub, tmp_path, rs_root, capsys):
    torch.save(_torchvision_rn50().state_dict(), tmp_path / "B13_rn50_softcon.pth")
    assert main(["import", str(tmp_path / "B13_rn50_softcon.pth"), "--id", "wangyi111/softcon-rn50-s2",
                 "--out", str(tmp_path / "ck")]) == 0
    data = _eopatch_folder(tmp_path / "s2", rs_root)
    # the default data is 8-bit RGB EuroSAT, which a 13-band release does not take: a clear error pointing at --data
    assert main(["evaluate", str(tmp_path / "ck"), "--per-class", "2", "--no-progress"]) == 2
    assert "give --data PATH" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "ck"), "--data", str(data), "--per-class", "2", "--seeds", "0",
                 "--no-progress", "--out", str(tmp_path / "e")]) == 0
    saved = json.loads((tmp_path / "e" / "evaluate.json").read_text())
    assert saved["architecture"] == "SoftConResNet" and "product 's2_l1c_reflectance'" in saved["source"]
    assert (saved["train_examples"], saved["test_examples"]) == (6, 2)
    assert main(["finetune", str(tmp_path / "ck"), "--data", str(data), "--per-class", "1", "--seeds", "0",
                 "--epochs", "1", "--no-progress", "--out", str(tmp_path / "f")]) == 0
    saved = json.loads((tmp_path / "f" / "finetune.json").read_text())
    assert saved["rows"][0]["protocol"].startswith("fine-tuned end to end")
