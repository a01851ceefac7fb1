"""Tests for kerasmlp.metrics.

References, named at each expected value: scikit-learn (`accuracy_score`,
`top_k_accuracy_score`, `confusion_matrix`, `precision_recall_fscore_support`),
numpy written here (ECE, regression errors), Keras's own classes (default
names, sample weights of every shape, `_direction`), and small cases worked
out by hand.
"""

import doctest
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as skm

from kerasmlp import metrics

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
RELOAD_WORKER = pathlib.Path(__file__).with_name("_metrics_reload.py")

NUM_CLASSES = 5
NUM_EXAMPLES = 257
BATCH_SIZE = 100  # 257 examples: batches of 100, 100 and 57
TOLERANCE = {"rtol": 1e-6, "atol": 1e-6}


# --------------------------------------------------------------------------
# Data and numpy references.


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_ece(labels, probabilities, num_bins, sample_weight=None):
    """ECE written directly from its definition, one bin at a time."""
    weights = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight, float)
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    # Bin b is [b/M, (b+1)/M); confidence 1.0 goes to the last bin.
    bins = np.minimum((confidence * num_bins).astype(int), num_bins - 1)
    ece = 0.0
    for b in range(num_bins):
        in_bin = bins == b
        n_b = weights[in_bin].sum()
        if n_b == 0:
            continue
        acc_b = (weights[in_bin] * correct[in_bin]).sum() / n_b
        conf_b = (weights[in_bin] * confidence[in_bin]).sum() / n_b
        ece += n_b / weights.sum() * abs(acc_b - conf_b)
    return ece


@dataclass(frozen=True)
class Data:
    labels: np.ndarray  # int (N,)
    logits: np.ndarray  # float32 (N, NUM_CLASSES)
    weights: np.ndarray  # float32 (N,), in [0, 2)
    binary_labels: np.ndarray  # int (N,)
    binary_logits: np.ndarray  # float32 (N,)
    targets: np.ndarray  # float32 (N, 3)
    predictions: np.ndarray  # float32 (N, 3)

    @property
    def predicted(self):
        return self.logits.argmax(axis=1)

    @property
    def probabilities(self):
        return _softmax(self.logits.astype(np.float64)).astype(np.float32)


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    n = NUM_EXAMPLES
    return Data(
        labels=rng.integers(0, NUM_CLASSES, n),
        logits=(2.0 * rng.standard_normal((n, NUM_CLASSES))).astype(np.float32),
        weights=rng.uniform(0.0, 2.0, n).astype(np.float32),
        binary_labels=rng.integers(0, 2, n),
        binary_logits=(2.0 * rng.standard_normal(n)).astype(np.float32),
        targets=rng.standard_normal((n, 3)).astype(np.float32),
        predictions=rng.standard_normal((n, 3)).astype(np.float32),
    )


DATA = make_data()


# --------------------------------------------------------------------------
# One case per metric configuration: the metric, its inputs, its reference.


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[], keras.metrics.Metric]
    inputs: Callable[[Data], tuple]  # (y_true, y_pred)
    expected: Callable[[Data, np.ndarray | None], np.ndarray]  # (data, sample_weight)


def _prfs(index, average):
    def expected(d, w):
        # scikit-learn precision_recall_fscore_support; zero_division=0 is its default's value.
        labels = list(range(NUM_CLASSES)) if average is None else None
        scores = skm.precision_recall_fscore_support(
            d.labels, d.predicted, labels=labels, average=average, sample_weight=w, zero_division=0
        )
        return scores[index]

    return expected


def _mean_over_examples(per_example, w):
    # numpy: weighted mean over examples
    return np.average(per_example, weights=w)


CASES = [
    Case(
        "sparse_categorical_accuracy-logits",
        metrics.SparseCategoricalAccuracy,
        lambda d: (d.labels, d.logits),
        # scikit-learn accuracy_score
        lambda d, w: skm.accuracy_score(d.labels, d.predicted, sample_weight=w),
    ),
    Case(
        "sparse_categorical_accuracy-probabilities",
        metrics.SparseCategoricalAccuracy,
        lambda d: (d.labels, d.probabilities),
        # scikit-learn accuracy_score
        lambda d, w: skm.accuracy_score(d.labels, d.predicted, sample_weight=w),
    ),
    Case(
        "categorical_accuracy",
        metrics.CategoricalAccuracy,
        lambda d: (np.eye(NUM_CLASSES, dtype=np.float32)[d.labels], d.logits),
        # scikit-learn accuracy_score
        lambda d, w: skm.accuracy_score(d.labels, d.predicted, sample_weight=w),
    ),
    Case(
        "binary_accuracy-from_logits",
        lambda: metrics.BinaryAccuracy(from_logits=True),
        lambda d: (d.binary_labels, d.binary_logits),
        # scikit-learn accuracy_score; sigmoid(z) > 0.5 exactly when z > 0
        lambda d, w: skm.accuracy_score(d.binary_labels, d.binary_logits > 0, sample_weight=w),
    ),
    Case(
        "binary_accuracy-threshold_0.3",
        lambda: metrics.BinaryAccuracy(threshold=0.3),
        lambda d: (d.binary_labels, _sigmoid(d.binary_logits).reshape(-1, 1)),
        # scikit-learn accuracy_score on the thresholded probabilities
        lambda d, w: skm.accuracy_score(
            d.binary_labels, _sigmoid(d.binary_logits) > 0.3, sample_weight=w
        ),
    ),
    Case(
        "sparse_top_k_categorical_accuracy-k3",
        lambda: metrics.SparseTopKCategoricalAccuracy(k=3),
        lambda d: (d.labels, d.logits),
        # scikit-learn top_k_accuracy_score
        lambda d, w: skm.top_k_accuracy_score(
            d.labels, d.logits, k=3, labels=list(range(NUM_CLASSES)), sample_weight=w
        ),
    ),
    Case(
        "confusion_matrix",
        lambda: metrics.ConfusionMatrix(NUM_CLASSES),
        lambda d: (d.labels, d.logits),
        # scikit-learn confusion_matrix (rows true, columns predicted)
        lambda d, w: skm.confusion_matrix(
            d.labels, d.predicted, labels=list(range(NUM_CLASSES)), sample_weight=w
        ),
    ),
    *[
        Case(
            f"{cls.__name__.lower()}-{average}",
            lambda cls=cls, average=average: cls(NUM_CLASSES, average=average),
            lambda d: (d.labels, d.logits),
            _prfs(index, average),
        )
        for index, cls in enumerate((metrics.Precision, metrics.Recall, metrics.F1Score))
        for average in ("macro", "micro", "weighted", None)
    ],
    Case(
        "expected_calibration_error-probabilities",
        metrics.ExpectedCalibrationError,
        lambda d: (d.labels, d.probabilities),
        # numpy_ece above, 15 bins (the default)
        lambda d, w: numpy_ece(d.labels, d.probabilities, 15, w),
    ),
    Case(
        "expected_calibration_error-from_logits",
        lambda: metrics.ExpectedCalibrationError(num_bins=10, from_logits=True),
        lambda d: (d.labels, d.logits),
        # numpy_ece above on numpy softmax probabilities
        lambda d, w: numpy_ece(d.labels, _softmax(d.logits.astype(np.float64)), 10, w),
    ),
    Case(
        "mean_squared_error",
        metrics.MeanSquaredError,
        lambda d: (d.targets, d.predictions),
        # numpy
        lambda d, w: _mean_over_examples(((d.targets - d.predictions) ** 2).mean(axis=1), w),
    ),
    Case(
        "mean_absolute_error",
        metrics.MeanAbsoluteError,
        lambda d: (d.targets, d.predictions),
        # numpy
        lambda d, w: _mean_over_examples(np.abs(d.targets - d.predictions).mean(axis=1), w),
    ),
    Case(
        "root_mean_squared_error",
        metrics.RootMeanSquaredError,
        lambda d: (d.targets, d.predictions),
        # numpy
        lambda d, w: np.sqrt(
            _mean_over_examples(((d.targets - d.predictions) ** 2).mean(axis=1), w)
        ),
    ),
]


def update_in_batches(metric, y_true, y_pred, sample_weight=None, *, compiled=False):
    """Feed the data in batches of BATCH_SIZE, eagerly or in one tf.function loop."""
    if compiled:
        tensors = (y_true, y_pred) if sample_weight is None else (y_true, y_pred, sample_weight)
        dataset = tf.data.Dataset.from_tensor_slices(tensors).batch(BATCH_SIZE)

        # One trace for every batch: the dataset's batch dimension is unknown (None),
        # as in the training loop.
        @tf.function
        def run(ds):
            for batch in ds:
                metric.update_state(*batch)

        run(dataset)
        return metric
    for start in range(0, len(y_true), BATCH_SIZE):
        part = slice(start, start + BATCH_SIZE)
        weight = None if sample_weight is None else sample_weight[part]
        metric.update_state(y_true[part], y_pred[part], sample_weight=weight)
    return metric


