"""The training loop on raw uint8 images against flat float32 ones scaled beforehand, side by side.

In one process: the raw images are scaled and flattened by the model itself.

Both train the same MLP (`kerasmlp.model.build_model`, one seed) with the same
loss, optimizer and schedule through `kerasmlp.train.Trainer`, on the same
training split held in memory (`kerasmlp.batches.InMemoryBatches`, the loop's
path for data that fits) and in the same shuffled order:

- raw: the split as the image source gives it, uint8 (n, 28, 28, 1); the model
  starts with `Rescaling(1/255)` and `Flatten` (this version);
- float: the split cast to float32, times 1/255 and flattened beforehand, as the
  input pipeline did before; the model starts at the first Dense layer.

Each gets one untimed warm-up call (tracing); then the two alternate, one
compiled call of `train.log_every_steps` steps each, over `--rounds` rounds
(the order swapped every round), so that a busy machine slows both alike. For
each it prints the median and best examples/s of wall time, and the CPU time
the process spent per 1,000 examples (all threads; less sensitive to other
programs on the machine than wall time).

    python benchmarks/raw_image_inputs.py --manual-dir ../shared/data/mnist
    python benchmarks/raw_image_inputs.py --data random --examples 20000

Also checks that both models give the same logits on the same images.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasmlp.batches import InMemoryBatches  # noqa: E402
from kerasmlp.components import make_loss, make_optimizer  # noqa: E402
from kerasmlp.config import load_config  # noqa: E402
from kerasmlp.model import Head, build_model  # noqa: E402
from kerasmlp.train import Trainer  # noqa: E402


def load_images(args, config) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 28, 28, 1) and int32 labels; `--data-dir` and `--manual-dir`, or else
    the config's `data.data_dir` and `data.manual_dir` (which a data error names)."""
    if args.data == "random":
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (args.examples, 28, 28, 1), dtype=np.uint8)
        return images, rng.integers(0, 10, args.examples).astype(np.int32)
    from kerasmlp.data import load_datasets

    # A fresh data_dir is removed once the split is in arrays (it held a prepared copy).
    with tempfile.TemporaryDirectory() as scratch:
        data = load_datasets(
            args.data,
            batch_size=4096,
            validation_fraction=0.05,
            data_dir=args.data_dir or config.data.data_dir or scratch,
            manual_dir=args.manual_dir or config.data.manual_dir,
        )
        split = data.train_examples.batch(data.info.num_train)
        features, labels = split.get_single_element()
    return features.numpy(), labels.numpy()


def make_trainer(config, raw: bool) -> Trainer:
    head = Head("softmax", 10)
    extra = {"input_shape": (28, 28, 1), "input_dtype": "uint8", "input_scale": 1 / 255}
    # The same step both ways: the training shift of images (model.random_translation)
    # needs image-shaped inputs, which the flat float32 side does not have.
    same = dataclasses.replace(config.model, random_translation=0.0)
    model = build_model(same, input_dim=784, head=head, seed=config.seed, **extra if raw else {})
    return Trainer(
        model,
        make_loss(config.loss),
        make_optimizer(config.optimizer),
        head=head,
        metric_names=config.metrics,
    )


def make_round(config, features, labels, raw: bool):
    """A function running one compiled call of the loop; returns (wall s, CPU s, examples)."""
    trainer = make_trainer(config, raw)
    batches = InMemoryBatches(
        features, labels, batch_size=config.train.batch_size, seed=config.seed
    )
    steps = config.train.log_every_steps
    trainer.run_steps(batches, steps)  # warm-up: traces the loop

    def one_round():
        wall, cpu = time.perf_counter(), time.process_time()
        stats = trainer.run_steps(batches, steps)  # reads the loss: the loop's host sync
        return time.perf_counter() - wall, time.process_time() - cpu, stats["examples"]

    return one_round


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist", help="'random' or a TFDS image set (mnist)")
    parser.add_argument("--data-dir", default=None, help="default: data.data_dir, or a fresh one")
    parser.add_argument("--manual-dir", default=None, help="default: data.manual_dir")
    parser.add_argument("--examples", type=int, default=20_000, help="for --data random")
    parser.add_argument(
        "--config", default=os.path.join(os.path.dirname(__file__), "..", "configs", "mnist.yaml")
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    for option in ("examples", "rounds"):
        if (value := getattr(args, option)) < 1:
            parser.error(f"--{option} must be at least 1. Received: {value}")

    config = load_config(args.config, args.overrides)
    keras.utils.set_random_seed(config.seed)
    images, labels = load_images(args, config)
    # The old input pipeline's scaling: cast to float32, times 1/255 in float32.
    scaled = (tf.reshape(tf.cast(images, tf.float32), [len(images), 784]) * (1.0 / 255)).numpy()
    raw_model, float_model = make_trainer(config, True).model, make_trainer(config, False).model
    np.testing.assert_allclose(raw_model(images[:512]), float_model(scaled[:512]), rtol=1e-6)
    print(
        f"{len(images)} examples, batch {config.train.batch_size}, "
        f"{config.train.log_every_steps} steps a round, {args.rounds} rounds, "
        f"model {list(config.model.hidden_units)}; split in memory: raw uint8 "
        f"{images.nbytes / 2**20:.1f} MiB, float32 {scaled.nbytes / 2**20:.1f} MiB"
    )
    rounds = {
        "raw": make_round(config, images, labels, raw=True),
        "float": make_round(config, scaled, labels, raw=False),
    }
    timings = {"raw": [], "float": []}
    for round_ in range(args.rounds):
        for name in ("raw", "float") if round_ % 2 == 0 else ("float", "raw"):
            timings[name].append(rounds[name]())
    rates = {}
    for name, runs in timings.items():
        wall = np.array([n / w for w, _, n in runs])
        cpu = np.array([1000 * c / n for _, c, n in runs])
        rates[name] = np.median(wall)
        print(
            f"{name:<5} | median {np.median(wall):>7.0f} examples/s | best {wall.max():>7.0f} "
            f"| CPU {np.median(cpu):.3f} s per 1000 examples (median)"
        )
    # Each round's two calls ran back to back: their ratio sees the same load.
    paired = [
        (r[2] / r[0]) / (f[2] / f[0]) for r, f in zip(timings["raw"], timings["float"], strict=True)
    ]
    print(
        f"ratio | raw / float, median examples/s = {rates['raw'] / rates['float']:.3f}; "
        f"median of the rounds' ratios = {np.median(paired):.3f} "
        f"(quartiles {np.quantile(paired, 0.25):.3f}-{np.quantile(paired, 0.75):.3f})"
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)
