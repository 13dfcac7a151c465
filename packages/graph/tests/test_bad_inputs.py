"""Bad inputs (issue "reliability"): each is refused with fmzoo.core.InputSpecError whose message says what was
expected and what was given, or handled as documented (self loops, repeated edges); a refused ``fmzoo evaluate --data``
exits 2 and writes nothing. Tensors go to the models directly; files go through the CLI."""

import re

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.cli import main
from fmzoo.graph.data.molecules import collate, smiles_to_graph
from fmzoo.graph.data.tu import load_tu
from fmzoo.graph.models.gin import MolGIN
from fmzoo.graph.models.graphmae import GraphMAE
from fmzoo.graph.models.graphmae_graph import GraphMAEGIN
from fmzoo.graph.spec import DuplicateEdgeWarning
from torch_geometric.data import Data

F = 6  # node features of the tiny models
RING = torch.tensor([[0, 1, 2, 3, 4, 1, 2, 3, 4, 0], [1, 2, 3, 4, 0, 0, 1, 2, 3, 4]])  # 5 nodes, undirected cycle


@pytest.fixture(scope="module", params=["GraphMAE", "GraphMAEGIN"])
def node_model(request):
    torch.manual_seed(0)
    if request.param == "GraphMAE":
        return GraphMAE(F, num_hidden=8, nhead=2).eval()
    return GraphMAEGIN(F, num_hidden=8, num_layers=2).eval()


def _x(n=5):
    return torch.rand(n, F)


def _nan(x, node=2):
    x = x.clone()
    x[node, 1] = float("nan")
    return x


