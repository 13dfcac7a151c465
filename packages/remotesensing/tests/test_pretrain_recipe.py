import json

import numpy as np
import pytest
import torch
import yaml
from fmzoo.core import InputSpecError, RecipeError, from_pretrained, load_recipe
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
    assert prov["seeds"] == [0] and "seed" not in prov and prov["epochs"] == 1  # the core's provenance
    assert json.loads((ck_rgb / "provenance.json").read_text())["seeds"] == [0]
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


def test_unknown_recipe_key_is_a_recipe_error(tmp_path):
    bad = _recipe("tiny-bad", {"name": "eurosat_rgb", "limit": 16}, model={**TINY, "bands": ["B04", "B03", "B02"]},
                  optimiser={"lr": 0.1})  # a typo of the section "optim"
    with pytest.raises(RecipeError, match="optimiser"):
        run_pretraining(bad, tmp_path / "bad", {"progress": False})
    for name in ("rgb-resnet-small-eurosat", "softcon-resnet-small", "softcon-resnet50-paper", "softcon-vits14-paper"):
        from fmzoo.core.registry import method_class

        method_class("softcon").validate(load_recipe(name))  # every shipped recipe stays valid


def test_pretrain_on_a_geotiff_folder_via_the_cli(tmp_path, rs_root, isolated_hub):
    """``fmzoo pretrain RECIPE --data PATH`` on 13-band GeoTIFFs written from the real Sentinel-2 patch."""
    from fmzoo.core.cli import main
    from fmzoo.remotesensing.data.eopatch import load_eopatch
    from fmzoo.remotesensing.data.geotiff import write_geotiff

    p = load_eopatch(rs_root)
    folder = tmp_path / "tiles" / "any_subfolder"
    folder.mkdir(parents=True)
    for t in range(4):  # 4 dates x 2 crops of 32 px; band order reversed in the files: read by name
        for k, (r, c) in enumerate(((0, 0), (40, 60))):
            crop = p["image"][t, ::-1, r:r + 32, c:c + 32]
            write_geotiff(folder / f"t{t}_{k}.tif", np.ascontiguousarray(crop), p["bands"][::-1], p["crs"], p["bounds"])
    recipe = _recipe("tiny-ms-own", {"name": "eopatch_s2"}, model={**TINY, "bands": S2_L1C_ORDER},
                     loss={"targets": "identity"}, trainer={"max_epochs": 1, "batch_size": 4})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    assert main(["pretrain", str(path), "--data", str(tmp_path / "tiles"), "--out", str(out), "--no-progress"]) == 0
    ck = out / "checkpoint"
    prov = json.loads((ck / "provenance.json").read_text())
    assert prov["seeds"] == [0] and prov["metrics"]["steps"] == 2 and np.isfinite(prov["metrics"]["train/loss"])
    assert prov["data_path"] == str(tmp_path / "tiles") and len(prov["data_files"]) == 8
    assert "8 32x32 px images" in prov["training_data"] and "GeoTIFF" in prov["training_data"]
    assert "8 32x32 px images" in (ck / "README.md").read_text()  # the card says what was seen
    spec = from_pretrained(ck).input_spec
    geo = spec["products"]["geotiff"]
    assert spec["default_product"] == "geotiff" and geo["bands"] == S2_L1C_ORDER
    own = p["image"][:4, :, :32, :32]  # the statistics are those of the files, in the model's band order
    assert np.isclose(geo["mean"][3], np.concatenate([own[:, 3].ravel(), p["image"][:4, 3, 40:72, 60:92].ravel()]).mean(),
                      rtol=1e-4)


def test_pretrain_on_an_rgb_image_folder(tmp_path, rs_root, isolated_hub):
    from fmzoo.remotesensing.data.eurosat import load_eurosat_rgb
    from PIL import Image

    x, _ = load_eurosat_rgb("train", rs_root, limit=4, seed=0)
    images = tmp_path / "images"
    images.mkdir()
    for i, img in enumerate(x):
        Image.fromarray(img.transpose(1, 2, 0)).save(images / f"{i}.png")
    rgb = _recipe("tiny-rgb-own", {"name": "eurosat_rgb"}, model={**TINY, "bands": ["B04", "B03", "B02"]},
                  loss={"targets": "identity"}, trainer={"max_epochs": 1, "batch_size": 4})
    ck = run_pretraining(rgb, tmp_path / "run", {"progress": False}, data_path=images)
    spec = from_pretrained(ck).input_spec
    assert spec["products"]["rgb8"]["valid_range"] == [0, 255]
    assert np.allclose(spec["products"]["rgb8"]["mean"], x.reshape(4, 3, -1).transpose(1, 0, 2).reshape(3, -1).mean(1))
    # too few images for one batch: a clear error, not a run of zero steps
    rgb["trainer"]["batch_size"] = 8
    with pytest.raises(InputSpecError, match="fewer than one batch"):
        run_pretraining(rgb, tmp_path / "run2", {"progress": False}, data_path=images)


def test_data_path_refused_where_the_loss_needs_multilabels(tmp_path):
    recipe = load_recipe("softcon-resnet-small")  # soft targets from LULC multi-labels
    with pytest.raises(InputSpecError, match="--data is not supported.*multi-label"):
        run_pretraining(recipe, tmp_path / "run", {"progress": False}, data_path=tmp_path)