# --------------------------------------------------------------------------
# Equal to references.


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_reference(case, weighted, mode):
    weights = DATA.weights if weighted else None
    y_true, y_pred = case.inputs(DATA)
    metric = update_in_batches(
        case.make(), y_true, y_pred, weights, compiled=(mode == "tf_function")
    )
    # Expected: the reference named in the case, on all the data at once.
    np.testing.assert_allclose(metric.result(), case.expected(DATA, weights), **TOLERANCE)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_batches_accumulate_to_one_update(case):
    y_true, y_pred = case.inputs(DATA)
    batched = update_in_batches(case.make(), y_true, y_pred, DATA.weights)
    once = case.make()
    once.update_state(y_true, y_pred, sample_weight=DATA.weights)
    # Expected: the same metric updated once with all the data.
    np.testing.assert_allclose(batched.result(), once.result(), **TOLERANCE)


SPARSE_CASES = [c for c in CASES if c.inputs(DATA)[0] is DATA.labels]


@pytest.mark.parametrize("case", SPARSE_CASES, ids=lambda c: c.id)
def test_labels_and_weights_as_columns(case):
    _, y_pred = case.inputs(DATA)
    columns = case.make()
    columns.update_state(
        DATA.labels.reshape(-1, 1), y_pred, sample_weight=DATA.weights.reshape(-1, 1)
    )
    # Expected: the reference on (batch,) labels and weights.
    np.testing.assert_allclose(columns.result(), case.expected(DATA, DATA.weights), **TOLERANCE)


def test_float_labels_are_class_ids():
    metric = metrics.F1Score(NUM_CLASSES, average="weighted")
    metric.update_state(DATA.labels.astype(np.float32), DATA.logits)
    # scikit-learn precision_recall_fscore_support on the integer labels
    expected = skm.precision_recall_fscore_support(
        DATA.labels, DATA.predicted, average="weighted", zero_division=0
    )[2]
    np.testing.assert_allclose(metric.result(), expected, **TOLERANCE)


def test_scalar_sample_weight_scales_the_confusion_matrix():
    unweighted = metrics.ConfusionMatrix(NUM_CLASSES)
    unweighted.update_state(DATA.labels, DATA.logits)
    scaled = metrics.ConfusionMatrix(NUM_CLASSES)
    scaled.update_state(DATA.labels, DATA.logits, sample_weight=2.5)
    # By hand: every example counts 2.5 instead of 1.
    np.testing.assert_allclose(scaled.result(), 2.5 * unweighted.result().numpy(), **TOLERANCE)


def test_zero_sample_weights_leave_examples_out_while_their_classes_remain():
    keep = DATA.weights > 0.5
    # Precondition: every class still occurs among the kept examples, so that
    # dropping the others changes no class's membership of the macro average.
    assert set(DATA.labels[keep]) == set(range(NUM_CLASSES))
    weighted = metrics.F1Score(NUM_CLASSES, average="macro")
    weighted.update_state(DATA.labels, DATA.logits, sample_weight=keep.astype(np.float32))
    # scikit-learn on the kept examples only
    expected = skm.precision_recall_fscore_support(
        DATA.labels[keep], DATA.predicted[keep], average="macro", zero_division=0
    )[2]
    np.testing.assert_allclose(weighted.result(), expected, **TOLERANCE)


# Which classes the macro average is over: scikit-learn's `unique_labels(y_true, y_pred)`,
# whatever the sample weights. Each case is (num_classes, batches of (y_true, predicted,
# sample_weight)); the metric sees the batches one by one.
_WEIGHTLESS_CLASS = (DATA.labels == 3) | (DATA.predicted == 3)
PRESENCE_CASES = {
    # Class 1 occurs (label and prediction) but weighs 0: its scores are 0/0 = 0.
    "zero_weight_class": (3, [([0, 1, 2], [0, 1, 2], [1.0, 0.0, 1.0])]),
    # Class 2 occurs only as the prediction of a weight-0 example; class 3 never occurs.
    "zero_weight_class_only_predicted": (
        4,
        [([0, 1, 1, 0], [0, 2, 1, 0], [1.0, 0.0, 1.0, 1.0])],
    ),
    # Class 2 occurs with a real weight, but only as a (wrong) prediction.
    "class_only_predicted": (3, [([0, 1, 1, 0], [0, 2, 1, 0], [1.0, 0.5, 2.0, 1.0])]),
    # Class 2 and its weights of 0 arrive in a later batch than the other classes.
    "zero_weight_class_in_a_later_batch": (
        3,
        [([0, 0, 1], [0, 1, 1], [1.0, 2.0, 1.0]), ([2, 2], [2, 0], [0.0, 0.0])],
    ),
    # 257 examples in batches of 100: every example showing class 3 weighs 0.
    "weightless_class_over_batches": (
        NUM_CLASSES,
        [
            (
                DATA.labels[start : start + BATCH_SIZE],
                DATA.predicted[start : start + BATCH_SIZE],
                np.where(_WEIGHTLESS_CLASS, 0.0, DATA.weights)[start : start + BATCH_SIZE],
            )
            for start in range(0, NUM_EXAMPLES, BATCH_SIZE)
        ],
    ),
}


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
@pytest.mark.parametrize("case", PRESENCE_CASES.values(), ids=PRESENCE_CASES.keys())
def test_classes_count_in_the_average_whatever_their_weights(case, average, dtype, mode):
    num_classes, batches = case
    # One trace for every batch, with an unknown batch dimension, as in the training loop.
    signature = [
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None, num_classes], dtype),
        tf.TensorSpec([None], dtype),
    ]
    for index, cls in enumerate((metrics.Precision, metrics.Recall, metrics.F1Score)):
        metric = cls(num_classes, average=average, dtype=dtype)

        def update(y, z, w, metric=metric):
            metric.update_state(y, z, sample_weight=w)

        if mode == "tf_function":
            update = tf.function(update, input_signature=signature)
        for y_true, predicted, weight in batches:
            scores = np.eye(num_classes, dtype=dtype)[np.asarray(predicted)]
            update(np.asarray(y_true, np.int32), scores, np.asarray(weight, dtype))
        y_true, predicted, weight = (np.concatenate(parts) for parts in zip(*batches, strict=True))
        # scikit-learn precision_recall_fscore_support on all the batches at once, labels
        # inferred from y_true and y_pred (its default), zero_division=0 (its default's value)
        expected = skm.precision_recall_fscore_support(
            y_true, predicted, average=average, sample_weight=weight, zero_division=0
        )[index]
        result = metric.result()
        assert keras.backend.standardize_dtype(result.dtype) == dtype
        np.testing.assert_allclose(result, expected, err_msg=cls.__name__, **TOLERANCE)


def test_class_presence_counts_labels_and_predictions_unweighted():
    # By hand: example 0 shows class 0 (label and prediction), example 1 classes 1 and 2.
    presence = metrics.class_presence_update([0, 1], [[0.9, 0.1, 0.0], [0.1, 0.2, 0.7]], 3)
    np.testing.assert_array_equal(presence, [1.0, 1.0, 1.0])


# --------------------------------------------------------------------------
# The training loop's contract: int labels (batch,) and logits (batch, num_classes),
# binary tasks as two-column logits [0, z].


def test_binary_task_as_two_column_logits():
    two_columns = np.stack([np.zeros_like(DATA.binary_logits), DATA.binary_logits], axis=1)
    labels, w = DATA.binary_labels, DATA.weights
    predicted = (DATA.binary_logits > 0).astype(int)  # argmax of [0, z]; a tie z == 0 gives 0
    checks = [
        # scikit-learn accuracy_score
        (
            metrics.SparseCategoricalAccuracy(),
            skm.accuracy_score(labels, predicted, sample_weight=w),
        ),
        # scikit-learn precision_recall_fscore_support
        (
            metrics.F1Score(2, average="macro"),
            skm.precision_recall_fscore_support(
                labels, predicted, average="macro", sample_weight=w
            )[2],
        ),
        # scikit-learn confusion_matrix
        (metrics.ConfusionMatrix(2), skm.confusion_matrix(labels, predicted, sample_weight=w)),
        # numpy_ece on softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]
        (
            metrics.ExpectedCalibrationError(from_logits=True),
            numpy_ece(labels, _softmax(two_columns.astype(np.float64)), 15, w),
        ),
    ]
    for metric, expected in checks:
        update_in_batches(metric, labels, two_columns, w, compiled=True)
        np.testing.assert_allclose(metric.result(), expected, err_msg=metric.name, **TOLERANCE)


# --------------------------------------------------------------------------
# Small cases by hand, and edge cases.


HAND_Y_TRUE = [0, 1, 1]
HAND_Y_PRED = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]  # predicted classes 0, 0, 1


