"""The table runners on a small slice of the real data with the shipped checkpoint (the tables use all of it)."""

from fmzoo.core import load_table
from fmzoo.protein.reproduce import run_gb1, run_ss_cb513


def test_ss_runner_rows(tmp_path, tmp_hub):
    table = load_table("tape-ss-cb513")
    table["quick"].update(train_proteins=12, cb513_proteins=24, seeds=[0, 1], max_train_residues=2000)
    rows = run_ss_cb513(table, True, tmp_path)
    by = {(r["model"], r["init"], r["metric"]): r for r in rows}
    r = by[("TAPE Transformer", "pretrained", "accuracy_3state")]
    assert r["paper"] == 0.73 and "Pfam" in r["note"] + (r.get("paper_source") or "") and len(r["values"]) == 2
    assert by[("TAPE Transformer", "pretrained", "accuracy_8state")]["paper"] is None
    assert by[("One-hot window +-3", "scratch", "accuracy_3state")]["paper"] == 0.69
    for r in rows:
        assert 0.0 < r["ours"] <= 1.0


def test_gb1_runner_rows(tmp_path, tmp_hub):
    table = load_table("tape-gb1")
    table["quick"].update(splits=["one_vs_rest"], max_test=60, seeds=[0])
    rows = run_gb1(table, True, tmp_path)
    # each representation, the one-hot row, then zero-shot and one-hot + zero-shot for each init
    assert [r["init"] for r in rows] == ["pretrained", "scratch"] * len(table["quick"]["representations"]) + \
        ["scratch"] + ["pretrained"] * 2 + ["scratch"] * 2
    assert all(-1.0 <= r["ours"] <= 1.0 and "one_vs_rest" in r["model"] for r in rows)
    zero = [r for r in rows if r["model"] == "TAPE Transformer zero-shot [one_vs_rest]"]
    assert len(zero) == 2 and "no labels" in zero[0]["note"]


def test_gb1_finetune_runner_with_early_stopping(tmp_path, tmp_hub, monkeypatch):
    import fmzoo.protein.tasks.gb1 as gb1

    calls = []
    real = gb1.spearman
    monkeypatch.setattr(gb1, "spearman", lambda y, p: calls.append(len(y)) or real(y, p))
    table = load_table("tape-gb1")
    table["quick"].update(splits=["two_vs_rest"], max_test=40, seeds=[0], protocol="finetune", steps=4, eval_every=2,
                          early_stopping=True, lr=1e-4)
    rows = run_gb1(table, True, tmp_path)
    assert [r["init"] for r in rows] == ["pretrained", "scratch"]
    assert all(-1.0 <= r["ours"] <= 1.0 and "fine-tuned [two_vs_rest]" in r["model"] for r in rows)
    assert "train 381" in rows[0]["note"] and "43 validation variants" in rows[0]["note"]  # FLIP's train part only
    assert calls == [43, 43, 40] * 2  # per init: steps 2 and 4 on the validation variants, then the test score


def test_gb1_finetune_command_writes_a_result_the_card_can_take(tmp_path, tmp_hub, monkeypatch):
    import json

    import fmzoo.core
    from fmzoo.core.card import result_rows
    from fmzoo.protein.reproduce import main

    real = fmzoo.core.load_table

    def short(name):
        t = real(name)
        t["full"]["finetune"].update(steps=2, eval_every=1)
        return t

    monkeypatch.setattr(fmzoo.core, "load_table", short)
    out = tmp_path / "ft.json"
    main(["--splits", "two_vs_rest", "--seeds", "0", "--max-test", "30", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["command"] == f"python -m fmzoo.protein.reproduce --splits two_vs_rest --seeds 0 --max-test 30 --out {out}"
    assert [r["init"] for r in result["rows"]] == ["pretrained", "scratch"]
    assert result_rows(result)[0]["setting"].startswith(result["command"] + ", seeds [0]; split two_vs_rest")
