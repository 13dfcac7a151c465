import json

import torch
from fmzoo.core import from_pretrained, load_recipe
from fmzoo.core.pretrain import run_pretraining
from fmzoo.remotesensing.models.backbones import SoftConResNet
from fmzoo.remotesensing.spec import S2_L1C_ORDER

TINY = {"arch": "SoftConResNet", "block": "basic", "layers": [1, 1, 1, 1], "channels": [8, 8, 16, 16],
        "stem_width": 8, "input_size": 32}


def _recipe(name, data, **extra):
    r = {"name": name, "method": "softcon", "seed": 0, "threads": 1, "data": data,
         "masking": {"ratio": 0.3, "patch": 8}, "projector": {"hidden": 16, "dim": 8},
         "trainer": {"max_epochs": 1, "batch_size": 8}}
    r.update(extra)
    return r


def test_two_stage_recipe_runs_on_real_data(tmp_path, rs_root, isolated_hub):
    # stage 0: label-free RGB pretraining on (a few) EuroSAT images
    rgb = _recipe("tiny-rgb", {"name": "eurosat_rgb", "limit": 16}, model={**TINY, "bands": ["B04", "B03", "B02"]},
                  loss={"targets": "identity"})
    ck_rgb = run_pretraining(rgb, tmp_path / "rgb", {"progress": False})
    base = from_pretrained(ck_rgb)
    assert base.input_spec["products"]["rgb8"]["bands"] == ["B04", "B03", "B02"]
    # stage 1: widen to 13 bands and continue with soft targets from the LULC multi-labels
    ms = _recipe("tiny-ms", {"name": "eopatch_s2", "crop": 32, "length": 16},
                 model={**TINY, "bands": S2_L1C_ORDER}, init={"from": str(ck_rgb), "widen_scheme": "copy_random"},
                 loss={"targets": "multilabel", "label_similarity": "jaccard"})
    ck = run_pretraining(ms, tmp_path / "ms", {"progress": False})
    model = from_pretrained(ck)
    assert isinstance(model, SoftConResNet) and model.bands == S2_L1C_ORDER
    spec = model.input_spec
    assert set(spec["products"]) == {"rgb8", "s2_l1c_reflectance", "s2_l1c_dn"}
    assert spec["default_product"] == "s2_l1c_reflectance" and spec["input_size"] == 32
    # the rgb8 statistics travel unchanged from the RGB stage
    assert spec["products"]["rgb8"] == base.input_spec["products"]["rgb8"]
    prov = json.loads((ck / "provenance.json").read_text())
    assert prov["metrics"]["steps"] == 2 and prov["init_from"] == str(ck_rgb)
    # stage 1 changed the weights (it trained) but started from stage 0's RGB kernels
    w0 = base.state_dict()["backbone.layer1.0.conv1.weight"]
    assert not torch.equal(model.state_dict()["backbone.layer1.0.conv1.weight"], w0)


def test_shipped_recipes_parse():
    for name in ("rgb-resnet-small-eurosat", "softcon-resnet-small", "softcon-resnet50-paper", "softcon-vits14-paper"):
        r = load_recipe(name)
        assert r["method"] == "softcon" and r["model"]["arch"] in ("SoftConResNet", "SoftConViT")


def test_paper_recipes_build_the_paper_architectures():
    from fmzoo.remotesensing.methods.softcon import build_model

    rn50, _ = build_model(load_recipe("softcon-resnet50-paper"))
    n = sum(p.numel() for p in rn50.parameters())
    assert rn50.num_features == 2048 and 23.4e6 < n < 23.7e6  # torchvision RN50 minus fc, 13-band stem
    vits, _ = build_model(load_recipe("softcon-vits14-paper"))
    assert vits.num_features == 384 and vits.patch_size == 14
    assert 22.2e6 < sum(p.numel() for p in vits.parameters()) < 22.5e6  # ViT-S/14, 224 px, 13-band patch embed
    with torch.no_grad():
        assert vits(torch.zeros(1, 13, 224, 224), keep=torch.arange(128).unsqueeze(0)).shape == (1, 384)
