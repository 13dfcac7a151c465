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
    model = from_pretrained(ckpt)
    assert type(model).__name__ == arch and model.input_spec["modality"] == "MR"
    # resume: the run continues from its last checkpoint to the new max_steps instead of starting over
    more = {**recipe, "max_steps": 2}
    ckpt = run_pretraining(more, tmp_path / "run", {"progress": False, "resume": True})
    assert json.loads((ckpt / "provenance.json").read_text())["metrics"]["steps"] == 2
