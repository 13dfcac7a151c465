"""Exact import of TAPE (songlab-cal/tape, tape-proteins 0.5): the same random weights in TAPE's model and
ours give the same outputs. The reference tensors were produced by TAPE's own code
(fixtures/make_tape_fixtures.py, run in a venv with tape-proteins beside torch 2.14.1)."""

import json
from pathlib import Path

import pytest
import torch
from fmzoo.core import CheckpointError
from fmzoo.protein import IUPAC_VOCAB, TapeResNet, TapeTaskModel, TapeTransformer
from fmzoo.protein.weights import from_tape_state_dict, to_tape_state_dict
from safetensors import safe_open

FIX = Path(__file__).parent / "fixtures"


def load_fixture(name):
    with safe_open(str(FIX / f"tape_{name}.safetensors"), "pt") as f:
        cfg = json.loads(f.metadata()["config"])
        t = {k: f.get_tensor(k) for k in f.keys()}
    sd = {k[3:]: v for k, v in t.items() if k.startswith("sd.")}
    out = {k[4:]: v for k, v in t.items() if k.startswith("out.")}
    return cfg, sd, t["in.input_ids"], t["in.input_mask"], out


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_transformer_mlm_matches_tape():
    cfg, sd, ids, mask, out = load_fixture("bert_mlm")
    model = from_tape_state_dict(TapeTransformer(**cfg), sd).eval()
    with torch.no_grad():
        got = model(ids, mask)
    close(got["sequence_output"], out["sequence_output"])
    close(got["pooled_output"], out["pooled_output"])
    close(got["logits"], out["logits"])
    # the round trip gives back TAPE's exact key set, including the tied decoder
    back = to_tape_state_dict(model)
    assert set(back) == set(sd)
    for k in sd:
        torch.testing.assert_close(back[k], sd[k], rtol=0, atol=0)


def test_resnet_mlm_matches_tape():
    cfg, sd, ids, mask, out = load_fixture("resnet_mlm")
    model = from_tape_state_dict(TapeResNet(**cfg), sd).eval()
    with torch.no_grad():
        got = model(ids, mask)
    close(got["sequence_output"], out["sequence_output"])
    close(got["pooled_output"], out["pooled_output"])
    close(got["logits"], out["logits"])


@pytest.mark.parametrize("name,task,family,labels", [
    ("bert_ss3", "secondary_structure", "transformer", 3),
    ("resnet_ss8", "secondary_structure", "resnet", 8),
    ("bert_value", "regression", "transformer", 1),
    ("bert_fold", "fold", "transformer", 5),
    ("bert_contact", "contact", "transformer", 2),
])
def test_task_heads_match_tape(name, task, family, labels):
    cfg, sd, ids, mask, out = load_fixture(name)
    backbone = {k: v for k, v in cfg.items() if k != "num_labels"}
    model = from_tape_state_dict(TapeTaskModel(task, family, labels, backbone), sd).eval()
    assert set(model.state_dict()) == set(sd)  # identical key layout, no renaming at all
    with torch.no_grad():
        got = model(ids, mask)
    close(got, out["logits" if "logits" in out else "value"])


def _meta_layout(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_published_base_layouts():
    """At TAPE's released configurations (bert-base, resnet default) our key names and shapes are TAPE's."""
    layout = json.loads((FIX / "tape_layout.json").read_text())
    with torch.device("meta"):
        ours = {
            "ProteinBertForMaskedLM": TapeTransformer(),
            "ProteinResNetForMaskedLM": TapeResNet(),
            "ProteinBertForSequenceToSequenceClassification": TapeTaskModel("secondary_structure", num_labels=3),
            "ProteinBertForValuePrediction": TapeTaskModel("regression"),
            "ProteinBertForSequenceClassification": TapeTaskModel("fold", num_labels=1195),
            "ProteinBertForContactPrediction": TapeTaskModel("contact"),
        }
    for name, model in ours.items():
        ref = dict(layout[name])
        ref.pop("mlm.decoder.weight", None)  # tied copy of the word embeddings, dropped on import
        assert _meta_layout(model) == ref, name
    n = sum(p.numel() for p in ours["ProteinBertForMaskedLM"].parameters())
    assert 92_000_000 < n < 93_000_000  # TAPE "bert-base" incl. 8096 learned positions
    assert layout["vocab"] == dict(IUPAC_VOCAB)


def test_mismatched_state_dict_is_a_clear_error():
    cfg, sd, *_ = load_fixture("bert_mlm")
    bad = dict(sd)
    bad.pop("bert.pooler.dense.weight")
    with pytest.raises(CheckpointError, match="missing"):
        from_tape_state_dict(TapeTransformer(**cfg), bad)
    untied = dict(sd)
    untied["mlm.decoder.weight"] = torch.randn_like(sd["mlm.decoder.weight"])
    with pytest.raises(CheckpointError, match="ties"):
        from_tape_state_dict(TapeTransformer(**cfg), untied)
    wrong = dict(sd)
    wrong["bert.embeddings.position_embeddings.weight"] = torch.zeros(10, 32)
    with pytest.raises(CheckpointError, match="shapes"):
        from_tape_state_dict(TapeTransformer(**cfg), wrong)


def test_backbone_only_file_and_legacy_names():
    cfg, sd, ids, mask, out = load_fixture("bert_mlm")
    base = {k[5:]: v for k, v in sd.items() if k.startswith("bert.")}
    base = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
            for k, v in base.items()}
    with pytest.raises(CheckpointError):
        from_tape_state_dict(TapeTransformer(**cfg), base)
    model = from_tape_state_dict(TapeTransformer(**cfg), base, allow_missing_head=True).eval()
    with torch.no_grad():
        close(model.embed(ids, mask)[0], out["sequence_output"])
