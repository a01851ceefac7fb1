"""Tests for kerasmlp.precision and `train.precision` in the model, the loop, checkpoints and runs.

References: a float32 step of the same model and batch (for bfloat16); the
behaviour Keras documents for `keras.optimizers.LossScaleOptimizer`
(keras/src/optimizers/loss_scale_optimizer.py: `scale_loss` multiplies by the
dynamic scale, `apply_gradients` divides the gradients by it, and a step with
non-finite gradients is skipped and halves the scale); the auto rule's inputs
are written in the tests.
"""

import doctest
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasmlp import precision, train
from kerasmlp.actions import find_divergence
from kerasmlp.batches import InMemoryBatches
from kerasmlp.components import make_loss, make_optimizer
from kerasmlp.config import (
    LearningRateConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    load_config,
)
from kerasmlp.model import Head, build_model
from kerasmlp.playground import make_spirals
from kerasmlp.train import checkpoint_objects, train_and_evaluate
from kerasmlp.trainer import Trainer
from tests import events
from tests.test_summaries import hparams_records

TWO_LOGITS = Head("softmax", 2)
# SGD at a constant rate: a weight's change is the rate times its gradient.
SGD = OptimizerConfig("sgd", LearningRateConfig(initial_learning_rate=0.1, decay_rate=1.0))


def make_trainer(
    policy=None, *, head=TWO_LOGITS, loss=None, units=(16, 16), dropout=0.0, seed=0
) -> Trainer:
    model = build_model(
        ModelConfig(hidden_units=units, dropout=dropout),
        input_dim=2,
        head=head,
        seed=seed,
        dtype_policy=policy,
    )
    optimizer = make_optimizer(SGD, loss_scaling=policy == "mixed_float16")
    # A run's metrics serve its head's task, as the config requires (accuracy reads class scores).
    metric_names = ("mae",) if head.kind == "linear" else ("accuracy",)
    return Trainer(
        model, loss or make_loss(LossConfig()), optimizer, head=head, metric_names=metric_names
    )


def spirals_batch(n=64, seed=0):
    x, y = make_spirals(n, 0.03, np.random.default_rng(seed))
    return tf.constant(x, tf.float32), tf.constant(y, tf.int32)


# --- the auto rule, on fake hardware --------------------------------------------


@pytest.mark.parametrize(
    "flags,gpus,expected",
    [
        ({"avx512f", "amx_bf16", "avx512_bf16"}, [], "mixed_bfloat16"),
        ({"avx512f", "amx_bf16"}, [], "mixed_bfloat16"),
        # AVX512-BF16 alone: measured no faster on the shipped configs (README).
        ({"avx512f", "avx512_bf16"}, [], "float32"),
        ({"avx2", "fma"}, [], "float32"),
        (set(), [], "float32"),
        # The GPUs train, so they decide, whatever the CPU has.
        ({"avx2"}, [(8, 0)], "mixed_bfloat16"),
        ({"avx2"}, [(9, 0), (8, 6)], "mixed_bfloat16"),
        ({"amx_bf16"}, [(7, 5)], "float32"),
        ({"avx2"}, [(8, 0), (7, 0)], "float32"),  # the slowest GPU sets the pace
    ],
    ids=[
        "amx-and-avx512bf16",
        "amx",
        "avx512bf16-only",
        "avx2",
        "no-flags",
        "ampere",
        "hopper-ampere",
        "turing-beats-amx",
        "mixed-gpus",
    ],
)
def test_auto_chooses_bfloat16_where_the_hardware_multiplies_it_fast(flags, gpus, expected):
    name, reason = precision.choose_precision(flags, gpus)
    assert name == expected
    assert reason  # says why, for the console line


