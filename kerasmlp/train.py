"""The training loop: a compiled inner loop of GradientTape steps, driven by a plain outer loop.

What one step does (forward with `training=True`, loss plus regularization,
`tape.gradient`, optimizer update, metric updates) lives in `Trainer` and runs
inside one `tf.function` that takes `num_steps` steps per call, so Python and
the host see the model only every `train.log_every_steps` steps. When to log,
evaluate, checkpoint and stop is decided by a `kerasmlp.controller.Controller`
and its actions (`kerasmlp.actions`), in ordinary Python; `train_and_evaluate`
builds the run and hands it to them.

All state a resumed run needs (model, optimizer with its iteration count, the
position in the shuffled data, dropout's RNG inside the model, the metrics'
accumulators, the loop's host counters) goes into `kerasmlp.checkpoints`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import pathlib
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TextIO

import keras
import numpy as np
import tensorflow as tf

from kerasmlp import actions, diagnostics, distribute, losses, precision
from kerasmlp.batches import GlobalBatchIterator, HeldOutSplit, InMemoryBatches, replica_rows
from kerasmlp.checkpoints import RunCheckpoints
from kerasmlp.class_weights import resolve_class_weight
from kerasmlp.components import make_loss, make_metrics, make_optimizer
from kerasmlp.config import (
    Config,
    check_data_task,
    check_learning_rate_lasts,
    config_from_dict,
    with_absolute_paths,
)
from kerasmlp.controller import (
    DIVERGED,
    INTERRUPTED,
    STOPPED_EARLY,
    Action,
    Controller,
    StopRequest,
)
from kerasmlp.data import MAX_CACHE_BYTES, Datasets, load_datasets
from kerasmlp.inference import serving_model, write_data_card
from kerasmlp.model import Head, build_model
from kerasmlp.runfiles import (
    CONFIG_FILE,
    METRICS_FILE,
    ResumeError,
    RunDirectoryExistsError,
    RunFilesError,
    RunStatus,
    check_run_dir,
    describe_os_error,
    prepare_run_dir,
    replace_atomically,
    resuming,
    write_json_atomic,
    write_text_atomic,
)
from kerasmlp.summaries import SummaryWriter, code_block, model_summary
from kerasmlp.tables import file_sha256

__all__ = [
    "Controller",
    "LineReporter",
    "Reporter",
    "RunDiverged",
    "RunDirectoryExistsError",
    "RunInterrupted",
    "Trainer",
    "WorkerLost",
    "check_run_dir",
    "prepare_run_dir",
    "train_and_evaluate",
]


class Trainer:
    """The compiled train and eval loops for one model, loss, optimizer and metric set.

    Args:
      model: maps flattened examples to logits (or regression outputs).
      loss: a `keras.losses.Loss` reading logits; regularization losses of the
        model are added to it, as `model.fit` does.
      optimizer: a Keras optimizer; its `iterations` is the global step. A
        `keras.optimizers.LossScaleOptimizer` (for `mixed_float16`) scales the
        loss before the gradients are taken; a step it skips because the scaled
        gradients overflowed is counted (`skipped_steps`), not taken for divergence.
      head: what the model emits, which decides how labels reach the loss.
      metric_names: config names of the metrics (see `components.make_metrics`).
      class_weight: one weight per class id scaling each training example's loss
        (see `kerasmlp.class_weights`); None weighs all examples 1.
      strategy: a `tf.distribute` strategy whose scope `model` and `optimizer`
        were created in, or None (default) for one device. With a strategy,
        each replica trains on its rows of the global batch (see
        `_replica_step`); evaluation still runs on one device.
    """

    def __init__(
        self,
        model: keras.Model,
        loss: keras.losses.Loss,
        optimizer: keras.optimizers.Optimizer,
        *,
        head: Head,
        metric_names: tuple[str, ...],
        class_weight=None,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.model = model
        self.class_weight = None if class_weight is None else tf.constant(class_weight, tf.float32)
        self.loss = loss
        self.optimizer = optimizer
        self.head = head
        self.strategy = strategy
        self.replicas = 1 if strategy is None else int(strategy.num_replicas_in_sync)
        self.loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        # Labels arrive as integers; categorical cross-entropy wants them one-hot.
        self._one_hot = isinstance(loss, losses.CategoricalCrossentropy)
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self.train_metrics = make_metrics(metric_names, head)
            self.optimizer.build(model.trainable_variables)
        # Evaluation runs on one device, outside the strategy: its metrics are plain variables.
        self.eval_metrics = make_metrics(metric_names, head)
        # Mean of the per-batch loss, weighted by batch size, as model.fit reports it.
        self.eval_loss = keras.metrics.Mean(name="loss")
        # The epoch's training loss, summed on the host from what each call returns.
        self._epoch_loss_sum = 0.0
        self._epoch_examples = 0.0
        if strategy is None:
            self._step = self._one_device_step
        else:
            self._step = self._distributed_step
            # Where a worker's replicas take their rows of the global batch: its
            # host CPU, next to the data, so only each replica's rows travel to it.
            host = tf.DeviceSpec.from_string(strategy.extended.worker_devices[0])
            self._input_device = host.replace(device_type="CPU", device_index=0).to_string()
            if self.loss_scaling:
                self._reduce_before_loss_scaling()
            else:
                self._keep_reduced_gradients()
            # Set by the host before a call when this worker was asked to stop (a
            # signal); summed over the workers in the call (see `AgreedStop`).
            self.stop_flag = tf.Variable(0.0, trainable=False, name="stop_requested")
        # No AutoGraph: the loops below are written as `tf.while_loop` and
        # `Dataset.reduce`, and nothing they call needs converting. AutoGraph
        # would rewrite the source of every kerasmlp function the step calls
        # (metrics, loss, batches): 1.5-2 of the 2.1 s the training loop took to
        # trace for the MNIST config, each run, where this traces in 0.34 s.
        self.train_loop = tf.function(self._train_loop, autograph=False)
        self._bound_loop = None  # (iterator, the loop's concrete function for it)
        self.evaluate_loop = tf.function(self._evaluate_loop, autograph=False)
        # Validation and test differ in length: one trace serves both (None first dimension).
        self.evaluate_in_memory = tf.function(
            self._evaluate_in_memory, reduce_retracing=True, autograph=False
        )

    # --- traced code -------------------------------------------------------

    def total_loss(self, labels, outputs, sample_weight=None):
        """The training objective: the loss on `outputs` plus the model's regularization."""
        loss = self.loss(
            *self.head.loss_inputs(labels, outputs, one_hot=self._one_hot),
            sample_weight=sample_weight,
        )
        if self.model.losses:
            loss = loss + tf.add_n(self.model.losses)
        return loss

    def _one_device_step(self, iterator):
        """Reads a batch and takes one step; returns the loss, gradient norm, `skipped`
        and the batch size."""
        features, labels = next(iterator)
        loss, gradient_norm, skipped = self._train_step(features, labels)
        return loss, gradient_norm, skipped, tf.cast(tf.shape(features)[0], tf.float32)

    def _example_weights(self, labels: tf.Tensor) -> tf.Tensor | None:
        """Each example's `train.class_weight`, as `model.fit` turns class_weight into
        sample_weight; None when all weigh 1."""
        if self.class_weight is None:
            return None
        return tf.gather(self.class_weight, tf.cast(labels, tf.int32))

    def _train_step(self, features: tf.Tensor, labels: tf.Tensor):
        """One update; returns the loss, the global norm of the gradients and `skipped`."""
        with tf.GradientTape() as tape:
            outputs = self.model(features, training=True)
            loss = self.total_loss(labels, outputs, sample_weight=self._example_weights(labels))
            scaled_loss = self._scale_loss(loss)
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        # Before the update, which may change the loss scale the gradients carry.
        gradient_norm, skipped = self._gradient_norm(gradients)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self.train_metrics.update_state(labels, outputs)
        return loss, gradient_norm, skipped

    def _scale_loss(self, loss: tf.Tensor) -> tf.Tensor:
        """The loss times the dynamic loss scale (float16), or the loss itself."""
        return self.optimizer.scale_loss(loss) if self.loss_scaling else loss

    def _gradient_norm(self, gradients) -> tuple[tf.Tensor, tf.Tensor]:
        """The global norm of the (unscaled) gradients, and whether the step is skipped.

        With loss scaling, `LossScaleOptimizer.apply_gradients` skips a step whose
        scaled gradients are not finite and halves the scale: the scale was too
        high, the model is fine. Such a step is `skipped` (True), and the divergence
        guard does not count it, while the scale is above 1. At a scale <= 1 the
        gradients are not finite without any scaling, which is what divergence
        means in float32: the step is not `skipped`, and its norm is not finite.
        """
        norm = tf.linalg.global_norm(gradients)
        if not self.loss_scaling:
            return norm, tf.constant(False)
        scale = tf.convert_to_tensor(self.optimizer.dynamic_scale)
        overflowed = tf.logical_not(self.optimizer.check_finite(gradients))
        return norm / scale, overflowed & (scale > 1.0)

    # --- traced code, with a strategy ---------------------------------------
    #
    # The batches come from the same source as on one device, read on every
    # worker in cross-replica context: for `InMemoryBatches` only the global
    # batch's indices, and each replica gathers its own rows (`replica_rows`)
    # on its worker's host; from a tf.data iterator the global batch, of which
    # each replica keeps its rows. Every step thus trains on the same examples
    # as a one-device run with the same seed (the tests compare weights to
    # 1e-5), and the data position is the same on every worker, so the chief's
    # checkpoint restores every worker (resume and rollback). Not used, and
    # why: `distribute_datasets_from_function` and `experimental_distribute_dataset`
    # give iterators that `tf.train.Checkpoint` cannot save (TensorFlow issue
    # 56372), and sharding the examples per worker before the shuffle would
    # change the batches and give each worker a data position of its own.

    def _distributed_step(self, iterator):
        if not isinstance(iterator, InMemoryBatches):
            iterator = GlobalBatchIterator(iterator)
        received, global_size = iterator.next_global()
        loss, gradient_norm, skipped = self.strategy.run(
            functools.partial(self._replica_step, iterator), args=(received, global_size)
        )
        # All are all-reduced inside the step, so every replica holds the same
        # global value: this worker's first copy is it, with no further reduction.
        first = self.strategy.experimental_local_results
        return (
            first(loss)[0],
            first(gradient_norm)[0],
            first(skipped)[0],
            tf.cast(global_size, tf.float32),
        )

    def _replica_step(self, source, received, global_size: tf.Tensor):
        """One update on this replica's rows of the global batch; returns global values.

        The objective is the per-example loss summed over the slice and divided
        by the global batch size, plus the regularization divided by the number
        of replicas: the optimizer sums the replicas' gradients, so the sum is
        the gradient of the one-device objective (mean over the global batch
        plus the regularization once). The loss object's own reduction is not
        used: inside a strategy Keras's `sum_over_batch_size` divides by the
        number of replicas as well (`keras.losses.loss.scale_loss_for_distribution`).
        """
        context = tf.distribute.get_replica_context()
        # The last, smaller batch of an epoch may leave a replica fewer examples
        # (or none: its loss and gradients are then 0).
        start, stop = replica_rows(global_size, context.replica_id_in_sync_group, self.replicas)
        with tf.device(self._input_device):
            local_features, local_labels = source.replica_batch(received, start, stop)
        with tf.GradientTape() as tape:
            outputs = self.model(local_features, training=True)
            per_example = self.loss.call(
                *self.head.loss_inputs(local_labels, outputs, one_hot=self._one_hot)
            )
            weights = self._example_weights(local_labels)
            if weights is not None:
                per_example = per_example * tf.cast(
                    tf.reshape(weights, tf.shape(per_example)), per_example.dtype
                )
            loss = tf.reduce_sum(per_example) / tf.cast(global_size, per_example.dtype)
            if self.model.losses:
                loss = loss + tf.add_n(self.model.losses) / self.replicas
            scaled_loss = self._scale_loss(loss)
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        if self.loss_scaling:
            # Summed here, not in the optimizer (see `_reduce_before_loss_scaling`).
            gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
            gradient_norm, skipped = self._gradient_norm(gradients)
            self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        else:
            self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
            gradient_norm = tf.linalg.global_norm(self._reduced.gradients)
            skipped = tf.constant(False)
        self.train_metrics.update_state(local_labels, outputs)
        return context.all_reduce(tf.distribute.ReduceOp.SUM, loss), gradient_norm, skipped

    def _keep_reduced_gradients(self) -> None:
        """Keeps the gradients the optimizer all-reduces, for the logged gradient norm.

        Keras's TensorFlow optimizer sums the replicas' gradients inside
        `apply_gradients` (`_all_reduce_sum_gradients`) and offers no way to
        see the sum; reducing them a second time here would double the
        traffic. The tests compare the logged norm with a one-device run, so a
        change of that private method shows there. Thread-local: MirroredStrategy
        traces each replica in its own thread.
        """
        reduce = self.optimizer._all_reduce_sum_gradients
        kept = self._reduced = threading.local()

        def reduce_and_keep(grads_and_vars):
            reduced = reduce(grads_and_vars)
            kept.gradients = [g for g, _ in reduced]
            return reduced

        self.optimizer._all_reduce_sum_gradients = reduce_and_keep

    def _reduce_before_loss_scaling(self) -> None:
        """With loss scaling, the step sums the replicas' gradients itself.

        `LossScaleOptimizer` decides whether to skip a step on the first
        replica's gradients (`_tf_apply` in Keras's loss_scale_optimizer.py
        assumes they are summed already), while its inner optimizer sums them
        only later, inside the branch that applies them: a replica whose slice
        overflowed alone would put inf into every weight, and the summed
        gradients would not be reachable for the logged norm. So `_replica_step`
        sums them first (one all-reduce, as before), and the inner optimizer's
        own sum becomes the identity.
        """
        self.optimizer.inner_optimizer._all_reduce_sum_gradients = list

    # --- the compiled loop ---------------------------------------------------

    def _train_loop(self, iterator, num_steps: tf.Tensor) -> tf.Tensor:
        def step(i, loss_sum, examples, gradient_norm_sum, first_nonfinite, skipped_steps):
            loss, gradient_norm, skipped, batch_size = self._step(iterator)
            loss = tf.cast(loss, tf.float32)
            gradient_norm = tf.cast(gradient_norm, tf.float32)
            # A skipped step's norm is not finite and stays out of the mean.
            finite = tf.math.is_finite(loss) & (tf.math.is_finite(gradient_norm) | skipped)
            return (
                i + 1,
                loss_sum + loss * batch_size,
                examples + batch_size,
                gradient_norm_sum + tf.where(skipped, 0.0, gradient_norm),
                tf.where((first_nonfinite < 0) & ~finite, tf.cast(i, tf.float32), first_nonfinite),
                skipped_steps + tf.cast(skipped, tf.float32),
            )

        # The interval's statistics travel as loop values, not variables: nothing
        # extra is written per step, and the host reads them all in one transfer.
        start = (
            tf.constant(0),  # the step, in this call
            tf.constant(0.0),  # loss_sum
            tf.constant(0.0),  # examples
            tf.constant(0.0),  # gradient_norm_sum
            # For the divergence guard: the first step (0-based, in this call) whose
            # loss or gradient norm was not finite, -1 if none.
            tf.constant(-1.0),  # first_nonfinite
            # Steps the loss scaling skipped (see `_gradient_norm`); 0 without it.
            tf.constant(0.0),  # skipped_steps
        )
        _, loss_sum, examples, gradient_norm_sum, first_nonfinite, skipped_steps = tf.while_loop(
            lambda i, *_: i < num_steps, step, start, maximum_iterations=num_steps
        )
        # The schedule's value at the new iteration count: the rate of the next step.
        learning_rate = tf.cast(self.optimizer.learning_rate, tf.float32)
        # Once per call, not per step: SGD at a huge rate can turn a layer to NaN
        # while the loss stays finite.
        weights_finite = tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(v)) for v in self.model.trainable_variables]
        )
        stats = [
            loss_sum,
            examples,
            gradient_norm_sum,
            learning_rate,
            first_nonfinite,
            tf.cast(weights_finite, tf.float32),
        ]
        if self.loss_scaling:
            stats += [skipped_steps, tf.cast(self.optimizer.dynamic_scale, tf.float32)]
        if self.strategy is not None:
            stats.append(self._stop_requested_anywhere())
        return tf.stack(stats)

    def _stop_requested_anywhere(self) -> tf.Tensor:
        """The stop flags of every replica summed: > 0 when any worker was asked to stop."""

        def replica_fn():
            context = tf.distribute.get_replica_context()
            return context.all_reduce(tf.distribute.ReduceOp.SUM, self.stop_flag.read_value())

        return self.strategy.experimental_local_results(self.strategy.run(replica_fn))[0]

    def _evaluate_loop(self, dataset: tf.data.Dataset) -> None:
        def evaluate(batches, batch):
            self._evaluate_batch(*batch)
            return batches + 1

        dataset.reduce(tf.constant(0, tf.int64), evaluate)

    def _evaluate_in_memory(
        self, features: tf.Tensor, labels: tf.Tensor, batch_size: tf.Tensor
    ) -> None:
        """The batches of a `HeldOutSplit`, sliced in order: those `batch(batch_size)` gives."""
        num_batches = (tf.shape(features)[0] + batch_size - 1) // batch_size

        def evaluate(i):
            start = i * batch_size
            self._evaluate_batch(
                features[start : start + batch_size], labels[start : start + batch_size]
            )
            return i + 1

        tf.while_loop(lambda i: i < num_batches, evaluate, [tf.constant(0)])

    def _evaluate_batch(self, features: tf.Tensor, labels: tf.Tensor) -> None:
        outputs = self.model(features, training=False)
        loss = self.total_loss(labels, outputs)
        self.eval_loss.update_state(loss, sample_weight=tf.shape(features)[0])
        self.eval_metrics.update_state(labels, outputs)

    # --- host side ---------------------------------------------------------

    def run_steps(self, iterator, num_steps: int) -> dict[str, float]:
        """Runs `num_steps` training steps in one call of the compiled loop.

        Returns, over those steps: `loss` (mean per example, regularization
        included, as `model.fit` reports it), `epoch_loss` (the same mean over
        the epoch's steps so far, what Keras's progress bar shows; host-side
        sums, no device read), `gradient_norm` (mean global norm),
        `examples`, `learning_rate` (the schedule's value at the new step),
        `first_nonfinite_step` (index in this call of the first step whose loss
        or gradient norm was NaN or infinite; -1 if none) and `weights_finite`
        (1.0 when every weight is finite after the call). With loss scaling
        also `skipped_steps` (steps skipped because the scaled gradients
        overflowed; the gradient norm is the mean over the others) and
        `loss_scale` (after the call). Reading them is the one host sync of the call.
        """
        # A tensor argument, so a different count does not retrace.
        stats = self._loop_for(iterator)(tf.constant(num_steps, dtype=tf.int32)).numpy()
        loss_sum, examples, gradient_norm_sum, learning_rate, first_bad, weights_ok = (
            float(v) for v in stats[:6]
        )
        rest = [float(v) for v in stats[6:]]
        skipped = rest.pop(0) if self.loss_scaling else 0.0
        self._epoch_loss_sum += loss_sum
        self._epoch_examples += examples
        results = {
            "loss": loss_sum / max(examples, 1.0),
            "epoch_loss": self._epoch_loss_sum / max(self._epoch_examples, 1.0),
            "gradient_norm": gradient_norm_sum / max(num_steps - skipped, 1),
            "examples": examples,
            "learning_rate": learning_rate,
            "first_nonfinite_step": first_bad,
            "weights_finite": weights_ok,
        }
        if self.loss_scaling:
            results["skipped_steps"] = skipped
            results["loss_scale"] = rest.pop(0)
        if rest:  # with a strategy: whether any worker was asked to stop
            results["stop_requested"] = float(rest[0] > 0)
        return results

    def _loop_for(self, iterator) -> Callable[[tf.Tensor], tf.Tensor]:
        """`train_loop` on `iterator`, through its concrete function (traced once).

        Calling the concrete function skips `tf.function`'s matching of the
        arguments against its traces, which costs more than the graph's own work
        on a short call: about 0.17 ms of the 0.7 ms a one-step call of the
        default model took here. `train_loop` itself is the same trace.
        """
        if self._bound_loop is None or self._bound_loop[0] is not iterator:
            concrete = self.train_loop.get_concrete_function(iterator, tf.TensorSpec([], tf.int32))
            self._bound_loop = (iterator, functools.partial(concrete, iterator))
        return self._bound_loop[1]

    def state_dict(self) -> dict[str, float]:
        """The epoch's host-side sums; the metrics' variables go into checkpoints themselves."""
        return {"epoch_loss_sum": self._epoch_loss_sum, "epoch_examples": self._epoch_examples}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self._epoch_loss_sum = float(state["epoch_loss_sum"])
        self._epoch_examples = float(state["epoch_examples"])

    @property
    def metric_variables(self) -> list:
        """The state of the train and eval metrics, for `tf.train.Checkpoint`."""
        train, evaluation = self.train_metrics.variables, self.eval_metrics.variables
        return [*train, *self.eval_loss.variables, *evaluation]

    def bind(self, batches, stop: AgreedStop | None = None) -> BoundTrainer:
        """This trainer with its source of batches: what the controller drives."""
        return BoundTrainer(self, batches, stop)

    def start_epoch(self) -> None:
        self._epoch_loss_sum = self._epoch_examples = 0.0
        self.train_metrics.reset_state()

    def train_results(self) -> dict[str, float]:
        """Loss and metrics over the steps of the current epoch (dropout on)."""
        results = {"loss": self._epoch_loss_sum / max(self._epoch_examples, 1.0)}
        results.update(self.train_metrics.results())
        return results

    def evaluate(self, dataset: tf.data.Dataset | HeldOutSplit) -> dict[str, float]:
        """Loss and metrics over `dataset` (batched, or a `HeldOutSplit`) with `training=False`."""
        self.eval_loss.reset_state()
        self.eval_metrics.reset_state()
        if isinstance(dataset, HeldOutSplit):
            batch_size = tf.constant(dataset.batch_size, tf.int32)
            self.evaluate_in_memory(dataset.features, dataset.labels, batch_size)
        else:
            self.evaluate_loop(dataset)
        return {"loss": float(self.eval_loss.result()), **self.eval_metrics.results()}