@pytest.mark.parametrize(
    "metric, expected",
    [
        # cm = [[1, 0], [1, 1]]
        (metrics.ConfusionMatrix(2), [[1.0, 0.0], [1.0, 1.0]]),
        # precision per class: 1/2, 1/1
        (metrics.Precision(2, average=None), [0.5, 1.0]),
        # recall per class: 1/1, 1/2
        (metrics.Recall(2, average=None), [1.0, 0.5]),
        # f1 per class: 2*1/(2+1) = 2/3 each; macro 2/3
        (metrics.F1Score(2), 2.0 / 3.0),
        # micro = accuracy = 2/3
        (metrics.Precision(2, average="micro"), 2.0 / 3.0),
        # weighted recall: (1 * 1 + 2 * 1/2) / 3 = 2/3
        (metrics.Recall(2, average="weighted"), 2.0 / 3.0),
        (metrics.SparseCategoricalAccuracy(), 2.0 / 3.0),
        # 2 bins, all three confidences (0.9, 0.8, 0.7) in the top one: |2/3 - 0.8|
        (metrics.ExpectedCalibrationError(num_bins=2), abs(2.0 / 3.0 - 0.8)),
        # class 1 scores are 0.1, 0.2, 0.7: true class in the top 1 only for 0 and 2
        (metrics.SparseTopKCategoricalAccuracy(k=1), 2.0 / 3.0),
    ],
    ids=lambda v: v.name if isinstance(v, keras.metrics.Metric) else "",
)
def test_hand_computed(metric, expected):
    metric.update_state(HAND_Y_TRUE, HAND_Y_PRED)
    np.testing.assert_allclose(metric.result(), expected, **TOLERANCE)


def test_top_k_ties_at_the_boundary_count_as_hits():
    metric = metrics.SparseTopKCategoricalAccuracy(k=1)
    # By hand: label 1 ties the best score, so it is inside the top 1 (as tf.math.in_top_k).
    metric.update_state([1], [[0.4, 0.4, 0.2]])
    assert float(metric.result()) == 1.0


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("ids_dtype", ["int32", "float32"])
def test_top_k_from_sorted_ids_is_keras(mode, ids_dtype):
    # y_pred holds class ids from the highest score down (Keras 3.15's from_sorted_ids).
    # By hand, k=2: row 0's label 3 is first, row 1's 0 is third (a miss), row 2's 1 is
    # second, row 3's 2 is absent; weights 1, 2, 0.5, 1 give (1 + 0.5) / 4.5 = 1/3.
    y_pred = np.array([[3, 1, 0], [2, 1, 0], [4, 1, 2], [0, 1, 3]], ids_dtype)
    y_true = np.array([3, 0, 1, 2])
    weights = np.array([1.0, 2.0, 0.5, 1.0])
    metric = metrics.SparseTopKCategoricalAccuracy(2, from_sorted_ids=True)
    update = tf.function(metric.update_state) if mode == "tf_function" else metric.update_state
    update(y_true, y_pred, sample_weight=weights)
    reference = keras.metrics.SparseTopKCategoricalAccuracy(2, from_sorted_ids=True)
    reference.update_state(y_true, y_pred, sample_weight=weights)
    assert float(reference.result()) == pytest.approx(1.5 / 4.5)
    assert float(metric.result()) == pytest.approx(1.5 / 4.5)
    clone = metrics.SparseTopKCategoricalAccuracy.from_config(metric.get_config())
    assert clone.from_sorted_ids is True
    with pytest.raises(ValueError, match=r"`from_sorted_ids` must be a bool. Received: .*'yes'"):
        metrics.SparseTopKCategoricalAccuracy(from_sorted_ids="yes")


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
def test_top_k_rows_with_nan_or_inf_scores_are_misses_as_keras(mode):
    # A diverged model's scores: NaN everywhere, NaN on the true class, +inf on it, NaN
    # elsewhere, then a finite row that is a hit.
    nan, inf = float("nan"), float("inf")
    y_pred = np.array(
        [[nan, nan, nan], [0.1, nan, 0.3], [inf, 0.0, 1.0], [0.5, 0.2, nan], [0.5, 0.3, 0.2]],
        np.float32,
    )
    y_true = np.array([0, 1, 0, 0, 1])
    metric = metrics.SparseTopKCategoricalAccuracy(k=2)
    update = tf.function(metric.update_state) if mode == "tf_function" else metric.update_state
    update(y_true, y_pred)
    reference = keras.metrics.SparseTopKCategoricalAccuracy(k=2)
    reference.update_state(y_true, y_pred)
    # Keras's built-in (tf.math.in_top_k: a row with a non-finite score is a miss); by hand,
    # only the last row is a hit: 1 / 5.
    assert float(reference.result()) == pytest.approx(0.2)
    assert float(metric.result()) == pytest.approx(0.2)


