"""Times kerasmlp's training loop against Keras `model.fit`, side by side in one process.

Both train the same MLP (built by `kerasmlp.model.build_model` from one seed)
with the same loss, optimizer and schedule, on the same cached in-memory
`tf.data` pipeline at the same batch size. Each gets one untimed warm-up epoch
(tracing), then `--epochs` timed epochs; the order alternates over `--repeats`
rounds and the best round of each is reported.

    python benchmarks/train_loop_vs_fit.py                      # MNIST-shaped random data
    python benchmarks/train_loop_vs_fit.py --data mnist --manual-dir ../shared/data/mnist

Prints samples/s for each and the ratio kerasmlp / fit (> 1: kerasmlp is faster).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasmlp.components import make_loss, make_metrics, make_optimizer  # noqa: E402
from kerasmlp.config import load_config  # noqa: E402
from kerasmlp.model import Head, build_model  # noqa: E402
from kerasmlp.train import Trainer  # noqa: E402


def load_arrays(args) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """x, y, the number of classes, and the model's input (`build_model`'s input arguments)."""
    if args.data == "random":
        rng = np.random.default_rng(0)
        x = rng.random((args.examples, 784), dtype=np.float32)
        y = rng.integers(0, 10, size=args.examples).astype(np.int32)
        return x, y, 10, {"input_dim": 784}
    from kerasmlp.data import load_datasets

    data = load_datasets(
        args.data,
        batch_size=4096,
        validation_fraction=0.0,
        data_dir=args.data_dir or tempfile.mkdtemp(),
        manual_dir=args.manual_dir,
    )
    xs, ys = zip(*data.train.as_numpy_iterator(), strict=True)
    info = data.info
    # Raw uint8 images for a TFDS image set: the model scales and flattens them.
    model_input = {
        "input_dim": info.input_dim,
        "input_shape": info.input_shape,
        "input_dtype": info.input_dtype,
        "input_scale": info.input_scale,
    }
    return np.concatenate(xs), np.concatenate(ys), info.num_classes, model_input


def make_parts(config, model_input, num_classes):
    head = Head("softmax", num_classes)
    model = build_model(config.model, head=head, seed=config.seed, **model_input)
    return model, make_loss(config.loss), make_optimizer(config.optimizer), head


def time_kerasmlp(config, dataset, steps_per_epoch, model_input, num_classes, epochs):
    model, loss, optimizer, head = make_parts(config, model_input, num_classes)
    trainer = Trainer(model, loss, optimizer, head=head, metric_names=config.metrics)
    iterator = iter(dataset.repeat())
    log_every = config.train.log_every_steps

    def one_epoch():
        done = 0
        while done < steps_per_epoch:
            n = min(log_every, steps_per_epoch - done)
            trainer.run_steps(iterator, n)  # reads the interval's loss: the loop's host sync
            done += n

    one_epoch()  # warm-up: traces the loop
    start = time.perf_counter()
    for _ in range(epochs):
        trainer.start_epoch()
        one_epoch()
        trainer.train_results()
    return time.perf_counter() - start


def time_fit(config, dataset, steps_per_epoch, model_input, num_classes, epochs):
    model, loss, optimizer, head = make_parts(config, model_input, num_classes)
    model.compile(optimizer=optimizer, loss=loss, metrics=make_metrics(config.metrics, head))
    model.fit(dataset, epochs=1, verbose=0)  # warm-up: traces train_function
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, verbose=0)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="random", help="'random' or a TFDS name (mnist)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--manual-dir", default=None)
    parser.add_argument("--examples", type=int, default=20_000, help="for --data random")
    parser.add_argument(
        "--config", default=os.path.join(os.path.dirname(__file__), "..", "configs", "mnist.yaml")
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    config = load_config(args.config, args.overrides)
    keras.utils.set_random_seed(config.seed)
    x, y, num_classes, model_input = load_arrays(args)
    batch_size = config.train.batch_size
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .cache()
        .shuffle(len(x), seed=0)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    steps_per_epoch = math.ceil(len(x) / batch_size)
    samples = len(x) * args.epochs
    print(
        f"{len(x)} examples x {args.epochs} epochs, batch {batch_size}, "
        f"model {list(config.model.hidden_units)} -> {num_classes}, "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()} threads"
    )
    best = {"kerasmlp": math.inf, "fit": math.inf}
    timers = {"kerasmlp": time_kerasmlp, "fit": time_fit}
    for round_ in range(args.repeats):
        order = ["kerasmlp", "fit"] if round_ % 2 == 0 else ["fit", "kerasmlp"]
        for name in order:
            seconds = timers[name](
                config, dataset, steps_per_epoch, model_input, num_classes, args.epochs
            )
            best[name] = min(best[name], seconds)
            print(f"round {round_ + 1} | {name:<8} | {samples / seconds:>9.0f} samples/s")
    ours, theirs = samples / best["kerasmlp"], samples / best["fit"]
    print(f"best     | kerasmlp {ours:.0f} samples/s | fit {theirs:.0f} samples/s")
    print(f"ratio    | kerasmlp / fit = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
