import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.protein.spec import IUPAC_VOCAB, CropWarning, TAPETokenizer

TAPE_ORDER = ["<pad>", "<mask>", "<cls>", "<sep>", "<unk>", *"ABCDEFGHIKLMNOPQRSTUVWXYZ"]


def test_vocab_is_tapes_exactly():
    assert list(IUPAC_VOCAB) == TAPE_ORDER
    assert list(IUPAC_VOCAB.values()) == list(range(30))
    published = json.loads((Path(__file__).parent / "fixtures" / "tape_layout.json").read_text())["vocab"]
    assert published == dict(IUPAC_VOCAB)  # dumped from tape.tokenizers.TAPETokenizer(vocab="iupac")


def test_encode_matches_tape():
    tok = TAPETokenizer()
    # TAPE: TAPETokenizer('iupac').encode('MKTX') == [2, 16, 14, 23, 27, 3]
    assert tok.encode("MKTX").tolist() == [2, 16, 14, 23, 27, 3]
    assert tok.encode("BZUO").tolist() == [2, 6, 29, 24, 18, 3]
    assert tok.decode(tok.encode("ACDW")) == "<cls>ACDW<sep>"


@pytest.mark.parametrize("bad,char", [("MKTaYI", "'a'"), ("MKT*", "'*'"), ("MK-T", "'-'"), ("MKJT", "'J'"),
                                      ("MK T", "' '"), ("MK1", "'1'")])
def test_invalid_characters_are_clear_errors(bad, char):
    with pytest.raises(InputSpecError, match=char):
        TAPETokenizer().encode(bad)


def test_error_names_position_and_alternatives():
    with pytest.raises(InputSpecError, match=r"'J'@2.*one-letter codes ABCDEFGHIKLMNOPQRSTUVWXYZ"):
        TAPETokenizer().encode("MKJ")
    with pytest.raises(InputSpecError, match="non-ASCII"):
        TAPETokenizer().encode("MKÅ")
    with pytest.raises(InputSpecError, match="non-empty"):
        TAPETokenizer().encode("")
    with pytest.raises(InputSpecError, match="str"):
        TAPETokenizer().encode(b"MK")


def test_unknown_letters_policy():
    assert TAPETokenizer(unknown="X").encode("MJK").tolist() == [2, 16, 27, 14, 3]
    assert TAPETokenizer(unknown="unk").encode("MJK").tolist() == [2, 16, 4, 14, 3]
    with pytest.raises(InputSpecError):  # non-letters stay errors whatever the policy
        TAPETokenizer(unknown="X").encode("MK*")
    with pytest.raises(ValueError):
        TAPETokenizer(unknown="drop")


def test_batch_encode_pads_and_crops():
    ids, mask = TAPETokenizer().batch_encode(["MKT", "A"])
    assert ids.tolist() == [[2, 16, 14, 23, 3], [2, 5, 3, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    with pytest.warns(CropWarning, match=r"1 of 1 sequences are longer than max_length=4 tokens .* first 2 residues"):
        ids, mask = TAPETokenizer().batch_encode(["MKTAYI"], max_length=4)
    assert ids.tolist() == [[2, 16, 14, 3]] and mask.dtype == torch.long
    assert np.array_equal(TAPETokenizer().residue_ids("MK"), [16, 14])
