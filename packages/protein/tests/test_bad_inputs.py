"""Bad inputs (issue "reliability"): each is refused with fmzoo.core.InputSpecError whose message says what was
expected and what was given, or handled as documented (a long sequence is cropped or windowed with a CropWarning, a
SeqRecord without an id is embedded); a refused ``fmzoo evaluate --data`` exits 2 and writes nothing."""

import re

import numpy as np
import pytest
import torch
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord
from fmzoo.core import InputSpecError
from fmzoo.core.cli import main
from fmzoo.protein.bio import annotate, as_sequences, read_records
from fmzoo.protein.data.fasta import read_fasta, read_labelled_fasta
from fmzoo.protein.data.secondary_structure import load_flip_ss
from fmzoo.protein.models import TapeTransformer
from fmzoo.protein.spec import CropWarning, TAPETokenizer
from fmzoo.protein.tasks.features import residue_features

CODES = r"expected upper-case one-letter codes ABCDEFGHIKLMNOPQRSTUVWXYZ \(X = unknown residue\)"


@pytest.mark.parametrize("seq, match", [
    ("MKTJYI", r"1 character\(s\) outside TAPE's IUPAC vocabulary \('J'@3\); " + CODES),
    ("MKT*", r"\('\*'@3\); " + CODES),
    ("MK-TA", r"\('-'@2\); " + CODES),
    ("MK1TA", r"\('1'@2\); " + CODES),
    ("MK TA", r"\(' '@2\); " + CODES),
    ("mktayi", r"6 character\(s\) outside .*\('m'@0, 'k'@1, 't'@2, 'a'@3, 'y'@4, 'i'@5\); " + CODES),
    ("MKTé", r"non-ASCII characters \['é'\]; expected IUPAC one-letter codes"),
    ("", r"expected a non-empty protein sequence, got ''"),
    (None, r"expected a protein sequence \(str, Bio\.Seq\.Seq or Bio\.SeqRecord\.SeqRecord\), got NoneType"),
    (b"MKT", r"expected a protein sequence .*got bytes"),
])
def test_bad_sequences(seq, match):
    with pytest.raises(InputSpecError, match=match):
        TAPETokenizer().encode(seq)


def test_unknown_letters_map_to_x_only_when_asked_and_lower_case_never():
    assert TAPETokenizer(unknown="X").decode(TAPETokenizer(unknown="X").encode("MKJ")) == "<cls>MKX<sep>"
    with pytest.raises(InputSpecError, match=r"\('k'@1\)"):  # lower case is refused, not guessed
        TAPETokenizer(unknown="X").encode("MkT")


def test_a_bad_sequence_in_a_batch_is_named_by_position():
    with pytest.raises(InputSpecError, match=r"sequence 1 of 3: protein sequence has 1 character\(s\) .*\('x'@1\)"):
        TAPETokenizer().batch_encode(["MKT", "AxD", "GG"])
    with pytest.raises(InputSpecError, match=r"expected a non-empty list of protein sequences, got none"):
        TAPETokenizer().batch_encode([])
    with pytest.raises(InputSpecError, match=r"got the string 'MKT' \(wrap one sequence in a list\)"):
        TAPETokenizer().batch_encode("MKT")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TapeTransformer(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=12).eval()


def test_sequences_longer_than_the_model(tiny):
    """max_length: the model refuses; the tokenizer crops when asked, with a warning; residue_features embeds
    windows of the model's positions, with a warning, and keeps every residue."""
    long = "MKTAYIAKQRQISFVKSHFSRQ"  # 22 residues; the model takes 10
    with pytest.raises(InputSpecError, match=r"sequence length 24 \(with <cls>/<sep>\) exceeds the model's "
                                             r"max_position_embeddings=12: expected at most 10 residues"):
        tiny.embed(*TAPETokenizer().batch_encode([long]))
    with pytest.warns(CropWarning, match=r"1 of 2 sequences are longer than max_length=12 tokens \(10 residues; the "
                                         r"longest has 22\): cropped to their first 10 residues"):
        ids, mask = TAPETokenizer().batch_encode([long, "MKT"], max_length=12)
    assert ids.shape == (2, 12) and TAPETokenizer().decode(ids[0]) == f"<cls>{long[:10]}<sep>"
    with pytest.warns(CropWarning, match=r"1/1 sequences exceed the model's 10 positions: embedded in consecutive "
                                         r"windows of 10 residues"):
        (feats,) = residue_features(tiny, [long])
    assert feats.shape == (22, 16)
    with torch.no_grad():  # the first window is the first 10 residues on their own
        first = tiny.embed(*TAPETokenizer().batch_encode([long[:10]]))[0][0, 1:11].numpy()
    assert np.allclose(feats[:10], first, atol=1e-5)


def test_seqrecord_without_id_is_embedded_and_annotated(tiny):
    rec = SeqRecord(Seq("MKTAYI"))
    assert rec.id == "<unknown id>"
    (feats,) = residue_features(tiny, [rec])
    assert feats.shape == (6, 16)
    assert np.allclose(feats, residue_features(tiny, ["MKTAYI"])[0])
    (out,) = annotate([rec], [list(range(6))])
    assert out.id == "<unknown id>" and out.letter_annotations["prediction"] == list(range(6))
    with pytest.raises(InputSpecError, match=r"expected a protein sequence .*got NoneType"):
        residue_features(tiny, [SeqRecord(None)])


