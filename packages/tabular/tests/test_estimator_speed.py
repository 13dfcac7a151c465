"""The estimators' cost at their defaults: the encoder runs over the training rows once per fit (frozen and end to
end), the defaults are the quick protocol's (``ESTIMATOR_DEFAULTS``), and progress bars show on a terminal only."""

import io
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from fmzoo.tabular import TabularSchema, TJEPAClassifier
from fmzoo.tabular.methods.tjepa import build_model
from fmzoo.tabular.tasks import estimators
from fmzoo.tabular.tasks.downstream import finetune_network

ARCH = dict(dim=8, depth=1, heads=2, ff_dim=16, pred_dim=8, pred_depth=1, pred_heads=2, pred_ff_dim=16)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({"size": rng.normal(size=n), "colour": rng.choice(["red", "blue", "green"], n),
                      "age": rng.integers(0, 50, n).astype(float)})
    y = np.where((X["size"] > 0) ^ (X["colour"] == "red"), "yes", "no")
    torch.manual_seed(0)
    return X, y, build_model(TabularSchema.fit(X), ARCH)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _encoder_rows(model, monkeypatch):
    """Count the rows each encoder forward of ``model``'s target encoder (and copies made of it) sees."""
    seen = []
    cls = type(model.target_encoder)
    forward = cls.forward

    def counting(self, x_num, x_cat, keep=None):
        seen.append((self.training, len(x_num)))
        return forward(self, x_num, x_cat, keep)

    monkeypatch.setattr(cls, "forward", counting)
    return seen


@pytest.mark.parametrize("finetune", [False, True])
def test_the_encoder_runs_over_the_training_rows_once_before_training(table, monkeypatch, finetune):
    X, y, model = table
    seen = _encoder_rows(model, monkeypatch)
    monkeypatch.setattr(estimators, "EMBED_BATCH", 128)  # several chunks
    clf = TJEPAClassifier(model, max_epochs=2, finetune=finetune, verbose=False).fit(X, y)
    eval_rows = sum(n for training, n in seen if not training)
    n_val = round(0.1 * len(X))
    # frozen: one pass over every row; end to end: that pass, then each epoch's validation pass (2 epochs)
    assert eval_rows == len(X) + (2 * n_val if finetune else 0)
    assert [n for training, n in seen if not training][:3] == [128, 128, 44]
    assert any(training for training, _ in seen) == finetune  # frozen: the encoder never trains
    assert clf.predict(X).shape == (len(X),)


def test_frozen_features_equal_the_model_embedding_and_finetune_statistics_match(table):
    X, y, model = table
    est = TJEPAClassifier(model, verbose=False)
    inputs = TabularSchema.from_dict(model.input_spec).transform(X)
    full = model.embed(*inputs).numpy()
    old = estimators.EMBED_BATCH
    try:
        estimators.EMBED_BATCH = 64
        chunked = est._embed(model, inputs)
    finally:
        estimators.EMBED_BATCH = old
    np.testing.assert_allclose(chunked, full, rtol=1e-6, atol=1e-6)
    rows = np.arange(0, len(X), 2)
    a, _ = finetune_network(model, inputs, rows, "mlp", 2, seed=0)
    b, _ = finetune_network(model, inputs, rows, "mlp", 2, seed=0, features=full[rows])
    torch.testing.assert_close(b.mean, a.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.std, a.std, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="features: expected shape"):
        finetune_network(model, inputs, rows, "mlp", 2, features=full)


def test_defaults_are_the_quick_protocol(table, monkeypatch):
    X, y, model = table
    calls = []
    fit_head = estimators.fit_head
    monkeypatch.setattr(estimators, "fit_head", lambda *a, **k: calls.append(k) or fit_head(*a, **{**k, "max_epochs": 1}))
    TJEPAClassifier(model, verbose=False).fit(X, y)
    TJEPAClassifier(model, finetune=True, verbose=False).fit(X, y)
    TJEPAClassifier(model, max_epochs=7, head_kwargs={"lr": 3e-4}, verbose=False).fit(X, y)
    assert [(k["lr"], k["max_epochs"], k["patience"], k["batch_size"]) for k in calls] == [
        (1e-3, 15, 16, 512), (1e-3, 5, 16, 512), (3e-4, 7, 16, 512)]
    assert list(calls[1]["module_lrs"].values()) == [1e-3]  # the encoder's lr, ENCODER_LR["pretrained"]


@pytest.mark.parametrize("verbose", [True, False])
def test_progress_bars_on_a_terminal_unless_verbose_is_false(table, monkeypatch, verbose):
    X, y, model = table
    out = _Terminal()
    monkeypatch.setattr(sys, "stderr", out)
    monkeypatch.setattr(estimators, "EMBED_BATCH", 128)
    monkeypatch.setattr(estimators, "PROGRESS_MININTERVAL", 0)  # a fast machine finishes 10 steps within one redraw
    clf = TJEPAClassifier(model, max_epochs=2, head_kwargs={"batch_size": 64}, verbose=verbose).fit(X, y)
    clf.predict_proba(X)
    text = out.getvalue()
    if verbose:
        assert "T-JEPA features" in text and "training mlp head" in text and "epoch 2/2" in text
        assert "/10 " in text  # 2 epochs x 5 steps (270 training rows: 4 batches of 64 and one of 14)
    else:
        assert text == ""


def test_progress_bars_are_silent_off_a_terminal(table, monkeypatch):
    X, y, model = table
    out = io.StringIO()  # not a TTY: a log file or a notebook's captured stream
    monkeypatch.setattr(sys, "stderr", out)
    TJEPAClassifier(model, max_epochs=1).fit(X, y)
    assert out.getvalue() == ""


# ---------------------------------------------------------------- the tables' quick mode: no repeated work


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_linear_probe_is_seed_free(task):
    """compare_on_dataset fits the linear probe once for rows every seed shares: valid only while the probe's solver
    draws no random numbers (the seed reaches LogisticRegression's random_state, which lbfgs does not use)."""
    from fmzoo.core.evaluation import linear_probe

    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(400, 12)), rng.normal(size=(200, 12))
    w = rng.normal(size=12)
    y, yt = x @ w + rng.normal(size=400), xt @ w
    if task == "classification":
        y, yt = (y > 0).astype(int), (yt > 0).astype(int)
    a, b = linear_probe(x, y, xt, yt, task=task, seed=0), linear_probe(x, y, xt, yt, task=task, seed=7)
    assert a == b


def test_quick_table_fits_the_all_label_linear_probe_once(data_root, monkeypatch):
    from fmzoo.core import evaluation
    from fmzoo.tabular import TJEPA
    from fmzoo.tabular.tasks.downstream import compare_on_dataset

    calls = []
    probe = evaluation.linear_probe
    monkeypatch.setattr(evaluation, "linear_probe", lambda *a, **k: calls.append(len(a[0])) or probe(*a, **k))
    rows = compare_on_dataset(TJEPA.from_pretrained("fmzoo/tjepa-adult"), "adult", seeds=(0, 1, 2), heads=("linear",),
                              label_fractions=(None, 0.01), max_rows=(800, 400))
    # per input (raw, T-JEPA): one fit on all 800 labelled rows, then one per seed on its own 1 % (8 rows)
    assert calls.count(800) == 2 and len(calls) == 2 * (1 + 3)
    full = [r for r in rows if r["fraction"] is None]
    assert len(full) == 2 and all(len(r["values"]) == 3 and len(set(r["values"])) == 1 for r in full)
