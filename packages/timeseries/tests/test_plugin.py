import json

import fmzoo.core as core
import pytest
import torch
from fmzoo.core.pretrain import run_pretraining
from fmzoo.core.registry import load_recipe, load_table, table_runner


def test_plugin_registers_everything():
    names = {r["name"] for r in core.list_models()}
    assert "GPHT" in names
    for r in ("gpht-mixed", "gpht-mixed-paper", "gpht-etth1-scratch", "gpht-mixed-no-etth2", "gpht-etth2-scratch"):
        rec = load_recipe(r)
        assert rec["method"] == "gpht" and rec["model"]["pooling"] == [8, 4, 2, 1]
        assert rec["model"]["context_len"] == 336 and rec["model"]["token_len"] == 48
    paper = load_recipe("gpht-mixed-paper")
    assert paper["model"]["d_model"] == 512 and paper["train"]["batch_size"] == 1024
    t = load_table("gpht-etth1")
    assert {r["paper"] for r in t["rows"] if r["model"] == "GPHT/mse/96"} == {0.363}
    assert callable(table_runner("gpht-etth1")) and callable(table_runner("gpht-zeroshot"))


def test_pretrain_function_writes_a_loadable_checkpoint(tmp_path):
    recipe = load_recipe("gpht-mixed")
    recipe["model"].update(d_model=16, d_ff=32, n_heads=2, n_layers=1)
    recipe["data"]["datasets"] = ["illness", "exchange_rate"]
    recipe["train"].update(max_steps=3, batch_size=16, warmup_steps=1)
    recipe["evaluate"] = {"datasets": ["illness"], "horizons": [48], "max_windows": 4}
    ckpt = run_pretraining(recipe, tmp_path / "run", {"progress": False})
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["metrics"]["steps"] == 3 and "illness/48/mse" in prov["metrics"]
    assert prov["seeds"] == [0] and prov["epochs"] == 100  # the recipe's seed, as a list
    assert {f["path"].split("/")[-1] for f in prov["data_files"]} == {"national_illness.csv", "exchange_rate.csv"}
    m = core.from_pretrained(ckpt)
    assert type(m).__name__ == "GPHT"
    out = m.forecast(torch.randn(2, 336, 3), horizon=100)
    assert out.shape == (2, 100, 3) and torch.isfinite(out).all()


def _tiny_recipe():
    recipe = load_recipe("gpht-mixed")
    recipe["model"].update(d_model=16, d_ff=32, n_heads=2, n_layers=1)
    recipe["data"]["datasets"] = ["illness"]
    recipe["train"].update(max_steps=2, batch_size=16, warmup_steps=1)
    recipe["evaluate"] = {"datasets": ["illness"], "horizons": [48], "max_windows": 4}
    return recipe


def test_gpht_method_rejects_an_unknown_recipe_key(tmp_path):
    from fmzoo.core import RecipeError

    recipe = _tiny_recipe()
    recipe["trian"] = {"max_steps": 1}
    with pytest.raises(RecipeError, match="trian"):
        run_pretraining(recipe, tmp_path / "run", {"progress": False})


def test_pretrain_on_a_users_csv(tmp_path, etth1):
    """``fmzoo pretrain gpht-... --data FILE.csv``: a slice of the real ETTh1 CSV (600 rows, 2 columns)."""
    import pandas as pd

    csv = tmp_path / "my_series.csv"
    pd.read_csv(etth1.path, nrows=600)[["date", "HUFL", "OT"]].to_csv(csv, index=False)
    recipe = _tiny_recipe()
    recipe["model"].update(context_len=96, token_len=24, pooling=[4, 2, 1])
    recipe["evaluate"]["horizons"] = [48, 720]  # 720 does not fit the file's test split: skipped
    ckpt = run_pretraining(recipe, tmp_path / "run", {"progress": False}, data_path=csv)
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["seeds"] == [0] and prov["data_path"] == str(csv) and prov["metrics"]["steps"] == 2
    assert [f["path"].split("/")[-1] for f in prov["data_files"]] == ["my_series.csv"]
    assert set(prov["metrics"]["val_next_token_mse"]) == {"my_series"}
    assert "my_series/48/mse" in prov["metrics"] and "my_series/720/mse" not in prov["metrics"]
    card = (ckpt / "README.md").read_text()
    assert "my_series.csv: train split (first 70% of 600 rows" in card and "HUFL, OT" in card
    assert "# GPHT trained on my_series.csv" in card and "mixture" not in card.split("## The paper")[0]
    m = core.from_pretrained(ckpt)
    assert m.forecast(torch.randn(1, 96, 2), horizon=30).shape == (1, 30, 2)
