"""Subprocess for tests/test_distribute.py: one run on one device and one under MirroredStrategy.

Logical CPU devices can only be configured before TensorFlow initialises, hence
a fresh process. The runs split the CPU in two (`distribute.cpu_devices: 2`),
have the same seed and global batch, and differ only in `distribute.strategy`
(and one, under MirroredStrategy, in `train.precision: mixed_float16`; one
with dropout on, for 8 epochs; a pair with `optimizer.clipvalue`). Then the
same on raw images (mock MNIST) and on a CSV table: five models of three shapes
trained under MirroredStrategy one after another in this process, as a sweep's
points are. Last, each replica's dropout masks and shifts.
Prints one JSON object: each run's results and final weights, the train loss
logged per round (TensorBoard), and how Keras's own loss reduction behaves
inside the strategy.

Usage: python tests/_distribute_mirrored.py WORKDIR
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from kerasmlp.config import load_config  # noqa: E402
from kerasmlp.console import collector_paused  # noqa: E402

OVERRIDES = [
    "train.epochs=1",
    "train.batch_size=64",
    # Rounds of 7 steps: several steps per compiled call, and a short last round.
    "train.log_every_steps=7",
    "train.histogram_every_epochs=0",
    "train.image_every_epochs=0",
    "model.hidden_units=[16,16]",
    "model.dropout=0.0",
    # Regularization on: it must count once, not once per replica.
    "model.weight_decay=0.001",
    "metrics=[accuracy,macro_f1]",
    "distribute.cpu_devices=2",
]
# The runs compared to 1e-5, in float32 whatever `auto` would pick on this machine; and
# one under MirroredStrategy in mixed_float16 (loss scaling, see kerasmlp.trainer.Trainer).
RUNS = {
    "one_device": ["distribute.strategy=one_device", "train.precision=float32"],
    "mirrored": ["distribute.strategy=mirrored", "train.precision=float32"],
    "mirrored_mixed_float16": ["distribute.strategy=mirrored", "train.precision=mixed_float16"],
    # Gradient clipping: of the replicas' summed gradients (kerasmlp.optimizers), so the
    # same step as one device's; clipping each replica's part, as Keras's class does
    # under a strategy, would not be.
    "one_device_clipped": [
        "distribute.strategy=one_device",
        "train.precision=float32",
        "optimizer.clipvalue=0.05",
    ],
    "mirrored_clipped": [
        "distribute.strategy=mirrored",
        "train.precision=float32",
        "optimizer.clipvalue=0.05",
    ],
    # Dropout on: not comparable step by step with one device (the masks differ),
    # so trained long enough to converge (8 epochs; 0.94-0.97 test accuracy seen).
    "mirrored_dropout": [
        "distribute.strategy=mirrored",
        "train.precision=float32",
        "model.dropout=0.2",
        "model.weight_decay=0.0",
        "model.hidden_units=[32,32]",
        "train.epochs=8",
    ],
}


# Raw uint8 images (mock MNIST: the model rescales and flattens them, each replica
# gathers its rows of the global batch in uint8) and a CSV with a string column
# (a dict of columns, looked up and normalized inside the model), each on one
# device and mirrored; images drawn (misclassified digits, confusion matrix).
IMAGES = ["data.name=mnist", "train.image_every_epochs=1", "metrics=[accuracy]"]
ROWS = 240


def _write_table(path: pathlib.Path) -> pathlib.Path:
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["width,colour,label"]
    for _ in range(ROWS):
        width, colour = rng.normal(), rng.choice(["red", "green", "blue"])
        label = "big" if width + (colour == "red") > 0.5 else "small"
        lines.append(f"{width:.4f},{colour},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def main(workdir: pathlib.Path) -> None:
    with collector_paused():  # as kerasmlp's commands import TensorFlow: 2-3 s sooner
        import keras
        import tensorflow as tf
        import tensorflow_datasets as tfds

    from kerasmlp import losses
    from kerasmlp.train import train_and_evaluate
    from tests.events import scalars, tags_by_plugin

    table = _write_table(workdir / "table.csv")
    runs = dict(RUNS)
    for strategy in ("one_device", "mirrored"):
        runs[f"images_{strategy}"] = [f"distribute.strategy={strategy}", "train.precision=float32"]
        runs[f"table_{strategy}"] = [
            f"distribute.strategy={strategy}",
            "train.precision=float32",
            "data.name=csv",
            f"data.path={table}",
            "data.label=label",
            "train.batch_size=32",
            # Each example weighed by its class, on every replica as on one device.
            "train.class_weight={big: 3.0}",
        ]
    out = {}
    for name, overrides in runs.items():
        config = load_config(
            None,
            [
                *OVERRIDES,
                *(IMAGES if name.startswith("images") else []),
                *overrides,
                f"data.data_dir={workdir / 'data'}",
            ],
        )
        run_dir = workdir / name
        if name.startswith("images"):
            # mock_data: random images of MNIST's shape, the same in both runs.
            with tfds.testing.mock_data(num_examples=320):
                results = train_and_evaluate(config, run_dir)
        else:
            results = train_and_evaluate(config, run_dir)
        model = keras.models.load_model(run_dir / "model.keras")
        train = scalars(run_dir / "train")
        out[name] = {
            "results": results,
            "weights": [w.tolist() for w in model.get_weights()],
            "train_loss": train["loss"],
            "gradient_norm": train["gradient_norm"],
            "skipped_steps": train.get("skipped_steps"),
            "status": json.loads((run_dir / "status.json").read_text()),
            "images": sorted(tags_by_plugin(run_dir / "validation").get("images", ())),
        }

    # Keras's `sum_over_batch_size` inside strategy.run: divided by the replica count?
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    y, z = tf.constant([0, 1]), tf.constant([[2.0, -1.0], [0.5, 0.3]])

    @tf.function
    def in_replica():
        return strategy.experimental_local_results(strategy.run(lambda: loss(y, z)))[0]

    out["keras_loss_in_replica_over_outside"] = float(in_replica()) / float(loss(y, z))

    # Each replica's random draws, on the same inputs: Keras's Dropout (its SeedGenerator
    # is one mirrored variable) against kerasmlp's Dropout and RandomShift.
    from kerasmlp.layers import Dropout, RandomShift

    with strategy.scope():
        drawing = {
            "keras_dropout": (keras.layers.Dropout(0.5, seed=1), tf.ones((4, 64))),
            "dropout": (Dropout(0.5, seed=1), tf.ones((4, 64))),
            "random_shift": (
                RandomShift(0.3, seed=1),
                tf.reshape(tf.range(4 * 100, dtype=tf.float32), (4, 10, 10, 1)),
            ),
        }

    @tf.function
    def replica_draws(layer, x):
        return strategy.experimental_local_results(strategy.run(lambda: layer(x, training=True)))

    out["replica_draws"] = {}
    for name, (layer, x) in drawing.items():
        calls = [[r.numpy().tolist() for r in replica_draws(layer, x)] for _ in range(2)]
        out["replica_draws"][name] = {
            "replicas_equal": calls[0][0] == calls[0][1],
            "calls_equal": calls[0][0] == calls[1][0],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
