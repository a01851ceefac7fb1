"""Your own table (`data.name: csv` or `npz`) as the loop's `Datasets`, preprocessed by Keras.

The rows are split with the seed (test: `data.test_path`, or `data.test_fraction`
of the rows; then validation: `train.validation_fraction` of the rest). A
preprocessing model is built from Keras's own layers and fitted on the
training split only:

- a numeric column: `keras.layers.Normalization` with the training split's mean
  and variance (missing values left out of both; variance 1 for a column constant
  in training, which is only centred), then `kerasmlp.layers.FillMissing`
  (a missing value becomes 0, the mean; a column with missing training values
  gets a 0/1 "was missing" column too);
- a string column: `keras.layers.StringLookup` with the training split's
  vocabulary (its `MAX_CATEGORIES` - 1 most frequent values), one-hot, with one
  slot for the other values: never seen in training, rarer, or missing;
- an integer column listed in `data.categorical`: `keras.layers.IntegerLookup`,
  one-hot in the same way (a missing value goes to the other values' slot);
- an .npz's `x`: flattened, normalized per feature, NaN filled with 0.

A regression target is standardized for the head alone: the training split's
mean and variance go to `DatasetInfo.target_mean` / `target_variance`, and the
model scales its head's output back with them (see `kerasmlp.model.build_model`),
so predictions, the loss and the metrics are in the target's own units.

The loop trains the MLP on the preprocessed rows (they are computed once and
held in memory); the saved `model.keras` is preprocessing + MLP, so it takes the
raw columns (see `kerasmlp.inference`).
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasmlp import tables
from kerasmlp.errors import DataError
from kerasmlp.layers import FillMissing
from kerasmlp.sources.common import MAX_CACHE_BYTES, DatasetInfo, Datasets
from kerasmlp.tables import INTEGER, NUMERIC, STRING, Column, Labels, Table

SOURCES = ("csv", "npz")
# Slots of a string column's one-hot: its MAX_CATEGORIES - 1 most frequent training
# values and one for the rest (unseen, missing); free text such as names would
# otherwise widen the input by one per row.
MAX_CATEGORIES = 1000
# The layers kerasmlp adds beside the inputs are named with this prefix
# (`kerasmlp_features`, `kerasmlp_normalize_<input>`, ...), which `input_name` never gives
# a column, so a column named `features` or `lookup_color` cannot take a layer's name.
# (A leading '_' would do as well, but TensorFlow refuses it as a root name scope when
# the model is traced for a SavedModel.)
LAYER_PREFIX = "kerasmlp_"
# The saved model holds one more layer beside them, the MLP, which
# `kerasmlp.model.build_model` names mlp_<head>: a column of that name gets another input
# name, as a repeated one does.
MLP_NAMES = frozenset({"mlp_softmax", "mlp_sigmoid", "mlp_linear"})
# `preprocess` calls the preprocessing model eagerly, which costs ~40 ms of Keras's
# per-layer work a call on 20 columns whatever the rows: chunks of a fixed 8192 rows
# took 1.3 s for 240,000 rows, one chunk 0.3 s. A chunk is as many rows as make this
# much float32 output (a one-hot column widens it), and never fewer than 8192.
PREPROCESS_CHUNK_BYTES = 32 * 2**20
MIN_PREPROCESS_ROWS = 8192


@dataclasses.dataclass(frozen=True)
class TabularData:
    """What a run on a table keeps beyond the pipelines.

    Attributes:
      source: 'csv' or 'npz'.
      label: the label column (`data.label`); None for an .npz.
      columns: the input columns, in the order the model takes them.
      labels: the task and the class names.
      preprocessor: raw columns (a dict name -> (batch, 1) or (batch, ...)) to
        (batch, input_dim) float32.
      test: the raw test rows, for `kerasmlp-predict --split test`.
      notes: console lines about the data, printed after `describe` (a column of
        numbers written with a currency sign, read as categories).
    """

    source: str
    label: str | None
    columns: tuple[Column, ...]
    labels: Labels
    preprocessor: keras.Model
    test: Table
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One console line: the task and why."""
        what = (
            f"{len(self.labels.class_names)} classes" if self.labels.class_names else "regression"
        )
        return (
            f"data       | {self.source} | label {self.label or 'y'!s} | {self.labels.task} "
            f"({self.labels.why}) | {what} | {len(self.columns)} input column(s)"
        )

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "label": self.label,
            "columns": [dataclasses.asdict(c) for c in self.columns],
        }


