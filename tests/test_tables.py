"""Tests for kerasmlp.tables: CSV and .npz read into typed columns; refusals by row and column.

Every file is a few lines written here; expected values are read off them by hand.
"""

import re
import warnings

import numpy as np
import pytest

from kerasmlp import tables
from kerasmlp.errors import DataError


def _write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


MIXED = """age,city,income,label
25,paris,1.5,yes
,london,2.0,no
35,paris,NA,yes
45,,3.5,no
"""


def test_csv_columns_get_kinds_and_missing_values(tmp_path):
    table = tables.read_csv_table(_write(tmp_path, MIXED), label="label")
    assert table.columns == (
        tables.Column("age", "numeric"),
        tables.Column("city", "string"),
        tables.Column("income", "numeric"),
    )
    np.testing.assert_array_equal(table.values["age"], [25, np.nan, 35, 45])
    np.testing.assert_array_equal(table.values["income"], [1.5, 2.0, np.nan, 3.5])
    assert list(table.values["city"]) == ["paris", "london", "paris", ""]
    assert list(table.labels) == ["yes", "no", "yes", "no"]
    assert list(table.rows) == [2, 3, 4, 5]  # file rows, header = 1


def test_codes_python_would_read_as_numbers_stay_categories(tmp_path):
    # Python's float("2021_05") is 202105.0 (PEP 515's digit separator) and float("١٢") is
    # 12.0; pandas.read_csv and a spreadsheet read both as text, and so does kerasmlp.
    text = "month,digits,x,y\n2021_05,١٢,1,a\n2021_06,١٣,2,b\n2021_05,١٢,3,a\n"
    table = tables.read_csv_table(_write(tmp_path, text), label="y")
    assert table.columns == (
        tables.Column("month", "string"),
        tables.Column("digits", "string"),
        tables.Column("x", "numeric"),
    )
    assert list(table.values["month"]) == ["2021_05", "2021_06", "2021_05"]


@pytest.mark.parametrize(
    "labels,task,expected_task,classes",
    [
        (["yes", "no", "yes"], "auto", "classification", ("no", "yes")),
        (["2", "10", "2"], "auto", "classification", ("2", "10")),  # numeric order, not text
        (["1.5", "2.25", "3"], "auto", "regression", None),
        ([str(i) for i in range(30)], "auto", "regression", None),  # > AUTO_MAX_CLASSES
        (["1.5", "2.25", "1.5"], "classification", "classification", ("1.5", "2.25")),
        (["1", "0", "1"], "regression", "regression", None),
    ],
    ids=["strings", "few-integers", "floats", "many-integers", "forced-classes", "forced-values"],
)
def test_the_task_is_chosen_from_the_labels(tmp_path, labels, task, expected_task, classes):
    text = "x,y\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels))
    table = tables.read_csv_table(_write(tmp_path, text), label="y")
    chosen = tables.choose_labels(table, task, label="y")
    assert (chosen.task, chosen.class_names) == (expected_task, classes)
    encoded = chosen.encode(table, what="data.path")
    if classes:
        assert [classes[i] for i in encoded] == labels
    else:
        np.testing.assert_allclose(encoded, [float(v) for v in labels])


