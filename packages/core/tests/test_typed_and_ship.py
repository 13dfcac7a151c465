"""Typed input specs, cards and provenance, and the one shipping path (``fmzoo ship``), on the fake digits domain."""

from __future__ import annotations

import json

import pytest
from fmzoo.core import registry
from fmzoo.core.card import CardData, card_of, render_card
from fmzoo.core.cli import main
from fmzoo.core.errors import CheckpointError, InputSpecError, RecipeError, UsageError
from fmzoo.core.provenance import Provenance, build_provenance
from fmzoo.core.ship import check_cards, ship

ROW = {"model": "MLP", "init": "pretrained", "metric": "accuracy", "ours": 0.91, "std": 0.01, "seeds": [0, 1]}


# -- input specs --------------------------------------------------------------------------------------------------
def test_a_broken_input_spec_is_refused_at_save_and_at_load(fake_plugin, tmp_path):
    DigitsMLP = fake_plugin.DigitsMLP
    model = DigitsMLP()
    model.input_spec = {"dataset": "digits"}
    with pytest.raises(InputSpecError, match=r"missing \['num_features'\]"):
        model.save_pretrained(tmp_path / "a")
    assert not (tmp_path / "a").exists()  # refused before anything is written
    model.input_spec = {"num_features": "64"}
    with pytest.raises(InputSpecError, match=r"\['num_features'\]: expected an integer, got '64'"):
        model.save_pretrained(tmp_path / "a")
    model.input_spec = {"num_features": 0}
    with pytest.raises(InputSpecError, match="positive count"):  # the class's cross-key rule
        model.save_pretrained(tmp_path / "a")
    DigitsMLP().save_pretrained(tmp_path / "ok")
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    config["input_spec"]["num_features"] = True  # JSON true is not a count
    (tmp_path / "ok" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputSpecError, match=r"config.json: input_spec\['num_features'\]: expected an integer"):
        DigitsMLP.from_pretrained(tmp_path / "ok")


# -- cards and provenance -----------------------------------------------------------------------------------------
def test_card_data_names_an_unknown_key_and_a_bad_row():
    with pytest.raises(RecipeError, match="unknown key.*limitatons"):
        CardData.from_dict({"title": "x", "limitatons": "typo"})
    with pytest.raises(RecipeError, match=r"results\[0\]: missing value"):
        CardData.from_dict({"results": [{"metric": "accuracy"}]})
    with pytest.raises(RecipeError, match="tags: expected a list of strings"):
        CardData.from_dict({"tags": "speech"})
    card = CardData.from_dict({"title": "T", "results": [{"metric": "accuracy", "value": 0.9, "setting": "s"}],
                               "eval_results": [{"dataset": "digits", "metric": "accuracy", "value": 0.9}]})
    assert CardData.from_dict(card.to_dict()) == card  # what provenance.json stores reads back the same


def test_recipe_card_is_validated_before_anything_runs(fake_plugin):
    with pytest.raises(RecipeError, match="card: unknown key.*sumary"):
        fake_plugin.DigitsMAE.validate({"method": "digits-mae", "name": "d", "card": {"sumary": "typo"}})


def test_provenance_reads_every_layout_and_keeps_extras():
    old = {"seed": 3, "recipe": {"name": "r"}, "audio_seen": 12.5, "metrics": {"loss": 1.0}}
    prov = Provenance.from_dict(old)
    assert prov.seeds == [3] and prov.extra == {"audio_seen": 12.5} and prov.metrics == {"loss": 1.0}
    out = prov.to_dict()
    assert out["seeds"] == [3] and "seed" not in out and out["audio_seen"] == 12.5
    built = build_provenance(prov)
    assert built["recipe_name"] == "r" and len(built["recipe_sha256"]) == 64 and built["python"]
    assert Provenance.from_dict({"init_from": None, "seeds": None}).to_dict() == {"data_files": []}
    with pytest.raises(ValueError, match="shadow typed fields"):
        Provenance(extra={"seeds": [1]}).to_dict()