# name -> (x, edge_index, regex: what was expected ... what was given)
BAD_GRAPHS = {
    "edge to a missing node": (_x(), torch.tensor([[0, 1], [1, 9]]),
                               r"edge 1 \(1 -> 9\) refers to an id outside 0\.\.4; expected node ids of the 5 rows"),
    "negative node id": (_x(), torch.tensor([[0, -1], [1, 2]]), r"edge 1 \(-1 -> 2\) refers to an id outside 0\.\.4"),
    "edge_index [E, 2]": (_x(), RING.t().contiguous(),
                          r"expected edge_index as a \[2, num_edges\] tensor .*got shape \(10, 2\)"),
    "edge_index 1-D": (_x(), torch.arange(4), r"expected edge_index as a \[2, num_edges\] tensor .*got shape \(4,\)"),
    "float edge_index": (_x(), RING.float(), r"expected edge_index of integer node ids \(torch\.long\), got torch\.float32"),
    "wrong feature width": (torch.rand(5, F + 3), RING, rf"expects {F} node features \(input_spec num_features\), got {F + 3}"),
    "NaN feature": (_nan(_x()), RING, r"expected finite node features, got 1 NaN and 0 infinite values \(first at node 2\)"),
    "inf feature": (_x().fill_(float("inf")), RING, r"expected finite node features, got 0 NaN and 30 infinite"),
    "integer features": (_x().long(), RING, r"expected floating-point node features, got torch\.int64"),
    "1-D features": (torch.rand(5), RING, r"expected node features x as a 2-D tensor .*got shape \(5,\)"),
    "numpy features": (np.random.rand(5, F), RING, r"expected node features x as a 2-D tensor .*got ndarray"),
    "empty graph": (torch.zeros(0, F), torch.zeros(2, 0, dtype=torch.long),
                    r"expected a graph with at least one node, got x of shape \(0, 6\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRAPHS))
def test_bad_graph_given_to_a_node_model(node_model, case):
    x, ei, match = BAD_GRAPHS[case]
    with pytest.raises(InputSpecError, match=match):
        node_model.embed(x, ei)


def test_graph_data_without_node_features(node_model):
    name = type(node_model).__name__
    with pytest.raises(InputSpecError, match=rf"{name}\.embed: expected the tensors \(x, edge_index\) .*got a Data "
                                             r"without x"):
        node_model.embed(Data(edge_index=RING, num_nodes=5))
    with pytest.raises(InputSpecError, match=r"got a Tensor without edge_index"):
        node_model.embed(_x())


def test_edges_gat_needs_but_gin_does_not():
    """GraphMAE's GAT refuses a graph without edges between nodes; the GIN embeds isolated nodes (self loops only)."""
    torch.manual_seed(0)
    gat, gin = GraphMAE(F, num_hidden=8, nhead=2).eval(), GraphMAEGIN(F, num_hidden=8, num_layers=2).eval()
    loops = torch.arange(5).repeat(2, 1)
    for ei in (torch.zeros(2, 0, dtype=torch.long), loops):
        with pytest.raises(InputSpecError, match=r"expected edges between nodes, got no edges \(besides self loops\) "
                                                 r"among 5 nodes"):
            gat.embed(_x(), ei)
    x = torch.eye(F)[:5]
    assert torch.equal(gin(x, torch.zeros(2, 0, dtype=torch.long)), gin(x, loops))  # both: one self loop per node


def test_self_loops_and_repeated_edges(node_model):
    """Self loops in the input change nothing (the models drop them and add one per node); a repeated edge counts
    once per listing (parallel edges, as DGL / torch_geometric), so it changes the result and warns."""
    x = torch.eye(F)[:5]
    base = node_model.embed(x, RING)
    with_loops = torch.cat([RING, torch.tensor([[0, 3], [0, 3]])], 1)
    assert torch.allclose(node_model.embed(x, with_loops), base, atol=1e-6)
    with pytest.warns(DuplicateEdgeWarning, match=r"2 of 12 edges repeat an earlier \(source, target\) pair.*"
                                                  r"torch\.unique\(edge_index, dim=1\)"):
        doubled = node_model.embed(x, torch.cat([RING, RING[:, :2]], 1))
    assert not torch.allclose(doubled, base, atol=1e-4)


@pytest.fixture(scope="module")
def mol():
    torch.manual_seed(0)
    return MolGIN(num_layer=2, emb_dim=16).eval(), collate([smiles_to_graph("CCO"), smiles_to_graph("c1ccccc1")])


@pytest.mark.parametrize("change, match", [
    (lambda b: {**b, "edge_index": b["edge_index"].float()}, r"expected edge_index of integer atom ids"),
    (lambda b: {**b, "edge_index": b["edge_index"] + 100}, r"refers to an id outside 0\.\.8; expected atom ids"),
    (lambda b: {**b, "edge_attr": b["edge_attr"].float()},
     r"expected edge_attr as an integer tensor \[num_edges=16, 2\] \(bond type, direction\), got shape \(16, 2\) "
     r"torch\.float32"),
    (lambda b: {**b, "edge_attr": b["edge_attr"][:3]}, r"expected edge_attr .*got shape \(3, 2\)"),
    (lambda b: {**b, "x": b["x"].float()}, r"expected an integer tensor \[num_atoms, 2\] .*torch\.float32"),
    (lambda b: {**b, "x": b["x"].numpy()}, r"expected an integer tensor \[num_atoms, 2\] .*got ndarray"),
    (lambda b: {**b, "x": b["x"] + torch.tensor([200, 0])},
     r"expected atom type in \[0, 120\) and chirality in \[0, 3\), got types 205\.\."),
    (lambda b: {**b, "edge_attr": b["edge_attr"] - 5}, r"expected bond type in \[0, 6\) and direction in \[0, 3\)"),
    (lambda b: {**b, "x": b["x"][:0], "edge_index": b["edge_index"][:, :0], "edge_attr": b["edge_attr"][:0]},
     r"expected at least one atom, got none"),
])
def test_bad_molecule_batch(mol, change, match):
    model, batch = mol
    b = change(batch)
    with pytest.raises(InputSpecError, match=match):
        model(b["x"], b["edge_index"], b["edge_attr"])


def test_molecule_data_without_atoms_or_bonds_and_invalid_smiles(mol):
    model, batch = mol
    with pytest.raises(InputSpecError, match=r"MolGIN: expected the tensors \(x, edge_index\) .*without x"):
        model(Data(edge_index=batch["edge_index"], edge_attr=batch["edge_attr"]))
    with pytest.raises(InputSpecError, match="edge_attr"):
        model(Data(x=batch["x"], edge_index=batch["edge_index"]))
    with pytest.raises(InputSpecError, match=r"row 1: invalid SMILES 'C1CC' \(RDKit cannot parse it\)"):
        model.embed(["CCO", "C1CC"])
    with pytest.raises(InputSpecError, match=r"row 0: empty or non-string SMILES ''"):
        model.embed([""])


# ----------------------------------------------------------------------------- files, through the CLI


def _refused(tmp_path, capsys, model, data, match):
    out = tmp_path / "out"
    before = sorted(p for p in data.parent.rglob("*"))
    assert main(["evaluate", model, "--data", str(data), "--seeds", "0", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fmzoo evaluate: error:" in err and re.search(match, err), err
    assert not out.exists() and sorted(p for p in data.parent.rglob("*")) == before


MOLS = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "C1CCCCC1", "c1ccncc1", "C1CCOC1", "c1ccc2ccccc2c1", "CC1CCCC1",
        "O=C1CCCCC1", "c1ccsc1"]

BAD_CSVS = {
    "no label column": ("smiles,a,b\n" + "".join(f"{s},1,2\n" for s in MOLS),
                        r"name the label column 'label' \(columns: \['smiles', 'a', 'b'\]\)"),
    "no SMILES column": ("name,label\n" + "".join(f"mol{i},{i % 2}\n" for i in range(10)),
                         r"column 'name' \(no column is named 'smiles', so the first column is read as SMILES\), row 0: "
                         r"invalid SMILES 'mol0'"),
    "invalid SMILES": ("smiles,label\n" + "".join(f"{s},{i % 2}\n" for i, s in enumerate(MOLS[:7] + ["C1CC"])),
                       r"column 'smiles', row 7: invalid SMILES 'C1CC' \(RDKit cannot parse it\)"),
    "header only": ("smiles,label\n", r"expected a CSV file with a SMILES column .*got no rows"),
    "empty label column": ("smiles,label\n" + "".join(f"{s},\n" for s in MOLS),
                           r"the label column 'label' is empty; expected a label"),
    "infinite label": ("smiles,label\n" + "".join(f"{s},{0.5 + i}\n" for i, s in enumerate(MOLS[:-1])) + "CCN,inf\n",
                       r"label inf of molecule 'CCN'; expected finite numbers"),
    "nothing to test on": ("smiles,label\n" + "".join(f"C{'C' * i}O,{i % 2}\n" for i in range(10)),
                           r"the split leaves 0 molecule\(s\) to train on and 10 to test on .*expected both parts non-empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_smiles_csv(tmp_path, tmp_hub, capsys, case):
    text, match = BAD_CSVS[case]
    data = tmp_path / "data" / "mols.csv"
    data.parent.mkdir()
    data.write_text(text)
    _refused(tmp_path, capsys, "fmzoo/graphmae-mol-gin", data, match)


def _node_dir(root, features=1433, edges="", nodes=None):
    root.mkdir(parents=True)
    head = "id,label," + ",".join(f"w{j}" for j in range(features)) + "\n"
    rows = nodes if nodes is not None else "".join(
        f"n{i},{i % 2}," + ",".join("1" if j == i else "0" for j in range(features)) + "\n" for i in range(12))
    (root / "nodes.csv").write_text(head + rows)
    ring = "".join(f"n{i},n{(i + 1) % 12}\n" for i in range(12))
    (root / "edges.csv").write_text("src,dst\n" + (ring if edges is None else ring + edges))
    return root


@pytest.mark.parametrize("kwargs, match", [
    ({"edges": "n3,zz\n"}, r"edges\.csv row 12: dst 'zz' is not an id of nodes\.csv"),
    ({"edges": "ghost,n1\n"}, r"edges\.csv row 12: src 'ghost' is not an id of nodes\.csv"),
    ({"features": 12}, r"the checkpoint expects 1433 node features \(input_spec num_features\), got 12"),
    ({"nodes": "".join(f"n{i},{i % 2}," + ",".join("nan" if i == j == 3 else "0" for j in range(1433)) + "\n"
                       for i in range(12))},
     r"expected finite node features, got 1 NaN and 0 infinite values \(first at node 3\)"),
    ({"nodes": ""}, r"nodes\.csv has a header and no rows; expected one row per node"),
])
def test_bad_node_files(tmp_path, tmp_hub, capsys, kwargs, match):
    data = _node_dir(tmp_path / "data" / "graph", **kwargs)
    _refused(tmp_path, capsys, "fmzoo/graphmae-cora", data, match)


def _tu(root, files):
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / f"FOO_{name}.txt").write_text(text)
    return root


GOOD_TU = {"A": "1, 2\n2, 1\n3, 4\n4, 3\n", "graph_indicator": "1\n1\n2\n2\n", "graph_labels": "1\n-1\n",
           "node_labels": "0\n1\n1\n0\n"}


@pytest.mark.parametrize("change, match", [
    ({"graph_indicator": None, "node_labels": None},
     r"TU dataset FOO in .*: missing FOO_graph_indicator\.txt, FOO_node_labels\.txt; expected the TUDataset files "
     r"FOO_A\.txt, FOO_graph_indicator\.txt, FOO_graph_labels\.txt, FOO_node_labels\.txt"),
    ({"graph_indicator": "2\n2\n1\n1\n"}, r"FOO_graph_indicator\.txt line 3 puts a node of graph 1 after one of graph 2; "
                                          r"expected the nodes listed graph by graph"),
    ({"graph_labels": "1\n-1\n1\n"}, r"names graphs \[1, 2\] \(2 with nodes\) and FOO_graph_labels\.txt holds 3 labels; "
                                     r"expected every graph 1\.\.3 to have nodes and one label"),
    ({"A": "1, 2\n2, 3\n"}, r"FOO_A\.txt line 2 joins node 2 \(graph 1\) to node 3 \(graph 2\); expected edges within "
                            r"one graph"),
    ({"A": "1, 2\n2, 9\n"}, r"an edge of FOO_A\.txt refers to node 9; expected node ids 1\.\.4"),
    ({"node_labels": "0\n1\n"}, r"2 node labels for 4 nodes; expected one line of FOO_node_labels\.txt per line"),
])
def test_bad_tu_folder(tmp_path, change, match):
    files = {k: v for k, v in {**GOOD_TU, **change}.items() if v is not None}
    root = _tu(tmp_path / "tu", files)
    with pytest.raises(InputSpecError, match=match):
        load_tu("FOO", root)


def test_good_tu_folder_and_a_refused_one_through_the_cli(tmp_path, tmp_hub, capsys):
    graphs = load_tu("FOO", _tu(tmp_path / "good", GOOD_TU))
    assert [g["edge_index"].tolist() for g in graphs] == [[[0, 1], [1, 0]], [[0, 1], [1, 0]]]
    assert [g["y"] for g in graphs] == [1, 0]
    data = _tu(tmp_path / "data" / "tu", {k: v for k, v in GOOD_TU.items() if k != "graph_labels"})
    _refused(tmp_path, capsys, "fmzoo/graphmae-mutag", data, r"missing FOO_graph_labels\.txt; expected the TUDataset")
