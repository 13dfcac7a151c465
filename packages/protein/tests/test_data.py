import numpy as np
import pytest
from fmzoo.core import InputSpecError
from fmzoo.protein.data.fasta import load_pretraining_sequences, read_fasta
from fmzoo.protein.data.gb1 import GB1_SITES, load_gb1
from fmzoo.protein.data.overlap import drop_overlapping, evaluation_sequences
from fmzoo.protein.data.secondary_structure import load_cb513, load_flip_ss


def test_flip_secondary_structure_real(data_root):
    recs = load_flip_ss(data_root / "proteins" / "flip_secondary_structure")
    counts = {s: sum(r.split == s for r in recs) for s in ("train", "valid", "test")}
    assert counts == {"train": 9712, "valid": 1080, "test": 364}
    r = recs[0]
    assert r.id == "1es5-A" and len(r.ss3) == len(r.sequence)
    assert set(np.unique(np.concatenate([x.ss3 for x in recs[:200]]))) <= {-1, 0, 1, 2}
    assert (r.ss3[:2] == -1).all()  # mask.fasta starts with 00 for 1es5-A


def test_cb513_real(data_root):
    cb = load_cb513(data_root / "proteins" / "cb513")
    assert len(cb) == 511
    assert sum(len(r.sequence) for r in cb) == 144011
    ss3 = np.concatenate([r.ss3 for r in cb])
    ss8 = np.concatenate([r.ss8 for r in cb])
    assert ((ss3 >= 0) == (ss8 >= 0)).all()
    assert 0.95 < (ss3 >= 0).mean() < 0.99  # disorder mask keeps 97.6%
    assert set(np.unique(ss8[ss8 >= 0])) == set(range(8))


def test_pretraining_sequences_exclude_flip_test(data_root):
    train_only = load_pretraining_sequences(data_root / "proteins" / "flip_secondary_structure")
    everything = load_pretraining_sequences(data_root / "proteins" / "flip_secondary_structure", include_test=True)
    assert len(train_only) == 9712 + 1080 and len(everything) == 11156


def test_pretraining_overlap_with_evaluation_sets_is_dropped(data_root):
    seqs = load_pretraining_sequences(data_root / "proteins" / "flip_secondary_structure")
    refs = evaluation_sequences(["cb513", "gb1"])
    cb = [r.sequence for r in load_cb513(data_root / "proteins" / "cb513")]
    assert len(refs) == 511 + 8733 and all(len(q) == 56 for q in refs[511:])
    assert len(set(cb) & set(seqs)) == 2  # two CB513 proteins are verbatim in FLIP's train proteins
    # a planted CB513 fragment and a GB1 variant domain are caught; an unrelated protein is kept
    planted = ["MK" + cb[5][10:40] + "GG", "AA" + refs[600] + "AA"]
    kept, n = drop_overlapping(seqs + planted, refs, k=20)
    assert n == 15 + 2 and not set(kept) & set(cb) and not set(planted) & set(kept)
    assert drop_overlapping(["ACDEFGHIKLMNPQRSTVWY" * 3], refs, k=20) == (["ACDEFGHIKLMNPQRSTVWY" * 3], 0)
    with pytest.raises(ValueError, match="unknown evaluation set"):
        evaluation_sequences(["ts115"])


def test_gb1_real(data_root):
    d = load_gb1("two_vs_rest", data_root / "proteins" / "flip_gb1")
    assert len(d["train"]) + len(d["valid"]) == 424 and len(d["test"]) == 8309
    seq = d["train"]["sequence"].iloc[0]
    assert len(seq) == 265 and all(len(s) == 265 for s in d["test"]["sequence"][:50])
    sites = {"".join(s[i] for i in GB1_SITES) for s in d["test"]["sequence"]}
    assert len(sites) == len(d["test"])  # every variant is a distinct combination at V39 D40 G41 V54
    assert "VDGV" not in sites  # the wild type (0 mutations) is in train, not in the test "rest"
    # every variant differs from the others only at the four varied sites
    other = [i for i in range(265) if i not in GB1_SITES]
    ref = np.frombuffer(seq.encode(), dtype=np.uint8)[other]
    for s in d["test"]["sequence"][:200]:
        assert (np.frombuffer(s.encode(), dtype=np.uint8)[other] == ref).all()
    with pytest.raises(ValueError):
        load_gb1("four_vs_rest")


def test_fasta_errors(tmp_path):
    (tmp_path / "empty.fa").write_text("")
    (tmp_path / "bad.fa").write_text("MKTAYI\n")
    (tmp_path / "trunc.fa").write_text(">a\nMKT\n>b\n")
    (tmp_path / "ok.fa").write_text(">a desc\nMKT\nAYI\n>b\nGG\n")
    with pytest.raises(InputSpecError, match="empty"):
        read_fasta(tmp_path / "empty.fa")
    with pytest.raises(InputSpecError, match="not FASTA"):
        read_fasta(tmp_path / "bad.fa")
    with pytest.raises(InputSpecError, match="truncated"):
        read_fasta(tmp_path / "trunc.fa")
    with pytest.raises(FileNotFoundError):
        read_fasta(tmp_path / "missing.fa")
    assert read_fasta(tmp_path / "ok.fa") == [("a", "a desc", "MKTAYI"), ("b", "b", "GG")]
