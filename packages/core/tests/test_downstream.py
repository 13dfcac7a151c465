"""The downstream contract (fmzoo evaluate / finetune) on the fake domain's real digits."""

import json
import re

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.downstream import Budget, hooks_for, run


def test_budget_draws_differ_by_seed_and_respect_per_class(fake_plugin):
    hooks = hooks_for("DigitsMLP")
    task = hooks.load(None, None, None)
    a, b = Budget(per_class=3).draw(task, 0), Budget(per_class=3).draw(task, 1)
    assert len(a) == len(b) == 30
    assert not np.array_equal(a, b)
    assert np.bincount(np.asarray(task.train.targets)[a], minlength=10).tolist() == [3] * 10
    assert len(Budget().draw(task, 5)) == len(task.train)


@pytest.mark.parametrize("kwargs", [{"fraction": 0.0}, {"fraction": 1.5}, {"per_class": 0}, {"n": 0},
                                    {"per_class": 2, "fraction": 0.5}])
def test_degenerate_budgets_are_refused(kwargs):
    with pytest.raises(InputSpecError):
        Budget(**kwargs)


def test_tiny_budgets_keep_every_class_or_are_refused(fake_plugin):
    task = hooks_for("DigitsMLP").load(None, None, None)
    idx = Budget(fraction=1e-9).draw(task, 0)  # stratified: one example of every class, never one row
    assert sorted(np.asarray(task.train.targets)[idx].tolist()) == list(range(10))
    with pytest.raises(InputSpecError, match="leaves 1 training example"):
        Budget(n=1).draw(task, 0)


def test_evaluate_linear_and_knn_beat_majority(digits_checkpoint):
    model = from_pretrained(digits_checkpoint)
    hooks = hooks_for("DigitsMLP")
    result = run("evaluate", model, hooks, hooks.load(model, None, None), seeds=[0, 1], budget=Budget(per_class=10))
    protocols = [r["protocol"] for r in result["rows"]]
    assert protocols == ["linear probe", "kNN (k=20, cosine)"]
    probe = result["rows"][0]["metrics"]["accuracy"]
    assert probe["n"] == 2 and len(set(probe["values"])) == 2  # two seeds, two labelled subsets
    assert probe["mean"] > result["baseline"]["metrics"]["accuracy"]["mean"] + 0.3
    assert result["warnings"] == []