def test_ece_bin_edges():
    # By hand, 4 bins: confidence 0.5 opens bin [0.5, 0.75); 1.0 falls in the last bin.
    counts, confidence_sums, correct_sums = metrics.calibration_bins_update(
        [0, 0], [[0.5, 0.5], [1.0, 0.0]], num_bins=4
    )
    np.testing.assert_allclose(counts, [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(confidence_sums, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(correct_sums, [0.0, 0.0, 1.0, 1.0])


def test_ece_of_logits_read_as_probabilities_is_what_the_readme_says():
    # Unchecked, as Keras's probabilistic metrics are (see the class's docstring). By hand,
    # 10 bins: read as probabilities, both rows' "confidence" (3.0, 2.5) is past 1 and falls
    # in the last bin, both right: |1 - 2.75| = 1.75. As logits: confidences sigmoid(4) and
    # sigmoid(2) in bins 9 and 8: ((1 - 0.98201) + (1 - 0.88080)) / 2 = 0.0686.
    logits = [[3.0, -1.0], [0.5, 2.5]]
    for from_logits, expected in [(False, 1.75), (True, 0.0686)]:
        metric = metrics.ExpectedCalibrationError(num_bins=10, from_logits=from_logits)
        metric.update_state([0, 1], logits)
        assert float(metric.result()) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize("mode", ["eager", "evaluate"])
def test_ece_from_logits_of_a_softmax_output_reads_probabilities_and_warns(mode):
    # A model ending in a softmax, with outputs [0.75, 0.25] (logits [log 3, 0]), and label 0.
    # By hand, as in the README: confidence 0.75, always right: ECE 0.25; a second softmax gave
    # confidence sigmoid(0.5) = 0.6225, ECE 0.3775, silently. As kerasmlp's losses, it warns.
    bias = keras.initializers.Constant([np.log(3.0), 0.0])
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(2, "softmax", bias_initializer=bias)]
    )
    metric = metrics.ExpectedCalibrationError(num_bins=10, from_logits=True)
    x, y = np.zeros((4, 1), np.float32), np.zeros(4, np.int32)
    with pytest.warns(UserWarning, match="produced by a softmax.*reads them as probabilities"):
        if mode == "eager":  # Keras's activation leaves its logits on the output
            metric.update_state(y, model(x))
            result = float(metric.result())
        else:  # in the graph, the softmax op shows
            model.compile(loss="sparse_categorical_crossentropy", metrics=[metric])
            result = model.evaluate(x, y, verbose=0, return_dict=True)[metric.name]
    assert result == pytest.approx(0.25, abs=1e-6)


def test_labels_out_of_range_are_misses_and_left_out_of_the_confusion_matrix():
    y_true = [0, 5, -1]  # two labels outside [0, 3)
    y_pred = [[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.1, 0.2, 0.7]]
    # By hand: only the first example is a hit, for accuracy and top-3 alike.
    for metric in (metrics.SparseCategoricalAccuracy(), metrics.SparseTopKCategoricalAccuracy(k=3)):
        metric.update_state(y_true, y_pred)
        np.testing.assert_allclose(metric.result(), 1.0 / 3.0, err_msg=metric.name, **TOLERANCE)
    confusion = metrics.ConfusionMatrix(3)
    confusion.update_state(y_true, y_pred)
    # By hand: only (true 0, predicted 0) is counted.
    np.testing.assert_array_equal(confusion.result(), [[1, 0, 0], [0, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
def test_classes_never_seen_are_left_out_of_the_macro_average(average):
    # 5 classes: 3 is only predicted, 4 never occurs at all.
    y_true = np.array([0, 1, 2, 2, 0, 1])
    predicted = np.array([0, 2, 2, 1, 3, 1])
    logits = np.eye(5, dtype=np.float32)[predicted]
    for index, cls in enumerate((metrics.Precision, metrics.Recall, metrics.F1Score)):
        metric = cls(5, average=average)
        metric.update_state(y_true, logits)
        # scikit-learn with labels inferred from y_true and y_pred (its default): classes 0-3
        expected = skm.precision_recall_fscore_support(
            y_true, predicted, average=average, zero_division=0
        )[index]
        np.testing.assert_allclose(metric.result(), expected, err_msg=cls.__name__, **TOLERANCE)


def test_per_class_scores_of_an_absent_class_are_zero():
    y_true = np.array([0, 1, 2, 2, 0, 1])
    predicted = np.array([0, 2, 2, 1, 3, 1])
    logits = np.eye(5, dtype=np.float32)[predicted]
    metric = metrics.F1Score(5, average=None)
    metric.update_state(y_true, logits)
    # scikit-learn with labels=range(5) and zero_division=0 (its default's value)
    expected = skm.precision_recall_fscore_support(
        y_true, predicted, labels=list(range(5)), average=None, zero_division=0
    )[2]
    np.testing.assert_allclose(metric.result(), expected, **TOLERANCE)


ALL_FACTORIES = {
    "sparse_categorical_accuracy": metrics.SparseCategoricalAccuracy,
    "categorical_accuracy": metrics.CategoricalAccuracy,
    "binary_accuracy": lambda: metrics.BinaryAccuracy(threshold=0.3, from_logits=True),
    "sparse_top_k": lambda: metrics.SparseTopKCategoricalAccuracy(k=2),
    "confusion_matrix": lambda: metrics.ConfusionMatrix(7),
    "precision": lambda: metrics.Precision(7, average="weighted"),
    "recall": lambda: metrics.Recall(7, average="micro"),
    "f1_score": lambda: metrics.F1Score(7, average=None, name="f1_per_class", dtype="float64"),
    "expected_calibration_error": lambda: metrics.ExpectedCalibrationError(7, from_logits=True),
    "mean_squared_error": metrics.MeanSquaredError,
    "mean_absolute_error": metrics.MeanAbsoluteError,
    "root_mean_squared_error": lambda: metrics.RootMeanSquaredError(name="rmse"),
}


@pytest.mark.parametrize("make", ALL_FACTORIES.values(), ids=ALL_FACTORIES.keys())
def test_empty_metric_reads_zero(make):
    # By hand: no examples yet; every ratio is 0/0, which reads 0 (no NaN).
    np.testing.assert_array_equal(make().result(), 0.0)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("make", ALL_FACTORIES.values(), ids=ALL_FACTORIES.keys())
def test_an_empty_batch_eagerly_adds_nothing(make, weighted):
    # Reference: Keras's own metrics (keras.metrics.SparseCategoricalAccuracy, F1Score, ...)
    # take a batch of 0 examples eagerly and read 0. ECE raised InvalidArgumentError
    # ("Cannot compute the max of an empty tensor", keras.ops.max's eager check).
    metric = make()
    y_true, y_pred = (x[:0] for x in _inputs_for(metric, np.random.default_rng(0)))
    metric.update_state(y_true, y_pred, sample_weight=np.zeros(0, "float32") if weighted else None)
    np.testing.assert_array_equal(metric.result(), 0.0)


def _inputs_for(metric, rng, n=16, num_classes=7):
    """(y_true, y_pred) of the kind `metric` expects."""
    scores = rng.standard_normal((n, num_classes)).astype(np.float32)
    labels = rng.integers(0, num_classes, n)
    if isinstance(metric, metrics.CategoricalAccuracy):
        return np.eye(num_classes, dtype=np.float32)[labels], scores
    if isinstance(
        metric, (metrics.BinaryAccuracy, metrics.MeanSquaredError, metrics.MeanAbsoluteError)
    ):
        return rng.integers(0, 2, (n, num_classes)).astype(np.float32), scores
    return labels, scores


@pytest.mark.parametrize("make", ALL_FACTORIES.values(), ids=ALL_FACTORIES.keys())
def test_reset_state_really_resets(make):
    rng = np.random.default_rng(3)
    metric = make()
    first, second = _inputs_for(metric, rng), _inputs_for(metric, rng)
    metric.update_state(*first)
    metric.reset_state()
    # By hand: every state variable is zero again ...
    for variable in metric.variables:
        np.testing.assert_array_equal(variable.numpy(), 0.0)
    # ... and the next update gives what a fresh metric gives.
    metric.update_state(*second)
    fresh = make()
    fresh.update_state(*second)
    np.testing.assert_allclose(metric.result(), fresh.result(), **TOLERANCE)


@pytest.mark.parametrize("make", ALL_FACTORIES.values(), ids=ALL_FACTORIES.keys())
def test_result_is_a_snapshot_and_stateless_result_reads_the_state_given(make):
    # Reference: Keras's own metrics (e.g. keras.metrics.F1Score): `result()` is a tensor that
    # later updates and resets leave alone, and `stateless_result(state)` is the result of
    # `state`, whatever the metric's variables hold.
    rng = np.random.default_rng(5)
    metric = make()
    metric.update_state(*_inputs_for(metric, rng))
    expected = np.array(metric.result())
    state = [keras.ops.copy(v) for v in metric.variables]
    saved = metric.result()
    metric.reset_state()
    np.testing.assert_array_equal(saved, expected)
    np.testing.assert_array_equal(metric.stateless_result(state), expected)


# --------------------------------------------------------------------------
# Sample weights of every shape, read as Keras reads them, or refused.

_RNG = np.random.default_rng(11)
MULTI_LABELS = (DATA.targets > 0).astype(np.float32)  # (N, 3) 0/1 labels
MULTI_PROBABILITIES = _sigmoid(DATA.predictions)  # (N, 3)
ENTRY_WEIGHTS = _RNG.uniform(0.0, 2.0, MULTI_LABELS.shape).astype(np.float32)


def _binary_inputs(width):
    return lambda d: (MULTI_LABELS[:, :width], MULTI_PROBABILITIES[:, :width])


# (ours, Keras's class of the same meaning, inputs from DATA)
KERAS_ACCURACIES = {
    "sparse_categorical_accuracy": (
        metrics.SparseCategoricalAccuracy,
        keras.metrics.SparseCategoricalAccuracy,
        lambda d: (d.labels, d.logits),
    ),
    "categorical_accuracy": (
        metrics.CategoricalAccuracy,
        keras.metrics.CategoricalAccuracy,
        lambda d: (np.eye(NUM_CLASSES, dtype=np.float32)[d.labels], d.logits),
    ),
    "sparse_top_k_categorical_accuracy": (
        lambda: metrics.SparseTopKCategoricalAccuracy(k=3),
        lambda: keras.metrics.SparseTopKCategoricalAccuracy(k=3),
        lambda d: (d.labels, d.logits),
    ),
    "binary_accuracy-3_outputs": (
        lambda: metrics.BinaryAccuracy(threshold=0.3),
        lambda: keras.metrics.BinaryAccuracy(threshold=0.3),
        _binary_inputs(3),
    ),
    "binary_accuracy-1_output": (
        lambda: metrics.BinaryAccuracy(threshold=0.3),
        lambda: keras.metrics.BinaryAccuracy(threshold=0.3),
        _binary_inputs(1),
    ),
}

# Weights for labels of K columns: per example, or per entry (binary accuracy only).
EXAMPLE_WEIGHTS = {
    "none": lambda k: None,
    "per_example": lambda k: DATA.weights,
    "per_example_column": lambda k: DATA.weights.reshape(-1, 1),
}
ENTRY_WEIGHT_SHAPES = {
    "per_output_row": lambda k: np.array([[1.0, 0.0, 0.5][:k]], np.float32),
    "per_entry": lambda k: ENTRY_WEIGHTS[:, :k],
}


def _feed_batches(metric, y_true, y_pred, weight, *, compiled):
    """BATCH_SIZE rows at a time; weights with one row per example are sliced, others repeat."""
    per_row = weight is not None and weight.shape[0] == len(y_true)
    update = metric.update_state
    if compiled:
        # One trace for every batch, with an unknown batch dimension (as in the training loop).
        specs = [
            tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in (y_true, y_pred)
        ]
        if weight is not None:
            shape = (None, *weight.shape[1:]) if per_row else weight.shape
            specs.append(tf.TensorSpec(shape, tf.float32))
        update = tf.function(metric.update_state, input_signature=specs)
    for start in range(0, len(y_true), BATCH_SIZE):
        part = slice(start, start + BATCH_SIZE)
        args = [y_true[part], y_pred[part]]
        if weight is not None:
            args.append(weight[part] if per_row else weight)
        update(*args)
    return metric


def _accuracy_weight_cases():
    for name, (ours, theirs, inputs) in KERAS_ACCURACIES.items():
        shapes = dict(EXAMPLE_WEIGHTS)
        if name.startswith("binary_accuracy"):
            shapes.update(ENTRY_WEIGHT_SHAPES)
        for weight_name, weight in shapes.items():
            yield pytest.param(ours, theirs, inputs, weight, id=f"{name}-{weight_name}")


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("ours, theirs, inputs, weight", _accuracy_weight_cases())
def test_accuracy_sample_weights_as_keras(ours, theirs, inputs, weight, mode):
    y_true, y_pred = inputs(DATA)
    width = y_true.shape[1] if y_true.ndim > 1 else 1
    w = weight(width)
    result = _feed_batches(ours(), y_true, y_pred, w, compiled=(mode == "tf_function")).result()
    # Expected: Keras's built-in of the same meaning, fed the same batches eagerly.
    expected = _feed_batches(theirs(), y_true, y_pred, w, compiled=False).result()
    np.testing.assert_allclose(result, expected, **TOLERANCE)


def test_binary_accuracy_weights_per_output_from_the_report():
    y_true, y_pred = [[1, 1], [0, 0]], [[0.98, 0.2], [0.0, 0.6]]
    ours = metrics.BinaryAccuracy()
    ours.update_state(y_true, y_pred, sample_weight=[[1, 0]])
    theirs = keras.metrics.BinaryAccuracy()
    theirs.update_state(y_true, y_pred, sample_weight=[[1, 0]])
    # Keras's BinaryAccuracy; by hand: only the first output counts, right for both rows.
    assert float(theirs.result()) == 1.0
    assert float(ours.result()) == 1.0


# Targets and predictions that float32 cannot tell apart: 2**24 + 1 rounds to 2**24,
# and 0.5 + 1e-10 to 0.5.
FLOAT64_CASES = {
    "MeanSquaredError": ([[16777217.0], [1e20]], [[16777216.0], [1e21]]),
    "MeanAbsoluteError": ([[16777217.0], [3.0]], [[16777216.0], [1.0]]),
    "RootMeanSquaredError": ([[16777217.0], [1e20]], [[16777216.0], [1e21]]),
    "BinaryAccuracy": ([[1.0], [0.0]], [[0.5 + 1e-10], [0.5]]),
}


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("name", FLOAT64_CASES)
def test_float64_metrics_compute_in_float64_as_keras(name, mode):
    y_true, y_pred = (np.array(v, np.float64) for v in FLOAT64_CASES[name])
    ours = getattr(metrics, name)(dtype="float64")
    theirs = getattr(keras.metrics, name)(dtype="float64")
    update = tf.function(ours.update_state) if mode == "tf_function" else ours.update_state
    update(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    # Expected: Keras's built-in in float64 (by hand: MSE (1 + 8.1e41) / 2, MAE 1.5, binary
    # accuracy 1.0); float32 would give 0 for the first example's error.
    assert float(theirs.result()) != float(np.float32(0.0))
    np.testing.assert_allclose(float(ours.result()), float(theirs.result()), rtol=1e-12)


@pytest.mark.parametrize("name", KERAS_ACCURACIES)
def test_scalar_sample_weight_weighs_every_example(name):
    ours, theirs, inputs = KERAS_ACCURACIES[name]
    y_true, y_pred = inputs(DATA)
    one_batch = ours()
    one_batch.update_state(y_true, y_pred, sample_weight=2.5)
    reference = theirs()
    reference.update_state(y_true, y_pred, sample_weight=2.5)
    # Keras's built-in, on one batch. Over several batches Keras weighs each batch as
    # one example of weight 2.5; kerasmlp weighs each example 2.5, as without weights:
    np.testing.assert_allclose(one_batch.result(), reference.result(), **TOLERANCE)
    batched = update_in_batches(ours(), y_true, y_pred)
    scaled = ours()
    for start in range(0, NUM_EXAMPLES, BATCH_SIZE):
        part = slice(start, start + BATCH_SIZE)
        scaled.update_state(y_true[part], y_pred[part], sample_weight=2.5)
    # By hand: the same metric fed the same batches without weights.
    np.testing.assert_allclose(scaled.result(), batched.result(), **TOLERANCE)


def test_scalar_sample_weight_over_unequal_batches_gives_the_readme_figures():
    # The README's example: batches of 3 and 1 examples, 2 and 1 right, each at weight 0.5.
    batches = [
        ([0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]),
        ([1], [[0.2, 0.8]]),
    ]
    ours, theirs = metrics.SparseCategoricalAccuracy(), keras.metrics.SparseCategoricalAccuracy()
    for y_true, y_pred in batches:
        ours.update_state(y_true, y_pred, sample_weight=0.5)
        theirs.update_state(y_true, y_pred, sample_weight=0.5)
    # By hand: 3 of 4 examples right; Keras's built-in weighs each batch as one: (2/3 + 1) / 2.
    assert float(ours.result()) == pytest.approx(0.75)
    assert float(theirs.result()) == pytest.approx((2 / 3 + 1) / 2)


SPARSE_LABEL_FACTORIES = {
    name: ALL_FACTORIES[name]
    for name in (
        "sparse_categorical_accuracy",
        "sparse_top_k",
        "confusion_matrix",
        "precision",
        "expected_calibration_error",
    )
}


ENTRY_FACTORIES = {
    name: ALL_FACTORIES[name]
    for name in (
        "binary_accuracy",
        "mean_squared_error",
        "mean_absolute_error",
        "root_mean_squared_error",
    )
}


@pytest.mark.parametrize("make", SPARSE_LABEL_FACTORIES.values(), ids=SPARSE_LABEL_FACTORIES.keys())
def test_one_hot_labels_are_refused_while_tracing_with_both_shapes(make):
    # One-hot labels where class ids belong: the update failed only when run, on TensorFlow's
    # "Input to reshape is a tensor with 112 values, but the requested shape has 16". By hand:
    # one line naming the metric, the shapes allowed and the shapes received (tf.function adds
    # the traceback of the user code above that line).
    metric = make()
    labels, scores = _inputs_for(metric, np.random.default_rng(5))
    one_hot = np.eye(7, dtype=np.float32)[labels]
    spec = [tf.TensorSpec((None, 7), tf.float32)] * 2
    with pytest.raises(
        ValueError,
        match=rf"(?m){type(metric).__name__} takes integer class ids, one per row of scores: "
        r"y_true of shape \(None,\) or \(None, 1\); for one-hot labels, pass their argmax\. "
        r"Received: y_true of shape \(None, 7\), y_pred of shape \(None, 7\)$",
    ):
        tf.function(metric.update_state, input_signature=spec)(one_hot, scores)


@pytest.mark.parametrize("labels_shape", [(None,), (None, 1), (None, 5)], ids=str)
def test_class_ids_are_refused_by_categorical_accuracy_while_tracing(labels_shape):
    # Keras's CategoricalAccuracy takes the argmax of (batch,) class ids over the batch axis: one
    # class, compared with every prediction, a silent wrong accuracy (keras.metrics 3.15: 1.0 for
    # ids [0, 1, 2] against three rows predicting class 2, one of them right). By hand: one
    # line naming both shapes.
    spec = [tf.TensorSpec(labels_shape, tf.float32), tf.TensorSpec((None, 7), tf.float32)]
    with pytest.raises(
        ValueError,
        match=r"(?m)CategoricalAccuracy takes one-hot labels, y_true of y_pred's shape "
        r"\(None, 7\); for integer class ids, use SparseCategoricalAccuracy\. "
        rf"Received: y_true of shape {re.escape(str(labels_shape))}, "
        r"y_pred of shape \(None, 7\)$",
    ):
        tf.function(metrics.CategoricalAccuracy().update_state, input_signature=spec)(
            *(tf.zeros((4, *s[1:])) for s in (labels_shape, (None, 7)))
        )


ARGMAX_FACTORIES = {
    name: ALL_FACTORIES[name]
    for name in ("sparse_categorical_accuracy", "sparse_top_k", "expected_calibration_error")
}


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("make", ARGMAX_FACTORIES.values(), ids=ARGMAX_FACTORIES.keys())
def test_one_score_per_example_is_refused_where_classes_are_argmaxed(make, mode):
    # A sigmoid unit's (batch, 1) output: its argmax is class 0 whatever the score, so Keras's
    # SparseCategoricalAccuracy read 0.25 for labels [1, 1, 0, 1] and scores
    # [0.9, 0.8, 0.2, 0.7] (by hand, all four right at 0.5), silently. By hand: one line.
    metric = make()
    update = tf.function(metric.update_state) if mode == "tf_function" else metric.update_state
    with pytest.raises(
        ValueError,
        match=rf"(?m){type(metric).__name__} takes one score per class, 2 or more, on y_pred's "
        r"last axis \(the argmax of a single sigmoid output is always class 0\)\. "
        r"Received: y_pred of shape \(4, 1\)$",
    ):
        update(tf.constant([1, 1, 0, 1]), tf.constant([[0.9], [0.8], [0.2], [0.7]]))


def test_top_k_of_sorted_ids_still_takes_the_top_id_alone():
    # By hand: top-1 ids [[1], [0]] against labels [1, 1]: one hit of two. As nested lists, as
    # keras.metrics.SparseTopKCategoricalAccuracy takes them (ours raised "list indices must
    # be integers or slices, not tuple").
    metric = metrics.SparseTopKCategoricalAccuracy(k=1, from_sorted_ids=True)
    metric.update_state([1, 1], [[1], [0]])
    assert float(metric.result()) == 0.5


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("make", ENTRY_FACTORIES.values(), ids=ENTRY_FACTORIES.keys())
@pytest.mark.parametrize(
    ("true_shape", "pred_shape"), [((4,), (4, 3)), ((4, 3), (4, 1)), ((4, 2), (4, 3))], ids=str
)
def test_targets_and_predictions_of_other_shapes_are_refused(make, true_shape, pred_shape, mode):
    # These failed only when run, on TensorFlow's "Input to reshape is a tensor with 12 values,
    # but the requested shape has 4" (keras.metrics.BinaryAccuracy broadcasts (4, 3) against
    # (4, 1) and returns a number). By hand: one line naming the metric and both shapes, as
    # kerasmlp's losses refuse them; a trailing axis of 1 more on either side is fine.
    metric = make()
    update = tf.function(metric.update_state) if mode == "tf_function" else metric.update_state
    with pytest.raises(
        ValueError,
        match=rf"(?m){type(metric).__name__} takes y_true and y_pred of the same shape \(or one "
        rf"with a trailing axis of 1 more\)\. Received: y_true of shape "
        rf"{re.escape(str(true_shape))}, y_pred of shape {re.escape(str(pred_shape))}$",
    ):
        update(tf.zeros(true_shape), tf.zeros(pred_shape))
    for shapes in (((4,), (4, 1)), ((4, 1), (4,)), ((4, 3), (4, 3))):
        update(*map(tf.zeros, shapes))


# A weight shape that no metric can read, and that a flattening would take for one
# weight per example: (1, batch).
@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("make", ALL_FACTORIES.values(), ids=ALL_FACTORIES.keys())
def test_weights_that_do_not_broadcast_are_refused(make, mode):
    rng = np.random.default_rng(4)
    metric = make()
    y_true, y_pred = _inputs_for(metric, rng)
    weight = np.ones((1, len(y_true)), np.float32)
    update = metric.update_state
    if mode == "tf_function":
        update = tf.function(update)
    # By hand: one line naming the argument, what it must be and the shape received
    # (tf.function adds the traceback of the user code above that line).
    with pytest.raises(
        ValueError,
        match=r"(?m)Argument `sample_weight` must be a scalar or "
        r"broadcast to this metric's values, of shape \(16,( 7)?\) .*"
        r"Received: sample_weight.shape=\(1, 16\)$",
    ):
        update(y_true, y_pred, sample_weight=weight)


@pytest.mark.parametrize("name", [n for n in KERAS_ACCURACIES if "binary" not in n])
def test_per_entry_weights_are_refused_where_values_are_per_example(name):
    ours, theirs, inputs = KERAS_ACCURACIES[name]
    y_true, y_pred = inputs(DATA)
    weight = np.ones(y_pred.shape, np.float32)  # (N, NUM_CLASSES)
    # Keras's built-in refuses it too: its broadcast of the weights fails.
    with pytest.raises(tf.errors.InvalidArgumentError):
        theirs().update_state(y_true, y_pred, sample_weight=weight)
    with pytest.raises(ValueError, match=r"Received: sample_weight.shape=\(257, 5\)$"):
        ours().update_state(y_true, y_pred, sample_weight=weight)


# --------------------------------------------------------------------------
# Outputs with a time axis, (batch, steps, d), as a sequence model gives them.

SEQUENCE_SHAPE = (6, 4, 3)  # batch, steps, outputs (classes)
_SEQ_RNG = np.random.default_rng(21)
SEQUENCE_SCORES = _SEQ_RNG.standard_normal(SEQUENCE_SHAPE).astype(np.float32)
SEQUENCE_TARGETS = _SEQ_RNG.standard_normal(SEQUENCE_SHAPE).astype(np.float32)

# (ours, Keras's class of the same meaning, y_true) with SEQUENCE_SCORES as y_pred.
KERAS_SEQUENCE_METRICS = {
    "mean_squared_error": (
        metrics.MeanSquaredError,
        keras.metrics.MeanSquaredError,
        SEQUENCE_TARGETS,
    ),
    "mean_absolute_error": (
        metrics.MeanAbsoluteError,
        keras.metrics.MeanAbsoluteError,
        SEQUENCE_TARGETS,
    ),
    "root_mean_squared_error": (
        metrics.RootMeanSquaredError,
        keras.metrics.RootMeanSquaredError,
        SEQUENCE_TARGETS,
    ),
}
SEQUENCE_LABELS = _SEQ_RNG.integers(0, SEQUENCE_SHAPE[-1], SEQUENCE_SHAPE[:2])
KERAS_SEQUENCE_METRICS.update(
    {
        "sparse_categorical_accuracy": (
            metrics.SparseCategoricalAccuracy,
            keras.metrics.SparseCategoricalAccuracy,
            SEQUENCE_LABELS,
        ),
        "sparse_categorical_accuracy-labels_column": (
            metrics.SparseCategoricalAccuracy,
            keras.metrics.SparseCategoricalAccuracy,
            SEQUENCE_LABELS[..., None],
        ),
        "sparse_top_k_categorical_accuracy": (
            lambda: metrics.SparseTopKCategoricalAccuracy(k=2),
            lambda: keras.metrics.SparseTopKCategoricalAccuracy(k=2),
            SEQUENCE_LABELS,
        ),
        "categorical_accuracy": (
            metrics.CategoricalAccuracy,
            keras.metrics.CategoricalAccuracy,
            np.eye(SEQUENCE_SHAPE[-1], dtype=np.float32)[SEQUENCE_LABELS],
        ),
    }
)
SEQUENCE_WEIGHTS = {
    "none": None,
    "per_example": _SEQ_RNG.uniform(0.0, 2.0, SEQUENCE_SHAPE[:1]).astype(np.float32),
    "per_timestep": _SEQ_RNG.uniform(0.0, 2.0, SEQUENCE_SHAPE[:2]).astype(np.float32),
}


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("weight", SEQUENCE_WEIGHTS.values(), ids=SEQUENCE_WEIGHTS.keys())
@pytest.mark.parametrize("name", KERAS_SEQUENCE_METRICS)
def test_sequence_outputs_and_per_timestep_weights_as_keras(name, weight, mode):
    ours, theirs, y_true = KERAS_SEQUENCE_METRICS[name]
    metric = ours()
    update = tf.function(metric.update_state) if mode == "tf_function" else metric.update_state
    update(y_true, SEQUENCE_SCORES, sample_weight=weight)
    # Expected: Keras's built-in of the same meaning (which weighs timesteps).
    reference = theirs()
    reference.update_state(y_true, SEQUENCE_SCORES, sample_weight=weight)
    np.testing.assert_allclose(metric.result(), reference.result(), **TOLERANCE)


# --------------------------------------------------------------------------
# Keras masks on y_pred (a `Masking` layer before the output): masked rows are absent.


def _zero_rows(scores, masked):
    scores = np.array(scores)
    scores[masked] = 0.0
    return scores


def _mask_rows(scores, masked):
    """`scores` with the rows (or timesteps) in `masked` zeroed and masked by `Masking`."""
    return keras.layers.Masking(0.0)(_zero_rows(scores, masked))


@pytest.mark.parametrize("mode", ["eager", "tf_function"])
@pytest.mark.parametrize("make", ALL_FACTORIES.values(), ids=ALL_FACTORIES.keys())
def test_rows_masked_by_a_keras_mask_count_as_absent(make, mode):
    rng = np.random.default_rng(6)
    metric = make()
    y_true, y_pred = _inputs_for(metric, rng)
    masked = np.arange(len(y_true)) % 3 == 0
    weight = rng.uniform(0.5, 2.0, len(y_true)).astype(np.float32)
    if mode == "eager":
        metric.update_state(y_true, _mask_rows(y_pred, masked), sample_weight=weight)
    else:  # the mask is made in the graph: one set on an argument does not reach inside
        update = tf.function(
            lambda t, p, w: metric.update_state(t, keras.layers.Masking(0.0)(p), w)
        )
        update(y_true, _zero_rows(y_pred, masked), weight)
    # By definition (as Keras's MeanMetricWrapper and the loss read masks): the same metric
    # fed only the rows that are not masked.
    expected = make()
    expected.update_state(y_true[~masked], y_pred[~masked], sample_weight=weight[~masked])
    np.testing.assert_allclose(metric.result(), expected.result(), **TOLERANCE)


@pytest.mark.parametrize("weight", ["none", "per_example", "per_timestep"])
@pytest.mark.parametrize("name", KERAS_SEQUENCE_METRICS)
def test_timesteps_masked_by_a_keras_mask_as_keras(name, weight):
    ours, theirs, y_true = KERAS_SEQUENCE_METRICS[name]
    masked = np.zeros(SEQUENCE_SHAPE[:2], bool)
    masked[:, 2:] = True  # the padding after each sequence
    masked[0, 1] = True
    y_pred = _mask_rows(SEQUENCE_SCORES, masked)
    w = SEQUENCE_WEIGHTS[weight]
    metric = ours()
    metric.update_state(y_true, y_pred, sample_weight=w)
    if weight == "per_example":
        # Keras's built-in fails here ((batch,) weights times a (batch, steps) mask); by
        # hand, each example's weight on each of its timesteps.
        w = np.broadcast_to(w[:, None], SEQUENCE_SHAPE[:2])
    # Expected: Keras's built-in of the same meaning, which weighs timesteps by the mask;
    # for RMSE, the root of Keras's MSE (keras.metrics.RootMeanSquaredError, unlike its
    # MeanSquaredError, does not read masks).
    rmse = name == "root_mean_squared_error"
    reference = keras.metrics.MeanSquaredError() if rmse else theirs()
    reference.update_state(y_true, y_pred, sample_weight=w)
    expected = np.sqrt(reference.result()) if rmse else reference.result()
    np.testing.assert_allclose(metric.result(), expected, **TOLERANCE)


def test_a_masking_layer_in_a_compiled_model_masks_the_metric_as_keras():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((12, 4)).astype(np.float32)
    x[:4] = 0.0  # masked by the Masking layer, and so by the loss and the metrics
    y = rng.integers(0, 3, 12)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Masking(0.0),
            keras.layers.Dense(3, bias_initializer="ones"),
        ]
    )
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            metrics.SparseCategoricalAccuracy(name="ours"),
            keras.metrics.SparseCategoricalAccuracy(name="keras"),
        ],
    )
    logs = model.evaluate(x, y, batch_size=12, verbose=0, return_dict=True)
    # Expected: Keras's built-in, and by hand the accuracy of the 8 rows not masked.
    by_hand = np.mean(np.argmax(model.predict(x[4:], verbose=0), -1) == y[4:])
    assert logs["ours"] == pytest.approx(logs["keras"], abs=1e-7)
    assert logs["ours"] == pytest.approx(by_hand, abs=1e-7)


# --------------------------------------------------------------------------
# Names, configs and argument checks.


@pytest.mark.parametrize(
    "ours, expected",
    [
        # Expected: the default name of Keras's class of the same name.
        (metrics.SparseCategoricalAccuracy(), keras.metrics.SparseCategoricalAccuracy().name),
        (metrics.CategoricalAccuracy(), keras.metrics.CategoricalAccuracy().name),
        (metrics.BinaryAccuracy(), keras.metrics.BinaryAccuracy().name),
        (
            metrics.SparseTopKCategoricalAccuracy(),
            keras.metrics.SparseTopKCategoricalAccuracy().name,
        ),
        (metrics.Precision(3), keras.metrics.Precision().name),
        (metrics.Recall(3), keras.metrics.Recall().name),
        (metrics.F1Score(3), keras.metrics.F1Score().name),
        (metrics.MeanSquaredError(), keras.metrics.MeanSquaredError().name),
        (metrics.MeanAbsoluteError(), keras.metrics.MeanAbsoluteError().name),
        (metrics.RootMeanSquaredError(), keras.metrics.RootMeanSquaredError().name),
        # By hand (no Keras counterpart): the snake_case class name.
        (metrics.ConfusionMatrix(3), "confusion_matrix"),
        (metrics.ExpectedCalibrationError(), "expected_calibration_error"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, keras.metrics.Metric) else "",
)
def test_default_names(ours, expected):
    assert ours.name == expected


# Every public metric class: (an instance, the direction expected of it).
DIRECTIONS = {
    # Expected: the `_direction` of Keras's built-in of the same meaning.
    metrics.SparseCategoricalAccuracy: (
        metrics.SparseCategoricalAccuracy(),
        keras.metrics.SparseCategoricalAccuracy()._direction,
    ),
    metrics.CategoricalAccuracy: (
        metrics.CategoricalAccuracy(),
        keras.metrics.CategoricalAccuracy()._direction,
    ),
    metrics.BinaryAccuracy: (metrics.BinaryAccuracy(), keras.metrics.BinaryAccuracy()._direction),
    metrics.SparseTopKCategoricalAccuracy: (
        metrics.SparseTopKCategoricalAccuracy(),
        keras.metrics.SparseTopKCategoricalAccuracy()._direction,
    ),
    metrics.Precision: (metrics.Precision(3), keras.metrics.Precision()._direction),
    metrics.Recall: (metrics.Recall(3, average=None), keras.metrics.Recall()._direction),
    metrics.F1Score: (metrics.F1Score(3), keras.metrics.F1Score()._direction),
    metrics.MeanSquaredError: (
        metrics.MeanSquaredError(),
        keras.metrics.MeanSquaredError()._direction,
    ),
    metrics.MeanAbsoluteError: (
        metrics.MeanAbsoluteError(),
        keras.metrics.MeanAbsoluteError()._direction,
    ),
    metrics.RootMeanSquaredError: (
        metrics.RootMeanSquaredError(),
        keras.metrics.RootMeanSquaredError()._direction,
    ),
    # By hand (no Keras counterpart): a calibration error is better lower ...
    metrics.ExpectedCalibrationError: (metrics.ExpectedCalibrationError(), "down"),
    # ... and a matrix has no better end, so no `_direction` at all.
    metrics.ConfusionMatrix: (metrics.ConfusionMatrix(3), None),
}


def test_every_public_metric_class_has_an_expected_direction():
    public = {
        obj
        for obj in (getattr(metrics, name) for name in metrics.__all__)
        if isinstance(obj, type) and issubclass(obj, keras.metrics.Metric)
    }
    assert public == set(DIRECTIONS)


@pytest.mark.parametrize("cls", DIRECTIONS, ids=lambda cls: cls.__name__)
def test_direction(cls):
    metric, expected = DIRECTIONS[cls]
    assert type(metric) is cls
    assert getattr(metric, "_direction", None) == expected


# The metrics of the models below with one number as result (EarlyStopping compares
# numbers: not the confusion matrix, nor Recall's per-class vector), and their direction.
SCALAR_METRIC_DIRECTIONS = {
    "classifier": {
        "sparse_categorical_accuracy": "up",
        "sparse_top_k_categorical_accuracy": "up",
        "precision": "up",
        "f1_score": "up",
        "expected_calibration_error": "down",
    },
    "regressor": {
        "mean_squared_error": "down",
        "mean_absolute_error": "down",
        "root_mean_squared_error": "down",
        "binary_accuracy": "up",
        "categorical_accuracy": "up",
    },
}


@pytest.mark.parametrize("stem", SCALAR_METRIC_DIRECTIONS)
def test_early_stopping_in_auto_mode_reads_the_direction(stem):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    if stem == "classifier":
        model, y = _classifier(), rng.integers(0, NUM_CLASSES, 32)
    else:
        model, y = _regressor(), np.eye(2, dtype=np.float32)[rng.integers(0, 2, 32)]
    directions = SCALAR_METRIC_DIRECTIONS[stem]
    callbacks = {
        name: keras.callbacks.EarlyStopping(monitor=f"val_{name}", mode="auto")
        for name in directions
    }
    # Without a `_direction`, mode "auto" raises "Keras isn't able to automatically determine".
    model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0, callbacks=[*callbacks.values()])
    for name, callback in callbacks.items():
        # Expected: the direction listed above, as checked against Keras in test_direction.
        expected = keras.ops.greater if directions[name] == "up" else keras.ops.less
        assert callback.monitor_op is expected, name


@pytest.mark.parametrize("make", ALL_FACTORIES.values(), ids=ALL_FACTORIES.keys())
def test_config_round_trip(make):
    metric = make()
    config = metric.get_config()
    restored = type(metric).from_config(config)
    assert restored.get_config() == config
    # Through Keras serialization, by the registered name alone.
    cls = type(metric)
    registered = keras.saving.get_registered_name(cls)
    assert registered.startswith("kerasmlp>")
    assert keras.saving.get_registered_object(registered) is cls
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(revived) is cls
    assert revived.get_config() == config


# Keras's Precision, Recall and F1Score are per-threshold binary metrics: kerasmlp's share
# only the names (multi-class, `num_classes` first), as their docstrings say.
_KERAS_NAMESAKES = [
    name
    for name in metrics.__all__
    if hasattr(keras.metrics, name) and name not in ("Precision", "Recall", "F1Score")
]


@pytest.mark.parametrize("name", _KERAS_NAMESAKES)
def test_positional_arguments_are_those_of_the_keras_metric_of_the_same_name(name):
    # Reference: the signature of keras.metrics.<name>; code written for it, such as
    # BinaryAccuracy("acc", None, 0.7), means the same here. Extra arguments are keyword-only.
    def positional(cls):
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return [(p.name, p.default) for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]

    ours, theirs = positional(getattr(metrics, name)), positional(getattr(keras.metrics, name))
    assert ours == theirs
    assert getattr(metrics, name)().name == getattr(keras.metrics, name)().name


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: metrics.ConfusionMatrix(3), (2, 5, 3)),  # a sequence model's scores
        (lambda: metrics.F1Score(3), (4,)),  # one probability per example
        (lambda: metrics.Precision(3), (4, 2)),  # another class count
        (lambda: metrics.ExpectedCalibrationError(), (2, 5, 3)),
    ],
    ids=["confusion_sequence", "f1_one_column", "precision_two_classes", "ece_sequence"],
)
def test_scores_not_one_row_per_example_are_refused_in_one_line(make, shape):
    # They failed inside the update with TensorFlow's "Matrix size-incompatible" (or, for
    # two columns of three classes, counted the third class as never predicted).
    metric = make()
    expected = "(batch, 3)" if hasattr(metric, "num_classes") else "(batch, num_classes)"
    with pytest.raises(ValueError) as error:
        metric.update_state(np.zeros(shape[:1], "int32"), np.full(shape, 0.3, "float32"))
    assert str(error.value) == (
        f"{type(metric).__name__} takes one row of scores per example, {expected}. "
        f"Received: y_pred of shape {shape}"
    )


