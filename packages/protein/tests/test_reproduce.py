"""The table runners on a small slice of the real data with the shipped checkpoint (the tables use all of it):
the smoke runs of `fmzoo reproduce` and the GB1 fine-tuning rows."""

import json

import pytest
from fmzoo.core import load_table
from fmzoo.core.reproduce import reproduce
from fmzoo.protein.reproduce import run_gb1
from threadpoolctl import threadpool_limits


def _smoke(name, tmp_path) -> list[dict]:
    """``fmzoo reproduce NAME --smoke``: the quick protocol on the table's sliver; returns the saved rows."""
    result = reproduce(name, smoke=True, out_dir=tmp_path, echo=lambda *a: None)
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert saved["setting"] == "smoke" and saved["rows"] == result["rows"]
    assert all(r["seeds"] == [0, 1] and len(r["values"]) == 2 for r in saved["rows"])
    return saved["rows"]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # smoke: 25 solver iterations
def test_ss_runner_rows(tmp_path, tmp_hub):
    # BLAS on one thread: the same fits; OpenBLAS's two threads made them 20x slower on a loaded CI machine
    with threadpool_limits(1, user_api="blas"):
        rows = _smoke("tape-ss-cb513", tmp_path)
    assert len(rows) == 8
    by = {(r["model"], r["init"], r["metric"]): r for r in rows}
    r = by[("TAPE Transformer", "pretrained", "accuracy_3state")]
    assert r["paper"] == 0.73 and "Pfam" in r["note"] + (r.get("paper_source") or "")
    assert "test all 16 CB513" in r["note"] and "train 8 FLIP" in r["note"]
    assert by[("TAPE Transformer", "pretrained", "accuracy_8state")]["paper"] is None
    assert by[("TAPE Transformer", "scratch", "accuracy_structural_class")]["paper"] is None
    assert by[("One-hot window +-3", "scratch", "accuracy_3state")]["paper"] == 0.69
    for r in rows:
        assert 0.0 < r["ours"] <= 1.0


def test_gb1_runner_rows(tmp_path, tmp_hub):
    rows = _smoke("tape-gb1", tmp_path)
    reps = load_table("tape-gb1")["quick"]["representations"]
    per_split = len(rows) // 3
    for k, sp in enumerate(["one_vs_rest", "two_vs_rest", "three_vs_rest"]):
        part = rows[k * per_split: (k + 1) * per_split]
        # each representation, the one-hot row, then zero-shot and one-hot + zero-shot for each init
        assert [r["init"] for r in part] == ["pretrained", "scratch"] * len(reps) + ["scratch"] + ["pretrained"] * 2 + \
            ["scratch"] * 2
        assert all(-1.0 <= r["ours"] <= 1.0 and sp in r["model"] for r in part)
        zero = [r for r in part if r["model"] == f"TAPE Transformer zero-shot [{sp}]"]
        assert len(zero) == 2 and "no labels" in zero[0]["note"]
    assert "train 28 (FLIP train" in rows[0]["note"] and "train 60 (FLIP train" in rows[per_split]["note"]
    assert "test 40 (random subset)" in rows[0]["note"]


def test_gb1_finetune_runner_with_early_stopping(tmp_path, tmp_hub, monkeypatch):
    import fmzoo.protein.tasks.gb1 as gb1
    from fmzoo.core.card import result_rows

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
    # a result of these rows is what the card takes (fmzoo ship fmzoo/NAME --results / fmzoo card --results)
    setting = result_rows({"table": "tape-gb1", "setting": "full", "rows": rows})[0]["setting"]
    assert setting.startswith("fmzoo reproduce tape-gb1, seeds [0]; split two_vs_rest")
