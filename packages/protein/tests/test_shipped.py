"""The shipped checkpoint fmzoo/tape-transformer-small: loads offline, is small, carries its card, was produced by the
committed recipe (same recipe, same sha256), never saw a CB513/GB1-overlapping protein, and its MLM beats the same
architecture at random init on CB513 proteins it never saw."""

import json
from pathlib import Path

import fmzoo.protein
import torch
from fmzoo.core import from_pretrained, load_recipe
from fmzoo.protein import TapeTransformer
from fmzoo.protein.data.fasta import load_pretraining_sequences
from fmzoo.protein.data.secondary_structure import load_cb513
from fmzoo.protein.methods.mlm import evaluate_mlm

CKPT = Path(fmzoo.protein.__file__).parent / "checkpoints" / "tape-transformer-small"


def test_shipped_checkpoint_files(tmp_hub):
    assert (CKPT / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    card = (CKPT / "README.md").read_text()
    assert "CPU" in card and "FLIP" in card and "0.73" in card
    prov = json.loads((CKPT / "provenance.json").read_text())
    assert prov["recipe"]["method"] == "tape_mlm" and prov["steps"] > 500
    assert prov["epochs"] == prov["recipe"]["trainer"]["max_epochs"] == 6
    model = from_pretrained("fmzoo/tape-transformer-small")
    assert isinstance(model, TapeTransformer)
    assert model.input_spec["vocab"]["X"] == 27


def test_shipped_mlm_beats_random_init_on_unseen_proteins(tmp_hub, data_root):
    seqs = [r.sequence for r in load_cb513(data_root / "proteins" / "cb513")[:40]]
    pre = TapeTransformer.from_pretrained("fmzoo/tape-transformer-small")
    torch.manual_seed(0)
    scratch = TapeTransformer(**pre.init_args)
    a = evaluate_mlm(pre, seqs, max_length=1024)
    b = evaluate_mlm(scratch, seqs, max_length=1024)
    assert a["masked_tokens"] == b["masked_tokens"] > 1000
    assert a["mlm_loss"] < b["mlm_loss"] - 0.2
    assert a["perplexity"] < 18.0  # below the ~20 of a unigram amino-acid model


def test_shipped_checkpoint_comes_from_the_committed_recipe():
    prov = json.loads((CKPT / "provenance.json").read_text())
    recipe = load_recipe(prov["recipe_name"])
    assert prov["recipe_name"] == "tape-transformer-small" == recipe["name"]
    # training values and sha256: tests/test_shipped_recipes.py; here, that only the card text was corrected
    assert all(prov["card"][k] == v for k, v in recipe["card"].items())  # the card shipped is the committed text
    assert prov["recipe_sha256"][:16] in (CKPT / "README.md").read_text()


def test_shipped_checkpoint_never_saw_evaluation_proteins(data_root):
    """Pretraining dropped every protein sharing a 20-mer with CB513 or the GB1 domain (the previously shipped
    model had 2 verbatim CB513 proteins in its pretraining set); the card says so."""
    prov = json.loads((CKPT / "provenance.json").read_text())
    data = prov["recipe"]["data"]
    assert sorted(data["exclude_overlap_with"]) == sorted(prov["excluded_overlap_with"]) == ["cb513", "gb1"]
    assert data["overlap_kmer"] == 20
    pool = load_pretraining_sequences(data_root / "proteins" / "flip_secondary_structure")
    # 15 proteins share a 20-mer with CB513 (test_data checks the filter on the real data); the rest is train + val
    assert prov["excluded_sequences"] == 15
    assert prov["train_sequences"] + data["val_sequences"] + prov["excluded_sequences"] == len(pool)
    card = (CKPT / "README.md").read_text()
    assert "10,477" in card and "2 of them verbatim CB513 proteins" in card and "six epochs" in card
    assert "one epoch" not in card