def test_scores_of_unknown_batch_size_pass_the_row_check_in_tf_function():
    metric = metrics.F1Score(3)
    update = tf.function(
        metric.update_state,
        input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 3])],
    )
    update(tf.constant([0, 2]), tf.constant([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))
    # scikit-learn: f1_score([0, 2], [0, 2], average="macro") is 1.0 (class 1 occurs in neither).
    assert float(metric.result()) == 1.0


def test_config_holds_every_argument():
    # By hand: the arguments given to the constructor.
    assert metrics.F1Score(4, average=None, name="f1", dtype="float64").get_config() == {
        "name": "f1",
        "dtype": "float64",
        "num_classes": 4,
        "average": None,
    }
    assert metrics.ExpectedCalibrationError(9, from_logits=True).get_config() == {
        "name": "expected_calibration_error",
        "dtype": "float32",
        "num_bins": 9,
        "from_logits": True,
    }
    assert metrics.BinaryAccuracy("acc", None, 0.25).get_config()["threshold"] == 0.25
    assert metrics.SparseTopKCategoricalAccuracy(k=3).get_config()["k"] == 3


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: metrics.ConfusionMatrix(1),
            "Argument `num_classes` must be an integer >= 2. Received: num_classes=1",
        ),
        (
            lambda: metrics.F1Score(2.5),
            "Argument `num_classes` must be an integer >= 2. Received: num_classes=2.5",
        ),
        (
            lambda: metrics.Precision(True),
            "Argument `num_classes` must be an integer >= 2. Received: num_classes=True",
        ),
        (
            lambda: metrics.F1Score(3, average="mean"),
            "Argument `average` must be one of 'macro', 'micro', 'weighted', None. "
            "Received: average='mean'",
        ),
        (
            lambda: metrics.SparseTopKCategoricalAccuracy(k=0),
            "Argument `k` must be an integer >= 1. Received: k=0",
        ),
        (
            lambda: metrics.ExpectedCalibrationError(num_bins=0),
            "Argument `num_bins` must be an integer >= 1. Received: num_bins=0",
        ),
        (
            lambda: metrics.BinaryAccuracy(threshold=1.0),
            "Argument `threshold` must be a number strictly between 0 and 1. "
            "Received: threshold=1.0",
        ),
        (
            lambda: metrics.BinaryAccuracy(from_logits="false"),
            "Argument `from_logits` must be a bool. Received: from_logits='false'",
        ),
        (
            lambda: metrics.ExpectedCalibrationError(from_logits=None),
            "Argument `from_logits` must be a bool. Received: from_logits=None",
        ),
        (
            # Keras's order puts `name` first: a threshold given by position lands there.
            lambda: metrics.BinaryAccuracy(0.25),
            "Argument `name` must be a non-empty string or None. Received: name=0.25",
        ),
    ],
    ids=[
        "num_classes_1",
        "num_classes_float",
        "num_classes_bool",
        "average",
        "k",
        "num_bins",
        "threshold",
        "from_logits_string",
        "from_logits_none",
        "name_number",
    ],
)
def test_invalid_arguments_are_refused_at_construction(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value) == message


