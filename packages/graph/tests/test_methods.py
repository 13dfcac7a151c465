"""The three GraphMAE recipes as ``fmzoo.core.Method`` subclasses: recipe validation, provenance ``seeds``, and
``fmzoo pretrain RECIPE --data PATH`` on slices of the real data written out in the everyday formats."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from fmzoo.core import RecipeError
from fmzoo.core.cli import main

TINY = {
    "graphmae": {"method": "graphmae", "name": "tiny-node", "seed": 0, "threads": 1,
                 "model": {"num_hidden": 16, "num_layers": 1, "nhead": 2}, "train": {"max_epoch": 3}},
    "graphmae-mol": {"method": "graphmae-mol", "name": "tiny-mol", "seed": 0, "threads": 1,
                     "model": {"num_layer": 2, "emb_dim": 16}, "train": {"batch_size": 16, "epochs": 1}},
    "graphmae-graph": {"method": "graphmae-graph", "name": "tiny-graph", "seed": 0, "threads": 1,
                       "model": {"num_hidden": 8, "num_layers": 2}, "train": {"max_epoch": 1, "batch_size": 16}},
}


@pytest.mark.parametrize("method", sorted(TINY))
def test_unknown_recipe_key_is_a_recipe_error_naming_it(method, tmp_path):
    from fmzoo.core.pretrain import run_pretraining

    with pytest.raises(RecipeError, match="optimiser"):
        run_pretraining({**TINY[method], "optimiser": {"lr": 1}}, tmp_path, {})
    assert not (tmp_path / "checkpoint").exists()


def _pretrain(recipe: dict, data, tmp_path) -> tuple[dict, str]:
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["pretrain", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--data", str(data),
                 "--no-progress"]) == 0
    ckpt = tmp_path / "run" / "checkpoint"
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["seeds"] == [0] and "seed" not in prov and prov["data_path"] == str(data)
    return prov, (ckpt / "README.md").read_text()


def test_node_graph_pretrains_on_the_users_nodes_and_edges_csv(data_root, tmp_path):
    from fmzoo.graph.data.planetoid import load_planetoid

    g = load_planetoid("Cora", normalize_features=False)
    n = 300  # the first 300 Cora nodes and the edges among them
    keep = (g.edge_index < n).all(0)
    d = tmp_path / "mine"
    d.mkdir()
    nodes = pd.DataFrame(g.x[:n].numpy().astype(int), columns=[f"w{i}" for i in range(g.x.shape[1])])
    nodes.insert(0, "label", g.y[:n].numpy())
    nodes.insert(0, "id", [f"paper{i}" for i in range(n)])
    nodes.to_csv(d / "nodes.csv", index=False)
    e = g.edge_index[:, keep].numpy()
    pd.DataFrame({"src": [f"paper{i}" for i in e[0]], "dst": [f"paper{i}" for i in e[1]]}).to_csv(d / "edges.csv",
                                                                                                  index=False)
    prov, card = _pretrain(TINY["graphmae"], d, tmp_path)
    assert prov["epochs"] == 3 and prov["metrics"]["pretrain_epochs"] == 3
    assert not any(k.startswith("linear_probe") for k in prov["metrics"])  # no public split on the user's graph
    assert f"The user's graph {d} (nodes.csv + edges.csv): 300 nodes, {int(keep.sum())} directed edges" in card
    assert sorted(prov["data_sha256"]) == ["edges.csv", "nodes.csv"]


def test_molecules_pretrain_on_the_users_smiles_csv(data_root, tmp_path):
    esol = pd.read_csv(data_root / "graphs" / "moleculenet" / "delaney.csv").head(40)
    esol.rename(columns={"smiles": "SMILES"}).to_csv(tmp_path / "mine.csv", index=False)
    prov, card = _pretrain(TINY["graphmae-mol"], tmp_path / "mine.csv", tmp_path)
    m = prov["metrics"]
    assert (m["pretrain_molecules"], m["pretrain_epochs"], m["pretrain_steps"]) == (40, 1, 3)  # ceil(40 / 16) steps
    assert prov["training"]["steps"] == 3 and np.isfinite(m["train/loss"])
    assert f"The user's SMILES file {tmp_path / 'mine.csv'}: 40 molecules" in card


def test_molecules_csv_with_an_unparseable_row_names_it(data_root, tmp_path):
    pd.DataFrame({"smiles": ["CCO", "not-a-molecule", "c1ccccc1"]}).to_csv(tmp_path / "bad.csv", index=False)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(TINY["graphmae-mol"]))
    assert main(["pretrain", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--data",
                 str(tmp_path / "bad.csv"), "--no-progress"]) == 2


def test_graph_level_pretrains_on_the_users_tu_folder(data_root, tmp_path):
    src = data_root / "graphs" / "TUDataset" / "MUTAG" / "raw"
    gi = np.loadtxt(src / "MUTAG_graph_indicator.txt", dtype=np.int64)
    a = np.loadtxt(src / "MUTAG_A.txt", delimiter=",", dtype=np.int64)
    n_graphs = 40
    n_nodes = int((gi <= n_graphs).sum())  # the first 40 graphs (their nodes come first)
    d = tmp_path / "mine"
    d.mkdir()
    np.savetxt(d / "MINE_A.txt", a[(a <= n_nodes).all(1)], fmt="%d", delimiter=", ")
    np.savetxt(d / "MINE_graph_indicator.txt", gi[:n_nodes], fmt="%d")
    np.savetxt(d / "MINE_graph_labels.txt", np.loadtxt(src / "MUTAG_graph_labels.txt", dtype=np.int64)[:n_graphs], fmt="%d")
    np.savetxt(d / "MINE_node_labels.txt", np.loadtxt(src / "MUTAG_node_labels.txt", dtype=np.int64)[:n_nodes], fmt="%d")
    prov, card = _pretrain(TINY["graphmae-graph"], d, tmp_path)
    assert prov["training"]["steps"] == 3  # 40 graphs in batches of 16, 1 epoch
    assert 0 <= prov["metrics"]["svm_accuracy"] <= 1 and np.isfinite(prov["metrics"]["final_loss"])
    assert f"The user's TU dataset MINE ({d}): 40 graphs" in card