@pytest.mark.parametrize(
    "largest,expected",
    [(None, "mixed_bfloat16"), (32_768, "mixed_bfloat16"), (32_767, "float32"), (1_024, "float32")],
)
def test_on_a_cpu_with_amx_auto_leaves_small_models_in_float32(largest, expected):
    # The spirals default ([32, 32, 32], 1,024 weights at most) trained 0.77x as fast in
    # bfloat16 on a Xeon with AMX, [128, 128] 0.88x, [256, 256] 1.18x (MIN_BFLOAT16_CPU_WEIGHTS).
    name, reason = precision.choose_precision({"avx512f", "amx_bf16"}, [], largest)
    assert name == expected
    if expected == "float32":
        assert reason == f"CPU has amx_bf16; largest layer {largest:,} weights < 32,768"
    # The GPUs decide where there are some, and a CPU without AMX stays float32 for any size.
    assert precision.choose_precision({"amx_bf16"}, [(8, 0)], largest)[0] == "mixed_bfloat16"
    assert precision.choose_precision({"avx512_bf16"}, [], largest)[0] == "float32"


def test_the_largest_layer_counts_the_input_layer():
    # Worked by hand: 784 * 1024 = 802,816 > 1024 * 256; 2 * 32 = 64 < 32 * 32 = 1,024.
    assert precision.largest_layer_weights(784, [1024, 256]) == 802_816
    assert precision.largest_layer_weights(2, [32, 32, 32]) == 1_024
    assert precision.largest_layer_weights(5, []) == 0  # no hidden layer: the head alone, float32


def test_the_reason_names_the_hardware():
    assert precision.choose_precision({"amx_bf16"}, []) == ("mixed_bfloat16", "CPU has amx_bf16")
    assert precision.choose_precision(set(), [(8, 6)])[1] == "GPU compute capability 8.6 >= 8.0"
    chosen = precision.Precision("mixed_bfloat16", "auto", "CPU has amx_bf16")
    assert chosen.describe() == "precision: auto -> mixed_bfloat16 (CPU has amx_bf16)"
    assert precision.Precision("mixed_float16", "mixed_float16").describe() == (
        "precision: mixed_float16"
    )


def test_mixed_float16_without_a_gpu_says_it_is_slower(monkeypatch):
    # The README: float16 on a CPU multiplies at about 0.6x float32's rate, and the run
    # says so. It printed only "precision: mixed_float16", and nothing else did.
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    assert precision.resolve_precision("mixed_float16").describe() == (
        "precision: mixed_float16 (no GPU: float16 multiplies slower than float32 on a CPU)"
    )
    assert precision.resolve_precision("mixed_bfloat16").describe() == "precision: mixed_bfloat16"
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [(7, 0)])
    assert precision.resolve_precision("mixed_float16").describe() == "precision: mixed_float16"


def test_mixed_bfloat16_on_a_gpu_without_bfloat16_tensor_cores_says_so(monkeypatch):
    # Compute capability 8.0 (Ampere) brought bfloat16 tensor cores; `auto` stays float32
    # below it, and the Precision docstring promised a note for a named precision there.
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [(8, 0), (7, 5)])
    assert precision.resolve_precision("mixed_bfloat16").describe() == (
        "precision: mixed_bfloat16 (GPU compute capability 7.5 < 8.0: no bfloat16 tensor cores)"
    )
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [(9, 0)])
    assert precision.resolve_precision("mixed_bfloat16").describe() == "precision: mixed_bfloat16"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu avx512f avx512_bf16\n"
    )
    assert precision.read_cpu_flags(str(cpuinfo)) == {"fpu", "avx512f", "avx512_bf16"}
    assert precision.read_cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_a_named_precision_is_used_as_named(monkeypatch):
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [(8, 0)])
    for name in ("float32", "mixed_bfloat16", "mixed_float16"):
        chosen = precision.resolve_precision(name)
        assert (chosen.name, chosen.setting, chosen.reason) == (name, name, "")
        assert chosen.loss_scaling == (name == "mixed_float16")
    assert precision.resolve_precision("float32").dtype_policy is None
    assert precision.resolve_precision("auto").setting == "auto"


