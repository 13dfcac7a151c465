import json

import fmzoo.core as core
from fmzoo.core.reproduce import reproduce
from fmzoo.graph.models.graphmae import GraphMAE


def test_plugin_registered():
    names = {r["name"] for r in core.list_models()}
    assert {"GraphMAE", "MolGIN", "GraphMAEGIN"} <= names
    assert {"fmzoo/graphmae-cora", "fmzoo/graphmae-mol-gin", "fmzoo/graphmae-mutag"} <= set(core.shipped_checkpoints())


def test_shipped_cora_checkpoint_spec(data_root):
    m = core.from_pretrained("fmzoo/graphmae-cora")
    assert isinstance(m, GraphMAE) and m.input_spec["num_features"] == 1433
    assert m.init_args["num_hidden"] == 512 and m.init_args["nhead"] == 4 and m.init_args["mask_rate"] == 0.5


def test_reproduce_cora_quick(tmp_path, data_root):
    res = reproduce("graphmae-cora", quick=True, out_dir=tmp_path, echo=lambda *a: None)
    data = json.loads((tmp_path / "graphmae-cora.json").read_text())
    assert data["setting"] == "quick" and (tmp_path / "graphmae-cora.png").is_file()
    rows = {r["init"]: r for r in res["rows"]}
    assert rows["pretrained"]["paper"] == 84.2
    assert rows["pretrained"]["ours"] > 80.0  # the shipped checkpoint's linear probe
    assert rows["pretrained"]["ours"] > rows["scratch"]["ours"] + 3


def test_moleculenet_runner_quick_small(tmp_path, data_root):
    from fmzoo.graph.reproduce import run_moleculenet

    table = core.load_table("graphmae-moleculenet") | {"datasets": ["bace"], "seeds": [0], "budget": 50}
    rows = run_moleculenet(table, True, tmp_path)
    by = {(r["model"], r["init"]): r for r in rows}
    assert by[("GraphMAE-GIN bace", "pretrained")]["paper"] == 0.831
    for r in rows:
        assert 0.0 <= r["ours"] <= 1.0
