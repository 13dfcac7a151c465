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


# ------------------------------------------------------------------------ recipe keys (issue #25: no silent typo)
def _method_recipes() -> dict:
    """Every installed recipe, resolved, by its method's registered name."""
    by_method: dict = {}
    for name in sorted(recipes()):
        recipe = load_recipe(name)
        by_method.setdefault(recipe["method"], []).append(recipe)
    return by_method


def test_every_installed_recipe_validates_and_declares_every_nested_section():
    from fmzoo.core.method import Method
    from fmzoo.core.pretrain import check_recipe
    from fmzoo.core.registry import _merged, method_class

    by_method = _method_recipes()
    assert set(by_method) == set(_merged("methods")), "a registered method without a recipe (or the reverse)"
    for method, found in by_method.items():
        cls = method_class(method)
        assert isinstance(cls, type) and issubclass(cls, Method), method
        for recipe in found:
            check_recipe(recipe)
            # no free-form mapping: every nested section of a recipe has its keys declared (card: CardData's own)
            free = [k for k, v in recipe.items() if isinstance(v, dict) and k not in cls.recipe_keys
                    and k not in ("card", "trainer_overrides")]
            assert not free, f"{recipe['name']}: {cls.__name__} does not declare the keys of {free}"
            for section, keys in cls.recipe_keys.items():
                assert isinstance(keys, tuple) and all(isinstance(k, str) for k in keys), (cls.__name__, section)
                assert len(set(keys)) == len(keys), f"{cls.__name__}.recipe_keys[{section!r}] repeats a key"


def test_a_typo_in_any_declared_section_is_refused_naming_it():
    import copy

    from fmzoo.core import RecipeError
    from fmzoo.core.pretrain import check_recipe
    from fmzoo.core.registry import method_class

    checked = 0
    for method, found in _method_recipes().items():
        cls = method_class(method)
        base = found[0]
        for section, keys in cls.recipe_keys.items():
            typo = (keys[0] + "s") if keys else "typo_key"
            assert typo not in keys
            recipe = copy.deepcopy(base)
            if not isinstance(recipe.get(section), dict):
                recipe[section] = {}
            recipe[section][typo] = 1
            try:
                check_recipe(recipe)
            except RecipeError as exc:
                message = str(exc)
            else:
                raise AssertionError(f"{cls.__name__}: {section}.{typo} was accepted")
            assert f"{section}.{typo}" in message and "\n" not in message, message
            assert all(k in message for k in keys), f"{cls.__name__}: the error does not list {section}'s keys"
            checked += 1
    assert checked >= 50  # 12 methods, 3-11 sections each


def test_known_keys_are_what_the_code_takes():
    """Spot checks that the declared keys follow the code (constructor signatures, official names)."""
    import inspect

    from fmzoo.core.registry import method_class

    tjepa = method_class("tjepa")
    from fmzoo.tabular.models.tjepa import TJEPA

    assert set(tjepa.recipe_keys["model"]) == set(inspect.signature(TJEPA).parameters) - {"n_num", "cardinalities"}
    assert "max_epoch" not in tjepa.recipe_keys["trainer"] and tjepa.recipe_keys["train"] == ()
    graphmae = method_class("graphmae")
    assert "max_epoch" in graphmae.recipe_keys["train"] and "max_epochs" not in graphmae.recipe_keys["train"]
    assert "num_codevectors_per_group" in method_class("wav2vec2").recipe_keys["model"]


def test_cli_typo_in_a_recipe_section_is_one_line_exit_2_before_any_data(tmp_path):
    out = tmp_path / "run"
    proc = _cli("pretrain", "tjepa-adult-cpu", "--set", "trainer.max_epoch=3", "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "trainer.max_epoch" in lines[0] and "max_epochs" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()  # nothing written, no data read
