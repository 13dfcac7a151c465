"""A pretraining run killed with SIGKILL at a random step and resumed with --resume ends bit-identical to the
uninterrupted run (every random stream is in the checkpoint), and a finished run is never overwritten."""

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

CONFTEST = Path(__file__).with_name("conftest.py")
SCRIPT = textwrap.dedent("""
    import importlib.util, json, os, signal, sys
    import lightning as L
    spec = importlib.util.spec_from_file_location("fake_conftest", {conftest!r})
    conftest = importlib.util.module_from_spec(spec); spec.loader.exec_module(conftest)
    conftest.install_fake_plugin(lambda d, k, v: d.__setitem__(k, v), setattr)
    from fmzoo.core.pretrain import run_pretraining

    class KillAt(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, idx):
            if trainer.global_step == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)

    recipe = {recipe!r}
    kw = {{"progress": False, "resume": {resume}, "callbacks": [KillAt()] if {kill_at} >= 0 else []}}
    run_pretraining(recipe, {run_dir!r}, kw)
""")
RECIPE = {"method": "digits-mae", "name": "resume", "seed": 5, "threads": 1, "data": {"rows": 256},
          "train": {"batch_size": 64, "max_epochs": 4}}  # 4 steps an epoch, 16 in all


def _run(run_dir, kill_at=-1, resume=False):
    code = SCRIPT.format(conftest=str(CONFTEST), kill_at=kill_at, recipe=RECIPE, resume=resume, run_dir=str(run_dir))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def _weights(run_dir):
    from safetensors.torch import load_file

    return load_file(Path(run_dir) / "checkpoint" / "model.safetensors")


def test_kill_at_a_random_step_and_resume_is_bit_identical(fake_plugin, tmp_path):
    from fmzoo.core.pretrain import run_pretraining

    kill_at = random.Random().randrange(5, 16)  # after the first epoch's checkpoint, anywhere up to the last step
    run_pretraining(dict(RECIPE), tmp_path / "straight", {"progress": False})
    killed = _run(tmp_path / "killed", kill_at=kill_at)  # SIGKILL needs a process of its own
    assert killed.returncode == -9, f"kill at {kill_at}: {killed.returncode} {killed.stderr[-1000:]}"
    assert not (tmp_path / "killed" / "checkpoint").exists()
    run_pretraining(dict(RECIPE), tmp_path / "killed", {"progress": False, "resume": True})
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    equal = [k for k in a if torch.equal(a[k], b[k])]
    assert len(equal) == len(a), f"killed at step {kill_at}: {len(equal)}/{len(a)} tensors equal"
    prov = json.loads((tmp_path / "killed" / "checkpoint" / "provenance.json").read_text())
    assert prov["training"]["resumed"] and prov["training"]["steps"] == 16


def test_a_run_directory_is_never_overwritten_without_resume(fake_plugin, tmp_path, capsys):
    import yaml
    from fmzoo.core.cli import main

    (tmp_path / "r.yaml").write_text(yaml.safe_dump({**RECIPE, "train": {"batch_size": 64, "max_epochs": 1}}))
    args = ["pretrain", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args) == 0
    before = (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes()
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes() == before
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["epoch=0-step=4.ckpt", "last.ckpt"]
