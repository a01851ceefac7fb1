"""Subprocess for tests/test_distribute.py: one run on one device and one under MirroredStrategy.

Logical CPU devices can only be configured before TensorFlow initialises, hence
a fresh process. The runs split the CPU in two (`distribute.cpu_devices: 2`),
have the same seed and global batch, and differ only in `distribute.strategy`
(and one, under MirroredStrategy, in `train.precision: mixed_float16`).
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
# one under MirroredStrategy in mixed_float16 (loss scaling, see kerasmlp.train.Trainer).
RUNS = {
    "one_device": ["distribute.strategy=one_device", "train.precision=float32"],
    "mirrored": ["distribute.strategy=mirrored", "train.precision=float32"],
    "mirrored_mixed_float16": ["distribute.strategy=mirrored", "train.precision=mixed_float16"],
}


def main(workdir: pathlib.Path) -> None:
    import keras
    import tensorflow as tf

    from kerasmlp import losses
    from kerasmlp.train import train_and_evaluate
    from tests.events import scalars

    out = {}
    for name, overrides in RUNS.items():
        config = load_config(None, [*OVERRIDES, *overrides, f"data.data_dir={workdir / 'data'}"])
        run_dir = workdir / name
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
        }

    # Keras's `sum_over_batch_size` inside strategy.run: divided by the replica count?
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    y, z = tf.constant([0, 1]), tf.constant([[2.0, -1.0], [0.5, 0.3]])

    @tf.function
    def in_replica():
        return strategy.experimental_local_results(strategy.run(lambda: loss(y, z)))[0]

    out["keras_loss_in_replica_over_outside"] = float(in_replica()) / float(loss(y, z))
    print(json.dumps(out))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
