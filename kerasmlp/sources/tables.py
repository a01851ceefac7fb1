"""Sources of tables: your own CSV or .npz file, and TFDS tables (iris, titanic).

Thin: `kerasmlp.tabular` reads, splits and preprocesses; these classes are the
seam `kerasmlp.data.load_datasets` chooses among (see `kerasmlp.sources`).
"""

from __future__ import annotations

from kerasmlp import tabular
from kerasmlp.sources.common import DataRequest, Datasets, DataSource, TfdsSource


class _FileSource(DataSource):
    def load(self, request: DataRequest) -> Datasets:
        return tabular.load_tabular(
            self.kind,
            path=request.path,
            test_path=request.test_path,
            label=request.label,
            task=request.task,
            test_fraction=request.test_fraction,
            categorical=request.categorical,
            batch_size=request.batch_size,
            validation_fraction=request.validation_fraction,
            seed=request.seed,
            cache=request.cache,
            shuffle_buffer=request.shuffle_buffer,
        )


class CsvSource(_FileSource):
    """`data.name: csv`: a CSV file with a header row and a label column."""

    kind = "csv"


class NpzSource(_FileSource):
    """`data.name: npz`: arrays x and y (and x_test, y_test) of an .npz file."""

    kind = "npz"


class TfdsTableSource(TfdsSource):
    """A TFDS dataset of (numeric vector or dict of scalars, class label) pairs."""

    kind = "tfds_table"

    @classmethod
    def accepts(cls, builder) -> bool:
        return tabular.is_tfds_table(builder.info)

    def load(self, request: DataRequest) -> Datasets:
        return tabular.load_tfds_table(
            self.prepare(self.builder),
            request.name,
            test_fraction=request.test_fraction,
            batch_size=request.batch_size,
            validation_fraction=request.validation_fraction,
            seed=request.seed,
            cache=request.cache,
            shuffle_buffer=request.shuffle_buffer,
        )
