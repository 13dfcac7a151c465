"""Official chem-GIN releases (GraphMAE ``chem/init_weights/pretrained.pth``, pretrain-gnns ``chem/model_gin/*.pth``)
-> ``fmzoo.core.from_pretrained(PATH)`` -> the same node and graph embeddings as the reference architecture.

The reference is written here from the official code's structure (``chem/model.py``: ``GINConv(MessagePassing)`` with
self loops of bond type 4 and ``message = x_j + edge embedding``, ``GNN`` with ``x_embedding1/2``, ``gnns``,
``batch_norms``, ReLU on all but the last layer, JK "last"; ``GNN_graphpred`` mean pooling) with torch-geometric
layers, at the releases' real size (5 layers x 300), random weights, saved with ``torch.save(state_dict)`` as the
official scripts do; the inputs are real molecules (BBBP, RDKit-featurised)."""
import json
import os

import pytest
import torch
from fmzoo.core import CheckpointError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.weights import catalogue
from fmzoo.graph.data.molecules import load_moleculenet
from fmzoo.graph.models.gin import MolGIN
from fmzoo.graph.weights import OFFICIAL, ChemGINRelease
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import MessagePassing, global_mean_pool
from torch_geometric.utils import add_self_loops


class RefGINConv(MessagePassing):
    def __init__(self, emb_dim):
        super().__init__(aggr="add")
        self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.ReLU(), nn.Linear(2 * emb_dim, emb_dim))
        self.edge_embedding1 = nn.Embedding(6, emb_dim)
        self.edge_embedding2 = nn.Embedding(3, emb_dim)

    def forward(self, x, edge_index, edge_attr):
        edge_index, _ = add_self_loops(edge_index, num_nodes=x.size(0))
        loops = torch.zeros(x.size(0), 2, dtype=edge_attr.dtype)
        loops[:, 0] = 4  # the self-loop bond type
        edge_attr = torch.cat([edge_attr, loops], 0)
        return self.propagate(edge_index, x=x, edge_attr=self.edge_embedding1(edge_attr[:, 0]) +
                              self.edge_embedding2(edge_attr[:, 1]))

    def message(self, x_j, edge_attr):
        return x_j + edge_attr

    def update(self, aggr_out):
        return self.mlp(aggr_out)


class RefGNN(nn.Module):
    def __init__(self, num_layer=5, emb_dim=300):
        super().__init__()
        self.num_layer = num_layer
        self.x_embedding1 = nn.Embedding(120, emb_dim)
        self.x_embedding2 = nn.Embedding(3, emb_dim)
        self.gnns = nn.ModuleList([RefGINConv(emb_dim) for _ in range(num_layer)])
        self.batch_norms = nn.ModuleList([nn.BatchNorm1d(emb_dim) for _ in range(num_layer)])

    def forward(self, data):
        h = self.x_embedding1(data.x[:, 0]) + self.x_embedding2(data.x[:, 1])
        for layer in range(self.num_layer):
            h = self.batch_norms[layer](self.gnns[layer](h, data.edge_index, data.edge_attr))
            if layer < self.num_layer - 1:
                h = torch.relu(h)
        return h


def reference(seed=0) -> RefGNN:
    torch.manual_seed(seed)
    ref = RefGNN()
    with torch.no_grad():  # trained-looking batch norms (the defaults are the identity)
        for bn in ref.batch_norms:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.1)
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
            bn.num_batches_tracked.fill_(12345)
    return ref.eval()


@pytest.fixture(scope="module")
def molecules(data_root):
    ds = load_moleculenet("bbbp", max_rows=128)
    return Batch.from_data_list(ds.to_pyg())


