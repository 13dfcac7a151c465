"""fmzoo evaluate / finetune on the graph domain's three architectures (core protocols, graph hooks), through the CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained, shipped_checkpoints
from fmzoo.core.cli import main
from fmzoo.core.downstream import DownstreamHooks, hooks_for
from fmzoo.core.hub import read_config, resolve_checkpoint
from fmzoo.graph.data.planetoid import load_cora
from fmzoo.graph.plugin import plugin


def cli(mode: str, model: str, tmp_path, *args) -> dict:
    out = tmp_path / "out"
    assert main([mode, model, *args, "--seeds", "0", "--no-progress", "--out", str(out)]) == 0
    return json.loads((out / f"{mode}.json").read_text())


def finite_rows(result: dict, protocols: list[str]) -> dict:
    assert [r["protocol"] for r in result["rows"]] == protocols
    for row in result["rows"]:
        assert row["init"] == "pretrained" and row["seeds"] == [0]
        for name, m in row["metrics"].items():
            assert m["n"] == 1 and np.isfinite(m["values"]).all(), name
    return {r["protocol"]: r["metrics"] for r in result["rows"]}


def test_every_shipped_checkpoint_resolves_to_hooks():
    ours = plugin().checkpoints_dir
    ids = sorted(i for i, path in shipped_checkpoints().items() if path.parent == ours)
    assert ids == ["fmzoo/graphmae-cora", "fmzoo/graphmae-mol-gin", "fmzoo/graphmae-mutag"]
    for repo_id in ids:
        hooks = hooks_for(read_config(resolve_checkpoint(repo_id))["architecture"])
        assert isinstance(hooks, DownstreamHooks) and hooks.datasets and hooks.data_format


def test_cora_evaluate_public_split(tmp_path, data_root):
    result = cli("evaluate", "fmzoo/graphmae-cora", tmp_path)
    assert (result["task"], result["train_examples"], result["test_examples"]) == ("cora", 140, 1000)
    metrics = finite_rows(result, ["linear probe", "kNN (k=20, cosine)"])
    # GraphMAE's frozen node embeddings are far above the majority class (0.319 on the public test nodes)
    assert metrics["linear probe"]["accuracy"]["mean"] > 0.7
    assert result["baseline"]["metrics"]["accuracy"]["mean"] < 0.35 and result["warnings"] == []


def write_cora_slice(path, n: int = 400, features: int | None = None):
    """The first ``n`` Cora nodes (binary bag of words, labels as words) and the edges among them, as CSV files."""
    g = load_cora()
    x = (g.x[:n] > 0).int().numpy()
    if features is not None:
        x = x[:, :features]
    names = np.array(["case", "genetic", "neural", "probabilistic", "reinforcement", "rule", "theory"])
    nodes = pd.DataFrame(x, columns=[f"w{j}" for j in range(x.shape[1])])
    nodes.insert(0, "label", names[g.y[:n].numpy()])
    nodes.insert(0, "id", [f"paper{i}" for i in range(n)])
    keep = (g.edge_index < n).all(0) & (g.edge_index[0] < g.edge_index[1])
    src, dst = g.edge_index[:, keep].numpy()
    path.mkdir()
    nodes.to_csv(path / "nodes.csv", index=False)
    pd.DataFrame({"src": [f"paper{i}" for i in src], "dst": [f"paper{i}" for i in dst]}).to_csv(path / "edges.csv",
                                                                                              index=False)
    return g


def test_node_data_dir_finetune_and_feature_count(tmp_path, data_root, capsys):
    g = write_cora_slice(tmp_path / "cora400")
    model = from_pretrained("fmzoo/graphmae-cora")
    hooks = hooks_for("GraphMAE")
    task = hooks.load(model, None, tmp_path / "cora400")
    assert len(task.train) + len(task.test) == 400 and 0.18 < len(task.test) / 400 < 0.22
    assert task.class_names[0] == "case" and task.n_outputs == 7
    # the files hold Cora's own graph: the hooks rebuild its normalised features and its edges among these nodes
    assert np.allclose(hooks.graph.x.numpy(), g.x[:400].numpy(), atol=1e-6)
    keep = (g.edge_index < 400).all(0)
    assert hooks.graph.g.src.numel() == int(keep.sum()) + 400  # its edges among these nodes, plus one self loop each
    # frozen passes share one full-graph embedding until the weights change
    model.eval()
    with torch.no_grad():
        before = hooks.features(model, hooks.collate(model, task.test.items[:5]))
        assert torch.equal(hooks.features(model, hooks.collate(model, task.test.items[:5])), before)
        model.encoder.layers[0].fc.weight.mul_(2.0)
        assert not torch.allclose(hooks.features(model, hooks.collate(model, task.test.items[:5])), before)
    result = cli("finetune", "fmzoo/graphmae-cora", tmp_path, "--data", str(tmp_path / "cora400"), "--epochs", "1")
    assert result["source"] == str(tmp_path / "cora400") and result["settings"]["epochs"] == 1
    finite_rows(result, ["fine-tuned end to end (1 epochs)"])
    write_cora_slice(tmp_path / "narrow", n=50, features=12)
    assert main(["evaluate", "fmzoo/graphmae-cora", "--data", str(tmp_path / "narrow"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "expects 1433 node features" in err and "got 12" in err
    with pytest.raises(InputSpecError, match="expects 1433 node features.*got 12"):
        hooks.load(model, None, tmp_path / "narrow")


def test_molecule_csv_finetune_classification(tmp_path, data_root):
    bbbp = pd.read_csv(data_root / "graphs" / "moleculenet" / "BBBP.csv").iloc[:200]
    bbbp.rename(columns={"p_np": "label"}).to_csv(tmp_path / "bbbp200.csv", index=False)
    result = cli("finetune", "fmzoo/graphmae-mol-gin", tmp_path, "--data", str(tmp_path / "bbbp200.csv"),
                 "--epochs", "1")
    assert result["kind"] == "classification" and result["metric"] == "accuracy"
    assert result["train_examples"] + result["test_examples"] < 200  # scaffold split: the valid part is left out
    metrics = finite_rows(result, ["fine-tuned end to end (1 epochs)"])
    assert "roc_auc" in metrics["fine-tuned end to end (1 epochs)"]


def test_molecule_csv_evaluate_regression_and_bad_smiles(tmp_path, data_root):
    esol = pd.read_csv(data_root / "graphs" / "moleculenet" / "delaney.csv").iloc[:250]
    esol.to_csv(tmp_path / "esol.csv", index=False)  # columns smiles, logp: the label is the only other column
    result = cli("evaluate", "fmzoo/graphmae-mol-gin", tmp_path, "--data", str(tmp_path / "esol.csv"))
    assert result["kind"] == "regression" and result["metric"] == "rmse"
    finite_rows(result, ["linear probe"])
    esol.loc[7, "smiles"] = "C1CC((C"
    esol.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputSpecError, match=r"row 7: invalid SMILES"):
        hooks_for("MolGIN").load(None, None, tmp_path / "bad.csv")


def test_mutag_evaluate_and_finetune(tmp_path, data_root):
    result = cli("evaluate", "fmzoo/graphmae-mutag", tmp_path)
    assert (result["task"], result["train_examples"] + result["test_examples"]) == ("mutag", 188)
    finite_rows(result, ["linear probe", "kNN (k=20, cosine)"])
    result = cli("finetune", "fmzoo/graphmae-mutag", tmp_path, "--epochs", "1")
    finite_rows(result, ["fine-tuned end to end (1 epochs)"])
