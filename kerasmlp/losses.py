"""Losses: small pure functions of per-example values, and thin Keras `Loss` classes around them.

Each function maps `(y_true, y_pred)` to one loss value per example (the last axis, or the
class axis, is reduced). Each class subclasses `keras.losses.Loss`, stores its arguments,
calls the function from `call`, and returns every argument (`dtype` included) from
`get_config`; reduction, `sample_weight`, masking and dtype come from the Keras base class.
A class takes its arguments in the order of the Keras class of the same name, so that
`SparseCategoricalCrossentropy(True)` means `from_logits=True` here too.

The values equal Keras's own (`keras.losses`) to float precision; where they differ, they
differ on purpose:

- Shapes that do not match after Keras's usual rank alignment raise a `ValueError` instead
  of broadcasting (Keras computes `(y_true - y_pred)` on shapes `(n,)` and `(1, n)` as an
  `(n, n)` matrix and says nothing).
- Sparse labels outside `[0, num_classes)` (other than `ignore_class`) raise an error, eagerly
  and inside `tf.function` (on a GPU, Keras's fused op would return NaN). Under XLA
  (`jit_compile=True`, Keras's default on a GPU) TensorFlow drops assertions, so there such
  labels give a NaN loss instead of an error.
- `SparseCategoricalCrossentropy` accepts `label_smoothing`, by keyword.
- `CategoricalCrossentropy` with `label_smoothing` and an `axis` other than the last spreads
  the smoothing over that axis's classes; Keras divides it by the size of the last axis.
- `from_logits=True` fed rows that are obviously probabilities warns, eagerly; like Keras, an
  input produced by a softmax or sigmoid activation warns in graphs too.

Classes are registered with Keras under the package name `kerasmlp`, so a saved `.keras`
model that uses them loads after `import kerasmlp.losses`, with no `custom_objects`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import keras
import tensorflow as tf
from keras import ops

try:  # Keras >= 3.6 keeps masks behind this helper (a dict for tensors without attributes).
    from keras.src.backend.common.masking import set_keras_mask as _set_keras_mask
except ImportError:  # pragma: no cover - older Keras stored the mask as a plain attribute

    def _set_keras_mask(x, mask):
        x._keras_mask = mask


__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalHinge",
    "Hinge",
    "KLDivergence",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
    "binary_crossentropy",
    "categorical_crossentropy",
    "categorical_hinge",
    "cross_entropy",
    "entropy",
    "hinge",
    "kl_divergence",
    "mean_absolute_error",
    "mean_squared_error",
    "smooth_labels",
    "sparse_categorical_crossentropy",
    "squared_hinge",
]

_REGISTER = keras.saving.register_keras_serializable(package="kerasmlp")

# A `from_logits=True` input whose rows all lie in [0, 1] and sum to 1 within this tolerance is
# taken to be softmax output. Real logits hit this by chance with negligible probability.
_PROBABILITY_ROW_TOLERANCE = 1e-3


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _epsilon() -> float:
    # Keras clips probabilities to [epsilon, 1 - epsilon] before taking logs; we do the same so
    # that probabilities of exactly 0 and 1 stay finite and the values equal Keras's.
    return keras.config.epsilon()


# The gap below 1 where it is wider than Keras's epsilon (1e-7): 1 - 1e-7 rounds to 1 there.
_GAP_BELOW_ONE = {"float16": 2.0**-11, "bfloat16": 2.0**-8}


def _below_one(dtype) -> float:
    """`1 - epsilon`, or in float16 and bfloat16 the largest value below 1.

    Keras clips probabilities to `1 - 1e-7`, which those dtypes round to 1: log(1 - p) is
    then -inf at p = 1, and `(1 - y) * log(1 - p)` NaN even where y = 1.
    """
    gap = _GAP_BELOW_ONE.get(keras.backend.standardize_dtype(dtype), 0.0)
    return 1.0 - max(_epsilon(), gap)


def _convert(y_true, y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    if not y_pred.dtype.is_floating:
        y_pred = ops.cast(y_pred, keras.config.floatx())
    return ops.cast(y_true, y_pred.dtype), y_pred


def _compatible(shape_a: tuple, shape_b: tuple) -> bool:
    """Whether two static shapes can be equal (`None` is an unknown dimension)."""
    return len(shape_a) == len(shape_b) and all(
        a is None or b is None or a == b for a, b in zip(shape_a, shape_b, strict=True)
    )


def _check_same_shape(fn_name: str, y_true, y_pred) -> None:
    """Refuses shapes that would broadcast silently (checked on static shapes only: it is free)."""
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if not _compatible(true_shape, pred_shape):
        raise ValueError(
            f"In `{fn_name}`, arguments `y_true` and `y_pred` must have the same shape. "
            f"Received: y_true.shape={true_shape}, y_pred.shape={pred_shape}"
        )


def _check_axis(axis: Any) -> int:
    # Any integer (numpy's too, as Keras takes them); stored as a Python int for the config.
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(
            f"Argument `axis` must be an int. Received: axis={axis!r} of type {type(axis)}"
        )
    return int(axis)


def _check_label_smoothing(label_smoothing: Any) -> float:
    if (
        isinstance(label_smoothing, bool)
        or not isinstance(label_smoothing, numbers.Real)
        or not 0.0 <= float(label_smoothing) <= 1.0
    ):
        raise ValueError(
            "Argument `label_smoothing` must be a float in [0, 1]. "
            f"Received: label_smoothing={label_smoothing!r}"
        )
    return float(label_smoothing)


def _check_from_logits(from_logits: Any) -> bool:
    if not isinstance(from_logits, bool):
        raise ValueError(
            f"Argument `from_logits` must be a bool. Received: from_logits={from_logits!r}"
        )
    return from_logits


def _check_ignore_class(ignore_class: Any) -> int | None:
    if ignore_class is None:
        return None
    if isinstance(ignore_class, bool) or not isinstance(ignore_class, numbers.Integral):
        raise ValueError(
            "Argument `ignore_class` must be an int or None. "
            f"Received: ignore_class={ignore_class!r}"
        )
    return int(ignore_class)


def _get_logits(y_pred, from_logits: bool, activation: str, fn_name: str):
    """Returns `(y_pred, from_logits)`, recovering the logits behind a softmax/sigmoid output.

    This is what Keras's TensorFlow backend does (`_get_logits` in `backend/tensorflow/nn.py`):
    a Keras `softmax`/`sigmoid` activation leaves its input on the output as `_keras_logits`,
    and in a graph the producing op is visible. Using those logits keeps the loss and its
    gradient exact where the probabilities round to 0 or 1, and keeps our values equal to
    Keras's in models that end in such an activation.
    """
    logits = getattr(y_pred, "_keras_logits", None)
    if logits is None and (
        not tf.executing_eagerly()
        and isinstance(y_pred, tf.Tensor)
        and not isinstance(y_pred, tf.__internal__.EagerTensor)
        and y_pred.op.type == activation
        and len(y_pred.op.inputs) == 1
    ):
        logits = y_pred.op.inputs[0]
    if logits is None:
        return y_pred, from_logits
    if from_logits:
        warnings.warn(
            f"`{fn_name}` received `from_logits=True`, but `y_pred` was produced by a "
            f"{activation} activation and thus does not hold logits. The loss uses the "
            "activation's input instead. Was this intended?",
            stacklevel=4,
        )
    return logits, True


def _warn_if_probabilities(fn_name: str, y_pred, axis: int) -> None:
    """Warns when `from_logits=True` gets rows that are obviously probabilities (eager only)."""
    if (
        not tf.executing_eagerly()
        or hasattr(y_pred, "_keras_logits")  # `_get_logits` warns more precisely
        or y_pred.shape.rank is None
        or y_pred.shape[axis] in (None, 1)
    ):
        return
    values = ops.convert_to_numpy(y_pred)
    if values.size == 0 or values.min() < 0.0 or values.max() > 1.0:
        return
    row_sums = values.sum(axis=axis)
    if abs(row_sums - 1.0).max() <= _PROBABILITY_ROW_TOLERANCE:
        warnings.warn(
            f"`{fn_name}` received `from_logits=True`, but every row of `y_pred` lies in [0, 1] "
            f"and sums to 1, so it looks like probabilities (e.g. a softmax output). "
            f"Received: from_logits=True, y_pred[0]={values.reshape(-1, values.shape[axis])[0]}."
            " Pass `from_logits=False`, or feed the layer's output before its softmax.",
            stacklevel=3,
        )


def _check_sparse_labels(fn_name: str, labels, num_classes, ignore_class: int | None):
    """Returns `labels` after refusing class ids outside `[0, num_classes)`.

    Cheap (one min and one max). Eagerly it raises `ValueError`; in a graph it adds an assertion
    that raises `InvalidArgumentError` when run.
    """
    checked = labels
    if ignore_class is not None:
        checked = ops.where(ops.equal(labels, ignore_class), ops.zeros_like(labels), labels)
    static = isinstance(num_classes, int)  # else a tensor: the class axis is known when run
    allowed = f"[0, {num_classes if static else 'num_classes'})" + (
        f" or ignore_class={ignore_class}" if ignore_class is not None else ""
    )
    classes = f"y_pred has {num_classes} classes" if static else "y_pred's last axis"
    message = (
        f"In `{fn_name}`, argument `y_true` must hold integer class ids in {allowed} ({classes})."
    )
    if tf.executing_eagerly():
        if ops.size(checked) == 0:
            return labels
        low, high = int(ops.min(checked)), int(ops.max(checked))
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"{message} Received: y_true containing {bad}")
        return labels
    low = tf.reduce_min(checked)
    high = tf.reduce_max(checked)
    ok = tf.logical_or(tf.equal(tf.size(checked), 0), tf.logical_and(low >= 0, high < num_classes))
    # The loss depends on the assertion, so it fails first (before the fused op's own, vaguer
    # error on a CPU). XLA drops assertions.
    check = tf.debugging.Assert(ok, [message, "Received: y_true with min", low, "and max", high])
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def _align_ranks(y_true, y_pred):
    """Squeezes or expands a trailing axis of size 1 when the ranks differ by one, as Keras does.

    A model with one output unit has `y_pred` of shape `(batch, 1)` and data often gives
    `y_true` of shape `(batch,)`; Keras's `LossFunctionWrapper` lines them up the same way.
    """
    true_rank, pred_rank = len(y_true.shape), len(y_pred.shape)
    if true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
        if pred_rank == 1:
            y_pred = ops.expand_dims(y_pred, axis=-1)
        else:
            y_true = ops.squeeze(y_true, axis=-1)
    elif pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
        if true_rank == 1:
            y_true = ops.expand_dims(y_true, axis=-1)
        else:
            y_pred = ops.squeeze(y_pred, axis=-1)
    return y_true, y_pred


def _binary_to_signed(y_true):
    # Keras maps labels to {-1, 1} when every label is 0 or 1, and leaves them alone otherwise.
    is_binary = ops.all(ops.logical_or(ops.equal(y_true, 0), ops.equal(y_true, 1)))
    return ops.where(is_binary, 2.0 * y_true - 1.0, y_true)


# ----------------------------------------------------------------------------------------------
# Pure functions: one value per example
# ----------------------------------------------------------------------------------------------


def smooth_labels(targets, label_smoothing: float, num_classes):
    """Targets mixed with the uniform distribution over `num_classes` classes.

    Formula (Optax's `smooth_labels`):

    ```python
    targets * (1 - label_smoothing) + label_smoothing / num_classes
    ```

    For binary targets (`num_classes=2`) it squeezes 0 and 1 towards 0.5, as
    Keras's `binary_crossentropy` does.

    Example:

    >>> [round(smooth_labels(y, 0.2, 2), 6) for y in (0.0, 1.0)]
    [0.1, 0.9]
    """
    return targets * (1.0 - label_smoothing) + label_smoothing / num_classes


def mean_squared_error(y_true, y_pred):
    """Mean squared error over the last axis.

    Formula:

    ```python
    loss = mean(square(y_true - y_pred), axis=-1)
    ```

    Args:
        y_true: Targets, shape `(batch, ..., d)`.
        y_pred: Predictions, same shape as `y_true`.

    Returns:
        The loss per example, shape `(batch, ...)`.

    Raises:
        ValueError: if the shapes differ.

    Example:

    >>> float(mean_squared_error([[0.0, 1.0]], [[1.0, 1.0]])[0])
    0.5
    """
    y_true, y_pred = _convert(y_true, y_pred)
    _check_same_shape("mean_squared_error", y_true, y_pred)
    return ops.mean(ops.square(y_pred - y_true), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """Mean absolute error over the last axis.

    Formula:

    ```python
    loss = mean(abs(y_true - y_pred), axis=-1)
    ```

    Args:
        y_true: Targets, shape `(batch, ..., d)`.
        y_pred: Predictions, same shape as `y_true`.

    Returns:
        The loss per example, shape `(batch, ...)`.

    Raises:
        ValueError: if the shapes differ.

    Example:

    >>> float(mean_absolute_error([[0.0, 1.0]], [[2.0, 1.0]])[0])
    1.0
    """
    y_true, y_pred = _convert(y_true, y_pred)
    _check_same_shape("mean_absolute_error", y_true, y_pred)
    return ops.mean(ops.abs(y_pred - y_true), axis=-1)


def binary_crossentropy(y_true, y_pred, *, from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary cross-entropy, averaged over `axis`.

    From logits it uses the log-sigmoid form, finite for any float logit; from probabilities
    it clips them to `[epsilon, 1 - epsilon]` as Keras does. In float16 and bfloat16, where
    `1 - epsilon` rounds to 1 (and Keras's loss gives NaN at p = 1), the upper bound is the
    largest value below 1.

    Formula:

    ```python
    y = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
    # from probabilities p:
    loss = mean(-(y * log(p) + (1 - y) * log(1 - p)), axis)
    # from logits x (the same value, computed without overflow):
    loss = mean(max(x, 0) - x * y + log1p(exp(-abs(x))), axis)
    ```

    Args:
        y_true: Targets in `[0, 1]`, shape `(batch, ..., d)`.
        y_pred: Probabilities, or logits if `from_logits`, same shape as `y_true`.
        from_logits: Whether `y_pred` holds logits. Defaults to `False`.
        label_smoothing: In `[0, 1]`; squeezes the targets towards 0.5. Defaults to 0.
        axis: The axis averaged over. Defaults to -1.

    Returns:
        The loss per example, `y_pred`'s shape without `axis`.

    Raises:
        ValueError: if the shapes differ.

    Example:

    >>> round(float(binary_crossentropy([[1.0]], [[0.0]], from_logits=True)[0]), 4)
    0.6931
    """
    _check_axis(axis)
    y_true, y_pred = _convert(y_true, y_pred)
    _check_same_shape("binary_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = smooth_labels(y_true, label_smoothing, 2)  # towards 0.5
    y_pred, from_logits = _get_logits(y_pred, from_logits, "Sigmoid", "binary_crossentropy")
    if from_logits:
        # = max(x, 0) - x * y + log1p(exp(-|x|)): no exp of a large positive number.
        per_entry = tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=y_pred)
    else:
        y_pred = ops.clip(y_pred, _epsilon(), _below_one(y_pred.dtype))
        per_entry = -(y_true * ops.log(y_pred) + (1.0 - y_true) * ops.log(1.0 - y_pred))
    return ops.mean(per_entry, axis=axis)


def categorical_crossentropy(y_true, y_pred, *, from_logits=False, label_smoothing=0.0, axis=-1):
    """Categorical cross-entropy between target distributions and predicted ones.

    From logits it uses `log_softmax` (never `log(softmax(x))`), so logits of any float size
    give finite values, and the gradient with respect to the logits is
    `softmax(logits) * sum(y_true) - y_true`, i.e. `softmax(logits) - y_true` for one-hot or
    smoothed targets. From probabilities it renormalises the rows and clips them to
    `[epsilon, 1 - epsilon]`, as Keras does.

    Formula:

    ```python
    y = y_true * (1 - label_smoothing) + label_smoothing / num_classes
    loss = -sum(y * log_softmax(logits), axis)     # from logits
    loss = -sum(y * log(p / sum(p, axis)), axis)   # from probabilities
    ```

    Args:
        y_true: Target distributions (usually one-hot), shape `(batch, ..., num_classes)`.
        y_pred: Probabilities, or logits if `from_logits`, same shape as `y_true`.
        from_logits: Whether `y_pred` holds logits. Defaults to `False`.
        label_smoothing: In `[0, 1]`; mixes the targets with the uniform distribution.
            Defaults to 0.
        axis: The class axis. Defaults to -1.

    Returns:
        The loss per example, `y_pred`'s shape without `axis`.

    Raises:
        ValueError: if the shapes differ.

    Example:

    >>> round(float(categorical_crossentropy([[0.0, 1.0]], [[0.5, 0.5]])[0]), 4)
    0.6931
    """
    _check_axis(axis)
    y_true, y_pred = _convert(y_true, y_pred)
    _check_same_shape("categorical_crossentropy", y_true, y_pred)
    if y_pred.shape[axis] == 1:
        warnings.warn(
            "In `categorical_crossentropy`, expected y_pred.shape to be (batch_size, num_classes) "
            f"with num_classes > 1. Received: y_pred.shape={tuple(y_pred.shape)}. "
            "Consider `binary_crossentropy` for two classes.",
            SyntaxWarning,
            stacklevel=2,
        )
    if label_smoothing:
        num_classes = ops.cast(ops.shape(y_true)[axis], y_pred.dtype)
        y_true = smooth_labels(y_true, label_smoothing, num_classes)
    if from_logits:
        _warn_if_probabilities("categorical_crossentropy", y_pred, axis)
    y_pred, from_logits = _get_logits(y_pred, from_logits, "Softmax", "categorical_crossentropy")
    if from_logits:
        log_probs = ops.log_softmax(y_pred, axis=axis)
    else:
        eps = _epsilon()
        probs = y_pred / ops.sum(y_pred, axis=axis, keepdims=True)
        log_probs = ops.log(ops.clip(probs, eps, 1.0 - eps))
    return -ops.sum(y_true * log_probs, axis=axis)


def sparse_categorical_crossentropy(
    y_true, y_pred, *, from_logits=False, ignore_class=None, label_smoothing=0.0, axis=-1
):
    """Categorical cross-entropy with integer class ids as targets.

    Equal to `categorical_crossentropy(one_hot(y_true), y_pred, ...)`. From probabilities the
    probabilities are clipped to `[epsilon, 1 - epsilon]` and renormalised, as Keras does.
    Entries whose label is `ignore_class` get loss 0 and a Keras mask, so that the
    `sum_over_batch_size` reduction averages over the other entries only (as in Keras).

    Formula:

    ```python
    y = one_hot(y_true, num_classes) * (1 - label_smoothing) + label_smoothing / num_classes
    loss = -sum(y * log_softmax(logits), axis)   # from logits
    ```

    Args:
        y_true: Integer class ids in `[0, num_classes)`, shape `(batch, ...)` (or
            `(batch, ..., 1)`).
        y_pred: Probabilities, or logits if `from_logits`, shape `(batch, ..., num_classes)`.
        from_logits: Whether `y_pred` holds logits. Defaults to `False`.
        ignore_class: A label whose entries are left out of the loss, or `None`.
        label_smoothing: In `[0, 1]`; mixes the one-hot targets with the uniform
            distribution. Defaults to 0.
        axis: The class axis of `y_pred`. Defaults to -1.

    Returns:
        The loss per example, shape `(batch, ...)`.

    Raises:
        ValueError: if the shapes do not fit, or (eagerly) a label is out of range.
        tf.errors.InvalidArgumentError: inside a `tf.function`, if a label is out of range.

    Example:

    >>> round(float(sparse_categorical_crossentropy([1], [[0.0, 0.0]], from_logits=True)[0]), 4)
    0.6931
    """
    _check_axis(axis)
    fn_name = "sparse_categorical_crossentropy"
    y_pred = ops.convert_to_tensor(y_pred)
    if not y_pred.dtype.is_floating:
        y_pred = ops.cast(y_pred, keras.config.floatx())
    y_true = ops.convert_to_tensor(y_true)
    rank = len(y_pred.shape)
    class_axis = axis % rank if rank else 0
    if class_axis != rank - 1:
        y_pred = ops.moveaxis(y_pred, class_axis, -1)
        if len(y_true.shape) == rank:
            y_true = ops.moveaxis(y_true, class_axis, -1)
    if len(y_true.shape) == rank and rank and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    if rank < 1 or not _compatible(tuple(y_true.shape), tuple(y_pred.shape[:-1])):
        raise ValueError(
            f"In `{fn_name}`, argument `y_true` must have the shape of `y_pred` without its "
            f"class axis. Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}, axis={axis}"
        )
    labels = ops.cast(y_true, "int64")
    num_classes = y_pred.shape[-1]
    if num_classes is None:  # e.g. scores against a batch's own items, `(batch, batch)`
        num_classes = ops.cast(ops.shape(y_pred)[-1], labels.dtype)
    labels = _check_sparse_labels(fn_name, labels, num_classes, ignore_class)
    valid = None
    if ignore_class is not None:
        valid = ops.not_equal(labels, ignore_class)
        labels = ops.where(valid, labels, ops.zeros_like(labels))
    if from_logits:
        _warn_if_probabilities(fn_name, y_pred, -1)
    y_pred, from_logits = _get_logits(y_pred, from_logits, "Softmax", fn_name)
    if not from_logits:
        # Keras takes logs of the clipped probabilities and treats them as logits, which also
        # renormalises rows that the clipping moved off a sum of 1.
        eps = _epsilon()
        y_pred = ops.log(ops.clip(y_pred, eps, 1.0 - eps))
    if label_smoothing:
        depth, share = num_classes, num_classes
        if not isinstance(num_classes, int):  # a tensor: `one_hot` takes an int32 depth
            depth, share = ops.cast(num_classes, "int32"), ops.cast(num_classes, y_pred.dtype)
        targets = ops.one_hot(labels, depth, dtype=y_pred.dtype)
        targets = smooth_labels(targets, label_smoothing, share)
        loss = -ops.sum(targets * ops.log_softmax(y_pred, axis=-1), axis=-1)
    else:
        # The fused op is the log-softmax form, and its gradient is softmax(logits) - one_hot.
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=y_pred)
    # Under XLA the assertion above is dropped; a label out of range then gives NaN (which
    # `keras.callbacks.TerminateOnNaN` stops on) rather than a finite, wrong loss.
    out_of_range = ops.logical_or(ops.less(labels, 0), ops.greater_equal(labels, num_classes))
    loss = ops.where(out_of_range, ops.full_like(loss, float("nan")), loss)
    if valid is not None:
        loss = ops.where(valid, loss, ops.zeros_like(loss))
        _set_keras_mask(loss, valid)
    return loss


