import json
import subprocess
import sys

import pytest
import torch
from fmzoo.core.reproduce import ROW_KEYS, format_table, make_row, plot_table


def test_make_row_fills_paper_values_and_validates():
    table = {"table": "t", "metric": "accuracy", "higher_is_better": True,
             "rows": [{"model": "M", "init": "pretrained", "paper": 0.9, "paper_source": "Table 1"}]}
    row = make_row(table, "M", "pretrained", [0.8, 0.82, 0.84], [0, 1, 2])
    assert set(ROW_KEYS) <= set(row)
    assert row["ours"] == pytest.approx(0.82) and row["std"] == pytest.approx(0.02)
    assert row["paper"] == 0.9 and row["paper_source"] == "Table 1"
    assert make_row(table, "M", "scratch", [0.5], [0])["paper"] is None
    table["rows"][0]["metric"] = "accuracy"
    assert make_row(table, "M", "pretrained", [0.5], [0], metric="roc_auc")["paper"] is None  # other metric
    assert make_row(table, "M", "pretrained", [0.5], [0], metric="accuracy")["paper"] == 0.9
    with pytest.raises(ValueError):
        make_row(table, "M", "finetuned", [0.5], [0])
    with pytest.raises(ValueError, match="NaN"):
        make_row(table, "M", "scratch", [float("nan")], [0])


def test_format_and_plot(tmp_path):
    table = {"table": "t", "metric": "accuracy"}
    result = {"table": "t", "setting": "quick", "rows": [make_row(table, "A", "scratch", [0.5, 0.6], [0, 1])]}
    text = format_table(result)
    assert "0.5500 ± 0.0707" in text and "accuracy ↑" in text
    plot_table(result, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fmzoo.core.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("cmd", ["list", "doctor", "pretrain", "finetune", "evaluate", "publish", "ship", "reproduce",
                                 "import", "card"])
def test_every_command_has_useful_help(cmd):
    out = _cli(cmd, "--help")
    assert out.returncode == 0 and "usage: fmzoo " + cmd in out.stdout
    assert len(out.stdout.splitlines()) > 5


def test_unknown_table_and_recipe_are_clear_errors():
    out = _cli("reproduce", "no-such-table")
    assert out.returncode != 0 and "unknown table 'no-such-table'" in out.stderr
    out = _cli("pretrain", "no-such-recipe")
    assert out.returncode != 0 and "unknown recipe 'no-such-recipe'" in out.stderr


def test_publish_rejects_bad_repo_id(tmp_path, tmp_hub, fake_plugin):
    fake_plugin.DigitsMLP().save_pretrained(tmp_path / "checkpoint")
    out = _cli("publish", str(tmp_path), "../evil")
    assert out.returncode != 0 and "invalid repo id" in out.stderr
    out = _cli("publish", str(tmp_path), "lab/ok")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_hub / "lab" / "ok" / "revisions").glob("*.json").__next__().read_text())["repo_id"] == "lab/ok"


def test_card_refresh_renders_results_after_existing_rows_and_keeps_weights(tmp_path, fake_plugin):
    from fmzoo.core.card import refresh_card

    ckpt = tmp_path / "checkpoint"
    fake_plugin.DigitsMLP().save_pretrained(ckpt)
    weights = (ckpt / "model.safetensors").read_bytes()
    row = {"model": "MLP", "init": "pretrained", "metric": "accuracy", "higher_is_better": True, "ours": 0.8512,
           "std": 0.001, "seeds": [0, 1, 2], "paper": 0.866, "paper_source": "x"}
    results = [{"table": "t-one", "setting": "quick", "rows": [row]},
               {"table": "t-two", "setting": "full", "rows": [dict(row, ours=0.5, paper=None)]}]
    card = {"title": "Demo", "results": [{"metric": "held-out loss", "value": "1.0", "setting": "ours"}]}
    text = refresh_card(ckpt, results, card=card)
    lines = [ln for ln in text.splitlines() if ln.startswith("| ") and "metric |" not in ln]
    assert lines[0].startswith("| held-out loss |")
    assert lines[1] == "| accuracy: MLP (pretrained) | 0.8512 ± 0.0010 (paper 0.866) | fmzoo reproduce t-one --quick, seeds [0, 1, 2] |"
    assert lines[2].startswith("| accuracy: MLP (pretrained) | 0.5000 ± 0.0010 | fmzoo reproduce t-two, seeds")
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert set(prov["evaluations"]) == {"t-one:quick", "t-two:full"}
    assert [r["metric"] for r in prov["card"]["results"]][0] == "held-out loss"  # the whole card is kept
    assert (ckpt / "README.md").read_text() == text and (ckpt / "model.safetensors").read_bytes() == weights
    assert refresh_card(ckpt, results) == text  # the same results again: rows replaced, not repeated
    assert refresh_card(ckpt) == text  # provenance alone renders the same card


