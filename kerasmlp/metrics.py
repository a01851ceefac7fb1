"""Keras metrics for classification, calibration and regression.

Each metric is a small pure function of one batch (written with `keras.ops`)
plus a thin `keras.metrics.Metric` subclass that adds the batch's statistics to
state variables made with `add_variable`. Those variables are summed across
replicas (aggregation "sum", synchronisation "on read"), so a metric created
under a `tf.distribute` strategy scope and updated inside `strategy.run` reads
back the same value as one metric fed the whole global batch.

Conventions shared by the classification metrics:

- `y_true` holds integer class ids of shape `(batch,)` or `(batch, 1)` (one-hot
  rows for `CategoricalAccuracy`, which refuses class ids, where Keras's silently
  compares every prediction with one class; the other metrics refuse one-hot rows;
  both with a ValueError while tracing); `y_pred` holds one row of scores per example,
  `(batch, num_classes)`, with 2 classes or more (one sigmoid unit's `(batch, 1)`,
  whose argmax is always class 0, is refused). Probabilities and logits give the
  same argmax, so both are accepted wherever only the predicted class matters. The accuracies also
  take a sequence model's `(batch, steps, num_classes)` scores with
  `(batch, steps)` labels, as Keras's do; the confusion-matrix metrics and
  `ExpectedCalibrationError` refuse any other shape than one row per example
  (`(batch, num_classes)`) with a ValueError.
- `sample_weight` is `None`, a scalar (the weight of every example), or one
  weight per example (`(batch,)` or `(batch, 1)`); every count is a sum of
  weights. `BinaryAccuracy`, whose values are one per entry of `(batch, d)`
  labels, also takes weights that broadcast to them, `(1, d)` or `(batch, d)`,
  and weighs entries, as Keras does; the regression metrics, fed
  `(batch, steps, d)` outputs, take one weight per timestep, `(batch, steps)`,
  as Keras's do. Weights of any other shape are refused
  with a ValueError when the update is traced, never reread as per-example.
- `BinaryAccuracy` and the regression metrics take `y_true` and `y_pred` of one
  shape, or one with a trailing axis of 1 more (aligned as Keras aligns them);
  other shapes are refused with a ValueError while tracing, as kerasmlp's losses
  refuse them.
- A Keras mask on `y_pred` (left by a `Masking` layer, for example) weighs the
  masked examples or timesteps 0, as in Keras's metrics and losses: they count
  as absent. (Keras's own `RootMeanSquaredError` alone ignores masks; here it
  is the root of the masked `MeanSquaredError`.)
- Labels must lie in `[0, num_classes)`. They are not checked inside the update
  (it runs in compiled training steps): a label out of range counts as a miss
  for the accuracies and is left out of the confusion matrix (its one-hot row
  is zero), and so of precision, recall and F1.
- Division by zero (no examples yet, a class never predicted) gives 0, with no
  warning, as scikit-learn does with its default `zero_division`.

A metric with a Keras namesake takes its arguments in the Keras class's order
(`BinaryAccuracy("acc", None, 0.7)` as in Keras), and `name` must be a string.

Each metric with a better end sets `_direction`, "up" or "down", as Keras's
metrics do; `keras.callbacks.EarlyStopping` and `ModelCheckpoint` read it in
`mode="auto"`. `ConfusionMatrix` has none.
"""

from __future__ import annotations

import numbers
import warnings

import keras
from keras import ops

try:  # Keras >= 3.6 keeps masks behind this helper (a dict for tensors without attributes).
    from keras.src.backend.common.masking import get_keras_mask as _get_keras_mask
except ImportError:  # pragma: no cover - older Keras stored the mask as a plain attribute

    def _get_keras_mask(x):
        return getattr(x, "_keras_mask", None)


__all__ = [
    "SparseCategoricalAccuracy",
    "CategoricalAccuracy",
    "BinaryAccuracy",
    "SparseTopKCategoricalAccuracy",
    "ConfusionMatrix",
    "Precision",
    "Recall",
    "F1Score",
    "ExpectedCalibrationError",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "RootMeanSquaredError",
    "sparse_categorical_matches",
    "categorical_matches",
    "binary_matches",
    "sparse_top_k_matches",
    "confusion_matrix_update",
    "class_presence_update",
    "precision_recall_f1_from_confusion",
    "calibration_bins_update",
    "expected_calibration_error_from_bins",
    "squared_errors",
    "absolute_errors",
]

AVERAGES = ("macro", "micro", "weighted", None)


# --------------------------------------------------------------------------
# Argument checks (run in constructors, never in traced code).


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )
    return int(value)


def _check_name(name) -> str | None:
    # Keras fails later, inside `add_variable`, with "'float' object has no attribute
    # 'replace'"; a number here is most likely a threshold or k given by position. None
    # is Keras's: the metric takes its class's name in snake case.
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(
            f"Argument `name` must be a non-empty string or None. Received: name={name!r}"
        )
    return name


def _check_score_rows(metric, y_pred, num_classes: int | None = None) -> None:
    """Refuses scores that are not one row per example, at trace time (a TensorFlow shape error
    from deep inside the update otherwise): sequence outputs, 1-D scores, another class count."""
    shape = ops.convert_to_tensor(y_pred).shape
    classes = shape[-1] if len(shape) else None
    if len(shape) != 2 or (num_classes is not None and classes not in (None, num_classes)):
        expected = f"(batch, {num_classes})" if num_classes is not None else "(batch, num_classes)"
        raise ValueError(
            f"{type(metric).__name__} takes one row of scores per example, {expected}. "
            f"Received: y_pred of shape {tuple(shape)}"
        )


def _check_class_ids(metric, y_true, y_pred) -> None:
    """Refuses, at trace time, labels with a class axis of their own (one-hot rows, most likely),
    which the update would fail on only when run, with a TensorFlow error about element counts.
    """
    true_shape = tuple(ops.convert_to_tensor(y_true).shape)
    pred_shape = tuple(ops.convert_to_tensor(y_pred).shape)
    if len(true_shape) == len(pred_shape) >= 2 and true_shape[-1] not in (None, 1):
        raise ValueError(
            f"{type(metric).__name__} takes integer class ids, one per row of scores: y_true of "
            f"shape {pred_shape[:-1]} or {(*pred_shape[:-1], 1)}; for one-hot labels, pass "
            f"their argmax. Received: y_true of shape {true_shape}, y_pred of shape {pred_shape}"
        )


def _check_class_scores(metric, y_pred) -> None:
    """Refuses, at trace time, scores with a class axis of 1 (one sigmoid unit's, most likely),
    whose argmax is class 0 whatever the score: a silent wrong value otherwise, as in Keras."""
    shape = tuple(ops.convert_to_tensor(y_pred).shape)
    if shape and shape[-1] == 1:
        raise ValueError(
            f"{type(metric).__name__} takes one score per class, 2 or more, on y_pred's last "
            "axis (the argmax of a single sigmoid output is always class 0). "
            f"Received: y_pred of shape {shape}"
        )