@pytest.mark.parametrize(
    "text,label,message",
    [
        ("", "y", "data.csv is empty"),
        ("x,y\n", "y", "has a header but no rows"),
        ("x,y\n1,a\n2\n", "y", "data.csv row 3: 1 fields, the header has 2"),
        ("x,y\n1,a\n2,b,3\n", "y", "data.csv row 3: 3 fields, the header has 2"),
        (
            "age,y\n" + "".join(f"{i},a\n" for i in range(20)) + "abc,b\n",
            "y",
            "row 22, column 'age': 'abc' is not a number",
        ),
        (
            "x,Species\n1,a\n",
            "species",
            "no label column 'species' (data.label). Did you mean 'Species'?",
        ),
        ("x,y\n1,a\n2,a\n", "y", "the label column 'y' has one class ('a')"),
        ("x,y\n1,a\n2,\n", "y", "row 3: the label column 'y' is empty"),
        ("x,x\n1,2\n", "y", "column 'x' appears twice"),
        # Finite as Python reads it, inf as the model's float32 takes it: the column's
        # variance became inf, which zeroed every row of it, and the run said nothing.
        (
            "x,y\n1,a\n2e39,b\n",
            "y",
            "row 3, column 'x': '2e39' is beyond float32's +-3.4e38, in which the model takes",
        ),
        ("x,y\n1,1e39\n2,2.5\n", "y", "row 2: label '1e39' is beyond float32's +-3.4e38"),
        # Once "row 2: 2 fields, the header has 1" (the decimal comma) and "no label
        # column 'y'. Columns: x;y" for a file saved with ';' or tabs.
        (
            "x;y\n1,5;a\n2,5;b\n",
            "y",
            "row 1: the header is one column, 'x;y': the file looks separated by ';'",
        ),
        ("x\ty\n1\ta\n", "y", "the file looks separated by '\\t'; kerasmlp reads comma-"),
    ],
    ids=[
        "empty",
        "header-only",
        "short-row",
        "long-row",
        "not-a-number",
        "label-typo",
        "one-class",
        "no-label",
        "twice",
        "beyond-float32",
        "label-beyond-float32",
        "semicolons",
        "tabs",
    ],
)
def test_bad_files_are_refused_in_one_line_naming_the_place(tmp_path, text, label, message):
    path = _write(tmp_path, text)
    with pytest.raises(DataError) as error:
        table = tables.read_csv_table(path, label=label)
        tables.choose_labels(table, "auto", label=label)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="File not found: .*nowhere.csv \\(data.path\\)"):
        tables.read_csv_table(tmp_path / "nowhere.csv", label="y")


def test_a_test_file_must_have_the_training_columns_and_kinds(tmp_path):
    train = tables.read_csv_table(_write(tmp_path, MIXED), label="label")
    other = _write(tmp_path, "age,town,income,label\n1,a,2,yes\n", "test.csv")
    with pytest.raises(DataError, match="columns differ .* lacks city and has town besides"):
        tables.read_csv_table(other, label="label", columns=train.columns, what="data.test_path")
    # In a test file a column's kind comes from training: one bad number is refused.
    bad = _write(tmp_path, "income,city,age,label\n2,a,old,yes\n", "bad.csv")
    with pytest.raises(DataError, match="bad.csv row 2, column 'age': 'old' is not a number"):
        tables.read_csv_table(bad, label="label", columns=train.columns)
    # Columns may come in another order, and a file to predict may lack the label.
    ok = _write(tmp_path, "income,city,age\n2,rome,40\n", "ok.csv")
    table = tables.read_csv_table(ok, label="label", columns=train.columns, label_required=False)
    assert [c.name for c in table.columns] == ["age", "city", "income"]
    assert table.labels is None


def test_a_file_to_predict_may_leave_its_label_column_empty(tmp_path):
    # The training file's header with the label left blank: rows to predict, no metrics.
    train = tables.read_csv_table(_write(tmp_path, MIXED), label="label")
    blank = _write(tmp_path, "age,city,income,label\n1,rome,2,\n3,oslo,4,NA\n", "new.csv")
    table = tables.read_csv_table(blank, label="label", columns=train.columns, label_required=False)
    assert table.labels is None and table.num_rows == 2
    # Partly labelled: which rows count would be a guess, so it is refused, saying how.
    partly = _write(tmp_path, "age,city,income,label\n1,rome,2,yes\n3,oslo,4,\n", "part.csv")
    with pytest.raises(DataError, match="part.csv row 3: the label column 'label' is empty; leave"):
        tables.read_csv_table(partly, label="label", columns=train.columns, label_required=False)
    # A training or test file needs every label.
    with pytest.raises(DataError, match="new.csv row 2: the label column 'label' is empty \\(data"):
        tables.read_csv_table(blank, label="label", columns=train.columns)


