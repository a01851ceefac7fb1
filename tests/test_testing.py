"""Tests for kerasmlp.testing: every kerasmlp loss passes check_loss; broken losses fail clearly.

The broken losses below each carry one deliberate bug; the test says which check must catch
it and which numbers the message must show.
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from kerasmlp import losses, metrics
from kerasmlp.testing import LOSS_CHECKS, CheckError, check_loss, check_metric

RNG = np.random.default_rng(0)
NORMAL = RNG.normal(size=(4, 3))
LABELS = np.array([0, 2, 1, 2])
ONE_HOT = np.eye(3)[LABELS]
PROBS = np.exp(NORMAL) / np.exp(NORMAL).sum(axis=-1, keepdims=True)

# (loss, y_true, y_pred): every kerasmlp loss, on inputs away from kinks and clipping bounds.
KERASMLP_LOSSES = [
    (losses.MeanSquaredError(), RNG.normal(size=(4, 3)), NORMAL),
    (losses.MeanAbsoluteError(), RNG.normal(size=(4, 3)), NORMAL),
    (losses.BinaryCrossentropy(), RNG.integers(0, 2, size=(4, 3)), 0.05 + 0.9 * PROBS),
    (
        losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
        RNG.integers(0, 2, size=(4, 3)),
        NORMAL,
    ),
    (losses.CategoricalCrossentropy(), ONE_HOT, PROBS),
    (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), ONE_HOT, NORMAL),
    (losses.SparseCategoricalCrossentropy(), LABELS, PROBS),
    (
        losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        np.array([0, -1, 1, 2]),
        NORMAL,
    ),
    (losses.KLDivergence(), PROBS[::-1], PROBS),
    (losses.Hinge(), RNG.integers(0, 2, size=(4, 3)), 0.3 * NORMAL),
    (losses.SquaredHinge(), RNG.choice([-1.0, 1.0], size=(4, 3)), 0.3 * NORMAL),
    (losses.CategoricalHinge(), ONE_HOT, NORMAL),
]


@pytest.mark.parametrize(
    "loss,y_true,y_pred",
    KERASMLP_LOSSES,
    ids=[f"{type(loss).__name__}-{i}" for i, (loss, _, _) in enumerate(KERASMLP_LOSSES)],
)
def test_every_kerasmlp_loss_passes_check_loss(loss, y_true, y_pred):
    check_loss(loss, y_true=y_true, y_pred=y_pred)


def test_keras_builtin_passes_once_its_missing_dtype_is_excused():
    # Keras's own losses leave `dtype` out of get_config; check_loss says so unless told.
    with pytest.raises(CheckError, match=r"config: get_config\(\) lacks .*\['dtype'\]"):
        check_loss(keras.losses.MeanSquaredError(), y_true=ONE_HOT, y_pred=NORMAL)
    check_loss(
        keras.losses.MeanSquaredError(), y_true=ONE_HOT, y_pred=NORMAL, config_exclude=["dtype"]
    )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize(
    "loss_class,y_true,y_pred",
    [
        (keras.losses.MeanSquaredError, NORMAL[::-1], NORMAL),
        (keras.losses.CategoricalCrossentropy, ONE_HOT, NORMAL),
    ],
    ids=["mse", "cce"],
)
def test_keras_builtin_under_a_16_bit_policy_passes(policy, loss_class, y_true, y_pred):
    # The reference for a correct 16-bit loss: Keras's own, computing in float16 or bfloat16.
    # It used to fail sample_weight and saving (float32's 1e-5 on a float16 result, its
    # clones computing in float32) and extremes (1e4 squared, or a sum of 2e4s, is inf in
    # float16).
    kwargs = {"from_logits": True} if loss_class is keras.losses.CategoricalCrossentropy else {}
    check_loss(
        loss_class(dtype=policy, **kwargs),
        y_true=y_true,
        y_pred=y_pred,
        config_exclude=["dtype"],
    )


def test_keras_probability_bce_in_float16_fails_extremes_as_the_readme_says():
    # Keras clips p to [1e-7, 1 - 1e-7]; in float16 1 - 1e-7 rounds to 1 and log(1 - p) is
    # -inf at p = 1: a real NaN, not the check's precision.
    with pytest.raises(CheckError, match=r"- extremes: at y_pred=\[0\., 0\., 1\., .*\[nan\]"):
        check_loss(
            keras.losses.BinaryCrossentropy(dtype="mixed_float16"),
            y_true=np.array([[0, 0, 1], [1, 0, 1]]),
            y_pred=np.array([[0.2, 0.3, 0.8], [0.9, 0.1, 0.7]]),
            checks=["extremes"],
        )
    # kerasmlp's clips to the largest float16 below 1 there (tests/test_losses.py).
    check_loss(
        losses.BinaryCrossentropy(dtype="mixed_float16"),
        y_true=np.array([[0, 0, 1], [1, 0, 1]]),
        y_pred=np.array([[0.2, 0.3, 0.8], [0.9, 0.1, 0.7]]),
        checks=["extremes"],
    )


def test_16_bit_loss_that_forgets_sample_weight_still_fails():
    # By hand: a scalar weight of 0.5 halves the loss; the broken loss returns it whole.
    with pytest.raises(
        CheckError, match=r"sample_weight=scalar: the loss returned (\S+) where .*atol=0\.001 "
    ):
        check_loss(
            ForgetsSampleWeight(dtype="mixed_float16"),
            y_true=NORMAL[::-1],
            y_pred=NORMAL,
            checks=["sample_weight"],
        )


# ----------------------------------------------------------------------------------------------
# Deliberately broken losses
# ----------------------------------------------------------------------------------------------

_BROKEN = keras.saving.register_keras_serializable(package="kerasmlp_test_broken")


@_BROKEN
class ForgetsSampleWeight(losses.MeanSquaredError):
    """Bug: drops `sample_weight` on the way to the base class."""

    def __call__(self, y_true, y_pred, sample_weight=None):
        return super().__call__(y_true, y_pred)


@tf.custom_gradient
def _square_with_double_gradient(x):
    return tf.square(x), lambda upstream: upstream * 4.0 * x  # bug: d/dx x^2 is 2x


@_BROKEN
class WrongGradient(losses.MeanSquaredError):
    """Bug: a custom gradient twice too large."""

    def call(self, y_true, y_pred):
        return tf.reduce_mean(_square_with_double_gradient(y_pred - y_true), axis=-1)


@_BROKEN
class DropsArgument(losses.MeanSquaredError):
    """Bug: `scale` is a constructor argument that get_config leaves out."""

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, y_true, y_pred):
        return self.scale * super().call(y_true, y_pred)


@_BROKEN
class NaiveLogSoftmax(losses.CategoricalCrossentropy):
    """Bug: log(softmax(x)) overflows to -inf at large logits."""

    def call(self, y_true, y_pred):
        return -tf.reduce_sum(y_true * tf.math.log(tf.nn.softmax(y_pred)), axis=-1)


@_BROKEN
class ReducesOverTheBatch(losses.MeanSquaredError):
    """Bug: `call` returns the batch's mean, so a per-example sample_weight weighs nothing."""

    def call(self, y_true, y_pred):
        return tf.reduce_mean(tf.square(y_pred - y_true))