class BoundTrainer:
    """A `Trainer` and its batches, as `kerasmlp.controller.StepRunner` wants them.

    With `stop` (an `AgreedStop`, for several workers), each call tells the
    compiled loop whether this worker was asked to stop, and learns whether any was.
    """

    def __init__(self, trainer: Trainer, batches, stop: AgreedStop | None = None):
        self.trainer = trainer
        self.batches = batches
        self.stop = stop

    def run_steps(self, num_steps: int) -> dict[str, float]:
        if self.stop is None:
            return self.trainer.run_steps(self.batches, num_steps)
        self.trainer.stop_flag.assign(1.0 if self.stop.local else 0.0)
        stats = self.trainer.run_steps(self.batches, num_steps)
        distribute.reinstall_signal_handlers()
        self.stop.agreed = self.stop.agreed or stats.pop("stop_requested", 0.0) > 0
        return stats

    def start_epoch(self) -> None:
        self.trainer.start_epoch()

    def train_results(self) -> dict[str, float]:
        return self.trainer.train_results()

    def state_dict(self) -> dict[str, float]:
        return self.trainer.state_dict()

    def load_state_dict(self, state) -> None:
        self.trainer.load_state_dict(state)


class AgreedStop:
    """A stop request that every worker sees after the same compiled call.

    A signal reaches one worker (a cluster manager preempting one machine);
    if that worker stopped alone, the others would wait for it in the next
    all-reduce. So the controller reads this instead: it turns true on every
    worker after the call in which any worker passed its local request in.
    """

    def __init__(self, local: StopRequest):
        self.local = local
        self.agreed = False

    @property
    def signal_name(self) -> str | None:
        return self.local.signal_name

    def request(self, signal_name: str) -> None:
        self.local.request(signal_name)

    def __bool__(self) -> bool:
        return self.agreed


