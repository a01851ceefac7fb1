"""A finished run as a predictor: `load_run("logs/<run>")`, and how a run saves its model.

A run writes `model.keras` (`serving_model`) and `data.json` (`write_data_card`:
the task, the class names, the head, and for your own table its columns). For a
table the saved model is the preprocessing (see `kerasmlp.tabular`) followed by
the MLP, so it takes the raw columns; for a TFDS image set it takes the raw
images (uint8, scaled and flattened by its first layers); for the generated sets
the float32 points. Either way it emits logits;
`LoadedRun.predict_proba` applies the head's softmax or sigmoid.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import pathlib
import warnings
import zipfile
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kerasmlp import tables
from kerasmlp.config import Config, load_saved_config
from kerasmlp.errors import DataError
from kerasmlp.model import Head
from kerasmlp.runfiles import CONFIG_FILE, SWEEP_FILE, read_status, write_json_atomic
from kerasmlp.tables import INTEGER, NUMERIC, STRING, Column

MODEL_FILE = "model.keras"
DATA_FILE = "data.json"
# `outputs` calls the model eagerly, ~60 ms of Keras's per-layer work a call on a table of
# 20 columns whatever its rows: a call takes as many rows as make this much float32 in the
# widest layer, and at least 4096 (the fixed size before).
CHUNK_BYTES = 32 * 2**20
MIN_CHUNK_ROWS = 4096
# What Python's `str.strip()` takes off a CSV's fields (`kerasmlp.tables`), in RE2:
# ASCII whitespace, the separators \x1c-\x1f, NEL and Unicode's spaces (the no-break
# space a spreadsheet writes among them), which `tf.strings.strip` (ASCII only) leaves.
_SPACE = r"[\t\n\v\f\r\x{1c}-\x{1f}\x{85}\p{Z}]"


def serving_model(model: keras.Model, data) -> keras.Model:
    """The model to save: preprocessing + `model` for a table, `model` itself otherwise."""
    tabular = getattr(data, "tabular", None)
    if tabular is None:
        return model
    preprocessor = tabular.preprocessor
    return _functional(preprocessor.input, model(preprocessor.output), "mlp_on_raw_columns")


def _functional(inputs, outputs, name: str) -> keras.Model:
    with warnings.catch_warnings():
        # Keras asks for dict keys equal to the input names; a header such as "width (cm)"
        # cannot be an input name (see `tabular.input_name`), and the dict maps by key.
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
        return keras.Model(inputs, outputs, name=name)


def strip_strings(inputs):
    """`inputs` (a tensor or a dict of them) with each string's surrounding whitespace
    removed, as a CSV's fields are read: `" red"` finds the category `red`, not the
    unseen values' slot. Numbers pass as they are.
    """
    pattern = f"^{_SPACE}+|{_SPACE}+$"
    return keras.tree.map_structure(
        lambda x: tf.strings.regex_replace(x, pattern, "") if x.dtype == tf.string else x, inputs
    )


def export_saved_model(model: keras.Model, path: str | os.PathLike) -> None:
    """`model.export(path, format="tf_saved_model")`, its `serve` endpoint (and so
    `serving_default`) stripping string inputs first (`strip_strings`), as
    `LoadedRun.predict` does; the inputs are keyed and named as `model.export` keys them.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = keras.tree.map_structure(
        lambda x: tf.TensorSpec(x.shape, x.dtype, name=x.name), model.input
    )
    archive.add_endpoint(
        "serve", lambda inputs: model(strip_strings(inputs), training=False), [signature]
    )
    archive.write_out(str(path), verbose=False)


def write_data_card(run_dir: pathlib.Path, data, head: Head) -> None:
    """Writes `data.json`: what `load_run` needs beside the model (inputs, classes)."""
    info = data.info
    tabular = getattr(data, "tabular", None)
    card = {
        "task": info.task,
        "class_names": list(info.class_names) if info.class_names else None,
        "head": head.kind,
        "dataset": info.name,
        "input_dim": info.input_dim,
        "table": tabular.to_json() if tabular is not None else None,
    }
    write_json_atomic(run_dir / DATA_FILE, card)


