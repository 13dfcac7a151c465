"""TJEPAClassifier / TJEPARegressor are scikit-learn estimators: sklearn's own estimator checks (each a test), and
clone, get_params/set_params, score, set_output, Pipeline, cross_val_score and GridSearchCV on a schema-bound
checkpoint (a tiny one, and the shipped Adult checkpoint on real Adult rows)."""

import numpy as np
import pandas as pd
import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.tabular import TJEPA, TabularSchema, TJEPAClassifier, TJEPARegressor
from fmzoo.tabular.methods.tjepa import build_model
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

ARCH = dict(dim=8, depth=1, heads=2, ff_dim=16, pred_dim=8, pred_depth=1, pred_heads=2, pred_ff_dim=16)
# A randomly initialised tiny T-JEPA on each check's own columns (the scratch control: a dict backbone), and head
# settings that learn sklearn's toy problems in a few hundred steps (check_classifiers_train asks for accuracy > 0.83
# on blobs, check_regressors_train for R^2 > 0.5 on its noisy linear problem: 25 epochs at lr 1e-2 reached 0.68-0.74
# over seeds 0-2, 10 epochs 0.09-0.30).
FAST = {"lr": 1e-2, "batch_size": 32}
CHECKED = [TJEPAClassifier(ARCH, max_epochs=10, head_kwargs=FAST), TJEPARegressor(ARCH, max_epochs=25, head_kwargs=FAST)]


def expected_failures(estimator) -> dict:
    return {
        # float32 networks: a row's output moves by about one float32 ulp (3e-8 for a probability of 0.2) with its
        # position in the batch (the BLAS kernels block rows differently), above the check's rtol of 1e-7
        "check_methods_sample_order_invariance": "float32 network: outputs differ by ~1 ulp (3e-8) with a row's "
                                                 "position in the batch, above the check's rtol=1e-7",
    }