def test_card_refresh_keeps_every_result_of_one_table_and_setting(tmp_path, fake_plugin):
    """Two partial runs of one table (e.g. two groups of splits, each its own command) both stay in the
    provenance's evaluations: the second must not replace the first."""
    from fmzoo.core.card import refresh_card

    ckpt = tmp_path / "checkpoint"
    fake_plugin.DigitsMLP().save_pretrained(ckpt)
    row = {"model": "A", "init": "pretrained", "metric": "spearman", "ours": 0.1, "std": 0.0, "seeds": [0]}
    results = [{"table": "t", "setting": "full", "command": "run --splits a", "rows": [row]},
               {"table": "t", "setting": "full", "command": "run --splits b", "rows": [dict(row, model="B", ours=0.2)]}]
    text = refresh_card(ckpt, results, card={"title": "Demo"})
    assert "| spearman: A (pretrained) | 0.1000 ± 0.0000 | run --splits a, seeds [0] |" in text
    assert "| spearman: B (pretrained) | 0.2000 ± 0.0000 | run --splits b, seeds [0] |" in text
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert [r["model"] for r in prov["evaluations"]["t:full"]] == ["A", "B"]


def test_a_table_runs_with_its_thread_count_and_does_not_leak_it(tmp_path, monkeypatch):
    from fmzoo.core import reproduce as rep

    seen = []

    def runner(table, quick, out_dir):
        seen.append(torch.get_num_threads())
        torch.set_num_threads(1)
        return [rep.make_row(table, "M", "pretrained", [0.5], [0])]

    table = {"metric": "accuracy", "higher_is_better": True, "rows": [], "threads": 3}
    monkeypatch.setattr(rep, "load_table", lambda name: {**table, "table": name})
    monkeypatch.setattr(rep, "table_runner", lambda name: runner)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = rep.reproduce("demo", quick=True, out_dir=tmp_path, echo=lambda *_: None)
        assert result["rows"][0]["ours"] == 0.5 and seen == [3] and torch.get_num_threads() == 2
        for bad in (None, 0, "2", True):  # a table must say how many threads its numbers were measured with
            table["threads"] = bad
            with pytest.raises(ValueError, match="'threads' must be a positive integer"):
                rep.reproduce("demo", quick=True, out_dir=tmp_path, echo=lambda *_: None)
            assert torch.get_num_threads() == 2 and seen == [3]
    finally:
        torch.set_num_threads(before)


