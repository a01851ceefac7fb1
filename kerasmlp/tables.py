"""Tables from your own files: a CSV or an .npz read into typed columns, checked row by row.

Without TensorFlow: this module reads and checks (numpy, and Python's `csv`
module for the parsing), `kerasmlp.tabular` turns the result into Keras
preprocessing and `tf.data` pipelines. Every refusal is a one-line `DataError`
naming the file, and the row and column where there is one.

A CSV's first row names its columns. A field that is empty or one of
`MISSING_TOKENS` is missing (in a numeric column, in any case). A column is
numeric when its filled values are all numbers; a column where almost all are
numbers (`NUMERIC_SHARE`) holds a typo, refused with its row; any other column
is a string (categorical) column. A numeric column listed in `data.categorical` is
an integer (categorical) column: its filled values must be whole numbers.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import difflib
import hashlib
import math
import os
import pathlib
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

from kerasmlp.errors import DataError

TASKS = ("auto", "classification", "regression")
# Read as "missing" besides the empty field, spelled as pandas's `read_csv` reads them.
# A numeric column reads them in any case ('na', 'NONE': no number is spelled so); a
# string column and the label only as written here, so that a category 'Na' (sodium)
# or 'none' stays a value rather than merging with the unseen ones.
MISSING_TOKENS = frozenset({"NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "?"})
_MISSING_ANY_CASE = frozenset(token.lower() for token in MISSING_TOKENS)
# A field is missing in a numeric column when, stripped and lower-cased, it is one of these.
_MISSING_OR_EMPTY = _MISSING_ANY_CASE | {""}
# `data.task: auto` calls integer or string labels with at most this many distinct
# values classes; integer labels with more are a regression target.
AUTO_MAX_CLASSES = 20
# A training column is numeric with a typo (refused) rather than a string column
# when at least this share of its filled values are numbers.
NUMERIC_SHARE = 0.9
NUMERIC, STRING = "numeric", "string"
# Separators a CSV written with other settings uses instead of the comma: a header
# read as a single column holding one of them is refused with it named.
OTHER_SEPARATORS = (";", "\t", "|")
# An integer column listed in `data.categorical`: its values are categories, not amounts.
INTEGER = "integer"
# The saved model takes numbers as float32, which holds every whole number up to 2^24
# exactly; an integer category beyond it would merge with its neighbours.
MAX_INTEGER_CATEGORY = 2**24
# The loss and the metrics square a regression target's errors in float32: a target
# beyond sqrt(float32's max), 1.8446743e19, squares to inf (its variance may too, which
# the model's head is scaled back with), and the run ended "diverged ... try a lower
# learning rate", or in a traceback.
MAX_TARGET = float(np.sqrt(np.finfo(np.float32).max))


@dataclasses.dataclass(frozen=True)
class Column:
    """One input column: its name as in the header, and 'numeric', 'string' or 'integer'."""

    name: str
    kind: str


@dataclasses.dataclass(frozen=True)
class Table:
    """Raw input columns and labels, read from one file.

    Attributes:
      source: the file, for messages.
      columns: the input columns (the label excluded), in file order.
      values: column name -> array of shape (n,): float64 with NaN for missing
        numbers (integer columns too), or str (object) with '' for missing
        strings. An .npz gives one entry, 'x', of shape (n, ...).
      labels: the label texts or numbers, shape (n,); None when the file has no label.
      rows: the file's row number (1 = header) of each example, for messages.
    """

    source: str
    columns: tuple[Column, ...]
    values: Mapping[str, np.ndarray]
    labels: np.ndarray | None
    rows: np.ndarray

    @property
    def num_rows(self) -> int:
        return int(self.rows.shape[0])

    def take(self, index: np.ndarray) -> Table:
        """The rows at `index` (an integer array)."""
        return dataclasses.replace(
            self,
            values={k: v[index] for k, v in self.values.items()},
            labels=None if self.labels is None else self.labels[index],
            rows=self.rows[index],
        )


@dataclasses.dataclass(frozen=True)
class Labels:
    """The labels as the model learns them.

    Attributes:
      task: 'classification' or 'regression'.
      class_names: class names in id order (classification), else None.
      why: how the task was chosen, for the console.
    """

    task: str
    class_names: tuple[str, ...] | None
    why: str

    def encode(self, table: Table, *, what: str) -> np.ndarray:
        """Class ids (int32) or targets (float32) of `table`'s labels; refuses unknown classes."""
        if self.task == "regression":
            return _label_numbers(table, what=what).astype(np.float32)
        index = {name: i for i, name in enumerate(self.class_names)}
        texts = _label_texts(table)
        ids = np.empty(len(texts), np.int32)
        for i, text in enumerate(texts):
            if text not in index:
                raise DataError(
                    f"{table.source} row {table.rows[i]}: label {text!r} is not a class of the "
                    f"training data ({_list(self.class_names)}) ({what})"
                )
            ids[i] = index[text]
        return ids


