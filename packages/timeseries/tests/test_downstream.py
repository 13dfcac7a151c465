"""fmzoo evaluate / finetune on GPHT checkpoints: the forecasting task, its hooks and the CLI (real ETTh1 data)."""
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.downstream import hooks_for, predict
from fmzoo.core.hub import read_config
from fmzoo.core.registry import shipped_checkpoints
from fmzoo.timeseries.plugin import plugin
from fmzoo.timeseries.tasks.downstream import GPHTHooks
from fmzoo.timeseries.tasks.evaluation import evaluate_gpht


@pytest.fixture
def few_windows(monkeypatch):
    """Fewer evenly spaced window positions, so a CLI run takes seconds (the protocol is unchanged)."""
    monkeypatch.setattr(GPHTHooks, "train_windows", 32)
    monkeypatch.setattr(GPHTHooks, "test_windows", 24)


def test_every_shipped_checkpoint_has_hooks():
    shipped_here = plugin().checkpoints_dir.resolve()
    ours = {k: p for k, p in shipped_checkpoints().items() if Path(p).resolve().parent == shipped_here}
    assert set(ours) == {f"fmzoo/{n}" for n in ("gpht-mixed", "gpht-etth1", "gpht-etth1-scratch",
                                                 "gpht-etth2-scratch", "gpht-mixed-no-etth2")}
    for path in ours.values():
        assert isinstance(hooks_for(read_config(path)["architecture"]), GPHTHooks)


def test_task_is_the_ltsf_test_protocol(monkeypatch, etth1):
    """Per-channel items of the evenly spaced test windows: the frozen checkpoint's forecast scores exactly as the
    table's evaluation of the same windows; the baseline is repeat-last; the default dataset is ETTh1."""
    monkeypatch.setattr(GPHTHooks, "test_windows", 8)
    model = from_pretrained("fmzoo/gpht-mixed")
    hooks = GPHTHooks()
    task = hooks.load(model, None, None)
    assert task.kind == "forecasting" and task.metric == "mse" and task.n_outputs == 96 and "ETTh1" in task.name
    assert np.asarray(task.test.items).shape == (8 * 7, 336) and np.asarray(task.test.targets).shape == (8 * 7, 96)
    assert len(task.train) == 256 * 7
    net = hooks.network(model, task, freeze=True)
    scores = hooks.score(task, predict(hooks, net, model, task.test.items), task.test.targets)
    ref = evaluate_gpht(model, etth1, [96], max_windows=8)[96]
    assert scores["mse"] == pytest.approx(ref["mse"], rel=1e-5) and scores["mae"] == pytest.approx(ref["mae"], rel=1e-5)
    name, base = hooks.baseline(task, task.train)
    items, targets = np.asarray(task.test.items), np.asarray(task.test.targets)
    assert name == "repeat last value"
    assert base["mse"] == pytest.approx(float(((targets - items[:, -1:]) ** 2).mean()), rel=1e-6)
    assert scores["mse"] < 0.6 * base["mse"]
    assert "ETTh2" in hooks.load(model, "ETTh2", None).name


def test_frozen_network_trains_only_the_forecast_heads(tiny_gpht, etth1):
    """evaluate (freeze): only the stages' forecast heads learn, the rest in eval mode; finetune: every weight."""
    hooks = GPHTHooks()
    task = SimpleNamespace(n_outputs=30)
    x = torch.as_tensor(etth1.scaled[:96, :4].T.copy())  # 4 real series of 96 steps (the tiny model's context)
    y = torch.as_tensor(etth1.scaled[96:126, :4].T.copy())
    for freeze in (True, False):
        model = tiny_gpht(dropout=0.1)
        net = hooks.network(model, task, freeze=freeze).train()
        assert model.training is not freeze
        before = {k: v.clone() for k, v in model.state_dict().items()}
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
        hooks.loss(task, net(x), y).backward()  # through the autoregressive rollout (2 tokens of 24)
        opt.step()
        changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
        heads = {k for k in changed if ".head." in k}
        assert len(heads) == 2 * len(model.stages)  # weight and bias of every stage's head
        assert (changed == heads) is freeze