def test_a_label_of_an_unseen_class_is_refused(tmp_path):
    train = tables.read_csv_table(_write(tmp_path, MIXED), label="label")
    labels = tables.choose_labels(train, "auto", label="label")
    test = tables.read_csv_table(
        _write(tmp_path, "age,city,income,label\n1,a,2,maybe\n", "t.csv"),
        label="label",
        columns=train.columns,
    )
    with pytest.raises(DataError, match="t.csv row 2: label 'maybe' is not a class"):
        labels.encode(test, what="data.test_path")


def test_npz_arrays(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(12.0).reshape(3, 2, 2), y=np.array([0, 1, 0]))
    table = tables.read_npz_table(path, what="data.path")
    assert table.values["x"].shape == (3, 2, 2)
    labels = tables.choose_labels(table, "auto", label="y")
    assert labels.class_names == ("0", "1")
    np.savez(path, x=np.zeros((3, 2)), y=np.array([0.5, 1.0, 2.0]))
    assert tables.choose_labels(tables.read_npz_table(path, what="p"), "auto", label="y").task == (
        "regression"
    )
    np.savez(path, x=np.zeros((3, 2)), label=np.zeros(3))
    with pytest.raises(DataError, match="has no array 'y' \\(it has: x, label\\)"):
        tables.read_npz_table(path, what="data.path")
    np.savez(path, x=np.zeros((3, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match="'y' must have shape \\(3,\\)"):
        tables.read_npz_table(path, what="data.path")


def test_npz_byte_string_labels_name_their_classes_as_text(tmp_path):
    # np.savez of tfds.as_numpy's text keeps bytes (dtype S); the classes once read
    # "b'cat'", in predict's output too. Expected by hand: the decoded words.
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((3, 2)), y=np.array([b"cat", b"dog ", b"cat"]))
    table = tables.read_npz_table(path, what="data.path")
    labels = tables.choose_labels(table, "auto", label="y")
    assert labels.class_names == ("cat", "dog")
    assert list(labels.encode(table, what="data.path")) == [0, 1, 0]


def test_a_npy_file_is_told_from_an_npz(tmp_path):
    # np.load reads a .npy as one array, whatever the file's name: once a TypeError
    # ("does not support the context manager protocol").
    for name in ("d.npy", "renamed.npz"):
        path = tmp_path / name
        with open(path, "wb") as f:
            np.save(f, np.zeros((4, 3)))
        with pytest.raises(DataError) as error:
            tables.read_npz_table(path, what="data.path")
        assert str(error.value) == (
            f"{path} holds a single array (shape (4, 3)), not an .npz archive with arrays "
            "'x' and 'y'; make one with np.savez(path, x=..., y=...) (data.path)"
        )


@pytest.mark.parametrize("shape", [(5, 0), (5, 2, 0)], ids=["flat", "image"])
def test_an_npz_of_zero_features_is_refused(tmp_path, shape):
    # Once it trained on nothing.
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros(shape), y=np.arange(5) % 2)
    with pytest.raises(DataError) as error:
        tables.read_npz_table(path, what="data.path")
    assert str(error.value) == (
        f"{path}: 'x' has shape {shape}: its examples hold no features; each needs at least "
        "one number (data.path)"
    )


@pytest.mark.parametrize(
    "arrays,message",
    [
        (
            {"x": [[0.0, 1.0], [2.0, np.inf], [-np.inf, 0.0]], "y": [0, 1, 0]},
            "'x' example 1 (from 0) holds inf; values must be finite numbers within float32's "
            "+-3.4e38, NaN for a missing one (data.path)",
        ),
        (
            {"x": [[0.0, 1.0], [2.0, 3.0], [-np.inf, 0.0]], "y": [0, 1, 0]},
            "'x' example 2 (from 0) holds -inf",
        ),
        # Finite in the file's float64, inf in the model's float32: once NaN outputs.
        ({"x": [[0.0], [-1e39], [2.0]], "y": [0, 1, 0]}, "'x' example 1 (from 0) holds -1e+39"),
        (
            {"x": [[0.0], [1.0], [2.0]], "y": [0.5, np.inf, 1.0]},
            "'y' example 1 (from 0) is inf; labels must be finite numbers (a missing label is "
            "refused) (data.path)",
        ),
        ({"x": [[0.0], [1.0], [2.0]], "y": [0.5, 1.5, np.nan]}, "'y' example 2 (from 0) is nan"),
    ],
    ids=["x-inf", "x-minus-inf", "x-beyond-float32", "y-inf", "y-nan"],
)
def test_an_npz_with_infinities_is_refused_by_example(tmp_path, arrays, message):
    # Once accepted: NaN probabilities read as class 0, and a "diverged" training run.
    path = tmp_path / "d.npz"
    np.savez(path, **{k: np.array(v) for k, v in arrays.items()})
    with pytest.raises(DataError) as error:
        tables.read_npz_table(path, what="data.path")
    assert str(error.value).startswith(f"{path}: {message}")


