"""The actions of a training run: each one concern of the outer loop, with its own "when".

`kerasmlp.controller.Controller` calls them in the order `train.build_actions`
lists them. Their state (patience counters, best values, rollbacks) goes into
checkpoints through `get_state` / `set_state`, so a resumed run decides the
same as one that was never stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
import time
from collections.abc import Callable, Mapping

import keras
import tensorflow as tf

from kerasmlp import diagnostics
from kerasmlp.controller import (
    COMPLETED,
    DIVERGED,
    INTERRUPTED,
    STOPPED_EARLY,
    Action,
    Controller,
    Every,
)
from kerasmlp.runfiles import RunStatus, replace_atomically
from kerasmlp.summaries import SummaryWriter


class TrainScalars(Action):
    """Per round: loss, learning rate, gradient norm, examples/s; per epoch: epoch and metrics.

    With float16 loss scaling, also per round: `loss_scale` and `skipped_steps`.
    """

    name = "train_scalars"

    def __init__(self, writer: SummaryWriter):
        self.writer = writer

    def on_steps(self, loop, stats):
        scalars = {
            "loss": stats["loss"],
            "learning_rate": stats["learning_rate"],
            "gradient_norm": stats["gradient_norm"],
            "examples_per_second": stats["examples"] / max(stats["seconds"], 1e-9),
        }
        scalars.update({k: stats[k] for k in ("loss_scale", "skipped_steps") if k in stats})
        # Written here, not on the writer's thread: a few protos, less work than
        # handing them over (measured: the thread competing with every call cost more).
        self.writer.scalars("train", loop.step, scalars)

    def on_epoch_end(self, loop, logs):
        # train/loss is written per round; a per-epoch value at the same step would clash.
        metrics = {k.removeprefix("train_"): v for k, v in logs.items() if k != "train_loss"}
        self.writer.scalars("train", loop.step, {"epoch": loop.epoch, **metrics})


class SkippedSteps(Action):
    """mixed_float16: says at the end of a run that skipped most of its steps.

    Loss scaling skips a step whose scaled gradients overflow float16, and a run's
    first few while the scale comes down from 2**15; a run that skipped most of them
    hardly trained, which only `train/skipped_steps` showed (targets too large for
    float16 skip every step at every scale). Counted over the whole run, resumes
    included.
    """

    name = "skipped_steps"

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.skipped = self.steps = 0

    def on_steps(self, loop, stats):
        if "skipped_steps" in stats:
            self.skipped += int(stats["skipped_steps"])
            self.steps += int(stats["steps"])

    def on_train_end(self, loop):
        if loop.end_reason in (COMPLETED, STOPPED_EARLY) and 2 * self.skipped > self.steps:
            self.log(
                f"mixed_float16: {self.skipped} of {self.steps} steps were skipped (their "
                "gradients overflowed float16 at every loss scale tried), so the model hardly "
                "trained; set train.precision: float32, or give the inputs and targets in "
                "smaller numbers"
            )

    def get_state(self):
        return {"skipped": self.skipped, "steps": self.steps}

    def set_state(self, state):
        self.skipped, self.steps = int(state["skipped"]), int(state["steps"])


class Evaluate(Action):
    """Validation every N epochs and after the last; adds `validation_*` to the logs."""

    name = "evaluate"

    def __init__(
        self, evaluate: Callable[[], dict[str, float]], writer: SummaryWriter, every_epochs
    ):
        self.evaluate = evaluate
        self.writer = writer
        self.when = Every(epochs=every_epochs)

    def on_epoch_end(self, loop, logs):
        if self.when.epoch_due(loop):
            results = self.evaluate()
            self.writer.scalars("validation", loop.step, results)
            logs.update({f"validation_{k}": v for k, v in results.items()})


class _DrawnAfterCheckpoint(Action):
    """What is drawn at due epoch ends, after the checkpoint (see `kerasmlp.train.build_actions`).

    The drawing runs on the writer's thread while the next epoch trains. A run
    restored to that checkpoint, whose later events were dropped, draws it again
    (`on_restore`) from the same weights; not from a checkpoint of an older
    kerasmlp, which drew it before the checkpoint, so that it was kept.

    Subclasses set `when` and write in `_write(step)`.
    """

    draws_at_start = False  # also at step 0, the initial weights
    when: Every

    def __init__(self):
        self.restored_drawn_after = False  # what the restored checkpoint says (see set_state)

    def on_train_begin(self, loop):
        if loop.resumed:
            self.on_restore(loop)
        elif self.draws_at_start and self.when.epochs:
            self._write(loop.step)

    def on_epoch_end(self, loop, logs):
        if self.when.epoch_due(loop):
            self._write(loop.step)

    def on_restore(self, loop):
        at_epoch_end = loop.step_in_epoch == 0 and (loop.epoch or self.draws_at_start)
        if at_epoch_end and self.when.epoch_due(loop) and self.restored_drawn_after:
            self._write(loop.step)

    def get_state(self):
        return {"drawn_after_checkpoint": True}

    def set_state(self, state):
        self.restored_drawn_after = bool(state.get("drawn_after_checkpoint", False))

    def _write(self, step):
        raise NotImplementedError


class LayerReports(_DrawnAfterCheckpoint):
    """Per Dense layer histograms, gradient norms and unit health, at step 0 and every N epochs."""

    name = "layer_reports"
    draws_at_start = True  # the weights at initialization; also traces the probe before training

    def __init__(self, probe: diagnostics.ModelProbe, batch, writer: SummaryWriter, every_epochs):
        super().__init__()
        self.probe = probe
        self.batch = batch
        self.writer = writer
        self.when = Every(epochs=every_epochs)

    def _write(self, step):
        reports = self.probe.layer_reports(*self.batch)  # the model's part, here
        # The histograms (numpy) on the writer's thread, while training goes on.
        self.writer.in_background(
            functools.partial(self.writer.layer_reports, "train", step, reports)
        )


class Images(_DrawnAfterCheckpoint):
    """Confusion matrix, decision boundary or misclassified examples every N epochs."""

    name = "images"

    def __init__(self, probe, dataset, info, split: str, writer: SummaryWriter, every_epochs):
        super().__init__()
        self.probe = probe
        self.dataset = dataset
        self.info = info
        self.split = split
        self.writer = writer
        self.when = Every(epochs=every_epochs)

    def on_train_begin(self, loop):
        # The probe's prediction is made ready now, with the run's other once-only
        # costs, rather than in the middle of training at the first image (about
        # 30 ms for the default model: more than an epoch of the spirals).
        self.probe.warm_up()
        super().on_train_begin(loop)

    def _write(self, step):
        # The model's part here; the drawing (numpy, Pillow) on the writer's thread.
        found = diagnostics.predict_for_images(self.probe, self.dataset, self.info)
        self.writer.in_background(functools.partial(self._draw, found, step))

    def _draw(self, found, step):
        for tag, image in diagnostics.draw_images(found, self.info).items():
            self.writer.image(self.split, step, tag, image)


class Graph(Action):
    """The traced training loop in TensorBoard's Graphs tab, after the first round."""

    name = "graph"

    def __init__(self, concrete_graph: Callable[[], tf.Graph], writer: SummaryWriter):
        self.concrete_graph = concrete_graph
        self.writer = writer

    def on_steps(self, loop, stats):
        if loop.step == stats["steps"]:  # the first round of a run: the loop was just traced
            self.writer.graph("train", self.concrete_graph())


