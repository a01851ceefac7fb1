"""Tests for kerasmlp.losses: equal to Keras, stable at extreme inputs, clear on misuse, reloadable.

Where each expected value comes from is said next to it: a Keras built-in class (the
reference for every loss that has one), numpy written here, or a value worked out by hand.
"""

import doctest
import inspect
import json
import math
import os
import pathlib
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasmlp import losses

BATCH, CLASSES = 4, 3
RTOL = {"float32": 1e-6, "float64": 1e-12}
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "none"]
SAMPLE_WEIGHTS = {
    "no_weight": None,
    "scalar_weight": 0.7,
    "per_example_weight": np.array([0.5, 2.0, 0.0, 1.25]),
    "zero_weights": np.zeros(BATCH),
}


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _one_hot(labels, depth=CLASSES):
    return np.eye(depth)[labels]


def _data(kind, rng):
    """(y_true, y_pred) in float64 numpy for one kind of loss input; cast by the caller."""
    normal = rng.normal(size=(BATCH, CLASSES))
    labels = rng.integers(0, CLASSES, size=BATCH)
    if kind == "regression":
        return rng.normal(size=(BATCH, CLASSES)), normal
    if kind == "binary_probs":
        return rng.integers(0, 2, size=(BATCH, CLASSES)), rng.uniform(0.05, 0.95, (BATCH, CLASSES))
    if kind == "binary_logits":
        return rng.integers(0, 2, size=(BATCH, CLASSES)), 3 * normal
    if kind == "onehot_probs":
        return _one_hot(labels), _softmax(normal)
    if kind == "onehot_logits":
        return _one_hot(labels), 3 * normal
    if kind == "sparse_probs":
        return labels, _softmax(normal)
    if kind == "sparse_logits":
        return labels, 3 * normal
    if kind == "sparse_ignore":  # label -1 is ignored; the first example always is
        labels[0] = -1
        return labels, 3 * normal
    if kind == "distributions":
        return _softmax(rng.normal(size=(BATCH, CLASSES))), _softmax(normal)
    if kind == "signed":
        return rng.choice([-1.0, 1.0], size=(BATCH, CLASSES)), normal
    if kind == "binary_scores":  # {0, 1} labels, which Keras maps to {-1, 1}
        return rng.integers(0, 2, size=(BATCH, CLASSES)), normal
    raise ValueError(kind)


def _sparse_reference(**kwargs):
    """Keras has no sparse label smoothing: its CategoricalCrossentropy on one-hot labels is."""
    cce = keras.losses.CategoricalCrossentropy(**kwargs)

    def loss(y_true, y_pred, sample_weight=None):
        one_hot = tf.one_hot(tf.cast(y_true, "int32"), CLASSES, dtype=y_pred.dtype)
        return cce(one_hot, y_pred, sample_weight=sample_weight)

    return loss


# (id, our class, kwargs, Keras reference factory, data kind)
CASES = [
    ("mse", losses.MeanSquaredError, {}, keras.losses.MeanSquaredError, "regression"),
    ("mae", losses.MeanAbsoluteError, {}, keras.losses.MeanAbsoluteError, "regression"),
    ("bce_probs", losses.BinaryCrossentropy, {}, keras.losses.BinaryCrossentropy, "binary_probs"),
    (
        "bce_logits_smoothed",
        losses.BinaryCrossentropy,
        {"from_logits": True, "label_smoothing": 0.1},
        keras.losses.BinaryCrossentropy,
        "binary_logits",
    ),
    (
        "cce_probs",
        losses.CategoricalCrossentropy,
        {},
        keras.losses.CategoricalCrossentropy,
        "onehot_probs",
    ),
    (
        "cce_logits_smoothed",
        losses.CategoricalCrossentropy,
        {"from_logits": True, "label_smoothing": 0.1},
        keras.losses.CategoricalCrossentropy,
        "onehot_logits",
    ),
    (
        "scce_probs",
        losses.SparseCategoricalCrossentropy,
        {},
        keras.losses.SparseCategoricalCrossentropy,
        "sparse_probs",
    ),
    (
        "scce_logits",
        losses.SparseCategoricalCrossentropy,
        {"from_logits": True},
        keras.losses.SparseCategoricalCrossentropy,
        "sparse_logits",
    ),
    (
        "scce_ignore_class",
        losses.SparseCategoricalCrossentropy,
        {"from_logits": True, "ignore_class": -1},
        keras.losses.SparseCategoricalCrossentropy,
        "sparse_ignore",
    ),
    (
        "scce_logits_smoothed",
        losses.SparseCategoricalCrossentropy,
        {"from_logits": True, "label_smoothing": 0.1},
        _sparse_reference,
        "sparse_logits",
    ),
    ("kld", losses.KLDivergence, {}, keras.losses.KLDivergence, "distributions"),
    ("hinge_signed", losses.Hinge, {}, keras.losses.Hinge, "signed"),
    ("hinge_binary", losses.Hinge, {}, keras.losses.Hinge, "binary_scores"),
    ("squared_hinge", losses.SquaredHinge, {}, keras.losses.SquaredHinge, "binary_scores"),
    ("categorical_hinge", losses.CategoricalHinge, {}, keras.losses.CategoricalHinge, "signed"),
]
CASE_IDS = [case[0] for case in CASES]


