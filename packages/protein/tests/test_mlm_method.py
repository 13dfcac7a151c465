"""tape_mlm is a fmzoo.core Method: recipe validation, provenance and --data on the user's own FASTA file."""

import json

import pytest
import yaml
from fmzoo.core import InputSpecError, RecipeError
from fmzoo.core.cli import main
from fmzoo.core.pretrain import run_pretraining
from fmzoo.protein.data.fasta import load_pretraining_sequences

RECIPE = {"method": "tape_mlm", "name": "tiny-mlm", "family": "transformer", "seed": 0, "threads": 1,
          "model": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                    "max_position_embeddings": 64},
          "data": {"max_length": 64, "max_tokens": 512, "val_sequences": 4, "max_train_sequences": 16},
          "optim": {"lr": 1e-3, "warmup_steps": 1}, "trainer": {"max_epochs": 1}}


def test_unknown_recipe_key_is_an_error_naming_it(tmp_path):
    with pytest.raises(RecipeError, match="unknown key.*optimiser"):
        run_pretraining({**RECIPE, "optimiser": {"lr": 1}}, tmp_path / "run", {"progress": False})
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_tiny_run_provenance_has_seeds_and_token_budget_steps(tmp_path):
    ckpt = run_pretraining(dict(RECIPE), tmp_path / "run", {"progress": False})
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["seeds"] == [0] and "seed" not in prov and prov["epochs"] == 1
    assert prov["train_sequences"] == 16 and prov["steps"] >= 1 and "perplexity" in prov["metrics"]
    assert prov["data_files"][0]["path"].endswith("sequences.fasta")


def test_cli_pretrain_on_the_users_own_fasta(tmp_path):
    seqs = load_pretraining_sequences()[:20]
    (tmp_path / "mine.fasta").write_text("".join(f">p{i}\n{s}\n" for i, s in enumerate(seqs)))
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(RECIPE))
    assert main(["pretrain", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "run"), "--data",
                 str(tmp_path / "mine.fasta"), "--no-progress"]) == 0
    ckpt = tmp_path / "run" / "checkpoint"
    assert "16 protein sequences of mine.fasta (the user's own FASTA data" in (ckpt / "README.md").read_text()
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["data_path"].endswith("mine.fasta") and [f["path"] for f in prov["data_files"]] == [str(tmp_path / "mine.fasta")]
    assert list(prov["data_sha256"]) == ["mine.fasta"]


def test_data_that_is_not_fasta_is_an_input_error(tmp_path):
    (tmp_path / "mine.csv").write_text("sequence\nMKT\n")
    with pytest.raises(InputSpecError, match="not FASTA"):
        run_pretraining(dict(RECIPE), tmp_path / "run", {"progress": False}, data_path=tmp_path / "mine.csv")
