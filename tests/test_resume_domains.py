"""Resume is exact in the domains too: a real pretraining recipe killed with SIGKILL at a random step and continued
with --resume ends bit-identical to the uninterrupted run, on real data. CI runs T-JEPA on Adult (the core test runs
the fake method); GraphMAE on molecules passed the same check once (119 s, too long for CI: it featurises its pool):
FMZOO_RESUME_CASES=graphmae-mol pytest tests/test_resume_domains.py."""

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from fmzoo.core.pretrain import run_pretraining
from fmzoo.core.registry import load_recipe

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import lightning as L
    import torch
    torch.set_num_threads({threads})  # the test process's count: a sum split over other threads rounds otherwise
    from fmzoo.core.pretrain import run_pretraining
    from fmzoo.core.registry import load_recipe

    class KillAt(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, idx):
            if trainer.global_step == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)

    recipe = load_recipe({name!r})
    for dotted, value in {overrides!r}.items():
        node = recipe
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {{}})
        node[last] = value
    kw = {{"progress": False, "resume": {resume}, "callbacks": [KillAt()] if {kill_at} >= 0 else []}}
    run_pretraining(recipe, {run_dir!r}, kw)
""")

CASES = {  # recipe, overrides making it a few seconds long, steps in all
    "tjepa": ("tjepa-adult-cpu", {"max_rows": 1024, "trainer.max_epochs": 3, "trainer.batch_size": 256,
                                  "evaluate": {}, "model.depth": 1, "model.pred_depth": 1}, 12),
    "graphmae-mol": ("graphmae-mol-gin", {"data.max_molecules": 256, "train.epochs": 3, "train.batch_size": 64}, 12),
}


def _recipe(name, overrides):
    recipe = load_recipe(name)
    for dotted, value in overrides.items():
        node = recipe
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return recipe


def _run(name, overrides, run_dir, kill_at=-1, resume=False):
    code = SCRIPT.format(name=name, overrides=overrides, kill_at=kill_at, resume=resume, run_dir=str(run_dir),
                         threads=torch.get_num_threads())
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", os.environ.get("FMZOO_RESUME_CASES", "tjepa").split(","))
def test_domain_run_killed_at_a_random_step_resumes_bit_identical(case, data_root, tmp_path):
    from safetensors.torch import load_file

    name, overrides, steps = CASES[case]
    steps_per_epoch = steps // 3
    kill_at = random.Random().randrange(steps_per_epoch + 1, steps)  # after the first epoch's checkpoint
    killed = _run(name, overrides, tmp_path / "killed", kill_at=kill_at)  # SIGKILL needs a process of its own
    assert killed.returncode == -9, f"kill at {kill_at}: {killed.returncode} {killed.stderr[-2000:]}"
    for run_dir, resume in ((tmp_path / "straight", False), (tmp_path / "killed", True)):
        run_pretraining(_recipe(name, overrides), run_dir, {"progress": False, "resume": resume})
    a = load_file(Path(tmp_path / "straight" / "checkpoint" / "model.safetensors"))
    b = load_file(Path(tmp_path / "killed" / "checkpoint" / "model.safetensors"))
    equal = [k for k in a if torch.equal(a[k], b[k])]
    assert len(equal) == len(a), f"{case} killed at step {kill_at}: {len(equal)}/{len(a)} tensors equal"
