"""Tests for kerasmlp.optimizers: Adam and AdamW with a fused update; clipping after the sum.

References: Adam written in numpy here (float64 arithmetic, with the betas as the
variables' dtype holds them); Keras's own `keras.optimizers.Adam` / `AdamW` on the
same variables and gradients (in float32 to 1e-4: Keras rounds Python's
`1 - beta_2` where the kernel computes it from float32's 0.99899995, see the
module's docstring); and Keras's class bit for bit where the update falls back to
Keras's ops.
"""

import doctest
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasmlp import optimizers

SHAPES = [(5, 4), (4,), (4, 3)]
STEPS = 6
# Against Keras's class. float32: `1 - beta_2` differs by 4.7e-5 relative (the module's
# docstring), so v by as much and the updates by about half. float64: Keras casts the
# Python betas to float32 before raising them to t (`ops.cast` of a float), so its updates
# are about 1e-5 relative off the formula's (the first, measured: 6.7e-6).
KERAS_TOLERANCE = {"float32": dict(rtol=1e-4, atol=1e-7), "float64": dict(rtol=1e-4, atol=1e-7)}
# Against Adam in numpy with the same float32 betas: float32 rounding over six steps.
NUMPY_TOLERANCE = {"float32": dict(rtol=2e-6, atol=1e-7), "float64": dict(rtol=1e-12, atol=1e-15)}


def _problem(dtype, seed=0):
    """Initial weights and one gradient list per step, from a fixed seed."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=shape).astype(dtype) for shape in SHAPES]
    gradients = [
        [rng.normal(size=shape).astype(dtype) * 10.0 ** rng.integers(-3, 2) for shape in SHAPES]
        for _ in range(STEPS)
    ]
    return weights, gradients


def _apply_steps(optimizer, weights, gradients, *, compiled):
    """Applies each step's gradients to new variables holding `weights`; returns them."""
    variables = [keras.Variable(w, dtype=w.dtype) for w in weights]
    optimizer.build(variables)

    def step(grads):
        optimizer.apply_gradients(zip(grads, variables, strict=True))

    if compiled:
        step = tf.function(step)
    for grads in gradients:
        step([tf.constant(g) for g in grads])
    return variables


def _train(optimizer, weights, gradients, *, compiled):
    """Applies each step's gradients; returns the weights and the slots (every m, then
    every v), as numpy."""
    variables = _apply_steps(optimizer, weights, gradients, compiled=compiled)
    slots = [*optimizer._momentums, *optimizer._velocities]
    return [v.numpy() for v in variables], [s.numpy() for s in slots]