# --- reporting ----------------------------------------------------------------


class Reporter(Protocol):
    """Where progress goes while training (the CLI draws a bar on a terminal)."""

    def start(
        self, *, epochs: int, steps_per_epoch: int, initial_step: int = 0, resumed: bool = False
    ) -> None:
        """Training begins at `initial_step`; `resumed`: from a checkpoint (step 0 included)."""

    def train_progress(self, *, step: int, epoch: int, logs: Mapping[str, float]) -> None:
        """After each compiled call: `loss` (over the call's steps), `epoch_loss`
        (over the epoch's steps so far) and `learning_rate`."""

    def epoch_end(self, *, step: int, epoch: int, logs: Mapping[str, float]) -> None: ...

    def end(self, results: Mapping[str, float]) -> None: ...

    def message(self, text: str) -> None:
        """One line about the run (early stopping, a rollback), between progress updates."""


def format_logs(split: str, step: int, logs: Mapping[str, float]) -> str:
    """`train | step    400 | loss 0.3121 | lr 9.6e-04`: fixed width, easy to grep."""
    parts = [f"{split:<10}", f"step {step:>7}"]
    for name, value in logs.items():
        if name in ("lr", "learning_rate"):
            parts.append(f"lr {value:.1e}")
        else:
            parts.append(f"{name} {value:.4f}")
    return " | ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class LineReporter:
    """Plain lines, one per logged step and one per epoch; for logs and pipes."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def _print(self, line: str) -> None:
        stream = self.stream or sys.stdout
        try:
            print(line, file=stream, flush=True)
        except OSError as e:  # a full device, a closed pipe: the user's environment, not a bug
            name = getattr(stream, "name", "output")
            raise RunFilesError(f"cannot write to {name}: {describe_os_error(e, None)}") from e

    def start(
        self, *, epochs: int, steps_per_epoch: int, initial_step: int = 0, resumed: bool = False
    ) -> None:
        if resumed:
            self._print(f"resuming at step {initial_step}")
        self._print(f"training {_count(epochs, 'epoch')} x {_count(steps_per_epoch, 'step')}")

    def train_progress(self, *, step: int, epoch: int, logs: Mapping[str, float]) -> None:
        # The interval's loss, the value of TensorBoard's train/loss at this step.
        shown = {k: v for k, v in logs.items() if k != "epoch_loss"}
        self._print(format_logs("train", step, shown))

    def epoch_end(self, *, step: int, epoch: int, logs: Mapping[str, float]) -> None:
        self._print(format_logs(f"epoch {epoch}", step, logs))

    def end(self, results: Mapping[str, float]) -> None:
        pass

    def message(self, text: str) -> None:
        self._print(text)


# --- the entry point ----------------------------------------------------------


class RunInterrupted(Exception):
    """A signal stopped the run after saving a checkpoint; `--resume` continues it."""

    def __init__(self, run_dir: pathlib.Path, *, step: int, epoch: int, signal_name: str):
        self.run_dir, self.step, self.epoch, self.signal_name = run_dir, step, epoch, signal_name
        super().__init__(
            f"interrupted at step {step} (epoch {epoch}); continue with: "
            f"kerasmlp-train --resume {run_dir}"
        )


class WorkerLost(Exception):
    """Another worker of a multi-worker run stopped answering (killed, crashed, unreachable).

    TensorFlow's coordination service notices the missing heartbeats within
    seconds and aborts the all-reduce the survivors wait in; this says so in one line.
    """

    def __init__(self, run_dir: pathlib.Path, error: Exception):
        self.run_dir = run_dir
        text = " ".join(str(getattr(error, "message", error)).split())
        match = re.search(r"stopped sending heartbeats\):\s*(\S+)", text) or re.search(
            r"Error reported from (/job:\w+/(?:replica:\d+/)?task:\d+)", text
        )
        who = f"task {match.group(1)}" if match else "another worker"
        self.lost = f"lost {who} of the multi-worker run ({type(error).__name__})"
        super().__init__(self.advice(run_dir))

    def advice(self, resume_dir: pathlib.Path, where: str = "") -> str:
        """The line, with the folder to resume (a sweep's, for one of its points)."""
        return (
            f"{self.lost}{where}; stop every worker, then continue from the last checkpoint "
            f"with: kerasmlp-train --resume {resume_dir} (on every worker)"
        )


class RunDiverged(Exception):
    """The loss, a gradient or a weight became NaN or infinite (see `actions.DivergenceGuard`)."""

    def __init__(self, run_dir: pathlib.Path, divergence: actions.Divergence, rollbacks: int):
        self.run_dir, self.divergence = run_dir, divergence
        # "diverged at step 9 after 2 rollbacks: ...": the advice is not what came after them.
        tried = f"after {rollbacks} rollback{'s' if rollbacks != 1 else ''}" if rollbacks else ""
        super().__init__(divergence.message(after=tried))


def train_and_evaluate(
    config: Config,
    run_dir: str | pathlib.Path,
    *,
    reporter: Reporter | None = None,
    resume: bool = False,
    stop_request: StopRequest | None = None,
    hparams_first: Sequence[str] = (),
    hparams_metrics: Sequence[tuple[str, str]] = (),
) -> dict[str, float]:
    """Trains the model a config describes and evaluates it on held-out data.

    Builds the run (data, model, optimizer, `Trainer`, summaries, checkpoints)
    and hands it to a `Controller` with one action per concern (see
    `build_actions`). Writes into `run_dir`: `config.yaml` (the resolved
    config), `status.json` (see `kerasmlp.runfiles`), TensorBoard event files
    under `train/`, `validation/` and `test/` (and the HParams session in
    `run_dir` itself), `checkpoints/`, then `model.keras` and `metrics.json`
    (and `best.keras` with `train.save_best`). Every file is replaced
    atomically.

    Args:
      config: the whole run (see `kerasmlp.config.Config`).
      run_dir: a new or empty directory; with `resume`, a run to continue from
        its latest checkpoint (its events after that checkpoint are dropped).
      reporter: receives progress; defaults to plain lines on stdout.
      resume: continue the run in `run_dir` instead of starting one.
      stop_request: when set (by a signal handler), the run stops after the
        current compiled call, saves a checkpoint and raises `RunInterrupted`.
      hparams_first: config keys (a sweep's grid keys) that TensorBoard's HParams
        tab lists first, before the keys every run shares; default none.
      hparams_metrics: the HParams tab's metric columns, (split, tag) pairs such as
        ('validation', 'accuracy'); default this run's own (validation when it
        holds one out, and test; the loss and `config.metrics`). TensorBoard takes
        the columns of one run's record for a whole folder: a sweep gives every
        point those of all its points.

    Returns:
      Final values: `train_loss`, `train_<metric>` (last epoch),
      `validation_*` (when there is a validation split), `test_*`, plus `steps`
      and `epochs` (integers), `wall_time_s` and `examples_per_second`
      (training steps only), `strategy` (the one `distribute.strategy` resolved
      to: 'one_device', 'mirrored' or 'multi_worker'), `replicas` and `workers`
      (integers: how many replicas and worker processes trained in sync) and
      `precision` (the name `train.precision` resolved to, e.g. 'float32').

    Raises:
      TypeError: `config` is not a `Config`.
      ConfigError: the config does not fit the dataset (e.g. binary
        cross-entropy on 10 classes), or holds a value `load_config` refuses
        (a `Config` changed with `dataclasses.replace` is checked here).
      DataError: the dataset cannot be found or prepared.
      RunDirectoryExistsError: `run_dir` already holds files (not with `resume`).
      ResumeError: `resume` on a folder that cannot be continued.
      RunInterrupted: `stop_request` was set; the run is saved and resumable.
      KeyboardInterrupt: Ctrl-C without a handler (a notebook); status.json says
        `interrupted`, and `resume` goes on from the last checkpoint.
      RunDiverged: the divergence guard stopped the run (exit status 3 in the CLI).
      RunFilesError: a file of the run could not be written (disk full, ...).

    With `config.distribute` naming a strategy, the model, optimizer and
    training metrics live in its scope, `train.batch_size` is the global batch,
    and only the chief writes `run_dir` (see `kerasmlp.distribute`).
    """
    if not isinstance(config, Config):
        raise TypeError(
            "config must be a kerasmlp.Config (kerasmlp.load_config makes one). "
            f"Received: {type(config).__name__}"
        )
    # A Config made with dataclasses.replace skipped load_config's checks: a negative rate
    # trained uphill and wrote a config.yaml that load_run then refused.
    config = config_from_dict(config.to_dict())
    reporter = reporter or LineReporter()
    # Not `or`: a StopRequest not yet set is falsy, and the caller's must be the one read.
    stop_request = stop_request if stop_request is not None else StopRequest()
    run_dir = pathlib.Path(run_dir)
    # Before anything else touches TensorFlow's devices (see kerasmlp.distribute).
    distribute.configure_cpu_devices(config.distribute.cpu_devices)
    strategy = distribute.make_strategy(config.distribute)
    role = distribute.strategy_role(strategy)
    distribute.check_batch_size(config.train.batch_size, role.replicas)
    if strategy is not None:
        _message_of(reporter)(role.describe())
    for line in distribute.unused_settings(config.distribute, role, os.environ):
        _message_of(reporter)(line)
    try:
        # All but the folder, the resume and the checkpoint's state it continues from.
        train = functools.partial(
            _train,
            config,
            role=role,
            strategy=strategy,
            reporter=reporter,
            stop_request=stop_request,
            hparams_first=hparams_first,
            hparams_metrics=hparams_metrics,
        )
        if not role.is_chief:
            # Only the chief writes the run folder; the others write the same files
            # (their checkpoints too) into a temporary folder, removed at the end.
            return _train_as_worker(train, run_dir, role.worker, resume)
        if not resume:
            check_run_dir(run_dir)
            return train(run_dir, resume=False, previous=None)
        with resuming(run_dir) as previous:  # held until the run ends: one --resume at a time
            return train(run_dir, resume=True, previous=previous)
    except (tf.errors.UnavailableError, RunFilesError) as e:
        lost = peer_loss(e)
        if role.workers == 1 or lost is None:
            raise
        raise WorkerLost(run_dir, lost) from e


def peer_loss(error: Exception) -> tf.errors.UnavailableError | None:
    """The `UnavailableError` of a lost peer behind `error`, or None.

    Under `MultiWorkerMirroredStrategy` a checkpoint's save runs collectives too: a
    worker lost while the chief writes one aborts the write, which
    `RunCheckpoints.save` reports as a `RunFilesError` ("cannot write a checkpoint")
    caused by the `UnavailableError`. The files were never the trouble.
    """
    lost = error if isinstance(error, tf.errors.UnavailableError) else error.__cause__
    return lost if isinstance(lost, tf.errors.UnavailableError) else None


def _train_as_worker(train, run_dir: pathlib.Path, worker: int, resume: bool):
    """`train` (`_train` with the run's arguments bound) in a temporary folder of its own."""
    work_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"kerasmlp-worker{worker}-"))
    try:
        if resume:
            # Every worker restores the chief's latest checkpoint (a shared folder).
            chief_checkpoints = run_dir / "checkpoints"
            if chief_checkpoints.is_dir():
                shutil.copytree(chief_checkpoints, work_dir / "checkpoints")
        return train(work_dir, resume=resume, previous=None)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def data_fingerprint(config: Config) -> dict[str, str]:
    """The sha256 of each of the run's own data files, by key (`data.path`, `data.test_path`).

    A run records it in `status.json`; `--resume` (and `kerasmlp-predict --split test`,
    `LoadedRun.read_test_split`) refuse a file changed since, which split and scaled
    again would give other rows than the run trained (and was tested) on.
    """
    paths = {"data.path": config.data.path, "data.test_path": config.data.test_path}
    return {key: file_sha256(path) for key, path in paths.items() if path}


