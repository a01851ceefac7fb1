"""The data sources, one record per kind: the one home of their names and keys.

A `SourceRecord` says which `data.name` values choose a source, which of your
own data's `data.*` keys it takes, and where its class lives. The class path is
resolved only when a dataset is loaded (`source_class`), so `kerasmlp.config`
reads the names and keys here without importing TensorFlow, and
`kerasmlp.data.load_datasets` reads the same records to choose the source.

Kinds, in the order `load_datasets` tries them:

- `csv`, `npz`: your own file (`kerasmlp.sources.tables`);
- `generated`: the 2-D sets `kerasmlp.playground` writes (`kerasmlp.sources.tfds_examples`);
- `tfds_table`: a TFDS dataset whose examples are a numeric vector or a dict
  of scalars, such as iris or titanic (`kerasmlp.sources.tables`);
- `tfds_image`: a TFDS image-classification dataset (`kerasmlp.sources.tfds_examples`).

The two TFDS kinds take any other name: which one serves it is decided from the
dataset's features once TFDS has its info (`BUILDER_KINDS`). A new source is one class and one
record here.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping

# Your own data's keys, each with what it is (for "data.name csv needs data.label, ...").
OWN_DATA_KEYS = {
    "path": "the training file",
    "test_path": "a test file with the same columns",
    "label": "the name of the label column",
    "task": "the task",
    "categorical": "the integer columns whose values are categories",
}
# The TFDS builder of the generated sets (`kerasmlp.playground.KerasmlpPlayground.name`).
GENERATED_BUILDER = "kerasmlp_playground"


@dataclasses.dataclass(frozen=True)
class SourceRecord:
    """One kind of data source.

    Attributes:
      kind: the source's name ('csv', 'generated', 'tfds_image', ...).
      class_path: 'module:Class' of its `kerasmlp.sources.common.DataSource`.
      names: the `data.name` values that choose it; empty for the TFDS kinds,
        which take any other TFDS dataset name.
      keys: the keys of `OWN_DATA_KEYS` it takes; the others are refused.
      required: those of `keys` a config must set.
      tasks: name -> 'classification' or 'regression', where the name fixes the task.
      shapes: name -> (input length, classes), where known without TensorFlow.
      note: said when a key it does not take is set (after "data.label applies to csv; ").
    """

    kind: str
    class_path: str
    names: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    tasks: Mapping[str, str] = dataclasses.field(default_factory=dict)
    shapes: Mapping[str, tuple[int, int | None]] = dataclasses.field(default_factory=dict)
    note: str = ""


GENERATED_TASKS = {
    "spirals": "classification",
    "circles": "classification",
    "xor": "classification",
    "gaussians": "classification",
    "sine": "regression",
}

RECORDS = (
    SourceRecord(
        "csv",
        "kerasmlp.sources.tables:CsvSource",
        names=("csv",),
        keys=("path", "test_path", "label", "task", "categorical"),
        required=("path", "label"),
    ),
    SourceRecord(
        "npz",
        "kerasmlp.sources.tables:NpzSource",
        names=("npz",),
        keys=("path", "task"),
        required=("path",),
        note="an .npz holds arrays x, y (and x_test, y_test)",
    ),
    SourceRecord(
        "generated",
        "kerasmlp.sources.tfds_examples:GeneratedSource",
        names=tuple(GENERATED_TASKS),
        tasks=GENERATED_TASKS,
        # 2-D points; 2 classes, or one regression output.
        shapes={n: (2, 2 if t == "classification" else None) for n, t in GENERATED_TASKS.items()},
    ),
    SourceRecord("tfds_table", "kerasmlp.sources.tables:TfdsTableSource"),
    SourceRecord(
        "tfds_image",
        "kerasmlp.sources.tfds_examples:TfdsImageSource",
        # (input length, classes) of common image sets, so that a config is checked
        # against them before TensorFlow loads (the source reads the real values from TFDS).
        shapes={
            "mnist": (784, 10),
            "fashion_mnist": (784, 10),
            "kmnist": (784, 10),
            "cifar10": (3072, 10),
            "cifar100": (3072, 100),
            "svhn_cropped": (3072, 10),
        },
    ),
)
BY_KIND = {record.kind: record for record in RECORDS}
# The sources that read your own file (data.name csv, npz): chosen by name alone.
FILE_NAMES = tuple(n for r in RECORDS if r.keys for n in r.names)
# The sources that read a TFDS builder, in the order they are asked whether they serve
# it (`DataSource.accepts`): the generated sets' builder first, then tables, then images.
BUILDER_KINDS = tuple(record.kind for record in RECORDS if not record.keys)


def record_for(name: str) -> SourceRecord | None:
    """The record whose `names` hold `name` (a version or config after ':' or '/' ignored).

    None for any other name: a TFDS dataset, served by one of `BUILDER_KINDS`.
    """
    base = name.split(":")[0].split("/")[0] if isinstance(name, str) else name
    for record in RECORDS:
        if base in record.names:
            return record
    return None


def taking(key: str) -> tuple[str, ...]:
    """The `data.name` values whose source takes the own-data key `key`."""
    return tuple(n for r in RECORDS if key in r.keys for n in r.names)


def source_class(kind: str) -> type:
    """The `DataSource` class of a kind, imported now (it imports TensorFlow)."""
    module, _, name = BY_KIND[kind].class_path.partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "BUILDER_KINDS",
    "BY_KIND",
    "FILE_NAMES",
    "GENERATED_BUILDER",
    "GENERATED_TASKS",
    "OWN_DATA_KEYS",
    "RECORDS",
    "SourceRecord",
    "record_for",
    "source_class",
    "taking",
]
