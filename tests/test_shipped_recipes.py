"""Every checkpoint shipped inside a package was produced by a recipe committed in that package: the recipe
saved in its provenance.json (what the run saw) has the recorded sha256, and every training value of it equals
the committed recipe file, so `fmzoo pretrain <recipe_name>` reruns what is shipped. Only the card text may
have been corrected after the run."""

import json

import pytest
from fmzoo.core import load_recipe
from fmzoo.core.cli import DISTRIBUTION_DEFAULTS
from fmzoo.core.provenance import recipe_sha256
from fmzoo.core.registry import shipped_checkpoints

SHIPPED = sorted(shipped_checkpoints().items())


def _training(recipe: dict) -> dict:
    return {k: v for k, v in recipe.items() if k != "card"}


def test_every_domain_ships_checkpoints():
    assert len(SHIPPED) >= 7


@pytest.mark.parametrize("repo_id,path", SHIPPED, ids=[r for r, _ in SHIPPED])
def test_shipped_checkpoint_comes_from_its_committed_recipe(repo_id, path):
    prov = json.loads((path / "provenance.json").read_text())
    assert recipe_sha256(prov["recipe"]) == prov["recipe_sha256"]
    committed = load_recipe(prov["recipe_name"])
    ran = _training(prov["recipe"])
    # how many processes ran it may be recorded (`--devices 2 --strategy ddp`); recipes give the global batch, so
    # that is not a different recipe; anything else from the command line would be
    assert set(ran.pop("trainer_overrides", {})) <= set(DISTRIBUTION_DEFAULTS), f"{repo_id}: run with other overrides"
    assert _training(committed) == ran, f"{repo_id}: recipe {prov['recipe_name']!r} changed since the run"
