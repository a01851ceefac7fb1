"""The names a config may give a loss, a metric or an optimizer, and what each one is.

One home for these names: `kerasmlp.config` reads them to check a config (which
task each name serves, what an optimizer keeps per weight), and
`kerasmlp.components` reads them to build the Keras object (the class, by its
name in `kerasmlp.losses`, `kerasmlp.metrics` or `kerasmlp.optimizers`, and its
arguments). Like `kerasmlp.sources`, this module imports neither TensorFlow
nor Keras, so that checking a config stays instant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclasses.dataclass(frozen=True)
class LossEntry:
    """A loss in `kerasmlp.losses`.

    Attributes:
      cls: its class name in `kerasmlp.losses`.
      task: 'classification' or 'regression'.
      takes_logits: built with the config's `from_logits` and `label_smoothing`
        (the cross-entropies); the regression losses take neither.
    """

    cls: str
    task: str
    takes_logits: bool


@dataclasses.dataclass(frozen=True)
class MetricEntry:
    """A metric in `kerasmlp.metrics`, built as `cls([num_classes], **kwargs, name=<name>)`.

    Attributes:
      cls: its class name in `kerasmlp.metrics`.
      task: 'classification' or 'regression'.
      kwargs: its arguments besides the name.
      per_class: takes the number of classes first (F1, precision, recall).
      classes: None, or the rule on the number of classes: ('exactly', 2) or
        ('more_than', 5), with the reason the config check gives.
    """

    cls: str
    task: str
    kwargs: Mapping[str, object] = dataclasses.field(default_factory=dict)
    per_class: bool = False
    classes: tuple[str, int, str] | None = None

    def refusal(self, name: str, num_classes: int) -> str | None:
        """Why this metric cannot be used with `num_classes` classes, or None."""
        if self.classes is None:
            return None
        rule, count, why = self.classes
        if (rule == "exactly" and num_classes != count) or (
            rule == "more_than" and num_classes <= count
        ):
            return f"metrics: {name} {why.format(num_classes=num_classes)}"
        return None


# The arguments of Keras's base optimizer that the config sets, with Keras's defaults:
# every optimizer takes them. `weight_decay` 0.0 is Keras's None (no decay).
BASE_OPTIMIZER_OPTIONS: Mapping[str, object] = {
    "weight_decay": 0.0,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
}
CLIPPING_OPTIONS = ("clipnorm", "global_clipnorm", "clipvalue")


@dataclasses.dataclass(frozen=True)
class OptimizerEntry:
    """An optimizer in `kerasmlp.optimizers` (Keras's, with Adam's update fused).

    Attributes:
      cls: its class name in `kerasmlp.optimizers`.
      options: the `optimizer.*` keys it takes (besides `name` and
        `learning_rate`), each with its Keras 3 default: a key left at it is not
        passed, so the class keeps its own. The base optimizer's come first.
      slots: per-weight state it keeps with Keras's defaults, for the memory
        estimate.
      momentum_slots: state it keeps besides, once `momentum` > 0 (Keras's SGD
        and RMSprop build their `momentums` only then).
    """

    cls: str
    options: Mapping[str, object]
    slots: int
    momentum_slots: int = 0

    def slots_for(self, momentum: float) -> int:
        """Per-weight state with the given `optimizer.momentum`."""
        return self.slots + (self.momentum_slots if momentum > 0 else 0)


LOSSES: dict[str, LossEntry] = {
    "binary_crossentropy": LossEntry("BinaryCrossentropy", CLASSIFICATION, True),
    "categorical_crossentropy": LossEntry("CategoricalCrossentropy", CLASSIFICATION, True),
    "sparse_categorical_crossentropy": LossEntry(
        "SparseCategoricalCrossentropy", CLASSIFICATION, True
    ),
    "mean_absolute_error": LossEntry("MeanAbsoluteError", REGRESSION, False),
    "mean_squared_error": LossEntry("MeanSquaredError", REGRESSION, False),
}

METRICS: dict[str, MetricEntry] = {
    "accuracy": MetricEntry("SparseCategoricalAccuracy", CLASSIFICATION),
    "auc": MetricEntry(
        "BinaryAUC",
        CLASSIFICATION,
        classes=("exactly", 2, "needs 2 classes; this dataset has {num_classes}"),
    ),
    "ece": MetricEntry("ExpectedCalibrationError", CLASSIFICATION, {"from_logits": True}),
    "macro_f1": MetricEntry("F1Score", CLASSIFICATION, {"average": "macro"}, per_class=True),
    "macro_precision": MetricEntry(
        "Precision", CLASSIFICATION, {"average": "macro"}, per_class=True
    ),
    "macro_recall": MetricEntry("Recall", CLASSIFICATION, {"average": "macro"}, per_class=True),
    "micro_f1": MetricEntry("F1Score", CLASSIFICATION, {"average": "micro"}, per_class=True),
    "top5_accuracy": MetricEntry(
        "SparseTopKCategoricalAccuracy",
        CLASSIFICATION,
        {"k": 5},
        classes=(
            "more_than",
            5,
            "is always 1 with {num_classes} classes; use it on datasets with more than 5",
        ),
    ),
    "weighted_f1": MetricEntry("F1Score", CLASSIFICATION, {"average": "weighted"}, per_class=True),
    "mae": MetricEntry("MeanAbsoluteError", REGRESSION),
    "mse": MetricEntry("MeanSquaredError", REGRESSION),
    "rmse": MetricEntry("RootMeanSquaredError", REGRESSION),
}

_ADAM = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
OPTIMIZERS: dict[str, OptimizerEntry] = {
    "adam": OptimizerEntry("Adam", {**BASE_OPTIMIZER_OPTIONS, **_ADAM}, slots=2),
    # Keras's AdamW decays by default, where the base class does not.
    "adamw": OptimizerEntry(
        "AdamW", {**BASE_OPTIMIZER_OPTIONS, "weight_decay": 0.004, **_ADAM}, slots=2
    ),
    "rmsprop": OptimizerEntry(
        "RMSprop",
        {**BASE_OPTIMIZER_OPTIONS, "momentum": 0.0, "epsilon": 1e-7},
        slots=1,
        momentum_slots=1,
    ),
    "sgd": OptimizerEntry(
        "SGD",
        {**BASE_OPTIMIZER_OPTIONS, "momentum": 0.0, "nesterov": False},
        slots=0,
        momentum_slots=1,
    ),
}


def optimizers_taking(option: str) -> tuple[str, ...]:
    """The optimizer names whose record takes `option`, in the catalog's order."""
    return tuple(name for name, entry in OPTIMIZERS.items() if option in entry.options)


def names_for(table: Mapping[str, LossEntry | MetricEntry], task: str) -> tuple[str, ...]:
    """The names in `table` that serve `task`, sorted."""
    return tuple(sorted(name for name, entry in table.items() if entry.task == task))