class Unregistered(losses.MeanSquaredError):
    """Bug: not registered with Keras, so a saved model cannot find it."""


@pytest.mark.parametrize(
    "loss,failing_check,message",
    [
        (
            ForgetsSampleWeight(),
            "sample_weight",
            # The numbers: what the loss returned and what its unreduced values imply.
            r"reduction='sum', sample_weight=per_entry: the loss returned \d.* where \d.* was "
            r"expected.*does __call__ pass `sample_weight` on",
        ),
        (
            WrongGradient(),
            "gradient",
            r"d loss / d y_pred from autodiff is -?\d.* where -?\d.* was expected .*by finite "
            r"differences \(delta=1e-05, dtype=float64\)",
        ),
        (DropsArgument(scale=2.0), "config", r"lacks constructor argument\(s\) \['scale'\]"),
        (
            NaiveLogSoftmax(from_logits=True),
            "extremes",
            r"at y_pred=\[ *10000\., -10000\., .* the loss is \[nan\].*not finite",
        ),
        (Unregistered(), "config", r"cannot deserialize Unregistered without custom_objects"),
        (
            ReducesOverTheBatch(),
            "sample_weight",
            r"unreduced values have shape \(\) for a batch of 4, so a per-example sample_weight "
            r"cannot weigh examples: `call` must return one value per example \(shape \(4, ",
        ),
    ],
    ids=[
        "forgets_sample_weight",
        "wrong_gradient",
        "drops_argument",
        "naive_log",
        "unregistered",
        "reduces_over_the_batch",
    ],
)
def test_broken_loss_fails_with_a_clear_message(loss, failing_check, message):
    y_true = ONE_HOT if isinstance(loss, losses.CategoricalCrossentropy) else NORMAL[::-1]
    with pytest.raises(CheckError) as raised:
        check_loss(loss, y_true=y_true, y_pred=NORMAL)
    text = str(raised.value)
    assert text.startswith(f"check_loss({type(loss).__name__}): ")
    assert f"\n- {failing_check}: " in text
    assert any(
        line.startswith(f"- {failing_check}: ") and re.search(message, line)
        for line in text.splitlines()
    ), text