def is_missing(text: str, *, any_case: bool = False) -> bool:
    """Whether a field is missing: empty, or one of `MISSING_TOKENS` (`any_case`: in any case)."""
    text = text.strip()
    if any_case:
        return not text or text.lower() in _MISSING_ANY_CASE
    return not text or text in MISSING_TOKENS


def _missing_any_case(texts: Sequence[str]) -> list[bool]:
    """`is_missing(t, any_case=True)` of each field, without a call a field."""
    return [t.strip().lower() in _MISSING_OR_EMPTY for t in texts]


def read_csv(path: str | os.PathLike, *, what: str = "data.path") -> tuple[list[str], list]:
    """The header and the rows of a CSV file, each row as long as the header.

    Raises:
      DataError: a missing or unreadable file, an empty file, a header with an
        empty or repeated name, or a row with more or fewer fields than the header.
    """
    path = pathlib.Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty: a CSV needs a header row ({what})")
            header = [name.strip() for name in header]
            _check_separator(header, path, what)
            for i, name in enumerate(header):
                if not name:
                    raise DataError(f"{path} row 1: column {i + 1} has no name ({what})")
                if name in header[:i]:
                    raise DataError(f"{path} row 1: column {name!r} appears twice ({what})")
            rows, numbers = [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise DataError(
                        f"{path} row {reader.line_num}: {len(row)} fields, the header has "
                        f"{len(header)} ({what})"
                    )
                rows.append(row)
                numbers.append(reader.line_num)
    except FileNotFoundError:
        raise DataError(f"File not found: {path} ({what})") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a CSV file ({what})") from None
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 text: byte 0x{e.object[e.start]:02x} ({what})"
        ) from None
    except csv.Error as e:
        raise DataError(f"{path}: not valid CSV: {e} ({what})") from None
    except OSError as e:
        raise DataError(f"Cannot read {path}: {e.strerror} ({what})") from None
    if not rows:
        raise DataError(f"{path} has a header but no rows ({what})")
    return header, (rows, numbers)


def _check_separator(header: list[str], path: pathlib.Path, what: str) -> None:
    """Refuses a header read as one column holding another separator (';' from a
    spreadsheet set to a decimal comma, a tab): otherwise the label is not found among
    'weight;color;fruit', or a row's decimal comma counts as a second field."""
    if len(header) != 1:
        return
    counts = {sep: header[0].count(sep) for sep in OTHER_SEPARATORS}
    sep = max(counts, key=counts.get)
    if counts[sep]:
        raise DataError(
            f"{path} row 1: the header is one column, {header[0]!r}: the file looks "
            f"separated by {sep!r}; kerasmlp reads comma-separated files, save it with commas "
            f"({what})"
        )


