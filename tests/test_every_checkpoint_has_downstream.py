"""`fmzoo finetune ID` and `fmzoo evaluate ID` are defined for every shipped checkpoint: each one's architecture has
registered downstream hooks, whose default dataset is one the hooks accept."""

import pytest
from fmzoo.core import shipped_checkpoints
from fmzoo.core.downstream import DownstreamHooks, hooks_for
from fmzoo.core.hub import read_config

SHIPPED = sorted(shipped_checkpoints())


def test_all_seventeen_checkpoints_are_installed():
    assert len(SHIPPED) == 17, SHIPPED


@pytest.mark.parametrize("repo_id", SHIPPED)
def test_checkpoint_has_downstream_hooks(repo_id):
    arch = read_config(shipped_checkpoints()[repo_id])["architecture"]
    hooks = hooks_for(arch)
    assert isinstance(hooks, DownstreamHooks)
    assert hooks.datasets, f"{arch}: the hooks name no dataset for --dataset"
    assert hooks.data_format, f"{arch}: the hooks do not say what --data PATH expects"
    assert type(hooks).load is not DownstreamHooks.load, f"{arch}: the hooks do not load data"
    overrides = {name for name in ("features", "network") if getattr(type(hooks), name) is not getattr(DownstreamHooks, name)}
    assert overrides, f"{arch}: the hooks give neither features() nor network()"
