import numpy as np
import pytest
from fmzoo.core import InputSpecError
from fmzoo.tabular import TabularSchema
from fmzoo.tabular.data.adult import COLUMNS, load_adult


@pytest.fixture(scope="module")
def adult(data_root):
    return load_adult()


@pytest.fixture(scope="module")
def schema(adult):
    return TabularSchema.fit(adult["train"][0])


def test_adult_reader_matches_uci(adult):
    X, y = adult["train"]
    Xt, yt = adult["test"]
    assert X.shape == (32561, 14) and Xt.shape == (16281, 14)
    assert y.sum() == 7841 and yt.sum() == 3846
    assert list(X.columns) == COLUMNS


def test_schema_from_adult(schema):
    assert schema.numerical == ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
    assert len(schema.categorical) == 8 and "<missing>" in schema.categories["workclass"]
    assert schema.cardinalities[schema.categorical.index("sex")] == 2


def test_transform_standardises_and_round_trips_through_dict(schema, adult):
    X = adult["train"][0]
    x_num, x_cat = schema.transform(X)
    assert abs(float(x_num.mean())) < 1e-3 and abs(float(x_num.std()) - 1) < 1e-2
    again = TabularSchema.from_dict(schema.to_dict())
    assert (again.transform(X.iloc[:50])[1] == x_cat[:50]).all()


def test_missing_column_names_it(schema, adult):
    X = adult["test"][0].drop(columns=["age"])
    with pytest.raises(InputSpecError, match=r"missing column\(s\) \['age'\]"):
        schema.transform(X)


def test_renamed_column_is_reported_as_such(schema, adult):
    X = adult["test"][0].rename(columns={"sex": "gender"})
    with pytest.raises(InputSpecError, match=r"\['sex'\].*'gender'.*renamed"):
        schema.transform(X)


def test_extra_column_error_or_ignore(schema, adult):
    X = adult["test"][0].iloc[:10].assign(zip_code=1)
    with pytest.raises(InputSpecError, match="zip_code"):
        schema.transform(X)
    assert schema.transform(X, extra="ignore")[0].shape == (10, 6)


def test_wrong_dtype_names_the_column(schema, adult):
    X = adult["test"][0].iloc[:10].copy()
    X["age"] = X["age"].astype(str)
    X.loc[3, "age"] = "forty"
    with pytest.raises(InputSpecError, match="column 'age': expected numbers, got 'forty'"):
        schema.transform(X)


def test_unseen_category_and_nan(schema, adult):
    X = adult["test"][0].iloc[:10].copy()
    X.loc[2, "race"] = "Martian"
    with pytest.raises(InputSpecError, match="column 'race': unseen category 'Martian'"):
        schema.transform(X)
    X = adult["test"][0].iloc[:10].copy()
    X.loc[4, "hours-per-week"] = np.nan
    with pytest.raises(InputSpecError, match="column 'hours-per-week': NaN at row 4"):
        schema.transform(X)
    X = adult["test"][0].iloc[:10].copy()
    X.loc[1, "sex"] = None  # no missing values of 'sex' in training data
    with pytest.raises(InputSpecError, match="column 'sex': missing value"):
        schema.transform(X)


def test_missing_categorical_value_allowed_where_training_had_them(schema, adult):
    X = adult["test"][0].iloc[:5].copy()
    X.loc[0, "workclass"] = np.nan
    _, x_cat = schema.transform(X)
    j = schema.categorical.index("workclass")
    assert x_cat[0, j] == schema.categories["workclass"].index("<missing>")


def test_not_a_dataframe(schema):
    with pytest.raises(InputSpecError, match="DataFrame"):
        schema.transform(np.zeros((3, 14)))
