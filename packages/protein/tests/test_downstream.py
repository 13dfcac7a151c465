"""fmzoo evaluate / finetune on TAPE backbones (the core's downstream contract), on slices of the real data."""

import json
import math
from pathlib import Path

import fmzoo.protein
import numpy as np
import torch
from fmzoo.core import from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.downstream import Budget, hooks_for, run
from fmzoo.core.runtime import seed_everything
from fmzoo.protein import TapeResNet, TapeTaskModel
from fmzoo.protein.data.gb1 import load_gb1
from fmzoo.protein.data.secondary_structure import load_flip_ss
from fmzoo.protein.tasks.downstream import TapeHooks
from fmzoo.protein.tasks.secondary_structure import STRUCT_CLASSES, structural_class

CKPTS = Path(fmzoo.protein.__file__).parent / "checkpoints"
SHIPPED = "fmzoo/tape-transformer-small"


def _gb1_fasta(path: Path, n_train: int = 80, n_test: int = 40) -> Path:
    """A slice of FLIP's real GB1 three_vs_rest split written as FLIP-layout FASTA (GB1 domain only)."""
    d = load_gb1("three_vs_rest")
    lines = []
    for part, df in (("train", d["train"].iloc[:n_train]), ("test", d["test"].iloc[:n_test])):
        for i, (q, y) in enumerate(zip(df["sequence"], df["target"], strict=True)):
            lines += [f">{part}{i} TARGET={y} SET={part} VALIDATION=False", q[:56]]
    path.write_text("\n".join(lines) + "\n")
    return path


def _class_fasta(path: Path) -> Path:
    """Real FLIP proteins labelled with their structural class (from their DSSP labels), train and test."""
    recs = [r for r in load_flip_ss() if r.split == "train" and len(r.sequence) < 120][:60]
    lines = []
    for i, r in enumerate(recs):
        lines += [f">{r.id} TARGET={STRUCT_CLASSES[structural_class(r.ss3)]} SET={'train' if i < 40 else 'test'}",
                  r.sequence]
    path.write_text("\n".join(lines) + "\n")
    return path


def _tiny(tmp_path, cls, **kw) -> Path:
    seed_everything(0)
    path = tmp_path / cls.__name__
    cls(**kw).save_pretrained(path)
    return path


def _rows(out: Path, mode: str) -> dict:
    result = json.loads((out / f"{mode}.json").read_text())
    for row in result["rows"]:
        for m in row["metrics"].values():
            assert all(math.isfinite(v) for v in m["values"]), row
    return result


def test_every_shipped_checkpoint_and_architecture_has_hooks():
    shipped = [json.loads((d / "config.json").read_text())["architecture"] for d in CKPTS.iterdir() if d.is_dir()]
    assert shipped == ["TapeTransformer"]
    for arch in {*shipped, "TapeTransformer", "TapeResNet", "TapeTaskModel"}:
        hooks = hooks_for(arch)
        assert isinstance(hooks, TapeHooks) and hooks.datasets[0] == "gb1_three_vs_rest"


def test_default_task_is_flip_gb1_three_vs_rest(tmp_hub):
    model = from_pretrained(SHIPPED)
    task = hooks_for("TapeTransformer").load(model, None, None)
    assert (task.kind, task.metric, len(task.train), len(task.test)) == ("regression", "rmse", 2691 + 299, 5743)
    assert all(len(q) == 56 for q in task.train.items[:50]) and task.train.targets.dtype == np.float32