class Profile(Action):
    """Profiles `num_steps` steps at the start of the second epoch (the first one traces)."""

    name = "profile"

    def __init__(self, logdir: pathlib.Path, num_steps: int, epochs: int):
        self.logdir = logdir
        self.num_steps = num_steps
        self.epoch = min(1, epochs - 1)
        self._active = False

    def on_train_begin(self, loop):
        self._maybe_start(loop)

    def on_epoch_end(self, loop, logs):
        self._maybe_start(loop)

    def _maybe_start(self, loop):
        if self.num_steps and loop.epoch == self.epoch and loop.step_in_epoch == 0:
            tf.profiler.experimental.start(str(self.logdir))
            loop.limit_next_round(self.num_steps)
            self._active = True

    def on_steps(self, loop, stats):
        if self._active:
            tf.profiler.experimental.stop()
            self._active = False

    def on_train_end(self, loop):
        if self._active:
            tf.profiler.experimental.stop()
            self._active = False


class Progress(Action):
    """Hands progress to the reporter (console lines or a progress bar)."""

    name = "progress"

    def __init__(self, reporter):
        self.reporter = reporter

    def on_train_begin(self, loop):
        self.reporter.start(
            epochs=loop.epochs,
            steps_per_epoch=loop.steps_per_epoch,
            initial_step=loop.step,
            resumed=loop.resumed,  # from ckpt-0 too: the line says it did not start afresh
        )

    def on_steps(self, loop, stats):
        # `loss` is the interval's, as TensorBoard's train/loss at this step;
        # `epoch_loss` the epoch's so far, as Keras's progress bar shows it.
        logs = {k: stats[k] for k in ("loss", "epoch_loss", "learning_rate")}
        epoch = loop.epoch + (1 if loop.step_in_epoch else 0)
        self.reporter.train_progress(step=loop.step, epoch=epoch, logs=logs)

    def on_epoch_end(self, loop, logs):
        self.reporter.epoch_end(step=loop.step, epoch=loop.epoch, logs=logs)