def _values_and_grads(make_loss, y_true, y_pred, dtype, graph):
    """{"reduction/weight": (value, d value / d y_pred)} for each reduction and sample weight.

    Eagerly: all four sample weights. In a `tf.function` (traced once for all combinations,
    which keeps this file fast): no weight and per-example weights. The weighting itself is
    the Keras base class's code in both modes; what graph mode adds is our `call` traced.
    """
    weight_ids = list(SAMPLE_WEIGHTS) if not graph else ["no_weight", "per_example_weight"]
    weights = {
        weight_id: None
        if SAMPLE_WEIGHTS[weight_id] is None
        else tf.constant(SAMPLE_WEIGHTS[weight_id], dtype)
        for weight_id in weight_ids
    }

    def compute(y_true, y_pred):
        results = {}
        for reduction in REDUCTIONS:
            loss = make_loss(reduction)
            for weight_id, weight in weights.items():
                with tf.GradientTape() as tape:
                    tape.watch(y_pred)
                    value = loss(y_true, y_pred, sample_weight=weight)
                results[f"{reduction}/{weight_id}"] = (value, tape.gradient(value, y_pred))
        return results

    if graph:
        compute = tf.function(compute, autograph=False)
    return {key: (v.numpy(), g.numpy()) for key, (v, g) in compute(y_true, y_pred).items()}


def _assert_close(actual, expected, rtol, what):
    # Relative to the array's largest entry, so that entries that cancel to ~0 do not demand
    # more digits than the float type carries.
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_equals_keras_for_every_reduction_and_sample_weight(case, dtype, graph):
    """Values and gradients equal the Keras class (the reference) for every reduction and weight."""
    name, cls, kwargs, reference_cls, kind = case
    rng = np.random.default_rng(sum(map(ord, name)))
    y_true, y_pred = _data(kind, rng)
    y_true = tf.constant(y_true, dtype="int32" if kind.startswith("sparse") else dtype)
    y_pred = tf.constant(y_pred, dtype=dtype)
    ours = _values_and_grads(
        lambda reduction: cls(reduction=reduction, dtype=dtype, **kwargs),
        y_true,
        y_pred,
        dtype,
        graph,
    )
    theirs = _values_and_grads(
        lambda reduction: reference_cls(reduction=reduction, dtype=dtype, **kwargs),
        y_true,
        y_pred,
        dtype,
        graph,
    )
    assert sorted(ours) == sorted(theirs) and len(ours) >= 2 * len(REDUCTIONS)
    for key, (value, grad) in ours.items():
        expected_value, expected_grad = theirs[key]
        assert value.dtype == np.dtype(dtype), key
        assert value.shape == expected_value.shape, key
        _assert_close(value, expected_value, RTOL[dtype], f"{name} value, {key}, {dtype}")
        _assert_close(grad, expected_grad, RTOL[dtype], f"{name} gradient, {key}, {dtype}")


# ----------------------------------------------------------------------------------------------
# Stability
# ----------------------------------------------------------------------------------------------

EXTREME_LOGITS = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]], np.float32)
EXTREME_LABELS = np.array([1, 2, 2])


