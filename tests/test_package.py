"""Tests for the package itself: the public API, and Keras finding every class by name."""

import inspect
import subprocess
import sys

import keras

import kerasmlp
from kerasmlp import losses, metrics
from tests.conftest import COLLECTOR_OFF


def keras_classes():
    for module in (losses, metrics):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and not cls.__name__.startswith("_"):
                if issubclass(cls, (keras.losses.Loss, keras.metrics.Metric)):
                    yield cls


def test_every_loss_and_metric_has_its_own_registered_name():
    # A loss and a metric share a class name (MeanSquaredError): one registration must not
    # replace the other, or a saved model would revive the wrong class.
    classes = list(keras_classes())
    names = [keras.saving.get_registered_name(cls) for cls in classes]
    assert len(classes) >= 20
    assert len(set(names)) == len(names)
    for cls, name in zip(classes, names, strict=True):
        assert name.startswith("kerasmlp>")
        assert keras.saving.get_registered_object(name) is cls


def test_public_api():
    assert set(kerasmlp.__all__) >= {"__version__", "load_config", "train_and_evaluate", "losses"}
    for name in kerasmlp.__all__:
        assert getattr(kerasmlp, name) is not None


def run_python(code):
    out = subprocess.run(
        [sys.executable, "-c", COLLECTOR_OFF + code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_import_kerasmlp_does_not_import_tensorflow():
    # dir() lists the public names that are loaded on first use, and does not load them.
    code = "import sys, kerasmlp; listed = set(kerasmlp.__all__) <= set(dir(kerasmlp))\n"
    code += "print('tensorflow' in sys.modules, listed)"
    assert run_python(code) == ["False", "True"]


def test_classes_are_registered_whichever_is_imported_first():
    check = "print('kerasmlp>SparseCategoricalCrossentropy' in keras.saving.get_custom_objects(), "
    check += "'kerasmlp>F1Score' in keras.saving.get_custom_objects())"
    assert run_python("import kerasmlp, keras\n" + check) == ["True", "True"]
    assert run_python("import keras, kerasmlp\n" + check) == ["True", "True"]