def kl_divergence(y_true, y_pred):
    """Kullback-Leibler divergence `KL(y_true || y_pred)` over the last axis.

    Both arguments are clipped to `[epsilon, 1]` as in Keras, so zeros give finite values.

    Formula:

    ```python
    loss = sum(y_true * log(y_true / y_pred), axis=-1)
    ```

    Args:
        y_true: Target distributions, shape `(batch, ..., d)`.
        y_pred: Predicted distributions, same shape as `y_true`.

    Returns:
        The loss per example, shape `(batch, ...)`.

    Raises:
        ValueError: if the shapes differ.

    Example:

    >>> round(float(kl_divergence([[0.5, 0.5]], [[0.25, 0.75]])[0]), 4)
    0.1438
    """
    y_true, y_pred = _convert(y_true, y_pred)
    _check_same_shape("kl_divergence", y_true, y_pred)
    eps = _epsilon()
    y_true = ops.clip(y_true, eps, 1.0)
    y_pred = ops.clip(y_pred, eps, 1.0)
    return ops.sum(y_true * ops.log(y_true / y_pred), axis=-1)


def hinge(y_true, y_pred):
    """Hinge loss over the last axis; labels in `{0, 1}` are mapped to `{-1, 1}` first.

    Formula:

    ```python
    loss = mean(maximum(1 - y_true * y_pred, 0), axis=-1)
    ```

    Args:
        y_true: Labels in `{-1, 1}` (or all in `{0, 1}`), shape `(batch, ..., d)`.
        y_pred: Scores, same shape as `y_true`.

    Returns:
        The loss per example, shape `(batch, ...)`.

    Raises:
        ValueError: if the shapes differ.

    Example:

    >>> float(hinge([[1.0, 0.0]], [[0.5, 0.5]])[0])
    1.0
    """
    y_true, y_pred = _convert(y_true, y_pred)
    _check_same_shape("hinge", y_true, y_pred)
    y_true = _binary_to_signed(y_true)
    return ops.mean(ops.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """Squared hinge loss over the last axis; labels in `{0, 1}` are mapped to `{-1, 1}`.

    Formula:

    ```python
    loss = mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1)
    ```

    Args:
        y_true: Labels in `{-1, 1}` (or all in `{0, 1}`), shape `(batch, ..., d)`.
        y_pred: Scores, same shape as `y_true`.

    Returns:
        The loss per example, shape `(batch, ...)`.

    Raises:
        ValueError: if the shapes differ.

    Example:

    >>> float(squared_hinge([[1.0, 0.0]], [[0.5, 0.5]])[0])
    1.25
    """
    y_true, y_pred = _convert(y_true, y_pred)
    _check_same_shape("squared_hinge", y_true, y_pred)
    y_true = _binary_to_signed(y_true)
    return ops.mean(ops.square(ops.maximum(1.0 - y_true * y_pred, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    """Categorical (Crammer-Singer style) hinge loss over the last axis.

    Formula:

    ```python
    pos = sum(y_true * y_pred, axis=-1)
    neg = max((1 - y_true) * y_pred, axis=-1)
    loss = maximum(neg - pos + 1, 0)
    ```

    Args:
        y_true: One-hot targets, shape `(batch, ..., num_classes)`.
        y_pred: Scores, same shape as `y_true`.

    Returns:
        The loss per example, shape `(batch, ...)`.

    Raises:
        ValueError: if the shapes differ.

    Example:

    >>> float(categorical_hinge([[0.0, 1.0]], [[0.5, 0.25]])[0])
    1.25
    """
    y_true, y_pred = _convert(y_true, y_pred)
    _check_same_shape("categorical_hinge", y_true, y_pred)
    pos = ops.sum(y_true * y_pred, axis=-1)
    neg = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(neg - pos + 1.0, ops.zeros_like(pos))


def entropy(p, *, base: float = math.e, axis: int = -1):
    """Shannon entropy of the distributions `p` along `axis`, in units of `log(base)`.

    Uses `0 * log(0) = 0`, so distributions with zeros are exact.

    Formula:

    ```python
    H(p) = -sum(p * log(p), axis) / log(base)
    ```

    Args:
        p: Probabilities summing to 1 along `axis`.
        base: The logarithm's base: `math.e` (nats, default) or 2 (bits).
        axis: The axis of the distribution. Defaults to -1.

    Returns:
        The entropy, `p`'s shape without `axis`.

    Example:

    >>> float(entropy([0.25] * 4, base=2))
    2.0
    """
    return cross_entropy(p, p, base=base, axis=axis)


def cross_entropy(p, q, *, base: float = math.e, axis: int = -1):
    """Cross-entropy of distribution `q` relative to `p` along `axis`, in units of `log(base)`.

    Uses `0 * log(q) = 0`; a `q` of 0 where `p > 0` gives `inf`, which is the true value (use
    `categorical_crossentropy` for a clipped, training-friendly loss).

    Formula:

    ```python
    H(p, q) = -sum(p * log(q), axis) / log(base)
    ```

    Args:
        p: The reference probabilities, summing to 1 along `axis`.
        q: The other probabilities, same shape as `p`.
        base: The logarithm's base: `math.e` (nats, default) or 2 (bits).
        axis: The axis of the distributions. Defaults to -1.

    Returns:
        The cross-entropy, `p`'s shape without `axis`.

    Raises:
        ValueError: if the shapes differ or `base` is not a positive number other than 1.

    Example:

    >>> round(float(cross_entropy([0.5, 0.5], [0.25, 0.75], base=2)), 4)  # (2 + 0.415) / 2
    1.2075
    """
    if isinstance(base, bool) or not base > 0 or base == 1:
        raise ValueError(f"Argument `base` must be > 0 and != 1. Received: base={base!r}")
    p, q = _convert(p, q)
    _check_same_shape("cross_entropy", p, q)
    nats = -ops.sum(tf.math.xlogy(p, q), axis=axis)
    if base == math.e:
        return nats
    return nats / ops.cast(math.log(base), nats.dtype)


# ----------------------------------------------------------------------------------------------
# Keras classes: store the arguments, call the function, return the arguments from get_config
# ----------------------------------------------------------------------------------------------


class _FunctionLoss(keras.losses.Loss):
    """Base of the classes below: `call` applies `fn` after Keras's rank alignment."""

    fn = None  # the pure function, set by each subclass
    align_ranks = True

    def __init__(self, *, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def _fn_kwargs(self) -> dict[str, Any]:
        return {}

    def call(self, y_true, y_pred):
        # The base class maps over nested Python lists; make them tensors again.
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        if self.align_ranks:
            y_true, y_pred = _align_ranks(y_true, y_pred)
        return type(self).fn(y_true, y_pred, **self._fn_kwargs())

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reduction": self.reduction,
            # The policy's name ("float64", "mixed_float16"); Keras's own losses drop `dtype`.
            "dtype": self._dtype_policy.name,
            **self._fn_kwargs(),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


_REDUCTION_DOC = """reduction: How `call`'s per-example values are reduced, by the Keras base class:
            `"sum_over_batch_size"` (default), `"sum"`, `"mean"`, `"mean_with_sample_weight"`,
            or `"none"`/`None`.
        name: The loss's name. Defaults to the snake_case class name.
        dtype: The dtype (or dtype policy) of the computation.
            Defaults to `keras.config.floatx()`."""


@_REGISTER
class MeanSquaredError(_FunctionLoss):
    """Mean squared error; the Keras class around `mean_squared_error`.

    Formula:

    ```python
    loss = reduce(mean(square(y_true - y_pred), axis=-1), sample_weight)
    ```

    Args:
        {reduction}

    Example:

    >>> float(MeanSquaredError()([[0.0, 1.0]], [[1.0, 1.0]]))
    0.5
    """

    fn = staticmethod(mean_squared_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@_REGISTER
class MeanAbsoluteError(_FunctionLoss):
    """Mean absolute error; the Keras class around `mean_absolute_error`.

    Formula:

    ```python
    loss = reduce(mean(abs(y_true - y_pred), axis=-1), sample_weight)
    ```

    Args:
        {reduction}

    Example:

    >>> float(MeanAbsoluteError()([[0.0, 1.0]], [[2.0, 1.0]]))
    1.0
    """

    fn = staticmethod(mean_absolute_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@_REGISTER
class BinaryCrossentropy(_FunctionLoss):
    """Binary cross-entropy; the Keras class around `binary_crossentropy`.

    Formula:

    ```python
    y = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
    loss = reduce(mean(-(y * log(p) + (1 - y) * log(1 - p)), axis), sample_weight)
    ```

    Args:
        from_logits: Whether `y_pred` holds logits (log-sigmoid form) rather than
            probabilities. Defaults to `False`.
        label_smoothing: In `[0, 1]`; squeezes targets towards 0.5. Defaults to 0.
        axis: The axis averaged over. Defaults to -1.
        {reduction}

    Raises:
        ValueError: if an argument is out of range.

    Example:

    >>> round(float(BinaryCrossentropy(from_logits=True)([[1.0]], [[0.0]])), 4)
    0.6931
    """

    fn = staticmethod(binary_crossentropy)

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_crossentropy",
        dtype=None,
    ):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.from_logits = _check_from_logits(from_logits)
        self.label_smoothing = _check_label_smoothing(label_smoothing)
        self.axis = _check_axis(axis)

    def _fn_kwargs(self):
        return {
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


@_REGISTER
class CategoricalCrossentropy(_FunctionLoss):
    """Categorical cross-entropy; the Keras class around `categorical_crossentropy`.

    Formula:

    ```python
    y = y_true * (1 - label_smoothing) + label_smoothing / num_classes
    loss = reduce(-sum(y * log_softmax(logits), axis), sample_weight)
    ```

    Args:
        from_logits: Whether `y_pred` holds logits (log-softmax form) rather than
            probabilities. Defaults to `False`.
        label_smoothing: In `[0, 1]`; mixes targets with the uniform distribution.
            Defaults to 0.
        axis: The class axis. Defaults to -1.
        {reduction}

    Raises:
        ValueError: if an argument is out of range.

    Example:

    >>> round(float(CategoricalCrossentropy()([[0.0, 1.0]], [[0.5, 0.5]])), 4)
    0.6931
    """

    fn = staticmethod(categorical_crossentropy)

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.from_logits = _check_from_logits(from_logits)
        self.label_smoothing = _check_label_smoothing(label_smoothing)
        self.axis = _check_axis(axis)

    def _fn_kwargs(self):
        return {
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


@_REGISTER
class SparseCategoricalCrossentropy(_FunctionLoss):
    """Cross-entropy with integer labels; the Keras class around `sparse_categorical_crossentropy`.

    Unlike Keras (3.x), it accepts `label_smoothing` (by keyword only, so that the
    positional arguments stay Keras's), and it refuses labels outside
    `[0, num_classes)` instead of returning NaN on a GPU.

    Formula:

    ```python
    y = one_hot(y_true, num_classes) * (1 - label_smoothing) + label_smoothing / num_classes
    loss = reduce(-sum(y * log_softmax(logits), axis), sample_weight)
    ```

    Args:
        from_logits: Whether `y_pred` holds logits rather than probabilities.
            Defaults to `False`.
        ignore_class: A label whose entries are left out of the loss (and of the average), or
            `None` (default).
        label_smoothing: In `[0, 1]`; mixes the one-hot targets with the uniform distribution.
            Defaults to 0.
        axis: The class axis of `y_pred`. Defaults to -1.
        {reduction}

    Raises:
        ValueError: if an argument is out of range.

    Example:

    >>> round(float(SparseCategoricalCrossentropy(from_logits=True)([1], [[0.0, 0.0]])), 4)
    0.6931
    """

    fn = staticmethod(sparse_categorical_crossentropy)
    align_ranks = False  # labels have one axis fewer than y_pred; the function handles it

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        axis=-1,
        name="sparse_categorical_crossentropy",
        dtype=None,
        *,
        label_smoothing=0.0,
    ):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.from_logits = _check_from_logits(from_logits)
        self.ignore_class = _check_ignore_class(ignore_class)
        self.label_smoothing = _check_label_smoothing(label_smoothing)
        self.axis = _check_axis(axis)

    def _fn_kwargs(self):
        return {
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


@_REGISTER
class KLDivergence(_FunctionLoss):
    """Kullback-Leibler divergence; the Keras class around `kl_divergence`.

    Formula:

    ```python
    loss = reduce(sum(y_true * log(y_true / y_pred), axis=-1), sample_weight)
    ```

    Args:
        {reduction}

    Example:

    >>> round(float(KLDivergence()([[0.5, 0.5]], [[0.25, 0.75]])), 4)
    0.1438
    """

    fn = staticmethod(kl_divergence)

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@_REGISTER
class Hinge(_FunctionLoss):
    """Hinge loss; the Keras class around `hinge`.

    Formula:

    ```python
    loss = reduce(mean(maximum(1 - y_true * y_pred, 0), axis=-1), sample_weight)
    ```

    Args:
        {reduction}

    Example:

    >>> float(Hinge()([[1.0, 0.0]], [[0.5, 0.5]]))
    1.0
    """

    fn = staticmethod(hinge)

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@_REGISTER
class SquaredHinge(_FunctionLoss):
    """Squared hinge loss; the Keras class around `squared_hinge`.

    Formula:

    ```python
    loss = reduce(mean(square(maximum(1 - y_true * y_pred, 0)), axis=-1), sample_weight)
    ```

    Args:
        {reduction}

    Example:

    >>> float(SquaredHinge()([[1.0, 0.0]], [[0.5, 0.5]]))
    1.25
    """

    fn = staticmethod(squared_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@_REGISTER
class CategoricalHinge(_FunctionLoss):
    """Categorical hinge loss; the Keras class around `categorical_hinge`.

    Formula:

    ```python
    loss = reduce(maximum(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0),
                  sample_weight)
    ```

    Args:
        {reduction}

    Example:

    >>> float(CategoricalHinge()([[0.0, 1.0]], [[0.5, 0.25]]))
    1.25
    """

    fn = staticmethod(categorical_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


for _cls in (
    MeanSquaredError,
    MeanAbsoluteError,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    KLDivergence,
    Hinge,
    SquaredHinge,
    CategoricalHinge,
):
    _cls.__doc__ = _cls.__doc__.replace("{reduction}", _REDUCTION_DOC)
del _cls