class EpochLogs(Action):
    """Keeps the last epoch's logs (as Keras's `History`), for metrics.json; resumable."""

    name = "epoch_logs"

    def __init__(self):
        self.last: dict[str, float] = {}

    def on_epoch_end(self, loop, logs):
        self.last = dict(logs)

    def get_state(self):
        return {"last": self.last}

    def set_state(self, state):
        self.last = dict(state.get("last", {}))


def monitor_direction(monitor: str, metrics: Mapping[str, keras.metrics.Metric]) -> str:
    """'min' or 'max' for `validation_<name>`: the loss goes down; a metric says by `_direction`."""
    name = monitor.removeprefix("validation_")
    if name == "loss":
        return "min"
    direction = getattr(metrics.get(name), "_direction", None)
    if direction not in ("up", "down"):
        raise ValueError(f"Cannot tell whether {monitor} should rise or fall; set its mode")
    return "max" if direction == "up" else "min"


class Monitor:
    """Whether a monitored value improved, exactly as Keras's `MonitorCallback` decides.

    Improvement: `value - min_delta > best` in 'max' mode, `value + min_delta < best`
    in 'min' mode (Keras flips the sign of `min_delta`); the first value always improves.
    """

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'. Received: mode={mode!r}")
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(min_delta) if mode == "max" else -abs(min_delta)

    def improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        shifted = value - self.min_delta
        return shifted > best if self.mode == "max" else shifted < best


class BestWeights:
    """A copy of the model's weights in variables, so that checkpoints keep it."""

    def __init__(self, model: keras.Model):
        self.model = model
        self.variables = [
            tf.Variable(tf.zeros(w.shape, w.dtype), trainable=False, name="best")
            for w in model.weights
        ]

    def store(self):
        for copy, weight in zip(self.variables, self.model.weights, strict=True):
            copy.assign(weight.value)

    def load(self):
        for copy, weight in zip(self.variables, self.model.weights, strict=True):
            weight.assign(copy)


def _without_improvement(epochs: int, validations: int) -> str:
    """'2 epochs', or '4 epochs (2 validations)' when validation skips epochs."""
    text = f"{epochs} epoch{'s' * (epochs != 1)}"
    if validations != epochs:
        text += f" ({validations} validation{'s' * (validations != 1)})"
    return text