def _schedule():
    # A decaying rate, as kerasmlp trains: the learning rate reaches the kernel per step.
    return keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("Adam", {}),
        ("Adam", {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}),
        ("AdamW", {"weight_decay": 0.1}),
    ],
    ids=["adam", "adam_betas", "adamw"],
)
def test_matches_keras(name, kwargs, dtype, compiled):
    weights, gradients = _problem(dtype)
    ours = _train(
        getattr(optimizers, name)(_schedule(), **kwargs), weights, gradients, compiled=compiled
    )
    # Reference: Keras's own class of the same name, same arguments.
    theirs = _train(
        getattr(keras.optimizers, name)(_schedule(), **kwargs),
        weights,
        gradients,
        compiled=compiled,
    )
    for got, want in zip(ours[0] + ours[1], theirs[0] + theirs[1], strict=True):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_allclose(got, want, **KERAS_TOLERANCE[dtype])
    # The weights moved: the comparison is not between two untouched copies.
    assert not np.allclose(ours[0][0], weights[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_adam_written_in_numpy(dtype):
    weights, gradients = _problem(dtype, seed=1)
    # The betas and epsilon as the kernel sees them: rounded to the variables' dtype.
    beta_1, beta_2, epsilon = (float(np.dtype(dtype).type(b)) for b in (0.9, 0.999, 1e-7))
    # Reference: Adam by its formula (Kingma & Ba, with Keras's epsilon outside the
    # root), in float64 arithmetic.
    expected = [w.astype("float64") for w in weights]
    m = [np.zeros_like(w) for w in expected]
    v = [np.zeros_like(w) for w in expected]
    for t, grads in enumerate(gradients, start=1):
        lr = float(_schedule()(t - 1))  # the rate the optimizer reads: float32, at step t - 1
        alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        for i, g in enumerate(grads):
            g = g.astype("float64")
            m[i] = m[i] + (g - m[i]) * (1 - beta_1)
            v[i] = v[i] + (g * g - v[i]) * (1 - beta_2)
            expected[i] = expected[i] - m[i] * alpha / (np.sqrt(v[i]) + epsilon)
    got, slots = _train(optimizers.Adam(_schedule()), weights, gradients, compiled=True)
    for g, e in zip(got + slots, expected + m + v, strict=True):
        np.testing.assert_allclose(g, e, **NUMPY_TOLERANCE[dtype])


def _op_types(optimizer, variable, gradient):
    optimizer.build([variable])
    function = tf.function(lambda g: optimizer.apply_gradients([(g, variable)]))
    graph = function.get_concrete_function(tf.TensorSpec(gradient.shape, gradient.dtype)).graph
    return {op.type for op in graph.get_operations()}


def test_the_update_is_the_fused_kernel():
    variable = keras.Variable(np.ones((3, 2), "float32"))
    ops = _op_types(optimizers.Adam(), variable, tf.ones((3, 2)))
    # Keras's update ends with `variable.assign_sub(...)`; the fused kernel writes all three.
    assert "ResourceApplyAdam" in ops and "AssignSubVariableOp" not in ops
    keras_variable = keras.Variable(np.ones((3, 2), "float32"))
    keras_ops = _op_types(keras.optimizers.Adam(), keras_variable, tf.ones((3, 2)))
    assert "ResourceApplyAdam" not in keras_ops and "AssignSubVariableOp" in keras_ops


@pytest.mark.parametrize(
    "kwargs, dtype",
    [({"amsgrad": True}, "float32"), ({}, "float16")],
    ids=["amsgrad", "float16_variable"],
)
def test_falls_back_to_keras_bit_for_bit(kwargs, dtype):
    weights, gradients = _problem(dtype, seed=2)
    ours = _train(optimizers.Adam(_schedule(), **kwargs), weights, gradients, compiled=True)
    theirs = _train(keras.optimizers.Adam(_schedule(), **kwargs), weights, gradients, compiled=True)
    for got, want in zip(ours[0] + ours[1], theirs[0] + theirs[1], strict=True):
        np.testing.assert_array_equal(got, want)
    variable = keras.Variable(np.ones((2,), dtype))
    assert "ResourceApplyAdam" not in _op_types(
        optimizers.Adam(**kwargs), variable, tf.ones((2,), dtype)
    )


def test_sparse_gradients_take_keras_update():
    # An embedding's gradient is tf.IndexedSlices, which the dense kernel does not take.
    weights = np.arange(12, dtype="float32").reshape(4, 3)
    rows = tf.IndexedSlices(tf.ones((2, 3)), indices=tf.constant([0, 2]), dense_shape=(4, 3))
    results = []
    for optimizer in (optimizers.Adam(0.1), keras.optimizers.Adam(0.1)):
        variable = keras.Variable(weights)
        optimizer.apply_gradients([(rows, variable)])
        results.append(variable.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], weights)


def test_loss_scaling_skips_a_step_that_overflows():
    # As keras.optimizers.LossScaleOptimizer documents: a non-finite gradient skips
    # the update and halves the scale; a finite one is applied after unscaling.
    results = []
    for inner in (optimizers.Adam(0.1), keras.optimizers.Adam(0.1)):
        optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=4.0)
        variable = keras.Variable(np.array([1.0, 2.0], "float32"))
        optimizer.apply_gradients([(tf.constant([np.inf, 1.0]), variable)])
        skipped = (variable.numpy().tolist(), float(optimizer.dynamic_scale))
        optimizer.apply_gradients([(tf.constant([2.0, -2.0]), variable)])
        results.append((skipped, variable.numpy()))
    (skipped, applied), (keras_skipped, keras_applied) = results
    assert skipped == keras_skipped == ([1.0, 2.0], 2.0)
    np.testing.assert_allclose(applied, keras_applied, rtol=1e-6)
    np.testing.assert_allclose(applied, [0.9, 2.1], rtol=1e-6)  # by hand: Adam's first step is lr