def test_nan_in_an_npz_x_is_a_missing_value(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.array([[np.nan, 1.0], [2.0, 3.0]]), y=np.array([0, 1]))
    table = tables.read_npz_table(path, what="data.path")
    np.testing.assert_array_equal(table.values["x"], [[np.nan, 1.0], [2.0, 3.0]])


def test_first_beyond_float32_names_the_row_and_value():
    # Read off by hand: row 1 holds the first infinity; NaN and integers hold none.
    assert tables.first_beyond_float32(np.array([[0.0, np.nan], [1.0, -np.inf]])) == (1, -np.inf)
    assert tables.first_beyond_float32(np.array([np.nan, 2.0])) is None
    assert tables.first_beyond_float32(np.array([1, 2])) is None
    # float32's largest, np.finfo(np.float32).max, written as numpy prints it (3.4028235e38,
    # a hair above it in float64, which float32 rounds down) fits; 1e39 does not.
    assert tables.first_beyond_float32(np.array([3.4028235e38, 1e39, -1e39])) == (1, 1e39)


def test_an_npz_float_y_of_whole_numbers_is_a_regression_target_and_says_why(tmp_path):
    # The dtype decides, not the values; the reason once said "numbers with fractions".
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 2)), y=np.array([1.0, 2.0, 1.0, 3.0]))
    table = tables.read_npz_table(path, what="data.path")
    labels = tables.choose_labels(table, "auto", label="y")
    assert (labels.task, labels.why) == ("regression", "labels are floating-point numbers")
    labels = tables.choose_labels(table, "classification", label="y")
    assert labels.class_names == ("1", "2", "3")


def test_csv_labels_of_whole_numbers_written_as_floats_say_why_they_are_a_target(tmp_path):
    # '0.0', '1.0' (a float column written by pandas): a target, as an .npz's float y is;
    # the reason once said "numbers with fractions", which none of them has.
    table = tables.read_csv_table(_write(tmp_path, "a,y\n1,0.0\n2,1.0\n3,1.0\n"), label="y")
    labels = tables.choose_labels(table, "auto", label="y")
    assert (labels.task, labels.why) == (
        "regression",
        "labels are numbers not written as integers ('0.0')",
    )
    table = tables.read_csv_table(_write(tmp_path, "a,y\n1,0.5\n2,1\n", "f.csv"), label="y")
    assert tables.choose_labels(table, "auto", label="y").why == "labels are numbers with fractions"


def test_missing_words_are_case_sensitive_in_strings_and_labels(tmp_path):
    # As pandas.read_csv's default na_values: 'NA' and 'None' are missing, 'Na' (sodium)
    # and 'none' are values. In a numeric column no number is spelled 'na': any case.
    text = "element,mass,label\nNa,na,none\nK,NULL,None\nNA,3.5,Na\nCl,4,none\n"
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match="row 3: the label column 'label' holds 'None', a missing"):
        tables.read_csv_table(path, label="label")
    table = tables.read_csv_table(
        _write(tmp_path, text.replace("None", "Na"), "b.csv"), label="label"
    )
    assert table.values["element"].tolist() == ["Na", "K", "", "Cl"]
    np.testing.assert_array_equal(table.values["mass"], [np.nan, np.nan, 3.5, 4.0])
    assert tables.choose_labels(table, "auto", label="label").class_names == ("Na", "none")


