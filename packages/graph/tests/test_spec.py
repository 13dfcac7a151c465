"""Input specs of the graph models (fmzoo.core.spec.InputSpec): every model class declares one, every shipped checkpoint
and the imported official chem GIN carry a spec that passes it, and a broken spec (a missing key, a wrong type, a rule
of the class) is refused when saving and when loading, with a message naming the key."""

import json

import pytest
import torch
from fmzoo.core import CheckpointError, InputSpecError, from_pretrained, shipped_checkpoints
from fmzoo.core.hub import read_config
from fmzoo.graph.models.gin import MolGIN
from fmzoo.graph.models.graphmae import GraphMAE
from fmzoo.graph.models.graphmae_graph import GraphMAEGIN
from fmzoo.graph.plugin import plugin
from fmzoo.graph.spec import MOLECULE_FEATURIZER, MoleculeInput, NodeGraphInput
from fmzoo.graph.weights import ChemGINRelease


def _tiny(name):
    torch.manual_seed(0)
    return {"GraphMAE": lambda: GraphMAE(6, num_hidden=8, nhead=2),
            "GraphMAEGIN": lambda: GraphMAEGIN(6, num_hidden=8, num_layers=2),
            "MolGIN": lambda: MolGIN(num_layer=2, emb_dim=8)}[name]()


def test_every_model_class_declares_its_spec():
    assert GraphMAE.input_spec_class is NodeGraphInput and GraphMAEGIN.input_spec_class is NodeGraphInput
    assert MolGIN.input_spec_class is MoleculeInput
    for name in ("GraphMAE", "GraphMAEGIN", "MolGIN"):
        model = _tiny(name)
        assert model.input_spec_class.validate(model.input_spec) is model.input_spec


def test_shipped_checkpoints_carry_valid_specs():
    ours = plugin().checkpoints_dir
    paths = {i: p for i, p in shipped_checkpoints().items() if p.parent == ours}
    assert sorted(paths) == ["fmzoo/graphmae-cora", "fmzoo/graphmae-mol-gin", "fmzoo/graphmae-mutag"]
    for repo_id, path in paths.items():
        model = from_pretrained(repo_id)  # from_pretrained validates the spec
        assert model.input_spec == read_config(path)["input_spec"]
        assert type(model).input_spec_class.validate(model.input_spec)


def test_imported_official_chem_gin_saves_and_loads(tmp_path, tmp_hub):
    torch.manual_seed(0)
    torch.save(MolGIN().state_dict(), tmp_path / "pretrained.pth")  # the official key layout (GraphMAE chem/)
    model = ChemGINRelease().convert(tmp_path / "pretrained.pth")
    assert model.input_spec["featurizer"] == MOLECULE_FEATURIZER and "release" in model.input_spec
    model.save_pretrained(tmp_path / "ck")
    assert from_pretrained(tmp_path / "ck").input_spec == model.input_spec


# model -> (a broken spec, regex naming the key)
BROKEN = [
    ("GraphMAE", lambda s: {k: v for k, v in s.items() if k != "num_features"},
     r"NodeGraphInput needs the keys \['num_features'\]; missing \['num_features'\]"),
    ("GraphMAE", lambda s: {**s, "num_features": "1433"}, r"\['num_features'\]: expected an integer, got '1433' \(str\)"),
    ("GraphMAEGIN", lambda s: {**s, "num_features": 0},
     r"\['num_features'\]: expected a positive number of node features, got 0"),
    ("GraphMAEGIN", lambda s: {**s, "graph": ["undirected"]}, r"\['graph'\]: expected a string, got \['undirected'\]"),
    ("MolGIN", lambda s: {k: v for k, v in s.items() if k != "featurizer"}, r"missing \['featurizer'\]"),
    ("MolGIN", lambda s: {**s, "release": 2020}, r"\['release'\]: expected a string, got 2020 \(int\)"),
    ("MolGIN", lambda s: {**s, "featurizer": "ogb.utils.smiles2graph"},
     r"\['featurizer'\]: expected 'fmzoo\.graph\.data\.molecules\.smiles_to_graph \(Hu et al\. 2020\)' .*got "
     r"'ogb\.utils\.smiles2graph'"),
]


@pytest.mark.parametrize("name, breaks, match", BROKEN)
def test_broken_spec_is_refused_at_save_and_at_load(tmp_path, name, breaks, match):
    model = _tiny(name)
    good = dict(model.input_spec)
    model.input_spec = breaks(good)
    with pytest.raises(InputSpecError, match=match):
        model.save_pretrained(tmp_path / "refused")
    assert not list(tmp_path.glob("refused/*"))  # nothing written
    model.input_spec = good
    path = model.save_pretrained(tmp_path / "ck")
    config = json.loads((path / "config.json").read_text())
    config["input_spec"] = breaks(config["input_spec"])  # an edited config.json
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputSpecError, match=r"config\.json: input_spec.*" + match):
        type(model).from_pretrained(path)


def test_spec_feature_count_must_match_the_weights(tmp_path):
    model = _tiny("GraphMAE")
    model.input_spec = {**model.input_spec, "num_features": 7}  # valid on its own, but the weights take 6
    x, ei = torch.rand(4, 7), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    with pytest.raises(CheckpointError, match=r"input_spec num_features=7 but the weights take 6 node features"):
        model.embed(x, ei)
