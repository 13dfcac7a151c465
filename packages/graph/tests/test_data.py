import pickle
import shutil

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.graph.data.molecules import featurize, load_moleculenet, scaffold_split, smiles_to_graph
from fmzoo.graph.data.planetoid import load_cora, safe_load_pickle


@pytest.fixture(scope="module")
def cora(data_root):
    return load_cora(data_root)


def test_cora_shapes_and_split(cora):
    assert cora.x.shape == (2708, 1433)
    assert cora.edge_index.shape == (2, 10556)
    assert (cora.edge_index[0] != cora.edge_index[1]).all()
    assert int(cora.train_mask.sum()) == 140 and int(cora.val_mask.sum()) == 500 and int(cora.test_mask.sum()) == 1000
    assert not (cora.train_mask & cora.test_mask).any()
    assert cora.num_classes == 7
    assert torch.allclose(cora.x.sum(1), torch.ones(2708), atol=1e-5)  # NormalizeFeatures
    nnz = (cora.x > 0).float().mean().item()
    assert 0.012 < nnz < 0.014  # 1.3 % non-zero bag of words


def test_cora_matches_pyg_reader(cora, data_root, tmp_path):
    import torch_geometric.transforms as T
    from torch_geometric.datasets import Planetoid

    raw = data_root / "graphs" / "planetoid" / "Cora" / "raw"
    shutil.copytree(raw, tmp_path / "Cora" / "raw")
    ref = Planetoid(str(tmp_path), "Cora", transform=T.NormalizeFeatures())[0]
    assert torch.allclose(ref.x, cora.x, atol=1e-6)
    assert torch.equal(ref.y, cora.y)
    assert torch.equal(ref.train_mask, cora.train_mask) and torch.equal(ref.test_mask, cora.test_mask)
    a = set(map(tuple, ref.edge_index.t().tolist()))
    b = set(map(tuple, cora.edge_index.t().tolist()))
    assert a == b


def test_restricted_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, ("/nonexistent",))

    p = tmp_path / "ind.cora.x"
    p.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(InputSpecError, match="shutil"):
        safe_load_pickle(p)


def test_truncated_planetoid_file(tmp_path, data_root):
    src = data_root / "graphs" / "planetoid" / "Cora" / "raw" / "ind.cora.x"
    p = tmp_path / "ind.cora.x"
    p.write_bytes(src.read_bytes()[:200])
    with pytest.raises(InputSpecError, match="cannot read"):
        safe_load_pickle(p)


def test_smiles_features():
    g = smiles_to_graph("c1ccccc1O")
    assert g["x"].shape == (7, 2) and g["x"][0, 0] == 5  # carbon: atomic number 6 -> index 5
    assert g["edge_index"].shape == (2, 14)
    assert set(g["edge_attr"][:, 0].tolist()) == {0, 3}  # single + aromatic
    ion = smiles_to_graph("[Na+].[Cl-]")  # no bonds is a valid molecule
    assert ion["edge_index"].shape == (2, 0)


def test_invalid_smiles_names_row():
    with pytest.raises(InputSpecError, match=r"row 2: invalid SMILES 'C1CC\(\(C'"):
        featurize(["CCO", "c1ccccc1", "C1CC((C"])
    with pytest.raises(InputSpecError, match="row 1: empty"):
        featurize(["CCO", ""])
    with pytest.raises(InputSpecError, match="row 0: .*atomic number 0"):
        featurize(["*CC"])
    graphs, kept = featurize(["CCO", "not a smiles", "CC"], strict=False)
    assert kept == [0, 2] and len(graphs) == 2


def test_moleculenet_bace_and_scaffold_split(data_root):
    ds = load_moleculenet("bace", root=data_root)
    assert len(ds) == 1513 and ds.y.shape == (1513, 1)
    tr, va, te = scaffold_split(ds.smiles, scaffolds=ds.scaffolds)
    assert len(tr) + len(va) + len(te) == len(ds)
    assert abs(len(tr) - 0.8 * len(ds)) < 0.02 * len(ds)
    sc = np.array(ds.scaffolds)
    assert not set(sc[tr]) & set(sc[te])  # scaffolds never cross the split
    assert not set(sc[tr]) & set(sc[va])