def load_tabular(
    name: str,
    *,
    path: str | None,
    test_path: str | None = None,
    label: str | None = None,
    task: str = "auto",
    test_fraction: float = 0.2,
    categorical: tuple[str, ...] = (),
    batch_size: int,
    validation_fraction: float = 0.1,
    seed: int = 0,
    cache: bool = True,
    shuffle_buffer: int = 10_000,
) -> Datasets:
    """Reads, splits and preprocesses a table; see the module docstring.

    `categorical` (csv only) names the integer columns whose values are
    categories, one-hot through `keras.layers.IntegerLookup`.

    Returns:
      `Datasets` whose pipelines yield (x float32 (batch, input_dim), y int32
      or float32 (batch,)), with `tabular` set to a `TabularData`.

    Raises:
      DataError: one line naming the file, row and column (see `kerasmlp.tables`).
    """
    if name not in SOURCES:
        raise DataError(f"Unknown table source {name!r} (data.name). Allowed: {', '.join(SOURCES)}")
    if not path:
        raise DataError(f"data.name {name} needs data.path, the training file")
    if name == "csv":
        if not label:
            raise DataError("data.name csv needs data.label, the label column's name")
        pool = tables.read_csv_table(path, label=label, categorical=categorical, what="data.path")
        read_test = lambda: tables.read_csv_table(  # noqa: E731
            test_path, label=label, columns=pool.columns, what="data.test_path"
        )
    else:
        pool = tables.read_npz_table(path, what="data.path")
        read_test = None
    labels = tables.choose_labels(pool, task, label=label or "y")
    notes = tables.numbers_as_text(pool)

    rng = np.random.default_rng(seed)
    pool = pool.take(rng.permutation(pool.num_rows))
    test = None
    if name == "csv" and test_path:
        test = read_test()
    elif name == "npz" and _npz_has_test(path):
        test = tables.read_npz_table(path, split="test", what="data.path")
        if test.values["x"].shape[1:] != pool.values["x"].shape[1:]:
            raise DataError(
                f"{path}: 'x_test' examples have shape {test.values['x'].shape[1:]}, 'x' "
                f"examples {pool.values['x'].shape[1:]} (data.path)"
            )
    return datasets_from_tables(
        name,
        pool,
        test,
        labels,
        label=label if name == "csv" else None,
        indicators=name == "csv",
        test_what="data.test_path" if test_path else "data.path",
        test_fraction=test_fraction,
        batch_size=batch_size,
        validation_fraction=validation_fraction,
        seed=seed,
        cache=cache,
        shuffle_buffer=shuffle_buffer,
        notes=notes,
    )