@_BROKEN
class GuideStyleLoss(keras.losses.Loss):
    """Bugs: no **kwargs (from_config passes `reduction`) and no get_config for `factor`, as
    the Keras guide's CustomMSE is written."""

    def __init__(self, factor=0.1, name="guide_style_loss"):
        super().__init__(name=name)
        self.factor = factor

    def call(self, y_true, y_pred):
        return self.factor * ops.mean(ops.square(y_true - y_pred), axis=-1)


def test_config_that_from_config_refuses_reports_every_problem():
    # The config check used to end at from_config's TypeError ("config: raised TypeError:
    # ...unexpected keyword argument 'reduction'") and drop the missing `factor` it had found.
    with pytest.raises(CheckError) as raised:
        check_loss(
            GuideStyleLoss(factor=2.0), y_true=NORMAL[::-1], y_pred=NORMAL, checks=["config"]
        )
    lines = str(raised.value).splitlines()[1:]
    assert lines[0].startswith("- config: get_config() lacks constructor argument(s) ['factor']")
    assert re.match(
        r"- config: from_config\(get_config\(\)\) raised TypeError: .*unexpected keyword "
        r"argument 'reduction' \(get_config\(\) returned \{'name': 'guide_style_loss', "
        r"'reduction': 'sum_over_batch_size'\}",
        lines[1],
    ), lines
    assert len(lines) == 2, lines  # not also "decorate the class with register_keras_serializable"


def test_argument_left_out_of_get_config_fails_config_only():
    # The loss weighs its examples right; only its config is incomplete. The sample-weight
    # check used to rebuild it from get_config for each reduction, with scale back at 1, and
    # report 13 failures, each a value half the one expected, blaming the weighting ("does
    # __call__ pass `sample_weight` on?").
    with pytest.raises(CheckError) as raised:
        check_loss(
            DropsArgument(scale=2.0),
            y_true=NORMAL[::-1],
            y_pred=NORMAL,
            checks=["sample_weight", "config"],
        )
    assert str(raised.value).startswith(
        "check_loss(DropsArgument): 1 of 2 checks failed\n- config:"
    )
    assert "- sample_weight" not in str(raised.value)


@_BROKEN
class SoftplusByHand(losses.BinaryCrossentropy):
    """Bug: x - x * y + log(1 + exp(-x)) overflows at large negative logits."""

    def call(self, y_true, y_pred):
        return tf.reduce_mean(
            y_pred - y_pred * y_true + tf.math.log(1.0 + tf.exp(-y_pred)), axis=-1
        )


@_BROKEN
class LogOfTheLabelsProbability(losses.SparseCategoricalCrossentropy):
    """Bug: -log(p[label]) without clipping is inf where the label's probability is 0."""

    def call(self, y_true, y_pred):
        return -tf.math.log(tf.gather(y_pred, tf.cast(y_true, "int32"), batch_dims=1))


@pytest.mark.parametrize(
    "loss,y_true,y_pred,extreme",
    [
        # Positive logits only: +1e4 is harmless, -1e4 overflows exp(-x).
        (
            SoftplusByHand(from_logits=True),
            ONE_HOT,
            np.abs(NORMAL) + 0.1,
            r"\[-10000\., -10000\., -10000\., ",
        ),
        # Every argmax is the label: p = 1 there is harmless, the argmin's one-hot is not.
        # (PROBS's first row is [0.29, 0.22, 0.49]: its argmin's one-hot is [0, 1, 0].)
        (LogOfTheLabelsProbability(), np.argmax(PROBS, axis=-1), PROBS, r"\[0\., 1\., 0\., "),
    ],
    ids=["softplus_by_hand", "log_of_the_labels_probability"],
)
def test_loss_that_overflows_only_where_confidently_wrong_fails_extremes(
    loss, y_true, y_pred, extreme
):
    with pytest.raises(CheckError, match=rf"- extremes: at y_pred={extreme}.*the loss is \[inf\]"):
        check_loss(loss, y_true=y_true, y_pred=y_pred, checks=["extremes"])


@_BROKEN
class CastsTargetsToFloat32(keras.losses.Loss):
    """Correct, as many user losses are written: casts `y_true` to float32 in `call`."""

    def call(self, y_true, y_pred):
        return tf.reduce_mean(tf.square(y_pred - tf.cast(y_true, tf.float32)), axis=-1)


@_BROKEN
class CastsTargetsWithWrongGradient(CastsTargetsToFloat32):
    """Bug: a custom gradient twice too large, in a float32-only loss."""

    def call(self, y_true, y_pred):
        error = y_pred - tf.cast(y_true, tf.float32)
        return tf.reduce_mean(_square_with_double_gradient(error), axis=-1)


