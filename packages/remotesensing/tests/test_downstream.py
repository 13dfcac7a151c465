"""``fmzoo evaluate`` / ``fmzoo finetune`` on SoftCon checkpoints through the core's downstream contract: every
shipped checkpoint resolves to its hooks, the default task is the real EuroSAT split fed as the checkpoint's
declared product, and the CLI runs on image folders written from real EuroSAT JPEGs and real Sentinel-2 pixels."""

import json
import math

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained, shipped_checkpoints
from fmzoo.core.cli import main
from fmzoo.core.downstream import DownstreamHooks, hooks_for
from fmzoo.core.hub import read_config
from fmzoo.remotesensing.data.eopatch import load_eopatch
from fmzoo.remotesensing.data.eurosat import CLASSES, FOLDER
from fmzoo.remotesensing.data.geotiff import write_geotiff
from fmzoo.remotesensing.models.backbones import SoftConViT
from fmzoo.remotesensing.spec import RGB_BANDS, add_product, make_input_spec
from fmzoo.remotesensing.tasks.downstream import EUROSAT, SoftConResNetHooks, SoftConViTHooks, product_for
from PIL import Image

SOFTCON, RGB = "fmzoo/softcon-resnet-small", "fmzoo/rgb-resnet-small-eurosat"


def _ours():
    from fmzoo.core.registry import plugins

    ours = plugins()["remotesensing"].checkpoints_dir
    return {rid: path for rid, path in shipped_checkpoints().items() if path.parent == ours}


def test_every_shipped_checkpoint_resolves_to_hooks():
    ours = _ours()
    assert set(ours) == {SOFTCON, RGB}
    for path in ours.values():
        config = read_config(path)
        hooks = hooks_for(config["architecture"])
        assert isinstance(hooks, SoftConResNetHooks) and isinstance(hooks, DownstreamHooks)
        assert hooks.datasets[0] == EUROSAT
        # the default dataset is fed as the checkpoint's own declared 8-bit RGB product
        assert product_for(config["input_spec"], RGB_BANDS, 0, 255) == "rgb8"
    assert type(hooks_for("SoftConViT")) is SoftConViTHooks


def _write_eurosat_folder(root, data_root, per_class=6, split=True):
    """Real EuroSAT JPEGs (the val split) decoded and written as PNG, one subfolder per class."""
    for c in CLASSES[:3]:
        files = sorted((data_root / FOLDER / "dataset" / "val" / c).glob("*.jpg"))[:per_class]
        for i, f in enumerate(files):
            sub = root / ("test" if split and i >= per_class - 2 else "train") / c if split else root / c
            sub.mkdir(parents=True, exist_ok=True)
            Image.open(f).convert("RGB").save(sub / f"{f.stem}.png")
    return root


def _rows(path):
    saved = json.loads(path.read_text())
    for row in saved["rows"]:
        m = row["metrics"][saved["metric"]]
        assert m["n"] == len(m["values"]) and all(math.isfinite(v) for v in m["values"])
    return saved


def test_default_task_is_real_eurosat_through_the_checkpoint_preprocessing(rs_root):
    model = from_pretrained(SOFTCON)
    hooks = hooks_for("SoftConResNet")
    task = hooks.load(model, None, None)
    assert (task.name, task.kind, task.metric, task.n_outputs) == (EUROSAT, "classification", "accuracy", 5)
    assert len(task.train) == 10400 and len(task.test) == 2600 and task.class_names == CLASSES
    assert np.bincount(task.test.targets).tolist() == [600, 500, 400, 600, 500]
    scenes = task.test.items[:4]
    x = np.stack([s.pixels for s in scenes])
    assert x.dtype == np.uint8 and all(s.product == "rgb8" for s in scenes)
    batch = hooks.collate(model, scenes)
    assert batch.shape == (4, 13, 96, 96)
    assert torch.equal(batch, model.preprocess(x, product="rgb8"))  # exactly the declared preprocessing
    with pytest.raises(InputSpecError, match="unknown dataset"):
        hooks.load(model, "bigearthnet", None)


def test_cli_resnet_evaluate_and_finetune_on_an_rgb_folder(tmp_path, rs_root, capsys):
    data = _write_eurosat_folder(tmp_path / "rgb", rs_root)
    assert main(["evaluate", RGB, "--data", str(data), "--seeds", "0", "--no-progress", "--out", str(tmp_path / "e")]) == 0
    saved = _rows(tmp_path / "e" / "evaluate.json")
    assert [r["protocol"] for r in saved["rows"]] == ["linear probe", "kNN (k=20, cosine)"]
    assert (saved["train_examples"], saved["test_examples"]) == (12, 6) and "product 'rgb8'" in saved["source"]
    assert main(["finetune", SOFTCON, "--data", str(data), "--seeds", "0", "--per-class", "2", "--epochs", "1",
                 "--no-progress", "--out", str(tmp_path / "f")]) == 0
    saved = _rows(tmp_path / "f" / "finetune.json")
    assert saved["rows"][0]["protocol"] == "fine-tuned end to end (1 epochs)" and saved["rows"][0]["n_labelled"] == [6]
    assert "fine-tuned end to end" in capsys.readouterr().out


def _tiny_vit(path):
    rgb8 = from_pretrained(RGB).input_spec["products"]["rgb8"]
    torch.manual_seed(0)
    vit = SoftConViT(bands=RGB_BANDS, patch_size=8, embed_dim=32, depth=1, num_heads=2, input_size=32)
    vit.input_spec = add_product(make_input_spec(RGB_BANDS, 32), "rgb8", RGB_BANDS, rgb8["mean"], rgb8["std"], (0, 255))
    vit.save_pretrained(path)
    return path