def _check_data_unchanged(run_dir, previous: Mapping | None, fingerprint: dict[str, str]) -> None:
    recorded = (previous or {}).get("data_sha256") or {}  # runs of earlier versions: none
    for key, digest in recorded.items():
        if fingerprint.get(key) not in (None, digest):
            raise ResumeError(
                f"--resume {run_dir}: {key} has changed since the run began (its sha256 "
                "differs): split and scaled again it would give other rows than the run "
                "trained on. Restore the file, or start a new run on it with -c"
            )


def _train(
    config,
    run_dir,
    role,
    strategy,
    reporter,
    stop_request,
    resume,
    previous,
    hparams_first,
    hparams_metrics,
):
    keras.utils.set_random_seed(config.seed)
    data = _load(config)
    fingerprint = data_fingerprint(config)
    if resume:
        _check_data_unchanged(run_dir, previous, fingerprint)
    if data.tabular is not None:
        _message_of(reporter)(data.tabular.describe())
        for line in data.tabular.notes:
            _message_of(reporter)(line)
        check_data_task(config, data.info.task, data.tabular.labels.why)
    check_learning_rate_lasts(
        config, config.train.epochs * math.ceil(data.info.num_train / config.train.batch_size)
    )
    chosen = precision.resolve_precision(config.train.precision)
    if chosen.dtype_policy is not None:  # float32 is silent, as one device is
        _message_of(reporter)(chosen.describe())
    # The run's config.yaml, HParams and a resume hold what was chosen, not `auto`:
    # the same run on other hardware, or resumed there, trains in the same precision.
    # Its data paths are absolute: read again from another folder, they name the same files
    # (the data was read with them as given, which the messages above name).
    config = dataclasses.replace(
        with_absolute_paths(config), train=dataclasses.replace(config.train, precision=chosen.name)
    )
    head = Head.for_task(
        data.info.task, num_classes=data.info.num_classes, loss_name=config.loss.name
    )
    scale = None
    if config.train.on_divergence == "rollback":
        scale = tf.Variable(1.0, trainable=False, name="learning_rate_scale")
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = model_for(config, data.info, head, dtype_policy=chosen.dtype_policy)
        optimizer = make_optimizer(
            config.optimizer, learning_rate_scale=scale, loss_scaling=chosen.loss_scaling
        )
    # Builds the metrics too: refuses e.g. top5_accuracy on 2 classes before any file is written.
    # The trainer enters the strategy's scope for what trains (see `Trainer`).
    trainer = Trainer(
        model,
        make_loss(config.loss),
        optimizer,
        head=head,
        metric_names=config.metrics,
        class_weight=_class_weight(config, data),
        strategy=strategy,
    )
    # Only now that the data and the config fit, so a refused run leaves no folder behind.
    if not resume:
        run_dir = prepare_run_dir(run_dir)
    status = RunStatus(run_dir, previous)

    def begin() -> None:
        write_text_atomic(run_dir / CONFIG_FILE, config.to_yaml())
        own_data = {"data_sha256": fingerprint} if fingerprint else {}
        status.update(
            "running",
            epochs=config.train.epochs,
            strategy=role.strategy,
            replicas=role.replicas,
            workers=role.workers,
            **own_data,
        )

    try:
        if not resume:
            begin()  # a resumed run begins once its checkpoint is restored and fits
        return _run(
            config,
            run_dir,
            data=data,
            head=head,
            trainer=trainer,
            scale=scale,
            status=status,
            reporter=reporter,
            stop_request=stop_request,
            resume=resume,
            role=role,
            hparams_first=hparams_first,
            hparams_metrics=hparams_metrics,
            begin=begin,
        )
    except (RunInterrupted, RunDiverged):
        raise
    except BaseException as e:
        # A resumed run refused before it began (its checkpoint cannot be read or does
        # not fit, --epochs too few) is left as it was: nothing of it was written.
        if status.record.get("pid") == os.getpid():
            with contextlib.suppress(OSError):
                if isinstance(e, KeyboardInterrupt):
                    # Ctrl-C where no handler asks for a stop (a notebook, a script): the
                    # user's interrupt, not a failure; --resume goes on from the last checkpoint.
                    status.update("interrupted", signal="SIGINT")
                else:
                    error = " ".join(f"{type(e).__name__}: {e}".split())[:500]
                    status.update("failed", error=error)
        raise


