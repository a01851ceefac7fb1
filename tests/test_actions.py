"""Tests for kerasmlp.actions: early stopping against Keras, the divergence guard, monitors."""

import io
import types

import keras
import numpy as np
import pytest

from kerasmlp import actions, metrics, runfiles
from kerasmlp.controller import COMPLETED, DIVERGED, STOPPED_EARLY, Controller
from kerasmlp.reporters import LineReporter
from kerasmlp.runfiles import RunStatus

# Values are multiples of 1/8, exact in float32 and float64: Keras compares in
# float32 tensors, kerasmlp in Python floats, and ties must mean the same to both.
SEQUENCES = {
    "falls_then_flat": [1.0, 0.75, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    "noisy": [1.0, 0.875, 1.125, 0.75, 0.875, 0.875, 1.0, 0.625, 0.75, 0.75, 0.875],
    "rises": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
    "small_steps": [1.0, 0.9375, 0.875, 0.8125, 0.75, 0.6875, 0.625],
}


class FakeLoop:
    def __init__(self):
        self.epoch = 0
        self.step = 0
        self.stop_training = False
        self.end_reason = None


def keras_stop_epoch(values, *, mode, patience, min_delta):
    """The 0-based epoch where keras.callbacks.EarlyStopping sets stop_training, and its best."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    callback = keras.callbacks.EarlyStopping(
        monitor="val_loss", mode=mode, patience=patience, min_delta=min_delta
    )
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {"val_loss": value})
        if model.stop_training:
            return epoch, float(callback.best), callback.best_epoch
    return None, float(callback.best), callback.best_epoch


def kerasmlp_stop_epoch(values, *, mode, patience, min_delta):
    action = actions.EarlyStopping(
        "validation_loss", mode, patience=patience, min_delta=min_delta, log=lambda text: None
    )
    loop = FakeLoop()
    for value in values:
        loop.epoch += 1
        action.on_epoch_end(loop, {"validation_loss": value})
        if loop.stop_training:
            return loop.epoch - 1, action.best, action.best_epoch
    return None, action.best, action.best_epoch


@pytest.mark.parametrize("sequence", sorted(SEQUENCES))
@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("patience", [0, 1, 3])
@pytest.mark.parametrize("min_delta", [0.0, 0.125])
def test_early_stopping_decides_as_keras(sequence, mode, patience, min_delta):
    values = SEQUENCES[sequence]
    expected = keras_stop_epoch(values, mode=mode, patience=patience, min_delta=min_delta)
    got = kerasmlp_stop_epoch(values, mode=mode, patience=patience, min_delta=min_delta)
    assert got == expected


def test_early_stopping_state_round_trip_continues_the_same():
    # A run resumed after epoch 4 must stop where the uninterrupted one does.
    values = SEQUENCES["noisy"]
    expected = kerasmlp_stop_epoch(values, mode="min", patience=2, min_delta=0.0)
    first = actions.EarlyStopping("validation_loss", "min", patience=2, min_delta=0.0)
    loop = FakeLoop()
    for value in values[:4]:
        loop.epoch += 1
        first.on_epoch_end(loop, {"validation_loss": value})
    second = actions.EarlyStopping("validation_loss", "min", patience=2, min_delta=0.0, log=str)
    second.set_state(first.get_state())
    for value in values[4:]:
        loop.epoch += 1
        second.on_epoch_end(loop, {"validation_loss": value})
        if loop.stop_training:
            break
    assert (loop.epoch - 1, second.best, second.best_epoch) == expected


def test_a_resumed_early_stop_stops_the_loop_again():
    # A checkpoint taken at the epoch that stopped (patience 0: epoch 2 does not
    # improve on epoch 1 by 10), restored where the loop's own flag was not kept.
    first = actions.EarlyStopping("validation_loss", "min", patience=0, min_delta=10.0, log=str)
    loop = FakeLoop()
    for value in [1.0, 0.5]:
        loop.epoch += 1
        first.on_epoch_end(loop, {"validation_loss": value})
    assert loop.stop_training and first.stopped_epoch == 1
    second = actions.EarlyStopping("validation_loss", "min", patience=0, min_delta=10.0, log=str)
    second.set_state(first.get_state())
    resumed = FakeLoop()
    second.on_train_begin(resumed)
    assert resumed.stop_training
    fresh = FakeLoop()
    actions.EarlyStopping("validation_loss", "min", patience=0, min_delta=10.0).on_train_begin(
        fresh
    )
    assert not fresh.stop_training


def test_the_stop_line_counts_epochs_since_the_best_and_validations_when_they_differ():
    # By hand: validation every second epoch (epochs 2, 4, 6, 8); the best is epoch 2, and
    # patience 2 stops at epoch 6: 4 epochs, 2 validations, without improvement.
    lines = []
    action = actions.EarlyStopping(
        "validation_loss", "min", patience=2, min_delta=0.0, log=lines.append
    )
    loop = FakeLoop()
    for value in [None, 1.0, None, 1.5, None, 2.0]:
        loop.epoch += 1
        action.on_epoch_end(loop, {} if value is None else {"validation_loss": value})
    # Said at the end, after epoch 6's own line (as Keras's "Epoch 6: early stopping"),
    # where it came before that line.
    assert lines == [] and loop.stop_training
    loop.end_reason = STOPPED_EARLY
    action.on_train_end(loop)
    assert lines == [
        "early stopping at epoch 6: validation_loss has not improved for 4 epochs "
        "(2 validations) (best 1.0000 at epoch 2)"
    ]
    assert actions._without_improvement(1, 1) == "1 epoch"


def test_restore_best_puts_back_the_best_epochs_weights():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best_weights = actions.BestWeights(model)
    action = actions.EarlyStopping(
        "validation_loss", "min", patience=5, min_delta=0.0, best_weights=best_weights, log=str
    )
    loop = FakeLoop()
    snapshots = []
    for value in [1.0, 0.5, 0.75]:
        for weight in model.weights:
            weight.assign(weight + 1.0)
        snapshots.append([w.numpy() for w in model.weights])
        loop.epoch += 1
        action.on_epoch_end(loop, {"validation_loss": value})
    loop.end_reason = COMPLETED
    action.on_train_end(loop)
    for got, want in zip(model.weights, snapshots[1], strict=True):  # epoch 2 was best
        np.testing.assert_array_equal(got.numpy(), want)


def test_an_interrupted_run_keeps_its_current_weights():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    action = actions.EarlyStopping(
        "validation_loss", "min", patience=5, min_delta=0.0,
        best_weights=actions.BestWeights(model), log=str,
    )  # fmt: skip
    loop = FakeLoop()
    loop.epoch = 1
    action.on_epoch_end(loop, {"validation_loss": 0.5})
    model.weights[0].assign(model.weights[0] + 1.0)
    current = model.weights[0].numpy()
    loop.end_reason = "interrupted"
    action.on_train_end(loop)
    np.testing.assert_array_equal(model.weights[0].numpy(), current)


def test_monitor_direction_comes_from_the_metric():
    found = {
        "accuracy": metrics.SparseCategoricalAccuracy(name="accuracy"),
        "ece": metrics.ExpectedCalibrationError(name="ece"),
        "mse": metrics.MeanSquaredError(name="mse"),
    }
    assert actions.monitor_direction("validation_loss", found) == "min"
    assert actions.monitor_direction("validation_accuracy", found) == "max"
    assert actions.monitor_direction("validation_ece", found) == "min"
    assert actions.monitor_direction("validation_mse", found) == "min"


def stats(*, steps=10, loss=0.5, gradient_norm=1.0, first=-1.0, weights_finite=1.0):
    return {
        "steps": steps,
        "loss": loss,
        "gradient_norm": gradient_norm,
        "learning_rate": 0.01,
        "first_nonfinite_step": first,
        "weights_finite": weights_finite,
    }


@pytest.mark.parametrize(
    "rounds,end,said",
    [
        ([(4, 4)], COMPLETED, "mixed_float16: 4 of 4 steps were skipped"),
        ([(10, 6), (10, 0)], COMPLETED, None),  # 6 of 20: the loss scale coming down
        ([(10, 9), (10, 2)], COMPLETED, "mixed_float16: 11 of 20 steps were skipped"),
        ([(4, 4)], DIVERGED, None),  # the divergence's own line says why
    ],
)
def test_a_run_that_skipped_most_of_its_steps_says_so_at_its_end(rounds, end, said):
    lines = []
    action = actions.SkippedSteps(lines.append)
    loop = FakeLoop()
    for steps, skipped in rounds[:1]:
        action.on_steps(loop, {**stats(steps=steps), "skipped_steps": float(skipped)})
    resumed = actions.SkippedSteps(lines.append)  # the count goes on across a resume
    resumed.set_state(action.get_state())
    for steps, skipped in rounds[1:]:
        resumed.on_steps(loop, {**stats(steps=steps), "skipped_steps": float(skipped)})
    loop.end_reason = end
    resumed.on_train_end(loop)
    assert len(lines) == (0 if said is None else 1)
    if said:
        assert lines[0].startswith(said) and "set train.precision: float32" in lines[0]


def test_find_divergence_names_the_first_bad_step_and_what_went_bad():
    loop = FakeLoop()
    loop.step = 30  # the round ran steps 21..30
    assert actions.find_divergence(loop, stats()) is None
    bad_loss = actions.find_divergence(
        loop, stats(loss=float("nan"), first=3.0), rate_at=lambda iteration: 0.5**iteration
    )
    # The 4th step of the round (iteration 23, 0-based) is step 24, at rate 0.5 ** 23.
    assert bad_loss.step == 24 and "loss" in bad_loss.what
    assert bad_loss.learning_rate == 0.5**23
    bad_weights = actions.find_divergence(loop, stats(weights_finite=0.0))
    assert bad_weights.step == 30 and "weight" in bad_weights.what
    assert "initial_learning_rate" in bad_weights.message()


@pytest.mark.parametrize(
    "loss_name, variance, precision, advised",
    [
        ("mean_squared_error", (2e10) ** 2, "float32", "larger units (divided by 1e+10, say)"),
        ("mean_squared_error", (2e10) ** 2, "mixed_bfloat16", "too large for float32"),
        ("mean_squared_error", (5e8) ** 2, "float32", ""),  # its gradients' squares fit float32
        ("mean_squared_error", 570.0**2, "float32", ""),
        # float16's gradients overflow past 65504 (see actions), at std 570 in a CSV run.
        ("mean_squared_error", 570.0**2, "mixed_float16", "say) or set train.precision: float32"),
        ("mean_squared_error", 190.0**2, "mixed_float16", ""),
        ("mean_absolute_error", (2e10) ** 2, "float32", ""),  # gradients grow as the std
        ("sparse_categorical_crossentropy", None, "float32", ""),
    ],
)
def test_targets_too_large_for_float32_are_advised_in_place_of_a_lower_rate(
    loss_name, variance, precision, advised
):
    advice = actions.large_target_advice(loss_name, variance, precision)
    assert (advised in advice) if advised else advice == ""
    message = actions.Divergence(1, "the loss became NaN", 0.01, advice).message()
    assert message.endswith(advice if advised else "try a lower " + LEARNING_RATE_KEY)


LEARNING_RATE_KEY = "optimizer.learning_rate.initial_learning_rate"


def test_a_regression_whose_targets_overflow_float32_is_told_to_give_them_in_larger_units(
    tmp_path,
):
    # Targets with a standard deviation of about 1e12: the loss (about 1e24) is finite but
    # the gradients' sum of squares (about 1e48) overflows float32 at the first step. The
    # run said "try a lower optimizer.learning_rate.initial_learning_rate", which cannot help.
    from tests.conftest import invoke_train

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, 2))
    rows = [f"{a:.4f},{b:.4f},{1e12 * (3 * a - b):.6g}" for a, b in x]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(["a,b,t", *rows]) + "\n")
    args = ["--logdir", str(tmp_path / "logs"), "--run-name", "big", "--epochs", "1"]
    for setting in [
        "data.name=csv",
        f"data.path={path}",
        "data.label=t",
        "loss.name=mean_squared_error",
        "metrics=[mse]",
        "model.hidden_units=[4]",
        "train.histogram_every_epochs=0",
        "train.image_every_epochs=0",
    ]:
        args += ["--set", setting]
    result = invoke_train(args)
    assert result.exit_code == 3, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("kerasmlp-train: error: diverged at step 1: "), last
    assert last.endswith("give the targets in larger units (divided by 1e+12, say)"), last


class DivergingTrainer:
    """Diverges at step 20 while the rate scale is above 0.3; checkpoints are fake."""

    def __init__(self, scale):
        self.scale = scale
        self.step = 0

    def run_steps(self, num_steps):
        self.step += num_steps
        bad = self.step >= 20 and self.scale.value > 0.3
        return stats(steps=num_steps, loss=float("inf") if bad else 0.5, first=0.0 if bad else -1)

    def start_epoch(self):
        pass

    def train_results(self):
        return {"loss": 0.5}

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = state["step"]


class Scale:
    def __init__(self):
        self.value = 1.0

    def assign(self, value):
        self.value = value


class MemoryCheckpoints:
    def __init__(self):
        self.states = []

    def save(self, host_state, *, step):
        self.states.append(host_state)
        return str(step)

    def restore_latest(self):
        return self.states[-1] if self.states else None


@pytest.mark.parametrize("max_rollbacks,expected", [(1, DIVERGED), (2, COMPLETED)])
def test_rollback_lowers_the_rate_until_it_recovers_or_gives_up(max_rollbacks, expected):
    scale = Scale()
    lines = []
    guard = actions.DivergenceGuard(
        policy="rollback", factor=0.5, max_rollbacks=max_rollbacks, scale=scale, log=lines.append
    )

    class SaveEveryEpoch(actions.Action):
        name = "save"

        def on_epoch_end(self, loop, logs):
            loop.save_checkpoint()

    trainer = DivergingTrainer(scale)
    loop = Controller(
        trainer,
        epochs=4,
        steps_per_epoch=10,
        log_every_steps=10,
        actions=[guard, SaveEveryEpoch()],
        checkpoints=MemoryCheckpoints(),
    )
    assert loop.train() == expected
    assert guard.rollbacks == max_rollbacks
    assert scale.value == 0.5**max_rollbacks
    assert len(lines) == max_rollbacks and "back to step 10" in lines[0]
    if expected == COMPLETED:
        assert loop.step == 40


def test_no_rollback_where_a_lower_rate_cannot_help():
    # Targets too large for float32 (large_target_advice): every rollback, at any rate,
    # diverged again, each after a line the user had to wait for.
    scale, lines = Scale(), []
    guard = actions.DivergenceGuard(
        policy="rollback", max_rollbacks=3, scale=scale, log=lines.append, advice="too large"
    )
    trainer = DivergingTrainer(scale)
    loop = Controller(
        trainer,
        epochs=4,
        steps_per_epoch=10,
        log_every_steps=10,
        actions=[guard],
        checkpoints=MemoryCheckpoints(),
    )
    loop.save_checkpoint()
    assert loop.train() == DIVERGED
    assert (guard.rollbacks, lines, scale.value) == (0, [], 1.0)
    assert guard.divergence.message().endswith("; too large")


def test_checkpoints_at_the_start_every_epoch_every_n_seconds_and_at_the_end(tmp_path):
    now = [0.0]
    checkpoints = MemoryCheckpoints()

    class Clock(actions.Action):  # each round takes 4 "seconds"
        name = "clock"

        def on_steps(self, loop, stats):
            now[0] += 4.0

    saver = actions.Checkpoint(10.0, RunStatus(tmp_path), clock=lambda: now[0])
    scale = Scale()
    scale.value = 0.0  # at this scale the trainer never diverges
    loop = Controller(
        DivergingTrainer(scale),
        epochs=1,
        steps_per_epoch=12,
        log_every_steps=2,
        actions=[Clock(), saver],
        checkpoints=checkpoints,
    )
    assert loop.train() == COMPLETED
    # Start (0); rounds end at 2, 4, ... 12 at 4 s each: 12 s at step 6, then the epoch end (12).
    # 12 s again at step 12, the epoch's last round: that one is saved at the epoch's end,
    # once its actions are done (epoch 1), not before them with no step of epoch 0 left.
    saved = [
        (state["step"], state["epoch"], state["step_in_epoch"]) for state in checkpoints.states
    ]
    assert saved == [(0, 0, 0), (6, 0, 6), (12, 1, 0)]
    assert runfiles.read_status(tmp_path)["checkpoint_step"] == 12


class _Probe:
    def layer_reports(self, *batch):
        return []


class _Writer:
    """Records the steps of the work handed to the writer's thread."""

    def __init__(self):
        self.steps = []

    def in_background(self, work):
        work()

    def layer_reports(self, split, step, reports):
        self.steps.append(step)


class _Loop:
    def __init__(
        self, *, step, epoch, step_in_epoch=0, epochs=40, resumed=True, stop_training=False
    ):
        self.step, self.epoch, self.step_in_epoch = step, epoch, step_in_epoch
        self.epochs, self.resumed, self.stop_training = epochs, resumed, stop_training


@pytest.mark.parametrize(
    "loop,expected",
    [
        # (where the restored checkpoint is, steps redrawn); histograms every 10 epochs.
        (_Loop(step=0, epoch=0, resumed=False), [0]),  # a fresh run: the initial weights
        (_Loop(step=0, epoch=0), [0]),  # the step-0 checkpoint: drawn after it, so again
        (_Loop(step=570, epoch=10), [570]),  # a due epoch's end
        (_Loop(step=399, epoch=7), []),  # an epoch end that was not due
        (_Loop(step=399, epoch=7, epochs=7), [399]),  # the last epoch's end is always due
        # The epoch early stopping ended the run at (its checkpoint keeps the stop).
        (_Loop(step=399, epoch=7, stop_training=True), [399]),
        (_Loop(step=600, epoch=10, step_in_epoch=30), []),  # mid-epoch (a timed checkpoint)
    ],
)
def test_layer_reports_are_drawn_again_where_a_restored_checkpoint_was_due(loop, expected):
    # They are written after the checkpoint of their epoch end, so a run restored
    # to it has lost them (the events after the checkpoint are dropped).
    writer = _Writer()
    action = actions.LayerReports(_Probe(), (None, None), writer, every_epochs=10)
    if loop.resumed:
        action.set_state(action.get_state())  # the checkpoint's state, as the controller loads it
    action.on_train_begin(loop)
    if loop.resumed:
        action.on_restore(loop)  # a rollback to the same checkpoint: the same rule
        expected = expected * 2
    assert writer.steps == expected


def test_a_checkpoint_of_an_older_version_keeps_its_layer_reports():
    # Older versions drew them before the checkpoint, so they survive the restore:
    # drawn again they would show twice at that step. Such a checkpoint saved {}.
    writer = _Writer()
    action = actions.LayerReports(_Probe(), (None, None), writer, every_epochs=10)
    action.set_state({})
    action.on_train_begin(_Loop(step=570, epoch=10))
    action.on_restore(_Loop(step=0, epoch=0))
    assert writer.steps == []


def test_layer_reports_off_draw_nothing_on_restore():
    writer = _Writer()
    action = actions.LayerReports(_Probe(), (None, None), writer, every_epochs=0)
    action.set_state(action.get_state())
    action.on_train_begin(_Loop(step=0, epoch=0))
    action.on_restore(_Loop(step=570, epoch=10))
    assert writer.steps == []


def test_a_resumed_run_records_the_checkpoint_it_restored(tmp_path):
    # Killed after saving ckpt-12 but before status.json said so: status.json names
    # ckpt-6. The resumed run saves nothing new at step 12 (the epoch is done), yet its
    # status.json must name the checkpoint it went on from, not a deleted one.
    RunStatus(tmp_path).update("running", step=6, epoch=0, checkpoint_step=6)
    checkpoints = MemoryCheckpoints()
    checkpoints.states.append({
        "step": 12, "epoch": 1, "step_in_epoch": 0, "train_time": 1.0, "examples_seen": 12.0,
        "trainer": {"step": 12}, "actions": {},
    })  # fmt: skip
    loop = Controller(
        DivergingTrainer(Scale()),
        epochs=1,
        steps_per_epoch=12,
        log_every_steps=2,
        actions=[actions.Checkpoint(0.0, RunStatus(tmp_path, runfiles.read_status(tmp_path)))],
        checkpoints=checkpoints,
    )
    loop.load_state_dict(checkpoints.restore_latest())
    loop.last_checkpoint_step = loop.step
    assert loop.train() == COMPLETED
    assert len(checkpoints.states) == 1  # nothing new to save
    record = runfiles.read_status(tmp_path)
    assert (record["step"], record["epoch"], record["checkpoint_step"]) == (12, 1, 12)


@pytest.mark.parametrize("resumed,step", [(False, 0), (True, 0), (True, 57)])
def test_a_resumed_run_says_the_step_it_resumes_at_step_0_included(resumed, step):
    # Killed in its first epoch, a run resumes from ckpt-0: without the line it looked
    # like one started afresh (a run killed before its first checkpoint).
    lines = io.StringIO()
    loop = types.SimpleNamespace(epochs=1, steps_per_epoch=57, step=step, resumed=resumed)
    actions.Progress(LineReporter(lines)).on_train_begin(loop)
    expected = [f"resuming at step {step}"] if resumed else []
    assert lines.getvalue().splitlines() == [*expected, "training 1 epoch x 57 steps"]