def _run_cli(args, tmp_path):
    out = tmp_path / "out"
    assert main([*args, "--seeds", "0", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    return json.loads((out / f"{args[0]}.json").read_text())


def test_cli_evaluate_and_finetune(few_windows, tmp_path, capsys):
    ev = _run_cli(["evaluate", "fmzoo/gpht-etth1", "--n-labelled", "64"], tmp_path)
    ft = _run_cli(["finetune", "fmzoo/gpht-etth1-scratch", "--n-labelled", "64"], tmp_path)
    for res, protocol in ((ev, "frozen encoder, head trained"), (ft, "fine-tuned end to end")):
        assert res["kind"] == "forecasting" and res["metric"] == "mse" and res["train_examples"] == 32 * 7
        [row] = res["rows"]
        assert row["protocol"].startswith(protocol) and row["n_labelled"] == [64]
        assert all(math.isfinite(v["mean"]) for v in row["metrics"].values()) and set(row["metrics"]) == {"mse", "mae"}
        # a trained ETTh1 checkpoint forecasts far better than repeating the last value
        assert row["metrics"]["mse"]["mean"] < 0.6 * res["baseline"]["metrics"]["mse"]["mean"]
    assert "repeat last value" in capsys.readouterr().out


def test_cli_data_path_csv(few_windows, tmp_path, etth1, capsys):
    """--data PATH: a CSV (date + numeric columns) written from a slice of the real ETTh1 file."""
    import pandas as pd

    raw = pd.read_csv(etth1.path).iloc[:1000][["date", "HUFL", "OT"]]
    csv = tmp_path / "mine.csv"
    raw.to_csv(csv, index=False)
    res = _run_cli(["evaluate", "fmzoo/gpht-mixed", "--data", str(csv), "--n-labelled", "16"], tmp_path)
    assert str(csv) in res["source"] and res["task"] == "mine forecasting (H=96)"
    # 70/10/20 in time order: 700 train rows -> 269 window positions (32 kept), 200 test rows -> 105 (24 kept)
    assert res["train_examples"] == 32 * 2 and res["test_examples"] == 24 * 2
    assert math.isfinite(res["rows"][0]["metrics"]["mse"]["mean"])
    raw.iloc[:500].to_csv(short := tmp_path / "short.csv", index=False)
    raw.assign(OT=raw["OT"].astype(str) + "x").to_csv(text := tmp_path / "text.csv", index=False)
    capsys.readouterr()
    for path, message in ((short, r"context_len \+ horizon = 432"), (text, r"column 'OT' has dtype")):
        assert main(["evaluate", "fmzoo/gpht-mixed", "--data", str(path), "--no-progress"]) == 2
        assert re.search(message, capsys.readouterr().err)


def test_default_dataset_from_the_checkpoint_provenance(tmp_path):
    """hooks.checkpoint_dir (set by the CLI): a single-dataset recipe's dataset, a mixture's first evaluation
    dataset; no provenance: ETTh1; an unreadable one: an InputSpecError naming the file."""
    from fmzoo.timeseries.data.ltsf import DATASETS
    from fmzoo.timeseries.provenance import checkpoint_recipe, default_dataset

    expected = {"gpht-mixed": "ETTh1", "gpht-etth1": "ETTh1", "gpht-etth1-scratch": "ETTh1",
                "gpht-etth2-scratch": "ETTh2", "gpht-mixed-no-etth2": "ETTh2"}
    for name, dataset in expected.items():
        assert default_dataset(checkpoint_recipe(shipped_checkpoints()[f"fmzoo/{name}"]), DATASETS)[0] == dataset
    assert checkpoint_recipe(tmp_path) is None and default_dataset(None, DATASETS) == (None, "")
    (tmp_path / "provenance.json").write_text("{not json")
    hooks = GPHTHooks()
    hooks.checkpoint_dir = tmp_path
    with pytest.raises(InputSpecError, match=r"provenance.json: expected a JSON object"):
        hooks.load(SimpleNamespace(input_spec={"context_len": 336}, context_len=336), None, None)


def test_cli_options_and_provenance_default(few_windows, tmp_path, capsys):
    """`--option horizon=48` and the ETTh2 default of gpht-etth2-scratch through the real CLI; bad options refused."""
    res = _run_cli(["evaluate", "fmzoo/gpht-etth2-scratch", "--n-labelled", "16", "--option", "horizon=48",
                    "--option", "test_windows=8"], tmp_path)
    assert res["task"] == "ETTh2 forecasting (H=48)" and res["test_examples"] == 8 * 7
    assert "default: the dataset recipe gpht-etth2-scratch trained on" in res["source"]
    assert math.isfinite(res["rows"][0]["metrics"]["mse"]["mean"])
    capsys.readouterr()
    for option, message in (("context=96", r"has no option 'context'; options: horizon, train_windows, test_windows"),
                            ("horizon=abc", r"option horizon .* expects a positive integer, got 'abc'"),
                            ("test_windows=0", r"expects a positive integer or null")):
        assert main(["evaluate", "fmzoo/gpht-mixed", "--option", option, "--no-progress"]) == 2
        assert re.search(message, capsys.readouterr().err)
    hooks = GPHTHooks()
    hooks.configure({"test_windows": None, "horizon": 192})  # null: every window position
    assert hooks.test_windows is None and hooks.horizon == 192
