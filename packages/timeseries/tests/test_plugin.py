import json

import fmzoo.core as core
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
    assert {f["path"].split("/")[-1] for f in prov["data_files"]} == {"national_illness.csv", "exchange_rate.csv"}
    m = core.from_pretrained(ckpt)
    assert type(m).__name__ == "GPHT"
    out = m.forecast(torch.randn(2, 336, 3), horizon=100)
    assert out.shape == (2, 100, 3) and torch.isfinite(out).all()