@pytest.mark.parametrize(
    "values,sample",
    [
        (["$3.20", "$12.00", "$1,250.50", "$0.99"], "$3.20"),
        (["3,5", "12,25", "0,5", "7"], "3,5"),  # a decimal comma
        (["1 200 €", "950 €", "12 %", "3"], "1 200 €"),
        (["red", "blue", "red", "green"], None),
        (["A12", "B7", "A12", "C3"], None),  # codes with letters are categories
        (["$3.20", "cheap", "dear", "$4.10"], None),  # half words: categories, said nothing
        (["7", "$9.99", "$1.00", "$3.20", "8", "$1.00"], "$9.99"),  # the first in the file
    ],
    ids=["dollars", "decimal-comma", "euros-and-spaces", "words", "codes", "half-words", "first"],
)
def test_numbers_written_with_marks_are_named_as_categories(tmp_path, values, sample):
    # The rule stays (a column that is not all numbers is categories); only a line says so.
    text = "v,label\n" + "".join(f'"{v}",{i % 2}\n' for i, v in enumerate(values))
    table = tables.read_csv_table(_write(tmp_path, text), label="label")
    assert table.columns == (tables.Column("v", "string"),)
    expected = (
        ()
        if sample is None
        else (
            f"data       | column 'v' is read as categories ({len(set(values))} distinct values), "
            f"yet its values are numbers in other writing ({sample!r}): if it is an amount, write "
            "plain numbers in the file (a decimal point; no currency sign, no thousands separator)",
        )
    )
    assert tables.numbers_as_text(table) == expected


def test_regression_targets_whose_spread_float32_rounds_away_are_refused(tmp_path):
    # np.float32(1e12 + 2.0) == np.float32(1e12): float32 steps by 65536 there
    # (np.spacing(np.float32(1e12))), so every target read as 1e12 and the run trained to
    # a loss of 0 on a constant without a word.
    assert np.float32(1e12 + 2.0) == np.float32(1e12) and np.spacing(np.float32(1e12)) == 65536
    offset = _write(tmp_path, "x,t\n1,1000000000000.5\n2,999999999999\n3,1000000000002\n")
    with pytest.raises(DataError) as error:
        tables.choose_labels(tables.read_csv_table(offset, label="t"), "auto", label="t")
    # The standard deviation of 0.5, -1 and 2 (numpy): 1.2247; its last digit is the unit.
    assert str(error.value) == (
        f"{offset}: the targets, around 1e+12, spread by 1.22 (standard deviation); float32, "
        "in which the model computes, steps by 6.55e+04 at that size and rounds that spread "
        "away: subtract an offset in the file, such as 1000000000000 (data.label)"
    )
    # The same spread less the offset, and a spread float32 holds at 1e9 (steps of 64 there
    # against a standard deviation of 8165), are taken.
    for text in ("0.5\n2,-1\n3,2", "1000000000\n2,1000010000\n3,1000020000"):
        ok = _write(tmp_path, f"x,t\n1,{text}\n", "ok.csv")
        assert tables.choose_labels(tables.read_csv_table(ok, label="t"), "auto", label="t")
    # No labels at all (a prediction file): nothing checked, and no numpy warning for the
    # standard deviation of nothing ("Degrees of freedom <= 0").
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tables._check_held_in_float32(np.array([]), "p.csv", "data.label")


