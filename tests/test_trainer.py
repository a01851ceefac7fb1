"""Tests for kerasmlp.trainer: the compiled step against Keras, tracing, state."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasmlp import losses
from kerasmlp.batches import HeldOutSplit, InMemoryBatches
from kerasmlp.components import make_loss, make_optimizer
from kerasmlp.config import ConfigError, LossConfig, ModelConfig, OptimizerConfig, load_config
from kerasmlp.model import Head, build_model
from kerasmlp.playground import make_spirals
from kerasmlp.train import checkpoint_objects
from kerasmlp.trainer import Trainer


def spirals(n=512, batch_size=32, seed=0):
    x, y = make_spirals(n, 0.03, np.random.default_rng(seed))
    dataset = tf.data.Dataset.from_tensor_slices((x.astype("float32"), y.astype("int32")))
    return dataset.shuffle(n, seed=seed).batch(batch_size)


TWO_LOGITS = Head("softmax", 2)


def make_trainer(head=TWO_LOGITS, loss=None, metrics=("accuracy",), units=(16, 16), dropout=0.0):
    model = build_model(
        ModelConfig(hidden_units=units, dropout=dropout), input_dim=2, head=head, seed=0
    )
    loss = loss or make_loss(LossConfig())
    return Trainer(model, loss, make_optimizer(OptimizerConfig()), head=head, metric_names=metrics)


def test_train_loop_traces_once_whatever_the_step_count():
    trainer = make_trainer()
    iterator = iter(spirals().repeat())
    for n in (1, 7, 50, 3, 16):  # 16 ends on the partial last batch of an epoch too
        trainer.run_steps(iterator, n)
    assert trainer.train_loop.experimental_get_tracing_count() == 1
    assert int(trainer.optimizer.iterations) == 77


def test_evaluate_traces_once_for_every_split_of_one_dataset():
    trainer = make_trainer()
    trainer.evaluate(spirals(seed=1))
    trainer.evaluate(spirals(n=100, seed=2))  # other size, same element spec
    assert trainer.evaluate_loop.experimental_get_tracing_count() == 1


def test_held_out_split_in_memory_gives_what_the_dataset_gives():
    # Reference: the same trainer's tf.data evaluation of the same batches, in the same order.
    trainer = make_trainer(metrics=("accuracy", "macro_f1"))
    trainer.run_steps(iter(spirals().repeat()), 20)  # weights away from their start
    validation, test = spirals(n=200, batch_size=32, seed=1), spirals(n=300, batch_size=32, seed=2)
    expected = [trainer.evaluate(validation), trainer.evaluate(test)]
    # 200 and 300 are not multiples of 32: the last batch is smaller, as tf.data's.
    held_out = [HeldOutSplit.from_dataset(d, batch_size=32) for d in (validation, test)]
    assert [h.num_examples for h in held_out] == [200, 300]
    for _ in range(2):
        got = [trainer.evaluate(h) for h in held_out]
        for g, e in zip(got, expected, strict=True):
            assert g.keys() == e.keys()
            np.testing.assert_allclose(list(g.values()), list(e.values()), rtol=1e-6)
    # Validation and test of any size share one trace after the first generalizes the length.
    assert trainer.evaluate_in_memory.experimental_get_tracing_count() <= 2
    batches = list(held_out[0])
    assert [len(x) for x, _ in batches] == [32] * 6 + [8]


def test_one_step_equals_a_step_written_out_with_gradient_tape():
    # Reference: the same update written eagerly with plain TF ops and SGD's rule w -= lr * g.
    config = load_config(
        None,
        ["optimizer.name=sgd", "optimizer.learning_rate.decay_rate=1.0", "model.weight_decay=0.01"],
    )
    head = Head("softmax", 2)
    model = build_model(config.model, input_dim=2, head=head, seed=3)
    reference = build_model(config.model, input_dim=2, head=head, seed=3)
    trainer = Trainer(
        model, make_loss(config.loss), make_optimizer(config.optimizer), head=head, metric_names=()
    )
    x, y = next(iter(spirals(batch_size=64)))
    stats = trainer.run_steps(iter([(x, y)]), 1)

    with tf.GradientTape() as tape:
        logits = reference(x, training=True)
        log_probs = tf.nn.log_softmax(logits)
        data_loss = -tf.reduce_mean(tf.gather(log_probs, y, batch_dims=1))
        loss = data_loss + tf.add_n(reference.losses)
    grads = tape.gradient(loss, reference.trainable_variables)
    lr = config.optimizer.learning_rate.initial_learning_rate
    for variable, grad, trained in zip(
        reference.trainable_variables, grads, model.trainable_variables, strict=True
    ):
        np.testing.assert_allclose(
            trained.numpy(), (variable - lr * grad).numpy(), rtol=1e-5, atol=1e-7
        )
    np.testing.assert_allclose(stats["loss"], float(loss), rtol=1e-6)
    np.testing.assert_allclose(
        stats["gradient_norm"], float(tf.linalg.global_norm(grads)), rtol=1e-5
    )
    assert stats["examples"] == 64.0
    np.testing.assert_allclose(stats["learning_rate"], lr, rtol=1e-7)  # decay_rate 1: constant


def test_loss_falls_and_metrics_reset_per_epoch():
    trainer = make_trainer()
    dataset = spirals(n=1024)
    first = trainer.evaluate(dataset)
    iterator = iter(dataset.repeat())
    for _ in range(10):
        trainer.start_epoch()
        trainer.run_steps(iterator, 32)
    last = trainer.evaluate(dataset)
    assert last["loss"] < 0.7 * first["loss"]
    trainer.start_epoch()
    assert trainer.train_results()["accuracy"] == 0.0


def test_epoch_loss_is_the_example_weighted_mean_of_the_epochs_calls():
    # What Keras's progress bar shows: the mean loss per example over the epoch so far
    # (its loss tracker is a Mean weighted by batch size), worked here in numpy from
    # each call's own mean and example count.
    trainer = make_trainer()
    iterator = iter(spirals(n=1000, batch_size=96).repeat())  # 10 batches of 96, one of 40
    trainer.start_epoch()
    calls = [trainer.run_steps(iterator, n) for n in (3, 8, 4)]
    losses_, examples = (np.array([c[k] for c in calls]) for k in ("loss", "examples"))
    assert len(set(examples)) == 3  # a call with the short batch: plain means would differ
    for i, call in enumerate(calls):
        expected = np.sum(losses_[: i + 1] * examples[: i + 1]) / np.sum(examples[: i + 1])
        np.testing.assert_allclose(call["epoch_loss"], expected, rtol=1e-12)
    assert calls[-1]["epoch_loss"] == trainer.train_results()["loss"]
    trainer.start_epoch()
    fresh = trainer.run_steps(iterator, 2)
    assert fresh["epoch_loss"] == fresh["loss"]


@pytest.mark.parametrize(
    "head,loss",
    [
        (Head("sigmoid", 1), losses.BinaryCrossentropy(from_logits=True)),
        (Head("softmax", 2), losses.CategoricalCrossentropy(from_logits=True)),
        (Head("softmax", 2), losses.SparseCategoricalCrossentropy(from_logits=True)),
    ],
    ids=["binary", "categorical", "sparse"],
)
def test_every_classification_head_learns(head, loss):
    trainer = make_trainer(head=head, loss=loss, metrics=("accuracy", "macro_f1"))
    dataset = spirals(n=1024)
    iterator = iter(dataset.repeat())
    trainer.run_steps(iterator, 200)
    results = trainer.evaluate(dataset)
    assert np.isfinite(results["loss"])
    assert results["accuracy"] > 0.6  # chance is 0.5


def test_regression_head():
    x = np.random.default_rng(0).uniform(-1, 1, size=(512, 2)).astype("float32")
    y = (x[:, 0] * 2 - x[:, 1]).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    trainer = make_trainer(
        head=Head("linear", 1), loss=losses.MeanSquaredError(), metrics=("mse", "mae")
    )
    before = trainer.evaluate(dataset)
    trainer.run_steps(iter(dataset.repeat()), 300)
    after = trainer.evaluate(dataset)
    # The reported loss is the mse metric (no regularization here): two routes, one value.
    np.testing.assert_allclose(after["loss"], after["mse"], rtol=1e-5)
    assert after["mse"] < 0.1 * before["mse"]


def test_a_checkpoint_restores_everything_bitwise_dropout_and_shuffle_included(tmp_path):
    # Reference: the same trainer never checkpointed; equality is bitwise, not approximate.
    x, y = make_spirals(300, 0.03, np.random.default_rng(0))

    def parts():
        trainer = make_trainer(units=(16, 16), dropout=0.3)
        batches = InMemoryBatches(x.astype("float32"), y.astype("int32"), batch_size=32, seed=4)
        return trainer, batches, tf.train.Checkpoint(**checkpoint_objects(trainer, batches))

    trainer, batches, checkpoint = parts()
    trainer.run_steps(batches, 13)  # mid-epoch: 10 steps per epoch
    trainer.train_metrics[0].update_state([0], [[1.0, 0.0]])  # metric state is restored too
    path = checkpoint.save(tmp_path / "ckpt")
    trainer.run_steps(batches, 9)  # crosses into the next epoch's permutation
    expected = [w.numpy() for w in trainer.model.weights]
    expected_accuracy = float(trainer.train_metrics[0].result())

    resumed, resumed_batches, resumed_checkpoint = parts()
    resumed_checkpoint.restore(path).assert_consumed()
    assert int(resumed.optimizer.iterations) == 13
    resumed.run_steps(resumed_batches, 9)
    for got, want in zip(resumed.model.weights, expected, strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    assert float(resumed.train_metrics[0].result()) == expected_accuracy


def test_top5_accuracy_is_refused_with_five_classes_or_fewer():
    with pytest.raises(ConfigError, match="top5_accuracy is always 1 with 2 classes"):
        make_trainer(metrics=("accuracy", "top5_accuracy"))


@pytest.mark.parametrize("policy", [None, "mixed_float16"], ids=["float32", "mixed_float16"])
@pytest.mark.parametrize("clipping", ["optimizer.clipvalue=0.02", "optimizer.global_clipnorm=0.05"])
def test_clipping_sees_the_unscaled_gradients_as_keras_clips_them(clipping, policy):
    # Reference: Keras's own SGD with the same clipping, applied to the gradients of the
    # same model (same policy) and batch taken with tf.GradientTape, without loss scaling.
    # Under mixed_float16 the step's gradients carry the loss scale (2 ** 15) until
    # LossScaleOptimizer divides them, before its inner optimizer clips: clipped scaled,
    # the update would be 2 ** 15 times too small. Scaling by a power of 2 is exact in
    # float16 but where the unscaled gradients fall below its normal range, hence the
    # tolerance there. (A float32 reference differed by float16's rounding of the forward
    # pass, which flipped a near-zero gradient's sign on some batches: 3.6e-3 in one entry.)
    config = load_config(
        None, ["optimizer.name=sgd", "optimizer.learning_rate.decay_rate=1.0", clipping]
    )
    head = Head("softmax", 2)
    model = build_model(config.model, input_dim=2, head=head, seed=3, dtype_policy=policy)
    reference = build_model(config.model, input_dim=2, head=head, seed=3, dtype_policy=policy)
    optimizer = make_optimizer(config.optimizer, loss_scaling=policy == "mixed_float16")
    trainer = Trainer(model, make_loss(config.loss), optimizer, head=head, metric_names=())
    x, y = next(iter(spirals(batch_size=64)))
    stats = trainer.run_steps(iter([(x, y)]), 1)

    with tf.GradientTape() as tape:
        loss = make_loss(config.loss)(y, reference(x, training=True))
    grads = tape.gradient(loss, reference.trainable_variables)
    before = [v.numpy() for v in reference.trainable_variables]
    key, value = clipping.removeprefix("optimizer.").split("=")
    lr = config.optimizer.learning_rate.initial_learning_rate
    keras_sgd = keras.optimizers.SGD(lr, **{key: float(value)})
    keras_sgd.apply_gradients(zip(grads, reference.trainable_variables, strict=True))
    tolerance = dict(rtol=1e-5, atol=1e-7) if policy is None else dict(rtol=1e-3, atol=lr * 1e-5)
    for trained, want in zip(model.trainable_variables, reference.trainable_variables, strict=True):
        np.testing.assert_allclose(trained.numpy(), want.numpy(), **tolerance)
    # The clipping bit: unclipped, the step would have gone further.
    unclipped = [b - lr * g.numpy() for b, g in zip(before, grads, strict=True)]
    moved = zip(unclipped, model.trainable_variables, strict=True)
    assert max(np.max(np.abs(u - w.numpy())) for u, w in moved) > lr * 1e-2
    # The logged norm is the gradients' own, before clipping, as without it.
    np.testing.assert_allclose(
        stats["gradient_norm"],
        float(tf.linalg.global_norm(grads)),
        rtol=1e-5 if policy is None else 1e-2,
    )
