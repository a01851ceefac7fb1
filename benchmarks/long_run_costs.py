"""What surviving long runs costs: the divergence checks in the compiled loop, and checkpoints.

Side by side in one process, on in-memory random data shaped like the config's
dataset (2 features for the playground sets, 784 for MNIST-like ones):

- the compiled loop as it is (which marks the first non-finite loss or
  gradient norm per step and checks the weights once per call) against the
  same loop without those checks, `--repeats` alternating rounds of
  `--calls` calls of `log_every_steps` steps; best round of each;
- one checkpoint (`RunCheckpoints.save`: model, optimizer, batch position,
  metrics, host state) against one epoch of training, since a run saves one
  at every epoch's end.

    python benchmarks/long_run_costs.py                    # the default (spirals) config
    python benchmarks/long_run_costs.py -c configs/mnist.yaml

Prints steps/s for both loops and their ratio (1.0: the checks are free), and
the checkpoint's milliseconds and its share of an epoch.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasmlp.batches import InMemoryBatches  # noqa: E402
from kerasmlp.checkpoints import RunCheckpoints  # noqa: E402
from kerasmlp.components import make_loss, make_optimizer  # noqa: E402
from kerasmlp.config import dataset_shape, load_config  # noqa: E402
from kerasmlp.controller import Controller  # noqa: E402
from kerasmlp.model import Head, build_model  # noqa: E402
from kerasmlp.summaries import SummaryWriter  # noqa: E402
from kerasmlp.train import Trainer, checkpoint_objects  # noqa: E402


class UncheckedTrainer(Trainer):
    """The loop before the divergence guard: no per-step finiteness, no weight check."""

    def _train_loop(self, iterator, num_steps):
        # Written as `tf.while_loop`, as `Trainer._train_loop` is: both trace without AutoGraph.
        def step(i, loss_sum, examples, gradient_norm_sum):
            loss, gradient_norm, _, batch_size = self._step(iterator)
            return (
                i + 1,
                loss_sum + tf.cast(loss, tf.float32) * batch_size,
                examples + batch_size,
                gradient_norm_sum + tf.cast(gradient_norm, tf.float32),
            )

        start = (tf.constant(0), tf.constant(0.0), tf.constant(0.0), tf.constant(0.0))
        _, loss_sum, examples, gradient_norm_sum = tf.while_loop(
            lambda i, *_: i < num_steps, step, start, maximum_iterations=num_steps
        )
        learning_rate = tf.cast(self.optimizer.learning_rate, tf.float32)
        return tf.stack([loss_sum, examples, gradient_norm_sum, learning_rate, -1.0, 1.0])


def make(cls, config, x, y, num_classes):
    head = Head("softmax", num_classes)
    # Flat features: no training shift of images (model.random_translation) here.
    flat = dataclasses.replace(config.model, random_translation=0.0)
    model = build_model(flat, input_dim=x.shape[1], head=head, seed=config.seed)
    trainer = cls(
        model,
        make_loss(config.loss),
        make_optimizer(config.optimizer),
        head=head,
        metric_names=config.metrics,
    )
    batches = InMemoryBatches(x, y, batch_size=config.train.batch_size, seed=config.seed)
    return trainer, batches


def steps_per_second(trainer, batches, steps, calls) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        trainer.run_steps(batches, steps)
    return steps * calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", "-c", default=None)
    parser.add_argument("--examples", type=int, default=None, help="default: the dataset's")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for option in ("examples", "calls", "repeats"):
        if (value := getattr(args, option)) is not None and value < 1:
            parser.error(f"--{option} must be at least 1. Received: {value}")
    config = load_config(args.config)
    input_dim, num_classes = dataset_shape(config.data.name)
    input_dim, num_classes = input_dim or 784, num_classes or 10
    examples = args.examples or (3600 if input_dim == 2 else 54000)
    rng = np.random.default_rng(0)
    x = rng.random((examples, input_dim), dtype=np.float32)
    y = rng.integers(0, num_classes, size=examples).astype(np.int32)
    steps = config.train.log_every_steps

    checked, unchecked = (
        make(Trainer, config, x, y, num_classes),
        make(UncheckedTrainer, config, x, y, num_classes),
    )
    for trainer, batches in (checked, unchecked):  # trace both first
        trainer.run_steps(batches, steps)
    rates = {"checked": [], "unchecked": []}
    for r in range(args.repeats):
        order = [("checked", checked), ("unchecked", unchecked)]
        for name, (trainer, batches) in order if r % 2 == 0 else order[::-1]:
            rates[name].append(steps_per_second(trainer, batches, steps, args.calls))
    best = {name: max(values) for name, values in rates.items()}
    print(f"config: {args.config or 'built-in default'}; {examples} examples x {input_dim}")
    print(f"{args.calls} calls of {steps} steps, best of {args.repeats} alternating rounds")
    print(f"loop with divergence checks   : {best['checked']:9.0f} steps/s")
    print(f"loop without (before the guard): {best['unchecked']:9.0f} steps/s")
    print(f"ratio with/without            : {best['checked'] / best['unchecked']:.3f}")

    trainer, batches = checked
    steps_per_epoch = math.ceil(examples / config.train.batch_size)
    epoch_seconds = steps_per_epoch / best["checked"]
    with tempfile.TemporaryDirectory() as folder:
        writer = SummaryWriter(folder)
        checkpoints = RunCheckpoints(
            os.path.join(folder, "checkpoints"),
            checkpoint_objects(trainer, batches),
            keep=2,
            writer=writer,
        )
        loop = Controller(
            trainer.bind(batches), epochs=1, steps_per_epoch=steps_per_epoch, log_every_steps=steps
        )
        times = []
        for step in range(1, args.repeats + 2):
            start = time.perf_counter()
            checkpoints.save(loop.state_dict(), step=step)
            times.append(time.perf_counter() - start)
        size = sum(
            os.path.getsize(os.path.join(folder, "checkpoints", f))
            for f in os.listdir(os.path.join(folder, "checkpoints"))
            if f.startswith(f"ckpt-{step}.")
        )
        writer.close()
    save = min(times[1:])  # the first save also builds the saver
    print(
        f"checkpoint: {save * 1000:.1f} ms ({size / 1e6:.2f} MB); one epoch "
        f"({steps_per_epoch} steps): {epoch_seconds * 1000:.0f} ms; "
        f"share of an epoch: {save / (save + epoch_seconds):.1%}"
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)
