"""Checks for custom Keras losses and metrics: one call tests yours the way kerasmlp tests its own.

`check_loss(loss, y_true=..., y_pred=...)` checks a `keras.losses.Loss`: that reductions and
sample weights agree with its unreduced values, that its gradient agrees with finite
differences, that it is finite at extreme inputs, that `tf.function` gives the eager value,
that `get_config` holds every constructor argument and round-trips, and that a model
compiled with it saves and reloads. `check_metric(metric, y_true=..., y_pred=...)` does the
same for a `keras.metrics.Metric`: batches accumulate to the all-at-once result, weights
behave, `reset_state` resets, config and saving.

Both raise `CheckError` (an `AssertionError`, so pytest shows it as a failed test) listing
every check that failed with the numbers involved, e.g.:

    CheckError: check_loss(MyLoss): 1 of 7 checks failed
    - sample_weight: reduction='sum_over_batch_size', sample_weight=scalar: the loss returned
      1.453125 where 0.7265625 was expected; max abs difference 0.727 > atol=1e-06 +
      rtol=1e-05 * |expected| from its unreduced values [0.40625, 2.5] (does __call__ pass
      `sample_weight` on?)
"""

from __future__ import annotations

import difflib
import inspect
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = ["CheckError", "LOSS_CHECKS", "METRIC_CHECKS", "check_loss", "check_metric"]

LOSS_CHECKS = ("values", "sample_weight", "gradient", "tf_function", "extremes", "config", "saving")
METRIC_CHECKS = ("batches", "sample_weight", "reset_state", "tf_function", "config", "saving")


class CheckError(AssertionError):
    """A `check_loss` or `check_metric` check failed; the message lists each failure."""


# ----------------------------------------------------------------------------------------------
# Small pure helpers
# ----------------------------------------------------------------------------------------------


def _short(values, limit: int = 6) -> str:
    """A one-line view of the first `limit` entries, e.g. `[0.5, -1.25, ...]`."""
    flat = np.ravel(np.asarray(values, np.float64))
    text = np.array2string(flat[:limit], precision=6, separator=", ", max_line_width=10**6)
    return text[:-1] + ", ...]" if flat.size > limit else text


def _float64(values) -> np.ndarray:
    """`values` (numpy, tensor or variable) as float64 numpy; numpy refuses a bfloat16 scalar."""
    return np.asarray(tf.cast(values, tf.float64))


# The floors of tf.test.TestCase.assertAllCloseAccordingToType: a float16 result holds about 3
# significant digits and a bfloat16 one about 2, whatever the data, so a tighter check fails
# Keras's own losses and metrics under a "mixed_float16" or "mixed_bfloat16" policy.
_LOW_PRECISION_TOLERANCE = {"float16": 1e-3, "bfloat16": 1e-2}


def _tolerances(dtype, rtol: float, atol: float) -> tuple[float, float]:
    """`rtol` and `atol`, raised to the floor of the compute `dtype` where it is 16-bit."""
    floor = _LOW_PRECISION_TOLERANCE.get(keras.backend.standardize_dtype(dtype), 0.0)
    return max(rtol, floor), max(atol, floor)


def _max_violation(actual, expected, rtol: float, atol: float) -> str | None:
    """None if `actual` is close to `expected`, else a sentence with the worst entry."""
    actual = _float64(actual)
    expected = _float64(expected)
    if actual.shape != expected.shape:
        return f"shape {actual.shape}, expected shape {expected.shape}"
    if np.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=False):
        return None
    error = np.abs(actual - expected)
    error = np.where(np.isnan(error), np.inf, error)
    index = np.unravel_index(np.argmax(error), error.shape) if error.ndim else ()
    return (
        f"{float(actual[index]):.8g} where {float(expected[index]):.8g} was expected"
        + (f" (at index {tuple(int(i) for i in index)})" if index else "")
        + f"; max abs difference {float(error.max()):.3g} > atol={atol} + rtol={rtol} * |expected|"
    )


def _result(metric) -> np.ndarray | dict[str, np.ndarray]:
    """`metric.result()` as float64 numpy, or a dict of them where the metric returns a dict.

    Keras allows a dict: `model.evaluate` and `fit`'s logs report each key as a metric.
    """
    result = metric.result()
    if isinstance(result, Mapping):
        return {key: _float64(value) for key, value in result.items()}
    return _float64(result)


def _result_violation(actual, expected, rtol: float, atol: float) -> str | None:
    """`_max_violation` of two `_result`s; dicts key by key."""
    if not (isinstance(actual, dict) or isinstance(expected, dict)):
        return _max_violation(actual, expected, rtol, atol)
    keys = sorted(actual) if isinstance(actual, dict) else None
    if not isinstance(expected, dict) or keys != sorted(expected):
        expected_keys = sorted(expected) if isinstance(expected, dict) else None
        return f"a result with keys {keys} where keys {expected_keys} were expected"
    violations = [
        f"{key!r}: {violation}"
        for key in keys
        if (violation := _max_violation(actual[key], expected[key], rtol, atol))
    ]
    return "; ".join(violations) or None