BAD_FASTA = {
    "empty": ("", r"is empty; expected FASTA records starting with '>'"),
    "no records": ("MKTAYI\nGG\n", r"is not FASTA: the first non-blank character is 'M', expected '>'"),
    "headers only": (">a\n>b\n", r"record 'a' has an empty sequence \(truncated file\?\)"),
    "bare >": (">\nMKT\n", r"record 0 has no id \(a bare '>' line\); expected '>id \.\.\.'"),
    "binary": (b"\xff\xfe>a\n", r"is not a text FASTA file .*expected records '>id description'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FASTA))
def test_bad_fasta_files(tmp_path, tiny, case):
    text, match = BAD_FASTA[case]
    path = tmp_path / "x.fasta"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    for read in (read_fasta, read_records, lambda p: residue_features(tiny, p)):
        with pytest.raises(InputSpecError, match=match):
            read(path)


def test_fasta_path_that_does_not_exist(tmp_path):
    with pytest.raises(InputSpecError, match=r"no FASTA file '.*gone\.fasta'; expected an existing FASTA path"):
        as_sequences(str(tmp_path / "gone.fasta"))  # not read as the letters of a sequence


def test_duplicate_ids(tmp_path):
    """Ids that pair sequences with labels must be unique; embedding a FASTA keeps every record in order."""
    path = tmp_path / "dup.fasta"
    path.write_text(">a TARGET=1 SET=train\nMKT\n>b TARGET=0 SET=train\nGGA\n>a TARGET=0 SET=test\nMKA\n")
    match = r"the id 'a' names records 0 and 2; expected each id once"
    with pytest.raises(InputSpecError, match=match):
        read_fasta(path)
    with pytest.raises(InputSpecError, match=match):
        read_labelled_fasta(path)
    assert [(r.id, str(r.seq)) for r in read_records(path)] == [("a", "MKT"), ("b", "GGA"), ("a", "MKA")]


def _ss_folder(root, sequences, labels, masks):
    root.mkdir()
    for name, records in (("sequences", sequences), ("sampled", labels), ("mask", masks)):
        (root / f"{name}.fasta").write_text("".join(f">{rid}\n{s}\n" for rid, s in records))
    return root


def test_labels_whose_ids_do_not_match_the_sequences(tmp_path):
    seqs, masks = [("p1", "MKTA"), ("p2", "GGAV")], [("p1", "1111"), ("p2", "1101")]
    root = _ss_folder(tmp_path / "ok", seqs, [("p1 SET=train", "HHEC"), ("p2 SET=test", "CCCC")], masks)
    assert [(r.id, r.split, r.ss3.tolist()) for r in load_flip_ss(root)] == [("p1", "train", [0, 0, 1, 2]),
                                                                            ("p2", "test", [2, 2, -1, 2])]
    root = _ss_folder(tmp_path / "unknown", seqs, [("p1 SET=train", "HHEC"), ("p3 SET=train", "CCCC")], masks)
    with pytest.raises(InputSpecError, match=r"the labels of 'p3' \(sampled\.fasta\) have no record in sequences\.fasta "
                                             r"and mask\.fasta; expected every labelled id in"):
        load_flip_ss(root)
    root = _ss_folder(tmp_path / "nomask", seqs, [("p2 SET=train", "HHEC")], masks[:1])
    with pytest.raises(InputSpecError, match=r"'p2' \(sampled\.fasta\) have no record in mask\.fasta;"):
        load_flip_ss(root)
    root = _ss_folder(tmp_path / "dup", [("p1", "MKTA"), ("p1", "GGAV")], [("p1 SET=train", "HHEC")], masks)
    with pytest.raises(InputSpecError, match=r"sequences\.fasta': the id 'p1' names records 0 and 1"):
        load_flip_ss(root)
    root = _ss_folder(tmp_path / "length", seqs, [("p1 SET=train", "HHE")], masks)
    with pytest.raises(InputSpecError, match=r"'p1': sequence/labels/mask lengths differ \(4/3/4\)"):
        load_flip_ss(root)


def _labelled(n=10):
    return "".join(f">v{i} TARGET={i % 2} SET={'train' if i < 8 else 'test'}\nMKTAYIAKQRQISFVKSH{'A' * i}\n"
                   for i in range(n))


@pytest.mark.parametrize("text, match", [
    (_labelled().replace("MKTAYIAK", "mktayiak", 1), r"x\.fasta': record 'v0': protein sequence has 8 character\(s\) "
                                                     r"outside TAPE's IUPAC vocabulary \('m'@0"),
    (_labelled().replace("MKTAYIAK", "MKTJYIAK", 1), r"record 'v0': .*\('J'@3\); " + CODES),
    (_labelled().replace(">v1 ", ">v0 "), r"the id 'v0' names records 0 and 1; expected each id once"),
    ("", r"is empty; expected FASTA records starting with '>'"),
    (_labelled().replace(" SET=test", " SET=train"), r"has no SET=test record; expected both SET=train and SET=test"),
    (_labelled().replace("TARGET=1 ", "", 1), r"record 'v1' has the description 'v1 SET=train'; expected FLIP's fields"),
])
def test_bad_labelled_fasta_through_the_cli(tmp_path, tmp_hub, capsys, text, match):
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.fasta").write_text(text)
    out = tmp_path / "out"
    assert main(["evaluate", "fmzoo/tape-transformer-small", "--data", str(data / "x.fasta"), "--seeds", "0",
                 "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fmzoo evaluate: error:" in err and re.search(match, err), err
    assert not out.exists() and [p.name for p in data.iterdir()] == ["x.fasta"]