def _run(
    config,
    run_dir,
    *,
    data,
    head,
    trainer,
    scale,
    status,
    reporter,
    stop_request,
    resume,
    role,
    hparams_first=(),
    hparams_metrics=(),
    begin=lambda: None,
):
    data = _held_out_in_memory(data, config)
    info, train_cfg, model = data.info, config.train, trainer.model
    batches = _training_batches(data, config)
    has_validation = data.validation is not None
    writer = SummaryWriter(run_dir)
    best_weights = None
    if train_cfg.early_stopping.monitor and train_cfg.early_stopping.restore_best:
        best_weights = actions.BestWeights(model)
    objects = checkpoint_objects(trainer, batches, scale=scale, best_weights=best_weights)
    checkpoints = RunCheckpoints(
        run_dir / "checkpoints",
        objects,
        keep=train_cfg.keep_checkpoints,
        writer=writer,
        log=_message_of(reporter),
    )

    def rate_at(iteration) -> float:
        """The schedule (times the rollback scale) at an optimizer iteration."""
        return float(_schedule(trainer.optimizer)(iteration))

    guard = actions.DivergenceGuard(
        policy=train_cfg.on_divergence,
        factor=train_cfg.rollback_factor,
        max_rollbacks=train_cfg.max_rollbacks,
        scale=scale,
        writer=writer,
        log=_message_of(reporter),
        rate_at=rate_at,  # only on divergence, at the bad step
        # At the optimizer's iterations, as the compiled loop reads it for
        # train/learning_rate (skipped mixed_float16 steps are not iterations).
        rate_now=lambda: rate_at(trainer.optimizer.iterations),
        advice=actions.large_target_advice(
            config.loss.name, info.target_variance, config.train.precision
        ),
    )
    action_list = build_actions(
        config,
        run_dir,
        data,
        trainer,
        batches,
        writer,
        status,
        reporter,
        guard,
        best_weights,
        workers=role.workers,
    )
    # With several workers, the stop a signal asks for is agreed in the compiled call.
    agreed = AgreedStop(stop_request) if role.workers > 1 else None
    controller = Controller(
        trainer.bind(batches, agreed),
        epochs=train_cfg.epochs,
        steps_per_epoch=math.ceil(info.num_train / train_cfg.batch_size),
        log_every_steps=train_cfg.log_every_steps,
        actions=action_list,
        checkpoints=checkpoints,
        stop_request=agreed if agreed is not None else stop_request,
    )
    state = checkpoints.restore_latest() if resume else None
    if state is not None:
        controller.load_state_dict(state)
        controller.last_checkpoint_step = controller.step
        _check_epochs_cover(controller, run_dir)
    if resume:
        begin()
    if state is not None:
        # As it is now: `--epochs` or `--strategy` changed the config the run began with.
        writer.restate(config.flatten(), config_text=code_block(config.to_yaml()))
    if state is not None and has_validation and controller.finished_epochs:
        _validate_new_last_epoch(controller, action_list)
    if state is None:
        if resume:  # killed before its first checkpoint: start again in the same folder
            writer.truncate_after(0.0)
        writer.text("train", 0, "config", code_block(config.to_yaml()))
        writer.text("train", 0, "model_summary", code_block(model_summary(model)))
        writer.hparams(
            config.flatten(),
            metrics=list(hparams_metrics)
            or [
                (split, tag)
                for split in (("validation", "test") if has_validation else ("test",))
                for tag in ("loss", *config.metrics)
            ],
            first=hparams_first,
        )

    reason = controller.train()
    step, epoch = controller.step, controller.epoch
    if reason == INTERRUPTED:
        # No HParams session end: see `SummaryWriter.hparams_end`.
        writer.close()
        in_progress = epoch + (1 if controller.step_in_epoch else 0)
        status.update("interrupted", step=step, epoch=epoch, signal=stop_request.signal_name)
        raise RunInterrupted(
            run_dir, step=step, epoch=in_progress, signal_name=stop_request.signal_name or ""
        )
    if reason == DIVERGED:
        writer.hparams_end(step, status="failure")
        writer.close()
        divergence = guard.divergence
        status.update(
            "diverged",
            step=step,
            epoch=epoch,
            divergence={
                "step": divergence.step,
                "what": divergence.what,
                "learning_rate": divergence.learning_rate,
            },
        )
        raise RunDiverged(run_dir, divergence, guard.rollbacks)

    # Completed, or stopped early: evaluate on the test split and save the model.
    results = dict(_find(action_list, actions.EpochLogs).last)
    stopped = _find(action_list, actions.EarlyStopping)
    if has_validation and stopped is not None and stopped.restored:
        # The model tested and saved holds the best epoch's weights, not the last
        # epoch's: so do the validation values returned. TensorBoard's validation
        # curves (and the HParams columns read from them) end at the last epoch.
        validation_logs = trainer.evaluate(data.validation)
        results.update({f"validation_{k}": v for k, v in validation_logs.items()})
    test_logs = trainer.evaluate(data.test)
    writer.scalars("test", step, test_logs)
    if not has_validation and train_cfg.image_every_epochs:
        probe = _find(action_list, actions.LayerReports).probe
        for tag, image in diagnostics.render_images(probe, data.test, info).items():
            writer.image("test", step, tag, image)
    writer.hparams_end(step)
    writer.close()
    results.update({f"test_{k}": v for k, v in test_logs.items()})
    results.update(
        steps=step,
        epochs=epoch,
        wall_time_s=controller.train_time,
        examples_per_second=controller.examples_seen / max(controller.train_time, 1e-9),
        strategy=role.strategy,
        replicas=role.replicas,
        workers=role.workers,
        precision=config.train.precision,
    )
    # For your own table, the saved model is preprocessing + MLP, on the raw columns.
    saved = serving_model(model, data)
    replace_atomically(run_dir / "model.keras", lambda path: saved.save(path))
    write_data_card(run_dir, data, head)
    write_json_atomic(run_dir / METRICS_FILE, results)
    status.update(
        "completed",
        step=step,
        epoch=epoch,
        stopped_early=reason == STOPPED_EARLY,
        **(
            {"stopped_epoch": stopped.stopped_epoch + 1}
            if stopped and stopped.stopped_epoch
            else {}
        ),
    )
    reporter.end(results)
    return results