def read_csv_table(
    path: str | os.PathLike,
    *,
    label: str | None,
    columns: Sequence[Column] | None = None,
    categorical: Sequence[str] = (),
    label_required: bool = True,
    what: str = "data.path",
) -> Table:
    """Reads a CSV into a `Table`.

    Args:
      path: the file.
      label: the label column's name (`data.label`).
      columns: the training data's input columns; given for a test or prediction
        file, which must have the same (in any order) and whose values must fit
        their kinds. None: the kinds are inferred from this file.
      categorical: `data.categorical`, for a training file: columns whose whole
        numbers are categories ('integer' columns); a listed string column is
        categorical already.
      label_required: a training or test file must hold the label in every row; a
        file to predict may leave the column out, or empty in every row (no labels).
      what: the config key or option naming the file, for messages.
    """
    header, (rows, numbers) = read_csv(path, what=what)
    source = str(path)
    if label is not None and label not in header and (label_required or columns is None):
        raise DataError(
            f"{source} has no label column {label!r} (data.label).{_did_you_mean(label, header)} "
            f"Columns: {_list(header)}"
        )
    names = [name for name in header if name != label]
    if not names:
        raise DataError(f"{source} has no input column besides the label {label!r} ({what})")
    if columns is not None:
        expected = [c.name for c in columns]
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"lacks {_list(missing)}")
            if extra:
                parts.append(f"has {_list(extra)} besides")
            raise DataError(
                f"{source} columns differ from the training data's: it {' and '.join(parts)} "
                f"({what})"
            )
    position = {name: i for i, name in enumerate(header)}
    kinds = {c.name: c.kind for c in columns} if columns is not None else {}
    categorical = _check_categorical(categorical, names, label, source)
    values, result_columns = {}, []
    for name in columns_order(names, columns):
        texts = [row[position[name]] for row in rows]
        plain = None if kinds.get(name) == STRING else _plain_numbers(texts)
        kind = kinds.get(name) or (NUMERIC if plain is not None else _infer_kind(texts))
        if name in categorical and kind == NUMERIC:
            kind = INTEGER
        values[name] = _convert(texts, kind, name, source, numbers, plain=plain)
        result_columns.append(Column(name, kind))
    labels = None
    if label is not None and label in position:
        labels = np.array([row[position[label]].strip() for row in rows], dtype=object)
        empty = [i for i, text in enumerate(labels) if is_missing(text)]
        if empty and not label_required and len(empty) == len(labels):
            labels = None  # rows to predict, their label column left blank: no metrics
        elif empty:
            advice = (
                "" if label_required else "; leave it empty in every row to predict without metrics"
            )
            text = labels[empty[0]]
            held = f"holds {text!r}, a missing value" if text else "is empty"
            raise DataError(
                f"{source} row {numbers[empty[0]]}: the label column {label!r} {held}{advice} "
                f"({what})"
            )
    return Table(source, tuple(result_columns), values, labels, np.array(numbers, np.int64))


def _check_categorical(categorical, names, label, source) -> frozenset[str]:
    """`data.categorical` as a set, each name an input column of the file."""
    for name in categorical:
        if name == label:
            raise DataError(
                f"data.categorical lists the label column {name!r}; list input columns only "
                "(the label's classes come from data.task)"
            )
        if name not in names:
            raise DataError(
                f"{source} has no column {name!r} (data.categorical)."
                f"{_did_you_mean(name, names)} Columns: {_list(names)}"
            )
    if len(set(categorical)) != len(categorical):
        raise DataError(f"data.categorical lists a column twice: {_list(categorical)}")
    return frozenset(categorical)


def columns_order(names: Sequence[str], columns: Sequence[Column] | None) -> list[str]:
    """The training order of the columns when known (a test file may order them otherwise)."""
    return [c.name for c in columns] if columns is not None else list(names)


