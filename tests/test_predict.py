"""Your own CSV end to end: `kerasmlp-train` on it, then `kerasmlp-predict` and `load_run`.

The runs are a few epochs on files written here (a classification CSV with a
string column and missing values, a regression CSV). Predictions are checked
value by value against the saved model's `model.predict`, run in a fresh process.
"""

import builtins
import csv
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from kerasmlp import export, predict
from kerasmlp.errors import DataError
from kerasmlp.inference import load_run
from tests.conftest import COLLECTOR_OFF, invoke_train


def _classification_csv(path, rows=120, seed=0):
    """Class 'high' when x + (color == 'red') > 1; x missing in every 9th row."""
    rng = np.random.default_rng(seed)
    lines = ["x,color,w,kind"]
    for i in range(rows):
        x = rng.uniform(-1, 2)
        color = ["red", "blue", "green"][i % 3]
        kind = "high" if x + (color == "red") > 1 else "low"
        shown = "" if i % 9 == 4 else f"{x:.4f}"
        lines.append(f"{shown},{color if i % 10 else ''},{rng.normal():.3f},{kind}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(tmp_path, *overrides, name="run"):
    result = invoke_train(
        [
            "--logdir",
            str(tmp_path / "logs"),
            "--run-name",
            name,
            "--set",
            "train.epochs=8",
            "--set",
            "train.batch_size=16",
            "--set",
            "model.hidden_units=[16]",
            "--set",
            "train.histogram_every_epochs=0",
            "--set",
            "train.image_every_epochs=0",
            # Predictions are compared with the saved model's to 1e-5: float32, whatever
            # `auto` would pick (in bfloat16 they move with the batch's shape by ~1e-3).
            "--set",
            "train.precision=float32",
            *(a for o in overrides for a in ("--set", o)),
        ],
    )
    return result


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("csv")
    data = _classification_csv(tmp_path / "train.csv")
    result = _train(
        tmp_path,
        "data.name=csv",
        f"data.path={data}",
        "data.label=kind",
        "train.save_best=validation_accuracy",
    )
    assert result.exit_code == 0, result.output
    return tmp_path, tmp_path / "logs" / "run", result.output


def test_training_says_which_task_it_chose_and_learns(csv_run):
    _, run_dir, output = csv_run
    assert "classification (2 distinct string labels)" in output
    results = json.loads((run_dir / "metrics.json").read_text())
    assert results["test_accuracy"] > 0.7  # a rule of 2 features; chance is about 0.5


def test_predict_csv_matches_the_saved_model_in_a_fresh_process(csv_run, tmp_path):
    tmp, run_dir, _ = csv_run
    new = _classification_csv(tmp_path / "new.csv", rows=15, seed=1)
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(predict.main, [str(run_dir), str(new), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "metrics    | examples 15 | accuracy" in result.output
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["predicted", "probability_high", "probability_low"]
    probabilities = np.array([[float(v) for v in row[1:]] for row in rows[1:]])

    # The reference: model.keras loaded after `import kerasmlp` alone, on the raw columns.
    script = textwrap.dedent(
        f"""
        import csv, json
        import kerasmlp, keras, numpy as np, tensorflow as tf
        model = keras.models.load_model({str(run_dir / "model.keras")!r})
        rows = list(csv.DictReader(open({str(new)!r})))
        def number(v):
            return float(v) if v else float("nan")
        inputs = {{
            "x": tf.constant([[number(r["x"])] for r in rows], tf.float32),
            "color": tf.constant([[r["color"]] for r in rows]),
            "w": tf.constant([[number(r["w"])] for r in rows], tf.float32),
        }}
        logits = model.predict(inputs, verbose=0)
        print(json.dumps(keras.ops.convert_to_numpy(keras.ops.softmax(logits)).tolist()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", COLLECTOR_OFF + script],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp,
    )
    expected = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
    names = np.array(["high", "low"])[expected.argmax(axis=1)]
    assert [row[0] for row in rows[1:]] == list(names)


def test_load_run_predicts_on_raw_columns(csv_run):
    tmp, run_dir, _ = csv_run
    run = load_run(run_dir)
    assert run.class_names == ("high", "low") and run.task == "classification"
    assert run.config.data.label == "kind"
    columns = {"x": [1.9, -0.9, float("nan")], "color": ["red", "blue", "purple"], "w": [0, 0, 0]}
    proba = run.predict_proba(columns)
    assert proba.shape == (3, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert list(run.predict(columns)[:2]) == ["high", "low"]


def test_outputs_in_chunks_of_rows_match_one_call(csv_run, tmp_path):
    # `outputs` slices the inputs into chunks (tf.data took the rows one by one); chunks of
    # 7 rows of 15 (the last one row) must give each row what one call of the model gives.
    _, run_dir, _ = csv_run
    run = load_run(run_dir)
    inputs, _ = run.read(_classification_csv(tmp_path / "new.csv", rows=15, seed=1))
    whole = np.asarray(run.model(inputs, training=False))  # the reference: one call
    for batch_size in (None, 7):
        np.testing.assert_allclose(run.outputs(inputs, batch_size), whole, rtol=1e-6, atol=1e-7)
    assert run.outputs(inputs).shape == (15, 2)


def test_evaluate_refuses_what_is_not_outputs_and_labels(csv_run):
    # run.evaluate takes logits, not the inputs that Keras's model.evaluate(x, y) takes:
    # an image run's (n, 784) uint8 images gave accuracy 0.0 there, without a word.
    _, run_dir, _ = csv_run
    run = load_run(run_dir)
    columns = {"x": [1.9, -0.9], "color": ["red", "blue"], "w": [0, 0]}
    outputs, units = run.logits(columns), run.head.units
    assert run.evaluate(outputs, [0, 1]) == run.evaluate(outputs, [[0], [1]])  # (n, 1), as Keras
    for wrong, labels, message in [
        (np.zeros((2, 784), np.uint8), [0, 1], rf"floats of shape \(n, {units}\)"),
        (columns, [0, 1], r"Received: an array of object of shape \(\)"),
        (outputs, [0], r"one label per output row: shape \(2,\)"),
        (outputs, [0, 2], r"labels\[1\]=2 is no class id of this run: allowed 0 to 1"),
        (outputs, ["high", "low"], r"labels\[0\]='high' is no class id"),
    ]:
        with pytest.raises(DataError, match=message):
            run.evaluate(wrong, labels)


def test_infinities_in_a_dict_of_columns_are_refused(csv_run):
    # NaN is the missing value; inf once gave NaN probabilities, read as class 0.
    _, run_dir, _ = csv_run
    run = load_run(run_dir)
    columns = {"x": [1.0, float("nan"), -np.inf], "color": ["red"] * 3, "w": [0, 0, 0]}
    with pytest.raises(DataError) as error:
        run.predict(columns)
    assert str(error.value) == (
        "column 'x': row 2 (from 0) is -inf; give finite numbers within float32's +-3.4e38, "
        "NaN for a missing one"
    )
    # 1e39 is inf in the model's float32: refused as given, not as 'inf'.
    with pytest.raises(DataError, match=r"^column 'x': row 1 \(from 0\) is 1e\+39; give"):
        run.predict({**columns, "x": [1.0, 1e39, 2.0]})


@pytest.mark.parametrize(
    "change,message",
    [
        (
            {"x": [1.9, ""]},
            "column 'x': row 1 (from 0) is '', not a number; the column takes numbers, "
            "float('nan') for a missing one",
        ),
        ({"x": ["heavy", 1.0]}, "column 'x': row 0 (from 0) is 'heavy', not a number"),
        (
            {"x": [1.9]},
            "the columns have different lengths (x 1, color 2, w 2); give each one value per row",
        ),
        (
            {"x": [], "color": [], "w": []},
            "the columns are empty; give each one value per row, at least one row",
        ),
        (
            {"w": [[0, 1], [1, 0]]},
            "column 'w': values of shape (2, 2); give one value per row, shape (n,) or (n, 1)",
        ),
        (
            {"colour": ["red", "blue"], "color": None},
            "the inputs lack column(s) color (is 'colour' it?). Received: x, w, colour; the "
            "run's columns: x, color, w",
        ),
    ],
    ids=["empty-text", "word", "lengths", "no-rows", "two-per-row", "misspelt-column"],
)
def test_mistakes_in_a_dict_of_columns_name_the_column(csv_run, change, message):
    # Once numpy's or TensorFlow's own errors ("could not convert string to float: ''").
    _, run_dir, _ = csv_run
    run = load_run(run_dir)
    columns = {"x": [1.9, float("nan")], "color": ["red", ""], "w": [0, None], **change}
    columns = {name: values for name, values in columns.items() if values is not None}
    with pytest.raises(DataError) as error:
        run.predict(columns)
    assert str(error.value).startswith(message)


def test_numbers_as_text_and_none_still_work_in_a_dict(csv_run):
    # What numpy accepted before the checks: None is a missing number, "1.9" a number.
    _, run_dir, _ = csv_run
    run = load_run(run_dir)
    plain = run.predict_proba({"x": [1.9, float("nan")], "color": ["red", "blue"], "w": [0, 0]})
    text = run.predict_proba({"x": ["1.9", None], "color": ["red", "blue"], "w": [0, 0]})
    np.testing.assert_array_equal(text, plain)


def test_padded_strings_find_their_category_in_a_csv_a_dict_and_the_saved_model(csv_run, tmp_path):
    import tensorflow as tf

    # A CSV's fields are read stripped; a dict and the exported SavedModel once took
    # " red" as written, an unseen category. The reference: the same rows unpadded.
    # "\xa0" (a spreadsheet's no-break space) is whitespace to Python's str.strip, which
    # reads the CSV, but not to tf.strings.strip.
    _, run_dir, _ = csv_run
    run = load_run(run_dir)
    padded = [" red", "blue\xa0", "\tgreen  ", " "]
    plain = {"x": [0.5, 0.5, 0.5, 0.5], "color": ["red", "blue", "green", ""], "w": [0.0] * 4}
    expected = run.predict_proba(plain)
    assert len({tuple(row) for row in expected[:3].round(6)}) == 3  # the colors matter
    new = tmp_path / "padded.csv"
    with open(new, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["x", "color", "w"], *([0.5, c, 0.0] for c in padded)])
    np.testing.assert_array_equal(run.predict_proba(str(new)), expected)
    np.testing.assert_array_equal(run.predict_proba({**plain, "color": padded}), expected)
    result = CliRunner().invoke(export.main, [str(run_dir), str(tmp_path / "served")])
    assert result.exit_code == 0, result.output
    served = tf.saved_model.load(str(tmp_path / "served"))
    inputs = {
        "x": tf.constant([[0.5]] * 4),
        "color": tf.constant([[c] for c in padded]),
        "w": tf.constant([[0.0]] * 4),
    }
    np.testing.assert_allclose(served.serve(inputs), expected, rtol=1e-6)
    (by_signature,) = served.signatures["serving_default"](**inputs).values()
    np.testing.assert_allclose(by_signature, expected, rtol=1e-6)


def test_strings_given_as_utf8_bytes_in_a_dict_are_decoded(csv_run):
    # tfds.as_numpy gives text as bytes: numpy's astype(str) decoded them as ASCII, and
    # "caf\xc3\xa9" (café) ended in a UnicodeDecodeError traceback. The reference: the
    # same values given as str.
    _, run_dir, _ = csv_run
    run = load_run(run_dir)
    columns = {"x": [0.5, 0.5], "w": [0.0, 0.0]}
    as_bytes, _ = run.read({**columns, "color": ["café".encode(), b"red"]})
    as_text, _ = run.read({**columns, "color": ["café", "red"]})
    assert as_bytes["color"].numpy().tolist() == as_text["color"].numpy().tolist()
    np.testing.assert_array_equal(
        run.predict_proba({**columns, "color": np.array(["café".encode(), b"red"])}),
        run.predict_proba({**columns, "color": ["café", "red"]}),
    )


def test_rows_given_to_a_csv_run_are_refused(csv_run):
    _, run_dir, _ = csv_run
    run = load_run(run_dir)
    with pytest.raises(DataError) as error:
        run.predict([[1.9, "red", 0.0]])
    assert str(error.value) == (
        "the array: this run was trained on named columns (csv); give a dict {column: values} "
        "or a CSV file, not an array of rows"
    )


def test_predict_the_test_split(csv_run, monkeypatch):
    tmp, run_dir, _ = csv_run
    monkeypatch.chdir(tmp)
    result = CliRunner().invoke(predict.main, [str(run_dir), "--split", "test"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("high", "low"))]
    assert len(lines) == 24  # 0.2 of 120 rows
    saved = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    assert f"examples 24 | accuracy {saved:.4f}" in result.output


def test_predict_the_test_split_refuses_a_training_file_changed_since(csv_run, monkeypatch):
    # 8 rows appended to train.csv once moved the split silently: "examples 26", most of
    # them rows the model had trained on, printed as the run's test metrics.
    tmp, run_dir, _ = csv_run
    data = tmp / "train.csv"
    original = data.read_text()
    monkeypatch.chdir(tmp)
    try:
        data.write_text(original + "".join(original.splitlines(keepends=True)[1:9]))
        result = CliRunner().invoke(predict.main, [str(run_dir), "--split", "test"])
    finally:
        data.write_text(original)
    assert result.exit_code == 2
    assert result.output == (
        f"kerasmlp-predict: error: {data} has changed since the run took its test split from "
        "it (its sha256 differs): read again, the split would hold other rows. Restore the "
        "file, or give the rows to predict as INPUT\n"
    )
    result = CliRunner().invoke(predict.main, [str(run_dir), "--split", "test"])
    assert result.exit_code == 0 and "examples 24 |" in result.output, result.output


def test_predict_prints_only_its_own_lines(csv_run, tmp_path):
    # As a user runs it: no TF_CPP_MIN_LOG_LEVEL of the tests' own. TensorFlow's C++
    # start-up lines (absl::InitializeLog, cuda drivers, cuInit) once came first on stderr.
    _, run_dir, _ = csv_run
    new = _classification_csv(tmp_path / "new.csv", rows=15, seed=1)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "kerasmlp.predict", str(run_dir), str(new)]
    out = subprocess.run(
        [*command, "-o", "quiet.csv"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == ""
    assert re.fullmatch(r"metrics    \| examples 15 \| accuracy \d\.\d{4}\n", out.stdout)


def test_predict_verbose_starts_tensorflow_verbose(csv_run, tmp_path, monkeypatch):
    # What --verbose does to TensorFlow's log is start_tensorflow's, seen through the
    # console script in test_cli.py's test_a_default_run_prints_only_kerasmlp_lines.
    _, run_dir, _ = csv_run
    new = _classification_csv(tmp_path / "new.csv", rows=15, seed=1)
    started = []
    monkeypatch.setattr(predict, "start_tensorflow", lambda **kw: started.append(kw))
    for flag in ([], ["--verbose"]):
        out = str(tmp_path / f"out{len(started)}.csv")
        result = CliRunner().invoke(predict.main, [str(run_dir), str(new), "-o", out, *flag])
        assert result.exit_code == 0, result.output
    assert started == [{"verbose": False}, {"verbose": True}]


def test_predict_refuses_an_output_file_that_exists(csv_run, tmp_path):
    # `--output` naming INPUT once overwrote the data it predicted on.
    _, run_dir, _ = csv_run
    new = _classification_csv(tmp_path / "new.csv", rows=15, seed=1)
    before = new.read_bytes()
    result = CliRunner().invoke(predict.main, [str(run_dir), str(new), "--output", str(new)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"kerasmlp-predict: error: --output {new} already exists; give a new file name, "
        "or remove it first"
    ]
    assert new.read_bytes() == before


def test_predict_makes_the_folders_of_its_output(csv_run, tmp_path):
    # `-o missing/dir/p.csv` exited 1 (No such file or directory) after predicting, while
    # kerasmlp-export makes the folders it writes into. A file in the way is refused first.
    _, run_dir, _ = csv_run
    new = _classification_csv(tmp_path / "new.csv", rows=15, seed=1)
    out = tmp_path / "missing" / "dir" / "p.csv"
    result = CliRunner().invoke(predict.main, [str(run_dir), str(new), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count("\n") == 16  # header + 15 rows
    (tmp_path / "afile").write_text("kept")
    inside_a_file = tmp_path / "afile" / "p.csv"
    result = CliRunner().invoke(predict.main, [str(run_dir), str(new), "-o", str(inside_a_file)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"kerasmlp-predict: error: cannot make --output {inside_a_file}: "
        f"{tmp_path / 'afile'} is a file, not a folder"
    ]
    assert (tmp_path / "afile").read_text() == "kept"
    # A name ending in '/' is a folder's: once made, then refused with status 1.
    folder = f"{tmp_path / 'preds'}/"
    result = CliRunner().invoke(predict.main, [str(run_dir), str(new), "-o", folder])
    assert (result.exit_code, result.output) == (
        2,
        f"kerasmlp-predict: error: --output {folder} names a folder; give a file name, "
        f"e.g. {folder}p.csv\n",
    )
    assert not (tmp_path / "preds").exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_predict_to_a_full_stdout_exits_1_with_one_line(csv_run, tmp_path):
    # `kerasmlp-predict RUN IN > /dev/full` ended in Python's traceback (exit 1 by luck):
    # now one line and exit 1, as kerasmlp-train on a full device.
    _, run_dir, _ = csv_run
    new = _classification_csv(tmp_path / "new.csv", rows=15, seed=1)
    command = [sys.executable, "-m", "kerasmlp.predict", str(run_dir), str(new)]
    with open("/dev/full", "w") as full:
        out = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True)
    assert out.returncode == 1
    assert out.stderr == (
        "kerasmlp-predict: error: cannot write to <stdout>: No space left on device\n"
    )


def test_a_csv_file_cut_short_by_a_full_disk_is_removed(csv_run, tmp_path, monkeypatch):
    # The disk fills after the first bytes: a CSV left cut short would read as a whole one.
    _, run_dir, _ = csv_run
    new = _classification_csv(tmp_path / "new.csv", rows=15, seed=1)
    out = tmp_path / "predictions.csv"

    class FillsUp:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, text):
            self.file.write(text[:20])
            self.file.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_disk_open(path, mode="r", **kwargs):
        return FillsUp(builtins.open(path, mode, **kwargs))

    monkeypatch.setattr(predict, "open", full_disk_open, raising=False)
    result = CliRunner().invoke(predict.main, [str(run_dir), str(new), "-o", str(out)])
    assert result.exit_code == 1
    assert result.output == (
        f"kerasmlp-predict: error: cannot write {out}: No space left on device\n"
    )
    assert not out.exists()


def test_predict_output_dash_is_stdout(csv_run, tmp_path, monkeypatch):
    # `-o -` made a file named "-" in the working directory.
    _, run_dir, _ = csv_run
    new = _classification_csv(tmp_path / "new.csv", rows=15, seed=1)
    monkeypatch.chdir(tmp_path)
    dash = CliRunner().invoke(predict.main, [str(run_dir), str(new), "-o", "-"])
    plain = CliRunner().invoke(predict.main, [str(run_dir), str(new)])
    assert dash.exit_code == 0, dash.output
    assert dash.stdout == plain.stdout and dash.stdout.count("\n") == 16  # header + 15 rows
    assert not (tmp_path / "-").exists()


def test_predict_refuses_a_file_with_other_columns(csv_run, tmp_path):
    _, run_dir, _ = csv_run
    other = tmp_path / "other.csv"
    other.write_text("x,colour,w\n1,red,0\n")
    result = CliRunner().invoke(predict.main, [str(run_dir), str(other)])
    assert result.exit_code == 2
    assert "other.csv columns differ from the training data's: it lacks color" in result.output


def test_predict_refuses_a_number_beyond_float32_in_a_csv(csv_run, tmp_path):
    # 1e39 is finite in Python's float, inf in the model's float32: the row was written
    # as 'red,nan,nan' (argmax of NaN, class 0) with exit status 0.
    _, run_dir, _ = csv_run
    new = tmp_path / "new.csv"
    new.write_text("x,color,w\n1,red,0\n1e39,red,0\n")
    result = CliRunner().invoke(predict.main, [str(run_dir), str(new)])
    assert result.exit_code == 2
    assert result.output == (
        f"kerasmlp-predict: error: {new} row 3, column 'x': '1e39' is beyond float32's "
        "+-3.4e38, in which the model takes numbers\n"
    )


def test_columns_named_like_kerasmlp_layers_train_predict_and_export(tmp_path):
    import tensorflow as tf

    # "features", "lookup_color", "mlp_softmax" and "probabilities" were names of layers
    # kerasmlp adds (preprocessing, the MLP, the exported softmax): training crashed with
    # 'The name "features" is used 2 times in the model'.
    rng = np.random.default_rng(0)
    lines = ["features,color,lookup_color,mlp_softmax,probabilities,kind"]
    for i in range(40):
        value = rng.normal()
        color = ["red", "blue"][i % 2]
        lines.append(f"{value:.3f},{color},{color},{i % 3},{i % 5},{'ab'[int(value > 0)]}")
    path = tmp_path / "named.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _train(
        tmp_path, "data.name=csv", f"data.path={path}", "data.label=kind", "train.epochs=1"
    )
    assert result.exit_code == 0, result.output
    run = load_run(tmp_path / "logs" / "run")
    row = {
        "features": [0.5],
        "color": ["red"],
        "lookup_color": ["red"],
        "mlp_softmax": [1.0],
        "probabilities": [2.0],
    }
    expected = run.predict_proba(row)
    served = run.probability_model()
    layer_names = [layer.name for layer in served.layers]
    assert len(set(layer_names)) == len(layer_names)
    # What kerasmlp-export serves: (1, 1) tensors by column, strings as strings.
    inputs = {k: tf.constant([v]) for k, v in row.items()}
    np.testing.assert_allclose(served(inputs), expected, rtol=1e-6)
    result = CliRunner().invoke(export.main, [str(tmp_path / "logs" / "run"), str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    signature = tf.saved_model.load(str(tmp_path / "s")).signatures["serve"]
    # The signature names inputs by input name: the column mlp_softmax is mlp_softmax_.
    named = dict(inputs, mlp_softmax_=inputs["mlp_softmax"])
    del named["mlp_softmax"]
    (probabilities,) = signature(**named).values()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)


def test_a_regression_csv(tmp_path):
    # A target in the thousands: the head learns it standardized (mean and variance of the
    # training rows), the model, its loss and its metrics give it in its own units.
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(100, 2))
    y = 1000 * (3 * x[:, 0] - x[:, 1] + 0.5)
    path = tmp_path / "reg.csv"
    path.write_text(
        "a,b,target\n"
        + "".join(f"{a:.4f},{b:.4f},{t:.1f}\n" for (a, b), t in zip(x, y, strict=True))
    )
    result = _train(
        tmp_path,
        "data.name=csv",
        f"data.path={path}",
        "data.label=target",
        "loss.name=mean_squared_error",
        "metrics=[mae]",
        "optimizer.learning_rate.initial_learning_rate=0.02",
        "train.epochs=30",
    )
    assert result.exit_code == 0, result.output
    assert "regression (labels are numbers with fractions)" in result.output
    run_dir = tmp_path / "logs" / "run"
    # Predicting the target's mean gives mae about 1685 (numpy on these 100 rows).
    test_mae = json.loads((run_dir / "metrics.json").read_text())["test_mae"]
    assert test_mae < 400
    run = load_run(run_dir)
    assert run.model.get_layer("mlp_linear").layers[-1].name == "target_units"
    values = run.predict({"a": [0.5], "b": [0.0]})
    assert values.dtype == np.float32 and abs(values[0] - 2000.0) < 600
    # The logged test mae is numpy's on the saved model's predictions, in the target's units.
    inputs, labels = run.read_test_split()
    predicted = run.decide(run.outputs(inputs))
    assert test_mae == pytest.approx(np.mean(np.abs(predicted - labels)), rel=1e-5)
    # Targets whose square float32 cannot hold, as a file's are refused (tables.MAX_TARGET):
    # the metrics were inf.
    with pytest.raises(DataError, match=r"^labels\[1\]=3e\+19 is beyond \+-1.845e\+19, whose"):
        run.evaluate(run.outputs(inputs)[:2], np.array([1000.0, 3e19]))
    # A missing target, as a file's missing label is: the metrics were NaN, without a word.
    for missing in (np.nan, np.inf):
        with pytest.raises(DataError, match=rf"^labels\[0\]={missing!r} is not a finite number"):
            run.evaluate(run.outputs(inputs)[:2], np.array([missing, 1000.0]))


@pytest.mark.parametrize(
    "make,overrides,message",
    [
        (None, ["data.label=kind"], "File not found: "),
        ("a,b\n1,2\n3,4\n", ["data.label=kind"], "has no label column 'kind' (data.label)"),
        ("", ["data.label=kind"], "is empty"),
        ("x,kind\n1,a\n2\n", ["data.label=kind"], "row 3: 1 fields, the header has 2"),
        (
            "x,kind\n" + "1,a\n2,b\n" * 10 + "oops,a\n",
            ["data.label=kind"],
            "row 22, column 'x': 'oops' is not a number",
        ),
        ("x,kind\n1,a\n2,a\n3,a\n", ["data.label=kind"], "has one class ('a')"),
        (
            "x,kind\n" + "1.5,a\n2.5,b\n" * 5,
            ["data.label=kind", "data.test_path=nothere.csv"],
            "File not found: nothere.csv (data.test_path)",
        ),
        (
            "x,kind\n" + "0.5,1.5\n1.5,2.5\n" * 5,
            ["data.label=kind"],
            "data.task auto chose regression for label 'kind'",
        ),
    ],
    ids=["no-file", "no-label", "empty", "ragged", "not-a-number", "one-class", "no-test", "task"],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, make, overrides, message):
    path = tmp_path / "in.csv"
    if make is not None:
        path.write_text(make)
    result = _train(tmp_path, "data.name=csv", f"data.path={path}", *overrides)
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("kerasmlp-train")]
    assert len(error) == 1 and message in error[0], result.output
    assert not (tmp_path / "logs" / "run").exists()


def test_an_npz_run_and_its_predictions(tmp_path):
    # Class 1 when the 2x2 example's sum is positive; x_test and y_test are the test split.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 2, 2)).astype("float32")
    y = (x.sum(axis=(1, 2)) > 0).astype("int64")
    path = tmp_path / "d.npz"
    np.savez(path, x=x[:120], y=y[:120], x_test=x[120:], y_test=y[120:])
    result = _train(tmp_path, "data.name=npz", f"data.path={path}", "train.epochs=10")
    assert result.exit_code == 0, result.output
    assert "classification (2 distinct integer labels)" in result.output
    run_dir = tmp_path / "logs" / "run"
    results = json.loads((run_dir / "metrics.json").read_text())
    assert results["test_accuracy"] > 0.8  # a linear rule; chance is about 0.5

    new = tmp_path / "new.npz"
    np.savez(new, x=x[120:], y=y[120:])
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(predict.main, [str(run_dir), str(new), "-o", str(out)])
    assert result.exit_code == 0, result.output
    # The same rows as the run's test split: the same accuracy.
    assert f"examples 40 | accuracy {results['test_accuracy']:.4f}" in result.output
    rows = out.read_text().splitlines()
    assert rows[0] == "predicted,probability_0,probability_1"
    run = load_run(run_dir)
    expected = run.predict_proba(x[120:])  # an array of rows works too
    got = np.array([[float(v) for v in row.split(",")[1:]] for row in rows[1:]])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)

    # Infinities once gave NaN probabilities, read as class 0: refused, naming the example.
    bad = x[120:].copy()
    bad[3, 1, 0] = np.inf
    with pytest.raises(DataError, match=r"^the array: example 3 \(from 0\) holds inf; give "):
        run.predict_proba(bad)
    np.savez(tmp_path / "bad.npz", x=bad)
    result = CliRunner().invoke(predict.main, [str(run_dir), str(tmp_path / "bad.npz")])
    assert result.exit_code == 2
    assert result.output == (
        f"kerasmlp-predict: error: {tmp_path / 'bad.npz'}: 'x' example 3 (from 0) holds inf; "
        "values must be finite numbers within float32's +-3.4e38, NaN for a missing one (INPUT)\n"
    )


def test_a_tfds_table_run_predicts_on_raw_columns(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        result = _train(
            tmp_path, "data.name=titanic", f"data.data_dir={tmp_path / 'tfds'}", "train.epochs=1"
        )
    assert result.exit_code == 0, result.output
    assert "titanic | label survived | classification (TFDS ClassLabel 'survived')" in (
        result.output
    )
    run = load_run(tmp_path / "logs" / "run")
    assert run.class_names == ("died", "survived")
    row = {c.name: ["male"] if c.kind == "string" else [30.0] for c in run.columns}
    row["name"], row["home.dest"] = ["Doe, John"], ["Nowhere"]
    assert run.predict_proba(row).shape == (1, 2)
    assert run.predict(row)[0] in ("died", "survived")


def test_a_tfds_vector_table_run_predicts_on_an_array_of_rows(tmp_path):
    # iris's examples are one 4-number vector: its run once refused an array ("trained on
    # named columns"), a dict ("give one value per row") and a CSV alike.
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        result = _train(
            tmp_path, "data.name=iris", f"data.data_dir={tmp_path / 'tfds'}", "train.epochs=1"
        )
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "logs" / "run"
    run = load_run(run_dir)
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    # Expected: the saved model on its one input, with a softmax written here in numpy.
    logits = run.model.predict({"features": rows.astype("float32")}, verbose=0)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(run.predict_proba(rows), expected, rtol=1e-6)
    assert run.predict(rows[:1])[0] in run.class_names
    with pytest.raises(DataError, match="named columns only; this run takes an array of rows"):
        run.predict({"features": rows})
    # An .npz INPUT, y as TFDS gives it: class ids.
    np.savez(tmp_path / "new.npz", x=rows, y=np.array([0, 2]))
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(
        predict.main, [str(run_dir), str(tmp_path / "new.npz"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "metrics    | examples 2 | accuracy" in result.output


def test_best_keras_takes_raw_columns_too(csv_run):
    import keras
    import tensorflow as tf

    _, run_dir, _ = csv_run
    best = keras.models.load_model(run_dir / "best.keras")
    inputs = {
        "x": tf.constant([[1.5]]),
        "color": tf.constant([["red"]]),
        "w": tf.constant([[0.0]]),
    }
    assert best.predict(inputs, verbose=0).shape == (1, 2)


def test_the_console_scripts_are_declared_and_answer_help_without_tensorflow():
    from tests.conftest import REPO_ROOT

    setup = (REPO_ROOT / "setup.cfg").read_text()
    assert "kerasmlp-predict = kerasmlp.predict:main" in setup
    assert "kerasmlp-export = kerasmlp.export:main" in setup
    for module in ("kerasmlp.predict", "kerasmlp.export"):
        code = (
            "import sys\nfrom click.testing import CliRunner\n"
            f"from {module} import main\n"
            "result = CliRunner().invoke(main, ['--help'])\n"
            "print(result.exit_code, 'tensorflow' in sys.modules)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert done.stdout.split() == ["0", "False"]


def test_predict_on_a_folder_that_is_no_run(tmp_path):
    result = CliRunner().invoke(predict.main, [str(tmp_path), "x.csv"])
    assert result.exit_code == 2
    assert "has no model.keras: not a completed kerasmlp run" in result.output
    result = CliRunner().invoke(predict.main, [str(tmp_path)])
    assert result.exit_code == 2 and "give INPUT or --split test" in result.output
    # --help says so too: its usage line showed INPUT as required.
    usage = CliRunner().invoke(predict.main, ["--help"]).output.splitlines()[0]
    assert usage == "Usage: main [OPTIONS] RUN_DIR [INPUT]"


def test_predict_and_export_on_a_mistyped_or_unfinished_run_say_which(tmp_path):
    # A mistyped RUN_DIR was "has no model.keras: not a completed kerasmlp run (data.json is
    # written by runs of this version on)", as if the folder held a run of another version.
    missing = tmp_path / "logs" / "frut"
    for command, second in ((predict.main, "x.csv"), (export.main, str(tmp_path / "out"))):
        result = CliRunner().invoke(command, [str(missing), second])
        assert result.exit_code == 2
        assert result.output.strip().endswith(f"error: Run folder not found: {missing}")
    # An interrupted run has no model yet: its status says so.
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text('{"state": "interrupted", "step": 57}')
    result = CliRunner().invoke(predict.main, [str(run), "x.csv"])
    assert result.exit_code == 2
    assert (
        f"{run} has no model.keras: the run is interrupted (status.json); only a completed run "
        "has a model\n"
    ) in result.output
    # A sweep's folder was "has no model.keras: not a completed kerasmlp run".
    sweep = tmp_path / "sweep"
    for point in ("01-seed=2", "00-seed=1"):
        (sweep / point).mkdir(parents=True)
        (sweep / point / "model.keras").touch()
    (sweep / "sweep.yaml").write_text("points: []\n")
    for command, second in ((predict.main, "x.csv"), (export.main, str(tmp_path / "out"))):
        result = CliRunner().invoke(command, [str(sweep), second])
        assert result.exit_code == 2
        assert result.output.endswith(
            f"error: {sweep} is a sweep's folder, not a run: give one of its runs, such as "
            f"{sweep / '00-seed=1'} (its summary.txt ranks them)\n"
        )


def test_a_playground_run_predicts_too(tmp_path, monkeypatch):
    # Runs on the built-in datasets write data.json as well: load_run and kerasmlp-predict
    # take their flat features, and an .npz's y as class ids.
    result = _train(
        tmp_path, "data.name=xor", f"data.data_dir={tmp_path / 'tfds'}", "train.epochs=2"
    )
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "logs" / "run"
    run = load_run(run_dir)
    assert run.class_names is not None and len(run.class_names) == 2 and run.columns is None
    points = np.array([[0.5, 0.5], [-0.5, 0.5]], "float32")
    np.testing.assert_allclose(run.predict_proba(points).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(DataError, match=r"example 1 \(from 0\) holds inf; give finite numbers w"):
        run.predict_proba(np.array([[0.5, 0.5], [np.inf, 0.5]], "float32"))
    # As the CLI refuses an .npz whose x holds no examples.
    with pytest.raises(DataError, match=r"holds no examples \(an array of shape \(0, 2\)\)$"):
        run.predict_proba(np.zeros((0, 2), "float32"))
    result = CliRunner().invoke(predict.main, [str(run_dir), "--split", "test"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    assert f"| accuracy {saved:.4f}" in result.output
    path = tmp_path / "points.npz"
    np.savez(path, x=points, y=np.array([0, 1]))
    result = CliRunner().invoke(predict.main, [str(run_dir), str(path)])
    assert result.exit_code == 0 and "examples 2 | accuracy" in result.output, result.output


def test_the_test_split_prepared_again_leaves_stdout_to_the_csv(tmp_path):
    # The run's data folder is gone: --split test prepares the dataset again, and says so
    # on stderr, so that `kerasmlp-predict RUN --split test > out.csv` holds the CSV alone.
    data_dir = tmp_path / "tfds"
    result = _train(tmp_path, "data.name=xor", f"data.data_dir={data_dir}", "train.epochs=1")
    assert result.exit_code == 0, result.output
    shutil.rmtree(data_dir)
    result = CliRunner().invoke(predict.main, [str(tmp_path / "logs" / "run"), "--split", "test"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("predicted,probability_"), result.stdout[:200]
    assert "preparing xor" in result.stderr


def test_a_damaged_model_file_is_named_as_damaged(csv_run, tmp_path):
    # Keras itself says "File not found" for a truncated .keras file that exists.
    _, run_dir, _ = csv_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    model = copy / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    result = CliRunner().invoke(predict.main, [str(copy), "--split", "test"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert f"{model} is damaged: not a whole .keras archive" in line


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda card: [], "it holds list, not an object"),
        (lambda card: {k: v for k, v in card.items() if k != "task"}, "'task' is null"),
        (lambda card: {**card, "input_dim": "3"}, "'input_dim' is \"3\""),
        (lambda card: {**card, "head": "linear"}, "head 'linear' for task 'classification'"),
        (lambda card: {**card, "table": {**card["table"], "columns": [{"n": "x"}]}}, "columns"),
        (lambda card: {**card, "class_names": ["high"]}, "1 class names for a softmax head"),
    ],
    ids=["a-list", "no-task", "input_dim-text", "head-of-regression", "columns", "one-class"],
)
def test_an_edited_data_card_is_refused_in_one_line(csv_run, tmp_path, edit, problem):
    # data.json edited by hand or written by another version: load_run (and so
    # kerasmlp-predict and kerasmlp-export) names the file, not a KeyError's traceback.
    _, run_dir, _ = csv_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    card = json.loads((copy / "data.json").read_text())
    (copy / "data.json").write_text(json.dumps(edit(card)))
    with pytest.raises(DataError, match=re.escape(problem)):
        load_run(copy)
    result = CliRunner().invoke(predict.main, [str(copy), "--split", "test"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"kerasmlp-predict: error: {copy / 'data.json'}"), line


def test_a_relative_data_path_means_the_same_file_from_another_folder(tmp_path, monkeypatch):
    # config.yaml held `data.path: train.csv`: `--split test` (and --resume, load_run) in
    # another folder read that folder's train.csv, other rows, and reported its accuracy
    # as the run's. The run's config.yaml now holds the path made absolute.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _classification_csv(tmp_path / "a" / "train.csv", seed=0)
    _classification_csv(tmp_path / "b" / "train.csv", rows=60, seed=1)
    monkeypatch.chdir(tmp_path / "a")
    result = _train(
        tmp_path, "data.name=csv", "data.path=train.csv", "data.label=kind", "train.epochs=1"
    )
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "logs" / "run"
    assert load_run(run_dir).config.data.path == str(tmp_path / "a" / "train.csv")
    monkeypatch.chdir(tmp_path / "b")
    result = CliRunner().invoke(predict.main, [str(run_dir), "--split", "test"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    # 120 rows, 20% held out: the run's own 24 test rows (b's 60 would give 12).
    assert f"metrics    | examples 24 | accuracy {saved:.4f}" in result.stderr