@pytest.mark.parametrize("name", _KERAS_NAMESAKES + ["ConfusionMatrix", "ExpectedCalibrationError"])
def test_name_none_names_the_metric_after_its_class_as_keras_does(name):
    # Keras: `Metric(name=None)` takes the class's name in snake case (keras.metrics.AUC
    # is "auc"), with "_1", "_2" ... once the name is taken in the process; kerasmlp
    # refused None.
    cls = getattr(metrics, name)
    metric = cls(3, name=None) if name == "ConfusionMatrix" else cls(name=None)
    if hasattr(keras.metrics, name):  # Keras's own, its "_1" left out
        expected = re.sub(r"_\d+$", "", getattr(keras.metrics, name)(name=None).name)
    else:  # by hand, as Keras's rule would name them
        expected = {"ConfusionMatrix": "confusion_matrix"}.get(name, "expected_calibration_error")
    assert re.fullmatch(rf"{expected}(_\d+)?", metric.name), metric.name


# --------------------------------------------------------------------------
# Reload anywhere.


def _classifier():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(
                NUM_CLASSES, kernel_initializer=keras.initializers.GlorotUniform(seed=1)
            ),
        ]
    )
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            metrics.SparseCategoricalAccuracy(),
            metrics.SparseTopKCategoricalAccuracy(k=2),
            metrics.ConfusionMatrix(NUM_CLASSES),
            metrics.Precision(NUM_CLASSES, average="micro"),
            metrics.Recall(NUM_CLASSES, average=None),
            metrics.F1Score(NUM_CLASSES, average="weighted"),
            metrics.ExpectedCalibrationError(num_bins=5, from_logits=True),
        ],
    )
    return model


