"""kerasmlp on small real tables against scikit-learn, on the same train/test split.

scikit-learn's bundled datasets (iris, wine, breast_cancer: classification;
diabetes: regression) are written to CSV, split 80/20 with a fixed seed
(stratified for classes) into train.csv and test.csv, and trained on:

- kerasmlp through its real entry point, `train_and_evaluate`, with
  `data.name: csv`, `data.test_path` (the same test rows) and the given overrides;
- scikit-learn's StandardScaler + LogisticRegression (classification) or
  StandardScaler + RidgeCV (regression), the usual baselines.

    python benchmarks/tabular_vs_sklearn.py
    python benchmarks/tabular_vs_sklearn.py --epochs 100 --datasets iris wine

Prints test accuracy (classification) or test MAE (regression) for both.
Needs scikit-learn (a test dependency); no network.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import pathlib
import sys
import tempfile
from contextlib import redirect_stdout

import numpy as np

try:
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import accuracy_score, mean_absolute_error
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
except ImportError:  # a test dependency, not kerasmlp's: one line, as for a wrong argument
    print(
        f"{os.path.basename(sys.argv[0])}: error: needs scikit-learn, which is not installed "
        "(pip install scikit-learn, or kerasmlp's test extra: pip install -e '.[test]')",
        file=sys.stderr,
    )
    sys.exit(2)

from kerasmlp.config import load_config
from kerasmlp.train import train_and_evaluate

LOADERS = {
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
}


def _write(path, columns, x, y):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, "target"])
        for row, label in zip(x, y, strict=True):
            writer.writerow([*(f"{v:.6g}" for v in row), label])


def compare(
    name: str, folder: pathlib.Path, epochs: int, overrides: list[str]
) -> tuple[str, float, float]:
    bunch = LOADERS[name]()
    x, y = bunch.data, bunch.target
    regression = name == "diabetes"
    if not regression:  # string labels: class names, as a user's file would have them
        y = np.asarray(bunch.target_names)[y]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=None if regression else y
    )
    columns = [str(c).replace(" ", "_") for c in bunch.feature_names]
    _write(folder / f"{name}_train.csv", columns, x_train, y_train)
    _write(folder / f"{name}_test.csv", columns, x_test, y_test)

    settings = [
        "data.name=csv",
        f"data.path={folder / f'{name}_train.csv'}",
        f"data.test_path={folder / f'{name}_test.csv'}",
        "data.label=target",
        f"train.epochs={epochs}",
        "train.batch_size=16",
        "train.validation_fraction=0.1",
        "train.image_every_epochs=0",
        "train.histogram_every_epochs=0",
        "model.hidden_units=[64, 64]",
        "optimizer.learning_rate.initial_learning_rate=0.003",
    ]
    if regression:
        settings += ["data.task=regression", "loss.name=mean_squared_error", "metrics=[mae]"]
    config = load_config(None, settings + overrides)
    with redirect_stdout(io.StringIO()):
        results = train_and_evaluate(config, folder / f"run_{name}")
    if regression:
        baseline = make_pipeline(StandardScaler(), RidgeCV()).fit(x_train, y_train)
        ours = results["test_mae"]
        theirs = mean_absolute_error(y_test, baseline.predict(x_test))
        return "test MAE", ours, theirs
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    baseline.fit(x_train, y_train)
    return (
        "test accuracy",
        results["test_accuracy"],
        accuracy_score(y_test, baseline.predict(x_test)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in args.datasets:
            what, ours, theirs = compare(name, pathlib.Path(folder), args.epochs, args.overrides)
            print(f"{name:<14} | {what:<13} | kerasmlp {ours:8.4f} | scikit-learn {theirs:8.4f}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)