def load_saved_model(path: str | os.PathLike) -> keras.Model:
    """`keras.models.load_model`, with a damaged file named as damaged.

    Keras answers "File not found" for a truncated `.keras` file that exists; a
    `.keras` file is a zip archive, so one that is not a whole zip is damaged.

    Raises:
      DataError: the file is missing or damaged.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found")
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path} is damaged: not a whole .keras archive ({path.stat().st_size} bytes; "
            "truncated?). Train the run again, or restore the file"
        )
    try:
        return keras.models.load_model(path)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as e:
        cause = " ".join(str(e).split())[:200]
        raise DataError(f"{path} is damaged: Keras cannot load it ({cause})") from None


# data.json's keys and the types of their values (a table's: `tabular.to_json`).
_CARD_KEYS = {
    "task": str,
    "class_names": (list, type(None)),
    "head": str,
    "input_dim": int,
    "table": (dict, type(None)),
}
_HEADS = {"classification": ("softmax", "sigmoid"), "regression": ("linear",)}


def read_data_card(path: pathlib.Path) -> dict:
    """`data.json` as `write_data_card` wrote it, its keys and their types checked.

    Raises:
      DataError: not JSON, or edited or written by another version (a key missing,
        a value of another type, a head that does not fit the task).
    """
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is damaged (not JSON: {e})") from None
    problem = None
    if not isinstance(card, dict):
        problem = f"it holds {type(card).__name__}, not an object"
    else:
        for key, kind in _CARD_KEYS.items():
            if not isinstance(card.get(key), kind) or isinstance(card.get(key), bool):
                problem = f"{key!r} is {json.dumps(card.get(key))[:60]}"
                break
        else:
            table = card["table"] or {"source": "", "label": None, "columns": []}
            columns = table.get("columns")
            if card["head"] not in _HEADS.get(card["task"], ()):
                problem = f"head {card['head']!r} for task {card['task']!r}"
            elif not all(isinstance(name, str) for name in card["class_names"] or ()):
                problem = "'class_names' holds a value that is no name"
            elif not isinstance(columns, list) or not all(
                isinstance(c, dict) and set(c) == {"name", "kind"} for c in columns
            ):
                problem = "'table' has no list of columns {name, kind}"
            elif not isinstance(table.get("source"), str) or "label" not in table:
                problem = "'table' lacks its source or label"
    if problem is not None:
        raise DataError(
            f"{path} is damaged or from another version: {problem}. "
            "Restore the file, or train the run again"
        )
    return card


class LoadedRun:
    """A trained run: its model, config and classes, predicting on raw inputs.

    Attributes:
      run_dir: the run's folder.
      model: the saved `keras.Model` (emits logits, or the regression value).
      config: the run's `Config`.
      task: 'classification' or 'regression'.
      class_names: class names in id order; None for regression.
      columns: a table's input columns (`kerasmlp.tables.Column`); None otherwise.
      label: a CSV's label column; None otherwise.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = pathlib.Path(run_dir)
        if not self.run_dir.is_dir():  # a mistyped path: not "a run without model.keras"
            raise DataError(f"Run folder not found: {self.run_dir}")
        if (self.run_dir / SWEEP_FILE).is_file():  # was "not a completed kerasmlp run"
            done = sorted(p for p in self.run_dir.iterdir() if (p / MODEL_FILE).is_file())
            which = f"such as {done[0]}" if done else "none is completed yet"
            raise DataError(
                f"{self.run_dir} is a sweep's folder, not a run: give one of its runs, {which} "
                "(its summary.txt ranks them)"
            )
        for name in (MODEL_FILE, DATA_FILE, CONFIG_FILE):
            if not (self.run_dir / name).is_file():
                state = (read_status(self.run_dir) or {}).get("state")
                why = (
                    f"the run is {state} (status.json); only a completed run has a model"
                    if state in ("running", "interrupted", "diverged", "failed")
                    else "not a completed kerasmlp run"
                )
                version = " (data.json is written by runs of this version on)"
                raise DataError(
                    f"{self.run_dir} has no {name}: {why}{version if name == DATA_FILE else ''}"
                )
        self.config: Config = load_saved_config(self.run_dir / CONFIG_FILE)
        card = read_data_card(self.run_dir / DATA_FILE)
        self.task: str = card["task"]
        self.class_names = tuple(card["class_names"]) if card["class_names"] else None
        self.input_dim: int = card["input_dim"]
        table = card.get("table")
        self.source = table["source"] if table else None
        self.label = table["label"] if table else None
        self.columns = tuple(Column(**c) for c in table["columns"]) if table else None
        with warnings.catch_warnings():  # see `_functional`
            warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
            self.model: keras.Model = load_saved_model(self.run_dir / MODEL_FILE)
        self.head = Head(card["head"], int(self.model.output.shape[-1]))
        classes = len(self.class_names or ())
        if classes != (self.head.num_classes or 0):
            raise DataError(
                f"{self.run_dir / DATA_FILE} does not fit {MODEL_FILE}: {classes} class names "
                f"for a {self.head.kind} head of {self.head.units} outputs (edited?). "
                "Restore the file, or train the run again"
            )

    # --- inputs ------------------------------------------------------------

    def read(self, inputs: Any, *, what: str = "INPUT") -> tuple[Any, np.ndarray | None]:
        """The model's inputs for `inputs`, and the labels (class ids or targets) if present.

        Args:
          inputs: a path to a CSV or .npz shaped like the training data (a label
            column or `y` is used for metrics only); a dict of columns (lists or
            arrays of one value per row); or an array of rows (an .npz run's x,
            the raw images of a TFDS image run, the points of a playground run;
            see `examples_for`).
          what: how messages name the input.
        """
        if isinstance(inputs, (str, os.PathLike)):
            path = pathlib.Path(inputs)
            if path.suffix.lower() == ".npz":
                table = tables.read_npz_table(path, labels_required=False, what=what)
                return self._array_inputs(table.values["x"], source=str(path)), self._labels(table)
            if self.columns is None or self.source != "csv":
                other = "a dict of columns" if self.columns and not self._takes_rows else "an .npz"
                raise DataError(f"{path}: this run was not trained on a CSV; give {other} ({what})")
            table = tables.read_csv_table(
                path, label=self.label, columns=self.columns, label_required=False, what=what
            )
            from kerasmlp.tabular import raw_inputs

            return _tensors(raw_inputs(table)), self._labels(table)
        if isinstance(inputs, Mapping):
            return self._dict_inputs(inputs), None
        return self._array_inputs(inputs, source="the array"), None

    def read_test_split(self) -> tuple[Any, np.ndarray]:
        """The run's own test split (its rows read again as the config says), and its labels.

        Raises:
          DataError: the file the test rows come from has changed since the run read it
            (`status.json`'s `data_sha256`): split again, it would give other rows,
            training rows among them.
        """
        from kerasmlp.data import load_config_datasets

        self._check_test_file_unchanged()
        data = load_config_datasets(self.config)
        if data.tabular is not None:
            from kerasmlp.tabular import raw_inputs

            test = data.tabular.test
            return _tensors(raw_inputs(test)), data.tabular.labels.encode(test, what="data.path")
        features, labels = zip(*((x.numpy(), y.numpy()) for x, y in data.test), strict=True)
        return tf.constant(np.concatenate(features)), np.concatenate(labels)

    def _labels(self, table: tables.Table) -> np.ndarray | None:
        if table.labels is None:
            return None
        raw = np.asarray(table.labels)
        tfds_run = self.source not in ("csv", "npz")  # None: no table
        if tfds_run and self.task == "classification" and raw.dtype.kind in "iu":
            # A playground or TFDS run (a TFDS table's too): y holds class ids, as TFDS gives them.
            bad = np.flatnonzero((raw < 0) | (raw >= len(self.class_names)))
            if bad.size:
                raise DataError(
                    f"{table.source}: y[{bad[0]}]={raw[bad[0]]} is no class id of this run "
                    f"(0 to {len(self.class_names) - 1})"
                )
            return raw.astype(np.int32)
        labels = tables.Labels(self.task, self.class_names, why="")
        return labels.encode(table, what="INPUT")

    def _check_test_file_unchanged(self) -> None:
        # Runs of earlier versions, and runs not on your own data, recorded none.
        recorded = (read_status(self.run_dir) or {}).get("data_sha256") or {}
        data = self.config.data
        key = "data.test_path" if self.source == "csv" and data.test_path else "data.path"
        path = data.test_path if key == "data.test_path" else data.path
        if key in recorded and os.path.isfile(path) and tables.file_sha256(path) != recorded[key]:
            raise DataError(
                f"{path} has changed since the run took its test split from it (its sha256 "
                "differs): read again, the split would hold other rows. Restore the file, or "
                "give the rows to predict as INPUT"
            )

    @property
    def _takes_rows(self) -> bool:
        """Whether the run's table is one vector of numbers per example, taken as an array of
        rows: an .npz's x, or a TFDS table's feature vector (iris's 4 measurements)."""
        if self.columns is None or self.source == "csv" or len(self.columns) != 1:
            return False
        (column,) = self.columns
        return self.source == "npz" or (
            column.kind == NUMERIC and tuple(self.model.input[column.name].shape[1:]) != (1,)
        )

    def _array_inputs(self, x: Any, *, source: str):
        if self.columns is not None and not self._takes_rows:
            raise DataError(
                f"{source}: this run was trained on named columns ({self.source}); give a "
                "dict {column: values} or a CSV file, not an array of rows"
            )
        x = _number_array(x, source=source)
        if x.ndim == 0 or len(x) == 0:
            raise DataError(f"{source}: holds no examples (an array of shape {x.shape})")
        beyond = tables.first_beyond_float32(x)
        if beyond is not None:  # the model would answer NaN probabilities, read as class 0
            missing = ", NaN for a missing one" if self.columns is not None else ""
            raise DataError(
                f"{source}: example {beyond[0]} (from 0) holds {beyond[1]}; give finite "
                f"numbers within float32's +-3.4e38{missing}"
            )
        if self.columns is None:  # playground / TFDS run: points, or raw images
            return tf.constant(examples_for(self.model, x, source=source))
        x = x.astype(np.float32)
        name = self.columns[0].name  # 'x', or the TFDS table's feature key
        expected = tuple(self.model.input[name].shape[1:])
        if tuple(x.shape[1:]) != expected:
            raise DataError(
                f"{source}: examples have shape {x.shape[1:]}; the model takes {expected}"
            )
        return {name: tf.constant(x)}

    def _dict_inputs(self, inputs: Mapping) -> dict:
        if self.columns is None or self._takes_rows:
            rows = "; this run takes an array of rows" if self.columns else ""
            raise DataError(f"a dict of columns fits runs on a table with named columns only{rows}")
        names = [c.name for c in self.columns]
        missing = [name for name in names if name not in inputs]
        if missing:
            others = [str(key) for key in inputs if key not in names]
            close = difflib.get_close_matches(missing[0], others, n=1)
            hint = f" (is {close[0]!r} it?)" if close else ""
            raise DataError(
                f"the inputs lack column(s) {', '.join(missing)}{hint}. Received: "
                f"{', '.join(map(str, inputs)) or 'no column'}; the run's columns: "
                f"{', '.join(names)}"
            )
        columns = {c.name: _column_values(inputs[c.name], c.name) for c in self.columns}
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{name} {length}" for name, length in lengths.items())
            raise DataError(
                f"the columns have different lengths ({shown}); give each one value per row"
            )
        if not next(iter(lengths.values())):
            raise DataError("the columns are empty; give each one value per row, at least one row")
        out = {}
        for column in self.columns:
            values = columns[column.name]
            if column.kind == STRING:  # stripped as a CSV's fields are
                out[column.name] = strip_strings(tf.constant(_column_strings(values)))
                continue
            numbers = _column_numbers(values, column.name)
            beyond = tables.first_beyond_float32(numbers)
            if beyond is not None:  # NaN is the missing value; inf would give NaN outputs
                raise DataError(
                    f"column {column.name!r}: row {beyond[0]} (from 0) is {beyond[1]}; "
                    "give finite numbers within float32's +-3.4e38, NaN for a missing one"
                )
            if column.kind == INTEGER:  # a category: 2.5 would be read as 2
                filled = numbers[~np.isnan(numbers)]
                # Beyond 2^24, float32 rounds codes together (16777217 is 16777216), as a
                # CSV's reader refuses them (`tables.MAX_INTEGER_CATEGORY`).
                wrong = (filled != np.round(filled)) | (
                    np.abs(filled) > tables.MAX_INTEGER_CATEGORY
                )
                if wrong.any():
                    bad = float(filled[wrong][0])
                    whole = bad == round(bad)
                    raise DataError(
                        f"column {column.name!r}: {int(bad) if whole else bad!r} is not "
                        f"{'within +-2^24' if whole else 'a whole number'} "
                        "(the run took its values as categories, data.categorical)"
                    )
            out[column.name] = tf.constant(numbers.astype(np.float32))
        return out

    # --- predictions -------------------------------------------------------

    def logits(self, inputs: Any, *, batch_size: int | None = None) -> np.ndarray:
        """The model's raw outputs, shape (n, units); `batch_size` as in `outputs`."""
        model_inputs, _ = self.read(inputs)
        return self.outputs(model_inputs, batch_size)

    def outputs(self, model_inputs, batch_size: int | None = None) -> np.ndarray:
        """The model on inputs as `read` returns them: logits (n, units).

        Args:
          batch_size: rows a call of the model; default: those whose widest layer
            (the input or a hidden layer) fills `CHUNK_BYTES` in float32, at least 4096.
        """
        if batch_size is None:
            widest = max(self.input_dim, *self.config.model.hidden_units, self.head.units)
            batch_size = max(MIN_CHUNK_ROWS, CHUNK_BYTES // (4 * widest))
        # Slices of the tensors: `tf.data`'s from_tensor_slices + batch took the rows one by
        # one, 7 s for 300,000 rows of 20 columns where the model itself took 1.5 s.
        rows = int(tf.nest.flatten(model_inputs)[0].shape[0])
        chunks = [
            np.asarray(self.model(_rows(model_inputs, start, batch_size), training=False))
            for start in range(0, rows, batch_size)
        ]
        return np.concatenate(chunks).astype(np.float32)

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Class probabilities (n, num_classes) from logits; a sigmoid head gives [1 - p, p]."""
        if self.head.kind == "linear":
            raise ValueError("a regression run has no class probabilities; use predict")
        return self.head.probabilities(outputs)

    def probability_model(self) -> keras.Model:
        """The saved model with the head's activation: class probabilities (n, num_classes).

        softmax for one logit per class; for a sigmoid head [1 - p, p]; the value
        itself for regression. What `kerasmlp-export` serves.
        """
        outputs = self.model.output
        if self.head.kind != "linear":
            # One nested model, named with the prefix no input name has (see
            # `tabular.LAYER_PREFIX`): its layers' names cannot meet a column's.
            logits = keras.Input(shape=outputs.shape[1:], name="logits")
            if self.head.kind == "softmax":
                p = keras.layers.Activation("softmax", name="softmax")(logits)
            else:
                p = keras.layers.Activation("sigmoid", name="sigmoid")(logits)
                p = keras.layers.Concatenate(name="probabilities")([1.0 - p, p])
            outputs = keras.Model(logits, p, name="kerasmlp_probabilities")(outputs)
        return _functional(self.model.input, outputs, f"{self.model.name}_probabilities")

    def predict_proba(self, inputs: Any) -> np.ndarray:
        """Class probabilities on raw inputs (see `read`), shape (n, num_classes)."""
        return self.probabilities(self.logits(inputs))

    def predict(self, inputs: Any) -> np.ndarray:
        """Class names (classification, object array) or values (regression), shape (n,)."""
        return self.decide(self.logits(inputs))

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return outputs[:, 0]
        return np.array(self.class_names, dtype=object)[self.head.classes(outputs)]

    def evaluate(self, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """The run's metrics (`config.metrics`) of `outputs` against `labels`.

        Args:
          outputs: the model's outputs, `logits(inputs)`, shape (n, units); not the
            inputs themselves (as Keras's `model.evaluate(x, y)` takes them).
          labels: n class ids (0 to num_classes - 1) or, for regression, n values.

        Raises:
          DataError: outputs of another shape, labels of another length, a label
            that is no class id of the run, or a target that is not finite or beyond
            `tables.MAX_TARGET`. Unchecked, images read as outputs gave an
            accuracy near 0 without a word.
        """
        from kerasmlp.components import make_metrics

        outputs, labels = np.asarray(outputs), np.asarray(labels)
        units = self.head.units
        if outputs.ndim != 2 or outputs.shape[1] != units or outputs.dtype.kind != "f":
            raise DataError(
                f"evaluate takes the model's outputs, run.logits(inputs): floats of shape "
                f"(n, {units}). Received: an array of {outputs.dtype.name} of shape "
                f"{outputs.shape}"
            )
        if labels.shape not in ((len(outputs),), (len(outputs), 1)):  # (n, 1): as Keras takes them
            raise DataError(
                f"evaluate takes one label per output row: shape ({len(outputs)},). "
                f"Received: labels of shape {labels.shape}"
            )
        labels = labels.reshape(-1)
        if self.task == "classification":
            classes = len(self.class_names)
            ids = labels.dtype.kind in "iuf"  # class names, say, are none
            bad = np.flatnonzero(~np.isin(labels, np.arange(classes))) if ids else [0]
            if len(bad):
                raise DataError(
                    f"labels[{bad[0]}]={labels[bad[0]].item()!r} is no class id of this run: "
                    f"allowed 0 to {classes - 1} (class names in id order: run.class_names)"
                )
        elif labels.dtype.kind in "iuf":
            # NaN gave NaN metrics; a file's missing label is refused too.
            missing = np.flatnonzero(~np.isfinite(labels.astype(np.float64)))
            if missing.size:
                raise DataError(
                    f"labels[{missing[0]}]={labels[missing[0]].item()!r} is not a finite "
                    "number; a regression's labels are the targets, none missing"
                )
            # Squared in float32, as a file's are (tables.MAX_TARGET).
            beyond = np.flatnonzero(np.abs(labels.astype(np.float64)) > tables.MAX_TARGET)
            if beyond.size:
                raise DataError(
                    f"labels[{beyond[0]}]={labels[beyond[0]].item()!r} is beyond "
                    f"+-{tables.MAX_TARGET:.4g}, whose square is beyond float32's 3.4e38, in "
                    "which the metrics are computed: give the targets in larger units"
                )
        metrics = make_metrics(self.config.metrics, self.head)
        metrics.update_state(tf.constant(labels), tf.constant(outputs))
        return metrics.results()


def examples_for(model: keras.Model, x: np.ndarray, *, source: str) -> np.ndarray:
    """`x` as `model`'s single input takes it: reshaped to its example shape, in its dtype.

    Any array whose examples hold as many values as the model's input does is
    reshaped, so MNIST images come as (n, 28, 28), (n, 28, 28, 1) or (n, 784).
    An integer input (a TFDS image run's uint8) takes the raw pixel values,
    which must be whole numbers in the dtype's range: images scaled to [0, 1]
    are refused, since the model scales them itself, and so are values of another
    dtype all within [0, 1] (scaled, then binarized, or a bool mask).

    Raises:
      DataError: examples of another size, or values an integer input cannot hold.
    """
    shape = tuple(int(d) for d in model.input.shape[1:])
    dtype = np.dtype(model.input.dtype)
    x = np.asarray(x)
    size, got = math.prod(shape), math.prod(x.shape[1:]) if x.ndim else 0
    if x.ndim < 1 or got != size:
        what = f" (shape {shape})" if len(shape) > 1 else ""
        raise DataError(f"{source}: examples have {got} values; the model takes {size}{what}")
    if np.issubdtype(dtype, np.integer) and x.dtype != dtype:
        limits = np.iinfo(dtype)
        values = x.astype(np.float64)
        bad = ~(np.isfinite(values) & (values == np.round(values)))
        bad |= (values < limits.min) | (values > limits.max)
        if bad.any():
            first = float(values.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
            raise DataError(
                f"{source}: this run's model takes raw images, whole numbers from {limits.min} "
                f"to {limits.max} ({dtype.name}), and scales them itself; received {first!r}. "
                "Give the pixels as stored, not scaled to [0, 1]"
            )
        if values.size and 0 < values.max() <= 1:
            # Scaled to [0, 1] and then binarized (x > 0.5), or a bool mask: whole numbers,
            # but read as pixels they are all black. Given in the model's own dtype (the
            # stored pixels), any values are taken as they are.
            raise DataError(
                f"{source}: this run's model takes raw images, whole numbers from {limits.min} "
                f"to {limits.max} ({dtype.name}), and scales them itself; received "
                f"{x.dtype.name} values all within [0, 1] (at most {float(values.max())!r}): "
                "images scaled to [0, 1] or binarized. Give the pixels as stored"
            )
    return x.reshape(-1, *shape).astype(dtype)


def _number_array(x: Any, *, source: str) -> np.ndarray:
    """`x` as a numeric numpy array (numbers written as text included).

    Raises:
      DataError: rows of different lengths, or a value that is no number.
    """
    try:
        x = np.asarray(x)
        return x if x.dtype.kind in "biuf" else x.astype(np.float64)
    except (ValueError, TypeError) as e:
        cause = " ".join(str(e).split())[:120]
        raise DataError(f"{source}: not an array of numbers with equal rows ({cause})") from None


def _column_values(values: Any, name: str) -> np.ndarray:
    """One column of a dict input as an array of shape (n, 1).

    Raises:
      DataError: nested lists of different lengths, or more than one value per row.
    """
    try:
        array = np.asarray(values)
    except ValueError:
        raise DataError(
            f"column {name!r}: rows of different lengths; give one value per row"
        ) from None
    array = array.reshape(-1, 1) if array.ndim <= 1 else array
    if array.shape[1:] != (1,):
        raise DataError(
            f"column {name!r}: values of shape {array.shape}; give one value per row, "
            "shape (n,) or (n, 1)"
        )
    return array


def _column_strings(values: np.ndarray) -> np.ndarray:
    """A string column's values as str: bytes (text as `tfds.as_numpy` gives it) decoded as
    UTF-8, as a TFDS table's are read. numpy's `astype(str)` decodes them as ASCII: 'é'
    ended in a UnicodeDecodeError traceback.
    """
    if values.dtype.kind == "U":
        return values

    def text(value) -> str:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    return np.vectorize(text, otypes=[str])(values)


def _column_numbers(values: np.ndarray, name: str) -> np.ndarray:
    """A numeric column's values as float64 (1e39 as given, not yet inf), NaN (or None)
    for a missing one.

    Raises:
      DataError: a value that is not a number (text such as 'heavy', or ''), named
        with its row.
    """
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    flat = values.reshape(-1)
    numbers = np.empty(flat.shape, np.float64)
    for i, value in enumerate(flat):
        value = value.item() if isinstance(value, np.generic) else value  # np.str_('') -> ''
        try:
            numbers[i] = np.nan if value is None else float(value)
        except (ValueError, TypeError):
            raise DataError(
                f"column {name!r}: row {i} (from 0) is {value!r}, not a number; the column "
                "takes numbers, float('nan') for a missing one"
            ) from None
    return numbers.reshape(values.shape)


def _rows(model_inputs, start: int, count: int):
    """Rows `start` to `start + count` of each tensor of `model_inputs` (a dict or one tensor)."""
    return tf.nest.map_structure(lambda t: t[start : start + count], model_inputs)


def _tensors(inputs: Mapping[str, np.ndarray]) -> dict:
    return {k: tf.constant(v.astype(str) if v.dtype == object else v) for k, v in inputs.items()}


def load_run(run_dir: str | os.PathLike) -> LoadedRun:
    """Loads a completed run for prediction: `load_run("logs/<run>").predict("new.csv")`.

    Raises:
      DataError: the folder lacks model.keras, data.json or config.yaml, or one
        of them is damaged, edited or from another version (data.json not fitting
        the model).
    """
    return LoadedRun(run_dir)