def datasets_from_tables(
    name: str,
    pool: Table,
    test: Table | None,
    labels: Labels,
    *,
    label: str | None,
    indicators: bool,
    test_what: str,
    test_fraction: float,
    batch_size: int,
    validation_fraction: float,
    seed: int,
    cache: bool,
    shuffle_buffer: int,
    notes: tuple[str, ...] = (),
) -> Datasets:
    """Splits (`pool` is shuffled already), fits the preprocessing on the training rows, batches.

    Args:
      name: `data.name`, for `DatasetInfo` and messages.
      pool: the training rows, shuffled with the seed.
      test: the test rows, or None to hold out `test_fraction` of `pool`.
      labels: the task and classes.
      label: the label column's name (kept for predictions), if any.
      indicators: give numeric columns with missing values a "was missing" input.
      test_what: the config key naming where the test rows come from.
      notes: console lines about the data (`TabularData.notes`).
    """
    if test is None:
        num_test = int(round(pool.num_rows * test_fraction))
        if num_test < 1 or num_test >= pool.num_rows:
            raise DataError(
                f"data.test_fraction={test_fraction} leaves an empty "
                f"{'test' if num_test < 1 else 'training'} split: {pool.source} has "
                f"{pool.num_rows} rows. Use a {'larger' if num_test < 1 else 'smaller'} "
                "fraction or give data.test_path"
            )
        test, pool = pool.take(np.arange(num_test)), pool.take(np.arange(num_test, pool.num_rows))
    num_validation = int(round(pool.num_rows * validation_fraction))
    if pool.num_rows - num_validation < 1 or (validation_fraction > 0 and num_validation == 0):
        advice = (
            "a smaller fraction"
            if num_validation
            else "0 to disable validation, or a larger fraction"
        )
        raise DataError(
            f"train.validation_fraction={validation_fraction!r} leaves an empty "
            f"{'training' if num_validation else 'validation'} split: {pool.num_rows} rows "
            f"remain after the test split. Use {advice}"
        )
    validation = pool.take(np.arange(num_validation))
    train = pool.take(np.arange(num_validation, pool.num_rows))

    preprocessor = build_preprocessor(train, indicators=indicators)
    y_train = labels.encode(train, what="data.path")
    y_validation = labels.encode(validation, what="data.path")
    y_test = labels.encode(test, what=test_what)
    x_train = preprocess(preprocessor, train)
    x_validation = preprocess(preprocessor, validation)
    x_test = preprocess(preprocessor, test)
    input_dim = int(x_train.shape[1])

    def batched(x, y):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(2)

    train_examples = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    train_ds = train_examples.shuffle(
        min(shuffle_buffer, train.num_rows), seed=seed, reshuffle_each_iteration=True
    )
    train_ds = train_ds.batch(batch_size).prefetch(2)
    class_names = labels.class_names
    target_mean = target_variance = None
    if labels.task == "regression":  # the model's output is scaled back with these
        target_mean = float(np.mean(y_train, dtype=np.float64))
        target_variance = float(np.var(y_train, dtype=np.float64))
    info = DatasetInfo(
        name=name,
        task=labels.task,
        num_classes=len(class_names) if class_names else None,
        class_names=class_names,
        input_shape=(input_dim,),
        input_dim=input_dim,
        num_train=train.num_rows,
        num_validation=num_validation,
        num_test=test.num_rows,
        target_mean=target_mean,
        target_variance=target_variance,
    )
    return Datasets(
        train=train_ds,
        validation=batched(x_validation, y_validation) if num_validation else None,
        test=batched(x_test, y_test),
        info=info,
        train_examples=train_examples,
        train_fits_in_memory=cache and x_train.nbytes <= MAX_CACHE_BYTES,
        tabular=TabularData(
            source=name,
            label=label,
            columns=train.columns,
            labels=labels,
            preprocessor=preprocessor,
            test=test,
            notes=notes,
        ),
    )


def is_tfds_table(info) -> bool:
    """Whether a TFDS dataset is a table kerasmlp reads: supervised (features, ClassLabel)
    pairs whose features are a 1-D numeric tensor (iris) or a dict of scalars, each a
    number, a string or a ClassLabel (titanic)."""
    keys = info.supervised_keys
    if not (isinstance(keys, tuple) and len(keys) == 2 and isinstance(keys[1], str)):
        return False
    features = info.features
    if not isinstance(features[keys[1]], tfds.features.ClassLabel):
        return False
    x_key = keys[0]
    if isinstance(x_key, str):
        x = features[x_key]
        return (
            type(x) is tfds.features.Tensor
            and len(x.shape) == 1
            and None not in x.shape
            and np.issubdtype(np.dtype(x.np_dtype), np.number)
        )
    if isinstance(x_key, dict):
        return all(_scalar_kind(features[k]) is not None for k in x_key.values())
    return False


