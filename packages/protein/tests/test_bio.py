"""Biopython interop on real proteins (CB513): Seq / SeqRecord / FASTA paths wherever a sequence is accepted, and
per-residue outputs as SeqRecords with letter_annotations."""

import numpy as np
import pytest
import torch
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord
from fmzoo.core import InputSpecError
from fmzoo.protein import TAPETokenizer, TapeTransformer
from fmzoo.protein.bio import annotate, as_sequences, read_records
from fmzoo.protein.data.secondary_structure import load_cb513
from fmzoo.protein.tasks.downstream import TapeHooks
from fmzoo.protein.tasks.features import residue_features


@pytest.fixture(scope="module")
def proteins():
    recs = [r for r in load_cb513() if len(r.sequence) < 150][:4]
    return recs


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TapeTransformer(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=100).eval()  # 98 residues: longer proteins are windowed


def test_seq_records_and_fasta_paths_give_the_str_features(proteins, model, tmp_path):
    seqs = [r.sequence for r in proteins]
    records = [SeqRecord(Seq(r.sequence), id=r.id, description="CB513") for r in proteins]
    fasta = tmp_path / "cb513.fasta"
    SeqIO.write(records, fasta, "fasta")
    want = residue_features(model, seqs)
    for inputs in (records, [Seq(s) for s in seqs], fasta, str(fasta), SeqIO.parse(str(fasta), "fasta")):
        got = residue_features(model, inputs)
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    tok = TAPETokenizer()
    assert np.array_equal(tok.encode(records[0]), tok.encode(seqs[0]))
    hooks = TapeHooks()
    for a, b in zip(hooks.collate(model, records), hooks.collate(model, seqs), strict=True):
        assert torch.equal(a, b)


def test_per_residue_outputs_as_letter_annotations(proteins, model):
    records = [SeqRecord(Seq(r.sequence), id=r.id, description="CB513") for r in proteins]
    feats = residue_features(model, records)
    states = [np.array(list("HEC"))[f[:, :3].argmax(1)] for f in feats]  # a per-residue prediction (3 states)
    out = annotate(records, ["".join(s) for s in states], "ss3")
    assert [r.id for r in out] == [r.id for r in records]
    for rec, s in zip(out, states, strict=True):
        assert "".join(rec.letter_annotations["ss3"]) == "".join(s) and len(rec.letter_annotations["ss3"]) == len(rec)
    assert all("ss3" not in r.letter_annotations for r in records)  # inputs untouched
    full = annotate([r.sequence for r in proteins], feats, "embedding")
    assert full[0].id == "seq0" and np.array_equal(np.asarray(full[0].letter_annotations["embedding"]), feats[0])
    with pytest.raises(InputSpecError, match="per-residue values"):
        annotate(records[:1], [feats[0][:-1]], "x")


def test_bad_inputs_are_clear_errors(proteins):
    with pytest.raises(InputSpecError, match="outside TAPE's IUPAC vocabulary"):
        TAPETokenizer().encode(Seq(proteins[0].sequence[:10] + "*"))
    with pytest.raises(InputSpecError, match="expected a protein sequence"):
        as_sequences([42])
    assert [str(r.seq) for r in read_records(proteins[0].sequence)] == [proteins[0].sequence]