def test_cli_vit_finetune_on_a_folder_without_split(tmp_path, rs_root):
    data = _write_eurosat_folder(tmp_path / "rgb", rs_root, per_class=5, split=False)
    ckpt = _tiny_vit(tmp_path / "vit")
    assert main(["finetune", str(ckpt), "--data", str(data), "--seeds", "0", "1", "--epochs", "1", "--no-progress",
                 "--out", str(tmp_path / "f")]) == 0
    saved = _rows(tmp_path / "f" / "finetune.json")
    assert saved["architecture"] == "SoftConViT" and saved["settings"]["epochs"] == 1
    assert (saved["train_examples"], saved["test_examples"]) == (12, 3)  # one of every 5 per class held out
    assert saved["rows"][0]["metrics"]["accuracy"]["n"] == 2 and "held out for test" in saved["source"]


def test_data_geotiff_folder_of_real_sentinel2_pixels(tmp_path, rs_root):
    """13-band GeoTIFF crops of the real eo-learn patch, labelled by their majority land-cover class; as
    reflectance (float) and as digital numbers (uint16) they go through the matching declared product."""
    p = load_eopatch(rs_root)
    model = from_pretrained(SOFTCON)
    hooks = hooks_for("SoftConResNet")
    crops = {}
    for t in range(p["image"].shape[0]):
        for y0 in range(0, 96, 24):
            for x0 in range(0, 96, 24):
                lulc = p["lulc"][y0:y0 + 24, x0:x0 + 24]
                crops.setdefault(int(np.bincount(lulc.ravel()).argmax()), []).append(
                    p["image"][t, :, y0:y0 + 24, x0:x0 + 24])
    classes = [c for c, v in crops.items() if c > 0 and len(v) >= 4][:2]
    assert len(classes) == 2
    features = {}
    for kind, scale, dtype in (("refl", 1.0, np.float32), ("dn", 1e4, np.uint16)):
        for c in classes:
            sub = tmp_path / kind / f"lulc{c}"
            sub.mkdir(parents=True)
            for i, img in enumerate(crops[c][:4]):
                write_geotiff(sub / f"{i}.tif", (img * scale).round(0 if dtype is np.uint16 else 6).astype(dtype),
                              p["bands"], p["crs"], p["bounds"])
        task = hooks.load(model, None, tmp_path / kind)
        assert (len(task.train), len(task.test), task.n_outputs) == (6, 2, 2)
        assert {s.product for s in task.train.items} == {"s2_l1c_reflectance" if kind == "refl" else "s2_l1c_dn"}
        assert task.train.items[0].pixels.shape == (13, 24, 24)
        with torch.no_grad():
            features[kind] = hooks.features(model.eval(), hooks.collate(model, task.test.items))
    assert torch.allclose(features["refl"], features["dn"], atol=1e-3)  # the two products agree on the same pixels
    # the RGB checkpoint declares no 13-band product: a clear error naming what it accepts
    with pytest.raises(InputSpecError, match="match no input product.*rgb8"):
        hooks.load(from_pretrained(RGB), None, tmp_path / "refl")


def test_data_errors_are_clear(tmp_path, rs_root, capsys):
    data = _write_eurosat_folder(tmp_path / "rgb", rs_root, per_class=3, split=False)
    (data / CLASSES[0] / "x.bmp").write_bytes(b"BM")
    assert main(["evaluate", RGB, "--data", str(data), "--no-progress"]) == 2
    assert ".png, .jpg, .jpeg, .tif, .tiff" in capsys.readouterr().err
    grey = tmp_path / "grey" / "a"
    grey.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((8, 8), 9 * i, np.uint8)).save(grey / f"{i}.png")
    with pytest.raises(InputSpecError, match="expected an RGB image"):
        hooks_for("SoftConResNet").load(from_pretrained(RGB), None, tmp_path / "grey")


def test_cli_option_size_native_is_used_and_reported(tmp_path, rs_root):
    """``--option size=native`` feeds the 64 px images at 64 px with the checkpoint's statistics; the result says
    which size was used (and the default says it resized)."""
    data = _write_eurosat_folder(tmp_path / "rgb", rs_root)
    assert main(["evaluate", RGB, "--data", str(data), "--seeds", "0", "--option", "size=native", "--no-progress",
                 "--out", str(tmp_path / "n")]) == 0
    native = json.loads((tmp_path / "n" / "evaluate.json").read_text())
    assert "--option size=native" in native["notes"] and "64x64 px kept (native size" in native["notes"]
    assert main(["evaluate", RGB, "--data", str(data), "--seeds", "0", "--no-progress", "--out", str(tmp_path / "r")]) == 0
    resized = json.loads((tmp_path / "r" / "evaluate.json").read_text())
    assert "size_policy 'resize'" in resized["notes"] and "64x64 px resized to 96x96 px" in resized["notes"]
    hooks = hooks_for("SoftConResNet")
    hooks.configure({"size": "native"})
    model = from_pretrained(RGB)
    task = hooks.load(model, None, data)
    assert hooks.collate(model, task.test.items).shape[-2:] == (64, 64)
    # images of two sizes at native size: run group by group, features back in the batch order
    items = [task.test.items[0], task.test.items[1]._replace(pixels=task.test.items[1].pixels[:, :48, :40])]
    with torch.no_grad():
        mixed = hooks.features(model.eval(), hooks.collate(model, items))
        one = hooks.features(model, hooks.collate(model, items[1:]))
    assert mixed.shape == (2, model.num_features) and torch.allclose(mixed[1], one[0], atol=1e-5)
