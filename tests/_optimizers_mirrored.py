"""Subprocess for tests/test_optimizers.py: the fused Adam under a two-replica MirroredStrategy.

The two logical CPU devices must be configured before TensorFlow initialises,
hence a fresh process. The same model, data and global batches train for three
steps under `MirroredStrategy` with `kerasmlp.optimizers.Adam` and with
`keras.optimizers.Adam`; the last line printed says how many replicas there
were, whether the fused kernel is in the step's graph (and not in Keras's), and
whether the weights of the two agree and are the same on both replicas.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from kerasmlp.console import collector_paused  # noqa: E402

with collector_paused():  # as kerasmlp's commands import TensorFlow: 2-3 s sooner
    import keras
    import numpy as np
    import tensorflow as tf

(cpu,) = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

from kerasmlp import optimizers  # noqa: E402


def train(optimizer_class, replicas=2, **options):
    """Three steps of a tiny model; with `replicas` 1 on one device, outside any strategy."""
    devices = ["/cpu:0", "/cpu:1"][:replicas]
    if replicas > 1:
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        strategy = tf.distribute.get_strategy()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 8, 5)).astype("float32")
    y = rng.normal(size=(3, 8, 2)).astype("float32")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((5,)), keras.layers.Dense(4, "relu"), keras.layers.Dense(2)]
        )
        optimizer = optimizer_class(0.05, **options)
        optimizer.build(model.trainable_variables)

    def replica_step(features, labels):
        context = tf.distribute.get_replica_context()
        half = tf.shape(features)[0] // replicas
        start = context.replica_id_in_sync_group * half
        with tf.GradientTape() as tape:
            outputs = model(features[start : start + half], training=True)
            loss = tf.reduce_sum((outputs - labels[start : start + half]) ** 2) / 8.0
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))

    @tf.function
    def step(features, labels):
        strategy.run(replica_step, args=(features, labels))

    for features, labels in zip(x, y, strict=True):
        step(tf.constant(features), tf.constant(labels))
    graph = step.get_concrete_function(tf.constant(x[0]), tf.constant(y[0])).graph
    ops = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():
        ops |= {node.op for node in function.definition.node_def}
    copies = [
        [c.numpy() for c in strategy.experimental_local_results(v.value)]
        for v in model.trainable_variables
    ]
    return strategy.num_replicas_in_sync, "ResourceApplyAdam" in ops, copies


replicas, fused, ours = train(optimizers.Adam)
_, keras_fused, theirs = train(keras.optimizers.Adam)
same_on_replicas = all(np.array_equal(c[0], c[1]) for c in ours)
# To 1e-4, as tests/test_optimizers.py compares with Keras's class on one device.
agree = all(
    np.allclose(a[0], b[0], rtol=1e-4, atol=1e-6) for a, b in zip(ours, theirs, strict=True)
)
print(
    f"replicas {replicas} | fused kernel {'used' if fused and not keras_fused else 'NOT used'} | "
    f"{'equal' if same_on_replicas and agree else 'DIFFERENT'}"
)

# Gradient clipping (kerasmlp.optimizers._ClipSummedGradients): the replicas' summed
# gradients are clipped, so a mirrored step equals one device's on the whole batch, where
# Keras's class clips each replica's part before the sum (measured, Keras 3.15).
# Reference: Keras's class on one device, same arguments, same batches.
clipped = {}
for name, options in {
    "clipvalue": {"clipvalue": 0.02},
    "clipnorm": {"clipnorm": 0.05},
    "global_clipnorm": {"global_clipnorm": 0.05},
}.items():
    _, _, ours = train(optimizers.SGD, momentum=0.5, **options)
    _, _, one_device = train(keras.optimizers.SGD, replicas=1, momentum=0.5, **options)
    _, _, keras_mirrored = train(keras.optimizers.SGD, momentum=0.5, **options)
    _, _, unclipped = train(keras.optimizers.SGD, replicas=1, momentum=0.5)
    equal = all(
        np.allclose(a[0], b[0], rtol=1e-5, atol=1e-7) and np.array_equal(a[0], a[1])
        for a, b in zip(ours, one_device, strict=True)
    )
    keras_differs = not all(
        np.allclose(a[0], b[0], rtol=1e-5, atol=1e-7)
        for a, b in zip(keras_mirrored, one_device, strict=True)
    )
    bites = not all(
        np.allclose(a[0], b[0], rtol=1e-5, atol=1e-7)
        for a, b in zip(unclipped, one_device, strict=True)
    )
    clipped[name] = f"{'equal' if equal else 'DIFFERENT'}"
    clipped[name] += f"{', keras per replica differs' if keras_differs else ''}"
    clipped[name] += f"{'' if bites else ', NOT clipped'}"
print(" | ".join(f"{name} {result}" for name, result in clipped.items()))
