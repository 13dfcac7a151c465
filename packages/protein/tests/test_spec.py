"""Input spec of the TAPE models (fmzoo.core.spec.InputSpec): every model class declares TapeSequenceInput, the shipped
checkpoint and an imported TAPE release carry a spec that passes it, and a broken spec (a missing key, a wrong type,
a rule across keys) is refused when saving and when loading, with a message naming the key."""

import json

import pytest
import tape
import torch
from fmzoo.core import InputSpecError, from_pretrained, shipped_checkpoints
from fmzoo.core.hub import read_config
from fmzoo.protein.models import TapeResNet, TapeTransformer
from fmzoo.protein.models.task import TapeTaskModel
from fmzoo.protein.plugin import plugin
from fmzoo.protein.spec import IUPAC_VOCAB, TapeSequenceInput, TAPETokenizer

SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=40)


def test_every_model_class_declares_the_tape_spec():
    torch.manual_seed(0)
    models = [TapeTransformer(**SMALL), TapeResNet(hidden_size=16, num_hidden_layers=1),
              TapeTaskModel("secondary_structure", "transformer", 3, SMALL)]
    for model in models:
        assert type(model).input_spec_class is TapeSequenceInput
        assert TapeSequenceInput.validate(model.input_spec) is model.input_spec
    assert models[0].input_spec["max_length"] == 40


def test_shipped_checkpoint_carries_a_valid_spec():
    ours = plugin().checkpoints_dir
    paths = {i: p for i, p in shipped_checkpoints().items() if p.parent == ours}
    assert sorted(paths) == ["fmzoo/tape-transformer-small"]
    model = from_pretrained("fmzoo/tape-transformer-small")  # from_pretrained validates the spec
    assert model.input_spec == read_config(paths["fmzoo/tape-transformer-small"])["input_spec"]
    assert model.input_spec["vocab"] == dict(IUPAC_VOCAB) and model.input_spec["max_length"] == 1024


def test_imported_tape_release_saves_and_loads(tmp_path, tmp_hub):
    torch.manual_seed(0)
    ref = tape.ProteinBertForMaskedLM(tape.ProteinBertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                             intermediate_size=32, max_position_embeddings=64))
    (tmp_path / "release").mkdir()
    ref.save_pretrained(str(tmp_path / "release"))
    model = from_pretrained(str(tmp_path / "release"))
    assert model.input_spec == {**TAPETokenizer().spec(), "max_length": 64}
    model.save_pretrained(tmp_path / "ck")
    assert from_pretrained(tmp_path / "ck").input_spec == model.input_spec


def _without(key):
    return lambda s: {k: v for k, v in s.items() if k != key}


BROKEN = [
    (_without("vocab"), r"TapeSequenceInput needs the keys \['add_special_tokens', 'unknown', 'vocab'\]; missing "
                        r"\['vocab'\]"),
    (_without("unknown"), r"missing \['unknown'\]"),
    (lambda s: {**s, "max_length": "1024"}, r"\['max_length'\]: expected an integer, got '1024' \(str\)"),
    (lambda s: {**s, "add_special_tokens": "<cls>"}, r"\['add_special_tokens'\]: expected a list, got '<cls>'"),
    (lambda s: {**s, "unknown": "drop"}, r"\['unknown'\]: expected one of \['X', 'error', 'unk'\], got 'drop'"),
    (lambda s: {**s, "unknown": "unk", "vocab": {k: v for k, v in s["vocab"].items() if k != "<unk>"}},
     r"'unknown' is 'unk', which maps letters to '<unk>', but 'vocab' has no '<unk>'"),  # across keys
    (lambda s: {**s, "add_special_tokens": ["<bos>", "<eos>"]},
     r"'add_special_tokens' names \['<bos>', '<eos>'\], which 'vocab' lacks"),  # across keys
    (lambda s: {**s, "vocab": {**s["vocab"], "A": 6, "B": 5}},
     r"\['vocab'\]: expected TAPE's IUPAC vocabulary \(30 tokens, <pad>=0 \.\.\. Z=29\).*got 30 tokens"),
    (lambda s: {**s, "add_special_tokens": ["<sep>", "<cls>"]},
     r"\['add_special_tokens'\]: expected \['<cls>', '<sep>'\] \(TAPE's encoding\)"),
    (lambda s: {**s, "max_length": 2}, r"\['max_length'\]: expected at least 3 tokens"),
]


@pytest.mark.parametrize("breaks, match", BROKEN)
def test_broken_spec_is_refused_at_save_and_at_load(tmp_path, breaks, match):
    torch.manual_seed(0)
    model = TapeTransformer(**SMALL)
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
        TapeTransformer.from_pretrained(path)
