import json

from fmzoo.core.reproduce import reproduce
from fmzoo.remotesensing import reproduce as rs
from fmzoo.remotesensing.data.eurosat import load_eurosat_rgb


def test_rs_preprocessing_quick_writes_json(tmp_path, monkeypatch, rs_root):
    # the real quick run uses 2,000/1,000 images; here 200/100 to stay within the test budget
    monkeypatch.setattr(rs, "_data", lambda quick, seed=0: (load_eurosat_rgb("train", rs_root, limit=200),
                                                             load_eurosat_rgb("test", rs_root, limit=100)))
    result = reproduce("rs-preprocessing", quick=True, out_dir=tmp_path, echo=lambda *a: None)
    data = json.loads((tmp_path / "rs-preprocessing.json").read_text())
    assert data["setting"] == "quick" and len(data["rows"]) == 4
    assert sorted(r["paper"] for r in data["rows"]) == [65.8, 69.1, 82.9, 91.9]
    assert all(0 <= r["ours"] <= 100 for r in data["rows"])
    assert sum(r["own_preprocessing"] for r in result["rows"]) == 1
    assert (tmp_path / "rs-preprocessing.png").is_file()