def _log_softmax64(x):
    # numpy in float64: x - logsumexp(x), with the max subtracted first.
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("sparse", [False, True], ids=["categorical", "sparse"])
def test_softmax_crossentropy_is_finite_and_exact_at_1e4_logits(sparse):
    logits = tf.constant(EXTREME_LOGITS)
    y_true = EXTREME_LABELS if sparse else _one_hot(EXTREME_LABELS).astype(np.float32)
    fn = losses.sparse_categorical_crossentropy if sparse else losses.categorical_crossentropy
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = fn(y_true, logits, from_logits=True)
    grad = tape.gradient(value, logits).numpy()
    # numpy: -log_softmax at the label; e.g. row 0 is 1e4 - (-1e4) = 2e4 by hand.
    expected = -_log_softmax64(EXTREME_LOGITS)[np.arange(3), EXTREME_LABELS]
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-6)
    assert value.numpy()[0] == pytest.approx(2e4)
    # numpy: softmax(logits) - one_hot, e.g. row 1 is [0, 0.5, 0.5] - [0, 0, 1] by hand.
    np.testing.assert_allclose(grad, _softmax(EXTREME_LOGITS) - _one_hot(EXTREME_LABELS), atol=1e-7)


def test_binary_crossentropy_is_finite_and_exact_at_1e4_logits():
    logits = tf.constant([[1e4, -1e4, 1e4, -1e4]])
    labels = np.array([[1.0, 0.0, 0.0, 1.0]], np.float32)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = losses.binary_crossentropy(labels, logits, from_logits=True)
    grad = tape.gradient(value, logits).numpy()
    # By hand: two right answers cost 0, two wrong ones cost 1e4 each; mean over 4 is 5e3.
    assert value.numpy() == pytest.approx([5e3])
    # By hand: d/dx of mean(bce) is (sigmoid(x) - y) / 4.
    np.testing.assert_allclose(grad, [[0.0, 0.0, 0.25, -0.25]], atol=1e-7)


@pytest.mark.parametrize(
    "policy,gap,rtol", [("mixed_float16", 2.0**-11, 1e-3), ("mixed_bfloat16", 2.0**-8, 1e-2)]
)
def test_binary_crossentropy_of_certain_probabilities_is_finite_in_16_bit(policy, gap, rtol):
    # Keras clips p to 1 - 1e-7, which float16 and bfloat16 round to 1: Keras 3.15's own loss
    # gives NaN here. kerasmlp clips to the largest value below 1, 1 - gap (the dtype's
    # spacing below 1: 10 and 7 mantissa bits).
    loss = losses.BinaryCrossentropy(dtype=policy)
    y_true = np.array([[1.0, 0.0, 1.0, 0.0]])

    for call in (loss, tf.function(loss)):  # eager and traced
        value = float(call(y_true, y_true))
        # By hand: each y = 1 at p = 1 costs -log(1 - gap); each y = 0 at p = 0 costs
        # -log(1 - 1e-7), which is 0 once 1 - 1e-7 rounds to 1 (float16) and 1e-7 in
        # bfloat16 (too small to show at its precision); the mean over 4 entries is half.
        assert value == pytest.approx(-np.log1p(-gap) / 2, rel=rtol)
    # Away from 0 and 1 the clip does not bite: numpy's -mean(y log p + (1 - y) log(1 - p)).
    p = np.array([[0.75, 0.25, 0.5, 0.5]])
    expected = -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
    assert float(loss(y_true, p)) == pytest.approx(expected, rel=rtol)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["sum", "sum_over_batch_size"])