def test_finetune_trains_the_encoder_and_scratch_row(digits_checkpoint):
    model = from_pretrained(digits_checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = hooks_for("DigitsMLP")
    result = run("finetune", model, hooks, hooks.load(model, None, None), seeds=[0], budget=Budget(fraction=0.5),
                 scratch=True, epochs=10)
    assert [r["init"] for r in result["rows"]] == ["pretrained", "scratch"]
    assert result["rows"][0]["protocol"].startswith("fine-tuned end to end")
    assert result["rows"][0]["metrics"]["accuracy"]["mean"] > 0.5
    # the caller's model is not modified (each seed trains a copy)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_finetune_really_updates_encoder(fake_plugin, digits_checkpoint):
    from fmzoo.core.downstream import train_network

    model = from_pretrained(digits_checkpoint)
    hooks = hooks_for("DigitsMLP")
    task = hooks.load(model, None, None)
    net = hooks.network(model, task, freeze=False)
    w0 = model.net[0].weight.detach().clone()
    train_network(hooks, net, model, task, task.train.take(np.arange(200)), 0, 1, 1e-3, 32, 0.0)
    assert not torch.equal(w0, model.net[0].weight)
    frozen = from_pretrained(digits_checkpoint)
    net = hooks.network(frozen, task, freeze=True)
    w0 = frozen.net[0].weight.detach().clone()
    train_network(hooks, net, frozen, task, task.train.take(np.arange(200)), 0, 1, 1e-3, 32, 0.0)
    assert torch.equal(w0, frozen.net[0].weight)


def test_below_baseline_is_flagged(digits_checkpoint, tmp_path):
    # noise inputs, every test label the training majority: a probe cannot beat the majority class
    x = np.random.default_rng(0).random((300, 64)).astype(np.float32)
    np.savez(tmp_path / "noise.npz", x_train=x[:200], y_train=np.r_[np.zeros(160, int), np.ones(40, int)],
             x_test=x[200:], y_test=np.zeros(100, int))
    model = from_pretrained(digits_checkpoint)
    hooks = hooks_for("DigitsMLP")
    task = hooks.load(model, None, tmp_path / "noise.npz")
    task.n_outputs = 2
    result = run("evaluate", model, hooks, task, seeds=[0], knn=False)
    assert result["baseline"]["metrics"]["accuracy"]["mean"] == 1.0  # majority class = every test label
    assert result["warnings"] and "does not beat the majority class" in result["warnings"][0]


def test_cli_evaluate_and_finetune_print_a_table_and_write_json(digits_checkpoint, tmp_path, capsys):
    assert main(["evaluate", str(digits_checkpoint), "--per-class", "5", "--seeds", "0", "1", "--out", str(tmp_path / "e"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "linear probe" in out and "majority class" in out and "(n=2)" in out
    saved = json.loads((tmp_path / "e" / "evaluate.json").read_text())
    assert saved["architecture"] == "DigitsMLP" and saved["budget"] == "5 per class"
    assert main(["finetune", str(digits_checkpoint), "--fraction", "0.1", "--epochs", "1", "--no-progress"]) == 0
    assert "fine-tuned end to end (1 epochs)" in capsys.readouterr().out


def test_cli_user_errors_are_one_line(digits_checkpoint, capsys):
    assert main(["evaluate", str(digits_checkpoint), "--dataset", "mnist"]) == 2
    assert re.search("take --dataset digits", capsys.readouterr().err)
    assert main(["evaluate", str(digits_checkpoint), "--data", "/nonexistent/x.npz"]) == 2
    assert re.search("no such file", capsys.readouterr().err)
    assert main(["finetune", str(digits_checkpoint), "--fraction", "0", "--no-progress"]) == 2
    assert "fraction must be in (0, 1]" in capsys.readouterr().err


def test_options_are_checked_and_applied(digits_checkpoint, capsys, monkeypatch):
    import sys

    hooks_cls = sys.modules["fmzoo_fake_domain"].DigitsHooks
    monkeypatch.setattr(hooks_cls, "options", ("eval_batch_size",), raising=False)
    assert main(["evaluate", str(digits_checkpoint), "--option", "eval_batch_size=7", "--per-class", "3",
                 "--no-progress"]) == 0
    assert main(["evaluate", str(digits_checkpoint), "--option", "horizon=3", "--no-progress"]) == 2
    assert "has no option 'horizon'; options: eval_batch_size" in capsys.readouterr().err


def test_training_by_steps_and_the_schedule_ends_at_zero(digits_checkpoint, monkeypatch):
    from fmzoo.core.downstream import _batch_starts, train_network

    assert _batch_starts(5, 2) == [0, 2]  # the trailing batch of one is dropped, and never counted in the schedule
    assert _batch_starts(3, 1) == [0, 1, 2]  # batches of one by choice are kept
    model = from_pretrained(digits_checkpoint)
    hooks = hooks_for("DigitsMLP")
    task = hooks.load(model, None, None)
    lrs = []
    real_step = torch.optim.AdamW.step

    def spy(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    losses = train_network(hooks, hooks.network(model, task, freeze=False), model, task,
                           task.train.take(np.arange(100)), 0, epochs=1, lr=1e-3, batch_size=32, weight_decay=0.0, steps=7)
    assert len(lrs) == 7 and len(losses) == 2  # 4 batches a pass (32, 32, 32, 4): two passes for 7 steps
    assert lrs[0] == 1e-3 and lrs[-1] < 1e-4  # cosine over exactly the steps taken


def test_evaluate_embeds_only_the_labelled_examples(digits_checkpoint, monkeypatch):
    import fmzoo.core.downstream as ds

    model = from_pretrained(digits_checkpoint)
    hooks = hooks_for("DigitsMLP")
    task = hooks.load(model, None, None)
    seen = []
    real = ds.embed
    monkeypatch.setattr(ds, "embed", lambda h, m, items, *a, **k: (seen.append(len(items)), real(h, m, items, *a, **k))[1])
    result = run("evaluate", model, hooks, task, seeds=[0, 1], budget=Budget(per_class=3), knn=False)
    assert seen[0] <= 60 and seen[1] == len(task.test)  # two seeds x 30 labels, not the 1200 training digits
    assert result["rows"][0]["metrics"]["accuracy"]["mean"] > 0.3


def test_head_learning_rate_group(digits_checkpoint, monkeypatch):
    from fmzoo.core.downstream import train_network

    model = from_pretrained(digits_checkpoint)
    hooks = hooks_for("DigitsMLP")
    monkeypatch.setattr(type(hooks), "head_lr", 1e-2, raising=False)
    task = hooks.load(model, None, None)
    seen = []
    real_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step",
                        lambda self, *a, **k: (seen.append([g["initial_lr"] for g in self.param_groups]),
                                               real_step(self, *a, **k))[1])
    train_network(hooks, hooks.network(model, task, freeze=False), model, task, task.train.take(np.arange(64)), 0,
                  epochs=1, lr=1e-4, batch_size=32, weight_decay=0.0)
    assert seen[0] == [1e-4, 1e-2]


def test_augment_applies_to_training_batches_only(digits_checkpoint, monkeypatch):
    from fmzoo.core.downstream import predict, train_network

    model = from_pretrained(digits_checkpoint)
    hooks = hooks_for("DigitsMLP")
    task = hooks.load(model, None, None)
    calls = []
    monkeypatch.setattr(type(hooks), "augment",
                        lambda self, m, x, gen: (calls.append(len(x)), x.flip(-1))[1], raising=False)
    net = hooks.network(model, task, freeze=False)
    train_network(hooks, net, model, task, task.train.take(np.arange(64)), 0, epochs=1, lr=1e-3, batch_size=32,
                  weight_decay=0.0)
    assert calls == [32, 32]
    predict(hooks, net, model, task.test.items[:10])
    assert calls == [32, 32]


def test_regression_tasks_report_spearman(digits_checkpoint):
    from fmzoo.core.downstream import Split, Task

    model = from_pretrained(digits_checkpoint)
    hooks = hooks_for("DigitsMLP")
    digits = hooks.load(model, None, None)
    y = np.asarray(digits.train.items)[:, 20:44].sum(1)  # a real-valued target of the real digits: ink in the middle rows
    yt = np.asarray(digits.test.items)[:, 20:44].sum(1)
    task = Task("ink", "regression", Split(digits.train.items, y), Split(digits.test.items, yt), n_outputs=1,
                metric="spearman")
    result = run("evaluate", model, hooks, task, seeds=[0], budget=Budget(n=300))
    assert result["rows"][0]["metrics"]["spearman"]["mean"] > 0.5
    result = run("finetune", model, hooks, task, seeds=[0], budget=Budget(n=300), epochs=2)
    assert np.isfinite(result["rows"][0]["metrics"]["spearman"]["mean"])


def test_device_is_resolved_or_refused_and_batches_follow_it():
    import torch
    from fmzoo.core.downstream import resolve_device, to_device

    assert resolve_device(None).type == "cpu" and resolve_device("CPU").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else
                                           "mps" if torch.backends.mps.is_available() else "cpu")
    with pytest.raises(InputSpecError, match="expected cpu, cuda, cuda:N, mps or auto"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputSpecError, match="no such CUDA device is visible"):
            resolve_device("cuda:0")
    batch = {"x": torch.ones(2), "parts": [torch.zeros(1), ("name", torch.ones(1))], "n": 3}
    moved = to_device(batch, torch.device("meta"))
    assert moved["x"].is_meta and moved["parts"][0].is_meta and moved["parts"][1][1].is_meta
    assert moved["parts"][1][0] == "name" and moved["n"] == 3
    assert to_device(batch, torch.device("cpu")) is batch  # nothing to move


def test_cli_device_flag_is_recorded_and_checked(fake_plugin, digits_checkpoint, tmp_path, capsys):
    from fmzoo.core.cli import main

    assert main(["evaluate", str(digits_checkpoint), "--device", "cpu", "--no-progress", "--out", str(tmp_path)]) == 0
    result = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert result["settings"]["device"] == "cpu"
    assert main(["evaluate", str(digits_checkpoint), "--device", "tpu", "--no-progress"]) == 2
    assert "--device 'tpu': expected cpu, cuda" in capsys.readouterr().err


def test_bf16_autocast_runs_end_to_end_and_stays_close(fake_plugin, digits_checkpoint):
    """--precision bf16: the encoder and head run under bf16 autocast, the loss and scores in float32; on the fake
    digits task the result stays near the float32 one (not identical: bf16 keeps 8 bits of mantissa)."""
    model = from_pretrained(digits_checkpoint)
    hooks = hooks_for("DigitsMLP")
    task = hooks.load(model, None, None)
    r32 = run("finetune", model, hooks, task, seeds=[0], epochs=2)
    r16 = run("finetune", model, hooks, task, seeds=[0], epochs=2, precision="bf16")
    a32 = r32["rows"][0]["metrics"]["accuracy"]["mean"]
    a16 = r16["rows"][0]["metrics"]["accuracy"]["mean"]
    assert r16["settings"]["precision"] == "bf16" and abs(a32 - a16) < 0.05, (a32, a16)
    with pytest.raises(InputSpecError, match="expected 32 or bf16"):
        run("evaluate", model, hooks, task, seeds=[0], precision="fp8")


def test_help_lists_the_installed_choices(fake_plugin, capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "DigitsMLP: digits" in capsys.readouterr().out


def test_python_api_gives_the_cli_result(digits_checkpoint, tmp_path, capsys):
    from fmzoo.core import evaluate, finetune

    assert main(["finetune", str(digits_checkpoint), "--fraction", "0.5", "--epochs", "3", "--seeds", "0", "1",
                 "--no-progress", "--out", str(tmp_path)]) == 0
    cli = json.loads((tmp_path / "finetune.json").read_text())
    api = finetune(str(digits_checkpoint), fraction=0.5, epochs=3, seeds=[0, 1], progress=False)
    assert api["rows"] == cli["rows"] and api["baseline"] == cli["baseline"]
    loaded = from_pretrained(digits_checkpoint)  # a loaded model works the same and is not modified
    again = evaluate(loaded, per_class=5, seeds=[0], progress=False)
    assert again["architecture"] == "DigitsMLP" and again["rows"][0]["protocol"] == "linear probe"
    for bad, match in (({"dataset": "mnist"}, "take dataset= digits"), ({"data": tmp_path / "none.npz"}, "no such file"),
                       ({"target": "y"}, "give data= too"), ({"fraction": 0.0}, "fraction must be in")):
        with pytest.raises(InputSpecError, match=match):
            finetune(loaded, **bad)
    with pytest.raises(InputSpecError, match="got a dict"):
        evaluate({"not": "a model"})