@parametrize_with_checks(CHECKED, expected_failed_checks=expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    if getattr(check, "func", check).__name__ == "check_array_api_input":
        # sklearn skips this check unless SCIPY_ARRAY_API is set before scipy is imported; it tests array-API
        # dispatch, which these torch-backed estimators do not offer: their tags must say so
        assert get_tags(estimator).array_api_support is False
        return
    check(estimator)


def test_tags_declare_a_table_with_categories():
    for est in CHECKED:
        tags = get_tags(est)
        assert tags.input_tags.string and not tags.input_tags.categorical and not tags.input_tags.sparse
        assert not tags.input_tags.allow_nan and tags.transformer_tags.preserves_dtype == []
    assert is_classifier(CHECKED[0]) and is_regressor(CHECKED[1])


# ---------------------------------------------------------------- a schema-bound checkpoint (mixed columns)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 120
    X = pd.DataFrame({"size": rng.normal(size=n), "colour": rng.choice(["red", "blue", "green"], n),
                      "age": rng.integers(0, 50, n).astype(float)}, index=pd.Index(np.arange(1000, 1000 + n), name="id"))
    y = np.where((X["size"] > 0) ^ (X["colour"] == "red"), "yes", "no")
    torch.manual_seed(0)
    return X, y, build_model(TabularSchema.fit(X), ARCH)


def test_params_are_stored_unchanged_and_clone_copies_them(table):
    X, y, model = table
    kw = {"lr": 1e-2}
    est = TJEPAClassifier(model, head_kwargs=kw, max_epochs=3)
    assert est.get_params()["head_kwargs"] is kw and est.backbone is model  # nothing copied or validated in __init__
    assert est.get_params() == {"backbone": model, "head": "mlp", "val_fraction": 0.1, "max_epochs": 3, "seed": 0,
                                "extra": "error", "head_kwargs": kw, "finetune": False, "verbose": True}
    twin = clone(est)
    assert twin.get_params()["head_kwargs"] == kw and twin.get_params()["head_kwargs"] is not kw
    assert twin.set_params(max_epochs=2, head="resnet") is twin and (twin.max_epochs, twin.head) == (2, "resnet")
    with pytest.raises(ValueError, match="Invalid parameter 'epochs'"):
        twin.set_params(epochs=2)
    est.fit(X, y)
    assert kw == {"lr": 1e-2}  # fit does not write into the caller's dict
    assert est.n_features_in_ == 3 and list(est.feature_names_in_) == ["size", "colour", "age"]
    assert not hasattr(clone(est), "head_")  # a clone is unfitted


def test_score_predict_and_pandas_output_keep_the_index(table):
    X, y, model = table
    clf = TJEPAClassifier(model, max_epochs=30, head_kwargs=FAST).fit(X, y)
    assert 0.5 < clf.score(X, y) <= 1.0
    proba, pred, z = clf.predict_proba(X), clf.predict(X), clf.transform(X)
    assert type(proba) is np.ndarray and type(pred) is np.ndarray and type(z) is np.ndarray  # arrays by default
    assert z.shape == (len(X), model.embedding_dim) and list(clf.classes_) == ["no", "yes"]
    clf.set_output(transform="pandas")
    zf, pf, yf = clf.transform(X), clf.predict_proba(X), clf.predict(X)
    assert zf.index.equals(X.index) and pf.index.equals(X.index) and yf.index.equals(X.index)
    assert list(pf.columns) == ["no", "yes"] and np.allclose(pf.to_numpy(), proba) and (yf.to_numpy() == pred).all()
    assert list(zf.columns[:2]) == ["reg0__0", "reg0__1"] and "colour__7" in zf.columns
    assert np.array_equal(zf.to_numpy(), z)
    shuffled = X.sample(frac=1.0, random_state=0)  # rows and their index travel together
    assert clf.predict(shuffled).loc[X.index[:5]].tolist() == pred[:5].tolist()
    clf.set_output(transform="default")
    assert type(clf.predict(X)) is np.ndarray
    reg = TJEPARegressor(model, max_epochs=2).set_output(transform="pandas").fit(X, X["age"] / 10)
    assert reg.predict(X).index.equals(X.index) and np.isfinite(reg.score(X, X["age"] / 10))


def test_cross_val_score_gridsearch_and_pipeline(table):
    X, y, model = table
    scores = cross_val_score(TJEPAClassifier(model, max_epochs=2), X, y, cv=2)
    assert scores.shape == (2,) and np.all((0 <= scores) & (scores <= 1))
    grid = GridSearchCV(TJEPAClassifier(model, max_epochs=2), {"head": ["mlp", "resnet"]}, cv=2).fit(X, y)
    assert grid.best_params_["head"] in ("mlp", "resnet") and grid.predict(X.iloc[:4]).shape == (4,)
    w = "target_encoder.tokenizer.num_weight"  # clone deep-copies a TJEPA backbone: same weights, another object
    assert torch.equal(grid.best_estimator_.backbone.state_dict()[w], model.state_dict()[w])
    pipe = make_pipeline(TJEPAClassifier(model, max_epochs=2)).fit(X, y)
    assert pipe.predict(X.iloc[:3]).shape == (3,)


def test_fit_and_finetune_leave_the_backbone_untouched(table):
    X, y, model = table
    before = {k: v.clone() for k, v in model.state_dict().items()}
    TJEPAClassifier(model, max_epochs=2, finetune=True).fit(X, y)
    TJEPARegressor(model, max_epochs=2).fit(X, np.arange(len(X), dtype=float))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_refit_is_deterministic_and_unfitted_use_is_refused(table):
    X, y, model = table
    a = TJEPAClassifier(model, max_epochs=3, seed=1)
    p1 = a.fit(X, y).predict_proba(X)
    assert np.array_equal(a.fit(X, y).predict_proba(X), p1)
    with pytest.raises(NotFittedError, match="not fitted"):
        TJEPAClassifier(model).predict(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        TJEPARegressor(ARCH).transform(X)  # a dict backbone has no schema before fit
    # a checkpoint's frozen representation does not depend on training rows: transform works before fit
    assert TJEPAClassifier(model).transform(X.iloc[:3]).shape == (3, model.embedding_dim)


def test_dict_backbone_follows_sklearn_column_rules(table):
    X, y, _ = table
    clf = TJEPAClassifier(ARCH, max_epochs=2).fit(X, y)
    assert clf.model_.input_spec["categorical"] == ["colour"]  # the schema fitted on the training rows
    with pytest.raises(ValueError, match="The feature names should match those that were passed during fit"):
        clf.predict(X.rename(columns={"age": "years"}))
    with pytest.raises(ValueError, match="X has 2 features, but TJEPAClassifier is expecting 3 features"):
        clf.predict(X.iloc[:, :2].to_numpy())
    with pytest.warns(UserWarning, match="X does not have valid feature names"):  # an array: read by position
        assert (clf.predict(X.to_numpy(dtype=object)) == clf.predict(X)).all()
    with pytest.raises(InputSpecError, match="dict backbone holds TJEPA architecture arguments .* unknown \\['n_num'\\]"):
        TJEPAClassifier({"n_num": 3}).fit(X, y)


def test_gridsearch_on_real_adult_with_the_shipped_checkpoint(data_root):
    from fmzoo.tabular.data.adult import load_adult

    X, y = load_adult()["train"]
    X, y = X.iloc[:400], np.where(y[:400] == 1, ">50K", "<=50K")
    base = TJEPAClassifier("fmzoo/tjepa-adult", max_epochs=3, head_kwargs={"lr": 1e-3, "batch_size": 64})
    grid = GridSearchCV(clone(base), {"max_epochs": [1, 3]}, cv=2).fit(X, y)
    assert set(grid.cv_results_["param_max_epochs"]) == {1, 3}
    assert set(grid.predict(X.iloc[:20])) <= {">50K", "<=50K"} and 0 <= grid.score(X, y) <= 1
    assert isinstance(grid.best_estimator_.model_, TJEPA) and grid.best_estimator_.n_features_in_ == 14