def test_float32_only_loss_has_its_gradient_checked_in_float32():
    # Its constructor takes dtype="float64", but its float64 twin cannot subtract float32
    # targets from float64 predictions; the gradient check used to fail with
    # "raised InvalidArgumentError" on a loss that trains fine in float32.
    check_loss(CastsTargetsToFloat32(), y_true=NORMAL[::-1], y_pred=NORMAL, checks=["gradient"])
    # Still checked: a wrong custom gradient fails in float32 too.
    with pytest.raises(CheckError, match=r"- gradient: .*by finite differences \(delta=0\.001, "):
        check_loss(
            CastsTargetsWithWrongGradient(),
            y_true=NORMAL[::-1],
            y_pred=NORMAL,
            checks=["gradient"],
        )


@_BROKEN
class CrossEntropyByHand(keras.losses.Loss):
    """Bug: -sum(y * log(p)) without clipping, and no from_logits attribute to say p is a
    probability: log(0) is -inf, and 0 * -inf is NaN."""

    def call(self, y_true, y_pred):
        return -ops.sum(y_true * ops.log(y_pred), axis=-1)


def test_probability_loss_without_from_logits_fails_extremes_at_0_and_1():
    # PROBS's first row is [0.29, 0.22, 0.49]: the argmax's one-hot [0, 0, 1] puts p = 0 on
    # classes 0 and 1. Before, only y_pred = +1e4 was tried, where log is finite: it passed.
    with pytest.raises(
        CheckError, match=r"- extremes: at y_pred=\[0\., 0\., 1\., .*the loss is \[nan\]"
    ):
        check_loss(CrossEntropyByHand(), y_true=ONE_HOT, y_pred=PROBS, checks=["extremes"])


@_BROKEN
class FlattensByStaticBatch(keras.losses.Loss):
    """Bug: reshapes by `y_pred.shape[0]`, which is None in fit's step for a partial batch."""

    def call(self, y_true, y_pred):
        return ops.mean(ops.reshape(ops.square(y_pred - y_true), (y_pred.shape[0], -1)), axis=-1)


def test_loss_that_needs_a_static_batch_size_fails_tf_function():
    # model.fit(x, y, batch_size=3) on 8 examples raises "TypeError: Failed to convert
    # elements of (None, -1) to Tensor" in this loss; the check traced fully known shapes
    # and passed it.
    with pytest.raises(
        CheckError,
        match=r"- tf_function: inside tf.function with the batch dimension unknown .* the loss "
        r"raised TypeError: Failed to convert elements of \(None, -1\)",
    ):
        check_loss(
            FlattensByStaticBatch(), y_true=NORMAL[::-1], y_pred=NORMAL, checks=["tf_function"]
        )