class EarlyStopping(Action):
    """Stops when `monitor` has not improved for `patience` epochs: Keras's `EarlyStopping`.

    Epochs without a value (`train.eval_every_epochs` > 1) are skipped, so `patience`
    counts validations, as in Keras with `fit(validation_freq=...)`.

    Args:
      monitor: a logged value, e.g. `validation_loss`.
      mode: 'min' or 'max' (resolved from 'auto' by `monitor_direction`).
      patience: validations without improvement before stopping.
      min_delta: the smallest change that counts as an improvement.
      best_weights: a `BestWeights` when the best epoch's weights are restored
        at the end (`restore_best`), else None.
      log: prints one line when the run stops early.
    """

    name = "early_stopping"

    def __init__(self, monitor, mode, *, patience, min_delta, best_weights=None, log=print):
        self.criterion = Monitor(monitor, mode, min_delta)
        self.monitor = monitor
        self.patience = patience
        self.best_weights = best_weights
        self.log = log
        self.wait = 0
        self.best: float | None = None
        self.best_epoch = 0  # 0-based, as Keras counts
        self.stopped_epoch = 0
        self.has_best_weights = False
        self.restored = False  # the best epoch's weights were put back at the end

    def on_train_begin(self, loop):
        # A run resumed from the checkpoint of the epoch it stopped at stops again at
        # once (a checkpoint of an older kerasmlp does not keep the loop's stop_training).
        if self.stopped_epoch:
            loop.stop_training = True

    def on_epoch_end(self, loop, logs):
        current = logs.get(self.monitor)
        if current is None:  # not evaluated this epoch (train.eval_every_epochs)
            return
        epoch = loop.epoch - 1  # Keras's 0-based epoch index
        if self.best_weights is not None and not self.has_best_weights:
            self.best_weights.store()
            self.has_best_weights = True
            self.best_epoch = epoch
        self.wait += 1
        if self.criterion.improves(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.best_weights is not None:
                self.best_weights.store()
            self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            loop.stop_training = True

    def on_train_end(self, loop):
        if loop.end_reason in (INTERRUPTED, DIVERGED):
            return
        if loop.end_reason == STOPPED_EARLY and self.stopped_epoch:
            # At the end, after the stopping epoch's own line, as Keras prints its
            # "Epoch 5: early stopping" (from its state: a resumed run says it again).
            epoch = self.stopped_epoch
            self.log(
                f"early stopping at epoch {epoch + 1}: {self.monitor} has not improved for "
                f"{_without_improvement(epoch - self.best_epoch, self.wait)} "
                f"(best {self.best:.4f} at epoch {self.best_epoch + 1})"
            )
        if self.best_weights is not None and self.has_best_weights:
            self.best_weights.load()
            self.restored = True
            self.log(f"restored the weights of epoch {self.best_epoch + 1} (best {self.monitor})")

    def get_state(self):
        return {
            "wait": self.wait,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "has_best_weights": self.has_best_weights,
        }

    def set_state(self, state):
        self.wait = state["wait"]
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.stopped_epoch = state["stopped_epoch"]
        self.has_best_weights = state["has_best_weights"]


class SaveBest(Action):
    """Keeps `best.keras`, the model of the epoch with the best `monitor`; noted in status.json."""

    name = "save_best"

    def __init__(self, monitor: str, mode: str, path: pathlib.Path, model, status: RunStatus):
        self.criterion = Monitor(monitor, mode)
        self.monitor = monitor
        self.path = path
        self.model = model
        self.status = status
        self.best: float | None = None

    def on_epoch_end(self, loop, logs):
        current = logs.get(self.monitor)
        if current is None or not math.isfinite(current):
            return
        if self.criterion.improves(current, self.best):
            self.best = current
            replace_atomically(self.path, lambda temporary: self.model.save(temporary))
            self.status.update(
                best={
                    "monitor": self.monitor,
                    "value": current,
                    "epoch": loop.epoch,
                    "step": loop.step,
                    "file": self.path.name,
                }
            )

    def get_state(self):
        return {"best": self.best}

    def set_state(self, state):
        self.best = state["best"]


@dataclasses.dataclass(frozen=True)
class Divergence:
    """What went bad, where, and at which learning rate; `advice` in place of a lower rate."""

    step: int
    what: str
    learning_rate: float
    advice: str = ""

    def message(
        self, config_key: str = "optimizer.learning_rate.initial_learning_rate", *, after: str = ""
    ) -> str:
        """One line; `after` says what was tried first (`after 2 rollbacks`)."""
        when = f" {after}" if after else ""
        return (
            f"diverged at step {self.step}{when}: {self.what} (learning rate "
            f"{self.learning_rate:.3g}); {self.advice or f'try a lower {config_key}'}"
        )


# A squared error's gradients grow as the target's variance (the output layer scales the
# head by the standard deviation, and the error is in the target's units). In float32 the
# global norm's sum of squares, and Adam's g**2, grow as its square: past float32's 3.4e38
# from a standard deviation of a few 1e9 (3.4e38 ** 0.25 = 1.4e9; a CSV target of 2.5e9
# overflowed at step 2, one of 2e9 did not). Under mixed_float16 the hidden layers'
# gradients themselves are float16: past its 65504 from a standard deviation of a few
# hundred (65504 ** 0.5 = 256; a CSV target of 570 diverged once the loss scale reached 1,
# at any learning rate, one of 190 did not). The loss itself is still finite, and no
# learning rate brings the gradients down. (bfloat16 has float32's range.)
_LARGEST_SQUARED_ERROR_TARGET_STD = {"float32": 1e9, "mixed_bfloat16": 1e9, "mixed_float16": 256.0}


def large_target_advice(
    loss_name: str, target_variance: float | None, precision: str = "float32"
) -> str:
    """What to do instead of lowering the rate when a regression target overflows.

    Args:
      loss_name: the config's `loss.name`.
      target_variance: the training target's variance (`DatasetInfo.target_variance`);
        None for classification.
      precision: the precision trained in (`train.precision`, resolved): 'float32',
        'mixed_bfloat16' or 'mixed_float16'.

    Returns:
      The advice, or "" where a lower learning rate is the advice.
    """
    if loss_name != "mean_squared_error" or target_variance is None:
        return ""
    std = math.sqrt(target_variance)
    if std <= _LARGEST_SQUARED_ERROR_TARGET_STD[precision]:
        return ""
    unit = 10 ** math.floor(math.log10(std))
    float16 = precision == "mixed_float16"
    return (
        f"the targets' standard deviation, {std:.3g}, is too large for "
        f"{'float16' if float16 else 'float32'}: the squared error's gradients overflow "
        f"whatever the learning rate; give the targets in larger units (divided by "
        f"{unit:.0e}, say){' or set train.precision: float32' if float16 else ''}"
    )


def find_divergence(
    loop: Controller,
    stats: Mapping[str, float],
    rate_at: Callable[[int], float] | None = None,
    advice: str = "",
) -> Divergence | None:
    """The first bad value of a round, from the statistics its one host read brought back.

    Args:
      loop: the controller, whose step is the round's last.
      stats: the round's statistics (see `kerasmlp.trainer.Trainer.run_steps`).
      rate_at: the learning rate of an optimizer iteration (0-based); None
        reports the rate at the round's end.
      advice: what the message advises in place of a lower learning rate (see
        `large_target_advice`); "" for a lower rate.
    """
    first = int(stats.get("first_nonfinite_step", -1))
    start = loop.step - int(stats["steps"])
    if first >= 0:
        what, iteration = "the loss or the gradient norm became NaN or infinite", start + first
    elif not math.isfinite(stats["loss"]) or not math.isfinite(stats["gradient_norm"]):
        what, iteration = "the loss or the gradient norm became NaN or infinite", loop.step - 1
    elif not stats.get("weights_finite", 1.0):
        what, iteration = "a weight became NaN or infinite", loop.step - 1
    else:
        return None
    rate = rate_at(iteration) if rate_at is not None else stats["learning_rate"]
    return Divergence(iteration + 1, what, rate, advice)


class DivergenceGuard(Action):
    """Stops (or rolls back) as soon as the loss, a gradient or a weight is NaN or infinite.

    It reads only what each round returns anyway (the compiled loop marks the
    first bad step and checks the weights once per call), so it costs no extra
    host sync.

    Args:
      policy: 'stop', or 'rollback': restore the last checkpoint, multiply the
        learning rate by `factor`, and go on, at most `max_rollbacks` times.
      scale: the learning-rate scale variable (see `components.ScaledSchedule`).
      log: prints one line per rollback.
      rate_at: the learning rate at an optimizer iteration, for the message.
      rate_now: the learning rate the next step uses (the schedule at the optimizer's
        iteration count, times the scale), written as `learning_rate` at a rollback.
      advice: the message's advice in place of a lower learning rate (see
        `large_target_advice`); "" (default) for a lower rate.
    """

    name = "divergence_guard"

    def __init__(
        self,
        *,
        policy="stop",
        factor=0.5,
        max_rollbacks=3,
        scale=None,
        writer=None,
        log=print,
        rate_at=None,
        rate_now=None,
        advice="",
    ):
        self.policy = policy
        self.factor = factor
        self.max_rollbacks = max_rollbacks
        self.scale = scale
        self.writer = writer
        self.log = log
        self.rate_at = rate_at
        self.rate_now = rate_now
        self.advice = advice
        self.rollbacks = 0
        self.divergence: Divergence | None = None

    def on_steps(self, loop, stats):
        divergence = find_divergence(loop, stats, self.rate_at, self.advice)
        if divergence is None:
            return
        self.divergence = divergence
        # With advice in place of a lower rate (targets too large for the precision), a
        # rollback at a lower rate diverges again: it would only spend its steps.
        rollback = self.policy == "rollback" and not divergence.advice
        if rollback and self.rollbacks < self.max_rollbacks:
            if loop.restore_checkpoint():
                self.rollbacks += 1
                self.scale.assign(self.factor**self.rollbacks)
                self.log(
                    f"rollback {self.rollbacks}/{self.max_rollbacks}: {divergence.message()}; "
                    f"back to step {loop.step}, learning rate x{self.factor**self.rollbacks:g}"
                )
                if self.writer is not None:
                    values = {
                        "rollbacks": self.rollbacks,
                        "learning_rate_scale": self.factor**self.rollbacks,
                    }
                    if self.rate_now is not None:
                        # train/learning_rate is the rate of the step after this one, which
                        # is now scaled: the value logged here before the rollback was not.
                        values["learning_rate"] = self.rate_now()
                    # In place of what was logged at this step before: one value a step.
                    self.writer.replace_scalars("train", loop.step, values)
                loop.save_checkpoint(force=True)
                return
        loop.halt(DIVERGED)

    def get_state(self):
        return {"rollbacks": self.rollbacks}

    def set_state(self, state):
        # A rollback restores an older checkpoint, whose count is lower: keep the larger.
        self.rollbacks = max(self.rollbacks, int(state.get("rollbacks", 0)))
        if self.scale is not None:
            self.scale.assign(self.factor**self.rollbacks)


class Checkpoint(Action):
    """Saves a checkpoint at the start, every epoch, every `every_secs` seconds and at a stop."""

    name = "checkpoint"

    def __init__(self, every_secs: float, status: RunStatus, *, clock=time.monotonic):
        self.when = Every(secs=every_secs, clock=clock)
        self.status = status

    def _save(self, loop, *, record=False):
        if loop.save_checkpoint() is not None or record:
            self.when.reset_time()
            self.status.update(step=loop.step, epoch=loop.epoch, checkpoint_step=loop.step)

    def on_train_begin(self, loop):
        # A resumed run starts at the checkpoint it restored, which status.json may not
        # name: killed between that checkpoint's save and status.json's, or the latest
        # checkpoint unreadable and an older one restored.
        self._save(loop, record=loop.resumed)

    def on_steps(self, loop, stats):
        # The round that ends an epoch is saved at the epoch's end, after the actions that
        # decide on it: saved before them, its step's one checkpoint would hold an epoch
        # with no step left, which a resumed run began with an empty round (train/loss 0
        # logged a second time at that step).
        if self.when.time_due() and loop.step_in_epoch < loop.steps_per_epoch:
            self._save(loop)

    def on_epoch_end(self, loop, logs):
        self._save(loop)

    def on_train_end(self, loop):
        if loop.end_reason != DIVERGED:
            self._save(loop)