@pytest.mark.parametrize("sparse", [False, True], ids=["categorical", "sparse"])
def test_softmax_crossentropy_gradient_is_softmax_minus_targets(sparse, reduction, label_smoothing):
    rng = np.random.default_rng(0)
    logits = tf.constant(rng.normal(size=(BATCH, CLASSES)) * 4)
    labels = rng.integers(0, CLASSES, size=BATCH)
    cls = losses.SparseCategoricalCrossentropy if sparse else losses.CategoricalCrossentropy
    loss = cls(
        from_logits=True, label_smoothing=label_smoothing, reduction=reduction, dtype="float64"
    )
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = loss(labels if sparse else _one_hot(labels), logits)
    # numpy: softmax(logits) - smoothed one-hot targets, divided by the batch for a mean.
    targets = _one_hot(labels) * (1 - label_smoothing) + label_smoothing / CLASSES
    expected = (_softmax(logits.numpy()) - targets) / (BATCH if reduction != "sum" else 1)
    np.testing.assert_allclose(tape.gradient(value, logits).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(
    "fn,kwargs",
    [
        (losses.categorical_crossentropy, {"from_logits": True, "label_smoothing": 0.1}),
        (losses.categorical_crossentropy, {}),
        (losses.binary_crossentropy, {"from_logits": True}),
        (losses.kl_divergence, {}),
    ],
    ids=["cce_logits", "cce_probs", "bce_logits", "kld"],
)
def test_gradient_matches_finite_differences(fn, kwargs):
    rng = np.random.default_rng(1)
    y_true = _one_hot(rng.integers(0, CLASSES, size=2))
    y_pred = _softmax(rng.normal(size=(2, CLASSES))) if not kwargs else rng.normal(size=(2, 3))
    # tf.test.compute_gradient: central differences in float64 against the autodiff Jacobian.
    theoretical, numerical = tf.test.compute_gradient(
        lambda p: fn(y_true, p, **kwargs), [y_pred], delta=1e-6
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


@pytest.mark.parametrize(
    "loss,y_true",
    [
        (losses.BinaryCrossentropy(), [[0.0, 1.0, 1.0, 0.0]]),
        (losses.CategoricalCrossentropy(), [[1.0, 0.0, 0.0, 0.0]]),
        (losses.SparseCategoricalCrossentropy(), [1]),
        (losses.KLDivergence(), [[0.0, 1.0, 0.0, 0.0]]),
    ],
    ids=["bce", "cce", "scce", "kld"],
)
def test_probabilities_of_exactly_zero_and_one_are_finite(loss, y_true):
    y_pred = tf.constant([[0.0, 1.0, 0.0, 0.0]])  # right on class 1, certain and wrong elsewhere
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        value = loss(y_true, y_pred)
    assert np.isfinite(value.numpy())
    assert np.all(np.isfinite(tape.gradient(value, y_pred).numpy()))


def test_probabilities_from_a_softmax_layer_use_its_logits():
    # Keras does this too (its TF backend's `_get_logits`): a softmax output of logits 1e4
    # apart rounds to exactly 0 and 1, but the loss is computed from the logits and is exact.
    logits = tf.constant(EXTREME_LOGITS)
    probs = keras.activations.softmax(logits)
    value = losses.sparse_categorical_crossentropy(EXTREME_LABELS, probs)
    expected = -_log_softmax64(EXTREME_LOGITS)[np.arange(3), EXTREME_LABELS]  # numpy
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Pure functions checked by hand or with numpy
# ----------------------------------------------------------------------------------------------


def test_entropy_in_bits_by_hand():
    assert float(losses.entropy([0.25] * 4, base=2)) == 2.0  # log2(4) = 2 bits, by hand
    assert float(losses.entropy([1.0, 0.0], base=2)) == 0.0  # 0 log 0 = 0: a certain outcome
    assert float(losses.entropy([0.5, 0.5])) == pytest.approx(math.log(2))  # nats, by hand


def test_cross_entropy_is_entropy_plus_kl_numpy():
    rng = np.random.default_rng(2)
    p, q = _softmax(rng.normal(size=(5, 4))), _softmax(rng.normal(size=(5, 4)))
    kl = np.sum(p * np.log(p / q), axis=-1)  # numpy
    h = -np.sum(p * np.log(p), axis=-1)  # numpy
    np.testing.assert_allclose(losses.cross_entropy(p, q, base=2).numpy(), (h + kl) / np.log(2))
    np.testing.assert_allclose(losses.entropy(p.T, axis=0).numpy(), h)


def test_sparse_categorical_crossentropy_on_another_axis_numpy():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, CLASSES, 5))  # channels-first
    labels = rng.integers(0, CLASSES, size=(2, 5))
    value = losses.sparse_categorical_crossentropy(labels, logits, from_logits=True, axis=1)
    log_probs = _log_softmax64(np.moveaxis(logits, 1, -1))  # numpy
    expected = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)


def test_label_smoothing_on_another_axis_spreads_over_that_axis_numpy():
    # Keras divides the smoothing by the last axis's size (2 here), not the classes' (3).
    rng = np.random.default_rng(4)
    labels = np.moveaxis(np.eye(3)[rng.integers(0, 3, size=(4, 2))], -1, 1)  # (4, 3, 2)
    logits = rng.normal(size=(4, 3, 2))
    value = losses.categorical_crossentropy(
        labels, logits, from_logits=True, label_smoothing=0.2, axis=1
    )
    smoothed = np.moveaxis(labels, 1, -1) * 0.8 + 0.2 / 3  # numpy, over the 3 classes
    expected = -(smoothed * _log_softmax64(np.moveaxis(logits, 1, -1))).sum(axis=-1)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)