@_BROKEN
class HuberWithFixedGradient(keras.losses.Loss):
    """Bugs: the custom gradient clips at 1 whatever `delta` is, and get_config drops `delta`."""

    def __init__(self, delta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.delta = delta

    def call(self, y_true, y_pred):
        delta = self.delta

        @tf.custom_gradient
        def huber(error):
            quadratic = tf.minimum(tf.abs(error), delta)
            value = 0.5 * quadratic**2 + delta * (tf.abs(error) - quadratic)
            return value, lambda upstream: upstream * tf.clip_by_value(error, -1.0, 1.0)

        return ops.mean(huber(y_pred - tf.cast(y_true, y_pred.dtype)), axis=-1)


def test_gradient_is_checked_on_the_loss_given_not_its_config_clone():
    # The float64 clone from get_config had delta=1, whose gradient the backward pass gets
    # right, so the check passed; delta=2 gives 1 where 1.5 is the slope (error 1.5, by hand).
    with pytest.raises(CheckError, match=r"- gradient: d loss / d y_pred from autodiff is"):
        check_loss(
            HuberWithFixedGradient(delta=2.0),
            y_true=np.zeros((2, 2)),
            y_pred=np.array([[1.5, -0.5], [0.25, -1.5]]),
            checks=["gradient"],
        )


def test_check_error_is_an_assertion_error():
    assert issubclass(CheckError, AssertionError)


def test_unknown_check_name_is_refused_with_the_allowed_names():
    with pytest.raises(
        ValueError, match=r"`checks`.*\['gradiant'\]\. Did you mean 'gradient'\? Allowed: values,"
    ):
        check_loss(losses.MeanSquaredError(), y_true=NORMAL, y_pred=NORMAL, checks=["gradiant"])
    assert "gradient" in LOSS_CHECKS


@pytest.mark.parametrize(
    "check,checked",
    [(check_loss, losses.MeanSquaredError()), (check_metric, metrics.MeanSquaredError())],
    ids=["check_loss", "check_metric"],
)
def test_names_given_as_one_string_are_refused(check, checked):
    # Else each letter of "config" is an unknown check's name.
    with pytest.raises(
        TypeError, match=r"`checks` must be a list of names, e\.g\. checks=\['config'"
    ):
        check(checked, y_true=NORMAL, y_pred=NORMAL, checks="config")
    # Else "dtype" is not in set("dtype") and the argument meant to be excused still fails.
    with pytest.raises(
        TypeError,
        match=r"`config_exclude` must be a list of names, e\.g\. config_exclude=\['dtype'",
    ):
        check(checked, y_true=NORMAL, y_pred=NORMAL, checks=["config"], config_exclude="dtype")


@pytest.mark.parametrize(
    "num_batches,examples,message",
    [
        (0, 4, r"`num_batches` must be an integer >= 2\. Received: num_batches=0"),
        (1, 4, r"`num_batches` must be an integer >= 2\. Received: num_batches=1"),
        (5, 4, r"at least one example per batch: num_batches=5 for 4 example\(s\)"),
        (2, 1, r"at least one example per batch: num_batches=2 for 1 example\(s\)"),
    ],
    ids=["zero_batches", "one_batch", "more_batches_than_examples", "one_example"],
)
def test_too_few_examples_for_num_batches_is_refused(num_batches, examples, message):
    # Before: empty slices made the batches check pass (or fail with "0 batches give 0").
    with pytest.raises(ValueError, match=message):
        check_metric(
            keras.metrics.BinaryAccuracy(),
            y_true=BINARY_TRUE[:examples],
            y_pred=BINARY_PRED[:examples],
            num_batches=num_batches,
        )


def test_extreme_y_pred_given_as_one_array_is_refused():
    # Before, its rows were read as four inputs of shape (3,), each broadcast against y_true.
    with pytest.raises(
        ValueError,
        match=r"`extreme_y_pred` must be a list of inputs shaped as `y_pred` \(4, 3\), .*"
        r"Received: inputs of shapes \[\(3,\), \(3,\), \(3,\), \(3,\)\]",
    ):
        check_loss(
            losses.MeanSquaredError(),
            y_true=NORMAL,
            y_pred=NORMAL,
            extreme_y_pred=np.full((4, 3), 1e4),
            checks=["extremes"],
        )


def test_y_true_and_y_pred_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match=r"same number of examples .*y_true\.shape=\(3, 1\)"):
        check_metric(keras.metrics.BinaryAccuracy(), y_true=BINARY_TRUE[:3], y_pred=BINARY_PRED)


def test_metric_not_updated_with_targets_and_predictions_is_refused():
    # keras.metrics.Mean.update_state(values, sample_weight): every check used to fail with
    # "got multiple values for argument 'sample_weight'".
    with pytest.raises(
        TypeError, match=r"update_state\(y_true, y_pred, sample_weight=None\); Mean.update_state "
    ):
        check_metric(keras.metrics.Mean(), y_true=BINARY_TRUE, y_pred=BINARY_PRED)


def test_non_loss_is_refused():
    with pytest.raises(TypeError, match="Argument `loss`"):
        check_loss(keras.losses.mean_squared_error, y_true=NORMAL, y_pred=NORMAL)


# ----------------------------------------------------------------------------------------------
# check_metric
# ----------------------------------------------------------------------------------------------

BINARY_TRUE = np.array([[1.0], [0.0], [1.0], [0.0]])
# Accuracy 1 on the first half, 1/2 on the second, 3/4 on all, 2/3 without the first example.
BINARY_PRED = np.array([[0.9], [0.2], [0.2], [0.1]])


def test_keras_metric_passes_check_metric():
    check_metric(
        keras.metrics.BinaryAccuracy(),
        y_true=BINARY_TRUE,
        y_pred=BINARY_PRED,
        config_exclude=["dtype"],
    )


# Class ids beside three scores per example: the 4th example's removal changes accuracy
# (by hand: argmax 0, 1, 2, 0 against labels 0, 1, 2, 1 gives 3/4, and 3/3 without it).
SPARSE_TRUE = np.array([0, 1, 2, 1])
SPARSE_PRED = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0], [2.0, 0, 0]], np.float32)


@pytest.mark.parametrize(
    "metric",
    [
        keras.metrics.SparseCategoricalAccuracy(),
        metrics.SparseCategoricalAccuracy(),
        metrics.F1Score(3),
    ],
    ids=lambda m: f"{type(m).__module__.split('.')[0]}.{type(m).__name__}",
)
@pytest.mark.parametrize("column", [False, True], ids=["ids", "ids_as_a_column"])
def test_metrics_of_class_ids_pass_check_metric(metric, column):
    # `saving` compiles a model with a loss for these targets (class ids, not outputs' shape).
    y_true = SPARSE_TRUE[:, None] if column else SPARSE_TRUE
    check_metric(metric, y_true=y_true, y_pred=SPARSE_PRED, config_exclude=["dtype"])


