"""Load saved `.keras` models in a fresh process and print what came back as one JSON line.

Usage: python _reload_losses.py DIRECTORY MODEL.keras...

No `custom_objects` are passed: the loss classes must be registered by a plain import.
First, after only `import kerasmlp`, the first model is loaded (the issue asks that this be
enough); then, after `import kerasmlp.losses`, every model is loaded and its compiled loss is
applied to DIRECTORY/x.npy and MODEL.y.npy.
"""

import json
import pathlib
import sys


def _load_all(paths, x):
    import keras
    import numpy as np

    out = {}
    for path in paths:
        model = keras.saving.load_model(path)
        loss = model.loss
        y_true = np.load(pathlib.Path(path).with_suffix(".y.npy"))
        value = float(loss(y_true, model(x)))
        out[path] = [type(loss).__module__, type(loss).__name__, loss.get_config(), value]
    return out


def main(directory: str, paths: list[str]) -> None:
    import numpy as np

    import kerasmlp  # noqa: F401  (the package alone, as a user would import it)

    x = np.load(pathlib.Path(directory) / "x.npy")
    try:
        after_package = _load_all(paths[:1], x)
    except Exception as error:  # reported to the test, which says what is missing
        after_package = f"{type(error).__name__}: {error}"[:500]

    import kerasmlp.losses  # noqa: F401

    print(json.dumps({"after_import_kerasmlp": after_package, "models": _load_all(paths, x)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
