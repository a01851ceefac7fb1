"""Subprocess for tests/test_metrics.py: reload `.keras` models in a fresh process.

Usage: python _metrics_reload.py DATA.npz MODEL.keras [MODEL.keras ...]

The process imports only `kerasmlp.metrics` (which registers the metric classes
with Keras) and loads each model with no `custom_objects`, so the compiled
metrics come back from their registered names alone. It evaluates each model on
the arrays `x` and `y_<model file stem>` of DATA.npz and prints one JSON object
mapping each model file stem to its `evaluate(..., return_dict=True)` result.
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from kerasmlp.console import collector_paused  # noqa: E402

with collector_paused():  # as kerasmlp's commands import TensorFlow: 2-3 s sooner
    import keras
    import numpy as np

import kerasmlp.metrics  # noqa: E402, F401  (registers the classes; nothing else is imported)


def main(data_path, *model_paths):
    data = np.load(data_path)
    out = {}
    for path in model_paths:
        stem = pathlib.Path(path).stem
        model = keras.saving.load_model(path)
        logs = model.evaluate(
            data["x"], data[f"y_{stem}"], batch_size=32, verbose=0, return_dict=True
        )
        out[stem] = {name: np.asarray(value).tolist() for name, value in logs.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
