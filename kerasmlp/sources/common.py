"""What every data source shares: the request, the product (`Datasets`, `DatasetInfo`), the errors.

Below the sources and above nothing of theirs: a source imports this module,
never another source nor `kerasmlp.data`, and `kerasmlp.data.load_datasets`
(the top) chooses the source. Importing it does not import TensorFlow.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from kerasmlp.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

# A split is cached in memory when its decoded tensors fit in this much: all of
# MNIST (70k x 784 bytes of uint8 = 55 MB) does; larger datasets are re-read from
# the TFDS files every epoch instead.
MAX_CACHE_BYTES = 1 << 30


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the model builder and the loop need to know about a dataset.

    Attributes:
        name: the dataset name as configured (`data.name`).
        task: "classification" or "regression".
        num_classes: number of classes; None for regression.
        class_names: class names in label order; None for regression.
        input_shape: shape of one example x as the pipelines give it, e.g.
            (28, 28, 1) for an image, (input_dim,) for flat features.
        input_dim: length of x flattened (the first Dense layer's input).
        num_train: examples in the training split after the validation hold-out.
        num_validation: examples held out for validation (0 when disabled).
        num_test: examples in the test split.
        input_dtype: dtype of x: 'float32', or the images' own integer dtype
            ('uint8'), which the model scales by `input_scale`.
        input_scale: what the model multiplies x by first (1/255 for uint8
            images); None for no scaling.
        target_mean, target_variance: statistics of the training split's
            regression targets, which the model's output is scaled back with
            (see `kerasmlp.model.build_model`); None where targets are used as they are.
    """

    name: str
    task: str
    num_classes: int | None
    class_names: tuple[str, ...] | None
    input_shape: tuple[int, ...]
    input_dim: int
    num_train: int
    num_validation: int
    num_test: int
    input_dtype: str = "float32"
    input_scale: float | None = None
    target_mean: float | None = None
    target_variance: float | None = None


@dataclasses.dataclass(frozen=True)
class Datasets:
    """The three batched pipelines and their description.

    Attributes:
        train: shuffled anew each epoch (with the seed), batched, prefetched;
            one pass is one epoch (not repeated).
        validation: batched, in a fixed order; None when validation is disabled.
        test: batched, in a fixed order.
        info: a `DatasetInfo`.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset
    info: DatasetInfo
    # The training split decoded but neither cached, shuffled nor batched, and
    # whether it fits in memory (`cache` on and under MAX_CACHE_BYTES): then the
    # loop holds it as tensors (`kerasmlp.batches.InMemoryBatches`) instead.
    train_examples: tf.data.Dataset | None = None
    train_fits_in_memory: bool = False
    # A table (csv, npz, a TFDS table): a `kerasmlp.tabular.TabularData`, with the
    # preprocessing model that the saved model puts in front of the MLP.
    tabular: Any = None


@dataclasses.dataclass(frozen=True)
class DataRequest:
    """What `kerasmlp.data.load_datasets` was asked for (see its arguments).

    `batch_size` and `validation_fraction` are checked already; the own-data keys
    (`path` to `categorical`) are None or defaults for the sources that do not take them.
    """

    name: str
    batch_size: int
    validation_fraction: float = 0.1
    seed: int = 0
    cache: bool = True
    shuffle_buffer: int = 10_000
    path: Any = None
    test_path: Any = None
    label: str | None = None
    task: str = "auto"
    test_fraction: float = 0.2
    categorical: tuple[str, ...] = ()


class DataSource(abc.ABC):
    """One kind of data turned into `Datasets`; its record is in `kerasmlp.sources`."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def load(self, request: DataRequest) -> Datasets:
        """Reads, splits and batches the data `request` names.

        Raises:
          DataError: one line naming the config key (and the file, row and column).
        """


class TfdsSource(DataSource):
    """A source that reads a TFDS builder, prepared by the caller's `prepare`.

    Args:
      name: `data.name` as configured (``"mnist:3.*.*"``), for messages.
      builder: the dataset's `tfds.core.DatasetBuilder`, not necessarily prepared.
      prepare: downloads and prepares a builder, returning a prepared one
        (`kerasmlp.data.prepare_dataset` with the run's `data.manual_dir`).
        The constructor checks the dataset first, so an unsupported one is
        refused before anything is downloaded.
    """

    def __init__(self, name: str, builder, prepare: Callable[[Any], Any] = lambda b: b):
        self.name = name
        self.builder = builder
        self.prepare = prepare

    @classmethod
    @abc.abstractmethod
    def accepts(cls, builder) -> bool:
        """Whether this source serves the builder's dataset (from its info only)."""


__all__ = [
    "MAX_CACHE_BYTES",
    "DataError",
    "DataRequest",
    "DataSource",
    "DatasetInfo",
    "Datasets",
    "TfdsSource",
]
