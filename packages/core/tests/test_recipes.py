"""Recipes: a recipe may start from another (`base:`), and `fmzoo pretrain --resume` refuses a recipe (seed, --set
values included) that is not the one its run started with."""

import re

import pytest
import yaml
from fmzoo.core import load_recipe
from fmzoo.core.cli import main


def _write(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_base_merges_mappings_key_by_key_and_replaces_everything_else(tmp_path):
    _write(tmp_path / "parent.yaml", {"name": "parent", "method": "m", "seed": 0, "tags": [1, 2],
                                      "optim": {"lr": 1e-3, "betas": [0.9, 0.98]}, "card": {"title": "P", "license": "x"}})
    child = _write(tmp_path / "child.yaml", {"base": "parent.yaml", "tags": [3],
                                             "optim": {"lr": 5e-4}, "card": {"title": "C"}})
    recipe = load_recipe(str(child))
    assert recipe == {"name": "child", "method": "m", "seed": 0, "tags": [3],
                      "optim": {"lr": 5e-4, "betas": [0.9, 0.98]}, "card": {"title": "C", "license": "x"}}
    # chains resolve, each level over the one below
    grandchild = _write(tmp_path / "grandchild.yaml", {"base": "child.yaml", "seed": 1})
    assert load_recipe(str(grandchild)) == dict(recipe, name="grandchild", seed=1)


def test_unset_removes_keys_of_the_base(tmp_path):
    _write(tmp_path / "parent.yaml", {"method": "m", "train": {"lr": 1e-4, "schedule": "halving", "halve_every": 200},
                                      "card": {"title": "P"}})
    child = _write(tmp_path / "child.yaml", {"base": "parent.yaml", "unset": ["train.halve_every", "card"],
                                             "train": {"lr": 1e-3, "schedule": "cosine"}})
    assert load_recipe(str(child)) == {"name": "child", "method": "m", "train": {"lr": 1e-3, "schedule": "cosine"}}
    assert load_recipe(str(tmp_path / "parent.yaml"))["train"]["halve_every"] == 200  # the base itself is intact
    _write(tmp_path / "typo.yaml", {"base": "parent.yaml", "unset": ["train.halve_evry"]})
    with pytest.raises(ValueError, match="cannot unset 'train.halve_evry'"):
        load_recipe(str(tmp_path / "typo.yaml"))
    _write(tmp_path / "orphan.yaml", {"method": "m", "unset": ["seed"]})
    with pytest.raises(ValueError, match="no 'base'"):
        load_recipe(str(tmp_path / "orphan.yaml"))


def test_base_errors_are_clear(tmp_path):
    _write(tmp_path / "a.yaml", {"base": "b.yaml", "method": "m"})
    _write(tmp_path / "b.yaml", {"base": "a.yaml"})
    with pytest.raises(ValueError, match="cycle"):
        load_recipe(str(tmp_path / "a.yaml"))
    _write(tmp_path / "c.yaml", {"base": "no-such-recipe", "method": "m"})
    with pytest.raises(KeyError, match="unknown recipe 'no-such-recipe'"):
        load_recipe(str(tmp_path / "c.yaml"))
    _write(tmp_path / "e.yaml", {"seed": 0})
    _write(tmp_path / "f.yaml", {"base": "e.yaml"})
    with pytest.raises(ValueError, match="'method' key"):
        load_recipe(str(tmp_path / "f.yaml"))


def test_resume_refuses_a_recipe_other_than_the_one_the_run_started_with(tmp_path, capsys):
    recipe = _write(tmp_path / "r.yaml", {"method": "tjepa", "seed": 0, "trainer": {"max_epochs": 1}})
    run = tmp_path / "run"
    run.mkdir()
    _write(run / "recipe.yaml", {"method": "tjepa", "seed": 0, "trainer": {"max_epochs": 2}, "name": "r"})
    assert main(["pretrain", str(recipe), "--out", str(run), "--resume"]) == 2
    assert re.search(r"--resume: the recipe differs .*\(keys: trainer\)", capsys.readouterr().err)
    # the run's own recipe is left as it was
    assert yaml.safe_load((run / "recipe.yaml").read_text())["trainer"] == {"max_epochs": 2}
    # --seed and --set change the recipe too; --max-epochs (and the process count) may change: a run can be
    # resumed to run longer
    _write(run / "recipe.yaml", {"method": "tjepa", "seed": 0, "trainer": {"max_epochs": 1}, "name": "r"})
    assert main(["pretrain", str(recipe), "--out", str(run), "--resume", "--seed", "3"]) == 2
    assert re.search(r"keys: seed\)", capsys.readouterr().err)
    assert main(["pretrain", str(recipe), "--out", str(run), "--resume", "--set", "optim.lr=0.1"]) == 2
    assert re.search(r"keys: optim\)", capsys.readouterr().err)
    from fmzoo.core.cli import _check_resumed_recipe

    _check_resumed_recipe(run, {"method": "tjepa", "seed": 0, "trainer": {"max_epochs": 1}, "name": "r",
                                "trainer_overrides": {"max_epochs": 5}})  # no error