def test_a_regression_target_whose_square_overflows_float32_is_refused(tmp_path):
    # The loss squares the errors in float32: numpy's np.float32(1.9e19) ** 2 is inf, and a
    # run on such targets ended "diverged ... try a lower learning rate" (or, spread wider,
    # in a traceback). The limit is sqrt(np.finfo(np.float32).max), 1.8446743e19.
    assert tables.MAX_TARGET == pytest.approx(1.8446743e19, rel=1e-7)
    with np.errstate(over="ignore"):  # the overflow is what is shown
        assert np.isfinite(np.float32(1.8e19) ** 2) and np.isinf(np.float32(1.9e19) ** 2)
    ok = _write(tmp_path, "x,t\n1,1.8e19\n2,-1.5\n3,2.5\n", "ok.csv")
    assert tables.choose_labels(tables.read_csv_table(ok, label="t"), "auto", label="t").task == (
        "regression"
    )
    big = _write(tmp_path, "x,t\n1,1.5\n2,-1.9e19\n3,3e19\n4,2.5\n", "big.csv")
    with pytest.raises(DataError) as error:
        tables.choose_labels(tables.read_csv_table(big, label="t"), "auto", label="t")
    assert str(error.value) == (
        f"{big} row 4: label '3e19', the largest target, is beyond +-1.845e+19, whose square "
        "(the squared error) is beyond float32's 3.4e38, in which the model computes its "
        "loss: give the target in larger units (divided by 1e6, say) (data.label)"
    )
    # An .npz's float y, and a test or prediction file's labels (Labels.encode), alike.
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((3, 2)), y=np.array([0.5, -2e19, 2.0]))
    table = tables.read_npz_table(path, what="data.path")
    with pytest.raises(
        DataError, match=r"row 1: label '-20000000000000000000', the largest target"
    ):
        tables.choose_labels(table, "auto", label="y")
    with pytest.raises(DataError, match=r"\(data.test_path\)$"):
        tables.Labels("regression", None, why="").encode(table, what="data.test_path")


# A cell's reading in a numeric column, by the rules of the module docstring: Python's
# float() of the field (surrounding spaces allowed) where `_number_like` lets it, missing
# words in any case, refusals for the rest. Each value is float() of the cell; each outcome
# was read off kerasmlp before the column-at-once reading (commit 3277a60), which read and
# checked each cell on its own, and must stay so. Columns: the cell among numbers
# (inferred numeric), in a data.categorical column, and a column of nothing but the cell
# ("string": read as categories; "refused": numeric and refused).
NOT_A_NUMBER = "is not a number (the column is numeric)"
BEYOND = "is beyond float32's +-3.4e38, in which the model takes numbers"
CATEGORIES = "(data.categorical makes the column's whole numbers categories)"
NOT_WHOLE, BEYOND_2_24 = f"is not a whole number {CATEGORIES}", f"is not within +-2^24 {CATEGORIES}"
NAN = float("nan")
CELLS = [
    ("1.0", 1.0, 1.0, "numeric"),
    ("0.1", 0.1, NOT_WHOLE, "numeric"),
    (" 1.5 ", 1.5, NOT_WHOLE, "numeric"),
    ("\t2", 2.0, 2.0, "numeric"),
    ("1.", 1.0, 1.0, "numeric"),
    (".5", 0.5, NOT_WHOLE, "numeric"),
    ("+.5", 0.5, NOT_WHOLE, "numeric"),
    ("1E5", 1e5, 1e5, "numeric"),
    ("-0", -0.0, -0.0, "numeric"),
    ("00012", 12.0, 12.0, "numeric"),
    ("2.5", 2.5, NOT_WHOLE, "numeric"),
    ("1e-50", 1e-50, NOT_WHOLE, "numeric"),
    ("3.4e38", 3.4e38, BEYOND_2_24, "numeric"),
    ("16777216", 16777216.0, 16777216.0, "numeric"),
    ("-16777216", -16777216.0, -16777216.0, "numeric"),
    ("16777217", 16777217.0, BEYOND_2_24, "numeric"),
    *((missing, NAN, NAN, "numeric") for missing in ["", " ", "nan", "NaN", "NAN", " nan "]),
    *((missing, NAN, NAN, "numeric") for missing in ["na", "NA", "n/a", "N/A", "None", "none"]),
    ("NULL", NAN, NAN, "numeric"),
    ("?", NAN, NAN, "numeric"),
    *((cell, NOT_A_NUMBER, NOT_A_NUMBER, "refused") for cell in ["inf", "-inf", "Infinity"]),
    *((cell, NOT_A_NUMBER, NOT_A_NUMBER, "refused") for cell in ["+nan", "-nan", "1e400"]),
    *((cell, BEYOND, BEYOND, "refused") for cell in ["1e39", "-1e39", "3.5e38"]),
    ("1.7976931348623157e308", BEYOND, BEYOND, "refused"),
    # float() reads these; a CSV writer or pandas does not write them for numbers.
    *((cell, NOT_A_NUMBER, NOT_A_NUMBER, "string") for cell in ["1_000", "0_1", "١٢", "\xa01"]),
    ("1\u2003", NOT_A_NUMBER, NOT_A_NUMBER, "string"),
    *((cell, NOT_A_NUMBER, NOT_A_NUMBER, "string") for cell in ["0x10", "1,5", "1 2", "1e"]),
    *((cell, NOT_A_NUMBER, NOT_A_NUMBER, "string") for cell in ["True", "1\x00", "1\x1c"]),
]


