"""Config names to Keras objects: the loss, the metrics, the optimizer and its schedule.

The names users write in YAML (`sparse_categorical_crossentropy`, `macro_f1`,
`adam`) map here, and only here, to `kerasmlp.losses`, `kerasmlp.metrics` and
Keras's optimizers with an `ExponentialDecay` learning rate.
"""

from __future__ import annotations

import keras

from kerasmlp import losses, metrics
from kerasmlp.config import ConfigError, LossConfig, OptimizerConfig
from kerasmlp.model import Head

_LOSSES = {
    "binary_crossentropy": losses.BinaryCrossentropy,
    "categorical_crossentropy": losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": losses.SparseCategoricalCrossentropy,
    "mean_squared_error": losses.MeanSquaredError,
    "mean_absolute_error": losses.MeanAbsoluteError,
}

_OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


def make_loss(config: LossConfig) -> keras.losses.Loss:
    """The kerasmlp loss named by `loss.name`, averaged over the batch."""
    cls = _LOSSES[config.name]
    if config.name in ("mean_squared_error", "mean_absolute_error"):
        return cls()
    return cls(from_logits=config.from_logits, label_smoothing=config.label_smoothing)


def make_metrics(names: tuple[str, ...], head: Head) -> list[keras.metrics.Metric]:
    """The metrics named in the config, each named as in the config.

    Classification metrics are fed integer labels and one logit per class (a
    sigmoid head's logit z becomes the two logits [0, z], whose softmax is
    [1 - sigmoid(z), sigmoid(z)]).
    """
    num_classes = 2 if head.kind == "sigmoid" else head.units
    if "top5_accuracy" in names and num_classes <= 5:
        raise ConfigError(
            f"metrics: top5_accuracy is always 1 with {num_classes} classes; "
            "use it on datasets with more than 5"
        )
    if "auc" in names and num_classes != 2:
        raise ConfigError(f"metrics: auc needs 2 classes; this dataset has {num_classes}")
    factories = {
        "auc": lambda: metrics.BinaryAUC(name="auc"),
        "accuracy": lambda: metrics.SparseCategoricalAccuracy(name="accuracy"),
        "top5_accuracy": lambda: metrics.SparseTopKCategoricalAccuracy(k=5, name="top5_accuracy"),
        "macro_f1": lambda: metrics.F1Score(num_classes, average="macro", name="macro_f1"),
        "micro_f1": lambda: metrics.F1Score(num_classes, average="micro", name="micro_f1"),
        "weighted_f1": lambda: metrics.F1Score(num_classes, average="weighted", name="weighted_f1"),
        "macro_precision": lambda: metrics.Precision(
            num_classes, average="macro", name="macro_precision"
        ),
        "macro_recall": lambda: metrics.Recall(num_classes, average="macro", name="macro_recall"),
        "ece": lambda: metrics.ExpectedCalibrationError(from_logits=True, name="ece"),
        "mse": lambda: metrics.MeanSquaredError(name="mse"),
        "mae": lambda: metrics.MeanAbsoluteError(name="mae"),
        "rmse": lambda: metrics.RootMeanSquaredError(name="rmse"),
    }
    return [factories[name]() for name in names]


def make_learning_rate(config: OptimizerConfig) -> keras.optimizers.schedules.ExponentialDecay:
    lr = config.learning_rate
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=lr.initial_learning_rate,
        decay_steps=lr.decay_steps,
        decay_rate=lr.decay_rate,
        staircase=lr.staircase,
    )


class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule(step) * scale`, with `scale` a variable: a rollback after divergence lowers it.

    The scale is read inside the compiled step, so changing it needs no retrace.
    """

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule, scale):
        self.schedule = schedule
        self.scale = scale

    def __call__(self, step):
        rate = self.schedule(step)
        return rate * keras.ops.cast(self.scale, rate.dtype)

    def get_config(self):
        return {"schedule": self.schedule.get_config(), "scale": float(self.scale.numpy())}


def make_optimizer(
    config: OptimizerConfig, *, learning_rate_scale=None, loss_scaling: bool = False
) -> keras.optimizers.Optimizer:
    """The optimizer named by `optimizer.name`, its rate an exponential decay.

    Args:
      config: the optimizer section.
      learning_rate_scale: a scalar float variable multiplying the rate (see
        `ScaledSchedule`); None for the plain schedule.
      loss_scaling: wrap it in `keras.optimizers.LossScaleOptimizer` (for
        `mixed_float16`): the loss is multiplied by a dynamic scale before the
        gradients are taken (`optimizer.scale_loss`), `apply_gradients` divides
        them by it, and a step whose gradients are not finite is skipped and the
        scale halved (doubled after 2000 finite steps). The wrapped optimizer is
        `inner_optimizer`; `learning_rate` and `iterations` are its own.
    """
    schedule = make_learning_rate(config)
    if learning_rate_scale is not None:
        schedule = ScaledSchedule(schedule, learning_rate_scale)
    optimizer = _OPTIMIZERS[config.name](learning_rate=schedule)
    if loss_scaling:
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