def _keras_reduce(values, mask, weight, reduction: str):
    """What `keras.losses.Loss.__call__` computes from unreduced values, in numpy float64.

    Written from Keras's `reduce_weighted_values` / `apply_mask` / `reduce_values`.
    """
    values = np.asarray(values, np.float64)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if reduction in ("mean", "sum_over_batch_size"):
            valid = mask.sum()
            mask_weight = np.where(mask, values.size / valid if valid else 0.0, 0.0)
        else:
            mask_weight = mask.astype(np.float64)
        weight = mask_weight if weight is None else np.asarray(weight, np.float64) * mask_weight
    if weight is not None:
        weight = np.broadcast_to(np.asarray(weight, np.float64), values.shape)
        values = values * weight
    if reduction in ("none", None) or values.shape in ((), (0,)):
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    divisor = (
        weight.sum()
        if reduction == "mean_with_sample_weight" and weight is not None
        else (values.size)
    )
    return total / divisor if divisor else 0.0


def _constructor_arguments(cls: type) -> list[str]:
    """Named parameters of `cls.__init__` (without self, *args and **kwargs)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [
        p.name
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


_UNSET = object()


def _clone(obj, **overrides):
    """A new `obj` from its config; with its dtype policy where the config leaves it out.

    Keras's own losses drop `dtype` from get_config: a clone of a "mixed_float16" loss would
    compute in float32 and no longer be the loss checked.
    """
    config = obj.get_config()
    policy = getattr(obj, "_dtype_policy", None)
    if (
        policy is not None
        and "dtype" not in config
        and "dtype" in _constructor_arguments(type(obj))
    ):
        config["dtype"] = policy.name
    return type(obj).from_config({**config, **overrides})


def _with_reduction(loss, reduction: str):
    """A copy of `loss` with another `reduction`, every other attribute as it is.

    Not a clone from its config: a constructor argument that `get_config` leaves out would
    be back at its default, and the sample-weight check would blame the weighting for what
    the config check reports. Nor `copy.copy`, which Keras's `__reduce__` sends through the
    config as well.
    """
    copied = object.__new__(type(loss))
    copied.__dict__.update(vars(loss), reduction=reduction)
    return copied


def _float64_twin(loss, y_true, y_pred) -> keras.losses.Loss | None:
    """`loss` rebuilt with `dtype="float64"`, or None where that is not the same loss.

    Many user losses are written for float32, e.g. with `tf.cast(y_true, tf.float32)` in
    `call`: their constructor takes `dtype`, but a float64 twin fails beside float64 `y_pred`.
    And a constructor argument that `get_config` leaves out is back at its default in the
    twin (the config check reports it), which then gives another value: its gradient is not
    the loss's.
    """
    try:
        twin = _clone(loss, dtype="float64")
        value = _float64(twin(y_true, y_pred))
    except Exception:
        return None
    own = _float64(loss(y_true, y_pred.astype(loss.dtype)))
    rtol, atol = _tolerances(loss.dtype, 1e-4, 1e-6)
    return twin if np.allclose(value, own, rtol=10 * rtol, atol=10 * atol) else None


def _json_equal(a, b) -> bool:
    # Configs compare as Keras would store them: tuples and lists alike.
    import json

    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _other_value(obj, name: str):
    """A value of argument `name` that is not its default, or `_UNSET` if none can be guessed.

    The instance's own value where it differs from the default, else the other bool or a
    changed number.
    """
    default = inspect.signature(type(obj).__init__).parameters[name].default
    current = getattr(obj, name, _UNSET)
    try:
        if current is not _UNSET and not _json_equal(current, default):
            return current
    except Exception:  # an attribute json cannot compare: guess from the default instead
        pass
    if isinstance(default, bool):
        return not default
    if isinstance(default, int | float):
        return default + 1  # not default * 2 + 1, which is -1 again for axis=-1
    return _UNSET


def _left_out_at_default(obj, name: str, config: dict) -> bool:
    """Whether get_config returns `name` once it is set away from its default.

    Keras's own classes leave some arguments out while they hold their default, e.g. AUC's
    `thresholds` and SparseTopKCategoricalAccuracy's `from_sorted_ids`: from_config then
    rebuilds the same object, so nothing is lost.
    """
    value = _other_value(obj, name)
    if value is _UNSET:
        return False
    try:
        return name in type(obj).from_config({**config, name: value}).get_config()
    except Exception:
        return False


def _config_problems(obj, config_exclude: Iterable[str]) -> list[str]:
    problems = []
    config = obj.get_config()
    missing = [
        name
        for name in _constructor_arguments(type(obj))
        if name not in config
        and name not in set(config_exclude)
        and not _left_out_at_default(obj, name, config)
    ]
    if missing:
        problems.append(
            f"get_config() lacks constructor argument(s) {missing}; it returned keys "
            f"{sorted(config)}, so from_config() rebuilds them with their defaults"
        )
    try:
        clone = type(obj).from_config(config)
    except Exception as error:  # loading a saved model fails the same way: nothing more to try
        return [
            *problems,
            f"from_config(get_config()) raised {type(error).__name__}: {str(error)[:200]} "
            f"(get_config() returned {config!r}; does __init__ take **kwargs and pass them to "
            "super().__init__?)",
        ]
    if not _json_equal(clone.get_config(), config):
        problems.append(
            f"from_config(get_config()) does not round-trip: {config!r} became "
            f"{clone.get_config()!r}"
        )
    try:  # what loading a saved model does: no custom_objects
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    except Exception as error:
        problems.append(
            f"Keras cannot deserialize {type(obj).__name__} without custom_objects "
            f"({type(error).__name__}: {str(error)[:200]}): decorate the class with "
            "@keras.saving.register_keras_serializable(package=...) in a module users import"
        )
    else:
        if type(restored) is not type(obj) or not _json_equal(restored.get_config(), config):
            problems.append(
                "keras.saving.serialize/deserialize_keras_object gave "
                f"{type(restored).__name__} with config {restored.get_config()!r}"
            )
    return problems


def _run_checks(title: str, checks: dict[str, Callable[[], list[str]]]) -> None:
    failures = []
    for name, check in checks.items():
        try:
            problems = check()
        except Exception as error:  # a check that crashes is a failed check, with its reason
            problems = [f"raised {type(error).__name__}: {str(error)[:1000]}"]
        failures += [f"- {name}: {problem}" for problem in problems]
    if failures:
        failed = len({line.split(":")[0] for line in failures})
        raise CheckError(
            f"{title}: {failed} of {len(checks)} checks failed\n" + "\n".join(failures)
        )


def _names(argument: str, value: Iterable[str]) -> Iterable[str]:
    """`value`, refused if it is one string: each of its letters would be read as a name."""
    if isinstance(value, str):
        raise TypeError(
            f"Argument `{argument}` must be a list of names, e.g. {argument}=[{value!r}]. "
            f"Received: {argument}={value!r}"
        )
    return value


def _select(requested: Sequence[str] | None, allowed: Sequence[str]) -> Sequence[str]:
    if requested is None:
        return allowed
    _names("checks", requested)
    unknown = [name for name in requested if name not in allowed]
    if unknown:
        close = [
            repr(match)
            for name in unknown
            for match in difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
        ]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Argument `checks` has unknown names {unknown}.{hint} Allowed: {', '.join(allowed)}"
        )
    return requested


# ----------------------------------------------------------------------------------------------
# check_loss
# ----------------------------------------------------------------------------------------------


# Far past where exp overflows (88.7 in float32, 11.1 in float16), yet small enough that the
# loss itself stays finite: float16's max is 65504, which 1e4 squared (a squared error) or a
# batch's sum of 2e4 per example (cross-entropy) passes in Keras's own losses; 32 squared
# does not.
_EXTREME_LOGIT = {"float16": 32.0}


def _default_extremes(loss, y_pred: np.ndarray) -> list[np.ndarray]:
    """Logits of +/-1e4 (+/-32 in float16) for logit losses, exact 0/1 for probability losses.

    A loss without `from_logits` gets 1e4 with `y_pred`'s signs, and the 0/1 inputs as well
    where `y_pred` lies in [0, 1].

    Each comes with its opposite: a loss that overflows only where it is confidently wrong
    (log(1 + exp(-x)) at x = -1e4, -log(p) at p = 0) would pass for `y_pred` that is right.
    """
    from_logits = getattr(loss, "from_logits", None)
    if y_pred.ndim < 2 or y_pred.shape[-1] == 1:  # one probability per entry
        rounded = (y_pred >= 0.5).astype(np.float64)
        probabilities = [rounded, 1.0 - rounded]
    else:
        probabilities = [
            (y_pred == y_pred.max(axis=-1, keepdims=True)).astype(np.float64),
            (y_pred == y_pred.min(axis=-1, keepdims=True)).astype(np.float64),
        ]
    if from_logits is False:
        return probabilities
    signs = np.where(y_pred < 0, -1.0, 1.0)
    signs *= _EXTREME_LOGIT.get(keras.backend.standardize_dtype(loss.dtype), 1e4)
    if from_logits:
        return [signs, -signs]
    # Without from_logits, only y_pred's own signs: Poisson's rates, for one, must be > 0.
    # Where y_pred are all in [0, 1], they may be probabilities (a loss of one's own seldom has
    # a from_logits attribute): exact 0 and 1 as well, where -log(p) is inf.
    within_unit_interval = bool(np.all((y_pred >= 0.0) & (y_pred <= 1.0)))
    return [signs, *probabilities] if within_unit_interval else [signs]


def check_loss(
    loss: keras.losses.Loss,
    *,
    y_true,
    y_pred,
    extreme_y_pred: Sequence[Any] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    gradient_rtol: float = 1e-4,
    gradient_atol: float = 1e-6,
    delta: float = 1e-5,
    config_exclude: Iterable[str] = (),
    checks: Sequence[str] | None = None,
) -> None:
    """Checks a Keras loss the way kerasmlp checks its own, and raises if any check fails.

    The checks (all by default; choose with `checks`):

    - `values`: the unreduced values (`call`, or the loss with `reduction="none"`) are finite.
    - `sample_weight`: the unreduced values hold one value per example (for a `y_pred` of
      rank 2 or more), and for reductions `sum_over_batch_size`, `sum`, `mean`, `none` (and
      `mean_with_sample_weight`) and sample weights absent, scalar, per-entry and all zero,
      the loss equals Keras's reduction of the unreduced values (masks included).
    - `gradient`: the gradient with respect to `y_pred` equals central finite differences
      (`tf.test.compute_gradient`), in float64 where the loss rebuilt from its config with
      `dtype="float64"` computes and gives the loss's value; else in its own dtype, with a
      step of 1e-3 and tolerances raised to at least 1e-2 and 1e-3.
    - `tf_function`: the value inside `tf.function`, traced with the batch dimension unknown
      (`None`, as `fit` traces it for a last partial batch), equals the eager value.
    - `extremes`: the value and gradient are finite at extreme `y_pred` (by default logits of
      +/-1e4 for a loss with `from_logits=True`, exact 0/1 probabilities for one with
      `from_logits=False`, each with its opposite: the signs of `-y_pred`, the argmin's
      one-hot beside the argmax's, or one probability per entry rounded and its complement;
      and 1e4 with `y_pred`'s signs for a loss without `from_logits`, with the 0/1
      probabilities too where every `y_pred` is in [0, 1]; 32 in place of 1e4 for a loss
      computing in float16, whose largest value is 65504).
    - `config`: `get_config()` holds every constructor argument (or, as Keras's own classes
      do, leaves one out only while it holds its default: it is returned once set to another
      value), `from_config` round-trips, and the class is registered with Keras.
    - `saving`: a model that outputs `y_pred`, compiled with the loss and saved as `.keras`,
      reloads (in this process, without `custom_objects`) with an equal loss.

    The checks run in the loss's compute dtype (`loss.dtype`: float16 for a loss built with
    `dtype="mixed_float16"`), and the value tolerances follow it: `rtol` and `atol` are raised
    to at least 1e-3 in float16 and 1e-2 in bfloat16, the floors of
    `tf.test.TestCase.assertAllCloseAccordingToType`.

    Choose `y_pred` away from kinks (e.g. `max(0, .)` at 0 for hinge losses, `abs` at 0, a
    clipping bound), where finite differences and the gradient legitimately disagree.

    Args:
        loss: The `keras.losses.Loss` instance to check.
        y_true: Targets for a small batch (numpy-convertible).
        y_pred: Predictions for the same batch (numpy-convertible, float).
        extreme_y_pred: A list of inputs, each shaped as `y_pred`, at which the loss must stay
            finite; defaults as above.
        rtol: Relative tolerance of the value checks (at least 1e-3 in float16, 1e-2 in
            bfloat16).
        atol: Absolute tolerance of the value checks (at least 1e-3 in float16, 1e-2 in
            bfloat16).
        gradient_rtol: Relative tolerance (to the largest gradient entry) of the gradient check.
        gradient_atol: Absolute tolerance of the gradient check.
        delta: The finite-difference step (in float64).
        config_exclude: Constructor arguments that need not appear in `get_config` (e.g.
            `("dtype",)` for Keras's built-in losses, which leave it out).
        checks: Names from `LOSS_CHECKS` to run; all if `None`.

    Raises:
        CheckError: if any check fails; the message lists each failure with its numbers.
        ValueError: if `checks` names an unknown check, or `extreme_y_pred` is not a
            non-empty list of inputs shaped as `y_pred`.
        TypeError: if `loss` is not a `keras.losses.Loss`, or `checks` or `config_exclude` is a
            string.

    Example:

    >>> import kerasmlp.losses
    >>> check_loss(kerasmlp.losses.MeanSquaredError(), y_true=[[0.0, 1.0], [1.0, 1.0]],
    ...            y_pred=[[0.5, 0.25], [2.0, -1.0]],
    ...            checks=["values", "sample_weight", "config"])
    """
    if not isinstance(loss, keras.losses.Loss):
        raise TypeError(
            f"Argument `loss` must be a keras.losses.Loss instance. Received: loss={loss!r}"
        )
    selected = _select(checks, LOSS_CHECKS)
    config_exclude = _names("config_exclude", config_exclude)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred, np.float64)
    if extreme_y_pred is not None:
        # One array would be read as a list of its rows, each broadcast against y_true.
        shapes = [np.shape(extreme) for extreme in extreme_y_pred]
        if not shapes or any(shape != y_pred.shape for shape in shapes):
            raise ValueError(
                f"Argument `extreme_y_pred` must be a list of inputs shaped as `y_pred` "
                f"{y_pred.shape}, e.g. extreme_y_pred=[np.zeros({y_pred.shape})]. Received: "
                f"inputs of shapes {shapes}"
            )
    dtype = loss.dtype  # the policy's compute dtype: float16 under "mixed_float16"
    rtol, atol = _tolerances(dtype, rtol, atol)

    def unreduced():
        """(values, mask) without reduction or weights, as numpy."""
        y_t = tf.constant(y_true.astype(dtype) if y_true.dtype.kind == "f" else y_true)
        y_p = tf.constant(y_pred, dtype)
        if type(loss).call is not keras.losses.Loss.call:
            values = loss.call(tf.cast(y_t, dtype), y_p)  # as Loss.__call__ casts y_true
            mask = getattr(values, "_keras_mask", None)
            if mask is None:
                try:
                    from keras.src.backend.common.masking import get_keras_mask

                    mask = get_keras_mask(values)
                except ImportError:  # pragma: no cover
                    mask = None
        else:  # the loss overrides __call__ only: ask it for unreduced values
            values, mask = _with_reduction(loss, "none")(y_t, y_p), None
        return values.numpy(), None if mask is None else np.asarray(mask)

    def check_values():
        values, _ = unreduced()
        if not np.all(np.isfinite(values)):
            return [f"unreduced values are not all finite: {_short(values)}"]
        return []

    def check_sample_weight():
        values, mask = unreduced()
        batch = len(y_pred) if y_pred.ndim >= 2 else None  # Keras reduces a 1-D y_pred away
        if batch is not None and values.shape[:1] != (batch,):
            return [
                f"unreduced values have shape {values.shape} for a batch of {batch}, so a "
                "per-example sample_weight cannot weigh examples: `call` must return one value "
                f"per example (shape ({batch}, ...)) and leave the reduction over the batch to "
                "Keras (a loss meant for the whole batch, as keras.losses.Dice with axis=None, "
                "leaves 'sample_weight' out of `checks`)"
            ]
        rng = np.random.default_rng(0)
        weights = {
            "none": None,
            "scalar": 0.5,
            "per_entry": rng.uniform(0.0, 2.0, size=values.shape),
            "zeros": np.zeros(values.shape),
        }
        problems = []
        for reduction in ("sum_over_batch_size", "sum", "mean", "none", "mean_with_sample_weight"):
            reducer = _with_reduction(loss, reduction)
            for weight_name, weight in weights.items():
                if reduction == "mean_with_sample_weight" and weight_name in ("none", "scalar"):
                    continue  # Keras divides by the weights as given; not worth pinning here
                got = reducer(
                    y_true, y_pred.astype(dtype), sample_weight=None if weight is None else weight
                )
                expected = np.asarray(_keras_reduce(values, mask, weight, reduction))
                got = _float64(got)
                if got.size == expected.size:
                    # Keras squeezes a batch of one against a scalar weight; the shape is not
                    # the loss's doing.
                    got = got.reshape(expected.shape)
                violation = _max_violation(got, expected, rtol, atol)
                if violation:
                    problems.append(
                        f"reduction={reduction!r}, sample_weight={weight_name}: the loss returned "
                        f"{violation} from its unreduced values {_short(values)}"
                        + (
                            " (does __call__ pass `sample_weight` on?)"
                            if weight is not None
                            else ""
                        )
                    )
        return problems

    def check_gradient():
        target = _float64_twin(loss, y_true, y_pred)
        if target is not None:
            step, grad_rtol, grad_atol = delta, gradient_rtol, gradient_atol
        else:  # the loss cannot compute in float64: finite differences in float32
            target, step = loss, 1e-3
            grad_rtol, grad_atol = max(gradient_rtol, 1e-2), max(gradient_atol, 1e-3)
        theoretical, numerical = tf.test.compute_gradient(
            lambda p: target(y_true, p), [y_pred.astype(target.dtype)], delta=step
        )
        theoretical, numerical = theoretical[0], numerical[0]
        scale = max(float(np.abs(numerical).max(initial=0.0)), 1.0)
        if not np.all(np.isfinite(theoretical)):
            return [f"the gradient is not finite: {_short(theoretical)}"]
        violation = _max_violation(theoretical, numerical, 0.0, grad_atol + grad_rtol * scale)
        if violation:
            return [
                f"d loss / d y_pred from autodiff is {violation} by finite differences "
                f"(delta={step}, dtype={target.dtype})"
            ]
        return []

    def check_tf_function():
        eager = loss(y_true, y_pred.astype(dtype))
        inputs = (tf.constant(y_true), tf.constant(y_pred.astype(dtype)))
        # Traced with the batch dimension unknown, as fit traces its step for a last partial
        # batch: `y_pred.shape[0]` is None there, and a loss that reshapes by it fails.
        signature = [
            tf.TensorSpec((None, *x.shape[1:]) if x.shape else (), x.dtype) for x in inputs
        ]
        traced = tf.function(lambda t, p: loss(t, p), autograph=False, input_signature=signature)
        try:
            graph = traced(*inputs)
        except Exception as error:
            return [
                "inside tf.function with the batch dimension unknown (None, as in fit's step "
                f"for a last partial batch) the loss raised {type(error).__name__}: "
                f"{str(error)[:300]} (`y_pred.shape[0]` is None there; `ops.shape(y_pred)[0]` "
                "gives the batch size)"
            ]
        violation = _max_violation(graph, eager, rtol, atol)
        return [f"inside tf.function the loss is {violation} eagerly"] if violation else []

    def check_extremes():
        problems = []
        inputs = extreme_y_pred if extreme_y_pred is not None else _default_extremes(loss, y_pred)
        for extreme in inputs:
            extreme = tf.constant(np.asarray(extreme, np.float64).astype(dtype))
            with tf.GradientTape() as tape:
                tape.watch(extreme)
                value = loss(y_true, extreme)
            grad = tape.gradient(value, extreme)
            grad = np.zeros(extreme.shape) if grad is None else grad.numpy()
            if not (np.all(np.isfinite(value.numpy())) and np.all(np.isfinite(grad))):
                problems.append(
                    f"at y_pred={_short(extreme.numpy())} the loss is "
                    f"{_short(value.numpy())} and its gradient {_short(grad)}: not finite"
                )
        return problems

    def check_config():
        return _config_problems(loss, config_exclude)

    def check_saving():
        model = keras.Sequential([keras.Input(y_pred.shape[1:]), keras.layers.Identity()])
        model.compile(loss=loss)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.keras")
            model.save(path)
            restored = keras.saving.load_model(path).loss
        problems = []
        if type(restored) is not type(loss) or not _json_equal(
            restored.get_config(), loss.get_config()
        ):
            problems.append(
                f"the reloaded model's loss is {type(restored).__name__} with config "
                f"{restored.get_config()!r}, not {loss.get_config()!r}"
            )
        else:
            violation = _max_violation(
                restored(y_true, y_pred.astype(dtype)),
                loss(y_true, y_pred.astype(dtype)),
                rtol,
                atol,
            )
            if violation:
                problems.append(f"the reloaded loss gives {violation} before saving")
        return problems

    available = {
        "values": check_values,
        "sample_weight": check_sample_weight,
        "gradient": check_gradient,
        "tf_function": check_tf_function,
        "extremes": check_extremes,
        "config": check_config,
        "saving": check_saving,
    }
    _run_checks(f"check_loss({type(loss).__name__})", {name: available[name] for name in selected})


# ----------------------------------------------------------------------------------------------
# check_metric
# ----------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="kerasmlp.testing")
class _NoLoss(keras.losses.Loss):
    """0 for each example, whatever the shapes: `compile` wants a loss, the metric is checked.

    A real loss fails on targets it was not made for (sparse cross-entropy on the
    regression targets of a metric over (mean, log variance) outputs, MSE on shapes that
    differ) and would fail the metric's saving check.
    """

    def call(self, y_true, y_pred):
        return tf.zeros(tf.shape(y_pred)[:1], self.dtype)


def _growing_batches(n: int, num_batches: int) -> list[int]:
    """Slice bounds of `num_batches` non-empty batches sized about 1 : 2 : ... : num_batches.

    Uneven on purpose: a mean of per-batch results (a common bug) equals the all-at-once
    result whenever the batches are the same size.
    """
    shares = np.cumsum(np.arange(1, num_batches + 1)) / (num_batches * (num_batches + 1) / 2)
    bounds = [0]
    for i, share in enumerate(shares[:-1], start=1):
        bounds.append(min(max(round(n * share), bounds[-1] + 1), n - (num_batches - i)))
    return [*bounds, n]


def check_metric(
    metric: keras.metrics.Metric,
    *,
    y_true,
    y_pred,
    num_batches: int = 2,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    config_exclude: Iterable[str] = (),
    checks: Sequence[str] | None = None,
) -> None:
    """Checks a Keras metric the way kerasmlp checks its own, and raises if any check fails.

    The checks (all by default; choose with `checks`), each on a fresh clone of `metric`:

    - `batches`: updating with `num_batches` slices of the data, of growing sizes (about
      1 : 2 : ... so that a mean of per-batch results shows), gives the result of one
      update with all of it.
    - `sample_weight`: weights of 1 give the unweighted result, and an example of weight 0
      counts as if it were absent.
    - `reset_state`: after `reset_state()`, the state variables hold a fresh metric's
      values, and an update gives the result of a fresh metric.
    - `tf_function`: two calls of `update_state` inside one `tf.function` give the eager
      result of two updates (Python state set only while tracing shows on the second), and
      one call traced with the batch dimension unknown (`None`, as `fit` traces it for a
      last partial batch) gives the eager result.
    - `config`: `get_config()` holds every constructor argument (or leaves one out only
      while it holds its default, as `keras.metrics.AUC` does `thresholds`), `from_config`
      round-trips, and the class is registered with Keras.
    - `saving`: a model that outputs `y_pred`, compiled with the metric and saved as
      `.keras`, reloads (in this process, without `custom_objects`) with an equal metric.

    A metric whose `result()` returns a dict of values (Keras's `fit` and `evaluate` log each
    key as a metric) has its results compared key by key.

    Args:
        metric: The `keras.metrics.Metric` instance to check (its state is not touched).
        y_true: Targets for a batch of at least `num_batches` examples, including at least one
            example whose removal changes the result.
        y_pred: Predictions for the same batch. Float `y_pred` is fed in the metric's dtype,
            as a model's outputs are, and float `y_true` in `keras.backend.floatx()`, as
            Keras's data adapters feed targets (float32 under a `mixed_*` policy too).
        num_batches: Into how many slices the `batches` check splits the data.
        rtol: Relative tolerance of the comparisons (at least 1e-3 for a metric computing in
            float16, e.g. `dtype="mixed_float16"`, and 1e-2 in bfloat16, as `check_loss`).
        atol: Absolute tolerance of the comparisons (the same floors).
        config_exclude: Constructor arguments that need not appear in `get_config`.
        checks: Names from `METRIC_CHECKS` to run; all if `None`.

    Raises:
        CheckError: if any check fails; the message lists each failure with its numbers.
        ValueError: if `checks` names an unknown check, `num_batches` is not an integer >= 2,
            or `y_true` and `y_pred` do not hold the same number (at least `num_batches`) of
            examples.
        TypeError: if `metric` is not a `keras.metrics.Metric` updated with `(y_true, y_pred,
            sample_weight)`, or `checks` or `config_exclude`
            is a string.

    Example:

    >>> check_metric(keras.metrics.BinaryAccuracy(), y_true=[[1.0], [0.0], [1.0]],
    ...              y_pred=[[0.9], [0.8], [0.2]], config_exclude=["dtype"],
    ...              checks=["batches", "reset_state"])
    """
    if not isinstance(metric, keras.metrics.Metric):
        raise TypeError(
            "Argument `metric` must be a keras.metrics.Metric instance. "
            f"Received: metric={metric!r}"
        )
    try:
        inspect.signature(metric.update_state).bind(None, None, sample_weight=None)
    except TypeError:
        raise TypeError(
            "check_metric checks a metric updated as compile's metrics are, "
            "update_state(y_true, y_pred, sample_weight=None); "
            f"{type(metric).__name__}.update_state takes {inspect.signature(metric.update_state)}"
        ) from None
    selected = _select(checks, METRIC_CHECKS)
    config_exclude = _names("config_exclude", config_exclude)
    # Float data as fit feeds it, not as numpy's float64: targets and sample weights through
    # Keras's data adapters, which cast floats to floatx (float32 under a mixed policy too),
    # and outputs in the metric's compute dtype. A 16-bit metric that forgets to cast one to
    # the other fails here as it does in fit, and none need cast what fit never sends. They
    # reach `update_state` as tensors, as in fit, never as numpy arrays that numpy would
    # promote to one dtype.
    rtol, atol = _tolerances(metric.dtype, rtol, atol)
    floatx = keras.backend.floatx()
    y_true, y_pred = (
        array.astype(dtype) if array.dtype.kind == "f" else array
        for array, dtype in (
            (np.asarray(y_true), floatx),
            (np.asarray(y_pred), tf.as_dtype(metric.dtype).as_numpy_dtype),
        )
    )
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 2:
        raise ValueError(
            f"Argument `num_batches` must be an integer >= 2. Received: num_batches={num_batches!r}"
        )
    if y_true.shape[:1] != y_pred.shape[:1]:
        raise ValueError(
            "Arguments `y_true` and `y_pred` must hold the same number of examples (first "
            f"axis). Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
        )
    n = len(y_true)
    if n < num_batches:
        raise ValueError(
            f"check_metric needs at least one example per batch: num_batches={num_batches} "
            f"for {n} example(s). Pass more examples or a smaller `num_batches`"
        )

    def result_of(*updates):
        fresh = _clone(metric)
        for update in updates:
            fresh.update_state(*map(tf.constant, update))
        return _result(fresh)

    whole = None

    def whole_result():
        nonlocal whole
        if whole is None:
            whole = result_of((y_true, y_pred))
        return whole

    def check_batches():
        bounds = _growing_batches(n, num_batches)
        parts = [(y_true[a:b], y_pred[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        violation = _result_violation(result_of(*parts), whole_result(), rtol, atol)
        sizes = np.diff(bounds).tolist()
        return (
            [f"{num_batches} batches of {sizes} examples give {violation} from one batch"]
            if violation
            else []
        )

    def check_sample_weight():
        problems = []
        violation = _result_violation(
            result_of((y_true, y_pred, np.ones(n, floatx))), whole_result(), rtol, atol
        )
        if violation:
            problems.append(f"sample_weight of ones gives {violation} without weights")
        weight = np.ones(n, floatx)
        weight[0] = 0.0
        kept = result_of((y_true[1:], y_pred[1:]))
        violation = _result_violation(result_of((y_true, y_pred, weight)), kept, rtol, atol)
        if violation:
            problems.append(
                "sample_weight 0 on the first example gives "
                f"{violation} by leaving that example out (does update_state use sample_weight?)"
            )
        return problems

    def check_reset_state():
        used, fresh = _clone(metric), _clone(metric)
        used.update_state(
            tf.constant(y_true[: max(1, n // 2)]), tf.constant(y_pred[: max(1, n // 2)])
        )
        used.reset_state()
        problems = []
        # The state itself, not only a result: a result can come out equal by chance (the
        # first half's accuracy equal to all of it). A metric that builds its variables on
        # the first update has none fresh, and only its result is compared.
        if len(used.variables) == len(fresh.variables):
            for after, new in zip(used.variables, fresh.variables, strict=True):
                violation = _max_violation(_float64(after), _float64(new), 0.0, 0.0)
                if violation:
                    problems.append(
                        f"variable {after.path!r} after reset_state against a fresh metric's: "
                        f"{violation}"
                    )
        used.update_state(tf.constant(y_true), tf.constant(y_pred))
        violation = _result_violation(_result(used), whole_result(), rtol, atol)
        if violation:
            problems.append(f"after reset_state the result is {violation} from a fresh metric")
        return problems

    def check_tf_function():
        traced = _clone(metric)
        update = tf.function(traced.update_state, autograph=False)
        # Twice, as a compiled training step runs: the second call runs only the trace, so
        # Python state changed while tracing (a counter in a Python int) shows.
        for _ in range(2):
            update(tf.constant(y_true), tf.constant(y_pred))
        got = _result(traced)
        violation = _result_violation(
            got, result_of((y_true, y_pred), (y_true, y_pred)), rtol, atol
        )
        problems = (
            [f"update_state called twice in one tf.function gives {violation} eagerly"]
            if violation
            else []
        )
        # And traced with the batch dimension unknown, as fit traces its step for a last
        # partial batch: `y_pred.shape[0]` is None there.
        relaxed = _clone(metric)
        inputs = (tf.constant(y_true), tf.constant(y_pred))
        signature = [tf.TensorSpec((None, *x.shape[1:]), x.dtype) for x in inputs]
        try:
            tf.function(relaxed.update_state, autograph=False, input_signature=signature)(*inputs)
        except Exception as error:
            return [
                *problems,
                "update_state in a tf.function with the batch dimension unknown (None, as in "
                f"fit's step for a last partial batch) raised {type(error).__name__}: "
                f"{str(error)[:300]} (`y_pred.shape[0]` is None there; `ops.shape(y_pred)[0]` "
                "gives the batch size)",
            ]
        violation = _result_violation(_result(relaxed), whole_result(), rtol, atol)
        if violation:
            problems.append(
                f"update_state in a tf.function with the batch dimension unknown gives {violation} "
                "eagerly"
            )
        return problems

    def check_config():
        return _config_problems(metric, config_exclude)

    def check_saving():
        model = keras.Sequential([keras.Input(y_pred.shape[1:]), keras.layers.Identity()])
        model.compile(loss=_NoLoss(), metrics=[_clone(metric)])
        model.evaluate(y_pred, y_true, verbose=0)  # builds the compiled metrics, as fit would
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.keras")
            model.save(path)
            restored = keras.saving.load_model(path)
        restored.evaluate(y_pred, y_true, verbose=0)
        # Compiled metrics sit inside a CompileMetrics container in `model.metrics`.
        found = [
            m
            for container in restored.metrics
            for m in (getattr(container, "metrics", None) or [container])
            if type(m) is type(metric)
        ]
        if not found:
            return [
                f"the reloaded model has no {type(metric).__name__} among its metrics "
                f"{[type(m).__name__ for m in restored.metrics]}"
            ]
        if not _json_equal(found[0].get_config(), metric.get_config()):
            return [
                f"the reloaded metric's config is {found[0].get_config()!r}, "
                f"not {metric.get_config()!r}"
            ]
        return []

    available = {
        "batches": check_batches,
        "sample_weight": check_sample_weight,
        "reset_state": check_reset_state,
        "tf_function": check_tf_function,
        "config": check_config,
        "saving": check_saving,
    }
    _run_checks(
        f"check_metric({type(metric).__name__})", {name: available[name] for name in selected}
    )
