"""Tests for kerasmlp.controller with a fake trainer, as Orbit's controller_test.py does.

Expected values are worked by hand from the loop's rule: a round runs up to the
next multiple of log_every_steps or the end of the epoch, whichever is first.
"""

import pytest

from kerasmlp.controller import (
    COMPLETED,
    DIVERGED,
    INTERRUPTED,
    STOPPED_EARLY,
    Action,
    Controller,
    Every,
    StopRequest,
)


class FakeTrainer:
    """Counts steps; its loss is 1 / step so a test can tell rounds apart."""

    def __init__(self):
        self.steps = 0
        self.calls = []
        self.epoch_starts = 0
        self.epoch_examples = 0.0

    def run_steps(self, num_steps):
        self.calls.append(num_steps)
        self.steps += num_steps
        self.epoch_examples += 10.0 * num_steps
        return {"loss": 1.0 / self.steps, "examples": 10.0 * num_steps}

    def start_epoch(self):
        self.epoch_starts += 1
        self.epoch_examples = 0.0

    def train_results(self):
        return {"loss": 0.5, "examples": self.epoch_examples}

    def state_dict(self):
        return {"steps": self.steps, "epoch_examples": self.epoch_examples}

    def load_state_dict(self, state):
        self.steps = state["steps"]
        self.epoch_examples = state["epoch_examples"]


class Recorder(Action):
    """Records every hook call as (hook, step, epoch)."""

    def __init__(self, name="recorder", log=None):
        self.name = name
        self.log = log if log is not None else []

    def on_train_begin(self, loop):
        self.log.append(("begin", loop.step, loop.epoch))

    def on_steps(self, loop, stats):
        self.log.append(("steps", loop.step, loop.epoch))

    def on_epoch_end(self, loop, logs):
        self.log.append(("epoch_end", loop.step, loop.epoch))

    def on_train_end(self, loop):
        self.log.append(("end", loop.step, loop.epoch))


def make(actions=(), *, epochs=2, steps_per_epoch=7, log_every=3, **kwargs):
    trainer = FakeTrainer()
    loop = Controller(
        trainer,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        log_every_steps=log_every,
        actions=actions,
        **kwargs,
    )
    return loop, trainer


def test_rounds_stop_at_log_multiples_and_epoch_ends():
    recorder = Recorder()
    loop, trainer = make([recorder])
    assert loop.train() == COMPLETED
    # Steps 3, 6, 7 | 9, 12, 14: the epoch end (7) breaks the every-3 rhythm, which
    # then continues from the global step (9, not 10).
    assert trainer.calls == [3, 3, 1, 2, 3, 2]
    assert [entry for entry in recorder.log if entry[0] == "epoch_end"] == [
        ("epoch_end", 7, 1),
        ("epoch_end", 14, 2),
    ]
    assert recorder.log[0] == ("begin", 0, 0) and recorder.log[-1] == ("end", 14, 2)
    assert trainer.epoch_starts == 2
    assert loop.examples_seen == 140.0


def test_logs_reach_every_action_and_grow_in_order():
    seen = []

    class Adds(Action):
        name = "adds"

        def on_epoch_end(self, loop, logs):
            logs["validation_loss"] = 0.25

    class Reads(Action):
        name = "reads"

        def on_epoch_end(self, loop, logs):
            seen.append(dict(logs))

    loop, _ = make([Adds(), Reads()], epochs=1)
    loop.train()
    assert seen == [{"train_loss": 0.5, "train_examples": 70.0, "validation_loss": 0.25}]


def test_stop_training_finishes_the_round_and_halt_skips_the_rest():
    log = []

    class StopsAtFirstEpoch(Action):
        name = "stops"

        def on_epoch_end(self, loop, logs):
            loop.stop_training = True

    loop, trainer = make([StopsAtFirstEpoch(), Recorder(log=log)], epochs=5)
    assert loop.train() == STOPPED_EARLY
    assert ("epoch_end", 7, 1) in log  # the later action still ran, as in Keras
    assert trainer.steps == 7

    log = []

    class HaltsAtStepSix(Action):
        name = "halts"

        def on_steps(self, loop, stats):
            if loop.step == 6:
                loop.halt(DIVERGED)

    loop, trainer = make([HaltsAtStepSix(), Recorder(log=log)], epochs=5)
    assert loop.train() == DIVERGED
    assert ("steps", 3, 0) in log and ("steps", 6, 0) not in log
    assert log[-1] == ("end", 6, 0)  # on_train_end always runs
    assert loop.end_reason == DIVERGED


