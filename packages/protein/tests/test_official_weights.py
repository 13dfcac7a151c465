"""TAPE's released layout (format ``tape-bert``): a folder written by tape-proteins' own ``save_pretrained`` with
random weights loads through ``fmzoo.core.from_pretrained(PATH)`` and gives TAPE's outputs. tape-proteins 0.5 is the
reference (installed beside the pinned torch with ``--no-deps`` plus lmdb, boto3, tensorboardX)."""

import json
import pickle
import time

import pytest
import tape
import torch
from fmzoo.core import CheckpointError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.weights import catalogue, detect_format
from fmzoo.protein import TAPETokenizer, TapeTransformer
from fmzoo.protein.data.secondary_structure import load_cb513


def _protein() -> str:
    """A real protein: the first CB513 chain of 60-200 residues."""
    return next(r.sequence for r in load_cb513() if 60 <= len(r.sequence) <= 200)


def _encode(seq):
    from tape import TAPETokenizer as RefTok

    ref = torch.from_numpy(RefTok(vocab="iupac").encode(seq))[None]
    return ref, torch.ones_like(ref)


def _save(model, path):
    path.mkdir()
    model.save_pretrained(str(path))
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "pytorch_model.bin"]
    return path


def test_bert_base_release_matches_tape(tmp_hub, tmp_path):
    """TAPE's bert-base configuration (12 x 768, 12 heads, FFN 3072), ProteinBertModel as `tape-embed` loads it."""
    t0 = time.time()
    torch.manual_seed(0)
    ref = tape.ProteinBertModel(tape.ProteinBertConfig()).eval()  # the released bert-base defaults
    folder = _save(ref, tmp_path / "bert-base")
    assert detect_format(folder).name == "tape-bert"
    with pytest.warns(UserWarning, match="holds no MLM head"):
        model = from_pretrained(str(folder))
    assert isinstance(model, TapeTransformer) and not model.training
    assert sum(p.numel() for p in model.bert.parameters()) == sum(p.numel() for p in ref.parameters())
    ids, mask = _encode(_protein())
    with torch.no_grad():
        want = ref(ids, input_mask=mask)[0]
        got = model(ids, mask)["sequence_output"]
    diff = (got - want).abs().max().item()
    print(f"bert-base sequence_output max|diff| {diff:.2e}, length {ids.shape[1]}, {time.time() - t0:.1f} s")
    assert diff <= 1e-5
    # our tokenizer (the converted model's input_spec) gives TAPE's ids
    assert model.input_spec["vocab"] == TAPETokenizer().spec()["vocab"]
    assert model.input_spec["max_length"] == 8096


def _small_config():
    return tape.ProteinBertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=300)


def test_masked_lm_release_with_tied_decoder(tmp_hub, tmp_path):
    """ProteinBertForMaskedLM (the layout of TAPE's released file: bert.* + mlm.*, mlm.decoder tied to the word
    embeddings) under TAPE's S3 file names; MLM logits equal TAPE's too."""
    torch.manual_seed(1)
    ref = tape.ProteinBertForMaskedLM(_small_config()).eval()
    folder = tmp_path / "s3"
    folder.mkdir()
    ref.save_pretrained(str(folder))
    (folder / "config.json").rename(folder / "bert-base-config.json")
    (folder / "pytorch_model.bin").rename(folder / "bert-base-pytorch_model.bin")
    sd = torch.load(folder / "bert-base-pytorch_model.bin", weights_only=True)
    assert "mlm.decoder.weight" in sd and "bert.embeddings.word_embeddings.weight" in sd
    model = from_pretrained(str(folder))
    ids, mask = _encode(_protein())
    with torch.no_grad():
        logits = ref(ids, input_mask=mask)[0]
        h = ref.bert(ids, input_mask=mask)[0]
        got = model(ids, mask)
    assert (got["sequence_output"] - h).abs().max().item() <= 1e-5
    assert (got["logits"] - logits).abs().max().item() <= 1e-5
    # the 2019 release predates torch's zip format: the legacy serialisation loads the same
    torch.save(sd, folder / "bert-base-pytorch_model.bin", _use_new_zipfile_serialization=False)
    legacy = from_pretrained(str(folder))
    with torch.no_grad():
        assert (legacy(ids, mask)["logits"] - logits).abs().max().item() <= 1e-5


def test_refuses_non_tensor_pickles_and_other_configs(tmp_hub, tmp_path):
    torch.manual_seed(2)
    folder = _save(tape.ProteinBertModel(_small_config()), tmp_path / "evil")

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    sd = torch.load(folder / "pytorch_model.bin", weights_only=True)
    torch.save({**sd, "extra": Payload()}, folder / "pytorch_model.bin", pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(CheckpointError, match="does not unpickle"):
        from_pretrained(str(folder))
    # a transformers config (model_type) or another vocabulary is not this format
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))
    from fmzoo.protein.weights import TapeBertRelease

    assert not TapeBertRelease().detect(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "vocab_size": 26}))
    assert not TapeBertRelease().detect(folder)


def test_catalogue_entry():
    entry = catalogue()["songlab/tape-bert-base"]
    assert entry.format == "tape-bert" and entry.hf_repo is None and entry.license == "BSD-3-Clause"
    arch = tape.models.modeling_bert
    BERT_PRETRAINED_CONFIG_ARCHIVE_MAP = arch.BERT_PRETRAINED_CONFIG_ARCHIVE_MAP  # noqa: N806
    BERT_PRETRAINED_MODEL_ARCHIVE_MAP = arch.BERT_PRETRAINED_MODEL_ARCHIVE_MAP  # noqa: N806
    assert entry.source == BERT_PRETRAINED_MODEL_ARCHIVE_MAP["bert-base"]
    assert [u.rsplit("/", 1)[1] for u in (BERT_PRETRAINED_CONFIG_ARCHIVE_MAP["bert-base"], entry.source)] == list(entry.files)
    with torch.device("meta"):
        n = sum(p.numel() for p in TapeTransformer().parameters())
    assert round(n / 1e6) == int(entry.params.rstrip("M"))
    with pytest.raises(CheckpointError, match="not on the Hugging Face Hub"):
        from_pretrained("songlab/tape-bert-base")


def test_cli_evaluate_imported_release(tmp_hub, tmp_path):
    torch.manual_seed(3)
    folder = _save(tape.ProteinBertModel(_small_config()), tmp_path / "release")
    out = tmp_path / "e"
    assert main(["evaluate", str(folder), "--n-labelled", "20", "--out", str(out), "--no-progress"]) == 0
    result = json.loads(next(out.rglob("*.json")).read_text())
    assert result["architecture"] == "TapeTransformer"
    assert main(["finetune", str(folder), "--seeds", "0", "--n-labelled", "20", "--epochs", "1", "--out",
                 str(tmp_path / "f"), "--no-progress"]) == 0
    assert json.loads(next((tmp_path / "f").rglob("*.json")).read_text())["architecture"] == "TapeTransformer"