@pytest.mark.parametrize(
    "metric",
    [keras.metrics.AUC(), keras.metrics.SparseTopKCategoricalAccuracy(k=2)],
    ids=lambda m: type(m).__name__,
)
def test_argument_keras_leaves_out_at_its_default_is_not_a_config_failure(metric):
    # Keras's get_config returns AUC's `thresholds` only when they were given, and
    # SparseTopKCategoricalAccuracy's `from_sorted_ids` only when True: from_config
    # rebuilds the same metric, so neither is lost.
    check_metric(metric, y_true=SPARSE_TRUE, y_pred=SPARSE_PRED, checks=["config"])


@_BROKEN
class AxisOnlyAwayFromLast(losses.MeanSquaredError):
    """Correct: returns `axis` from get_config only when it is not the default -1."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def get_config(self):
        config = super().get_config()
        return {**config, "axis": self.axis} if self.axis != -1 else config


def test_negative_default_left_out_of_get_config_is_not_a_config_failure():
    # The value tried must differ from the default: -1 * 2 + 1 is -1 again.
    check_loss(AxisOnlyAwayFromLast(), y_true=NORMAL, y_pred=NORMAL, checks=["config"])


def test_argument_dropped_at_its_default_still_fails_config():
    # DropsArgument never returns `scale`, whatever its value: a reload loses scale=3.
    with pytest.raises(CheckError, match=r"lacks constructor argument\(s\) \['scale'\]"):
        check_loss(DropsArgument(), y_true=NORMAL, y_pred=NORMAL, checks=["config"])


@_BROKEN
class MeanOfBatchMeans(keras.metrics.Metric):
    """Correct for float32 outputs (as fit feeds): divides by a count cast to its dtype."""

    def __init__(self, name="mean_of_batch_means", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(tf.reduce_sum(y_pred) / tf.cast(tf.shape(y_pred)[0], self.dtype))

    def result(self):
        return self.total


def test_float64_numpy_data_reaches_the_metric_as_a_model_feeds_it():
    # model.evaluate on float64 numpy arrays feeds this metric float32 y_true and y_pred, so
    # it works there; check_metric used to feed float64 and fail on float64 / float32.
    model = keras.Sequential([keras.Input((1,)), keras.layers.Identity()])
    model.compile(loss="mse", metrics=[MeanOfBatchMeans()])
    assert model.evaluate(BINARY_PRED, BINARY_TRUE, verbose=0, return_dict=True)[
        "mean_of_batch_means"
    ] == pytest.approx(0.35)  # by hand: (0.9 + 0.2 + 0.2 + 0.1) / 4, one batch
    check_metric(MeanOfBatchMeans(), y_true=BINARY_TRUE, y_pred=BINARY_PRED, checks=["tf_function"])


@_BROKEN
class IgnoresSampleWeight(keras.metrics.BinaryAccuracy):
    """Bug: update_state drops `sample_weight`."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, y_pred)


