"""The pretraining entry points (what `fmzoo pretrain voco-small|volumefusion-small` runs) on real
Hippocampus MRI, at tiny sizes: a checkpoint with provenance and metrics that loads back, and resume."""

import json

import pytest
import torch
import yaml
from fmzoo.core import from_pretrained
from fmzoo.core.pretrain import run_pretraining
from fmzoo.medical.plugin import plugin


def tiny_recipe(name: str) -> dict:
    r = yaml.safe_load((plugin().recipes_dir / f"{name}.yaml").read_text())
    r.update(max_volumes=4, max_steps=1, name=name)
    r["model"] = {**r["model"], "feature_size": 12}
    if name == "voco-small":
        r["model"].update(proj_hidden=32, proj_out=32)
        r["geometry"] = {**r["geometry"], "grid": [2, 1, 2]}  # 4 base crops instead of 9 (geometry: test_voco.py)
    return r


@pytest.mark.parametrize("name,arch,loss_keys", [
    ("voco-small", "VoCo", {"train/pos", "train/neg", "train/reg"}),
    ("volumefusion-small", "VolumeFusionNet", {"train/dice_loss", "train/ce"}),
])
def test_pretrain_writes_a_loadable_checkpoint_and_resumes(tmp_path, name, arch, loss_keys):
    recipe = tiny_recipe(name)
    ckpt = run_pretraining(recipe, tmp_path / "run", {"progress": False})
    prov = json.loads((ckpt / "provenance.json").read_text())
    metrics = prov["metrics"]
    assert metrics["steps"] == 1 and metrics["seconds"] > 0
    assert metrics["volumes_per_s"] == pytest.approx(recipe["batch_size"] / metrics["seconds"], rel=0.05)
    assert loss_keys <= set(metrics) and all(torch.isfinite(torch.tensor(metrics[k])) for k in loss_keys)
    assert len(prov["data_files"]) == 4  # max_volumes real images, hashed
    assert prov["seeds"] == [0] and "seed" not in prov and prov["weights_dtype"] == "float16"
    model = from_pretrained(ckpt)
    assert type(model).__name__ == arch and model.input_spec["modality"] == "MR"
    # resume: the run continues from its last checkpoint to the new max_steps instead of starting over
    more = {**recipe, "max_steps": 2}
    ckpt = run_pretraining(more, tmp_path / "run", {"progress": False, "resume": True})
    assert json.loads((ckpt / "provenance.json").read_text())["metrics"]["steps"] == 2


@pytest.mark.parametrize("name", ["voco-small", "volumefusion-small"])
def test_unknown_recipe_key_is_an_error_naming_it(tmp_path, name):
    from fmzoo.core import RecipeError

    recipe = tiny_recipe(name)
    with pytest.raises(RecipeError, match="unknown key.*max_step\\b"):
        run_pretraining({**recipe, "max_step": 5}, tmp_path / "run", {"progress": False})
    with pytest.raises(RecipeError, match="'data' must be a source name"):
        run_pretraining({**recipe, "data": {"path": "x"}}, tmp_path / "run", {"progress": False})
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_cli_pretrain_on_a_folder_of_nifti_images(tmp_path, hippo_root):
    """`fmzoo pretrain voco-small --data DIR`: a Decathlon imagesTr/ folder of real images (labels never read);
    the card says what was seen, provenance names the folder and its files, and records `seeds`."""
    import shutil

    from fmzoo.core.cli import main

    (tmp_path / "mine" / "imagesTr").mkdir(parents=True)
    for case in ("hippocampus_001", "hippocampus_003"):
        shutil.copy(hippo_root / "images" / f"{case}.nii.gz", tmp_path / "mine" / "imagesTr" / f"{case}.nii.gz")
    recipe = {**tiny_recipe("voco-small"), "max_steps": 1}
    del recipe["max_volumes"]
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["pretrain", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--data",
                 str(tmp_path / "mine"), "--no-progress"]) == 0
    ckpt = tmp_path / "run" / "checkpoint"
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["seeds"] == [0] and "seed" not in prov and prov["metrics"]["steps"] == 1
    assert prov["data_path"].endswith("mine") and len(prov["data_files"]) == 2
    assert all("imagesTr" in str(f.get("path", f) if isinstance(f, dict) else f) for f in prov["data_files"])
    card = (ckpt / "README.md").read_text()
    assert "2 NIfTI image(s) from" in card and "labels unused" in card and "MSD Task04 Hippocampus training" not in card
    assert type(from_pretrained(ckpt)).__name__ == "VoCo"


def test_pretrain_data_folder_without_images_is_an_input_error(tmp_path):
    from fmzoo.core import InputSpecError

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputSpecError, match="no NIfTI images"):
        run_pretraining(tiny_recipe("volumefusion-small"), tmp_path / "run", {"progress": False},
                        data_path=tmp_path / "empty")