def _regressor():
    # Two outputs against one-hot targets: valid for regression, binary and
    # categorical accuracy alike.
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(2, kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
        ]
    )
    model.compile(
        optimizer="sgd",
        loss="mse",
        metrics=[
            metrics.MeanSquaredError(),
            metrics.MeanAbsoluteError(),
            metrics.RootMeanSquaredError(),
            metrics.BinaryAccuracy(threshold=0.4, from_logits=True),
            metrics.CategoricalAccuracy(),
        ],
    )
    return model


def test_saved_models_reload_in_a_fresh_process(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    arrays = {
        "x": x,
        "y_classifier": rng.integers(0, NUM_CLASSES, 64),
        "y_regressor": np.eye(2, dtype=np.float32)[rng.integers(0, 2, 64)],
    }
    np.savez(tmp_path / "data.npz", **arrays)
    expected, paths = {}, []
    for stem, model in (("classifier", _classifier()), ("regressor", _regressor())):
        logs = model.evaluate(x, arrays[f"y_{stem}"], batch_size=32, verbose=0, return_dict=True)
        expected[stem] = {name: np.asarray(value) for name, value in logs.items()}
        model.save(tmp_path / f"{stem}.keras")
        paths.append(str(tmp_path / f"{stem}.keras"))

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(RELOAD_WORKER), str(tmp_path / "data.npz"), *paths],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])

    for stem, logs in expected.items():
        # Expected: the same model evaluated before saving, in this process.
        assert sorted(reloaded[stem]) == sorted(logs), stem
        for name, value in logs.items():
            np.testing.assert_allclose(
                reloaded[stem][name], value, err_msg=f"{stem}/{name}", **TOLERANCE
            )


