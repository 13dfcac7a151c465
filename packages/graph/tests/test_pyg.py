"""torch-geometric interoperability on real data: the readers' ``Data`` equal PyG's own readers, and every graph
model takes a ``Data`` / ``Batch`` and returns exactly what the tensor call signatures return."""
import shutil

import fmzoo.graph
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.graph import GraphMAE, GraphMAEGIN, MolGIN
from fmzoo.graph.data.molecules import collate, load_moleculenet, smiles_to_data, smiles_to_graph
from fmzoo.graph.data.planetoid import load_cora
from fmzoo.graph.data.tu import load_mutag
from fmzoo.graph.models.graphmae_graph import collate_tu
from fmzoo.graph.pyg import graphs_to_batch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import global_add_pool, global_mean_pool


def test_top_level_imports():
    from fmzoo.graph.models import gin, graphmae, graphmae_graph

    assert (GraphMAE, MolGIN, GraphMAEGIN) == (graphmae.GraphMAE, gin.MolGIN, graphmae_graph.GraphMAEGIN)
    assert {"GraphMAE", "MolGIN", "GraphMAEGIN"} <= set(fmzoo.graph.__all__)
    with pytest.raises(AttributeError):
        fmzoo.graph.NotAModel  # noqa: B018


def test_cora_data_and_node_embeddings(data_root):
    g, d = load_cora(), load_cora(as_data=True)
    assert isinstance(d, Data) and d.num_nodes == 2708 and d.num_node_features == 1433
    for k in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(d, k), getattr(g, k)), k
    model = from_pretrained("fmzoo/graphmae-cora")
    with torch.no_grad():
        ref = model.embed(g.x, g.edge_index)
        assert torch.equal(model.embed(d), ref) and torch.equal(model(d), ref)
    assert ref.shape == (2708, 512)
    # a Batch of two copies: node rows aligned with batch.x, each copy embedded as alone (attention stays in-graph)
    with torch.no_grad():
        two = model.embed(Batch.from_data_list([d, d]))
    assert two.shape == (5416, 512) and (two[:2708] - ref).abs().max() < 1e-5 and (two[2708:] - ref).abs().max() < 1e-5


def test_mutag_data_matches_pyg_tudataset_and_graph_embeddings(data_root, tmp_path):
    from torch_geometric.datasets import TUDataset

    ours = load_mutag(as_data=True)
    shutil.copytree(data_root / "graphs" / "TUDataset" / "MUTAG" / "raw", tmp_path / "MUTAG" / "raw")
    ref = TUDataset(str(tmp_path), "MUTAG")
    assert len(ours) == len(ref) == 188
    for a, b in zip(ours, ref, strict=True):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert set(map(tuple, a.edge_index.t().tolist())) == set(map(tuple, b.edge_index.t().tolist()))
    model = from_pretrained("fmzoo/graphmae-mutag")
    c = collate_tu(load_mutag())
    with torch.no_grad():
        ref_emb = model.embed(c["x"], c["edge_index"], c["batch"], c["num_graphs"])
        batch = Batch.from_data_list(ours)
        assert torch.equal(model.embed(batch), ref_emb) and ref_emb.shape == (188, 32)
        assert torch.allclose(global_add_pool(model(batch), batch.batch), ref_emb, atol=1e-5)
        loaded = torch.cat([model.embed(b) for b in DataLoader(ours, batch_size=50)])
        assert (loaded - ref_emb).abs().max() < 1e-5
        assert torch.allclose(model.embed(ours[3]), ref_emb[3:4], atol=1e-5)  # one Data: one row


def test_molecules_data_and_graph_embeddings(data_root):
    ds = load_moleculenet("bbbp", max_rows=96)
    datas = ds.to_pyg()
    assert len(datas) == len(ds) and datas[0].smiles == ds.smiles[0] and datas[0].y.shape == (1, 1)
    g = smiles_to_graph(ds.smiles[5])
    d = smiles_to_data(ds.smiles[5])
    assert all(torch.equal(getattr(d, k), g[k]) for k in ("x", "edge_index", "edge_attr"))
    model = from_pretrained("fmzoo/graphmae-mol-gin")
    c = collate(ds.graphs)
    batch = Batch.from_data_list(datas)
    assert torch.equal(batch.edge_index, c["edge_index"]) and torch.equal(batch.batch, c["batch"])
    with torch.no_grad():
        nodes = model(c["x"], c["edge_index"], c["edge_attr"])
        ref = model.pool(nodes, c["batch"], c["num_graphs"])
        assert torch.equal(model(batch), nodes)
        assert torch.equal(model.embed(batch), ref) and ref.shape == (len(ds), 300)
        assert torch.allclose(global_mean_pool(nodes, batch.batch), ref, atol=1e-6)
        assert torch.allclose(model.embed(ds.smiles), ref, atol=1e-6)
        assert torch.allclose(model.embed(graphs_to_batch(ds.graphs)), ref, atol=1e-6)
        loaded = torch.cat([model.embed(b) for b in DataLoader(datas, batch_size=32)])
        assert (loaded - ref).abs().max() < 1e-5
    with pytest.raises(InputSpecError, match="edge_attr"):
        model(Data(x=d.x, edge_index=d.edge_index))
    with pytest.raises(InputSpecError, match="Data / Batch"):
        model.embed(torch.zeros(3, 2, dtype=torch.long))