def test_ignore_class_averages_over_the_other_entries_by_hand():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    # By hand: the two kept entries cost log(2) each (two equal logits); the mean is log(2).
    assert float(loss([0, 255, 1], np.zeros((3, 2)))) == pytest.approx(math.log(2))


@pytest.mark.parametrize(
    "kwargs", [{}, {"ignore_class": 1}, {"label_smoothing": 0.1}], ids=["plain", "ignore", "smooth"]
)
def test_sparse_crossentropy_with_a_class_axis_known_only_when_run_equals_keras(kwargs):
    # Scores of each example against the batch's own items, `(batch, batch)`, the label its own
    # index: in a `tf.function` over a dataset the class axis is None until the graph runs.
    # Reference: Keras's SparseCategoricalCrossentropy, or its CategoricalCrossentropy on one-hot
    # targets for label smoothing (which Keras's sparse loss lacks).
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 3)).astype("float32")
    labels = np.array([0, 1, 2])
    spec = [tf.TensorSpec((None,), tf.int64), tf.TensorSpec((None, None), tf.float32)]
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, **kwargs)
    value = tf.function(lambda y, p: loss(y, p), input_signature=spec)(labels, scores)
    if "label_smoothing" in kwargs:
        expected = keras.losses.CategoricalCrossentropy(True, 0.1)(_one_hot(labels), scores)
    else:
        expected = keras.losses.SparseCategoricalCrossentropy(True, **kwargs)(labels, scores)
    np.testing.assert_allclose(value.numpy(), expected.numpy(), rtol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`y_true`.*\[0, num_classes\)"):
        tf.function(lambda y, p: loss(y, p), input_signature=spec)(np.array([0, 3, 1]), scores)


# ----------------------------------------------------------------------------------------------
# Misuse
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_label", [3, -2])
def test_sparse_label_out_of_range_raises_eagerly(bad_label):
    with pytest.raises(ValueError, match=r"`y_true`.*\[0, 3\).*Received: y_true containing "):
        losses.SparseCategoricalCrossentropy(ignore_class=-1)([0, bad_label], np.ones((2, 3)) / 3)


def test_sparse_label_out_of_range_raises_inside_tf_function():
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    step = tf.function(lambda y, p: loss(y, p))
    assert np.isfinite(step(tf.constant([0, 2]), tf.zeros((2, 3))).numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`y_true`.*\[0, 3\)"):
        step(tf.constant([0, 3]), tf.zeros((2, 3)))


def test_sparse_label_out_of_range_gives_nan_under_xla():
    # XLA drops assertions; NaN (not a finite, wrong loss) is the signal left.
    step = tf.function(
        lambda y, p: losses.sparse_categorical_crossentropy(y, p, label_smoothing=0.1),
        jit_compile=True,
    )
    value = step(tf.constant([0, 3]), tf.fill((2, 3), 1 / 3)).numpy()
    assert np.isfinite(value[0]) and np.isnan(value[1])


@pytest.mark.parametrize(
    "fn,y_true,y_pred",
    [
        (losses.mean_squared_error, np.zeros((4, 3)), np.zeros((4, 2))),
        (losses.mean_squared_error, np.zeros((4,)), np.zeros((1, 4))),  # Keras: a 4x4 broadcast
        (losses.categorical_crossentropy, np.zeros((4, 3)), np.zeros((4, 2))),
        (losses.hinge, np.zeros((2, 3)), np.zeros((3, 2))),
        (losses.sparse_categorical_crossentropy, np.zeros((4,)), np.zeros((5, 3))),
    ],
    ids=["mse_last_axis", "mse_transposed", "cce", "hinge", "scce_batch"],
)
def test_mismatched_shapes_raise_with_both_shapes(fn, y_true, y_pred):
    with pytest.raises(ValueError, match=r"y_true\.shape=.*y_pred\.shape="):
        fn(y_true, y_pred)


@pytest.mark.parametrize("sparse", [False, True], ids=["categorical", "sparse"])
def test_from_logits_fed_probabilities_warns(sparse):
    probs = _softmax(np.random.default_rng(4).normal(size=(BATCH, CLASSES)))
    labels = np.arange(BATCH) % CLASSES
    cls = losses.SparseCategoricalCrossentropy if sparse else losses.CategoricalCrossentropy
    with pytest.warns(UserWarning, match=r"from_logits=True"):
        cls(from_logits=True)(labels if sparse else _one_hot(labels), probs)


def test_from_logits_fed_logits_does_not_warn():
    logits = np.random.default_rng(5).normal(size=(BATCH, CLASSES))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        losses.SparseCategoricalCrossentropy(from_logits=True)([0, 1, 2, 0], logits)


@pytest.mark.parametrize(
    "cls,kwargs,match",
    [
        (losses.CategoricalCrossentropy, {"label_smoothing": 1.5}, "label_smoothing=1.5"),
        (losses.BinaryCrossentropy, {"from_logits": "yes"}, "from_logits='yes'"),
        (losses.SparseCategoricalCrossentropy, {"ignore_class": 1.5}, "ignore_class=1.5"),
        (losses.CategoricalCrossentropy, {"axis": True}, "axis=True"),
        (losses.MeanSquaredError, {"reduction": "avg"}, "reduction=avg"),
        (losses.BinaryCrossentropy, {"label_smoothing": None}, "label_smoothing=None"),
        (losses.CategoricalCrossentropy, {"label_smoothing": "0.1"}, "label_smoothing='0.1'"),
    ],
    ids=[
        "label_smoothing",
        "from_logits",
        "ignore_class",
        "axis",
        "reduction",
        "label_smoothing_none",
        "label_smoothing_string",
    ],
)
def test_bad_constructor_arguments_name_the_argument_and_value(cls, kwargs, match):
    with pytest.raises(ValueError, match=rf"`{next(iter(kwargs))}`.*{match}"):
        cls(**kwargs)


def test_numpy_integers_are_accepted_for_ignore_class_and_axis_as_in_keras():
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 3, (2, 4))
    y_pred = rng.standard_normal((2, 3, 4)).astype(np.float32)  # classes on axis 1
    ours = losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=np.int64(0), axis=np.int32(1)
    )
    theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=np.int64(0))
    # Expected: Keras's built-in, which takes a numpy ignore_class (its call supports only
    # axis=-1: the classes are moved there); the config holds Python ints.
    expected = theirs(y_true, np.moveaxis(y_pred, 1, -1))
    np.testing.assert_allclose(ours(y_true, y_pred), expected, rtol=1e-6)
    config = ours.get_config()
    assert type(config["ignore_class"]) is int and type(config["axis"]) is int
    json.dumps(config)