def _check_one_hot(metric, y_true, y_pred) -> None:
    """Refuses, at trace time, labels that are not one row per row of scores (integer class ids,
    most likely), whose argmax would be one class for the whole batch, read silently as a score.
    """
    true_shape = tuple(ops.convert_to_tensor(y_true).shape)
    pred_shape = tuple(ops.convert_to_tensor(y_pred).shape)
    if not (len(true_shape) == len(pred_shape) >= 1) or (
        None not in (true_shape[-1], pred_shape[-1]) and true_shape[-1] != pred_shape[-1]
    ):
        raise ValueError(
            f"{type(metric).__name__} takes one-hot labels, y_true of y_pred's shape "
            f"{pred_shape}; for integer class ids, use SparseCategoricalAccuracy. "
            f"Received: y_true of shape {true_shape}, y_pred of shape {pred_shape}"
        )


def _check_same_entries(metric, y_true, y_pred) -> None:
    """Refuses, at trace time, targets and predictions whose shapes differ other than by a
    trailing axis of 1 (Keras's alignment), which the update would fail on only when run, with
    a TensorFlow error about element counts (as kerasmlp's losses refuse them).
    """
    true_shape = tuple(ops.convert_to_tensor(y_true).shape)
    pred_shape = tuple(ops.convert_to_tensor(y_pred).shape)
    a, b = true_shape, pred_shape
    if len(a) == len(b) + 1 and a[-1] == 1:
        a = a[:-1]
    elif len(b) == len(a) + 1 and b[-1] == 1:
        b = b[:-1]
    if len(a) != len(b) or any(None not in (m, n) and m != n for m, n in zip(a, b, strict=True)):
        raise ValueError(
            f"{type(metric).__name__} takes y_true and y_pred of the same shape (or one with "
            f"a trailing axis of 1 more). Received: y_true of shape {true_shape}, "
            f"y_pred of shape {pred_shape}"
        )


def _reads_logits(metric, y_pred, from_logits: bool) -> bool:
    """`from_logits`, but False for the output of a softmax or sigmoid activation, with a warning.

    As kerasmlp's losses (and Keras's) tell such outputs apart at trace time: Keras's activation
    leaves its input on the output as `_keras_logits`, and in a graph the producing op shows.
    Their softmax again would squash every confidence towards `1 / num_classes`, silently.
    """
    if not from_logits:
        return False
    try:  # a graph tensor; an eager one has no `op` (AttributeError)
        activation = y_pred.op.type if y_pred.op.type in ("Softmax", "Sigmoid") else None
    except AttributeError:
        activation = None
    if activation is None and hasattr(y_pred, "_keras_logits"):
        activation = "softmax or sigmoid"
    if activation is None:
        return True
    warnings.warn(
        f"{type(metric).__name__} received `from_logits=True`, but `y_pred` was produced by a "
        f"{activation.lower()} activation and thus holds probabilities. The metric reads them "
        "as probabilities. Was this intended?",
        stacklevel=3,
    )
    return False


def _check_average(average):
    if average not in AVERAGES:
        allowed = ", ".join(repr(a) for a in AVERAGES)
        raise ValueError(
            f"Argument `average` must be one of {allowed}. Received: average={average!r}"
        )
    return average


def _check_bool(name: str, value) -> bool:
    # As kerasmlp's losses: `bool("false")` would be True, silently.
    if not isinstance(value, bool):
        raise ValueError(f"Argument `{name}` must be a bool. Received: {name}={value!r}")
    return value


def _check_threshold(threshold) -> float:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not 0.0 < threshold < 1.0
    ):
        raise ValueError(
            "Argument `threshold` must be a number strictly between 0 and 1. "
            f"Received: threshold={threshold!r}"
        )
    return float(threshold)


# --------------------------------------------------------------------------
# Pure functions of one batch.


def _labels(y_true):
    """Integer class ids of shape `(batch,)` from `(batch,)` or `(batch, 1)`."""
    return ops.cast(ops.reshape(y_true, (-1,)), "int32")


def _row_labels(y_true, y_pred):
    """Integer class ids, one per row of scores: `y_pred`'s shape without its class axis.

    `(batch,)` from `(batch,)` or `(batch, 1)`; `(batch, steps)` from `(batch, steps)` or
    `(batch, steps, 1)` for a sequence model's `(batch, steps, num_classes)` scores.
    """
    return ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])


def _per_example_mean(values):
    """Mean over every axis but the first; a 1-D input is one value per example."""
    if len(values.shape) <= 1:
        return values
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


def _match_ranks(values, weights):
    """Keras's `squeeze_or_expand_to_same_rank`: ranks one apart meet at a trailing axis of 1."""
    values_rank, weights_rank = len(values.shape), len(weights.shape)
    if values_rank == weights_rank + 1 and values.shape[-1] == 1:
        if weights_rank == 1:
            return values, ops.expand_dims(weights, -1)
        return ops.squeeze(values, -1), weights
    if weights_rank == values_rank + 1 and weights.shape[-1] == 1:
        if values_rank == 1:
            return ops.expand_dims(values, -1), weights
        return values, ops.squeeze(weights, -1)
    return values, weights


def _check_weight_shape(weights, values):
    """Refuses, while tracing, weights that cannot broadcast to the leading axes of `values`."""
    weights_shape, values_shape = tuple(weights.shape), tuple(values.shape)
    fits = len(weights_shape) <= len(values_shape) and all(
        w is None or v is None or w in (1, v)
        for w, v in zip(weights_shape, values_shape[: len(weights_shape)], strict=True)
    )
    if not fits:
        raise ValueError(
            "Argument `sample_weight` must be a scalar or broadcast to this metric's values, "
            f"of shape {values_shape} (one row per example), as in Keras. "
            f"Received: sample_weight.shape={weights_shape}"
        )


def _samplewise(values, sample_weight, dtype):
    """Weighted values and weights per example, reduced as Keras's metrics reduce them.

    As `keras.metrics.Mean` (`reduce_to_samplewise_values`): the weights meet the
    values at the same rank, the values are averaged down to the weights' rank,
    the weights are broadcast to them, and both are averaged over the remaining
    axes. So `(batch,)` and `(batch, 1)` weights weigh examples, and `(1, d)` or
    `(batch, d)` weights weigh the entries of `(batch, d)` values. A scalar weighs
    every example (where Keras would weigh the batch as a whole as one example).

    Returns:
        `(weighted_values, weights)`, each `(batch,)`; the weighted mean is
        `sum(weighted_values) / sum(weights)`.

    Raises:
        ValueError: While tracing, if the weights cannot broadcast to the values.
    """
    values = ops.cast(values, dtype)
    if sample_weight is None:
        values = _per_example_mean(values)
        return values, ops.ones_like(values)
    weights = ops.cast(sample_weight, dtype)
    if len(weights.shape) == 0:
        values = _per_example_mean(values)
        return values * weights, weights * ops.ones_like(values)
    values, weights = _match_ranks(values, weights)
    _check_weight_shape(weights, values)
    if len(values.shape) > len(weights.shape):
        values = ops.mean(values, axis=tuple(range(len(weights.shape), len(values.shape))))
    weights = ops.broadcast_to(weights, ops.shape(values))
    return _per_example_mean(values * weights), _per_example_mean(weights)


