"""TJEPAClassifier / TJEPARegressor refuse inputs they cannot fit sensibly, with an InputSpecError naming what was
expected (issue "reliability"). A tiny T-JEPA over a synthetic schema: nothing is trained."""

import re

import numpy as np
import pandas as pd
import pytest
from fmzoo.core import InputSpecError
from fmzoo.tabular import TabularSchema, TJEPAClassifier, TJEPARegressor
from fmzoo.tabular.methods.tjepa import build_model

CFG = dict(dim=8, depth=1, heads=2, ff_dim=16, pred_dim=8, pred_depth=1, pred_heads=2, pred_ff_dim=16)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.integers(18, 80, 40).astype(float), "colour": rng.choice(["red", "blue"], 40)})
    return X, build_model(TabularSchema.fit(X), CFG)


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.5, -0.1, float("nan"), True, "0.1", None])
def test_val_fraction_outside_0_1_is_refused(table, fraction):
    X, model = table
    for est, y in ((TJEPAClassifier, np.arange(40) % 2), (TJEPARegressor, np.arange(40.0))):
        with pytest.raises(InputSpecError, match=r"val_fraction: expected a number strictly between 0 and 1"):
            est(model, val_fraction=fraction, max_epochs=1).fit(X, y)


def test_classifier_refuses_nan_labels(table):
    X, model = table
    y = np.array([0.0, 1.0] * 20)
    y[7] = np.nan
    with pytest.raises(InputSpecError, match="expected a class label for every row, got NaN/None at row 7"):
        TJEPAClassifier(model, max_epochs=1).fit(X, y)
    labels = np.array(["a", "b"] * 20, dtype=object)
    labels[3] = None
    with pytest.raises(InputSpecError, match="NaN/None at row 3"):
        TJEPAClassifier(model, max_epochs=1).fit(X, labels)


def test_classifier_refuses_a_continuous_target(table):
    X, model = table
    with pytest.raises(InputSpecError, match=r"expected class labels, got continuous values \(40 distinct floats in 40 "
                                             r"rows\); use TJEPARegressor"):
        TJEPAClassifier(model, max_epochs=1).fit(X, np.linspace(0, 1, 40))
    # integer-valued floats are class codes, and a few distinct non-integer floats are labels too
    assert TJEPAClassifier(model, max_epochs=1)._prepare_y(np.array([0.0, 1.0, 2.0] * 10)).max() == 2
    assert len(TJEPAClassifier(model)._prepare_y(np.array([0.5, 1.5] * 20))) == 40


def test_regressor_refuses_infinite_and_non_numeric_targets(table):
    X, model = table
    y = np.arange(40.0)
    y[5] = np.inf
    with pytest.raises(InputSpecError, match="expected finite numbers, got an infinity at row 5"):
        TJEPARegressor(model, max_epochs=1).fit(X, y)
    y[5] = -np.inf
    with pytest.raises(InputSpecError, match="infinity at row 5"):
        TJEPARegressor(model, max_epochs=1).fit(X, y)
    with pytest.raises(InputSpecError, match="expected real numbers for regression"):
        TJEPARegressor(model, max_epochs=1).fit(X, np.array(["cheap", "dear"] * 20))


@pytest.mark.parametrize("column", [
    pd.date_range("2020-01-01", periods=40),
    pd.to_timedelta(np.arange(40), unit="D"),
    np.arange(40) + 1j,
], ids=["datetime", "timedelta", "complex"])
@pytest.mark.parametrize("as_array", [False, True], ids=["frame", "array"])
def test_datetime_timedelta_and_complex_columns_are_refused(table, column, as_array):
    X, model = table
    bad = X.assign(age=column)
    dtype = str(pd.Series(column).dtype)
    for est, y in ((TJEPAClassifier, np.arange(40) % 2), (TJEPARegressor, np.arange(40.0))):
        inputs = bad.to_numpy(dtype=object) if as_array else bad
        with pytest.raises(InputSpecError, match=rf"column 'age': expected real numbers or categories \(strings\), "
                                                 rf"got dtype {re.escape(dtype)}"):
            est(model, max_epochs=1).fit(inputs, y)
    with pytest.raises(InputSpecError, match="column 'age'"):
        TJEPAClassifier(model).transform(bad)