def _scalar_kind(feature) -> str | None:
    if isinstance(feature, (tfds.features.ClassLabel, tfds.features.Text)):
        return STRING
    if isinstance(feature, tfds.features.Tensor) and tuple(feature.shape) == ():
        dtype = np.dtype(feature.np_dtype)
        if dtype.kind in "biuf":
            return NUMERIC
        if dtype.kind in "SUO":
            return STRING
    return None


def read_tfds_table(builder, split: str, name: str) -> tuple[Table, Labels, str]:
    """All examples of a TFDS table's split as a `Table`, its labels by class name.

    Returns:
      (table, labels, label key). ClassLabel inputs become string columns of
      their class names, so they are one-hot encoded like any category.
    """
    info = builder.info
    x_key, y_key = info.supervised_keys
    features = info.features
    label_feature = features[y_key]
    names = tuple(label_feature.names)
    dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    xs, ys = [], []
    for x, y in tfds.as_numpy(dataset):
        xs.append(x)
        ys.append(int(y))
    if not xs:
        raise DataError(f"TFDS dataset {name!r} (data.name) split {split!r} holds no examples")
    labels = np.array([names[y] for y in ys], dtype=object)
    rows = np.arange(len(xs), dtype=np.int64)
    source = f"TFDS {name}[{split}]"
    if isinstance(x_key, str):  # one numeric vector per example
        values = {x_key: np.stack(xs).astype(np.float64)}
        table = Table(source, (Column(x_key, NUMERIC),), values, labels, rows)
    else:
        columns, values = [], {}
        for column, key in x_key.items():
            feature = features[key]
            kind = _scalar_kind(feature)
            raw = [x[column] for x in xs]
            # Strings stripped of surrounding spaces, as a CSV's are and as the saved model's
            # callers' are (`inference.strip_strings`): else " male" trains its own category.
            if isinstance(feature, tfds.features.ClassLabel):
                data = np.array([feature.names[int(v)].strip() for v in raw], dtype=object)
            elif kind == STRING:
                data = np.array(
                    [
                        (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).strip()
                        for v in raw
                    ],
                    dtype=object,
                )
            else:
                data = np.array(raw, dtype=np.float64)
            columns.append(Column(column, kind))
            values[column] = data
        table = Table(source, tuple(columns), values, labels, rows)
    return table, Labels("classification", names, why=f"TFDS ClassLabel {y_key!r}"), y_key


def load_tfds_table(
    builder,
    name: str,
    *,
    test_fraction: float = 0.2,
    batch_size: int,
    validation_fraction: float = 0.1,
    seed: int = 0,
    cache: bool = True,
    shuffle_buffer: int = 10_000,
) -> Datasets:
    """A TFDS table (see `is_tfds_table`) through the same splits and preprocessing as a CSV.

    The test split is TFDS's 'test' split when it has one, else `data.test_fraction`
    of 'train', drawn with the seed.
    """
    pool, labels, label_key = read_tfds_table(builder, "train", name)
    pool = pool.take(np.random.default_rng(seed).permutation(pool.num_rows))
    test = None
    if "test" in builder.info.splits:
        test, _, _ = read_tfds_table(builder, "test", name)
    return datasets_from_tables(
        name,
        pool,
        test,
        labels,
        label=label_key,
        indicators=isinstance(builder.info.supervised_keys[0], dict),
        test_what="data.name",
        test_fraction=test_fraction,
        batch_size=batch_size,
        validation_fraction=validation_fraction,
        seed=seed,
        cache=cache,
        shuffle_buffer=shuffle_buffer,
    )


def _npz_has_test(path) -> bool:
    with np.load(path, allow_pickle=False) as archive:
        return "x_test" in archive.keys()


def input_name(column: str) -> str:
    """The Keras input name of a column: the header's name when a SavedModel signature can
    carry it, else one with letters, digits and '_' only (the input dict keeps the header's).

    It never starts with `LAYER_PREFIX`, kept for the preprocessing layers' names.
    """
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.\-]*", column) and not column.startswith(LAYER_PREFIX):
        return column
    name = re.sub(r"[^A-Za-z0-9_]", "_", column)
    return name if name[:1].isalpha() and not name.startswith(LAYER_PREFIX) else f"c_{name}"


