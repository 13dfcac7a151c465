import shutil

import torch
from fmzoo.graph.data.tu import load_mutag
from fmzoo.graph.methods.graphmae_graph import graph_embeddings, pretrain_graphs
from fmzoo.graph.models.graphmae_graph import GraphMAEGIN


def test_mutag_matches_pyg(data_root, tmp_path):
    from torch_geometric.datasets import TUDataset

    graphs = load_mutag(data_root)
    assert len(graphs) == 188
    assert sum(g["x"].shape[0] for g in graphs) == 3371
    assert sum(g["edge_index"].shape[1] for g in graphs) == 7442
    assert sum(g["y"] for g in graphs) == 125
    shutil.copytree(data_root / "graphs" / "TUDataset" / "MUTAG" / "raw", tmp_path / "MUTAG" / "raw")
    ref = TUDataset(str(tmp_path), "MUTAG")
    for i in (0, 17, 187):
        assert torch.equal(ref[i].x, graphs[i]["x"])
        assert set(map(tuple, ref[i].edge_index.t().tolist())) == set(map(tuple, graphs[i]["edge_index"].t().tolist()))
        assert ref[i].edge_index.shape == graphs[i]["edge_index"].shape
        assert int(ref[i].y) == graphs[i]["y"]


def test_shipped_mutag_checkpoint_embeds(data_root):
    graphs = load_mutag(data_root)
    m = GraphMAEGIN.from_pretrained("fmzoo/graphmae-mutag")
    x, y = graph_embeddings(m, graphs[:20])
    assert x.shape == (20, 32) and torch.isfinite(torch.from_numpy(x)).all()


def test_graph_level_graphmae_learns(data_root):
    torch.manual_seed(0)
    graphs = load_mutag(data_root)[:64]
    m = GraphMAEGIN(7, num_hidden=16, num_layers=2)
    losses = pretrain_graphs(m, graphs, epochs=15, lr=5e-3)
    assert losses[-1] < 0.8 * losses[0]


def test_mutag_recipe_records_training(data_root, tmp_path):
    import json

    from fmzoo.core.pretrain import run_pretraining

    recipe = {"method": "graphmae-graph", "seed": 0, "threads": 1, "model": {"num_hidden": 8, "num_layers": 2}}
    ckpt = run_pretraining(recipe, tmp_path, {"max_epochs": 2})
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["seeds"] == [0] and "seed" not in prov and prov["epochs"] == 2
    training = prov["training"]
    assert training["steps"] == 2 * 3 and training["resumed"] is False  # 188 graphs in batches of 64, 2 epochs
    assert training["parts"] == [{"from_step": 0, "to_step": 6, "seconds": training["seconds"]}]
    assert isinstance(training["seconds"], float) and training["seconds"] >= 0  # may round to 0.0: a tiny run