def test_saved_checkpoint_stores_the_whole_card_and_renders_it(fake_plugin, tmp_path):
    card = {"title": "Digits", "results": [{"metric": "accuracy", "value": 0.9, "setting": "test split"}],
            "eval_results": [{"dataset": "digits", "metric": "accuracy", "value": 0.9}]}
    path = fake_plugin.DigitsMLP().save_pretrained(tmp_path / "c", card=card, provenance={"seeds": [0]})
    prov = json.loads((path / "provenance.json").read_text())
    config = json.loads((path / "config.json").read_text())
    assert prov["card"]["results"][0]["value"] == 0.9
    text = (path / "README.md").read_text()
    assert text == render_card(config, card_of(prov, config), prov)
    assert "model-index:" in text and "- seeds: [0]" in text and "| accuracy | 0.9 | test split |" in text


# -- shipping -----------------------------------------------------------------------------------------------------
@pytest.fixture
def shipping(fake_plugin, monkeypatch, tmp_path):
    """The fake domain with a checkpoints folder, and a run directory as `fmzoo pretrain` leaves it."""
    from dataclasses import replace

    shipped = tmp_path / "pkg" / "checkpoints"
    monkeypatch.setattr(registry, "plugins", lambda: {"fake": replace(fake_plugin.plugin(), checkpoints_dir=shipped)})
    run = tmp_path / "run"
    fake_plugin.DigitsMLP().save_pretrained(run / "checkpoint", card={"title": "Digits MAE", "summary": "A run."},
                                provenance={"seeds": [0], "recipe": {"name": "digits-mae"}})
    results = tmp_path / "digits.json"
    results.write_text(json.dumps({"table": "digits", "setting": "quick", "rows": [ROW]}))
    return shipped, run, results


def test_ship_copies_the_run_renders_its_card_and_never_overwrites(shipping, tmp_path):
    shipped, run, results = shipping
    card_yaml = tmp_path / "card.yaml"
    card_yaml.write_text("limitations: Tiny.\n")
    dest = ship(run, name="digits-small", results=[results], card_file=card_yaml)
    assert dest == shipped / "digits-small"
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "config.json", "model.safetensors", "provenance.json"]
    assert (dest / "model.safetensors").read_bytes() == (run / "checkpoint" / "model.safetensors").read_bytes()
    text = (dest / "README.md").read_text()
    assert "A run." in text and "Tiny." in text and "fmzoo reproduce digits --quick, seeds [0, 1]" in text
    assert check_cards() == []
    with pytest.raises(UsageError, match="exists: give --replace"):
        ship(run, name="digits-small")
    assert ship("fmzoo/digits-small", results=[results]) == dest  # re-ship in place: the same rows, not repeated
    assert (dest / "README.md").read_text() == text
    (dest / "README.md").write_text(text.replace("Tiny.", "Edited by hand."))
    assert check_cards() == ["fmzoo/digits-small: README.md differs from the card provenance.json renders "
                             "(re-ship it: fmzoo ship fmzoo/digits-small)"]


def test_ship_replace_swaps_the_folder_whole(shipping, monkeypatch):
    shipped, run, _ = shipping
    dest = ship(run, name="digits-small")
    before = (dest / "README.md").read_text()
    import fmzoo.core.ship as ship_mod

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ship_mod, "refresh_card", broken)
    with pytest.raises(OSError, match="disk full"):
        ship(run, name="digits-small", replace=True)
    assert (dest / "README.md").read_text() == before  # the shipped checkpoint is untouched
    assert sorted(p.name for p in shipped.iterdir()) == ["digits-small"]  # no staging folder left


def test_ship_refuses_changed_weights_and_cli_reports_it(shipping):
    _, run, _ = shipping
    w = run / "checkpoint" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        ship(run, name="x")
    assert main(["ship", str(run), "--name", "x"]) == 2
    assert main(["ship", "--check"]) == 0


def test_ship_carries_the_transformers_tokenizer_files_and_nothing_else(shipping):
    """A wav2vec 2.0 run writes tokenizer_config.json and vocab.json beside its weights: shipping keeps them."""
    shipped, run, _ = shipping
    files = {"preprocessor_config.json": "{}", "tokenizer_config.json": '{"tokenizer_class": "X"}',
             "vocab.json": '{"<pad>": 0}', "special_tokens_map.json": '{"pad_token": "<pad>"}'}
    for name, text in files.items():
        (run / "checkpoint" / name).write_text(text)
    (run / "checkpoint" / "trainer_state.json").write_text("{}")
    dest = ship(run, name="digits-tok")
    assert sorted(p.name for p in dest.iterdir()) == sorted(["README.md", "config.json", "model.safetensors",
                                                             "provenance.json", *files])
    assert all((dest / name).read_text() == text for name, text in files.items())