def _own(name: str) -> str:
    """The name of a layer kerasmlp adds: `LAYER_PREFIX` + `name`, never an input's."""
    return LAYER_PREFIX + name


def build_preprocessor(train: Table, *, indicators: bool = True) -> keras.Model:
    """The preprocessing model, its statistics and vocabularies taken from `train` only.

    Args:
      train: the training split.
      indicators: give a numeric column with missing training values a
        "was missing" column (CSV columns; not an .npz's features).

    Returns:
      A `keras.Model` from a dict {column: raw values} (numbers (batch, 1)
      float32, strings (batch, 1) string, an .npz's x (batch, ...)) to
      (batch, input_dim) float32.
    """
    inputs, parts, used = {}, [], set(MLP_NAMES)
    for column in train.columns:
        name = input_name(column.name)
        while name in used:
            name += "_"
        used.add(name)
        values = train.values[column.name]
        if column.kind == INTEGER:
            raw = keras.Input(shape=(1,), dtype="float32", name=name)
            parts.append(_integer_one_hot(raw, values, name))
        elif column.kind == STRING:
            raw = keras.Input(shape=(1,), dtype="string", name=name)
            # '' (missing) is kept out of the vocabulary: it goes to the out-of-vocabulary
            # slot, as an unseen value does (a saved vocabulary cannot hold '' either).
            present = values.astype(str)[values.astype(str) != ""]
            lookup = keras.layers.StringLookup(
                output_mode="one_hot",
                max_tokens=MAX_CATEGORIES,
                oov_token=_unused_token(present),
                name=_own(f"lookup_{name}"),
            )
            lookup.adapt(tf.constant(present if present.size else np.array(["[none]"])))
            parts.append(lookup(raw))
        else:
            shape = values.shape[1:] or (1,)
            raw = keras.Input(shape=shape, dtype="float32", name=name)
            x = raw if len(shape) == 1 else keras.layers.Flatten(name=_own(f"flatten_{name}"))(raw)
            flat = values.reshape(values.shape[0], -1)
            missing = np.isnan(flat)
            with warnings.catch_warnings():  # all-NaN columns warn; handled just below
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(flat, axis=0)
                variance = np.nanvar(flat, axis=0)
            # A column missing in every training row: nothing to learn from but the indicator.
            mean, variance = np.nan_to_num(mean, nan=0.0), np.nan_to_num(variance, nan=1.0)
            _check_spread(variance, flat, column.name, train.source)
            # A column constant in training (an always-0 border pixel) is centred only:
            # Normalization divides by max(std, 1e-7), which would make any other value
            # at prediction time ~1e7 and saturate the output.
            variance = np.where(variance > 0, variance, 1.0)
            x = keras.layers.Normalization(
                mean=mean.astype("float32"),
                variance=variance.astype("float32"),
                name=_own(f"normalize_{name}"),
            )(x)
            x = FillMissing(
                indicator=indicators and bool(missing.any()), name=_own(f"fill_{name}")
            )(x)
            parts.append(x)
        inputs[column.name] = raw
    outputs = (
        parts[0] if len(parts) == 1 else keras.layers.Concatenate(name=_own("features"))(parts)
    )
    if outputs.dtype != "float32":
        outputs = keras.layers.Activation("linear", dtype="float32", name=_own("as_float32"))(
            outputs
        )
    with warnings.catch_warnings():
        # Keras asks for dict keys equal to input names; a header such as "width (cm)"
        # cannot be one, and the dict maps by key all the same.
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
        return keras.Model(inputs, outputs, name="preprocessing")


def _unused_token(values: np.ndarray) -> str:
    """StringLookup's out-of-vocabulary token, `[UNK]` unless the column holds that value:
    then Keras merged the category `[UNK]` into the unseen values' slot."""
    token, taken = "[UNK]", set(values.tolist())
    while token in taken:
        token = f"[{token}]"
    return token


