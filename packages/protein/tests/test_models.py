import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.protein import TapeResNet, TapeTaskModel, TAPETokenizer, TapeTransformer

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)


def test_transformer_shapes_and_padding_invariance():
    torch.manual_seed(0)
    m = TapeTransformer(**TINY).eval()
    tok = TAPETokenizer()
    ids, mask = tok.batch_encode(["MKTAYIAKQR", "GSW"])
    with torch.no_grad():
        out = m(ids, mask)
        alone = m(*tok.batch_encode(["GSW"]))
    assert out["sequence_output"].shape == (2, 12, 32)
    assert out["pooled_output"].shape == (2, 32)
    assert out["logits"].shape == (2, 12, 30)
    torch.testing.assert_close(out["sequence_output"][1, :5], alone["sequence_output"][0], atol=1e-5, rtol=1e-4)


def test_resnet_shapes():
    m = TapeResNet(hidden_size=16, num_hidden_layers=2).eval()
    ids, mask = TAPETokenizer().batch_encode(["MKTAYIAKQR", "GSW"])
    out = m(ids, mask)
    assert out["logits"].shape == (2, 12, 30) and out["pooled_output"].shape == (2, 16)


def test_bad_inputs_are_clear_errors():
    m = TapeTransformer(**TINY)
    with pytest.raises(InputSpecError, match="integer"):
        m(torch.zeros(1, 5))
    with pytest.raises(InputSpecError, match="batch, length"):
        m(torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputSpecError, match=r"\[0, 30\)"):
        m(torch.tensor([[2, 31, 3]]))
    with pytest.raises(InputSpecError, match="max_position_embeddings"):
        m(torch.full((1, 65), 5, dtype=torch.long))
    with pytest.raises(InputSpecError, match="input_mask shape"):
        m(torch.full((1, 5), 5, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="vocabulary"):
        TapeTransformer(vocab_size=25)


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(1)
    m = TapeTransformer(**TINY).eval()
    m.save_pretrained(tmp_path / "ck", card={"title": "tiny"})
    m2 = from_pretrained(tmp_path / "ck")
    assert type(m2) is TapeTransformer and m2.input_spec["vocab"]["<mask>"] == 1
    ids, mask = TAPETokenizer().batch_encode(["MKTAYIAKQR"])
    with torch.no_grad():
        torch.testing.assert_close(m(ids, mask)["logits"], m2(ids, mask)["logits"])
    t = TapeTaskModel("secondary_structure", "transformer", 3, TINY)
    t.load_backbone(m)
    t.save_pretrained(tmp_path / "task")
    t2 = from_pretrained(tmp_path / "task").eval()
    assert t2(ids, mask).shape == (1, 12, 3)


def test_task_model_outputs():
    ids, mask = TAPETokenizer().batch_encode(["MKTAYIAKQR", "GSW"])
    assert TapeTaskModel("regression", "transformer", 1, TINY).eval()(ids, mask).shape == (2, 1)
    assert TapeTaskModel("fold", "resnet", 7, {"hidden_size": 16, "num_hidden_layers": 1}).eval()(ids, mask).shape == (2, 7)
    assert TapeTaskModel("contact", "transformer", 2, TINY).eval()(ids, mask).shape == (2, 10, 10, 2)
    with pytest.raises(ValueError):
        TapeTaskModel("stability", "transformer")
    with pytest.raises(ValueError):
        TapeTaskModel("regression", "lstm")