def _validate_new_last_epoch(controller: Controller, action_list: Sequence[Action]) -> None:
    """Validates the epoch a run resumed with `--epochs N` ends at, when it was not validated.

    At the end of epoch N, which `train.eval_every_epochs` skipped (it was not the last
    then), the run is over: its last epoch is validated all the same, before the weights
    are restored or tested, and the actions that read the validation (early stopping and
    its best weights, `save_best`, the last logs) hear it at that epoch's end, as in the
    run of N epochs. The rest of that epoch end is in the checkpoint or drawn again.
    """
    logs = dict(_find(action_list, actions.EpochLogs).last)
    if any(key.startswith("validation_") for key in logs):
        return
    readers = (actions.Evaluate, actions.EpochLogs, actions.EarlyStopping, actions.SaveBest)
    for action in action_list:
        if isinstance(action, readers):
            action.on_epoch_end(controller, logs)


def _check_epochs_cover(controller: Controller, run_dir: pathlib.Path) -> None:
    """Refuses `--resume --epochs N` of a run that has trained past epoch N.

    Its model would be tested and saved as N epochs' while it holds more steps
    (and its last validation would be older than its test).
    """
    if controller.step <= controller.epochs * controller.steps_per_epoch:
        return
    begun = controller.epoch + (1 if controller.step_in_epoch else 0)
    raise ResumeError(
        f"--resume {run_dir} --epochs {controller.epochs}: the run has already trained past "
        f"epoch {controller.epochs} ({controller.step} steps of {controller.steps_per_epoch} "
        f"an epoch, in epoch {begun}); --epochs must be at least {begun}"
    )


