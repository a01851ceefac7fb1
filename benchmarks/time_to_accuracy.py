"""Test accuracy and wall time: the seeds' Keras `fit` recipe against kerasmlp's shipped config.

On one dataset, in one process, on the same data prepared once through TFDS
from the canonical files (`kerasmlp.data.prepare_offline`, as kerasmlp reads
them: scaled to [0, 1], flattened), for each seed:

- the recipe: a 784-256-128-64-32-10 ReLU stack, Adam at a constant 1e-3,
  batch 100, `model.fit` on the numpy arrays of the whole train split (no
  validation), 30 epochs on Fashion-MNIST and 20 on MNIST, then `evaluate` on
  the test split. Its wall time counts reading the prepared split into arrays
  (the same figure for every seed, read once), `fit` and `evaluate`;
- kerasmlp: `train_and_evaluate` with the shipped config
  (`configs/<dataset>.yaml`, the seed set), timed around the whole call: loading
  the prepared data, validation every epoch, the TensorBoard logs, checkpoints
  and saving the model included, as `kerasmlp-train` runs it (less starting
  Python and TensorFlow, which the recipe does not pay here either).

The two alternate which goes first from seed to seed (the recipe first for the
first seed), after a short untimed `fit` that lets TensorFlow settle.

    python benchmarks/time_to_accuracy.py --dataset mnist --seeds 0
    python benchmarks/time_to_accuracy.py --dataset fashion_mnist --seeds 0 1 2
    python benchmarks/time_to_accuracy.py --dataset mnist --epochs-scale 0.1   # a short check

One dataset per process: MNIST and Fashion-MNIST share file names, and TFDS
has been seen to build one from the other's files when both are prepared in
one process with a shared download folder (see ../shared/data/README.md).
Prints each run's test accuracy and wall time, the ratio of wall times
(kerasmlp / recipe), and over the seeds the lowest accuracy of each and the
largest ratio.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasmlp.config import load_config  # noqa: E402
from kerasmlp.data import load_datasets, prepare_offline  # noqa: E402
from kerasmlp.runfiles import RunDirectoryExistsError, RunFilesError, check_run_dir  # noqa: E402
from kerasmlp.train import LineReporter, train_and_evaluate  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPE_EPOCHS = {"mnist": 20, "fashion_mnist": 30}
RECIPE_UNITS = (256, 128, 64, 32)
RECIPE_BATCH = 100
RECIPE_LEARNING_RATE = 1e-3


def load_arrays(name: str, data_dir, manual_dir) -> tuple[dict, int]:
    """The whole train split and the test split as numpy (x, y), as kerasmlp decodes them.

    Returns:
      ({"train": (x, y), "test": (x, y)}, the number of classes).
    """
    data = load_datasets(
        name, batch_size=4096, validation_fraction=0.0, data_dir=data_dir, manual_dir=manual_dir
    )
    arrays = {}
    for split, ds in (("train", data.train_examples.batch(4096)), ("test", data.test)):
        xs, ys = zip(*ds.as_numpy_iterator(), strict=True)
        # kerasmlp keeps images raw (uint8) and scales them in the model; the recipe
        # gets them as the seeds' script does: flat floats in [0, 1].
        x = np.concatenate(xs).reshape(-1, data.info.input_dim).astype(np.float32)
        if data.info.input_scale is not None:
            x *= data.info.input_scale
        arrays[split] = x, np.concatenate(ys)
    return arrays, data.info.num_classes


def build_recipe(input_dim: int, num_classes: int, seed: int) -> keras.Model:
    """The seeds' MLP: 256-128-64-32 ReLU, logits out, Adam 1e-3 constant; Keras's default init."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((input_dim,))]
        + [keras.layers.Dense(units, activation="relu") for units in RECIPE_UNITS]
        + [keras.layers.Dense(num_classes)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(RECIPE_LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def run_recipe(arrays, num_classes: int, seed: int, epochs: int) -> dict[str, float]:
    (x, y), (x_test, y_test) = arrays["train"], arrays["test"]
    start = time.perf_counter()
    model = build_recipe(x.shape[1], num_classes, seed)
    model.fit(x, y, batch_size=RECIPE_BATCH, epochs=epochs, verbose=0)
    fitted = time.perf_counter()
    _, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    end = time.perf_counter()
    return {"accuracy": accuracy, "fit": fitted - start, "evaluate": end - fitted}


def run_kerasmlp(config, run_dir: pathlib.Path) -> dict[str, float]:
    start = time.perf_counter()
    results = train_and_evaluate(config, run_dir, reporter=LineReporter(io.StringIO()))
    return {
        "accuracy": results["test_accuracy"],
        "wall": time.perf_counter() - start,
        "train": results["wall_time_s"],
        "epochs": results["epochs"],
    }


def scaled(epochs: int, scale: float) -> int:
    return max(1, round(epochs * scale))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(RECIPE_EPOCHS), default="mnist")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--epochs-scale",
        type=float,
        default=1.0,
        help="multiplies both epoch counts (at least 1 each), for a shortened check",
    )
    parser.add_argument(
        "--manual-dir",
        default=None,
        help="the canonical files; default data.manual_dir, or ../shared/data/<dataset>",
    )
    parser.add_argument(
        "--data-dir", default=None, help="TFDS data_dir; default data.data_dir, or a fresh one"
    )
    parser.add_argument("--workdir", default=None, help="kerasmlp's runs; default a temporary one")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="on the kerasmlp config"
    )
    args = parser.parse_args(argv)
    if not 0 < args.epochs_scale < math.inf:  # nan and inf too
        parser.error(f"--epochs-scale must be a number > 0. Received: {args.epochs_scale}")
    if len(set(args.seeds)) < len(args.seeds):
        parser.error(f"--seeds must differ: each trains into seed<N>. Received: {args.seeds}")
    # Before any work: the seed's run would refuse its folder only after the recipe's run.
    for seed in args.seeds if args.workdir else ():
        try:
            check_run_dir(pathlib.Path(args.workdir) / f"seed{seed}")
        except RunDirectoryExistsError:
            parser.error(
                f"--workdir {args.workdir}: seed{seed} already holds files, which a run does "
                "not write over; choose another --workdir"
            )
        except RunFilesError as e:
            parser.error(f"--workdir {args.workdir}: {e}")

    name = args.dataset
    config_path = REPO_ROOT / "configs" / f"{name}.yaml"
    # Before any work: a mistake in --set, or a seed the config refuses, is one line now,
    # not after preparing the data (or after training the seeds before it).
    base = load_config(config_path, args.overrides)
    for seed in args.seeds:
        load_config(config_path, [*args.overrides, f"seed={seed}"])
    # The options, or else the --set data keys that a data error names; the seeds' runs get
    # the same folders.
    manual_dir = (
        args.manual_dir or base.data.manual_dir or REPO_ROOT.parent / "shared" / "data" / name
    )
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or base.data.data_dir or os.path.join(scratch, "tfds")
        workdir = pathlib.Path(args.workdir or os.path.join(scratch, "runs"))
        start = time.perf_counter()
        prepare_offline(name, manual_dir, data_dir)
        prepared = time.perf_counter()
        arrays, num_classes = load_arrays(name, data_dir, manual_dir)
        load = time.perf_counter() - prepared
        (x, y), (x_test, _) = arrays["train"], arrays["test"]
        print(
            f"data     | {name}: {len(x)} train, {len(x_test)} test, mean pixel "
            f"{x.mean() * 255:.3f} / {x_test.mean() * 255:.3f} | prepared in "
            f"{prepared - start:.1f} s (not counted), read into arrays in {load:.1f} s"
        )
        recipe_epochs = scaled(RECIPE_EPOCHS[name], args.epochs_scale)
        kerasmlp_epochs = scaled(base.train.epochs, args.epochs_scale)
        print(
            f"recipe   | {[x.shape[1], *RECIPE_UNITS, num_classes]} relu, Adam "
            f"{RECIPE_LEARNING_RATE:g} constant, batch {RECIPE_BATCH}, {recipe_epochs} epochs, "
            "Keras fit on the whole train split"
        )
        print(
            f"kerasmlp | configs/{name}.yaml: {list(base.model.hidden_units)} dropout "
            f"{base.model.dropout}, batch {base.train.batch_size}, {kerasmlp_epochs} epochs"
            + (f", --set {' '.join(args.overrides)}" if args.overrides else "")
        )
        # Untimed: the first fit of a process pays for TensorFlow's one-time setup.
        warm = {"train": (x[:1000], y[:1000]), "test": (x_test[:1000], arrays["test"][1][:1000])}
        run_recipe(warm, num_classes, 0, 1)

        rows = []
        for i, seed in enumerate(args.seeds):
            config = load_config(
                config_path,
                [
                    *args.overrides,
                    f"seed={seed}",
                    f"train.epochs={kerasmlp_epochs}",
                    f"data.data_dir={data_dir}",
                    f"data.manual_dir={manual_dir}",
                ],
            )
            order = ["recipe", "kerasmlp"] if i % 2 == 0 else ["kerasmlp", "recipe"]
            row = {}
            for who in order:
                if who == "recipe":
                    row[who] = run_recipe(arrays, num_classes, seed, recipe_epochs)
                    row[who]["wall"] = load + row[who]["fit"] + row[who]["evaluate"]
                else:
                    row[who] = run_kerasmlp(config, workdir / f"seed{seed}")
            recipe, ours = row["recipe"], row["kerasmlp"]
            print(
                f"seed {seed:>3} | recipe   | test accuracy {recipe['accuracy']:.2%} | wall "
                f"{recipe['wall']:6.1f} s (arrays {load:.1f} + fit {recipe['fit']:.1f} + "
                f"evaluate {recipe['evaluate']:.1f})"
            )
            print(
                f"seed {seed:>3} | kerasmlp | test accuracy {ours['accuracy']:.2%} | wall "
                f"{ours['wall']:6.1f} s (training loop {ours['train']:.1f})"
            )
            ratio = ours["wall"] / recipe["wall"]
            print(f"seed {seed:>3} | ratio    | wall time kerasmlp / recipe {ratio:.2f}")
            rows.append(row)
        lowest = {who: min(r[who]["accuracy"] for r in rows) for who in ("recipe", "kerasmlp")}
        worst = max(r["kerasmlp"]["wall"] / r["recipe"]["wall"] for r in rows)
        print(
            f"summary  | {len(rows)} seeds | lowest test accuracy: recipe {lowest['recipe']:.2%}, "
            f"kerasmlp {lowest['kerasmlp']:.2%} | largest wall time ratio {worst:.2f}"
        )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)
