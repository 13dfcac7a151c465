import numpy as np
import torch
from fmzoo.core.runtime import seed_everything
from fmzoo.protein import TapeTransformer
from fmzoo.protein.tasks.contact import precision_at_l5
from fmzoo.protein.tasks.features import one_hot_window, residue_features
from fmzoo.protein.tasks.gb1 import fit_value_head, one_hot_sites, spearman
from fmzoo.protein.tasks.secondary_structure import cv_accuracy, probe_accuracy, structural_class


def test_precision_at_l5_on_constructed_maps():
    L = 30
    labels = torch.zeros(1, L, L, dtype=torch.long)
    for i in range(L - 8):
        labels[0, i, i + 8] = labels[0, i + 8, i] = 1
    labels[0, :2] = -1
    perfect = torch.stack([-labels.float(), labels.float()], -1) * 5
    assert precision_at_l5(perfect, labels, torch.tensor([L])) == 1.0
    assert precision_at_l5(-perfect, labels, torch.tensor([L])) == 0.0
    # short-range pairs (|i-j| < 6) never count, even when predicted with certainty
    near = torch.zeros(1, L, L, 2)
    near[0, torch.arange(L - 1), torch.arange(1, L), 1] = 10
    lab = labels.clone()
    lab[0, torch.arange(L - 1), torch.arange(1, L)] = 1
    assert precision_at_l5(near, lab, torch.tensor([L])) < 1.0


def test_structural_class_rules():
    assert structural_class(np.array([0] * 50 + [2] * 50)) == 0
    assert structural_class(np.array([1] * 40 + [2] * 60)) == 1
    assert structural_class(np.array([0] * 30 + [1] * 30 + [2] * 40)) == 2
    assert structural_class(np.array([2] * 95 + [0] * 5)) == 3


def test_probes_learn_separable_labels():
    rng = np.random.default_rng(0)
    feats, labels = [], []
    for _ in range(20):
        y = rng.integers(0, 3, 50)
        x = rng.normal(size=(50, 8)).astype(np.float32)
        x[np.arange(50), y] += 4
        y[:3] = -1
        feats.append(x)
        labels.append(y)
    assert probe_accuracy(feats[:10], labels[:10], feats[10:], labels[10:]) > 0.95
    assert cv_accuracy(feats, labels, folds=2) > 0.95
    shuffled = [rng.permutation(y) for y in labels]
    assert probe_accuracy(feats[:10], shuffled[:10], feats[10:], shuffled[10:]) < 0.5


def test_value_head_and_spearman():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = X[:, 0] * 2 + np.sin(X[:, 1])
    seed_everything(0)  # the head's initialisation (the runners seed per seed)
    pred = fit_value_head(X[:150], y[:150], X[150:])
    assert spearman(y[150:], pred) > 0.8
    assert abs(spearman(y[150:], rng.normal(size=50))) < 0.4


def test_feature_helpers():
    m = TapeTransformer(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=12)
    feats = residue_features(m, ["MKT", "MKTAYIAKQRQISFV"])  # second is longer than 10 residues: windows
    assert feats[0].shape == (3, 16) and feats[1].shape == (15, 16)
    oh = one_hot_window(["MK"], k=1)[0]
    assert oh.shape == (2, 75) and oh.sum() == 4
    X = one_hot_sites(["A" * 60])
    assert X.shape == (1, 80) and X.sum() == 4


def test_finetune_protocol_runs_on_real_proteins(data_root):
    from fmzoo.protein.data.secondary_structure import load_cb513, load_flip_ss
    from fmzoo.protein.tasks.secondary_structure import finetune

    torch.manual_seed(0)
    flip = [r for r in load_flip_ss(data_root / "proteins" / "flip_secondary_structure") if r.split == "train"][:16]
    cb = load_cb513(data_root / "proteins" / "cb513")[:8]
    bb = TapeTransformer(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=1024)
    seed_everything(0)  # the head's initialisation and dropout (the runner seeds per seed)
    res = finetune(bb, [r.sequence for r in flip], [r.ss3 for r in flip], [r.sequence for r in cb],
                   [r.ss3 for r in cb], 3, epochs=1, lr=1e-3, max_tokens=2048)
    assert res["residues"] == sum(int((r.ss3 >= 0).sum()) for r in cb)
    assert 0.2 < res["accuracy"] < 0.9
    # the backbone was copied, not shared: fine-tuning leaves the pretrained model untouched
    assert not torch.equal(res["model"].bert.embeddings.word_embeddings.weight, bb.bert.embeddings.word_embeddings.weight)


def test_masked_marginal_scores():
    import pytest
    from fmzoo.core import InputSpecError
    from fmzoo.protein.spec import IUPAC_VOCAB
    from fmzoo.protein.tasks.zero_shot import masked_marginal_scores

    torch.manual_seed(0)
    model = TapeTransformer(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=64).eval()
    wt = "MKVLDGAVTE"
    singles = ["MKWLDGAVTE", "MKVLDGAVPE"]
    double = "MKWLDGAVPE"
    s = masked_marginal_scores(model, wt, [wt, *singles, double])
    assert s[0] == 0.0  # the wild type against itself
    assert abs(s[3] - (s[1] + s[2])) < 1e-5  # sites masked together: a double mutant adds its two log-odds
    # the single mutant at position 2 (V -> W), read off the model's own forward with positions 2 and 8 masked
    from fmzoo.protein.spec import MASK_ID, TAPETokenizer

    ids = torch.as_tensor(TAPETokenizer().encode(wt))[None]
    ids[0, [3, 9]] = MASK_ID
    logp = torch.log_softmax(model(ids)["logits"][0, 3], -1)
    assert abs(s[1] - float(logp[IUPAC_VOCAB["W"]] - logp[IUPAC_VOCAB["V"]])) < 1e-5
    # a model that prefers W everywhere scores the W variant above the wild type, and above the P variant
    with torch.no_grad():
        model.mlm.bias[IUPAC_VOCAB["W"]] += 20.0
    s = masked_marginal_scores(model, wt, [wt, *singles])
    assert s[1] > 5.0 and s[1] > s[2]
    with pytest.raises(InputSpecError, match="substitutions only"):
        masked_marginal_scores(model, wt, ["MKVLDGAVT"])
    with pytest.raises(InputSpecError, match="outside TAPE's IUPAC vocabulary"):
        masked_marginal_scores(model, wt, ["MKVLDGAVT*"])


def test_stacked_residues_give_the_same_rows_and_accuracies():
    """CB513 stacked once (StackedResidues) gives exactly the rows of stacking per fold, so the same accuracies."""
    from fmzoo.protein.tasks.secondary_structure import StackedResidues, _stack, cv_accuracy, probe_accuracy

    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(int(n), 6)).astype(np.float32) for n in rng.integers(3, 12, 15)]
    labels = [rng.integers(-1, 3, len(f)) for f in feats]
    st = StackedResidues(feats, labels)
    for subset in ([0, 3, 4, 14], [7], list(range(15))):
        X, y = st.rows(subset)
        Xr, yr = _stack([feats[i] for i in subset], [labels[i] for i in subset])
        assert np.array_equal(X, Xr) and np.array_equal(y, yr)
    assert cv_accuracy(feats, labels, folds=3, seed=1) == cv_accuracy(None, None, folds=3, seed=1, stacked=st)
    assert probe_accuracy(feats[:8], labels[:8], feats[8:], labels[8:], seed=2) == probe_accuracy(
        feats[:8], labels[:8], None, None, seed=2, test=StackedResidues(feats[8:], labels[8:]))
