"""The trainer: one model's compiled train and eval loops, and their host side.

What one step does (forward with `training=True`, loss plus regularization,
`tape.gradient`, optimizer update, metric updates) lives in `Trainer` and runs
inside one `tf.function` that takes `num_steps` steps per call, so Python and
the host see the model only every `train.log_every_steps` steps. `BoundTrainer`
pairs a trainer with its batches as `kerasmlp.controller.Controller` drives it,
and `AgreedStop` is the stop request that the workers of a multi-worker run
agree on inside that call. When to log, evaluate, checkpoint and stop is the
controller's (`kerasmlp.controller`, `kerasmlp.actions`); `kerasmlp.train`
builds the run.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Mapping

import keras
import tensorflow as tf

from kerasmlp import distribute, losses
from kerasmlp.batches import GlobalBatchIterator, HeldOutSplit, InMemoryBatches, replica_rows
from kerasmlp.components import make_metrics
from kerasmlp.controller import StopRequest
from kerasmlp.model import Head

__all__ = ["AgreedStop", "BoundTrainer", "Trainer"]


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
