"""Subprocess for tests/test_metrics_distributed.py: metrics under a two-replica MirroredStrategy.

The two logical CPU devices must be configured before TensorFlow initialises,
hence a fresh process. For each metric this feeds the same weighted data, in
global batches of 64 (the last one partial), once to a metric created under
`MirroredStrategy.scope()` and updated inside `strategy.run` (each replica sees
half of each global batch), and once to a plain single-device metric. Then it
resets the distributed metrics and runs the distributed epoch again. It prints
one JSON object: the number of replicas, how many examples of the first global
batch each replica got, `results` (per metric `[distributed, single_device]`),
`after_reset` and `second_epoch` (per metric, distributed).
"""

import json
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from kerasmlp.console import collector_paused  # noqa: E402

with collector_paused():  # as kerasmlp's commands import TensorFlow: 2-3 s sooner
    import numpy as np
    import tensorflow as tf

(cpu,) = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

from kerasmlp import metrics  # noqa: E402

# tf.data warns about its options in graph mode; noise for this check.
warnings.filterwarnings("ignore", category=UserWarning)

NUM_CLASSES = 4
GLOBAL_BATCH = 64


def make_metrics():
    return {
        "sparse_categorical_accuracy": metrics.SparseCategoricalAccuracy(),
        "sparse_top_k_categorical_accuracy": metrics.SparseTopKCategoricalAccuracy(k=2),
        "confusion_matrix": metrics.ConfusionMatrix(NUM_CLASSES),
        "precision_micro": metrics.Precision(NUM_CLASSES, average="micro"),
        "recall_none": metrics.Recall(NUM_CLASSES, average=None),
        "f1_macro": metrics.F1Score(NUM_CLASSES, average="macro"),
        "f1_weighted": metrics.F1Score(NUM_CLASSES, average="weighted"),
        "expected_calibration_error": metrics.ExpectedCalibrationError(10, from_logits=True),
        "mean_squared_error": metrics.MeanSquaredError(),
        "root_mean_squared_error": metrics.RootMeanSquaredError(),
    }


def _value(metric):
    return np.asarray(metric.result()).tolist()


def main():
    rng = np.random.default_rng(7)
    n = 200  # 3 full global batches of 64 and one of 8: the last step has 4 examples per replica
    labels = rng.integers(0, NUM_CLASSES, size=n).astype("int32")
    logits = (2.0 * rng.standard_normal((n, NUM_CLASSES))).astype("float32")
    weights = rng.uniform(0.0, 2.0, size=n).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((labels, logits, weights)).batch(GLOBAL_BATCH)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        distributed = make_metrics()
    single = make_metrics()

    def update(ms, y, z, w):
        for name, metric in ms.items():
            if name.endswith("squared_error"):
                # A regression metric on the same tensors: one-hot labels vs logits.
                metric.update_state(tf.one_hot(y, NUM_CLASSES), z, sample_weight=w)
            else:
                metric.update_state(y, z, sample_weight=w)

    @tf.function
    def distributed_epoch(distributed_dataset):
        for y, z, w in distributed_dataset:
            strategy.run(lambda y, z, w: update(distributed, y, z, w), args=(y, z, w))

    @tf.function
    def single_epoch(ds):
        for y, z, w in ds:
            update(single, y, z, w)

    @tf.function
    def replica_batch_sizes(batch):
        sizes = strategy.run(lambda y, z, w: tf.shape(y)[0], args=batch)
        return strategy.experimental_local_results(sizes)

    first_batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    sizes = [int(s) for s in replica_batch_sizes(first_batch)]
    distributed_epoch(strategy.experimental_distribute_dataset(dataset))
    single_epoch(dataset)
    results = {name: [_value(distributed[name]), _value(single[name])] for name in distributed}

    # reset_state in cross-replica context must clear every replica's copy: a
    # second distributed epoch after it reads the same as the first.
    for metric in distributed.values():
        metric.reset_state()
    after_reset = {name: _value(metric) for name, metric in distributed.items()}
    distributed_epoch(strategy.experimental_distribute_dataset(dataset))
    second_epoch = {name: _value(metric) for name, metric in distributed.items()}

    out = {
        "num_replicas_in_sync": strategy.num_replicas_in_sync,
        "first_batch_sizes_per_replica": sizes,
        "results": results,
        "after_reset": after_reset,
        "second_epoch": second_epoch,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