def _check_spread(variance: np.ndarray, flat: np.ndarray, name: str, source: str) -> None:
    """Refuses a feature whose variance float32 cannot hold (values beyond ~1.8e19).

    Normalization keeps its variance as float32: an inf one divides every value to 0,
    so the column would reach the MLP as zeros, silently (Keras's own `adapt` does
    the same).
    """
    beyond = np.flatnonzero(tables.beyond_float32(variance))
    if not beyond.size:
        return
    feature = f" feature {beyond[0]} (from 0)" if flat.shape[1] > 1 else ""
    largest = float(np.nanmax(np.abs(flat[:, beyond[0]])))
    raise DataError(
        f"{source}: column {name!r}{feature} spreads too wide for the model's float32: its "
        f"variance {float(variance[beyond[0]]):.3g} is beyond 3.4e38 (values up to "
        f"{largest:.3g}); give it in larger units, or leave it out of the file if it is an "
        "identifier"
    )


def _integer_one_hot(raw, values: np.ndarray, name: str):
    """`raw` through FillMissing and `keras.layers.IntegerLookup` (one-hot), fitted on `values`.

    The vocabulary is the training split's `MAX_CATEGORIES` - 1 most frequent
    values; every other value (unseen, rarer, or missing) goes to the one
    out-of-vocabulary slot. A missing value (NaN) becomes `oov`, one below the
    smallest training value, which no vocabulary holds; it is IntegerLookup's
    `oov_token` too, so no training value is taken for it (the default, -1,
    would merge a real category -1 with the unseen ones).
    """
    present = values[~np.isnan(values)].astype(np.int64)
    oov = int(present.min()) - 1 if present.size else -1
    lookup = keras.layers.IntegerLookup(
        output_mode="one_hot", max_tokens=MAX_CATEGORIES, oov_token=oov, name=_own(f"lookup_{name}")
    )
    lookup.adapt(present if present.size else np.array([0], np.int64))
    return lookup(FillMissing(value=float(oov), name=_own(f"fill_{name}"))(raw))


def raw_inputs(table: Table) -> dict[str, np.ndarray]:
    """The model's raw input dict for a table: strings and numbers as (n, 1), an .npz's x as is."""
    out = {}
    for column in table.columns:
        values = table.values[column.name]
        if column.kind == STRING:
            out[column.name] = values.astype(str).reshape(-1, 1).astype(object)
        elif values.ndim == 1:
            out[column.name] = values.astype(np.float32).reshape(-1, 1)
        else:
            out[column.name] = values.astype(np.float32)
    return out


def preprocess(
    preprocessor: keras.Model, table: Table, batch_size: int | None = None
) -> np.ndarray:
    """`preprocessor` on all rows of `table`, in chunks: (n, input_dim) float32.

    Args:
      batch_size: rows a call; default: those whose output fills `PREPROCESS_CHUNK_BYTES`,
        and at least `MIN_PREPROCESS_ROWS`.
    """
    if batch_size is None:
        width = int(preprocessor.output.shape[-1])
        batch_size = max(MIN_PREPROCESS_ROWS, PREPROCESS_CHUNK_BYTES // (4 * width))
    inputs = raw_inputs(table)
    chunks = []
    for start in range(0, table.num_rows, batch_size):
        chunk = {k: _tensor(v[start : start + batch_size]) for k, v in inputs.items()}
        chunks.append(np.asarray(preprocessor(chunk, training=False)))
    if not chunks:
        return np.zeros((0, preprocessor.output.shape[-1]), np.float32)
    return np.concatenate(chunks).astype(np.float32)


def _tensor(values: np.ndarray) -> tf.Tensor:
    if values.dtype == object:
        return tf.constant(values.astype(str))
    return tf.constant(values)


__all__ = [
    "NUMERIC",
    "SOURCES",
    "STRING",
    "TabularData",
    "build_preprocessor",
    "load_tabular",
    "preprocess",
    "raw_inputs",
]
