"""`fmzoo evaluate` / `fmzoo finetune` on T-JEPA checkpoints (the core's protocols, the package's hooks), `--data`
CSVs built from the real Adult rows, and `fmzoo reproduce --smoke` for every table."""

import json
import math

import numpy as np
import pytest
from fmzoo.core.cli import main
from fmzoo.core.downstream import hooks_for
from fmzoo.core.hub import read_config
from fmzoo.core.registry import plugins
from fmzoo.core.reproduce import reproduce
from fmzoo.tabular.data.adult import TARGET, load_adult
from fmzoo.tabular.tasks.downstream import TJEPAHooks


def _finite_rows(result: dict) -> None:
    assert result["rows"]
    for row in result["rows"]:
        for metric in row["metrics"].values():
            assert all(math.isfinite(v) for v in metric["values"]), row


def test_every_shipped_checkpoint_resolves_to_registered_hooks():
    shipped = sorted(plugins()["tabular"].checkpoints_dir.iterdir())
    assert {p.name for p in shipped} == {"tjepa-adult", "tjepa-diamonds"}
    for path in shipped:
        config = read_config(path)
        hooks = hooks_for(config["architecture"])
        assert isinstance(hooks, TJEPAHooks)
        assert config["input_spec"]["dataset"] in hooks.datasets  # the default dataset is a supported one


def test_cli_finetune_and_evaluate_diamonds_regression(data_root, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", "fmzoo/tjepa-diamonds", "--n-labelled", "2000", "--epochs", "3", "--lr", "1e-3",
                 "--seeds", "0", "1",
                 "--no-progress", "--out", str(out)]) == 0
    assert "fine-tuned end to end (3 epochs)" in capsys.readouterr().out
    result = json.loads((out / "finetune.json").read_text())
    assert result["architecture"] == "TJEPA" and result["task"] == "diamonds" and result["kind"] == "regression"
    assert result["metric"] == "rmse" and result["rows"][0]["n_labelled"] == [2000, 2000]
    _finite_rows(result)
    # the head predicts in units of the labelled targets' scale (without it, log prices of 5-10 from a head near 0):
    # three epochs on 2,000 rows are far better than the training mean (measured rmse 0.27 vs 1.02)
    rmse, base = result["rows"][0]["metrics"]["rmse"]["values"], result["baseline"]["metrics"]["rmse"]["values"]
    assert all(r < 0.5 * b for r, b in zip(rmse, base, strict=True)), (rmse, base)
    assert result["warnings"] == []
    assert main(["evaluate", "fmzoo/tjepa-diamonds", "--n-labelled", "3000", "--no-progress", "--out", str(out)]) == 0
    result = json.loads((out / "evaluate.json").read_text())
    assert [r["protocol"] for r in result["rows"]] == ["linear probe"]  # no kNN for regression
    _finite_rows(result)
    assert result["rows"][0]["metrics"]["r2"]["mean"] > 0.8


@pytest.fixture(scope="module")
def adult_csv_dir(data_root, tmp_path_factory):
    """A slice of the real Adult rows in the everyday format: train.csv / test.csv with a header, target last."""
    data = load_adult()
    folder = tmp_path_factory.mktemp("adult_csv")
    for split, n in (("train", 400), ("test", 300)):
        X, y = data[split]
        X.iloc[:n].assign(**{TARGET: np.where(y[:n] == 1, ">50K", "<=50K")}).to_csv(folder / f"{split}.csv", index=False)
    return folder


def test_cli_finetune_on_a_user_csv(adult_csv_dir, tmp_path, capsys):
    assert main(["finetune", "fmzoo/tjepa-adult", "--data", str(adult_csv_dir), "--epochs", "1", "--no-progress",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "finetune.json").read_text())
    assert result["kind"] == "classification" and result["train_examples"] == 400 and result["test_examples"] == 300
    assert str(adult_csv_dir) in result["source"] and result["baseline"]["name"] == "majority class"
    _finite_rows(result)
    # one CSV file: split 80/20 with seed 0
    df = __import__("pandas").read_csv(adult_csv_dir / "train.csv")
    df.to_csv(tmp_path / "one.csv", index=False)
    assert main(["evaluate", "fmzoo/tjepa-adult", "--data", str(tmp_path / "one.csv"), "--no-progress",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "evaluate.json").read_text())
    assert (result["train_examples"], result["test_examples"]) == (320, 80)
    _finite_rows(result)


def test_user_csv_that_does_not_fit_the_schema_is_a_clear_error(adult_csv_dir, tmp_path, capsys):
    import pandas as pd

    df = pd.read_csv(adult_csv_dir / "train.csv")
    df.drop(columns=["race"]).to_csv(tmp_path / "no_race.csv", index=False)
    assert main(["finetune", "fmzoo/tjepa-adult", "--data", str(tmp_path / "no_race.csv"), "--no-progress"]) == 2
    assert "missing column(s) ['race']" in capsys.readouterr().err
    df[[*df.columns[1:], df.columns[0]]].drop(columns=[TARGET]).to_csv(tmp_path / "no_target.csv", index=False)
    assert main(["finetune", "fmzoo/tjepa-adult", "--data", str(tmp_path / "no_target.csv"), "--no-progress"]) == 2
    assert "the last column 'age' is one of the checkpoint's features" in capsys.readouterr().err
    assert main(["evaluate", "fmzoo/tjepa-adult", "--dataset", "diamonds", "--no-progress"]) == 2
    assert "do not fit this checkpoint's schema (it was pretrained on adult)" in capsys.readouterr().err
    assert main(["evaluate", "fmzoo/tjepa-adult", "--data", str(tmp_path / "no_race.csv"), "--target", "nope",
                 "--no-progress"]) == 2
    assert "--target 'nope' is not a column" in capsys.readouterr().err


def test_target_names_the_label_column_anywhere(adult_csv_dir, tmp_path, capsys):
    import pandas as pd

    df = pd.read_csv(adult_csv_dir / "train.csv")
    df[[TARGET, *[c for c in df.columns if c != TARGET]]].to_csv(tmp_path / "first.csv", index=False)  # target first
    assert main(["evaluate", "fmzoo/tjepa-adult", "--data", str(tmp_path / "first.csv"), "--target", TARGET,
                 "--no-progress", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "evaluate.json").read_text())
    assert result["kind"] == "classification" and f"target: --target, '{TARGET}'" in result["source"] + result["notes"]
    _finite_rows(result)


@pytest.mark.parametrize("table,models,metric", [
    ("tjepa-adult", {"Linear probe", "MLP", "Linear probe, 1% of the labels", "MLP, 1% of the labels"}, "accuracy"),
    ("tjepa-diamonds", {"Linear probe", "MLP", "Linear probe, 1% of the labels", "MLP, 1% of the labels"}, "rmse"),
])
def test_reproduce_smoke(table, models, metric, data_root, tmp_path):
    result = reproduce(table, smoke=True, out_dir=tmp_path, echo=lambda *a: None)
    assert result["setting"] == "smoke"
    saved = json.loads((tmp_path / f"{table}.json").read_text())
    assert saved["rows"] == result["rows"] and len(result["rows"]) == 8
    assert {r["model"] for r in result["rows"]} == models and {r["init"] for r in result["rows"]} == {"pretrained", "scratch"}
    for row in result["rows"]:
        assert row["metric"] == metric and row["seeds"] == [0, 1, 2] and all(math.isfinite(v) for v in row["values"])
        assert "800 labelled training rows" in row["note"] or "8 labelled training rows" in row["note"]
