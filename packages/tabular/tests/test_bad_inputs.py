"""Every kind of bad input a user can hand the tabular package is refused with an error naming what was expected (or
handled as documented): the sklearn estimators, ``fmzoo finetune/evaluate fmzoo/tjepa-adult --data CSV --target COL``
and the input spec (``TabularInput``) at save and at load. Nothing is written when a command fails."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from fmzoo.core import InputSpecError
from fmzoo.core.cli import main
from fmzoo.core.errors import CheckpointError
from fmzoo.tabular import TJEPA, TabularInput, TabularSchema, TJEPAClassifier, TJEPARegressor
from fmzoo.tabular.methods.tjepa import build_model

ARCH = dict(dim=8, depth=1, heads=2, ff_dim=16, pred_dim=8, pred_depth=1, pred_heads=2, pred_ff_dim=16)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 40
    X = pd.DataFrame({"size": rng.normal(size=n), "colour": rng.choice(["red", "blue"], n),
                      "age": rng.integers(0, 50, n).astype(float)})
    torch.manual_seed(0)
    return X, np.arange(n) % 2, build_model(TabularSchema.fit(X), ARCH)


@pytest.fixture(scope="module")
def fitted(table):
    X, y, model = table
    return TJEPAClassifier(model, max_epochs=1).fit(X, y)


# ----------------------------------------------------------------------------------------- estimators: X


@pytest.mark.parametrize("change,message", [
    (lambda X: X.drop(columns=["age"]), r"missing column\(s\) \['age'\]: the schema expects \['size', 'colour', 'age'\]"),
    (lambda X: X.assign(extra=1.0), r"unexpected column\(s\) \['extra'\]: the schema expects exactly"),
    (lambda X: X.rename(columns={"age": "years"}), r"missing column\(s\) \['age'\].*unexpected columns present: "
                                                   r"\['years'\]; renamed\?"),
    (lambda X: X.assign(age="old"), r"column 'age': expected numbers, got 'old'"),
    (lambda X: X.assign(age=np.nan), r"column 'age': NaN at row 0; numerical columns must be complete"),
    (lambda X: X.assign(age=np.inf), r"column 'age': infinite value at row 0"),
    (lambda X: X.assign(colour="purple"), r"column 'colour': unseen category 'purple'; known: \['blue', 'red'\]"),
    (lambda X: X.assign(colour=None), r"column 'colour': missing value at row 0, and the training data had none"),
    (lambda X: X.assign(age=pd.Timestamp("2020-01-01")), r"column 'age': expected real numbers or categories"),
    (lambda X: pd.concat([X, X[["age"]]], axis=1), r"the column name\(s\) \['age'\] appear more than once"),
    (lambda X: X.set_axis([0, 1, 2], axis=1), r"missing column\(s\) \['size', 'colour', 'age'\]"),
    (lambda X: X.iloc[:0], r"Found array with 0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1 is required"),
    (lambda X: X.iloc[:, :0], r"Found array with 0 feature\(s\)"),
    (lambda X: X.to_numpy(dtype=object)[:, :2], r"X has 2 features, but TJEPAClassifier is expecting 3 features as "
                                                r"input: the checkpoint's columns \['size', 'colour', 'age'\]"),
    (lambda X: X["age"], r"got a pandas Series; use X.to_frame\(\) for one column"),
    (lambda X: X["age"].to_numpy(), r"Expected 2D array, got 1D array"),
], ids=["missing", "unknown", "renamed", "string-for-number", "all-nan", "inf", "unseen-category", "missing-category",
        "datetime", "duplicate", "integer-names", "no-rows", "no-columns", "array-wrong-width", "series", "1d-array"])
def test_bad_X_is_refused_at_fit_and_predict(table, fitted, change, message):
    X, y, model = table
    bad = change(X)
    with pytest.raises(ValueError, match=message):  # InputSpecError or sklearn's ValueError, both ValueErrors
        fitted.predict(bad)
    if len(bad) == len(X):
        with pytest.raises(ValueError, match=message):
            TJEPAClassifier(model, max_epochs=1).fit(bad, y)


def test_extra_columns_can_be_dropped_and_arrays_are_read_in_schema_order(table, fitted):
    X, y, model = table
    clf = TJEPAClassifier(model, max_epochs=1, extra="ignore").fit(X.assign(note="x"), y)
    assert clf.predict(X.assign(note="y")).shape == (len(X),)
    assert np.array_equal(fitted.predict_proba(X.to_numpy(dtype=object)), fitted.predict_proba(X))
    assert np.array_equal(fitted.predict_proba(X[["age", "colour", "size"]]), fitted.predict_proba(X))  # by name


def test_sparse_input_is_refused(table, fitted):
    X, y, model = table
    with pytest.raises(TypeError, match="sparse input is not supported.*convert it with X.toarray"):
        fitted.predict(sp.csr_matrix(np.ones((3, 3))))


# ----------------------------------------------------------------------------------------- estimators: y, params


def test_bad_targets(table):
    X, y, model = table
    with pytest.raises(InputSpecError, match="X has 40 rows but y has 39: expected one target per row"):
        TJEPAClassifier(model, max_epochs=1).fit(X, y[:-1])
    with pytest.raises(InputSpecError, match=r"y has a single class \(\['yes'\]\); a classifier needs at least two"):
        TJEPAClassifier(model, max_epochs=1).fit(X, np.full(len(X), "yes"))
    with pytest.raises(InputSpecError, match="requires y to be passed, but the target y is None"):
        TJEPARegressor(model, max_epochs=1).fit(X, None)
    with pytest.raises(ValueError, match=r"y should be a 1d array, got an array of shape \(40, 2\)"):
        TJEPAClassifier(model, max_epochs=1).fit(X, np.c_[y, y])
    with pytest.raises(InputSpecError, match="expected class labels, got an infinity at row 3"):
        TJEPAClassifier(model, max_epochs=1).fit(X, np.where(np.arange(40) == 3, np.inf, y))
    with pytest.raises(InputSpecError, match=r"got n_samples = 2 with val_fraction=0.1: 1 row\(s\) left to train on"):
        TJEPAClassifier(model, max_epochs=1).fit(X.iloc[:2], y[:2])


@pytest.mark.parametrize("params,message", [
    ({"head": "transformer"}, r"head: expected one of \['mlp', 'resnet'\], got 'transformer'"),
    ({"extra": "drop"}, r"extra: expected 'error' or 'ignore', got 'drop'"),
    ({"max_epochs": 0}, "max_epochs: expected a positive integer or None, got 0"),
    ({"seed": -1}, "seed: expected a non-negative integer, got -1"),
    ({"finetune": "yes"}, "finetune: expected True or False, got 'yes'"),
    ({"verbose": 1}, "verbose: expected True or False, got 1"),
    ({"head_kwargs": {"learning_rate": 1e-3}}, r"head_kwargs: unknown setting\(s\) \['learning_rate'\]; expected keys "
                                               r"among \['lr', 'weight_decay', 'batch_size', 'max_epochs', 'patience'\]"),
    ({"head_kwargs": [("lr", 1e-3)]}, "head_kwargs: expected a dict"),
    ({"backbone": 3}, "backbone: expected a T-JEPA checkpoint .* or a dict of TJEPA architecture arguments, got int"),
    ({"backbone": {"dims": 8}}, r"backbone: a dict backbone holds TJEPA architecture arguments .* unknown \['dims'\]"),
])
def test_bad_parameters_are_refused_in_fit_not_in_init(table, params, message):
    X, y, model = table
    est = TJEPAClassifier(**{"backbone": model, "max_epochs": 1, **params})  # sklearn: __init__ only stores
    with pytest.raises(InputSpecError, match=message):
        est.fit(X, y)


def test_an_unknown_checkpoint_or_one_without_a_schema(table):
    X, y, _ = table
    with pytest.raises(CheckpointError, match="'fmzoo/no-such-model' is not in the local hub"):
        TJEPAClassifier("fmzoo/no-such-model").fit(X, y)
    bare = TJEPA(n_num=2, cardinalities=[2], **ARCH)
    with pytest.raises(ValueError, match="carries no feature schema"):
        TJEPAClassifier(bare).fit(X, y)


def test_dict_backbone_refuses_bad_training_tables(table):
    X, y, _ = table
    with pytest.raises(InputSpecError, match=r"column 'age': numerical column has NaN \(a missing value\) at row 2"):
        TJEPAClassifier(ARCH, max_epochs=1).fit(X.assign(age=np.where(np.arange(40) == 2, np.nan, X["age"])), y)
    with pytest.raises(InputSpecError, match=r"column 'size': numerical column has an infinite value \(inf\) at row 0"):
        TJEPAClassifier(ARCH, max_epochs=1).fit(X.assign(size=np.inf), y)
    # documented: a text column with missing values gets a <missing> category
    clf = TJEPAClassifier(ARCH, max_epochs=1).fit(X.assign(colour=X["colour"].where(y == 0)), y)
    assert clf.model_.input_spec["categories"]["colour"] == ["<missing>", "blue", "red"]
    assert clf.predict(X.assign(colour=None)).shape == (len(X),)


# ------------------------------------------------------------ fmzoo finetune / evaluate --data CSV --target COL


@pytest.fixture(scope="module")
def adult_rows(data_root):
    from fmzoo.tabular.data.adult import TARGET, load_adult

    X, y = load_adult()["train"]
    return X.iloc[:60].assign(**{TARGET: np.where(y[:60] == 1, ">50K", "<=50K")}), TARGET


def _csv(folder, name, frame=None, text=None):
    path = folder / f"{name}.csv"
    if frame is not None:
        frame.to_csv(path, index=False)
    elif isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


CSV_CASES = {
    "empty": (lambda df, t: "", r"the file is empty; expected a CSV file with a header row: the checkpoint's feature "
                                r"columns \['age', "),
    "binary": (lambda df, t: b"\x00\xff\xfe binary", "not a readable text CSV"),
    "header-only": (lambda df, t: ",".join(df.columns) + "\n", r"got 15 column\(s\) and 0 data row\(s\)"),
    "one-row": (lambda df, t: df.iloc[:1], r"1 data row\(s\); expected at least 3"),
    "missing-column": (lambda df, t: df.drop(columns=["race"]), r"missing column\(s\) \['race'\]"),
    "unknown-column": (lambda df, t: df.assign(extra=1), r"unexpected column\(s\) \['extra'\]"),
    "duplicate-header": (lambda df, t: df.to_csv(index=False).replace("fnlwgt", "age", 1),
                         r"the header row names the column\(s\) \['age'\] more than once"),
    "all-nan-column": (lambda df, t: df.assign(age=np.nan), r"column 'age': NaN at row 0"),
    "string-for-number": (lambda df, t: df.assign(age="old"), r"column 'age': expected numbers, got 'old'"),
    "unseen-category": (lambda df, t: df.assign(race=["Martian"] + list(df["race"][1:])),
                        r"column 'race': unseen category 'Martian'; known: .*\(rows counted from 0 after the header\)"),
    "one-class": (lambda df, t: df.assign(**{t: "<=50K"}), r"the target column 'income' holds a single class "
                                                           r"\('<=50K'\) in the training rows; expected at least two"),
    "missing-target": (lambda df, t: df.assign(**{t: [None, *df[t][1:]]}),
                       r"the target column 'income' has a missing value at row 0"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_cli_refuses_bad_csvs_with_a_one_line_error(adult_rows, tmp_path, capsys, case):
    df, target = adult_rows
    make, message = CSV_CASES[case]
    content = make(df, target)
    path = _csv(tmp_path, case, **({"frame": content} if isinstance(content, pd.DataFrame) else {"text": content}))
    out = tmp_path / "out"
    for command in ("evaluate", "finetune"):
        assert main([command, "fmzoo/tjepa-adult", "--data", str(path), "--target", target, "--no-progress",
                     "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"fmzoo {command}: error:" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert re.search(message, err), err
        assert not out.exists()  # nothing written on failure


def test_cli_refuses_bad_paths_and_targets(adult_rows, tmp_path, capsys):
    df, target = adult_rows
    good = _csv(tmp_path, "good", df)
    cases = [
        (["--data", str(good), "--target", "nope"], r"--target 'nope' is not a column; columns: \['age', "),
        (["--data", str(tmp_path / "absent.csv")], "absent.csv: no such file or directory"),
        (["--data", str(tmp_path)], r"a directory must hold train.csv and test.csv \(missing \['train.csv', "),
        (["--target", target], "--target names the label column of your own --data; give --data PATH too"),
        (["--data", str(good), "--dataset", "adult"], "give --dataset or --data, not both"),
    ]
    folder = tmp_path / "split"
    folder.mkdir()
    df.to_csv(folder / "train.csv", index=False)
    df.rename(columns={target: "label"}).to_csv(folder / "test.csv", index=False)
    cases.append((["--data", str(folder)], "train.csv's target column is 'income', test.csv's is 'label'"))
    for args, message in cases:
        assert main(["evaluate", "fmzoo/tjepa-adult", *args, "--no-progress"]) == 2, args
        err = capsys.readouterr().err
        assert re.search(message, err) and "Traceback" not in err, (args, err)


def test_a_tiny_but_valid_csv_is_handled(adult_rows, tmp_path, capsys):
    """Five rows with both classes in the training part: the protocols run (and say so) instead of failing."""
    df, target = adult_rows
    five = pd.concat([df[df[target] == ">50K"].iloc[:2], df[df[target] == "<=50K"].iloc[:3]])
    path = _csv(tmp_path, "five", five)
    assert main(["evaluate", "fmzoo/tjepa-adult", "--data", str(path), "--target", target, "--no-progress",
                 "--out", str(tmp_path / "out")]) == 0
    result = json.loads((tmp_path / "out" / "evaluate.json").read_text())
    assert (result["train_examples"], result["test_examples"]) == (4, 1)


# ----------------------------------------------------------------------------- the input spec (TabularInput)


def _spec():
    X = pd.DataFrame({"size": [1.0, 2.0, 3.0], "colour": ["red", "blue", "red"]})
    return {**TabularSchema.fit(X).to_dict(), "dataset": None}


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.pop("std"), r"needs the keys .*; missing \['std'\]"),
    (lambda s: s.update(order="size,colour"), r"\['order'\]: expected a list, got 'size,colour'"),
    (lambda s: s.update(type="image"), r"\['type'\]: expected 'tabular', got 'image'"),
    (lambda s: s.update(order=["size"]), r"\['order'\]: expected the columns of 'numerical' \+ 'categorical'"),
    (lambda s: s.update(categorical=["colour", "size"]), r"column\(s\) \['size'\] are in both 'numerical' and "
                                                         r"'categorical'"),
    (lambda s: s["categories"].pop("colour"), r"\['categories'\]: expected one list per categorical column"),
    (lambda s: s["categories"].update(colour=[]), r"\['categories'\]\['colour'\]: expected a non-empty list"),
    (lambda s: s["std"].update(size=0.0), r"\['std'\]\['size'\]: expected a positive finite number, got 0.0"),
    (lambda s: s["mean"].update(size="2"), r"\['mean'\]\['size'\]: expected a finite number, got '2'"),
    (lambda s: s.update(numerical=["size", "size"]), r"\['numerical'\]: duplicate column\(s\) \['size'\]"),
    (lambda s: s.update(dataset=3), r"\['dataset'\]: expected a string or null, got 3"),
])
def test_broken_spec_is_refused_naming_the_key(edit, message):
    spec = _spec()
    assert TabularInput.validate(spec) is spec
    edit(spec)
    with pytest.raises(InputSpecError, match=message):
        TabularInput.validate(spec)


def test_broken_spec_is_refused_at_save_and_at_load(tmp_path):
    X = pd.DataFrame({"size": [1.0, 2.0, 3.0], "colour": ["red", "blue", "red"]})
    model = build_model(TabularSchema.fit(X), ARCH)
    assert type(model).input_spec_class is TabularInput
    model.save_pretrained(tmp_path / "good")
    assert TJEPA.from_pretrained(tmp_path / "good").input_spec == model.input_spec
    model.input_spec = {k: v for k, v in model.input_spec.items() if k != "mean"}
    with pytest.raises(InputSpecError, match=r"TJEPA.input_spec: .*missing \['mean'\]"):
        model.save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad" / "config.json").exists()
    shutil.copytree(tmp_path / "good", tmp_path / "edited")
    config = json.loads((tmp_path / "edited" / "config.json").read_text())
    config["input_spec"]["std"]["size"] = -1.0
    (tmp_path / "edited" / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputSpecError, match=r"config.json: input_spec\['std'\]\['size'\]: expected a positive finite"):
        TJEPA.from_pretrained(tmp_path / "edited")


@pytest.mark.parametrize("name", ["tjepa-adult", "tjepa-diamonds"])
def test_shipped_checkpoints_pass_their_spec_and_save_again(name, tmp_path):
    model = TJEPA.from_pretrained(f"fmzoo/{name}")
    TabularInput.validate(model.input_spec)
    model.save_pretrained(tmp_path / name)
    again = TJEPA.from_pretrained(tmp_path / name)
    assert again.input_spec == model.input_spec