def _masked_weights(sample_weight, y_pred, dtype):
    """`sample_weight` times the Keras mask that `y_pred` carries, if any, as Keras's metrics do.

    A `Masking` layer (or any layer that computes a mask) leaves a mask on the model's
    output; Keras's `MeanMetricWrapper` multiplies it into the weights, so masked examples
    (or timesteps) count as absent, as they do in the loss. Weights of a lower rank than the
    mask (one per example against a mask per timestep) weigh each example's entries.
    """
    mask = _get_keras_mask(y_pred)
    if mask is None:
        return sample_weight
    mask = ops.cast(mask, dtype)
    if sample_weight is None:
        return mask
    weights = ops.cast(sample_weight, dtype)
    mask, weights = _match_ranks(mask, weights)
    if 0 < len(weights.shape) < len(mask.shape):
        weights = ops.reshape(
            weights, (*ops.shape(weights), *[1] * (len(mask.shape) - len(weights.shape)))
        )
    return weights * mask


def _example_weights(sample_weight, values, dtype):
    """One weight per example, shaped like `values` `(batch,)`; see `_samplewise`."""
    return _samplewise(values, sample_weight, dtype)[1]


def _as_float(x):
    """`x` as a float tensor to compute in: float64 stays float64 (Keras's metrics
    compute in the predictions' dtype), every other dtype becomes float32."""
    x = ops.convert_to_tensor(x)
    return x if keras.backend.standardize_dtype(x.dtype) == "float64" else ops.cast(x, "float32")


def _predicted_classes(y_pred):
    return ops.cast(ops.argmax(y_pred, axis=-1), "int32")


def sparse_categorical_matches(y_true, y_pred):
    """Whether the top-scoring class is the true class, per example.

    Formula:
        match_i = [argmax_c y_pred[i, c] == y_true[i]]

    Args:
        y_true: Integer class ids, `(batch,)` or `(batch, 1)`; `(batch, steps)` for
            `(batch, steps, num_classes)` scores.
        y_pred: Scores (probabilities or logits), `(batch, num_classes)` or
            `(batch, steps, num_classes)`.

    Returns:
        Float32 tensor of 0s and 1s, `y_pred`'s shape without its class axis. Ties go to the
        lowest class id.

    Example:
        >>> sparse_categorical_matches([2, 0], [[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]]).numpy().tolist()
        [1.0, 0.0]
    """
    matches = ops.equal(_predicted_classes(y_pred), _row_labels(y_true, y_pred))
    return ops.cast(matches, "float32")


def categorical_matches(y_true, y_pred):
    """Whether the top-scoring class is the one-hot true class, per example.

    Formula:
        match_i = [argmax_c y_pred[i, c] == argmax_c y_true[i, c]]

    Args:
        y_true: One-hot (or soft) labels, `(batch, num_classes)`.
        y_pred: Scores (probabilities or logits), `(batch, num_classes)`.

    Returns:
        Float32 tensor of 0s and 1s, `(batch,)`.

    Example:
        >>> y_true, y_pred = [[0, 0, 1], [1, 0, 0]], [[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]]
        >>> categorical_matches(y_true, y_pred).numpy().tolist()
        [1.0, 0.0]
    """
    return ops.cast(ops.equal(_predicted_classes(y_pred), _predicted_classes(y_true)), "float32")


def binary_matches(y_true, y_pred, threshold: float = 0.5, from_logits: bool = False):
    """Fraction of an example's binary outputs on the right side of the threshold.

    Formula:
        p = sigmoid(y_pred) if from_logits else y_pred
        match_i = mean_j [ [p[i, j] > threshold] == y_true[i, j] ]

    Args:
        y_true: 0/1 labels, `(batch,)`, `(batch, 1)` or `(batch, d)`.
        y_pred: Probabilities or logits with the same number of entries.
        threshold: Probability above which a prediction counts as 1 (default 0.5).
        from_logits: Whether `y_pred` holds logits (default False).

    Returns:
        Float32 tensor, `(batch,)`; for one output per example, 0s and 1s.

    Example:
        >>> binary_matches([1, 0, 1], [0.9, 0.6, 0.2]).numpy().tolist()
        [1.0, 0.0, 0.0]
    """
    return _per_example_mean(_binary_entry_matches(y_true, y_pred, threshold, from_logits))


def _binary_entry_matches(y_true, y_pred, threshold: float, from_logits: bool):
    """0s and 1s, one per entry of `y_pred`, `(batch, d)` (`(batch, 1)` for `(batch,)`)."""
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) == 1:
        y_pred = ops.expand_dims(y_pred, -1)
    y_pred = _as_float(y_pred)
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
    if from_logits:
        y_pred = ops.sigmoid(y_pred)
    predicted = ops.cast(ops.greater(y_pred, threshold), y_pred.dtype)
    return ops.cast(ops.equal(predicted, y_true), "float32")


