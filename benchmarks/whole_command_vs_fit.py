"""The whole command's training throughput against Keras `fit` on the same model, data and batch.

kerasmlp's side is `train_and_evaluate` on the config, as `kerasmlp-train -c
configs/mnist.yaml --epochs N` runs it: its `examples_per_second` (in
metrics.json) is the training examples over the time of its compiled training
calls, tracing included. `fit`'s side, in the same process afterwards, is the
same model (`train.model_for`, as the run builds it, with its seed and
precision: the image shifts of `model.random_translation` included), loss,
metrics, batch size and optimizer (Keras's own class, where kerasmlp's Adam
fuses each update), compiled with Keras's defaults and fitted on the numpy
arrays of the same training split for the same epochs; its examples/s is those
examples over `fit`'s wall time, tracing included, with no validation and no
callbacks.
kerasmlp's run validates every epoch and logs to TensorBoard, outside the time
its rate counts; so does nothing on `fit`'s side.

    python benchmarks/whole_command_vs_fit.py --epochs 3 \\
        --set data.manual_dir=../shared/data/mnist

Prints, for each pair of runs, both rates, the accuracy each reached on the test
split (a check that both trained, not a comparison) and the ratio kerasmlp / fit;
then the median ratio. With `--repeats N`, N pairs, which side goes first
alternating: the machine's speed drifts between two long runs, and a single pair
has moved by a quarter on these 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasmlp.components import make_loss, make_metrics, make_optimizer  # noqa: E402
from kerasmlp.config import load_config  # noqa: E402
from kerasmlp.data import load_config_datasets  # noqa: E402
from kerasmlp.model import Head  # noqa: E402
from kerasmlp.precision import largest_layer_weights, resolve_precision  # noqa: E402
from kerasmlp.train import LineReporter, model_for, train_and_evaluate  # noqa: E402


def arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    """A batched `(x, y)` split as two numpy arrays."""
    xs, ys = zip(*((np.asarray(x), np.asarray(y)) for x, y in dataset), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def fit_rate(config, data, precision: str) -> tuple[float, float]:
    """(examples/s of `fit` over its wall time, its test accuracy); `precision` as the
    kerasmlp run resolved `train.precision` (e.g. 'float32')."""
    info = data.info
    head = Head.for_task(info.task, num_classes=info.num_classes, loss_name=config.loss.name)
    keras.utils.set_random_seed(config.seed)
    model = model_for(
        config, info, head, dtype_policy=None if precision == "float32" else precision
    )
    model.compile(
        # Keras's own Adam, as a user writing this `fit` call has it.
        optimizer=make_optimizer(config.optimizer, fused=False),
        loss=make_loss(config.loss),
        # A plain list: compile reads it with optree, which takes a list subclass for a leaf.
        metrics=list(make_metrics(config.metrics, head)),
    )
    x, y = arrays(data.train_examples.batch(4096))
    start = time.perf_counter()
    model.fit(x, y, batch_size=config.train.batch_size, epochs=config.train.epochs, verbose=0)
    seconds = time.perf_counter() - start
    test_x, test_y = arrays(data.test)
    accuracy = float(np.mean(np.argmax(model.predict(test_x, verbose=0), -1) == test_y))
    return len(x) * config.train.epochs / seconds, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", default=os.path.join(os.path.dirname(__file__), "..", "configs", "mnist.yaml")
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument(
        "--epochs", type=int, default=None, help="default: --set train.epochs, or else 3"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="pairs of runs; which goes first alternates"
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Received: {args.repeats}")

    ratios = []
    with tempfile.TemporaryDirectory() as workdir:
        overrides = list(args.overrides)
        # As --set train.epochs=N gives it, which a default --epochs 3 used to replace.
        if args.epochs is not None or not any(o.startswith("train.epochs=") for o in overrides):
            overrides.append(f"train.epochs={3 if args.epochs is None else args.epochs}")
        if not any(o.startswith("data.data_dir=") for o in overrides):
            overrides.append(f"data.data_dir={os.path.join(workdir, 'tfds')}")
        config = load_config(args.config, overrides)
        for repeat in range(args.repeats):
            ours = theirs = None
            for side in ("kerasmlp", "fit") if repeat % 2 == 0 else ("fit", "kerasmlp"):
                if side == "kerasmlp":
                    ours = train_and_evaluate(
                        config,
                        os.path.join(workdir, f"run{repeat}"),
                        reporter=LineReporter(open(os.devnull, "w")),
                    )
                else:
                    data = load_config_datasets(config)
                    # As the run resolves `train.precision` (`auto` by this machine's
                    # hardware and the model's largest layer).
                    precision = resolve_precision(
                        config.train.precision,
                        largest_layer_weights(data.info.input_dim, config.model.hidden_units),
                    ).name
                    theirs, fit_accuracy = fit_rate(config, data, precision)
            rate = ours["examples_per_second"]
            ratios.append(rate / theirs)
            if repeat == 0:
                print(
                    f"config   | {os.path.basename(args.config)} {' '.join(args.overrides)} | "
                    f"{config.train.epochs} epochs, batch {config.train.batch_size}, "
                    f"precision {ours['precision']}"
                )
            print(
                f"pair {repeat + 1:>3} | kerasmlp {rate:,.0f} examples/s, test accuracy "
                f"{ours['test_accuracy']:.4f} | fit {theirs:,.0f} examples/s, test accuracy "
                f"{fit_accuracy:.4f} | kerasmlp / fit {rate / theirs:.2f}"
            )
    print(
        f"ratio    | kerasmlp / fit, median of {len(ratios)} pairs {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)