def read_npz_table(
    path: str | os.PathLike, *, split: str = "train", labels_required: bool = True, what: str
) -> Table:
    """Reads arrays `x` and `y` (split 'train') or `x_test` and `y_test` (split 'test') of an .npz.

    Raises:
      DataError: a missing file or array, a .npy file (a single array), arrays of
        different lengths, a non-numeric `x` or one of zero features per example,
        an infinity in `x` (NaN is a missing value) or a `y` that is not finite.
    """
    x_key, y_key = ("x", "y") if split == "train" else ("x_test", "y_test")
    source = str(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if isinstance(archive, np.ndarray):  # np.load reads a .npy too, whatever its name
            raise DataError(
                f"{source} holds a single array (shape {archive.shape}), not an .npz archive "
                f"with arrays {x_key!r} and {y_key!r}; make one with "
                f"np.savez(path, {x_key}=..., {y_key}=...) ({what})"
            )
        with archive:
            keys = list(archive.keys())
            if x_key not in keys:
                raise DataError(f"{source} has no array {x_key!r} (it has: {_list(keys)}) ({what})")
            x = archive[x_key]
            y = archive[y_key] if y_key in keys else None
    except FileNotFoundError:
        raise DataError(f"File not found: {source} ({what})") from None
    except (ValueError, OSError) as e:  # not a zip, or pickled object arrays
        if isinstance(e, DataError):
            raise
        raise DataError(f"{source} is not a readable .npz of arrays: {e} ({what})") from None
    if y is None and labels_required:
        raise DataError(f"{source} has no array {y_key!r} (it has: {_list(keys)}) ({what})")
    if x.ndim < 1 or x.shape[0] == 0:
        raise DataError(f"{source}: {x_key!r} holds no examples ({what})")
    if math.prod(x.shape[1:]) == 0:
        raise DataError(
            f"{source}: {x_key!r} has shape {x.shape}: its examples hold no features; "
            f"each needs at least one number ({what})"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"{source}: {x_key!r} must be numeric; it is {x.dtype} ({what})")
    if y is not None and (y.ndim != 1 or y.shape[0] != x.shape[0]):
        raise DataError(
            f"{source}: {y_key!r} must have shape ({x.shape[0]},) to match {x_key!r}; "
            f"it has {y.shape} ({what})"
        )
    x = x.reshape(x.shape[0], -1) if x.ndim == 1 else x
    beyond = first_beyond_float32(x)
    if beyond is not None:  # NaN is a missing value, filled in by the model; inf is no number
        raise DataError(
            f"{source}: {x_key!r} example {beyond[0]} (from 0) holds {beyond[1]}; values "
            f"must be finite numbers within float32's +-3.4e38, NaN for a missing one ({what})"
        )
    if y is not None and y.dtype.kind == "f" and not np.isfinite(y).all():
        row = int(np.flatnonzero(~np.isfinite(y))[0])
        raise DataError(
            f"{source}: {y_key!r} example {row} (from 0) is {float(y[row])}; labels must be "
            f"finite numbers (a missing label is refused) ({what})"
        )
    rows = np.arange(x.shape[0], dtype=np.int64)
    return Table(source, (Column("x", NUMERIC),), {"x": x.astype(np.float64)}, y, rows)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, in hex: what a run records of its data (`data_sha256`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def first_beyond_float32(values: np.ndarray) -> tuple[int, float] | None:
    """The first row (index on axis 0) of `values` holding a number the model's float32
    cannot (+-inf, or one that is inf as float32, as 1e39 is), and that value.

    NaN passes: it marks a missing number, which the model fills in. None when
    every value fits.
    """
    values = np.asarray(values)
    if values.dtype.kind not in "fc" or values.ndim == 0:
        return None  # integers, booleans and strings: within range (2^64 < 3.4e38)
    flat = values.reshape(values.shape[0], -1)
    beyond = beyond_float32(flat)
    rows = np.flatnonzero(beyond.any(axis=1))
    if not rows.size:
        return None
    return int(rows[0]), float(flat[rows[0]][beyond[rows[0]]][0])


def beyond_float32(values) -> np.ndarray:
    """Whether each number is +-inf as the model's float32 takes it (NaN is not).

    1e39 is finite in float64 but inf in float32: as the model's input it gives NaN
    outputs, and in a training column an inf variance, which zeroes the whole column.
    """
    with np.errstate(over="ignore"):  # the overflow is what is asked about
        return np.isinf(np.asarray(values, np.float64).astype(np.float32))


def choose_labels(table: Table, task: str, *, label: str) -> Labels:
    """Decides the task (for `data.task: auto`) and the classes from the training labels.

    auto: string labels, and integer labels with at most AUTO_MAX_CLASSES distinct
    values, are classes; numbers with a fraction, integers with more distinct
    values, whole numbers not written as integers ('1.0' in a CSV) and an .npz's
    floating-point `y` (whole numbers included) are a regression target.

    Raises:
      DataError: regression on labels that are not numbers, or a single class.
    """
    texts = _label_texts(table)
    distinct = set(texts)  # a few classes, or the targets: each text's test once
    numbers = _try_numbers(list(distinct))
    integers = numbers is not None and all(_is_integer_text(t) for t in distinct)
    floats = table.labels is not None and np.asarray(table.labels).dtype.kind == "f"
    if floats:
        integers = False  # an .npz's float y is a target, whatever its values
    distinct = sorted(distinct)
    if task == "auto":
        if numbers is None:
            task, why = "classification", f"{len(distinct)} distinct string labels"
        elif integers and len(distinct) <= AUTO_MAX_CLASSES:
            task, why = "classification", f"{len(distinct)} distinct integer labels"
        elif integers:
            task = "regression"
            why = f"{len(distinct)} distinct integer labels, more than {AUTO_MAX_CLASSES}"
        elif floats:  # 1.0, 2.0, ... included: the dtype says so, not the values
            task, why = "regression", "labels are floating-point numbers"
        elif all(n.is_integer() for n in numbers):  # '1.0' in a CSV: written as a float
            written = next(t for t in texts if not _is_integer_text(t))
            task, why = "regression", f"labels are numbers not written as integers ({written!r})"
        else:
            task, why = "regression", "labels are numbers with fractions"
    else:
        why = "data.task"
    if task == "regression":
        _label_numbers(table, what="data.label")  # refuses a non-number with its row
        return Labels("regression", None, why)
    if numbers is not None:  # order classes 2 < 10, not "10" < "2"
        distinct = sorted(distinct, key=lambda t: float(t))
    if len(distinct) < 2:
        raise DataError(
            f"{table.source}: the label column {label!r} has one class ({distinct[0]!r}); "
            "classification needs at least 2"
        )
    return Labels("classification", tuple(distinct), why)


def _label_texts(table: Table) -> list[str]:
    labels = table.labels
    if labels is None:
        raise DataError(f"{table.source} has no labels")
    if isinstance(labels, np.ndarray) and labels.dtype != object:
        if np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool:
            return [str(int(v)) for v in labels]
        if np.issubdtype(labels.dtype, np.floating):
            return [_number_text(float(v)) for v in labels]
        if labels.dtype.kind == "S":  # an .npz's byte strings (as tfds.as_numpy gives text)
            # str() would name the class "b'cat'"; decoded as TFDS tables' strings are.
            return [v.decode("utf-8", "replace").strip() for v in labels]
    return [str(v).strip() for v in labels]


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _label_numbers(table: Table, *, what: str) -> np.ndarray:
    texts = _label_texts(table)
    out = _float_texts(texts)  # all at once where every label is a plain number
    if out is None or not np.isfinite(out).all() or beyond_float32(out).any():
        out = _each_label_number(texts, table, what)  # names the first one refused
    largest = int(np.argmax(np.abs(out))) if out.size else 0
    if out.size and abs(out[largest]) > MAX_TARGET:
        raise DataError(
            f"{table.source} row {table.rows[largest]}: label {texts[largest]!r}, the largest "
            f"target, is beyond +-{MAX_TARGET:.4g}, whose square (the squared error) is "
            "beyond float32's 3.4e38, in which the model computes its loss: give the target "
            f"in larger units (divided by 1e6, say) ({what})"
        )
    _check_held_in_float32(out, table.source, what)
    return out


def _each_label_number(texts: Sequence[str], table: Table, what: str) -> np.ndarray:
    """The labels as numbers, read one by one: refuses the first that is no finite number
    within float32's range, with its row."""
    out = np.empty(len(texts), np.float64)
    for i, text in enumerate(texts):
        number = _to_number(text)
        if number is None or not math.isfinite(number):
            raise DataError(
                f"{table.source} row {table.rows[i]}: label {text!r} is not a number; "
                f"regression needs numeric labels ({what})"
            )
        if beyond_float32(number):
            raise DataError(
                f"{table.source} row {table.rows[i]}: label {text!r} is beyond float32's "
                f"+-3.4e38, in which the model computes ({what})"
            )
        out[i] = number
    return out


def _check_held_in_float32(targets: np.ndarray, source: str, what: str) -> None:
    """Refuses regression targets that float32 rounds by a tenth of their spread or more.

    Targets of 1e12 + (a few units) are all 1e12 in float32, which steps by 65536
    there: the run trained to a loss of 0 on a constant and learned nothing, without
    a word. Rounding by a tenth of the standard deviation takes 1% of the variance.
    """
    if targets.size < 2:  # a file of one row or none (no labels to predict on)
        return
    spread = float(np.std(targets))
    if spread == 0.0:
        return
    rounding = float(np.sqrt(np.mean(np.square(targets.astype(np.float32) - targets))))
    if rounding < spread / 10:
        return
    # Their median to the spread's last digit: what is left of a target is then of the
    # spread's size, which float32 holds.
    unit = 10.0 ** math.floor(math.log10(spread))
    offset = round(float(np.median(targets)) / unit) * unit
    step = float(np.spacing(np.float32(np.max(np.abs(targets)))))
    raise DataError(
        f"{source}: the targets, around {offset:.6g}, spread by {spread:.3g} (standard "
        f"deviation); float32, in which the model computes, steps by {step:.3g} at that "
        f"size and rounds that spread away: subtract an offset in the file, such as "
        f"{offset:.15g} ({what})"
    )


def _to_number(text: str) -> float | None:
    if not _number_like(text):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _number_like(text: str) -> bool:
    """Whether `text` is written as a CSV writes numbers: Python's `float` and `int` also read
    `2021_05` as 202105 (its digit separator) and other scripts' digits (`١٢` as 12), where
    a spreadsheet or pandas sees text: a code such as `2021_05` stays a category."""
    return text.isascii() and "_" not in text


def _float_texts(texts: Sequence[str]) -> np.ndarray | None:
    """`_to_number` of every text at once, float64; None when any is None (no number).

    numpy's string-to-float of a `str` is Python's `float()`, which stops at the first
    text that is no number (a text column's first field). `_number_like` is checked
    after, on the number texts joined (ASCII and no '_' in each, as in all): a few
    bytes a text, where a free-text column joined would double its memory.
    """
    try:
        numbers = np.array(texts, np.float64)
    except ValueError:
        return None
    joined = "".join(texts)
    if not joined.isascii() or "_" in joined:
        return None
    return numbers


def _try_numbers(texts: Sequence[str]) -> list[float] | None:
    numbers = _float_texts(texts)
    return None if numbers is None else numbers.tolist()


def _is_integer_text(text: str) -> bool:
    if not _number_like(text):
        return False
    try:
        int(text)
        return True
    except ValueError:
        return False


def _infer_kind(texts: Sequence[str]) -> str:
    filled = [t for t, m in zip(texts, _missing_any_case(texts), strict=True) if not m]
    if not filled:
        return NUMERIC  # all missing: a column of NaN, filled in by the model
    # Each distinct text once: a string column holds a few categories many times over.
    counts = collections.Counter(filled)
    numbers = sum(n for t, n in counts.items() if _to_number(t) is not None)
    return NUMERIC if numbers >= NUMERIC_SHARE * len(filled) else STRING


def _plain_numbers(texts: Sequence[str]) -> np.ndarray | None:
    """A numeric column as `_convert` reads it, read whole: float64, NaN for missing fields.

    None unless every field is a plain number (see `_float_texts`; finite, within
    float32) or missing: then the column is read field by field, which infers its
    kind and names the field it refuses.
    """
    out = _float_texts(texts)
    if out is None:  # a missing word or an empty field (or a typo): read the others
        missing = np.array(_missing_any_case(texts), dtype=bool)
        filled = _float_texts([t for t, m in zip(texts, missing, strict=True) if not m])
        if filled is None:
            return None
        out = np.full(len(texts), np.nan)
        out[~missing] = filled
    # NaN from 'nan' in any case is a missing field; from '+nan' or '-nan', a refusal.
    if not all(is_missing(texts[i], any_case=True) for i in np.flatnonzero(np.isnan(out))):
        return None
    if beyond_float32(out).any():  # inf, or beyond float32
        return None
    return out


def _whole_categories(values: np.ndarray) -> bool:
    """Whether every number of an integer column is whole and within +-2^24 (NaN: missing)."""
    present = values[~np.isnan(values)]
    return bool(
        np.all(present == np.trunc(present)) and np.all(np.abs(present) <= MAX_INTEGER_CATEGORY)
    )


def _convert(texts, kind, name, source, numbers, *, plain=None) -> np.ndarray:
    """A column's values (see `Table.values`), refusing a field that does not fit `kind`.

    `plain`: the column read whole by `_plain_numbers`, when it could be; its fields are
    then numbers or missing, which leaves only an integer column's checks.
    """
    if kind == STRING:
        # is_missing(t): stripped, '' or one of MISSING_TOKENS as written.
        stripped = map(str.strip, texts)
        return np.array(["" if s in MISSING_TOKENS else s for s in stripped], dtype=object)
    if plain is not None and (kind != INTEGER or _whole_categories(plain)):
        return plain
    out = np.empty(len(texts), np.float64)
    for i, text in enumerate(texts):
        if is_missing(text, any_case=True):
            out[i] = np.nan
            continue
        number = _to_number(text)
        if number is None or not math.isfinite(number):
            raise DataError(
                f"{source} row {numbers[i]}, column {name!r}: {text.strip()!r} is not a number "
                "(the column is numeric)"
            )
        if beyond_float32(number):
            raise DataError(
                f"{source} row {numbers[i]}, column {name!r}: {text.strip()!r} is beyond "
                "float32's +-3.4e38, in which the model takes numbers"
            )
        if kind == INTEGER and (not number.is_integer() or abs(number) > MAX_INTEGER_CATEGORY):
            why = "a whole number" if not number.is_integer() else "within +-2^24"
            raise DataError(
                f"{source} row {numbers[i]}, column {name!r}: {text.strip()!r} is not {why} "
                "(data.categorical makes the column's whole numbers categories)"
            )
        out[i] = number
    return out


def numbers_as_text(table: Table) -> tuple[str, ...]:
    """A console line for each string column whose values are numbers written for people.

    A price written `$3.20`, `1,200` or `3,5` (a decimal comma) is no number to the
    reader, so the column is one-hot as categories, as the rule says; this names it.
    It is a string column of which at least `NUMERIC_SHARE` of the filled values read
    as numbers once currency signs, ',', "'", '%' and spaces are taken out.
    """
    lines = []
    for column in table.columns:
        if column.kind != STRING:
            continue
        filled = [t for t in table.values[column.name] if t]
        counts = collections.Counter(filled)  # each distinct value tested once
        numbers = {t for t in counts if _to_number(_without_number_marks(t)) is not None}
        marked = {t for t in numbers if _to_number(t) is None}
        if not marked or sum(counts[t] for t in numbers) < NUMERIC_SHARE * len(filled):
            continue
        first = next(t for t in filled if t in marked)  # in file order
        lines.append(
            f"data       | column {column.name!r} is read as categories ({len(counts)} "
            f"distinct values), yet its values are numbers in other writing ({first!r}): "
            "if it is an amount, write plain numbers in the file (a decimal point; no currency "
            "sign, no thousands separator)"
        )
    return tuple(lines)


def _without_number_marks(text: str) -> str:
    """`text` without currency signs (Unicode's Sc: $ EUR GBP ...), ',', "'", '%' and spaces."""
    return "".join(
        c for c in text if not (c.isspace() or c in ",'%" or unicodedata.category(c) == "Sc")
    )


def _did_you_mean(value: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _list(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(str(n) for n in list(names)[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