@pytest.mark.parametrize("layout", ["graphmae", "pretrain-gnns-legacy", "graphpred"])
def test_release_matches_the_reference(layout, molecules, tmp_hub, tmp_path):
    ref = reference()
    sd = ref.state_dict()
    path = tmp_path / "pretrained.pth"
    if layout == "graphmae":  # chem/pretraining.py: torch.save(model.state_dict(), ...)
        torch.save(sd, path)
    elif layout == "pretrain-gnns-legacy":  # the 2019 files: torch 1.0's legacy (non-zip) serialisation
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    else:  # a fine-tuned GNN_graphpred: encoder under gnn., the head dropped
        torch.save({**{f"gnn.{k}": v for k, v in sd.items()}, "graph_pred_linear.weight": torch.zeros(1, 300),
                    "graph_pred_linear.bias": torch.zeros(1)}, path)
    assert ChemGINRelease().detect(path)
    model = from_pretrained(path)
    assert isinstance(model, MolGIN) and (model.num_layer, model.emb_dim) == (5, 300)
    assert sum(p.numel() for p in model.parameters()) == 1_857_900  # the catalogue's 1.86M
    assert "release" in model.input_spec
    with torch.no_grad():
        nodes_ref = ref(molecules)
        graphs_ref = global_mean_pool(nodes_ref, molecules.batch)
        nodes, graphs = model(molecules), model.embed(molecules)
    assert nodes.shape == (molecules.num_nodes, 300) and graphs.shape == (128, 300)
    assert (nodes - nodes_ref).abs().max() <= 1e-5
    assert (graphs - graphs_ref).abs().max() <= 1e-5
    (imported,) = (tmp_hub / "imported" / "graphmae-chem-gin").iterdir()
    prov = json.loads((imported / "provenance.json").read_text())
    assert prov["imported_from"]["files"][0]["name"] == "pretrained.pth"


def test_pickle_with_code_is_refused(tmp_hub, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    sd = reference().state_dict()
    sd["x_embedding1.weight"] = Evil()
    torch.save(sd, tmp_path / "pretrained.pth")
    assert ChemGINRelease().detect(tmp_path / "pretrained.pth")  # by key names, without unpickling
    with pytest.raises(CheckpointError, match="does not unpickle"):
        from_pretrained(tmp_path / "pretrained.pth")
    assert not marker.exists()


def test_other_gnn_types_and_foreign_files_are_not_taken(tmp_path):
    ref = reference().state_dict()
    gat = {k.replace("mlp.0", "weight_linear"): v for k, v in ref.items() if "mlp.2" not in k}  # model_architecture/gat_*
    torch.save(gat, tmp_path / "gat.pth")
    assert not ChemGINRelease().detect(tmp_path / "gat.pth")
    torch.save({"x_embedding1.weight": torch.zeros(120, 8)}, tmp_path / "partial.pth")
    assert not ChemGINRelease().detect(tmp_path / "partial.pth")
    torch.save(gat | {"gnns.0.mlp.0.weight": torch.zeros(600, 300), "gnns.0.edge_embedding1.weight": torch.zeros(6, 300)},
               tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match="unexpected keys"):
        ChemGINRelease().convert(tmp_path / "mixed.pth")


def test_catalogue_entries():
    entries = {e.id: e for e in OFFICIAL}
    assert set(entries) <= set(catalogue())
    gm = entries["THUDM/graphmae-chem"]
    assert (gm.format, gm.license, gm.hf_repo, gm.files) == ("graphmae-chem-gin", "MIT", None,
                                                              ("chem/init_weights/pretrained.pth",))
    hu = [e for e in OFFICIAL if e.id.startswith("snap-stanford/")]
    assert len(hu) == 9 and all(e.files[0].startswith("chem/model_gin/") and e.license == "MIT" for e in hu)
    with pytest.raises(CheckpointError, match="fmzoo import"):  # not on the HF Hub: the user imports the file
        from_pretrained("THUDM/graphmae-chem")


def test_import_then_finetune_cli(molecules, tmp_hub, tmp_path):
    ref = reference()
    torch.save(ref.state_dict(), tmp_path / "pretrained.pth")
    assert main(["import", str(tmp_path / "pretrained.pth"), "--id", "THUDM/graphmae-chem",
                 "--out", str(tmp_path / "ck")]) == 0
    card = (tmp_path / "ck" / "README.md").read_text()
    assert "license: mit" in card.lower() and "THUDM/graphmae-chem" in card
    with torch.no_grad():
        assert (from_pretrained(tmp_path / "ck").embed(molecules) -
                global_mean_pool(ref(molecules), molecules.batch)).abs().max() <= 1e-5
    out = tmp_path / "out"
    assert main(["finetune", str(tmp_path / "pretrained.pth"), "--seeds", "0", "--n-labelled", "50", "--epochs", "1",
                 "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    result = json.loads((out / "finetune.json").read_text())
    assert result["task"] == "bbbp" and result["rows"][0]["init"] == "pretrained"
    assert all(m["n"] == 1 for m in result["rows"][0]["metrics"].values())
