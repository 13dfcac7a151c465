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
    assert [r["init"] for r in rows] == ["pretrained", "scratch"] * len(table["quick"]["representations"]) + ["scratch"]
    assert all(-1.0 <= r["ours"] <= 1.0 and "one_vs_rest" in r["model"] for r in rows)