def test_a_stop_request_ends_after_the_current_call():
    stop = StopRequest()

    class SignalsAtStepThree(Action):
        name = "signals"

        def on_steps(self, loop, stats):
            if loop.step == 3:
                stop.request("SIGTERM")

    loop, trainer = make([SignalsAtStepThree()], stop_request=stop, epochs=5)
    assert loop.train() == INTERRUPTED
    assert trainer.calls == [3] and loop.step == 3 and loop.step_in_epoch == 3


def test_a_stop_request_before_training_runs_no_step():
    stop = StopRequest()
    stop.request("SIGINT")
    loop, trainer = make(stop_request=stop)
    assert loop.train() == INTERRUPTED
    assert trainer.calls == []


def test_state_round_trip_resumes_mid_epoch_without_restarting_the_epoch():
    class Counter(Action):
        name = "counter"

        def __init__(self):
            self.epochs_seen = 0

        def on_epoch_end(self, loop, logs):
            self.epochs_seen += 1

        def get_state(self):
            return {"epochs_seen": self.epochs_seen}

        def set_state(self, state):
            self.epochs_seen = state["epochs_seen"]

    stop = StopRequest()

    class StopsAtNine(Action):
        name = "stops"

        def on_steps(self, loop, stats):
            if loop.step == 9:
                stop.request("SIGINT")

    counter = Counter()
    loop, trainer = make([counter, StopsAtNine()], stop_request=stop, epochs=3)
    assert loop.train() == INTERRUPTED
    state = loop.state_dict()
    assert state["step"] == 9 and state["epoch"] == 1 and state["step_in_epoch"] == 2
    assert state["actions"]["counter"] == {"epochs_seen": 1}

    resumed_counter = Counter()
    resumed, resumed_trainer = make([resumed_counter], epochs=3)
    resumed.load_state_dict(state)
    assert resumed.train() == COMPLETED
    assert resumed_trainer.epoch_starts == 1  # epoch 3 only: epoch 2 was under way
    # Same rounds as an uninterrupted run from step 9: 12, 14 | 15, 18, 21.
    assert resumed_trainer.calls == [3, 2, 1, 3, 3]
    assert resumed_counter.epochs_seen == 3
    assert resumed_trainer.epoch_examples == 70.0  # epoch 3's own examples


def test_an_early_stop_travels_in_the_state_and_a_resumed_run_ends_at_once():
    stop = StopRequest()

    class StopsAtFirstEpoch(Action):
        name = "stops"

        def on_epoch_end(self, loop, logs):
            loop.stop_training = True
            stop.request("SIGINT")  # the signal comes as the early stop is decided

    loop, _ = make([StopsAtFirstEpoch()], stop_request=stop, epochs=5)
    assert loop.train() == INTERRUPTED
    state = loop.state_dict()
    assert state["stop_training"] is True and state["step"] == 7

    resumed, resumed_trainer = make(epochs=5)
    resumed.load_state_dict(state)
    assert resumed.train() == STOPPED_EARLY
    assert resumed_trainer.calls == []  # not a step more than the uninterrupted run


class FakeCheckpoints:
    def __init__(self):
        self.saved = []

    def save(self, host_state, *, step):
        self.saved.append(dict(host_state))
        return f"ckpt-{step}"

    def restore_latest(self):
        return self.saved[-1] if self.saved else None