def test_reproduce_jobs_runs_each_table_in_its_own_process_longest_first(tmp_path, monkeypatch, capsys):
    import argparse

    from fmzoo.core import cli

    (tmp_path / "slow.json").write_text(json.dumps({"seconds": 300.0}))  # an earlier run's timings
    (tmp_path / "fast.json").write_text(json.dumps({"seconds": 5.0}))
    started = []

    def fake_run(cmd, **kwargs):
        name = cmd[cmd.index("reproduce") + 1]
        started.append((name, "--quick" in cmd, cmd[cmd.index("--out") + 1]))
        code = 1 if name == "broken" else 0
        return subprocess.CompletedProcess(cmd, code, stdout=f"table {name}\n", stderr="Traceback\nValueError: bad\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    args = argparse.Namespace(out=str(tmp_path), quick=True, smoke=False, jobs=1)
    failed = cli._reproduce_in_processes(["fast", "new", "broken", "slow"], args)  # jobs=1 keeps the start order visible
    assert [s[0] for s in started] == ["new", "broken", "slow", "fast"]  # never run first, then by last seconds
    assert all(quick and out == str(tmp_path) for _, quick, out in started)
    assert failed == ["broken"]
    out = capsys.readouterr()
    assert all(f"table {n}\n" in out.out for n in ("fast", "new", "broken", "slow"))
    assert "broken: FAILED (exit 1)" in out.err and "ValueError: bad" in out.err


def test_version_and_user_errors_are_one_line_with_exit_2(capsys):
    from fmzoo.core import __version__
    from fmzoo.core.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"fmzoo {__version__}"
    for argv, expected in ((["reproduce", "no-such-table"], "unknown table 'no-such-table'"),
                           (["pretrain", "no-such-recipe"], "unknown recipe 'no-such-recipe'"),
                           (["reproduce"], "give a TABLE or --all"),
                           (["card", "nobody/nothing"], "not in the local hub")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and err.count("\n") == 1, err


def test_a_bug_keeps_its_traceback(monkeypatch):
    from fmzoo.core import cli

    def broken(args):
        return {}["missing"]  # a KeyError from a bug, not a user's unknown name

    monkeypatch.setattr(cli, "cmd_list", broken)
    with pytest.raises(KeyError):
        cli.main(["list"])


def test_doctor_names_versions_data_root_and_hubs(fake_plugin, tmp_hub, capsys):
    from fmzoo.core.cli import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "fmzoo-core" in out and "torch" in out and "fmzoo-fake" in out
    assert f"local hub: {tmp_hub}" in out and "official weights in the catalogue: 1" in out


def test_plot_with_mixed_seed_counts_and_paper_markers(tmp_path):
    from fmzoo.core.reproduce import format_table, plot_table

    rows = [{"model": "A", "init": "pretrained", "metric": "accuracy", "higher_is_better": True, "ours": 0.8, "std": 0.05,
             "seeds": [0, 1, 2], "values": [0.75, 0.8, 0.85], "paper": 0.9, "paper_std": None, "paper_source": "paper T1"},
            {"model": "B", "init": "scratch", "metric": "accuracy", "higher_is_better": True, "ours": 0.7, "std": 0.0,
             "seeds": [0], "values": [0.7], "paper": None, "paper_std": None, "paper_source": None}]
    result = {"table": "t", "title": "T", "setting": "quick", "rows": rows, "notes": "a caveat " * 30}
    plot_table(result, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000
    text = format_table(result)
    assert "0.8000 ± 0.0500 (n=3)" in text and "0.7000 (n=1)" in text and "[1] paper T1" in text
    assert max(len(line) for line in text.splitlines()) <= 120


def _row(model, ours, std=0.0, n=1, paper=None, source=None, metric="accuracy", init="pretrained"):
    return {"model": model, "init": init, "metric": metric, "higher_is_better": True, "ours": ours, "std": std,
            "seeds": list(range(n)), "values": [ours] * n, "paper": paper, "paper_std": None, "paper_source": source}


def test_terminal_table_wraps_long_cells_and_titles_under_120_characters_without_dropping_words():
    model = "softcon-resnet-small | 96 px (resized to pretraining size), standardized (checkpoint stats) extra words"
    metric = "a_very_long_metric_name_that_keeps_going_past_any_reasonable_width_for_a_column"
    result = {"table": "t", "title": "a title " * 25, "setting": "quick", "notes": "n " * 100,
              "rows": [_row(model, 0.5, 0.1, 3, 0.6, "Table 2 of a paper " * 10, metric=metric), _row("B", 0.4)]}
    text = format_table(result)
    assert max(len(line) for line in text.splitlines()) <= 120
    flat = " ".join(text.split())
    for word in model.split() + ["0.5000 ± 0.1000 (n=3)", "0.6000", "0.4000 (n=1)"]:
        assert word in flat
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("model "))
    a, b = lines[head].index("metric"), lines[head].index("ours")
    column = "".join(line[a:b].strip() for line in lines[head + 2:] if not line.startswith("B "))
    assert column.startswith(metric + " ↑")  # wrapped over lines, every character kept
    assert flat.count("a title") == 25


def test_plot_labels_sit_beyond_error_bars_and_paper_markers(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fmzoo.core.reproduce import _value_labels

    rows = [_row("long bar", 0.8, 0.05, 3), _row("short bar", 0.04, 0.02, 3), _row("negative", -0.1, 0.03, 3),
            _row("marker beyond", 0.05, 0.0, 1, paper=0.3), _row("marker inside", 0.7, 0.0, 1, paper=0.62)]
    fig, ax = plt.subplots()
    ax.set_xlim(-0.2, 1.0)
    _value_labels(ax, rows, [-0.2, 1.0])
    where = {t.get_text(): (t.xy[0], t.get_horizontalalignment(), t.get_color()) for t in ax.texts}
    plt.close(fig)
    assert where["0.8000"] == (0.75, "right", "white")  # inside the bar, ending before its error bar
    assert where["0.0400"][:2] == (0.06, "left")  # beyond the error bar's cap
    assert where["-0.1000"][:2] == (pytest.approx(-0.13), "right")
    assert where["0.0500"][:2] == (0.3, "left")  # beyond the paper marker, not on it
    assert where["0.7000"][:2] == (0.7, "left")  # outside: inside the bar it would sit on the marker


def test_tall_table_plot_is_a_readable_grid_with_the_paper_source_as_footnote(tmp_path):
    from fmzoo.core.reproduce import _plot_footnote
    from PIL import Image

    rows = [_row(f"GPHT-{g}/{m}/{h}", 0.3 + 0.01 * i, metric=m, paper=0.4 if g == "zs" else None,
                 source="GPHT paper Table 3" if g == "zs" else None)
            for i, (g, m, h) in enumerate((g, m, h) for m in ("mse", "mae") for g in ("zs", "fs", "ft", "sc", "rl")
                                          for h in (96, 192, 336, 720, "avg"))]
    result = {"table": "tall", "title": "fifty bars", "setting": "quick", "rows": rows}
    plot_table(result, tmp_path / "t.png")
    w, h = Image.open(tmp_path / "t.png").size
    assert len(rows) == 50 and h <= 1400 and w <= 1500  # was 990x2002 px as one column
    note = _plot_footnote(result, 150)
    assert "GPHT paper Table 3" in note and note.count("GPHT paper Table 3") == 1
    assert "no paper value" in _plot_footnote({"rows": [_row("x", 1.0)]}, 150)