# --- the model and the step -------------------------------------------------------


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_hidden_layers_take_the_policy_and_the_logits_and_loss_are_float32(policy):
    trainer = make_trainer(policy, dropout=0.2)
    model = trainer.model
    compute = policy.removeprefix("mixed_")
    for name in ("dense_0", "dense_1", "dropout_0", "dropout_1"):
        layer = model.get_layer(name)
        assert layer.dtype_policy.name == policy, name
        assert layer.compute_dtype == compute
    # The weights stay float32 (the optimizer updates them in float32).
    assert {w.dtype for w in model.weights if "seed" not in w.path} == {"float32"}
    assert model.get_layer("head").dtype_policy.name == "float32"
    x, y = spirals_batch()
    outputs = model(x, training=True)
    assert model.get_layer("dense_1")(model.get_layer("dense_0")(x)).dtype == compute
    assert outputs.dtype == "float32"
    assert trainer.total_loss(y, outputs).dtype == "float32"
    # Per layer, not global: nothing leaks into the next model of the process.
    assert keras.config.dtype_policy().name == "float32"


def test_a_bfloat16_step_stays_close_to_the_float32_step():
    # Reference: the same model, weights and batch in float32. bfloat16 keeps 8
    # significant bits: each rounding (inputs, weights, activations, backpropagated
    # errors) is off by at most 2^-9 = 0.2% relative; the products accumulate in
    # float32. The loss is a mean of positive terms from float32 logits: within
    # 0.1% (measured: < 0.02% over 4 seeds). Each kernel's gradient sums x * delta
    # over the batch, about 8 roundings deep: within 5% (measured: <= 2.2%). A
    # bias's gradient sums delta alone, whose terms nearly cancel, so its relative
    # error is large (measured: up to 23% on a hidden bias); the update as a whole
    # still points the same way: cosine >= 0.98 (measured: 0.988 to 0.999).
    x, y = spirals_batch(256)
    stats, updates = {}, {}
    for policy in ("float32", "mixed_bfloat16"):
        trainer = make_trainer(None if policy == "float32" else policy)
        before = [w.numpy() for w in trainer.model.trainable_weights]
        stats[policy] = trainer.run_steps(iter([(x, y)]), 1)
        updates[policy] = [
            w.numpy() - b for w, b in zip(trainer.model.trainable_weights, before, strict=True)
        ]
    assert stats["mixed_bfloat16"]["loss"] == pytest.approx(stats["float32"]["loss"], rel=1e-3)
    names = [w.path for w in trainer.model.trainable_weights]
    for name, f32, bf16 in zip(names, updates["float32"], updates["mixed_bfloat16"], strict=True):
        if name.endswith("kernel"):
            assert np.linalg.norm(bf16 - f32) <= 5e-2 * np.linalg.norm(f32), name
    f32, bf16 = (np.concatenate([u.ravel() for u in updates[p]]) for p in updates)
    assert f32 @ bf16 >= 0.98 * np.linalg.norm(f32) * np.linalg.norm(bf16)
    assert not np.array_equal(f32, bf16)  # it did compute in bfloat16


def _set_scale(trainer, value):
    trainer.optimizer.dynamic_scale.assign(value)


def test_float16_scales_the_loss_and_unscales_the_gradients():
    # Keras: scale_loss multiplies by the dynamic scale (2^15 to start).
    trainer = make_trainer("mixed_float16")
    assert float(trainer.optimizer.scale_loss(tf.constant(2.0))) == 2.0 * 2**15
    # The rate (logged, and named by the divergence guard) is the inner optimizer's.
    assert float(trainer.optimizer.learning_rate) == pytest.approx(0.1)
    assert float(train._schedule(trainer.optimizer)(0)) == pytest.approx(0.1)
    # The update is the same at scale 2^15 and 2^3: the gradients are divided
    # by the scale they were multiplied by (float16 rounding aside, hence 1e-2).
    x, y = spirals_batch()
    deltas, norms = [], []
    for scale in (2.0**15, 2.0**3):
        trainer = make_trainer("mixed_float16")
        _set_scale(trainer, scale)
        before = [w.numpy() for w in trainer.model.trainable_weights]
        stats = trainer.run_steps(iter([(x, y)]), 1)
        assert stats["skipped_steps"] == 0 and stats["loss_scale"] == scale
        deltas.append(
            [w.numpy() - b for w, b in zip(trainer.model.trainable_weights, before, strict=True)]
        )
        norms.append(stats["gradient_norm"])
    for a, b in zip(*deltas, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-5)
    assert norms[0] == pytest.approx(norms[1], rel=1e-2)
    assert 0.01 < norms[0] < 100  # the unscaled norm, not 2^15 times it


