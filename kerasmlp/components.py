"""Config names to Keras objects: the loss, the metrics, the optimizer and its schedule.

The names users write in YAML (`sparse_categorical_crossentropy`, `macro_f1`,
`adam`) are listed once, in `kerasmlp.catalog`, with the class each one names;
here they become `kerasmlp.losses`, `kerasmlp.metrics` and `kerasmlp.optimizers`
(Keras's optimizers, Adam's update fused) with an `ExponentialDecay` learning rate.
"""

from __future__ import annotations

import keras

from kerasmlp import catalog, losses, metrics, optimizers
from kerasmlp.config import ConfigError, LossConfig, OptimizerConfig
from kerasmlp.model import Head


def make_loss(config: LossConfig) -> keras.losses.Loss:
    """The kerasmlp loss named by `loss.name`, averaged over the batch."""
    entry = catalog.LOSSES[config.name]
    cls = getattr(losses, entry.cls)
    if not entry.takes_logits:
        return cls()
    return cls(from_logits=config.from_logits, label_smoothing=config.label_smoothing)


class MetricList(list):
    """The metrics a config names, updated, reset and read as one.

    As Keras's `CompileMetrics` does for `fit`: one `update_state(labels,
    outputs)` feeds every metric, through `Head.metric_inputs` (class ids and one
    logit per class, or a column of values for regression). A list, so it
    iterates and indexes as the metrics themselves; hand `compile` a plain
    `list(...)` of it, as Keras reads nested structures with optree, which
    takes a list subclass for a single leaf.
    """

    def __init__(self, metrics: list[keras.metrics.Metric], head: Head):
        super().__init__(metrics)
        self.head = head

    def update_state(self, labels, outputs) -> None:
        labels, outputs = self.head.metric_inputs(labels, outputs)
        for metric in self:
            metric.update_state(labels, outputs)

    def reset_state(self) -> None:
        for metric in self:
            metric.reset_state()

    def results(self) -> dict[str, float]:
        """`{name: value}` as Python floats (a host read of every metric)."""
        return {metric.name: float(metric.result()) for metric in self}

    @property
    def variables(self) -> list:
        return [v for metric in self for v in metric.variables]


def make_metrics(names: tuple[str, ...], head: Head) -> MetricList:
    """The metrics named in the config, each named as in the config, fed as `head` routes them."""
    entries = {name: catalog.METRICS[name] for name in names}
    for name, entry in entries.items():
        refusal = entry.refusal(name, head.num_classes) if head.num_classes else None
        if refusal:
            raise ConfigError(refusal)
    return MetricList(
        [
            getattr(metrics, entry.cls)(
                *([head.num_classes] if entry.per_class else []), **entry.kwargs, name=name
            )
            for name, entry in entries.items()
        ],
        head,
    )


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


def optimizer_options(config: OptimizerConfig) -> dict[str, object]:
    """The Keras arguments of `config`'s optimizer besides the rate: each key its
    catalog record takes, where it differs from Keras's default (which the class
    then keeps: weight_decay 0.0 of adam is Keras's None, no decay ops)."""
    entry = catalog.OPTIMIZERS[config.name]
    options = {}
    for key, default in entry.options.items():
        value = getattr(config, key)
        if value is not None and value != default:
            options[key] = value
    return options


def make_optimizer(
    config: OptimizerConfig,
    *,
    learning_rate_scale=None,
    loss_scaling: bool = False,
    fused: bool = True,
) -> keras.optimizers.Optimizer:
    """The optimizer named by `optimizer.name`, its rate an exponential decay, with the
    config's own arguments for it (`optimizer_options`).

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
      fused: True (default) for `kerasmlp.optimizers` (Adam's update one fused
        kernel per variable); False for the class of that name in
        `keras.optimizers`, as a `fit` user has it (the benchmarks' reference).
    """
    schedule = make_learning_rate(config)
    if learning_rate_scale is not None:
        schedule = ScaledSchedule(schedule, learning_rate_scale)
    module = optimizers if fused else keras.optimizers
    entry = catalog.OPTIMIZERS[config.name]
    optimizer = getattr(module, entry.cls)(learning_rate=schedule, **optimizer_options(config))
    if loss_scaling:
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
