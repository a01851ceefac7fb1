"""kerasmlp: train dense networks from a config with Keras 3, and read the run in TensorBoard.

The public API. Importing `kerasmlp` does not import TensorFlow (so that
`kerasmlp-train --help` answers at once); the names below that need it are
loaded on first use.

Saved models name kerasmlp's losses, metrics, layers and optimizers as
`kerasmlp>ClassName`, and Keras finds them only once their classes are
registered. So that `import kerasmlp` is all a user needs before
`keras.models.load_model`, their modules are imported as soon as Keras is: at
once if it already is, else right after Keras's own import (the one import hook
below, which removes itself).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "ConfigError",
    "Config",
    "load_config",
    "losses",
    "metrics",
    "optimizers",
    "testing",
    "build_model",
    "load_datasets",
    "train_and_evaluate",
    "load_run",
]

from kerasmlp.config import Config, ConfigError, load_config

# name -> module that defines it; imported lazily because each pulls in TensorFlow.
_LAZY = {
    "losses": "kerasmlp.losses",
    "metrics": "kerasmlp.metrics",
    "optimizers": "kerasmlp.optimizers",
    "testing": "kerasmlp.testing",
    "build_model": "kerasmlp.model",
    "load_datasets": "kerasmlp.data",
    "train_and_evaluate": "kerasmlp.train",
    "load_run": "kerasmlp.inference",
}

if TYPE_CHECKING:  # pragma: no cover
    from kerasmlp import losses, metrics, optimizers, testing
    from kerasmlp.data import load_datasets
    from kerasmlp.inference import load_run
    from kerasmlp.model import build_model
    from kerasmlp.train import train_and_evaluate


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'kerasmlp' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if module.__name__.endswith(name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The lazy names too, before their first use (tab completion, `help(kerasmlp)`).
    return sorted(set(globals()) | set(__all__))


_KERAS_OBJECT_MODULES = (
    "kerasmlp.losses",
    "kerasmlp.metrics",
    "kerasmlp.layers",
    "kerasmlp.optimizers",
)


def _register_keras_objects() -> None:
    for name in _KERAS_OBJECT_MODULES:
        importlib.import_module(name)


class _RegisterAfterKerasLoader(importlib.abc.Loader):
    """Runs Keras's own loader, then registers kerasmlp's classes with it."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _register_keras_objects()

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Finds `keras` once, through the usual finders, and wraps its loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisterAfterKerasLoader(spec.loader)
        return spec


if "keras" in sys.modules:
    _register_keras_objects()
elif not any(isinstance(finder, _KerasImportHook) for finder in sys.meta_path):
    sys.meta_path.insert(0, _KerasImportHook())
