"""Errors every data source shares, below the sources so that none imports another.

`DataError` is re-exported by `kerasmlp.data` (its historical home); the tabular
sources (`kerasmlp.tables`, `kerasmlp.tabular`) raise it without importing
TensorFlow or TFDS.
"""

from __future__ import annotations


class DataError(ValueError):
    """A dataset that cannot be served as configured; the message names the config key."""