def test_save_checkpoint_once_per_step_and_restore_rewinds():
    checkpoints = FakeCheckpoints()

    class SavesEachEpoch(Action):
        name = "saves"

        def on_epoch_end(self, loop, logs):
            assert loop.save_checkpoint() == f"ckpt-{loop.step}"
            assert loop.save_checkpoint() is None  # the same step: not twice

    rewound = []

    class RewindsOnceAtTwelve(Action):
        name = "rewinds"

        def on_steps(self, loop, stats):
            if loop.step == 12 and not rewound:
                rewound.append(loop.restore_checkpoint())

    log = []
    loop, trainer = make(
        [RewindsOnceAtTwelve(), SavesEachEpoch(), Recorder(log=log)], checkpoints=checkpoints
    )
    assert loop.train() == COMPLETED
    assert rewound == [True]
    assert [s["step"] for s in checkpoints.saved] == [7, 14]
    # Steps 9, 12 (rewound to 7: its on_steps for the later recorder is skipped), 9, 12, 14.
    assert [entry[1] for entry in log if entry[0] == "steps"] == [3, 6, 7, 9, 9, 12, 14]
    assert trainer.calls == [3, 3, 1, 2, 3, 2, 3, 2]


def test_after_a_rewinding_round_every_action_hears_on_restore_at_the_checkpoints_step():
    checkpoints = FakeCheckpoints()
    restored = []

    class SavesEachEpoch(Action):
        name = "saves"

        def on_epoch_end(self, loop, logs):
            loop.save_checkpoint()

    class RewindsOnceAtTwelve(Action):
        name = "rewinds"

        def on_steps(self, loop, stats):
            if loop.step == 12 and not restored:
                loop.restore_checkpoint()

        def on_restore(self, loop):
            restored.append((self.name, loop.step, loop.epoch, loop.step_in_epoch))

    class Listens(Action):
        name = "listens"

        def on_restore(self, loop):
            restored.append((self.name, loop.step, loop.epoch, loop.step_in_epoch))

    loop, _ = make([RewindsOnceAtTwelve(), SavesEachEpoch(), Listens()], checkpoints=checkpoints)
    assert loop.train() == COMPLETED
    # Once, after the round that rewound (to the end of epoch 1, step 7), in order.
    assert restored == [("rewinds", 7, 1, 0), ("listens", 7, 1, 0)]


def test_limit_next_round():
    class Limits(Action):
        name = "limits"

        def on_train_begin(self, loop):
            loop.limit_next_round(2)

    loop, trainer = make([Limits()], epochs=1)
    loop.train()
    assert trainer.calls == [2, 1, 3, 1]  # 2, then back to the rhythm: 3, 6, 7


def test_action_names_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        make([Recorder(), Recorder()])


def test_every_epochs_and_seconds():
    now = [0.0]
    when = Every(epochs=3, secs=10.0, clock=lambda: now[0])
    loop, _ = make(epochs=7)
    due = []
    for epoch in range(1, 8):
        loop.epoch = epoch
        due.append(when.epoch_due(loop))
    assert due == [False, False, True, False, False, True, True]  # and the last epoch
    assert not when.time_due()
    now[0] = 10.0
    assert when.time_due()
    when.reset_time()
    assert not when.time_due()
    assert not Every(epochs=0).epoch_due(loop)  # 0 turns it off, even at the last epoch


def test_every_is_due_at_an_epoch_that_an_earlier_action_stops_at():
    # Early stopping at epoch 2 of 7 makes it the last: what is drawn "every 3 epochs
    # and at the end" is drawn there, by an action after the stopping one.
    class StopAt2(Action):
        name = "stop"

        def on_epoch_end(self, loop, logs):
            loop.stop_training = loop.epoch == 2

    class Due(Action):
        name = "due"

        def __init__(self):
            self.when, self.epochs = Every(epochs=3), []

        def on_epoch_end(self, loop, logs):
            if self.when.epoch_due(loop):
                self.epochs.append(loop.epoch)

    due = Due()
    loop, _ = make([StopAt2(), due], epochs=7)
    assert loop.train() == STOPPED_EARLY and loop.epoch == 2
    assert due.epochs == [2]
    assert not Every(epochs=3, at_last_epoch=False).epoch_due(loop)