def sparse_top_k_matches(y_true, y_pred, k: int = 5, from_sorted_ids: bool = False):
    """Whether the true class is among the `k` highest scores, per example.

    The true class is in the top `k` when fewer than `k` classes score strictly
    higher; classes tied with it at the boundary all count as inside, as in
    `tf.math.in_top_k`. This costs one comparison per score (no sort). A row with a
    NaN or infinite score is a miss, as in `tf.math.in_top_k` (no score is strictly
    above a NaN, so the count alone would call it a hit).

    Formula:
        match_i = [ #{c : y_pred[i, c] > y_pred[i, y_true[i]]} < k  and  y_pred[i] finite ]

    Args:
        y_true: Integer class ids, `(batch,)` or `(batch, 1)`; `(batch, steps)` for
            `(batch, steps, num_classes)` scores.
        y_pred: Scores (probabilities or logits), `(batch, num_classes)` or
            `(batch, steps, num_classes)`; with `from_sorted_ids`, class ids from the
            highest score down, `(batch, N)` or `(batch, steps, N)`.
        k: How many top classes count as a hit (default 5).
        from_sorted_ids: Whether `y_pred` holds sorted class ids (as Keras's
            `sparse_top_k_categorical_accuracy`): a hit is the label among the first `k`.

    Returns:
        Float32 tensor of 0s and 1s, `y_pred`'s shape without its class axis.

    Example:
        >>> y_pred = [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]
        >>> sparse_top_k_matches([0, 2], y_pred, k=2).numpy().tolist()
        [1.0, 0.0]
    """
    y_pred = ops.convert_to_tensor(y_pred)  # a nested list cannot be sliced as below
    labels = _row_labels(y_true, y_pred)
    if from_sorted_ids:
        top = ops.cast(y_pred[..., :k], "int32")
        return ops.cast(ops.any(ops.equal(top, ops.expand_dims(labels, -1)), axis=-1), "float32")
    num_classes = ops.shape(y_pred)[-1]
    # Clipped so that an out-of-range label cannot make the gather fail; it is a miss.
    in_range = ops.logical_and(ops.greater_equal(labels, 0), ops.less(labels, num_classes))
    safe_labels = ops.expand_dims(ops.clip(labels, 0, num_classes - 1), -1)
    true_scores = ops.take_along_axis(y_pred, safe_labels, axis=-1)
    higher = ops.sum(ops.cast(ops.greater(y_pred, true_scores), "int32"), axis=-1)
    valid = ops.logical_and(in_range, ops.all(ops.isfinite(y_pred), axis=-1))
    return ops.cast(ops.logical_and(valid, ops.less(higher, k)), "float32")


def confusion_matrix_update(y_true, y_pred, num_classes: int, sample_weight=None):
    """The weighted confusion matrix of one batch.

    Computed as a product of one-hot matrices, which is deterministic on every
    device and costs `batch * num_classes**2` multiply-adds (tiny for the class
    counts of this project).

    Formula:
        cm[t, p] = sum_i w_i [y_true[i] == t] [argmax_c y_pred[i, c] == p]

    Args:
        y_true: Integer class ids, `(batch,)` or `(batch, 1)`.
        y_pred: Scores (probabilities or logits), `(batch, num_classes)`.
        num_classes: Number of classes.
        sample_weight: Optional weights: None, a scalar or one per example.

    Returns:
        Float32 tensor `(num_classes, num_classes)`; rows are true classes,
        columns predicted classes (as `sklearn.metrics.confusion_matrix`).

    Example:
        >>> y_pred = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]
        >>> confusion_matrix_update([0, 1, 1], y_pred, 2).numpy().tolist()
        [[1.0, 0.0], [1.0, 1.0]]
    """
    labels = _labels(y_true)
    true_hot = ops.one_hot(labels, num_classes, dtype="float32")
    pred_hot = ops.one_hot(_predicted_classes(y_pred), num_classes, dtype="float32")
    weights = _example_weights(sample_weight, ops.cast(labels, "float32"), "float32")
    return ops.matmul(ops.transpose(true_hot * ops.expand_dims(weights, -1)), pred_hot)


def class_presence_update(y_true, y_pred, num_classes: int, *, mask=None):
    """How many examples of one batch show each class, as label or as prediction.

    Unweighted on purpose: a class counts in the macro average when it occurs in
    `y_true` or in the predictions, whatever the weights of its examples, as in
    scikit-learn, whose labels are `unique_labels(y_true, y_pred)`. The weighted
    confusion matrix cannot tell such a class from one that never occurs once all
    its examples carry weight 0.

    Formula:
        presence[c] = sum_i [y_true[i] == c or argmax_k y_pred[i, k] == c]

    Args:
        y_true: Integer class ids, `(batch,)` or `(batch, 1)`.
        y_pred: Scores (probabilities or logits), `(batch, num_classes)`.
        num_classes: Number of classes.
        mask: Optional, one boolean per example (a Keras mask); examples where it is
            False are left out, as if absent.

    Returns:
        Float32 tensor `(num_classes,)`.

    Example:
        >>> y_pred = [[0.9, 0.1, 0.0], [0.8, 0.2, 0.0]]  # both predict class 0
        >>> class_presence_update([0, 1], y_pred, 3).numpy().tolist()
        [2.0, 1.0, 0.0]
    """
    true_hot = ops.one_hot(_labels(y_true), num_classes, dtype="float32")
    pred_hot = ops.one_hot(_predicted_classes(y_pred), num_classes, dtype="float32")
    shown = ops.maximum(true_hot, pred_hot)
    if mask is not None:
        shown = shown * ops.expand_dims(ops.cast(ops.reshape(mask, (-1,)), "float32"), -1)
    return ops.sum(shown, axis=0)


def precision_recall_f1_from_confusion(
    confusion_matrix, average: str | None = "macro", *, class_presence=None
):
    """Precision, recall and F1 score from a confusion matrix.

    Per class `c`, with `tp = cm[c, c]`, `predicted = sum_t cm[t, c]` and
    `support = sum_p cm[c, p]`, a ratio with a zero denominator is 0 (as
    scikit-learn's default `zero_division`).

    Formula:
        precision_c = tp / predicted
        recall_c = tp / support
        f1_c = 2 tp / (predicted + support)
        macro: mean of the per-class values over the classes that occur as a
               label or a prediction (`class_presence > 0`), like scikit-learn
               without `labels=`; a class whose examples all weigh 0 occurs and
               scores 0
        weighted: sum_c support_c * value_c / sum_c support_c
        micro: sum_c tp / sum_{t,p} cm  (the accuracy, for single-label data)
        None: the per-class vectors

    Args:
        confusion_matrix: `(num_classes, num_classes)`, rows true, columns predicted.
        average: "macro" (default), "micro", "weighted" or None.
        class_presence: Unweighted count of the examples showing each class, as
            from `class_presence_update`, `(num_classes,)`. Only "macro" reads it.
            Default None: a class occurs when its row or column of the matrix is
            not all zero, which is exact when no sample weight is 0.

    Returns:
        `(precision, recall, f1)`: three scalars, or three `(num_classes,)`
        vectors when `average` is None; float32, or the matrix's float dtype.

    Example:
        >>> scores = precision_recall_f1_from_confusion([[1.0, 0.0], [1.0, 1.0]], "macro")
        >>> [round(float(s), 4) for s in scores]
        [0.75, 0.75, 0.6667]
    """
    _check_average(average)
    cm = ops.convert_to_tensor(confusion_matrix)
    if not keras.backend.is_float_dtype(cm.dtype):
        cm = ops.cast(cm, "float32")
    tp = ops.diagonal(cm)
    predicted = ops.sum(cm, axis=0)
    support = ops.sum(cm, axis=1)
    if average == "micro":
        micro = ops.divide_no_nan(ops.sum(tp), ops.sum(cm))
        return micro, micro, micro
    precision = ops.divide_no_nan(tp, predicted)
    recall = ops.divide_no_nan(tp, support)
    # 2 P R / (P + R) with the common factor tp cancelled; 0 when tp == 0.
    f1 = ops.divide_no_nan(2.0 * tp, predicted + support)
    if average is None:
        return precision, recall, f1
    if average == "weighted":
        class_weights = support
    else:  # macro: classes never seen, neither as label nor as prediction, are left out.
        occurrences = predicted + support if class_presence is None else class_presence
        class_weights = ops.cast(ops.greater(occurrences, 0), cm.dtype)
    total = ops.sum(class_weights)
    return tuple(
        ops.divide_no_nan(ops.sum(v * class_weights), total) for v in (precision, recall, f1)
    )


