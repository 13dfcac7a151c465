"""The one pretraining pipeline (fmzoo.core.method) on the fake domain's Method."""

import json

import numpy as np
import pytest
import torch
from fmzoo.core import RecipeError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.pretrain import run_pretraining

RECIPE = {"method": "digits-mae", "name": "digits-mae-tiny", "seed": 3, "threads": 1, "data": {"rows": 256},
          "model": {"hidden": 16}, "train": {"batch_size": 64, "max_epochs": 2}, "mask": {"rate": 0.5},
          "card": {"title": "tiny digits MAE"}}


def test_pipeline_writes_a_loadable_checkpoint_with_provenance(fake_plugin, tmp_path):
    before = torch.get_num_threads()
    ckpt = run_pretraining(dict(RECIPE), tmp_path / "run", {"progress": False})
    assert torch.get_num_threads() == before  # the recipe's threads do not leak
    model = from_pretrained(ckpt)
    assert model.net[0].out_features == 16
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["seeds"] == [3] and prov["epochs"] == 2
    assert prov["training"]["steps"] == 2 * 4  # 256 rows / global batch 64, two epochs
    assert prov["data_files"][0]["path"].endswith("digits.csv.gz") and len(prov["data_files"][0]["sha256"]) == 64
    card = (ckpt / "README.md").read_text()
    assert "tiny digits MAE" in card and "256 handwritten digits" in card


def test_same_seed_same_weights_other_seed_differs(fake_plugin, tmp_path):
    a = run_pretraining(dict(RECIPE), tmp_path / "a", {"progress": False})
    b = run_pretraining(dict(RECIPE), tmp_path / "b", {"progress": False})
    c = run_pretraining({**RECIPE, "seed": 4}, tmp_path / "c", {"progress": False})
    wa, wb, wc = (from_pretrained(p).net[0].weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_unknown_recipe_key_is_an_error_naming_it(fake_plugin, tmp_path):
    with pytest.raises(RecipeError, match="unknown key.*optimiser"):
        run_pretraining({**RECIPE, "optimiser": {"lr": 1}}, tmp_path / "run", {"progress": False})
    with pytest.raises(RecipeError, match="'train' must be a mapping"):
        run_pretraining({**RECIPE, "train": 5}, tmp_path / "run", {"progress": False})
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_unknown_key_inside_a_declared_section_is_an_error_listing_the_known_keys(fake_plugin, tmp_path):
    from fmzoo.core.registry import method_class

    with pytest.raises(RecipeError, match=r"train\.max_epoch;.*batch_size.*max_epochs"):
        run_pretraining({**RECIPE, "train": {"batch_size": 64, "max_epoch": 3}}, tmp_path / "run", {"progress": False})
    with pytest.raises(RecipeError, match=r"mask\.ratio;.*takes rate"):
        run_pretraining({**RECIPE, "mask": {"ratio": 0.3}}, tmp_path / "run", {"progress": False})
    with pytest.raises(RecipeError, match="'mask' must be a mapping, got float"):
        run_pretraining({**RECIPE, "mask": 0.3}, tmp_path / "run", {"progress": False})
    assert not (tmp_path / "run").exists()  # refused before the run directory is made
    method_class("digits-mae").validate(dict(RECIPE))  # the declared keys pass; "model" is not declared: free-form
    method_class("digits-mae").validate({**RECIPE, "model": {"anything": 1}})


def test_cli_pretrain_on_the_users_own_data(fake_plugin, tmp_path, capsys):
    import yaml

    x = np.loadtxt(_digits(), delimiter=",")[:128, :64] / 16.0
    np.savetxt(tmp_path / "mine.csv", x, delimiter=",")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(RECIPE))
    assert main(["pretrain", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--data", str(tmp_path / "mine.csv"),
                 "--no-progress"]) == 0
    card = (tmp_path / "run" / "checkpoint" / "README.md").read_text()
    assert "128 rows of mine.csv (the user's own data)" in card
    prov = json.loads((tmp_path / "run" / "checkpoint" / "provenance.json").read_text())
    assert prov["data_path"].endswith("mine.csv") and prov["data_files"][0]["path"].endswith("mine.csv")


def _digits():
    from pathlib import Path

    import sklearn

    return Path(sklearn.__file__).parent / "datasets" / "data" / "digits.csv.gz"


def test_recipe_clamps_gradients_by_value_and_cli_precision_reaches_lightning(fake_plugin, tmp_path, monkeypatch):
    """train.gradient_clip_val/-algorithm (T-JEPA's official code clamps every gradient to +-1) and --precision go to
    Lightning's Trainer; the clamp changes the weights, bf16-mixed runs on the CPU."""
    from fmzoo.core import training

    seen = {}
    make = training.make_trainer

    def spy(run_dir, **kw):
        seen.update(kw)
        return make(run_dir, **kw)

    monkeypatch.setattr(training, "make_trainer", spy)
    plain = run_pretraining(dict(RECIPE), tmp_path / "a", {"progress": False})
    clip = {**RECIPE, "train": {**RECIPE["train"], "gradient_clip_val": 1e-4, "gradient_clip_algorithm": "value"}}
    clamped = run_pretraining(clip, tmp_path / "b", {"progress": False})
    assert seen["gradient_clip_val"] == 1e-4 and seen["gradient_clip_algorithm"] == "value"
    assert not torch.equal(from_pretrained(plain).net[0].weight, from_pretrained(clamped).net[0].weight)
    assert main(["pretrain", _recipe_file(tmp_path), "--out", str(tmp_path / "c"), "--precision", "bf16-mixed",
                 "--no-progress"]) == 0
    assert seen["precision"] == "bf16-mixed"
    prov = json.loads((tmp_path / "c" / "checkpoint" / "provenance.json").read_text())
    assert prov["recipe"]["trainer_overrides"]["precision"] == "bf16-mixed"


def _recipe_file(tmp_path):
    import yaml

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(RECIPE))
    return str(tmp_path / "r.yaml")