class _Loop:
    """What `find_divergence` reads of the controller: the step after the round."""

    def __init__(self, step):
        self.step = step


def test_an_overflowing_float16_step_is_skipped_and_is_not_divergence():
    # Keras: non-finite scaled gradients -> the step is skipped, the scale halves,
    # the inner optimizer's iterations (the schedule's step) do not advance.
    trainer = make_trainer("mixed_float16")
    _set_scale(trainer, 2.0**60)  # 2^60 times any gradient overflows float16 (max 65504)
    before = [w.numpy() for w in trainer.model.trainable_weights]
    x, y = spirals_batch()
    stats = trainer.run_steps(iter([(x, y)]), 1)
    assert stats["skipped_steps"] == 1
    assert stats["loss_scale"] == 2.0**59
    assert int(trainer.optimizer.iterations) == 0
    for w, b in zip(trainer.model.trainable_weights, before, strict=True):
        np.testing.assert_array_equal(w.numpy(), b)
    assert np.isfinite(stats["loss"]) and stats["first_nonfinite_step"] == -1
    assert find_divergence(_Loop(1), {**stats, "steps": 1}) is None
    # The next steps halve the scale until one fits (then it stays: it would grow
    # only after 2000 finite steps); none is taken for divergence on the way.
    stats = trainer.run_steps(iter([(x, y)] * 60), 60)
    skipped = stats["skipped_steps"]
    assert 0 < skipped < 60 and stats["first_nonfinite_step"] == -1
    assert stats["loss_scale"] == 2.0 ** (59 - skipped)
    assert int(trainer.optimizer.iterations) == 60 - skipped
    assert np.isfinite(stats["gradient_norm"])  # the mean over the steps taken


def test_gradients_that_overflow_without_scaling_are_divergence():
    # A regression target of 1e5: the loss (float32, ~1e10) is finite, but its
    # gradient overflows float16 in the hidden layers even at scale 1. At scale 2
    # that step is skipped (the scale might be the cause); at scale 1 it cannot
    # be, and the guard sees a non-finite gradient norm, as in float32.
    trainer = make_trainer(
        "mixed_float16", head=Head("linear", 1), loss=make_loss(LossConfig("mean_squared_error"))
    )
    _set_scale(trainer, 2.0)
    x = tf.constant([[0.5, -0.5]] * 4, tf.float32)
    y = tf.constant([1e5] * 4, tf.float32)
    stats = trainer.run_steps(iter([(x, y)] * 2), 2)
    assert stats["skipped_steps"] == 1  # the first, at scale 2
    assert stats["first_nonfinite_step"] == 1  # the second, at scale 1
    assert np.isfinite(stats["loss"])
    divergence = find_divergence(_Loop(2), {**stats, "steps": 2})
    assert divergence is not None and divergence.step == 2


def test_a_float16_checkpoint_restores_the_loss_scale_bitwise(tmp_path):
    # Reference: the same trainer never checkpointed (as test_train's bitwise test).
    x, y = make_spirals(300, 0.03, np.random.default_rng(0))

    def parts():
        trainer = make_trainer("mixed_float16", dropout=0.3)
        batches = InMemoryBatches(x.astype("float32"), y.astype("int32"), batch_size=32, seed=4)
        return trainer, batches, tf.train.Checkpoint(**checkpoint_objects(trainer, batches))

    trainer, batches, checkpoint = parts()
    _set_scale(trainer, 2.0**22)  # 4 of the first steps skip: the scale and the counter move
    trainer.run_steps(batches, 13)
    scale, counter = float(trainer.optimizer.dynamic_scale), int(trainer.optimizer.step_counter)
    iterations = int(trainer.optimizer.iterations)
    assert scale < 2.0**22 and 0 < counter and 0 < iterations < 13
    path = checkpoint.save(tmp_path / "ckpt")
    trainer.run_steps(batches, 9)
    expected = [w.numpy() for w in trainer.model.weights]

    resumed, resumed_batches, resumed_checkpoint = parts()
    resumed_checkpoint.restore(path).assert_consumed()
    assert float(resumed.optimizer.dynamic_scale) == scale
    assert int(resumed.optimizer.step_counter) == counter
    assert int(resumed.optimizer.iterations) == iterations
    resumed.run_steps(resumed_batches, 9)
    for got, want in zip(resumed.model.weights, expected, strict=True):
        np.testing.assert_array_equal(got.numpy(), want)