def test_checkpoints_restore_across_keras_and_kerasmlp(tmp_path):
    # Same slots under the same names: a checkpoint of Keras's Adam restores into ours.
    weights, gradients = _problem("float32", seed=3)
    variables = [keras.Variable(w) for w in weights]
    theirs = keras.optimizers.Adam(_schedule())
    theirs.build(variables)
    theirs.apply_gradients(zip([tf.constant(g) for g in gradients[0]], variables, strict=True))
    path = tf.train.Checkpoint(optimizer=theirs, variables=variables).save(str(tmp_path / "ckpt"))
    restored_variables = [keras.Variable(np.zeros_like(w)) for w in weights]
    ours = optimizers.Adam(_schedule())
    ours.build(restored_variables)
    restored = tf.train.Checkpoint(optimizer=ours, variables=restored_variables).restore(path)
    restored.assert_consumed()
    for got, want in zip(ours.variables, theirs.variables, strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert int(ours.iterations) == 1


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_config_round_trip_and_a_saved_model(name, tmp_path):
    optimizer = getattr(optimizers, name)(learning_rate=0.02, beta_1=0.8, name="opt")
    config = optimizer.get_config()
    keras_config = getattr(keras.optimizers, name)(learning_rate=0.02, beta_1=0.8, name="opt")
    assert config == keras_config.get_config()
    assert type(getattr(optimizers, name).from_config(config)) is getattr(optimizers, name)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(reloaded.optimizer) is getattr(optimizers, name)
    assert reloaded.optimizer.get_config()["beta_1"] == pytest.approx(0.8)


def _variables_after(optimizer, weights, gradients, *, compiled):
    """Applies each step's gradients; the weights, then every variable of the optimizer."""
    variables = _apply_steps(optimizer, weights, gradients, compiled=compiled)
    return [v.numpy() for v in variables] + [v.numpy() for v in optimizer.variables]


# The config's optimizer options (kerasmlp.config.OptimizerConfig), each optimizer with
# the ones it takes away from Keras's defaults, and one clipping key each. The gradients
# span 1e-3 to 10: every clip below cuts some of them and leaves others.
OPTIONS = [
    ("Adam", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-5, "clipnorm": 0.5}),
    ("AdamW", {"weight_decay": 0.1, "beta_1": 0.5, "global_clipnorm": 2.0}),
    ("RMSprop", {"momentum": 0.9, "epsilon": 1e-3, "weight_decay": 0.01, "clipvalue": 0.1}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01, "global_clipnorm": 2.0}),
    ("SGD", {"momentum": 0.5, "clipvalue": 0.1}),
]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "name, kwargs", OPTIONS, ids=["adam", "adamw", "rmsprop", "sgd_nesterov", "sgd_clipvalue"]
)
def test_options_and_clipping_match_keras(name, kwargs, dtype, compiled):
    weights, gradients = _problem(dtype, seed=4)
    ours = _variables_after(
        getattr(optimizers, name)(_schedule(), **kwargs), weights, gradients, compiled=compiled
    )
    # Reference: Keras's own class of the same name, same arguments: on one device the
    # clipping after the replicas' sum is Keras's clipping of the same gradients.
    theirs = _variables_after(
        getattr(keras.optimizers, name)(_schedule(), **kwargs),
        weights,
        gradients,
        compiled=compiled,
    )
    for got, want in zip(ours, theirs, strict=True):
        if name.startswith("Adam"):  # the fused kernel: to the module's tolerance
            np.testing.assert_allclose(got, want, **KERAS_TOLERANCE[dtype])
        else:  # Keras's update itself, to float rounding: a tf.function's graph orders
            # the clip and the decay otherwise (measured: equal in float32; in float64 one
            # momentum of 3e-4 off by 1e-15 relative, after cancellation)
            np.testing.assert_allclose(got, want, rtol={"float32": 1e-6, "float64": 1e-12}[dtype])
    # The clipping took effect: without it, Keras's class ends elsewhere.
    unclipped = {k: v for k, v in kwargs.items() if "clip" not in k}
    free = _variables_after(
        getattr(keras.optimizers, name)(_schedule(), **unclipped),
        weights,
        gradients,
        compiled=compiled,
    )
    assert not all(np.allclose(a, b, rtol=1e-3) for a, b in zip(free, theirs, strict=True))