# ----------------------------------------------------------------------------------------------
# Config and saving
# ----------------------------------------------------------------------------------------------

# Every class with every argument set away from its default.
CONFIGURED = [
    losses.MeanSquaredError(reduction="sum", name="mse", dtype="float64"),
    losses.MeanAbsoluteError(reduction="none", name="mae", dtype="float64"),
    losses.BinaryCrossentropy(
        from_logits=True, label_smoothing=0.2, axis=0, reduction="mean", name="b", dtype="float64"
    ),
    losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1, axis=1, reduction="sum", name="c", dtype="float64"
    ),
    losses.SparseCategoricalCrossentropy(
        from_logits=True,
        ignore_class=255,
        label_smoothing=0.1,
        axis=1,
        reduction="sum",
        name="s",
        dtype="float64",
    ),
    losses.KLDivergence(reduction="sum", name="k", dtype="float64"),
    losses.Hinge(reduction="sum", name="h", dtype="float64"),
    losses.SquaredHinge(reduction="sum", name="sh", dtype="float64"),
    losses.CategoricalHinge(reduction="sum", name="ch", dtype="float64"),
]
CONFIGURED_IDS = [type(loss).__name__ for loss in CONFIGURED]


@pytest.mark.parametrize("loss", CONFIGURED, ids=CONFIGURED_IDS)
def test_config_round_trip(loss):
    config = loss.get_config()
    assert config["dtype"] == "float64" and config["reduction"] != "sum_over_batch_size"
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    assert clone.dtype == "float64"
    # Through Keras's own serialization, by registered name and without custom_objects.
    serialized = keras.saving.serialize_keras_object(loss)
    assert serialized["registered_name"] == f"kerasmlp>{type(loss).__name__}"
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config