# --- whole runs -------------------------------------------------------------------

TINY_RUN = [
    "train.epochs=1",
    "train.batch_size=256",
    "model.hidden_units=[16,16]",
    # Dropout layers take the policy too; the layer reports (at step 0 and the end)
    # run the model layer by layer in each layer's dtype.
    "model.dropout=0.1",
    "train.image_every_epochs=0",
]


@pytest.mark.parametrize(
    "setting,units,chosen",
    [
        # 2 inputs, [256, 256]: a 65,536-weight layer, past MIN_BFLOAT16_CPU_WEIGHTS.
        ("auto", "[256,256]", "mixed_bfloat16"),
        # [16, 16]: 256 weights at most, where bfloat16 trained slower; float32 is silent.
        ("auto", "[16,16]", "float32"),
        ("mixed_float16", "[16,16]", "mixed_float16"),
    ],
    ids=["auto-on-amx", "auto-on-amx-small-model", "float16"],
)
def test_a_short_run_saves_what_it_chose_and_a_model_that_predicts_float32(
    setting, units, chosen, tmp_path, capsys, monkeypatch
):
    from kerasmlp.inference import load_run

    # A CPU with AMX, whatever this one has (tests run without GPUs, see conftest).
    monkeypatch.setattr(precision, "read_cpu_flags", lambda: frozenset({"amx_bf16"}))
    config = load_config(
        None,
        [*TINY_RUN, f"model.hidden_units={units}", f"train.precision={setting}"]
        + [f"data.data_dir={tmp_path / 'tfds'}"],
    )
    results = train_and_evaluate(config, tmp_path / "run")
    out = capsys.readouterr().out
    printed = [line for line in out.splitlines() if line.startswith("precision")]
    largest = precision.largest_layer_weights(2, config.model.hidden_units)
    if chosen == "float32":
        assert printed == []
    else:
        assert printed == [precision.resolve_precision(setting, largest).describe()]
    assert results["test_accuracy"] > 0.5  # 15 steps: a start, not a model
    # What was chosen, not `auto`: in config.yaml (what --resume reads), metrics.json, HParams.
    assert load_config(tmp_path / "run" / "config.yaml").train.precision == chosen
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["precision"] == chosen
    assert results["precision"] == chosen
    _, start, _ = hparams_records(tmp_path / "run")
    assert start.hparams["train.precision"].string_value == chosen
    # The learning rate logged is the schedule's (a LossScaleOptimizer's inner one) at
    # the optimizer's iterations, which skipped float16 steps do not advance.
    scalars = events.scalars(tmp_path / "run" / "train")
    skipped = sum(v for _, v in scalars.get("skipped_steps", []))
    assert ("loss_scale" in scalars) == (chosen == "mixed_float16")
    step, rate = scalars["learning_rate"][-1]
    assert rate == pytest.approx(0.01 * 0.5 ** ((step - skipped) / 1000), rel=1e-6)
    # The saved model keeps its layers' policies, reloads, and predicts float32.
    run = load_run(tmp_path / "run")
    assert run.model.get_layer("dense_0").dtype_policy.name == chosen
    assert run.model.get_layer("head").dtype_policy.name == "float32"
    x, _ = spirals_batch(8)
    probabilities = run.probability_model()(x)
    assert probabilities.dtype == "float32"
    np.testing.assert_allclose(np.sum(probabilities, axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(run.predict_proba(x.numpy()), probabilities, rtol=1e-6)


def test_docstring_examples_run():
    # The `Example:` blocks of kerasmlp.precision (the auto rule, the largest layer): doctests.
    result = doctest.testmod(precision)
    assert result.attempted >= 8
    assert result.failed == 0