def test_rmsprop_and_sgd_are_keras_own_but_for_the_clipping():
    for name in ("RMSprop", "SGD"):
        ours, theirs = getattr(optimizers, name), getattr(keras.optimizers, name)
        assert issubclass(ours, theirs)
        # Only where the clipping happens is overridden; the update is Keras's.
        assert ours.update_step is theirs.update_step
        assert ours.build is theirs.build
        config = ours(0.01, momentum=0.9, clipnorm=1.0, name="opt").get_config()
        assert config == theirs(0.01, momentum=0.9, clipnorm=1.0, name="opt").get_config()
        assert type(ours.from_config(config)) is ours


def test_rmsprop_adds_epsilon_under_the_root_adam_outside_it():
    # Reference: the two formulas by hand, one step from zero slots, where the README's
    # optimizer.epsilon row tells them apart: RMSprop divides by sqrt(v + epsilon), with
    # v = (1 - rho) g**2; Adam by sqrt(v) + epsilon, with v = (1 - beta_2) g**2 (Keras's
    # "epsilon hat": the bias correction goes into the rate, alpha = lr * sqrt(1 - beta_2)
    # / (1 - beta_1), and m = (1 - beta_1) g).
    lr, g, epsilon, rho, beta_2 = 0.1, 0.02, 1e-3, 0.9, 0.999
    steps = {}
    for name in ("RMSprop", "Adam"):
        variable = keras.Variable(np.array([1.0], "float64"), dtype="float64")
        optimizer = getattr(optimizers, name)(learning_rate=lr, epsilon=epsilon)
        optimizer.apply_gradients([(np.array([g], "float64"), variable)])
        steps[name] = 1.0 - float(variable.numpy()[0])
    np.testing.assert_allclose(steps["RMSprop"], lr * g / np.sqrt((1 - rho) * g**2 + epsilon))
    root = np.sqrt(1 - beta_2)
    np.testing.assert_allclose(steps["Adam"], lr * root * g / (root * g + epsilon), rtol=1e-6)


def test_docstring_examples_run():
    result = doctest.testmod(optimizers)
    assert result.attempted >= 4
    assert result.failed == 0


def test_matches_keras_under_mirrored_strategy():
    # Two logical CPU devices must be set before TensorFlow starts: a fresh process.
    script = pathlib.Path(__file__).with_name("_optimizers_mirrored.py")
    repo = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    fused, clipping = proc.stdout.strip().splitlines()[-2:]
    assert fused == "replicas 2 | fused kernel used | equal"
    # Clipping sees the replicas' summed gradients: equal to Keras's class on one device
    # with the whole batch, where Keras's class under the strategy clips each replica's part.
    assert clipping == " | ".join(
        f"{key} equal, keras per replica differs"
        for key in ("clipvalue", "clipnorm", "global_clipnorm")
    )
