"""The shipped checkpoint fmzoo/tape-transformer-small: loads offline, is small, carries its card, and its MLM
beats the same architecture at random init on CB513 proteins it never saw."""

import json
from pathlib import Path

import torch

import fmzoo.protein
from fmzoo.core import from_pretrained
from fmzoo.protein import TapeTransformer
from fmzoo.protein.data.secondary_structure import load_cb513
from fmzoo.protein.methods.mlm import evaluate_mlm

CKPT = Path(fmzoo.protein.__file__).parent / "checkpoints" / "tape-transformer-small"


def test_shipped_checkpoint_files(tmp_hub):
    assert (CKPT / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    card = (CKPT / "README.md").read_text()
    assert "CPU" in card and "FLIP" in card and "0.73" in card
    prov = json.loads((CKPT / "provenance.json").read_text())
    assert prov["recipe"]["method"] == "tape_mlm" and prov["steps"] > 500
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
