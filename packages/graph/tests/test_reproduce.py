import json
import math

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


def smoke(name, tmp_path):
    res = reproduce(name, smoke=True, out_dir=tmp_path, echo=lambda *a: None)
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["setting"] == "smoke" and data["rows"] == res["rows"]
    for r in res["rows"]:
        assert r["seeds"] == [0] and len(r["values"]) == 1 and all(math.isfinite(v) for v in r["values"])
    return {(r["model"], r["init"]): r for r in res["rows"]}


def test_cora_smoke(tmp_path, data_root):
    rows = smoke("graphmae-cora", tmp_path)
    assert set(rows) == {("GraphMAE", "pretrained"), ("GAT (random init)", "scratch")}
    assert rows[("GraphMAE", "pretrained")]["paper"] == 84.2 and len(rows[("GraphMAE", "pretrained")]["final_epoch_acc"]) == 1


def test_moleculenet_smoke(tmp_path, data_root):
    rows = smoke("graphmae-moleculenet", tmp_path)
    assert set(rows) == {("GIN bbbp", "scratch"), ("GraphMAE-GIN bbbp", "pretrained"),
                         ("mean over 1 datasets", "scratch"), ("mean over 1 datasets", "pretrained")}
    assert rows[("GraphMAE-GIN bbbp", "pretrained")]["paper"] == 0.720
    for r in rows.values():
        assert 0.0 <= r["ours"] <= 1.0 and r["metric"] == "roc_auc"


def test_mutag_smoke(tmp_path, data_root):
    rows = smoke("graphmae-mutag", tmp_path)
    assert set(rows) == {("GraphMAE", "pretrained"), ("GIN (random init)", "scratch")}
    assert all(0 <= r["ours"] <= 100 for r in rows.values())