def test_docstring_examples_run():
    # The `Example:` blocks of kerasmlp.metrics, run as doctests.
    result = doctest.testmod(metrics)
    assert result.attempted > 0
    assert result.failed == 0


class TestBinaryAUC:
    """kerasmlp.metrics.BinaryAUC is keras.metrics.AUC on the loop's (batch, 2) logits."""

    def _data(self):
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 2, size=200)
        logits = rng.normal(size=(200, 2)) + labels[:, None] * np.array([0.0, 1.0])
        return labels, logits.astype("float32")

    def test_matches_keras_auc_on_probabilities_and_sklearn(self):
        labels, logits = self._data()
        metric = metrics.BinaryAUC(num_thresholds=2000)
        metric.update_state(labels, logits)
        # Reference 1: Keras's AUC on softmax probabilities of class 1.
        probability = np.asarray(keras.ops.softmax(logits, axis=-1))[:, 1]
        keras_auc = keras.metrics.AUC(num_thresholds=2000)
        keras_auc.update_state(labels, probability)
        np.testing.assert_allclose(float(metric.result()), float(keras_auc.result()), rtol=1e-5)
        # Reference 2: scikit-learn's exact ROC AUC (Keras's thresholds approximate it).
        exact = skm.roc_auc_score(labels, probability)
        np.testing.assert_allclose(float(metric.result()), exact, atol=2e-3)

    def test_sigmoid_head_form_and_weights(self):
        labels, logits = self._data()
        z = logits[:, 1:] - logits[:, :1]
        from_sigmoid = metrics.BinaryAUC()
        from_sigmoid.update_state(labels, np.concatenate([np.zeros_like(z), z], axis=-1))
        from_softmax = metrics.BinaryAUC()
        from_softmax.update_state(labels, logits)
        np.testing.assert_allclose(float(from_sigmoid.result()), float(from_softmax.result()))
        weights = np.linspace(0.1, 2.0, 200)
        weighted = metrics.BinaryAUC(num_thresholds=2000)
        weighted.update_state(labels, logits, sample_weight=weights)
        probability = np.asarray(keras.ops.softmax(logits, axis=-1))[:, 1]
        exact = skm.roc_auc_score(labels, probability, sample_weight=weights)
        np.testing.assert_allclose(float(weighted.result()), exact, atol=2e-3)

    def test_config_round_trip_and_direction(self):
        metric = metrics.BinaryAUC(num_thresholds=50, curve="PR", name="pr_auc")
        clone = metrics.BinaryAUC.from_config(metric.get_config())
        assert (clone.num_thresholds, clone.curve.name, clone.name) == (50, "PR", "pr_auc")
        assert keras.saving.get_registered_name(metrics.BinaryAUC) == "kerasmlp>BinaryAUC"
        assert clone._direction == "up"