@pytest.mark.parametrize("cell,number,integer,alone", CELLS, ids=[ascii(c[0]) for c in CELLS])
def test_each_kind_of_cell_is_read_or_refused_as_one_at_a_time(
    tmp_path, cell, number, integer, alone
):
    import csv

    def write(cells, name):
        path = tmp_path / name
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["x", "y"], *([c, "a"] for c in cells)])
        return path

    among = write(["1"] * 19 + [cell], "among.csv")  # the cell in file row 21
    reads = {
        "numeric": lambda: tables.read_csv_table(among, label="y"),
        "given numeric": lambda: tables.read_csv_table(
            among, label="y", columns=(tables.Column("x", "numeric"),)
        ),
        "integer": lambda: tables.read_csv_table(among, label="y", categorical=["x"]),
        "given integer": lambda: tables.read_csv_table(
            among, label="y", columns=(tables.Column("x", "integer"),)
        ),
    }
    for how, read in reads.items():
        expected = integer if "integer" in how else number
        if isinstance(expected, float):
            values = read().values["x"]
            assert repr(values.tolist()) == repr([1.0] * 19 + [expected]), how  # -0.0, nan
        else:
            with pytest.raises(DataError) as error:
                read()
            shown = repr(cell.strip())
            assert str(error.value) == f"{among} row 21, column 'x': {shown} {expected}", how
    column = write([cell] * 3, "alone.csv")
    if alone == "refused":
        with pytest.raises(DataError, match="^" + re.escape(f"{column} row 2, column 'x': ")):
            tables.read_csv_table(column, label="y")
    else:
        table = tables.read_csv_table(column, label="y")
        assert table.columns == (tables.Column("x", alone),)
        if alone == "string":
            assert table.values["x"].tolist() == [cell.strip()] * 3


@pytest.mark.parametrize(
    "cell,outcome",
    [
        (" 2 ", [1.5, 2.5, 3.5, 2.0, 4.5]),  # float(" 2 ")
        ("1e5", [1.5, 2.5, 3.5, 100000.0, 4.5]),
        ("1_000", "5 distinct string labels"),  # float() reads it; _number_like does not
        ("١٢", "5 distinct string labels"),
        ("0x10", "5 distinct string labels"),
        ("inf", "label 'inf' is not a number; regression needs numeric labels (data.label)"),
        ("+nan", "label '+nan' is not a number; regression needs numeric labels (data.label)"),
        ("1e39", "label '1e39' is beyond float32's +-3.4e38, in which the model computes"),
    ],
)
def test_each_kind_of_label_gives_the_task_or_refusal_it_gave_one_at_a_time(
    tmp_path, cell, outcome
):
    # Labels 1.5, 2.5, 3.5, the cell (file row 5), 4.5 under data.task auto; each outcome
    # was read off kerasmlp before the labels were read all at once (commit 8812ef8).
    rows = ["1.5", "2.5", "3.5", cell, "4.5"]
    path = _write(tmp_path, "x,y\n" + "".join(f'{i},"{v}"\n' for i, v in enumerate(rows)))
    table = tables.read_csv_table(path, label="y")
    if isinstance(outcome, list):
        labels = tables.choose_labels(table, "auto", label="y")
        assert labels.task == "regression"
        assert labels.encode(table, what="data.path").tolist() == outcome
    elif outcome.startswith("label "):
        with pytest.raises(DataError) as error:
            tables.choose_labels(table, "auto", label="y")
        assert str(error.value).startswith(f"{path} row 5: {outcome}")
    else:
        assert tables.choose_labels(table, "auto", label="y").why == outcome
