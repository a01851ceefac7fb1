"""The training loop: a compiled inner loop of GradientTape steps, driven by a plain outer loop.

What one step does (forward with `training=True`, loss plus regularization,
`tape.gradient`, optimizer update, metric updates) lives in `Trainer` and runs
inside one `tf.function` that takes `num_steps` steps per call, so Python and
the host see the model only every `train.log_every_steps` steps. When to log,
evaluate and save is decided by `train_and_evaluate`, in ordinary Python.

All state a resumed run needs (model, optimizer with its iteration count, the
epoch, the position in the shuffled data, dropout's RNG inside the model) lives
in objects that `TrainState.checkpoint()` hands to `tf.train.Checkpoint`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol, TextIO

import keras
import tensorflow as tf

from kerasmlp import diagnostics, losses
from kerasmlp.components import make_loss, make_metrics, make_optimizer
from kerasmlp.config import Config
from kerasmlp.data import Datasets, load_datasets
from kerasmlp.model import Head, build_model
from kerasmlp.summaries import SummaryWriter, code_block, model_summary


class RunDirectoryExistsError(FileExistsError):
    """The run directory already holds files; kerasmlp never writes over a user's run."""


@dataclasses.dataclass
class TrainState:
    """Everything that changes while training, in checkpointable objects."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    epoch: tf.Variable
    iterator: Any  # a tf.data iterator over the repeated training set

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, epoch=self.epoch, iterator=self.iterator
        )


class Trainer:
    """The compiled train and eval loops for one model, loss, optimizer and metric set.

    Args:
      model: maps flattened examples to logits (or regression outputs).
      loss: a `keras.losses.Loss` reading logits; regularization losses of the
        model are added to it, as `model.fit` does.
      optimizer: a Keras optimizer; its `iterations` is the global step.
      head: what the model emits, which decides how labels reach the loss.
      metric_names: config names of the metrics (see `components.make_metrics`).
    """

    def __init__(
        self,
        model: keras.Model,
        loss: keras.losses.Loss,
        optimizer: keras.optimizers.Optimizer,
        *,
        head: Head,
        metric_names: tuple[str, ...],
    ):
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.head = head
        # Labels arrive as integers; categorical cross-entropy wants them one-hot.
        self._one_hot = isinstance(loss, losses.CategoricalCrossentropy)
        self.train_metrics = make_metrics(metric_names, head)
        self.eval_metrics = make_metrics(metric_names, head)
        # Mean of the per-batch loss, weighted by batch size, as model.fit reports it.
        self.eval_loss = keras.metrics.Mean(name="loss")
        # The epoch's training loss, summed on the host from what each call returns.
        self._epoch_loss_sum = 0.0
        self._epoch_examples = 0.0
        self.optimizer.build(model.trainable_variables)
        self.train_loop = tf.function(self._train_loop)
        self.evaluate_loop = tf.function(self._evaluate_loop)

    # --- traced code -------------------------------------------------------

    def _loss_inputs(self, labels: tf.Tensor, outputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Labels arrive as integers (classification) or scalars (regression)."""
        if self.head.kind == "softmax":
            if self._one_hot:
                return tf.one_hot(labels, self.head.units, dtype=outputs.dtype), outputs
            return labels, outputs
        # One output column: binary logit or regression value.
        return tf.cast(labels, outputs.dtype)[:, None], outputs

    def _metric_inputs(self, labels: tf.Tensor, outputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if self.head.kind == "sigmoid":
            # softmax([0, z]) == [1 - sigmoid(z), sigmoid(z)]: one metric set serves both heads.
            return labels, tf.concat([tf.zeros_like(outputs), outputs], axis=-1)
        if self.head.kind == "linear":
            return tf.cast(labels, outputs.dtype)[:, None], outputs
        return labels, outputs

    def total_loss(self, labels, outputs):
        """The training objective: the loss on `outputs` plus the model's regularization."""
        loss = self.loss(*self._loss_inputs(labels, outputs))
        if self.model.losses:
            loss = loss + tf.add_n(self.model.losses)
        return loss

    def _train_step(self, features: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One update; returns the loss and the global norm of the gradients."""
        with tf.GradientTape() as tape:
            outputs = self.model(features, training=True)
            loss = self.total_loss(labels, outputs)
        variables = self.model.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        metric_labels, metric_outputs = self._metric_inputs(labels, outputs)
        for metric in self.train_metrics:
            metric.update_state(metric_labels, metric_outputs)
        return loss, tf.linalg.global_norm(gradients)

    def _train_loop(self, iterator, num_steps: tf.Tensor) -> tf.Tensor:
        # The interval's statistics travel as loop values, not variables: nothing
        # extra is written per step, and the host reads them all in one transfer.
        loss_sum = tf.constant(0.0)
        examples = tf.constant(0.0)
        gradient_norm_sum = tf.constant(0.0)
        for _ in tf.range(num_steps):
            features, labels = next(iterator)
            loss, gradient_norm = self._train_step(features, labels)
            batch_size = tf.cast(tf.shape(features)[0], tf.float32)
            loss_sum += tf.cast(loss, tf.float32) * batch_size
            examples += batch_size
            gradient_norm_sum += tf.cast(gradient_norm, tf.float32)
        # The schedule's value at the new iteration count: the rate of the next step.
        learning_rate = tf.cast(self.optimizer.learning_rate, tf.float32)
        return tf.stack([loss_sum, examples, gradient_norm_sum, learning_rate])

    def _evaluate_loop(self, dataset: tf.data.Dataset) -> None:
        for features, labels in dataset:
            outputs = self.model(features, training=False)
            loss = self.total_loss(labels, outputs)
            self.eval_loss.update_state(loss, sample_weight=tf.shape(features)[0])
            metric_labels, metric_outputs = self._metric_inputs(labels, outputs)
            for metric in self.eval_metrics:
                metric.update_state(metric_labels, metric_outputs)

    # --- host side ---------------------------------------------------------

    def run_steps(self, iterator, num_steps: int) -> dict[str, float]:
        """Runs `num_steps` training steps in one call of the compiled loop.

        Returns, over those steps: `loss` (mean per example, regularization
        included, as `model.fit` reports it), `gradient_norm` (mean global norm),
        `examples`, and `learning_rate` (the schedule's value at the new step).
        Reading them is the one host sync of the call.
        """
        # A tensor argument, so a different count does not retrace.
        stats = self.train_loop(iterator, tf.constant(num_steps, dtype=tf.int32)).numpy()
        loss_sum, examples, gradient_norm_sum, learning_rate = (float(v) for v in stats)
        self._epoch_loss_sum += loss_sum
        self._epoch_examples += examples
        return {
            "loss": loss_sum / max(examples, 1.0),
            "gradient_norm": gradient_norm_sum / max(num_steps, 1),
            "examples": examples,
            "learning_rate": learning_rate,
        }

    def start_epoch(self) -> None:
        self._epoch_loss_sum = self._epoch_examples = 0.0
        for metric in self.train_metrics:
            metric.reset_state()

    def train_results(self) -> dict[str, float]:
        """Loss and metrics over the steps of the current epoch (dropout on)."""
        results = {"loss": self._epoch_loss_sum / max(self._epoch_examples, 1.0)}
        results.update(_results(self.train_metrics))
        return results

    def evaluate(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """Loss and metrics over `dataset` with `training=False`."""
        self.eval_loss.reset_state()
        for metric in self.eval_metrics:
            metric.reset_state()
        self.evaluate_loop(dataset)
        return {"loss": float(self.eval_loss.result()), **_results(self.eval_metrics)}


def _results(metrics: list[keras.metrics.Metric]) -> dict[str, float]:
    return {metric.name: float(metric.result()) for metric in metrics}


# --- reporting ----------------------------------------------------------------


class Reporter(Protocol):
    """Where progress goes while training (the CLI draws a bar on a terminal)."""

    def start(self, *, epochs: int, steps_per_epoch: int) -> None: ...

    def train_progress(self, *, step: int, epoch: int, logs: Mapping[str, float]) -> None: ...

    def epoch_end(self, *, step: int, epoch: int, logs: Mapping[str, float]) -> None: ...

    def end(self, results: Mapping[str, float]) -> None: ...


def format_logs(split: str, step: int, logs: Mapping[str, float]) -> str:
    """`train | step    400 | loss 0.3121 | lr 9.6e-04`: fixed width, easy to grep."""
    parts = [f"{split:<10}", f"step {step:>7}"]
    for name, value in logs.items():
        if name in ("lr", "learning_rate"):
            parts.append(f"lr {value:.1e}")
        else:
            parts.append(f"{name} {value:.4f}")
    return " | ".join(parts)


class LineReporter:
    """Plain lines, one per logged step and one per epoch; for logs and pipes."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def _print(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)

    def start(self, *, epochs: int, steps_per_epoch: int) -> None:
        self._print(f"training {epochs} epochs x {steps_per_epoch} steps")

    def train_progress(self, *, step: int, epoch: int, logs: Mapping[str, float]) -> None:
        self._print(format_logs("train", step, logs))

    def epoch_end(self, *, step: int, epoch: int, logs: Mapping[str, float]) -> None:
        self._print(format_logs(f"epoch {epoch}", step, logs))

    def end(self, results: Mapping[str, float]) -> None:
        pass


# --- the entry point ----------------------------------------------------------


def check_run_dir(run_dir: str | pathlib.Path) -> pathlib.Path:
    """Returns `run_dir` as a path, refusing one that already holds files."""
    run_dir = pathlib.Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunDirectoryExistsError(
            f"Run directory {run_dir} already holds files; kerasmlp does not write over a run. "
            "Choose another --run-name or --logdir."
        )
    return run_dir


def prepare_run_dir(run_dir: str | pathlib.Path) -> pathlib.Path:
    """Creates `run_dir`, refusing one that already holds files."""
    run_dir = check_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def train_and_evaluate(
    config: Config,
    run_dir: str | pathlib.Path,
    *,
    reporter: Reporter | None = None,
) -> dict[str, float]:
    """Trains the model a config describes and evaluates it on held-out data.

    Writes into `run_dir`: `config.yaml` (the resolved config), TensorBoard event
    files under `train/`, `validation/` and `test/` (and the HParams session in
    `run_dir` itself), `model.keras` and `metrics.json`. What TensorBoard gets
    and how often is described in `kerasmlp.summaries` and `configs/default.yaml`.

    Args:
      config: the whole run (see `kerasmlp.config.Config`).
      run_dir: a new or empty directory.
      reporter: receives progress; defaults to plain lines on stdout.

    Returns:
      Final values as plain floats: `train_loss`, `train_<metric>` (last epoch),
      `validation_*` (when there is a validation split), `test_*`, plus `steps`,
      `epochs`, `wall_time_s` and `examples_per_second` (training steps only).

    Raises:
      ConfigError: the config does not fit the dataset (e.g. binary
        cross-entropy on 10 classes).
      DataError: the dataset cannot be found or prepared.
      RunDirectoryExistsError: `run_dir` already holds files.
    """
    reporter = reporter or LineReporter()
    check_run_dir(run_dir)
    keras.utils.set_random_seed(config.seed)

    data = _load(config)
    info = data.info
    head = Head.for_task(info.task, num_classes=info.num_classes, loss_name=config.loss.name)
    # Only now that the data and the config fit, so a refused run leaves no folder behind.
    run_dir = prepare_run_dir(run_dir)
    (run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    model = build_model(config.model, input_dim=info.input_dim, head=head, seed=config.seed)
    optimizer = make_optimizer(config.optimizer)
    trainer = Trainer(
        model, make_loss(config.loss), optimizer, head=head, metric_names=config.metrics
    )
    state = TrainState(
        model=model,
        optimizer=optimizer,
        epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
        iterator=iter(data.train.repeat()),
    )

    train_cfg = config.train
    steps_per_epoch = math.ceil(info.num_train / train_cfg.batch_size)
    # Diagnostics look at held-out data: one fixed batch, and the images' split.
    has_validation = data.validation is not None
    look_split, look_data = ("validation", data.validation) if has_validation else ("test", None)
    probe = diagnostics.ModelProbe(model, trainer.total_loss)
    probe_batch = next(iter(data.validation if has_validation else data.test))
    results: dict[str, float] = {}
    with SummaryWriter(run_dir) as writer:
        writer.text("train", 0, "config", code_block(config.to_yaml()))
        writer.text("train", 0, "model_summary", code_block(model_summary(model)))
        writer.hparams(
            config.flatten(),
            metrics=[
                (split, tag)
                for split in (("validation", "test") if has_validation else ("test",))
                for tag in ("loss", *config.metrics)
            ],
            trial_id=run_dir.name,
        )
        if train_cfg.histogram_every_epochs:
            # The weights at initialization; also traces the probe before training starts.
            writer.layer_reports("train", state.step, probe.layer_reports(*probe_batch))
        reporter.start(epochs=train_cfg.epochs, steps_per_epoch=steps_per_epoch)
        train_time = examples_seen = 0.0
        # The optimizer's iteration count, read once and then advanced on the host
        # (each call of the loop runs exactly n steps), so no extra read per call.
        step = state.step
        for epoch in range(int(state.epoch.numpy()), train_cfg.epochs):
            trainer.start_epoch()
            done = 0
            # Profile the first steps of the second epoch (the first one traces).
            profile = train_cfg.profile_steps and epoch == min(1, train_cfg.epochs - 1)
            while done < steps_per_epoch:
                # Stop at the next multiple of log_every_steps or at the epoch's end.
                n = min(
                    train_cfg.log_every_steps - step % train_cfg.log_every_steps,
                    steps_per_epoch - done,
                )
                if profile:
                    n = min(train_cfg.profile_steps, steps_per_epoch - done)
                    tf.profiler.experimental.start(str(run_dir / "train"))
                start = time.perf_counter()
                stats = trainer.run_steps(state.iterator, n)  # waits for the steps to finish
                elapsed = time.perf_counter() - start
                if profile:
                    tf.profiler.experimental.stop()
                    profile = False
                if step == 0:  # the loop has just been traced: show it in the Graphs tab
                    loop = trainer.train_loop.get_concrete_function(
                        state.iterator, tf.constant(n, dtype=tf.int32)
                    )
                    writer.graph("train", loop.graph)
                logs = {"loss": stats["loss"], "learning_rate": stats["learning_rate"]}
                train_time += elapsed
                examples_seen += stats["examples"]
                done += n
                step += n
                writer.scalars(
                    "train",
                    step,
                    {
                        **logs,
                        "gradient_norm": stats["gradient_norm"],
                        "examples_per_second": stats["examples"] / max(elapsed, 1e-9),
                    },
                )
                reporter.train_progress(step=step, epoch=epoch + 1, logs=logs)
            state.epoch.assign(epoch + 1)
            train_logs = trainer.train_results()
            writer.scalars("train", step, {"epoch": epoch + 1})
            writer.scalars("train", step, _without_loss(train_logs))
            epoch_logs = {f"train_{k}": v for k, v in train_logs.items()}
            last = epoch + 1 == train_cfg.epochs
            if data.validation is not None and (
                (epoch + 1) % train_cfg.eval_every_epochs == 0 or last
            ):
                val_logs = trainer.evaluate(data.validation)
                writer.scalars("validation", step, val_logs)
                epoch_logs.update({f"validation_{k}": v for k, v in val_logs.items()})
            if _due(train_cfg.histogram_every_epochs, epoch, last):
                writer.layer_reports("train", step, probe.layer_reports(*probe_batch))
            if look_data is not None and _due(train_cfg.image_every_epochs, epoch, last):
                for tag, image in diagnostics.render_images(probe, look_data, info).items():
                    writer.image(look_split, step, tag, image)
            reporter.epoch_end(step=step, epoch=epoch + 1, logs=epoch_logs)
            results.update(epoch_logs)

        test_logs = trainer.evaluate(data.test)
        writer.scalars("test", step, test_logs)
        if look_data is None and train_cfg.image_every_epochs:
            for tag, image in diagnostics.render_images(probe, data.test, info).items():
                writer.image("test", step, tag, image)
        writer.hparams_end(step)
        results.update({f"test_{k}": v for k, v in test_logs.items()})
        results.update(
            steps=float(step),
            epochs=float(state.epoch.numpy()),
            wall_time_s=train_time,
            examples_per_second=examples_seen / max(train_time, 1e-9),
        )
    model.save(run_dir / "model.keras")
    (run_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    reporter.end(results)
    return results


def _due(every_epochs: int, epoch: int, last: bool) -> bool:
    """Whether a kind of summary written every N epochs (0: never) is due after `epoch`."""
    return bool(every_epochs) and ((epoch + 1) % every_epochs == 0 or last)


def _without_loss(logs: Mapping[str, float]) -> dict[str, float]:
    # train/loss is written per logged step; a per-epoch value at the same step would clash.
    return {k: v for k, v in logs.items() if k != "loss"}


def _load(config: Config) -> Datasets:
    return load_datasets(
        config.data.name,
        batch_size=config.train.batch_size,
        validation_fraction=config.train.validation_fraction,
        seed=config.seed,
        data_dir=config.data.data_dir,
        manual_dir=config.data.manual_dir,
        cache=config.data.cache,
        shuffle_buffer=config.data.shuffle_buffer,
    )
