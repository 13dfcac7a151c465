"""Every table runner in smoke mode: the quick protocol on a sliver of the real data, rows of the quick shape."""
import pytest
from fmzoo.core.reproduce import reproduce


@pytest.mark.parametrize("table, models", [
    ("gpht-etth1", ["GPHT", "GPHT-heads-ft", "GPHT-zero-ft", "GPHT-scratch", "repeat-last", "DLinear-LS"]),
    ("gpht-zeroshot", ["GPHT-zeroshot", "GPHT-fewshot10", "GPHT-finetuned", "GPHT-scratch", "repeat-last"]),
])
def test_smoke(table, models, tmp_path):
    res = reproduce(table, smoke=True, out_dir=tmp_path, echo=lambda *a: None)
    assert res["setting"] == "smoke" and (tmp_path / f"{table}.json").is_file()
    names = [f"{m}/{metric}/{h}" for m in models for metric in ("mse", "mae") for h in ("96", "192", "336", "720", "avg")]
    assert [r["model"] for r in res["rows"]] == names
    for r in res["rows"]:
        assert r["ours"] > 0 and r["seeds"] == [0] and r["metric"] == r["model"].split("/")[1]
        if not r["model"].endswith("avg"):
            assert r["windows"] == 4