def calibration_bins_update(
    y_true, y_pred, num_bins: int, sample_weight=None, from_logits: bool = False
):
    """Per-bin weight, confidence and correctness sums of one batch, for ECE.

    The confidence of an example is its largest class probability; bin `b`
    covers `[b / num_bins, (b + 1) / num_bins)`, the last bin also holding 1.0.

    Formula:
        p_i = softmax(y_pred[i]) if from_logits else y_pred[i]
        conf_i = max_c p_i[c],  bin_i = min(floor(conf_i * num_bins), num_bins - 1)
        counts[b] = sum_{i in b} w_i
        confidence_sums[b] = sum_{i in b} w_i conf_i
        correct_sums[b] = sum_{i in b} w_i [argmax_c p_i[c] == y_true[i]]

    Args:
        y_true: Integer class ids, `(batch,)` or `(batch, 1)`.
        y_pred: Probabilities (or logits with `from_logits=True`), `(batch, num_classes)`.
        num_bins: Number of equal-width confidence bins on [0, 1].
        sample_weight: Optional weights: None, a scalar or one per example.
        from_logits: Whether `y_pred` holds logits (default False).

    Returns:
        `(counts, confidence_sums, correct_sums)`, each `(num_bins,)`, float32 (float64
        for float64 `y_pred`).

    Example:
        >>> sums = calibration_bins_update([0, 1], [[0.9, 0.1], [0.7, 0.3]], num_bins=2)
        >>> [[round(float(x), 4) for x in s] for s in sums]
        [[0.0, 2.0], [0.0, 1.6], [0.0, 1.0]]
    """
    y_pred = _as_float(y_pred)
    probabilities = ops.softmax(y_pred, axis=-1) if from_logits else y_pred
    # `initial`: keras.ops.max refuses an empty tensor eagerly (a batch of 0 examples);
    # -inf leaves every row's largest value as it is.
    confidence = ops.max(probabilities, axis=-1, initial=float("-inf"))
    correct = ops.cast(sparse_categorical_matches(y_true, probabilities), y_pred.dtype)
    bins = ops.minimum(ops.cast(ops.floor(confidence * num_bins), "int32"), num_bins - 1)
    bin_hot = ops.one_hot(ops.maximum(bins, 0), num_bins, dtype=y_pred.dtype)
    weights = _example_weights(sample_weight, confidence, y_pred.dtype)
    stats = ops.stack([weights, weights * confidence, weights * correct], axis=0)
    sums = ops.matmul(stats, bin_hot)
    return sums[0], sums[1], sums[2]


def expected_calibration_error_from_bins(counts, confidence_sums, correct_sums):
    """Expected calibration error from per-bin sums.

    Formula:
        ECE = sum_b (n_b / N) |acc_b - conf_b| = sum_b |correct_b - confidence_b| / N
        with N = sum_b n_b; 0 when N == 0.

    Args:
        counts: Weight per bin, `(num_bins,)`.
        confidence_sums: Weighted sum of confidences per bin, `(num_bins,)`.
        correct_sums: Weighted number of correct predictions per bin, `(num_bins,)`.

    Returns:
        Scalar tensor in [0, 1].

    Example:
        >>> ece = expected_calibration_error_from_bins([0.0, 2.0], [0.0, 1.6], [0.0, 1.0])
        >>> round(float(ece), 4)
        0.3
    """
    gap = ops.sum(ops.abs(ops.subtract(correct_sums, confidence_sums)))
    return ops.divide_no_nan(gap, ops.sum(counts))


def _aligned(y_true, y_pred):
    y_pred = _as_float(y_pred)
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
    return y_true, y_pred


def _last_axis_mean(values):
    """Mean over the last axis, as Keras's `mean_squared_error`; a 1-D input is per example.

    Kept per timestep for `(batch, steps, d)` values, so that `(batch, steps)` weights (and
    masks) weigh timesteps, as in Keras; `_samplewise` averages the rest per example.
    """
    if len(values.shape) <= 1:
        return values
    return ops.mean(values, axis=-1)


def squared_errors(y_true, y_pred):
    """Mean squared error over the last axis: of each example, or each timestep.

    Formula:
        value_i = mean_j (y_true[i, j] - y_pred[i, j])^2

    Args:
        y_true: Targets, `(batch,)` or `(batch, ..., d)`.
        y_pred: Predictions with as many entries as `y_true`.

    Returns:
        Tensor `(batch,)` for 1-D or 2-D `y_pred`, else `y_pred`'s shape without its last
        axis (as Keras's `mean_squared_error`): float64 for float64 `y_pred`, else float32.

    Example:
        >>> squared_errors([[1.0, 2.0]], [[0.0, 4.0]]).numpy().tolist()
        [2.5]
    """
    y_true, y_pred = _aligned(y_true, y_pred)
    return _last_axis_mean(ops.square(y_true - y_pred))


def absolute_errors(y_true, y_pred):
    """Mean absolute error over the last axis: of each example, or each timestep.

    Formula:
        value_i = mean_j |y_true[i, j] - y_pred[i, j]|

    Args:
        y_true: Targets, `(batch,)` or `(batch, ..., d)`.
        y_pred: Predictions with as many entries as `y_true`.

    Returns:
        Tensor `(batch,)` for 1-D or 2-D `y_pred`, else `y_pred`'s shape without its last
        axis (as Keras's `mean_absolute_error`): float64 for float64 `y_pred`, else float32.

    Example:
        >>> absolute_errors([[1.0, 2.0]], [[0.0, 4.0]]).numpy().tolist()
        [1.5]
    """
    y_true, y_pred = _aligned(y_true, y_pred)
    return _last_axis_mean(ops.abs(y_true - y_pred))


# --------------------------------------------------------------------------
# Keras classes.


