"""``features="ogb"``: the 9 atom / 3 bond ids of ``torch_geometric.utils.from_smiles``, equal on real MoleculeNet
molecules; and the models trained on Hu et al.'s features (MolGIN: the shipped checkpoint, the official chem GINs)
refuse them with an InputSpecError naming the featurisation they expect."""
import json
import shutil

import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.core.hub import read_config
from fmzoo.graph.data.molecules import (
    OGB_ATOM_VOCAB,
    OGB_BOND_VOCAB,
    featurize,
    load_moleculenet,
    moleculenet_dir,
    read_csv,
    smiles_to_data,
    smiles_to_graph,
)
from fmzoo.graph.models.gin import MolGIN
from fmzoo.graph.plugin import plugin
from fmzoo.graph.spec import molecule_features
from fmzoo.graph.weights import ChemGINRelease
from torch_geometric.data import Batch, Data
from torch_geometric.utils import from_smiles
from torch_geometric.utils.smiles import e_map, x_map

KEYS = ("x", "edge_index", "edge_attr")
HU_REFUSAL = r"MolGIN takes Hu et al\. 2020 features \(input_spec features='hu'.*got the 'ogb' featurisation"


def test_vocabularies_are_torch_geometrics():
    assert list(OGB_ATOM_VOCAB) == list(x_map) and list(OGB_BOND_VOCAB) == list(e_map)
    for ours, theirs in ((OGB_ATOM_VOCAB, x_map), (OGB_BOND_VOCAB, e_map)):
        for k in theirs:
            assert list(ours[k]) == list(theirs[k]), k


@pytest.fixture(scope="module")
def bbbp200(data_root):
    return read_csv(moleculenet_dir(data_root) / "BBBP.csv")["smiles"].iloc[:200].tolist()


def test_ogb_features_equal_from_smiles_on_bbbp(bbbp200):
    graphs, kept = featurize(bbbp200, features="ogb")
    assert kept == list(range(200))
    refs = [from_smiles(s) for s in bbbp200]
    for s, g, ref in zip(bbbp200, graphs, refs, strict=True):
        for k in KEYS:
            assert g[k].dtype == getattr(ref, k).dtype and torch.equal(g[k], getattr(ref, k)), (s, k)
    x, ea = torch.cat([r.x for r in refs]), torch.cat([r.edge_attr for r in refs])
    # the sample covers what differs between molecules: charges, aromatic rings, R/S centres, E/Z bonds, salts
    assert (x[:, 3] != 5).sum() >= 10 and x[:, 7].sum() >= 1000 and ((x[:, 1] == 1) | (x[:, 1] == 2)).sum() >= 50
    assert (ea[:, 1] >= 2).sum() >= 10 and sum("." in s for s in bbbp200) >= 10
    d = smiles_to_data(bbbp200[7], features="ogb")
    assert isinstance(d, Data) and d.smiles == bbbp200[7]
    assert all(torch.equal(getattr(d, k), getattr(refs[7], k)) for k in KEYS)
    # the default stays Hu et al.'s 2 + 2 ids
    hu = smiles_to_graph(bbbp200[7])
    assert hu["x"].shape[1] == 2 and hu["edge_attr"].shape[1] == 2


def test_load_moleculenet_ogb_and_as_data(data_root):
    ds = load_moleculenet("bace", root=data_root, max_rows=40, features="ogb")
    assert ds.features == "ogb" and load_moleculenet("bace", root=data_root, max_rows=2).features == "hu"
    datas = load_moleculenet("bace", root=data_root, max_rows=40, features="ogb", as_data=True)
    assert len(datas) == len(ds) == 40 and all(isinstance(d, Data) for d in datas)
    for d, s in zip(datas, ds.smiles, strict=True):
        ref = from_smiles(s)
        assert d.smiles == s and d.y.shape == (1, 1) and all(torch.equal(getattr(d, k), getattr(ref, k)) for k in KEYS)


def test_values_outside_the_tables_and_bad_option():
    with pytest.raises(ValueError):  # what from_smiles does ...
        from_smiles("[Fe+7]")
    with pytest.raises(InputSpecError, match=r"atom 0 \(Fe\) has formal_charge 7, outside the 'ogb' .*\[-5\.\.6\]"):
        smiles_to_graph("[Fe+7]", features="ogb")  # ... and what we do
    with pytest.raises(InputSpecError, match=r"row 1: .*atom 0 \(W\) has degree 11"):
        featurize(["CCO", "[W](C)(C)(C)(C)(C)(C)(C)(C)(C)(C)C"], features="ogb")
    graphs, kept = featurize(["CCO", "[N-6]", "C1CC"], strict=False, features="ogb")
    assert kept == [0] and graphs[0]["x"].shape == (3, 9)
    with pytest.raises(InputSpecError, match=r"features='pyg': expected one of 'hu' \| 'ogb'"):
        featurize(["CCO"], features="pyg")
    with pytest.raises(InputSpecError, match=r"features='OGB': expected one of"):
        load_moleculenet("bbbp", features="OGB")


def test_hu_models_refuse_ogb_input(tmp_path, bbbp200):
    shipped = from_pretrained("fmzoo/graphmae-mol-gin")
    spec = read_config(plugin().checkpoints_dir / "graphmae-mol-gin")["input_spec"]
    assert "features" not in spec and molecule_features(spec) == "hu"  # saved before the key: means "hu"
    torch.manual_seed(0)
    torch.save(MolGIN().state_dict(), tmp_path / "pretrained.pth")  # the official chem GIN key layout
    official = ChemGINRelease().convert(tmp_path / "pretrained.pth")
    assert official.input_spec["features"] == "hu" and MolGIN(2, 8).input_spec["features"] == "hu"
    ogb = Batch.from_data_list([from_smiles(s) for s in bbbp200[:8]])
    ours = Batch.from_data_list([smiles_to_data(s, features="ogb") for s in bbbp200[:8]])
    for model in (shipped.eval(), official.eval()):
        for batch in (ogb, ours):
            with pytest.raises(InputSpecError, match=HU_REFUSAL):
                model.embed(batch)
            with pytest.raises(InputSpecError, match=HU_REFUSAL):
                model(batch.x, batch.edge_index, batch.edge_attr)
        with torch.no_grad():  # the same molecules in Hu et al.'s features (and as SMILES) still work
            hu = Batch.from_data_list([smiles_to_data(s) for s in bbbp200[:8]])
            assert torch.allclose(model.embed(hu), model.embed(bbbp200[:8]), atol=1e-6)


def test_spec_naming_another_featurisation_is_refused(tmp_path):
    model = MolGIN(num_layer=2, emb_dim=8)
    path = model.save_pretrained(tmp_path / "ck")
    assert json.loads((path / "config.json").read_text())["input_spec"]["features"] == "hu"
    shutil.copytree(path, tmp_path / "old")  # a checkpoint saved before the key existed loads, as "hu"
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["input_spec"]["features"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert molecule_features(MolGIN.from_pretrained(tmp_path / "old").input_spec) == "hu"
    config["input_spec"]["features"] = "ogb"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputSpecError, match=r"input_spec\['features'\]: expected 'hu' \(Hu et al\. 2020 ids"):
        MolGIN.from_pretrained(path)
