"""The installed domain packages seen through the core: registry, CLI listing, cards, tables and recipes.
(The core's own tests, packages/core/tests, run with no domain package; these need all seven.)"""

import subprocess
import sys

from fmzoo.core import load_recipe
from fmzoo.core.registry import PLUGIN_ERRORS, list_models, plugins, recipes, shipped_checkpoints, tables


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fmzoo.core.cli", *args], capture_output=True, text=True, timeout=300)


def test_every_installed_plugin_loads():
    found = plugins()
    assert "tabular" in found
    assert PLUGIN_ERRORS == {}, PLUGIN_ERRORS


def test_registry_lists_models_checkpoints_recipes_tables():
    names = {r["name"] for r in list_models()}
    assert {"TJEPA", "fmzoo/tjepa-adult"} <= names
    assert "fmzoo/tjepa-adult" in shipped_checkpoints()
    assert {"tjepa-adult", "tjepa-adult-cpu"} <= set(recipes())
    assert "tjepa-adult" in tables()


def test_list_and_card_offline(tmp_hub):
    out = _cli("list")
    assert out.returncode == 0 and "fmzoo/tjepa-adult" in out.stdout and "TJEPA" in out.stdout
    card = _cli("card", "fmzoo/tjepa-adult")
    assert card.returncode == 0 and card.stdout.startswith("---") and "T-JEPA" in card.stdout


def test_every_installed_table_names_its_thread_count():
    from fmzoo.core.reproduce import all_tables, load_table, table_threads

    assert {n: table_threads(load_table(n)) for n in all_tables()}["tape-gb1"] == 2


def test_shipped_variants_differ_from_their_base_only_where_they_say():
    base, long = load_recipe("wav2vec2-small"), load_recipe("wav2vec2-small-long")
    assert long["name"] == "wav2vec2-small-long" and long["epochs"] == 4 * base["epochs"]
    assert long["data"] == dict(base["data"], pool_doubling_steps=4 * base["data"]["pool_doubling_steps"])
    assert {k: v for k, v in long.items() if k not in ("name", "epochs", "data", "card")} == \
        {k: v for k, v in base.items() if k not in ("name", "epochs", "data", "card")}
    assert long["card"]["title"].endswith("49152 steps)")
    synth = load_recipe("wav2vec2-small-synth")
    assert synth["data"]["synthetic"]["fraction"] == 0.5 and synth["model"] == base["model"]


def test_help_lists_tables_recipes_and_datasets():
    reproduce, pretrain, finetune = (_cli(cmd, "--help").stdout for cmd in ("reproduce", "pretrain", "finetune"))
    assert "tables (13):" in reproduce and "medical-hippocampus" in reproduce and "tjepa-diamonds" in reproduce
    assert "tjepa-adult-cpu" in pretrain and "wav2vec2-small" in pretrain
    assert "TJEPA: adult, diamonds" in finetune and "Wav2Vec2: fsdd-speaker" in finetune


def test_every_registered_model_types_its_input_spec_in_its_packages_spec_module():
    from fmzoo.core.registry import _merged, model_class
    from fmzoo.core.spec import InputSpec

    for arch, (package, _) in _merged("models").items():
        spec_cls = getattr(model_class(arch), "input_spec_class", None)
        assert isinstance(spec_cls, type) and issubclass(spec_cls, InputSpec), f"{arch}: no input_spec_class"
        assert spec_cls.__module__ == f"fmzoo.{package}.spec", (arch, spec_cls.__module__)