class _WeightedMean(keras.metrics.Metric):
    """Weighted mean over examples of `self._values(y_true, y_pred)`.

    State: `total = sum_i w_i v_i` and `count = sum_i w_i`; for per-entry values
    and weights, `v_i` and `w_i` are `mean_j w_ij v_ij` and `mean_j w_ij`
    (the reduction of `keras.metrics.Mean`).
    """

    def __init__(self, *, name: str, dtype=None):
        super().__init__(name=_check_name(name), dtype=dtype)
        self.total = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, aggregation="sum", name="total"
        )
        self.count = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, aggregation="sum", name="count"
        )

    def _values(self, y_true, y_pred):
        """The values of one batch: `(batch,)`, or `(batch, d)` for one per entry."""
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        sample_weight = _masked_weights(sample_weight, y_pred, self.dtype)
        weighted, weights = _samplewise(self._values(y_true, y_pred), sample_weight, self.dtype)
        self.total.assign_add(ops.sum(weighted))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(ops.convert_to_tensor(self.total), self.count)


@keras.saving.register_keras_serializable(package="kerasmlp")
class SparseCategoricalAccuracy(_WeightedMean):
    """Weighted fraction of examples whose top-scoring class is the integer label.

    Formula:
        accuracy = sum_i w_i [argmax_c y_pred[i, c] == y_true[i]] / sum_i w_i

    Args:
        name: Metric name (default "sparse_categorical_accuracy").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Example:
        >>> m = SparseCategoricalAccuracy()
        >>> m.update_state([2, 0], [[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]])
        >>> float(m.result())
        0.5
    """

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"

    def _values(self, y_true, y_pred):
        _check_class_ids(self, y_true, y_pred)
        _check_class_scores(self, y_pred)
        return sparse_categorical_matches(y_true, y_pred)