def build_actions(
    config,
    run_dir,
    data,
    trainer,
    batches,
    writer,
    status,
    reporter,
    guard,
    best_weights,
    *,
    workers: int = 1,
) -> list[Action]:
    """The run's actions, in the order each hook calls them (see `kerasmlp.controller`).

    The guard comes first, so nothing is logged from a diverged round; evaluation
    before the actions that read `validation_*`; the progress line after them; the
    checkpoint after every action with a decision to keep. The layer reports and
    pictures come after the checkpoint: they keep no state, and their drawing on
    the writer's thread then overlaps the next epoch's training instead of holding
    up the checkpoint (which waits for earlier drawing: see `SummaryWriter.flush`).
    A run restored to that checkpoint drops the events written after it and
    draws them again (`Action.on_restore`).
    """
    train_cfg, info = config.train, data.info
    has_validation = data.validation is not None
    probe = diagnostics.ModelProbe(trainer.model, trainer.total_loss, trainer.head)
    probe_batch = _first_batch(data.validation if has_validation else data.test)
    metrics = {metric.name: metric for metric in trainer.eval_metrics}
    result: list[Action] = [
        guard,
        actions.Graph(
            lambda: (
                trainer.train_loop.get_concrete_function(
                    batches, tf.constant(1, dtype=tf.int32)
                ).graph
            ),
            writer,
        ),
        actions.TrainScalars(writer),
    ]
    if has_validation:
        result.append(
            actions.Evaluate(
                lambda: trainer.evaluate(data.validation), writer, train_cfg.eval_every_epochs
            )
        )
    result.append(actions.EpochLogs())
    stopping = train_cfg.early_stopping
    if stopping.monitor:
        mode = stopping.mode
        if mode == "auto":
            mode = actions.monitor_direction(stopping.monitor, metrics)
        result.append(
            actions.EarlyStopping(
                stopping.monitor,
                mode,
                patience=stopping.patience,
                min_delta=stopping.min_delta,
                best_weights=best_weights,
                log=_message_of(reporter),
            )
        )
    if train_cfg.save_best:
        result.append(
            actions.SaveBest(
                train_cfg.save_best,
                actions.monitor_direction(train_cfg.save_best, metrics),
                run_dir / "best.keras",
                serving_model(trainer.model, data),  # raw columns for your own table
                status,
            )
        )
    result.append(actions.Progress(reporter))
    if trainer.loss_scaling:
        result.append(actions.SkippedSteps(_message_of(reporter)))
    # With several workers, checkpoints follow epochs and stops only: a wall-clock
    # trigger would fire at different steps on different workers, and a rollback
    # must restore the same checkpoint everywhere.
    every_seconds = train_cfg.checkpoint_every_seconds if workers == 1 else 0.0
    result.append(actions.Checkpoint(every_seconds, status))
    every_histogram = train_cfg.histogram_every_epochs
    result.append(actions.LayerReports(probe, probe_batch, writer, every_histogram))
    if has_validation and train_cfg.image_every_epochs:
        result.append(
            actions.Images(
                probe, data.validation, info, "validation", writer, train_cfg.image_every_epochs
            )
        )
    if train_cfg.profile_steps:
        result.append(actions.Profile(run_dir / "train", train_cfg.profile_steps, train_cfg.epochs))
    return result