def test_features_are_mean_of_residue_states_and_ignore_padding(tmp_hub):
    model = from_pretrained(SHIPPED).eval()
    hooks = hooks_for("TapeTransformer")
    with torch.no_grad():
        both = hooks.features(model, hooks.collate(model, ["MKTAYIAKQRQISFV", "GSW"]))
        alone = hooks.features(model, hooks.collate(model, ["GSW"]))
        h = model.embed(*hooks.collate(model, ["GSW"]))[0][0, 1:4].mean(0)  # residues only: no <cls>/<sep>
    torch.testing.assert_close(both[1], alone[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone[0], h)


def test_cli_evaluate_shipped_on_own_fasta(tmp_hub, tmp_path, capsys):
    data = _gb1_fasta(tmp_path / "gb1.fasta")
    out = tmp_path / "e"
    assert main(["evaluate", SHIPPED, "--data", str(data), "--seeds", "0", "1", "--n-labelled", "60", "--out", str(out),
                 "--no-progress"]) == 0
    result = _rows(out, "evaluate")
    assert result["architecture"] == "TapeTransformer" and result["kind"] == "regression"
    assert (result["train_examples"], result["test_examples"], result["source"]) == (80, 40, str(data))
    assert [r["protocol"] for r in result["rows"]] == ["linear probe"]
    assert result["rows"][0]["metrics"]["rmse"]["n"] == 2 and result["baseline"]["name"] == "training mean"
    assert "linear probe" in capsys.readouterr().out


def test_cli_finetune_shipped_reports_spearman(tmp_hub, tmp_path):
    data = _gb1_fasta(tmp_path / "gb1.fasta", 64, 32)
    out = tmp_path / "f"
    assert main(["finetune", SHIPPED, "--data", str(data), "--seeds", "0", "--epochs", "1", "--out", str(out),
                 "--no-progress"]) == 0
    row = _rows(out, "finetune")["rows"][0]
    assert row["protocol"] == "fine-tuned end to end (1 epochs)" and -1 <= row["metrics"]["spearman"]["mean"] <= 1


def test_cli_resnet_and_task_model_on_classification_fasta(tmp_path):
    data = _class_fasta(tmp_path / "classes.fasta")
    resnet = _tiny(tmp_path, TapeResNet, hidden_size=16, num_hidden_layers=2)
    assert main(["finetune", str(resnet), "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    result = _rows(tmp_path / "r", "finetune")
    assert result["architecture"] == "TapeResNet" and result["kind"] == "classification"
    assert 0.0 <= result["rows"][0]["metrics"]["accuracy"]["mean"] <= 1.0
    task_model = _tiny(tmp_path, TapeTaskModel, task="fold", family="transformer", num_labels=4,
                       backbone=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=64))
    assert main(["evaluate", str(task_model), "--data", str(data), "--out", str(tmp_path / "t"), "--no-progress"]) == 0
    result = _rows(tmp_path / "t", "evaluate")
    assert result["architecture"] == "TapeTaskModel"
    assert [r["protocol"] for r in result["rows"]] == ["linear probe", "kNN (k=20, cosine)"]
    assert "cropped to their first 62 residues" in result["notes"]  # sequences up to 119 residues, 64 positions


def test_fasta_without_flip_fields_is_a_clear_error(tmp_hub, tmp_path, capsys):
    bad = tmp_path / "bad.fasta"
    bad.write_text(">v1 fitness 0.3\nMKTAYIAKQR\n")
    assert main(["evaluate", SHIPPED, "--data", str(bad), "--no-progress"]) == 2
    assert "TARGET=<label> and SET=train|test" in capsys.readouterr().err
    bad.write_text(">v1 TARGET=0.3 SET=train\nMKTAYIAKQR\n>v2 TARGET=0.1 SET=test\nMKT*YIAKQR\n")
    assert main(["evaluate", SHIPPED, "--data", str(bad), "--no-progress"]) == 2
    assert "outside TAPE's IUPAC vocabulary" in capsys.readouterr().err
    bad.write_text(">v1 TARGET=0.3 SET=train\nMKTAYIAKQR\n>v2 TARGET=0.1 SET=valid\nMKTAYIAKQR\n")
    assert main(["evaluate", SHIPPED, "--data", str(bad), "--no-progress"]) == 2
    assert "SET='valid'; expected SET=train or SET=test" in capsys.readouterr().err


def test_target_names_the_label_field(tmp_hub, tmp_path):
    data = tmp_path / "two.fasta"
    # the real GB1 slice with its fitness under FITNESS= and a decoy TARGET= that is not the label
    text = _gb1_fasta(tmp_path / "gb1.fasta", 40, 20).read_text().replace("TARGET=", "TARGET=x FITNESS=")
    data.write_text(text)
    task = hooks_for("TapeTransformer")
    task.target = "FITNESS"
    loaded = task.load(from_pretrained(SHIPPED), None, data)
    d = load_gb1("three_vs_rest")
    assert loaded.kind == "regression" and np.allclose(loaded.train.targets, d["train"]["target"].iloc[:40])


def test_cb513_per_residue_protocol_on_a_slice(tmp_hub):
    model = from_pretrained(SHIPPED)
    hooks = hooks_for("TapeTransformer")
    task = hooks.load(model, "cb513", None)
    assert (task.kind, task.n_outputs, len(task.train), len(task.test)) == ("segmentation", 3, 9712, 511)
    assert "30 sequence(s) longer than the model's 1022 residue positions" in task.notes
    task.test = task.test.take(np.arange(12))
    result = run("evaluate", model, hooks, task, seeds=[0], budget=Budget(n=16), epochs=2)
    row = result["rows"][0]
    assert row["protocol"] == "frozen encoder, head trained (2 epochs)" and 0 < row["metrics"]["accuracy"]["mean"] < 1
    scored = sum(int((np.asarray(y) >= 0).sum()) for y in task.test.targets)
    majority = result["baseline"]["metrics"]["accuracy"]["mean"]
    assert result["baseline"]["name"].startswith("majority residue class") and 0 < majority < 1
    assert abs(majority * scored - round(majority * scored)) < 1e-6  # a fraction of the scored residues