@keras.saving.register_keras_serializable(package="kerasmlp")
class CategoricalAccuracy(_WeightedMean):
    """Weighted fraction of examples whose top-scoring class is the one-hot label.

    Formula:
        accuracy = sum_i w_i [argmax_c y_pred[i, c] == argmax_c y_true[i, c]] / sum_i w_i

    Args:
        name: Metric name (default "categorical_accuracy").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Raises:
        ValueError: From `update_state`, if `y_true` is not of `y_pred`'s shape (integer
            class ids, for which Keras's argmax of the labels is one class for the batch).

    Example:
        >>> m = CategoricalAccuracy()
        >>> m.update_state([[0, 0, 1], [1, 0, 0]], [[0.1, 0.2, 0.7], [0.1, 0.8, 0.1]])
        >>> float(m.result())
        0.5
    """

    def __init__(self, name: str = "categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"

    def _values(self, y_true, y_pred):
        _check_one_hot(self, y_true, y_pred)
        return categorical_matches(y_true, y_pred)


@keras.saving.register_keras_serializable(package="kerasmlp")
class BinaryAccuracy(_WeightedMean):
    """Weighted fraction of binary predictions on the right side of a threshold.

    `sample_weight` weighs examples (a scalar, `(batch,)`, `(batch, 1)`) or
    entries (`(1, d)`, `(batch, d)`, broadcast as in `keras.metrics.BinaryAccuracy`).

    Formula:
        p = sigmoid(y_pred) if from_logits else y_pred
        match_ij = [[p[i, j] > threshold] == y_true[i, j]]
        accuracy = sum_ij w_ij match_ij / sum_ij w_ij   (w_ij = w_i for per-example weights)

    Args:
        name: Metric name (default "binary_accuracy").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).
        threshold: Probability above which a prediction is 1 (default 0.5),
            strictly between 0 and 1; applied after the sigmoid when `from_logits`.
        from_logits: Whether `y_pred` holds logits (default False); by keyword only
            (Keras's `BinaryAccuracy` has no such argument).

    Raises:
        ValueError: If `threshold` is not in (0, 1) or `from_logits` not a bool; from
            `update_state`, if `sample_weight` does not broadcast to the labels.

    Example:
        >>> m = BinaryAccuracy()
        >>> m.update_state([1, 0, 1, 0], [0.9, 0.6, 0.2, 0.1])
        >>> float(m.result())
        0.5
        >>> m = BinaryAccuracy()  # weights per output: only the first output counts
        >>> m.update_state([[1, 1], [0, 0]], [[0.98, 0.2], [0.0, 0.6]], sample_weight=[[1, 0]])
        >>> float(m.result())
        1.0
    """

    def __init__(
        self,
        name: str = "binary_accuracy",
        dtype=None,
        threshold: float = 0.5,
        *,
        from_logits: bool = False,
    ):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        self.threshold = _check_threshold(threshold)
        self.from_logits = _check_bool("from_logits", from_logits)

    def _values(self, y_true, y_pred):
        _check_same_entries(self, y_true, y_pred)
        # One value per entry, so that weights can weigh entries, as in Keras.
        return _binary_entry_matches(y_true, y_pred, self.threshold, self.from_logits)

    def get_config(self):
        return {
            **super().get_config(),
            "threshold": self.threshold,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="kerasmlp")
class SparseTopKCategoricalAccuracy(_WeightedMean):
    """Weighted fraction of examples whose integer label is among the `k` top scores.

    Formula:
        accuracy = sum_i w_i [#{c : y_pred[i, c] > y_pred[i, y_true[i]]} < k] / sum_i w_i

    Args:
        k: How many top-scoring classes count as a hit (default 5), >= 1.
        name: Metric name (default "sparse_top_k_categorical_accuracy").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).
        from_sorted_ids: Whether `y_pred` holds class ids sorted from the highest
            score down, `(batch, N)`, rather than every class's score (as Keras's).

    Raises:
        ValueError: If `k` is not an integer >= 1, or `from_sorted_ids` not a bool.

    Example:
        >>> m = SparseTopKCategoricalAccuracy(k=2)
        >>> m.update_state([0, 2], [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
        >>> float(m.result())
        0.5
    """

    def __init__(
        self,
        k: int = 5,
        name: str = "sparse_top_k_categorical_accuracy",
        dtype=None,
        from_sorted_ids: bool = False,
    ):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        self.k = _check_int("k", k, 1)
        self.from_sorted_ids = _check_bool("from_sorted_ids", from_sorted_ids)

    def _values(self, y_true, y_pred):
        _check_class_ids(self, y_true, y_pred)
        if not self.from_sorted_ids:  # then y_pred holds class ids, maybe only the top one
            _check_class_scores(self, y_pred)
        return sparse_top_k_matches(y_true, y_pred, self.k, self.from_sorted_ids)

    def get_config(self):
        return {**super().get_config(), "k": self.k, "from_sorted_ids": self.from_sorted_ids}


@keras.saving.register_keras_serializable(package="kerasmlp")
class ConfusionMatrix(keras.metrics.Metric):
    """Weighted confusion matrix of integer labels against argmax predictions.

    `y_pred` rows may be probabilities or logits. `Precision`, `Recall` and
    `F1Score` keep this same state, plus the unweighted count of examples showing
    each class (which classes the macro average is over).

    Formula:
        cm[t, p] = sum_i w_i [y_true[i] == t] [argmax_c y_pred[i, c] == p]

    Args:
        num_classes: Number of classes, >= 2.
        name: Metric name (default "confusion_matrix").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Returns (from `result()`):
        `(num_classes, num_classes)` tensor, rows true classes, columns predicted
        classes (as `sklearn.metrics.confusion_matrix`).

    Raises:
        ValueError: If `num_classes` is not an integer >= 2.

    Example:
        >>> m = ConfusionMatrix(2)
        >>> m.update_state([0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
        >>> m.result().numpy().tolist()
        [[1.0, 0.0], [1.0, 1.0]]
    """

    def __init__(self, num_classes: int, *, name: str = "confusion_matrix", dtype=None):
        super().__init__(name=_check_name(name), dtype=dtype)
        # No `_direction`: a matrix is neither better higher nor lower, so Keras's
        # callbacks in mode "auto" ask for a mode rather than guess one.
        self.num_classes = _check_int("num_classes", num_classes, 2)
        self.confusion = self.add_variable(
            shape=(self.num_classes, self.num_classes),
            initializer="zeros",
            dtype=self.dtype,
            aggregation="sum",
            name="confusion",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        _check_score_rows(self, y_pred, self.num_classes)
        _check_class_ids(self, y_true, y_pred)
        sample_weight = _masked_weights(sample_weight, y_pred, self.dtype)
        update = confusion_matrix_update(y_true, y_pred, self.num_classes, sample_weight)
        self.confusion.assign_add(ops.cast(update, self.dtype))

    def result(self):
        # A copy: the variable itself would change with later updates and resets, and
        # `stateless_result` would read it instead of the state it is given.
        return ops.copy(self.confusion)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


class _FromConfusion(ConfusionMatrix):
    """A score read from the confusion matrix; `_index` picks precision, recall or F1."""

    _index: int

    def __init__(self, num_classes: int, average: str | None = "macro", *, name: str, dtype=None):
        super().__init__(num_classes, name=name, dtype=dtype)
        self.average = _check_average(average)
        self.class_presence = self.add_variable(
            shape=(self.num_classes,),
            initializer="zeros",
            dtype=self.dtype,
            aggregation="sum",
            name="class_presence",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(y_true, y_pred, sample_weight)
        presence = class_presence_update(
            y_true, y_pred, self.num_classes, mask=_get_keras_mask(y_pred)
        )
        self.class_presence.assign_add(ops.cast(presence, self.dtype))

    def result(self):
        scores = precision_recall_f1_from_confusion(
            ops.convert_to_tensor(self.confusion),
            self.average,
            class_presence=ops.convert_to_tensor(self.class_presence),
        )
        return ops.cast(scores[self._index], self.dtype)

    def get_config(self):
        return {**super().get_config(), "average": self.average}


@keras.saving.register_keras_serializable(package="kerasmlp")
class Precision(_FromConfusion):
    """Multi-class precision of argmax predictions against integer labels.

    Formula:
        precision_c = cm[c, c] / sum_t cm[t, c]   (0 when class c is never predicted)
        averaged as in `precision_recall_f1_from_confusion`.

    Args:
        num_classes: Number of classes, >= 2.
        average: "macro" (default; over the classes that occur as a label or a
            prediction, whatever their weights), "micro", "weighted" (by
            support), or None for the `(num_classes,)` vector.
        name: Metric name (default "precision").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Raises:
        ValueError: If `num_classes` is not an integer >= 2 or `average` is not allowed.

    Example:
        >>> m = Precision(2, average=None)
        >>> m.update_state([0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
        >>> m.result().numpy().tolist()
        [0.5, 1.0]
    """

    _index = 0

    def __init__(
        self,
        num_classes: int,
        average: str | None = "macro",
        *,
        name: str = "precision",
        dtype=None,
    ):
        super().__init__(num_classes, average, name=name, dtype=dtype)
        self._direction = "up"


@keras.saving.register_keras_serializable(package="kerasmlp")
class Recall(_FromConfusion):
    """Multi-class recall of argmax predictions against integer labels.

    Formula:
        recall_c = cm[c, c] / sum_p cm[c, p]   (0 when class c has no examples)
        averaged as in `precision_recall_f1_from_confusion`.

    Args:
        num_classes: Number of classes, >= 2.
        average: "macro" (default; over the classes that occur as a label or a
            prediction, whatever their weights), "micro", "weighted" (by
            support), or None for the `(num_classes,)` vector.
        name: Metric name (default "recall").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Raises:
        ValueError: If `num_classes` is not an integer >= 2 or `average` is not allowed.

    Example:
        >>> m = Recall(2, average=None)
        >>> m.update_state([0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
        >>> m.result().numpy().tolist()
        [1.0, 0.5]
    """

    _index = 1

    def __init__(
        self, num_classes: int, average: str | None = "macro", *, name: str = "recall", dtype=None
    ):
        super().__init__(num_classes, average, name=name, dtype=dtype)
        self._direction = "up"


@keras.saving.register_keras_serializable(package="kerasmlp")
class F1Score(_FromConfusion):
    """Multi-class F1 score of argmax predictions against integer labels.

    Formula:
        f1_c = 2 cm[c, c] / (sum_t cm[t, c] + sum_p cm[c, p])   (= 2 P R / (P + R); 0 if 0/0)
        averaged as in `precision_recall_f1_from_confusion`; "macro" is the mean
        of the per-class F1 scores (not the F1 of macro precision and recall).

    Args:
        num_classes: Number of classes, >= 2.
        average: "macro" (default; over the classes that occur as a label or a
            prediction, whatever their weights), "micro", "weighted" (by
            support), or None for the `(num_classes,)` vector.
        name: Metric name (default "f1_score").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Raises:
        ValueError: If `num_classes` is not an integer >= 2 or `average` is not allowed.

    Example:
        >>> m = F1Score(2, average="macro")
        >>> m.update_state([0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
        >>> round(float(m.result()), 4)
        0.6667
    """

    _index = 2

    def __init__(
        self, num_classes: int, average: str | None = "macro", *, name: str = "f1_score", dtype=None
    ):
        super().__init__(num_classes, average, name=name, dtype=dtype)
        self._direction = "up"


@keras.saving.register_keras_serializable(package="kerasmlp")
class ExpectedCalibrationError(keras.metrics.Metric):
    """Expected calibration error: how far confidence is from accuracy, per bin.

    The confidence of an example is its largest class probability and it is
    correct when that class is the label. Bins are equal-width on [0, 1]; bin `b`
    is `[b / num_bins, (b + 1) / num_bins)`, the last one closed.

    Formula:
        ECE = sum_b (n_b / N) |acc_b - conf_b|
        n_b = sum_{i in b} w_i, N = sum_b n_b,
        acc_b = sum_{i in b} w_i correct_i / n_b, conf_b = sum_{i in b} w_i conf_i / n_b

    Args:
        num_bins: Number of confidence bins, >= 1 (default 15).
        from_logits: Whether `y_pred` holds logits rather than probabilities
            (default False). Unchecked, as in Keras's probabilistic metrics (a check
            would read the batch back to the host at every update): logits read as
            probabilities give a value that is not the ECE and can exceed 1. With
            `from_logits=True`, the output of a Keras softmax or sigmoid activation
            (a model's last layer, seen while tracing, as kerasmlp's losses see it) is
            read as probabilities, with a warning, rather than given a second softmax.
        name: Metric name (default "expected_calibration_error").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Raises:
        ValueError: If `num_bins` is not an integer >= 1 or `from_logits` not a bool.

    Example:
        >>> m = ExpectedCalibrationError(num_bins=2)
        >>> m.update_state([0, 1], [[0.9, 0.1], [0.7, 0.3]])
        >>> round(float(m.result()), 4)  # one bin: |1/2 - 0.8|
        0.3
    """

    def __init__(
        self,
        num_bins: int = 15,
        *,
        from_logits: bool = False,
        name: str = "expected_calibration_error",
        dtype=None,
    ):
        super().__init__(name=_check_name(name), dtype=dtype)
        self._direction = "down"
        self.num_bins = _check_int("num_bins", num_bins, 1)
        self.from_logits = _check_bool("from_logits", from_logits)
        self.counts = self._bin_variable("counts")
        self.confidence_sums = self._bin_variable("confidence_sums")
        self.correct_sums = self._bin_variable("correct_sums")

    def _bin_variable(self, name):
        return self.add_variable(
            shape=(self.num_bins,),
            initializer="zeros",
            dtype=self.dtype,
            aggregation="sum",
            name=name,
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        _check_score_rows(self, y_pred)
        _check_class_ids(self, y_true, y_pred)
        _check_class_scores(self, y_pred)
        sample_weight = _masked_weights(sample_weight, y_pred, self.dtype)
        from_logits = _reads_logits(self, y_pred, self.from_logits)
        sums = calibration_bins_update(
            y_true, y_pred, self.num_bins, sample_weight, from_logits=from_logits
        )
        for variable, value in zip(
            (self.counts, self.confidence_sums, self.correct_sums), sums, strict=True
        ):
            variable.assign_add(ops.cast(value, self.dtype))

    def result(self):
        return expected_calibration_error_from_bins(
            ops.convert_to_tensor(self.counts),
            ops.convert_to_tensor(self.confidence_sums),
            ops.convert_to_tensor(self.correct_sums),
        )

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins, "from_logits": self.from_logits}


# `kerasmlp>MeanSquaredError` is the loss of the same name: a second registration would replace it.
@keras.saving.register_keras_serializable(package="kerasmlp", name="MeanSquaredErrorMetric")
class MeanSquaredError(_WeightedMean):
    """Weighted mean over examples of each example's mean squared error.

    Formula:
        mse = sum_i w_i mean_j (y_true[i, j] - y_pred[i, j])^2 / sum_i w_i

    Args:
        name: Metric name (default "mean_squared_error").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Example:
        >>> m = MeanSquaredError()
        >>> m.update_state([[1.0], [2.0]], [[0.0], [4.0]])
        >>> float(m.result())
        2.5
    """

    def __init__(self, name: str = "mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "down"

    def _values(self, y_true, y_pred):
        _check_same_entries(self, y_true, y_pred)
        return squared_errors(y_true, y_pred)


# `kerasmlp>MeanAbsoluteError` is the loss of the same name: a second registration would replace it.
@keras.saving.register_keras_serializable(package="kerasmlp", name="MeanAbsoluteErrorMetric")
class MeanAbsoluteError(_WeightedMean):
    """Weighted mean over examples of each example's mean absolute error.

    Formula:
        mae = sum_i w_i mean_j |y_true[i, j] - y_pred[i, j]| / sum_i w_i

    Args:
        name: Metric name (default "mean_absolute_error").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Example:
        >>> m = MeanAbsoluteError()
        >>> m.update_state([[1.0], [2.0]], [[0.0], [4.0]])
        >>> float(m.result())
        1.5
    """

    def __init__(self, name: str = "mean_absolute_error", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "down"

    def _values(self, y_true, y_pred):
        _check_same_entries(self, y_true, y_pred)
        return absolute_errors(y_true, y_pred)


@keras.saving.register_keras_serializable(package="kerasmlp")
class RootMeanSquaredError(MeanSquaredError):
    """Square root of the weighted mean squared error over all examples seen.

    Formula:
        rmse = sqrt(sum_i w_i mean_j (y_true[i, j] - y_pred[i, j])^2 / sum_i w_i)

    Args:
        name: Metric name (default "root_mean_squared_error").
        dtype: Dtype of the state and result (default `keras.config.floatx()`).

    Example:
        >>> m = RootMeanSquaredError()
        >>> m.update_state([[1.0], [2.0]], [[0.0], [4.0]])
        >>> round(float(m.result()), 4)  # sqrt(2.5)
        1.5811
    """

    def __init__(self, name: str = "root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "down"

    def result(self):
        return ops.sqrt(super().result())


@keras.saving.register_keras_serializable(package="kerasmlp")
class BinaryAUC(keras.metrics.AUC):
    """Keras's own `keras.metrics.AUC`, fed as kerasmlp feeds a two-class metric.

    The loop hands classification metrics integer labels and one logit per class,
    `(batch, 2)` (a sigmoid head's logit z as `[0, z]`). The probability of class 1
    is `softmax(z)[1] = sigmoid(z[1] - z[0])`, so AUC receives the margin
    `z[1] - z[0]` with `from_logits=True`; the thresholds, the curve and the
    summation are Keras's.

    Example:
    >>> metric = BinaryAUC()
    >>> metric.update_state([0, 1, 1, 0], [[0.0, -2.0], [0.0, 1.0], [0.0, 3.0], [0.0, 0.5]])
    >>> round(float(metric.result()), 4)
    1.0

    Args:
      num_thresholds: thresholds of the curve's discretization. Default 200.
      curve: 'ROC' or 'PR'. Default 'ROC'.
      summation_method: Keras's; default 'interpolation'.
      name: default 'auc'.
      dtype: of the metric's result.
    """

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str = "auc",
        dtype=None,
    ):
        super().__init__(
            num_thresholds=num_thresholds,
            curve=curve,
            summation_method=summation_method,
            from_logits=True,
            name=name,
            dtype=dtype,
        )
        self._direction = "up"

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        margin = y_pred[..., 1] - y_pred[..., 0]
        y_true = ops.reshape(ops.cast(y_true, margin.dtype), (-1,))
        return super().update_state(y_true, margin, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        return {
            key: config[key]
            for key in ("name", "dtype", "num_thresholds", "curve", "summation_method")
        }
