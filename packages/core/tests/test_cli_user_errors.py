"""User errors on the command line are one line on stderr with exit code 2, found before anything is read or
written: the label budget and numbers of finetune/evaluate, --set into a value that is not a section, broken recipe
files, and an --overwrite whose recipe does not validate (the earlier run is kept)."""

import pytest
import yaml
from fmzoo.core.cli import main

RECIPE = {"method": "digits-mae", "seed": 3, "threads": 1, "data": {"rows": 256}, "model": {"hidden": 16},
          "train": {"batch_size": 64, "max_epochs": 1}, "mask": {"rate": 0.5}}


def _one_line_error(capsys, argv, expected):
    assert main([str(a) for a in argv]) == 2, argv
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize("flags,expected", [
    (["--fraction", "0"], "fraction must be in (0, 1], got 0.0"),
    (["--per-class", "0"], "per_class must be a positive integer, got 0"),
    (["--n-labelled", "-3"], "n_labelled must be a positive integer, got -3"),
    (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["--steps", "-1"], "--steps must be a positive integer, got -1"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["--threads", "0"], "--threads must be a positive integer, got 0"),
    (["--lr", "-1"], "--lr must be a positive number, got -1.0"),
    (["--lr", "nan"], "--lr must be a positive number, got nan"),
    (["--seeds", "0", "-1"], "--seeds must be non-negative integers, got -1"),
])
@pytest.mark.parametrize("command", ["finetune", "evaluate"])
def test_bad_numbers_are_refused_before_the_checkpoint_is_read(command, flags, expected, capsys, tmp_hub):
    # the model id does not exist: the flag's error comes first, so nothing was loaded to find it
    _one_line_error(capsys, [command, "nobody/nothing", *flags], expected)


def test_set_into_a_value_that_is_not_a_section(fake_plugin, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "run"
    _one_line_error(capsys, ["pretrain", recipe, "--out", out, "--set", "seed.x=1"],
                    "--set seed.x=1: 'seed' is 3 in the recipe, not a section with keys")
    _one_line_error(capsys, ["pretrain", recipe, "--out", out, "--set", "train..lr=1"], "a dotted key")
    _one_line_error(capsys, ["pretrain", recipe, "--out", out, "--set", "train.max_epoch=3"],
                    "unknown key(s) in 'train': train.max_epoch")
    assert not out.exists()


@pytest.mark.parametrize("files,expected", [
    ({"r.yaml": "- a\n- b\n"}, "must be a mapping"),
    ({"r.yaml": "method: digits-mae\ntrain: {batch_size: 3\n"}, "is not valid YAML"),
    ({"r.yaml": "base: b.yaml\nseed: 1\n", "b.yaml": "base: r.yaml\nmethod: digits-mae\n"}, "recipe bases form a cycle"),
    ({"r.yaml": "base: 5\nmethod: digits-mae\n"}, "'base' must be a recipe name or path, got 5"),
    ({"r.yaml": "method: [1, 2]\n"}, "'method' must name an installed method, got [1, 2]"),
    ({"r.yaml": "method: no-such-method\n"}, "no installed fmzoo package provides the pretraining method 'no-such-method'"),
    ({"r.yaml": "method: digits-mae\nthreads: 0\n"}, "'threads' must be a positive integer, got 0"),
])
def test_broken_recipe_files_are_one_line_errors(files, expected, fake_plugin, tmp_path, capsys):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    _one_line_error(capsys, ["pretrain", tmp_path / "r.yaml", "--out", tmp_path / "run"], expected)
    assert not (tmp_path / "run").exists()


def test_overwrite_with_a_recipe_that_does_not_validate_keeps_the_earlier_run(fake_plugin, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"the earlier run")
    (run / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "mask": {"ratio": 0.3}}))  # a typo inside a section
    _one_line_error(capsys, ["pretrain", recipe, "--out", run, "--overwrite"], "unknown key(s) in 'mask': mask.ratio")
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == b"the earlier run"
    assert yaml.safe_load((run / "recipe.yaml").read_text()) == RECIPE


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # what an attacker's last.ckpt would do: run code when unpickled


@pytest.mark.parametrize("kind", ["code", "truncated"])
def test_resume_from_an_unsafe_or_truncated_last_ckpt_is_a_one_line_error(kind, fake_plugin, tmp_path, capsys):
    import pickle

    import torch

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "code-ran"
    ckpt = run / "checkpoints" / "last.ckpt"
    if kind == "code":
        ckpt.write_bytes(pickle.dumps({"state_dict": _RunsCode(marker)}))
        expected = "does not unpickle"
    else:
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:600])
        expected = "is not a readable torch checkpoint"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    _one_line_error(capsys, ["pretrain", recipe, "--out", run, "--resume", "--no-progress"], expected)
    assert not marker.exists()


@pytest.mark.parametrize("text,expected", [("{not json", "is not valid JSON"), ("[1, 2]", "got list without a 'rows' list")])
@pytest.mark.parametrize("command", ["card", "ship"])
def test_results_that_are_not_a_reproduce_json(command, text, expected, digits_checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    before = {p.name: p.read_bytes() for p in digits_checkpoint.iterdir()}
    _one_line_error(capsys, [command, digits_checkpoint, "--results", bad], expected)
    assert {p.name: p.read_bytes() for p in digits_checkpoint.iterdir()} == before


@pytest.mark.parametrize("argv,expected", [
    (["reproduce", "--all", "--jobs", "0"], "--jobs must be a positive integer (tables run at once), got 0"),
    (["reproduce", "some-table", "--all"], "give a TABLE or --all, not both"),
])
def test_reproduce_arguments_are_checked_before_any_table_runs(argv, expected, capsys, monkeypatch):
    from fmzoo.core import reproduce

    monkeypatch.setattr(reproduce, "reproduce", lambda *a, **k: pytest.fail("a table ran"))
    _one_line_error(capsys, argv, expected)