@pytest.mark.parametrize(
    "cls,name",
    [
        (losses.MeanSquaredError, "mean_squared_error"),
        (losses.SparseCategoricalCrossentropy, "sparse_categorical_crossentropy"),
        (losses.KLDivergence, "kl_divergence"),
    ],
)
def test_default_name_is_snake_case_as_in_keras(cls, name):
    assert cls().name == name
    assert cls().get_config()["dtype"] == keras.config.floatx()


LOSS_CLASSES = [name for name in losses.__all__ if isinstance(getattr(losses, name), type)]


@pytest.mark.parametrize("name", LOSS_CLASSES)
def test_positional_arguments_are_those_of_the_keras_loss_of_the_same_name(name):
    # Reference: the signature of keras.losses.<name>, so that code written for it means the
    # same here; label_smoothing, which Keras's sparse loss lacks, is keyword-only.
    def positional(cls):
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return [(p.name, p.default) for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]

    assert positional(getattr(losses, name)) == positional(getattr(keras.losses, name))


def test_arguments_given_by_position_mean_what_they_mean_in_keras():
    # Reference: Keras's SparseCategoricalCrossentropy(from_logits, ignore_class, reduction).
    y_true, logits = np.array([0, 2]), np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], "float32")
    ours = losses.SparseCategoricalCrossentropy(True, None, "sum")(y_true, logits)
    theirs = keras.losses.SparseCategoricalCrossentropy(True, None, "sum")(y_true, logits)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


# (class, kwargs, y_true, output units); one tiny model per loss, all reloaded in one process.
SAVED = [
    (losses.MeanSquaredError, {}, np.zeros((2, 2)), 2),
    (losses.MeanAbsoluteError, {}, np.zeros((2, 2)), 2),
    (losses.BinaryCrossentropy, {"from_logits": True, "label_smoothing": 0.1}, [[0], [1]], 1),
    (losses.CategoricalCrossentropy, {"from_logits": True}, _one_hot([0, 2]), 3),
    (
        losses.SparseCategoricalCrossentropy,
        {"from_logits": True, "ignore_class": -1, "label_smoothing": 0.1},
        [[0], [2]],
        3,
    ),
    (losses.KLDivergence, {}, _softmax(np.eye(2, 3)), 3),
    (losses.Hinge, {}, [[0], [1]], 1),
    (losses.SquaredHinge, {}, [[0], [1]], 1),
    (losses.CategoricalHinge, {}, _one_hot([0, 2]), 3),
]
RELOAD_SCRIPT = pathlib.Path(__file__).with_name("_reload_losses.py")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _save_models(directory):
    x = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    np.save(directory / "x.npy", x)
    expected = {}
    for i, (cls, kwargs, y_true, units) in enumerate(SAVED):
        keras.utils.set_random_seed(i)
        activation = "softmax" if cls is losses.KLDivergence else None
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(units, activation)])
        loss = cls(**kwargs)
        model.compile(optimizer="sgd", loss=loss)
        path = directory / f"{type(loss).__name__}.keras"
        model.save(path)
        y_true = np.asarray(y_true, np.float32)
        np.save(path.with_suffix(".y.npy"), y_true)
        expected[str(path)] = (loss.get_config(), float(loss(y_true, model(x))))
    return expected


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory):
    """Saves one model per loss here, and reloads them all in one fresh Python process."""
    directory = tmp_path_factory.mktemp("saved_losses")
    expected = _save_models(directory)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    # This checkout's kerasmlp, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(RELOAD_SCRIPT), str(directory), *expected],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return expected, json.loads(result.stdout.strip().splitlines()[-1])


def test_saved_models_load_in_a_fresh_process_after_import_kerasmlp_losses(reloaded):
    expected, got = reloaded
    assert sorted(got["models"]) == sorted(expected)
    for path, (config, value) in expected.items():
        module, name, reloaded_config, reloaded_value = got["models"][path]
        assert module == "kerasmlp.losses", (path, module)
        assert reloaded_config == json.loads(json.dumps(config)), path
        assert reloaded_value == pytest.approx(value, rel=1e-6), path  # the saving process's


def test_saved_model_loads_in_a_fresh_process_after_import_kerasmlp(reloaded):
    _, got = reloaded
    assert isinstance(got["after_import_kerasmlp"], dict), got["after_import_kerasmlp"]


def test_docstring_examples_run():
    # The `Example:` blocks of kerasmlp.losses (smooth_labels' among them), run as doctests.
    result = doctest.testmod(losses)
    assert result.attempted >= 20
    assert result.failed == 0
