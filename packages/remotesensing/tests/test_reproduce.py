"""Both tables in smoke mode (the quick protocol on a sliver of the real images): the rows keep the table's
shape. The quick and full protocols are unchanged by smoke mode (the runners only swap the data and, for the
fine-tune rows, the epochs)."""

from fmzoo.core.reproduce import reproduce
from fmzoo.remotesensing import reproduce as rs


def test_rs_preprocessing_smoke_rows(tmp_path):
    result = reproduce("rs-preprocessing", smoke=True, out_dir=tmp_path, echo=lambda *a: None)
    assert result["setting"] == "smoke" and len(result["rows"]) == 4
    assert sorted(r["paper"] for r in result["rows"]) == [65.8, 69.1, 82.9, 91.9]
    assert all(0 <= r["ours"] <= 100 and r["metric"] == "knn_accuracy" for r in result["rows"])
    assert sum(r["own_preprocessing"] for r in result["rows"]) == 1
    n_train, n_test = rs.SMOKE_IMAGES
    assert all(f"{n_train} train / {n_test} test images" in r["note"] for r in result["rows"])
    assert (tmp_path / "rs-preprocessing.json").is_file() and (tmp_path / "rs-preprocessing.png").is_file()


def test_softcon_eurosat_smoke_rows(tmp_path):
    result = reproduce("softcon-eurosat", smoke=True, out_dir=tmp_path, echo=lambda *a: None)
    rows = result["rows"]
    assert result["setting"] == "smoke"
    assert [(r["model"], r["init"], r["metric"], r["seeds"]) for r in rows] == [
        ("softcon-resnet-small | linear probe", "pretrained", "linear_probe_accuracy", [0]),
        ("softcon-resnet-small | linear probe", "scratch", "linear_probe_accuracy", [0]),
        ("softcon-resnet-small | 10-label fine-tune", "pretrained", "finetune_accuracy", [0, 1]),
        ("softcon-resnet-small | 10-label fine-tune", "scratch", "finetune_accuracy", [0, 1]),
    ]
    assert all(0 <= v <= 100 for r in rows for v in r["values"])
    assert rows[0]["paper"] == 98.6
    assert "1 epochs" in rows[2]["note"] and (tmp_path / "softcon-eurosat.json").is_file()
