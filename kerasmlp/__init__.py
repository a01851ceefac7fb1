"""kerasmlp: train dense networks from a config with Keras 3, and read the run in TensorBoard.

The public API. Importing `kerasmlp` does not import TensorFlow (so that
`kerasmlp-train --help` answers at once); the names below that need it are
loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "ConfigError",
    "Config",
    "load_config",
    "losses",
    "metrics",
    "testing",
    "build_model",
    "load_datasets",
    "train_and_evaluate",
]

from kerasmlp.config import Config, ConfigError, load_config

# name -> module that defines it; imported lazily because each pulls in TensorFlow.
_LAZY = {
    "losses": "kerasmlp.losses",
    "metrics": "kerasmlp.metrics",
    "testing": "kerasmlp.testing",
    "build_model": "kerasmlp.model",
    "load_datasets": "kerasmlp.data",
    "train_and_evaluate": "kerasmlp.train",
}

if TYPE_CHECKING:  # pragma: no cover
    from kerasmlp import losses, metrics, testing
    from kerasmlp.data import load_datasets
    from kerasmlp.model import build_model
    from kerasmlp.train import train_and_evaluate


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'kerasmlp' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__.endswith(name) else getattr(module, name)
    globals()[name] = value
    return value