def _first_batch(dataset: tf.data.Dataset):
    """The first batch of a split, whose pass is then read to its end.

    The splits are cached in memory (`dataset.cache()`). An iterator left after
    one batch leaves TensorFlow a partly written cache, and that part has been
    seen to become the whole split: one run in eight under load then evaluated
    `validation_*` on its first 64 of 400 examples at every epoch (and a resumed
    run, whose first pass was complete, disagreed with it). Reading the pass to
    its end completes the cache, as the first evaluation would.
    """
    batches = iter(dataset)
    first = next(batches)
    for _ in batches:
        pass
    return first


def _training_batches(data: Datasets, config: Config):
    """The split as tensors with a seeded permutation when it fits in memory, else tf.data."""
    if data.train_fits_in_memory and data.train_examples is not None:
        features, labels = data.train_examples.batch(data.info.num_train).get_single_element()
        return InMemoryBatches(
            features, labels, batch_size=config.train.batch_size, seed=config.seed
        )
    return iter(data.train.repeat())


def _held_out_in_memory(data: Datasets, config: Config) -> Datasets:
    """Validation and test as tensors (`HeldOutSplit`) when they fit, as the training split."""
    if not config.data.cache:
        return data

    def held_out(dataset, count):
        if dataset is None or count * data.info.input_dim * 4 > MAX_CACHE_BYTES:
            return dataset
        return HeldOutSplit.from_dataset(dataset, batch_size=config.train.batch_size)

    return dataclasses.replace(
        data,
        validation=held_out(data.validation, data.info.num_validation),
        test=held_out(data.test, data.info.num_test),
    )


def checkpoint_objects(trainer: Trainer, batches, *, scale=None, best_weights=None) -> dict:
    """Everything of a run's device state that a checkpoint must hold, by name."""
    objects = {
        "model": trainer.model,
        # Dropout's RNG state (a SeedGenerator variable) is not among the objects
        # that tf.train.Checkpoint finds through a Keras 3 model: list every variable.
        "model_variables": list(trainer.model.variables),
        "optimizer": trainer.optimizer,
        "batches": batches,
        "metrics": trainer.metric_variables,
    }
    if scale is not None:
        objects["learning_rate_scale"] = scale
    if best_weights is not None:
        objects["best_weights"] = best_weights.variables
    return objects


def _schedule(optimizer: keras.optimizers.Optimizer):
    """The learning-rate schedule (a LossScaleOptimizer's is its inner optimizer's)."""
    return getattr(optimizer, "inner_optimizer", optimizer)._learning_rate


def _message_of(reporter) -> Callable[[str], None]:
    """The reporter's `message`, or print for a reporter written before it existed."""
    return getattr(reporter, "message", print)


def _find(items, cls):
    return next((item for item in items if isinstance(item, cls)), None)


def _class_weight(config: Config, data: Datasets):
    """`train.class_weight` per class id (counting the training labels for 'balanced')."""
    setting = config.train.class_weight
    if setting is None or setting == "none" or data.info.task != "classification":
        return None
    labels = None
    if setting == "balanced":
        labels = np.concatenate([y.numpy() for _, y in data.train_examples.batch(65536)])
    return resolve_class_weight(setting, class_names=data.info.class_names, labels=labels)


def model_for(config: Config, info, head: Head, *, dtype_policy: str | None = None):
    """The run's model for a dataset: `build_model` on `config.model` with what `info` says.

    Args:
      config: the run's config (its model section and seed).
      info: the dataset's `DatasetInfo`: raw images come with their shape, dtype and
        scale (the model scales and flattens them), your own regression target with
        its training mean and variance (the head learns it standardized).
      head: the output head (`Head.for_task`).
      dtype_policy: the hidden layers' Keras dtype policy; None for float32.
    """
    return build_model(
        config.model,
        input_dim=info.input_dim,
        head=head,
        seed=config.seed,
        input_shape=info.input_shape,
        input_dtype=info.input_dtype,
        input_scale=info.input_scale,
        target_mean=info.target_mean,
        target_variance=info.target_variance,
        dtype_policy=dtype_policy,
    )


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
        path=config.data.path,
        test_path=config.data.test_path,
        label=config.data.label,
        task=config.data.task,
        test_fraction=config.data.test_fraction,
        categorical=config.data.categorical,
    )