@_BROKEN
class KeepsOnlyLastBatch(keras.metrics.BinaryAccuracy):
    """Bug: every update overwrites the state instead of adding to it."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.reset_state()
        return super().update_state(y_true, y_pred, sample_weight)


@_BROKEN
class MeanOfBatchAccuracies(keras.metrics.Metric):
    """Bug: averages each batch's accuracy, so a batch of 1 weighs as much as one of 3."""

    def __init__(self, name="mean_of_batch_accuracies", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.batches = self.add_variable(shape=(), initializer="zeros", name="batches")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(ops.mean(keras.metrics.binary_accuracy(y_true, y_pred)))
        self.batches.assign_add(1.0)

    def result(self):
        return self.total / self.batches


@_BROKEN
class CountsInPython(keras.metrics.Metric):
    """Bug: counts examples in a Python int, which a tf.function adds to only while tracing."""

    def __init__(self, name="counts_in_python", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        weight = 1.0 if sample_weight is None else tf.cast(sample_weight, self.dtype)[:, None]
        self.total.assign_add(tf.reduce_sum(weight * tf.cast(y_pred, self.dtype)))
        self.count += int(y_pred.shape[0])

    def result(self):
        return self.total / max(self.count, 1)

    def reset_state(self):
        self.total.assign(0.0)
        self.count = 0


@_BROKEN
class CountsByStaticBatch(keras.metrics.Metric):
    """Bug: counts examples by `y_pred.shape[0]`, which is None in fit's step for a partial
    batch (model.fit(x, y, batch_size=3) on 8 examples raises TypeError there)."""

    def __init__(self, name="counts_by_static_batch", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(ops.sum(ops.cast(y_pred, self.dtype)))
        self.count.assign_add(float(y_pred.shape[0]))

    def result(self):
        return self.total / self.count


def test_metric_that_needs_a_static_batch_size_fails_tf_function():
    # Before, only shapes known in full were traced and the check passed.
    with pytest.raises(
        CheckError,
        match=r"- tf_function: update_state in a tf.function with the batch dimension unknown "
        r".* raised TypeError: float\(\) argument must be .* not 'NoneType'",
    ):
        check_metric(
            CountsByStaticBatch(), y_true=BINARY_TRUE, y_pred=BINARY_PRED, checks=["tf_function"]
        )


@_BROKEN
class GaussianNegativeLogLikelihood(keras.metrics.Metric):
    """Correct: the mean -log N(y_true; mean, exp(log_var)) of y_pred = (mean, log_var)."""

    def __init__(self, name="gaussian_negative_log_likelihood", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, self.dtype), (-1,))
        mean, log_var = y_pred[:, 0], y_pred[:, 1]
        nll = 0.5 * (log_var + ops.square(y_true - mean) / ops.exp(log_var) + np.log(2 * np.pi))
        weight = (
            ops.ones_like(nll) if sample_weight is None else ops.cast(sample_weight, self.dtype)
        )
        self.total.assign_add(ops.sum(weight * nll))
        self.count.assign_add(ops.sum(weight))

    def result(self):
        return self.total / self.count


@pytest.mark.parametrize("column", [False, True], ids=["targets", "targets_as_a_column"])
def test_metric_of_regression_targets_beside_two_outputs_passes_saving(column):
    # One target beside two outputs looked like class ids to the loss that saving compiled
    # the model with, sparse cross-entropy, which raised InvalidArgumentError "Received a
    # label value of ... which is outside the valid range of [0, 2)" for this correct metric.
    y_true = NORMAL[:, 0] * 3.0
    check_metric(
        GaussianNegativeLogLikelihood(),
        y_true=y_true[:, None] if column else y_true,
        y_pred=NORMAL[:, 1:],
        checks=["saving"],
    )


@_BROKEN
class ForgetsToReset(keras.metrics.BinaryAccuracy):
    """Bug: reset_state leaves the counts as they were."""

    def reset_state(self):
        pass


def test_reset_state_that_keeps_the_counts_fails_even_where_the_result_agrees():
    # By hand: the first half (0.9 -> 1, 0.7 -> 0 against 1, 0) has accuracy 1/2, as all four
    # have, so the result after a reset that does nothing is 2/4 as a fresh metric's; the
    # counts (total 1, count 2 left over) are what differ.
    with pytest.raises(
        CheckError,
        match=r"- reset_state: variable '.*' after reset_state against a fresh metric's: 1 where 0 "
        r"was expected",
    ):
        check_metric(
            ForgetsToReset(),
            y_true=BINARY_TRUE,
            y_pred=np.array([[0.9], [0.7], [0.2], [0.1]]),
            checks=["reset_state"],
        )


@pytest.mark.parametrize(
    "metric,failing_check,message",
    [
        (IgnoresSampleWeight(), "sample_weight", r"sample_weight 0 on the first example gives"),
        (KeepsOnlyLastBatch(), "batches", r"2 batches of \[1, 3\] examples give 0\.66"),
        # By hand: batches [0.9] and [0.2, 0.2, 0.1] have accuracy 1 and 2/3, mean 5/6; all: 3/4.
        (
            MeanOfBatchAccuracies(),
            "batches",
            r"2 batches of \[1, 3\] examples give 0\.83\d* where 0\.75 was expected",
        ),
        # By hand: sum(BINARY_PRED) = 1.4; eagerly 2 * 1.4 / 8, traced 2 * 1.4 / 4.
        (
            CountsInPython(),
            "tf_function",
            r"update_state called twice in one tf.function gives 0\.7\d* where 0\.35\d* "
            r"was expected",
        ),
    ],
    ids=[
        "ignores_sample_weight",
        "keeps_only_last_batch",
        "mean_of_batch_accuracies",
        "counts_in_python",
    ],
)
def test_broken_metric_fails_with_a_clear_message(metric, failing_check, message):
    with pytest.raises(CheckError, match=rf"(?s)check_metric.*- {failing_check}: {message}"):
        check_metric(
            metric,
            y_true=BINARY_TRUE,
            y_pred=BINARY_PRED,
            config_exclude=["dtype"],
            checks=["batches", "sample_weight", "reset_state", "tf_function"],
        )


# Three values an example, scaled so float16 rounds sums differently by batch (its step is
# 2^-9 between 2 and 4): Keras's MAE gives 2.9375 over three batches, 2.9355 over one.
FLOAT16_TRUE, FLOAT16_PRED = np.random.default_rng(1).normal(size=(2, 20, 3)) * 3


@pytest.mark.parametrize(
    "metric,y_true,y_pred",
    [
        (keras.metrics.MeanAbsoluteError(dtype="mixed_float16"), FLOAT16_TRUE, FLOAT16_PRED),
        (keras.metrics.BinaryAccuracy(dtype="mixed_bfloat16"), BINARY_TRUE, BINARY_PRED),
    ],
    ids=["mae_mixed_float16", "binary_accuracy_mixed_bfloat16"],
)
def test_keras_metric_under_a_16_bit_policy_passes_check_metric(metric, y_true, y_pred):
    # The reference for a correct 16-bit metric: Keras's own. MAE failed `batches` at 1e-6 by
    # one float16 step; bfloat16 results crashed numpy ("__array__ method not producing an
    # array") in every check.
    check_metric(
        metric,
        y_true=y_true,
        y_pred=y_pred,
        num_batches=3,
        config_exclude=["dtype"],
        checks=["batches", "sample_weight", "reset_state", "tf_function"],
    )


def test_16_bit_mean_of_batch_accuracies_still_fails():
    # By hand, as above: 5/6 from the two batches where 3/4 is right, far past 1e-3.
    with pytest.raises(CheckError, match=r"- batches: 2 batches of \[1, 3\] examples give 0\.833"):
        check_metric(
            MeanOfBatchAccuracies(dtype="mixed_float16"),
            y_true=BINARY_TRUE,
            y_pred=BINARY_PRED,
            checks=["batches"],
        )


@_BROKEN
class SumOfErrorsUncast(keras.metrics.Metric):
    """Bug: takes a float16 `y_pred` from `y_true` without a cast; fit feeds float32 targets."""

    def __init__(self, name="sum_of_errors_uncast", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(tf.cast(tf.reduce_sum(tf.abs(y_true - y_pred)), self.total.dtype))

    def result(self):
        return self.total


def test_16_bit_metric_gets_float32_targets_as_fit_feeds_them():
    # The reference: Keras's array adapter casts float targets to floatx, so under
    # mixed_float16 this metric raises in fit ("Input 'y' of 'Sub' Op has type float16 that
    # does not match type float32"). check_metric fed float16 numpy targets, which numpy
    # subtracted, and passed it.
    with pytest.raises(CheckError, match=r"- batches: raised .*float tensor but is a half"):
        check_metric(
            SumOfErrorsUncast(dtype="mixed_float16"),
            y_true=FLOAT16_TRUE,
            y_pred=FLOAT16_PRED,
            checks=["batches"],
        )


@_BROKEN
class PrecisionAndRecall(keras.metrics.Metric):
    """Correct: `result()` returns a dict, which model.evaluate reports key by key."""

    def __init__(self, name="precision_and_recall", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.precision = keras.metrics.Precision(dtype=dtype)
        self.recall = keras.metrics.Recall(dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.precision.update_state(y_true, y_pred, sample_weight)
        self.recall.update_state(y_true, y_pred, sample_weight)

    def result(self):
        return {"precision": self.precision.result(), "recall": self.recall.result()}

    def reset_state(self):
        self.precision.reset_state()
        self.recall.reset_state()


@_BROKEN
class RecallIgnoresSampleWeight(PrecisionAndRecall):
    """Bug: the recall half of the dict drops `sample_weight`."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.precision.update_state(y_true, y_pred, sample_weight)
        self.recall.update_state(y_true, y_pred)


# Predicted positive (> 0.5): examples 0, 1, 4; true positives 0 and 4 of positives 0, 2, 4.
DICT_TRUE = np.array([[1.0], [0.0], [1.0], [0.0], [1.0]])
DICT_PRED = np.array([[0.9], [0.8], [0.2], [0.1], [0.7]])


def test_metric_whose_result_is_a_dict_is_checked_key_by_key():
    # Each value check used to fail, raising as it converted the dict to an array.
    check_metric(PrecisionAndRecall(), y_true=DICT_TRUE, y_pred=DICT_PRED)
    # By hand: without example 0, recall is 1/2 (4 of 2, 4); weighted 0 but still counted,
    # the broken recall stays 2/3.
    with pytest.raises(
        CheckError,
        match=r"- sample_weight: sample_weight 0 on the first example gives 'recall': 0\.666\d* "
        r"where 0\.5 was expected",
    ):
        check_metric(
            RecallIgnoresSampleWeight(),
            y_true=DICT_TRUE,
            y_pred=DICT_PRED,
            checks=["sample_weight"],
        )
