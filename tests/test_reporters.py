"""Tests for kerasmlp.reporters: the progress bar a terminal shows, drawn into a fake terminal."""

import io

from kerasmlp import reporters


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _screen(written: str) -> list[str]:
    """The lines a terminal shows for `written`: each line's text after its last carriage return."""
    return [line.rsplit("\r", 1)[-1].replace("\x1b[K", "") for line in written.split("\n")]


def test_progress_bar_leaves_one_line_per_epoch_with_that_epochs_figures():
    stream = _FakeTerminal()
    bar = reporters.BarReporter(file=stream)
    bar.start(epochs=2, steps_per_epoch=10)
    logs = {"loss": 0.5, "epoch_loss": 0.6, "learning_rate": 0.01}
    bar.train_progress(step=5, epoch=1, logs=logs)
    drawn = _screen(stream.getvalue())[-1]
    # As Keras's bar: the mean over the epoch's steps so far, not the last call's 0.5.
    assert drawn.startswith("epoch 1/2 [##########----------] 5/10 | loss 0.6000 | ETA ")
    bar.train_progress(
        step=10, epoch=1, logs={"loss": 0.45, "epoch_loss": 0.5, "learning_rate": 0.01}
    )
    bar.epoch_end(
        step=10,
        epoch=1,
        logs={
            "train_loss": 0.4,
            "train_accuracy": 0.8,
            "validation_loss": 0.3,
            "validation_accuracy": 0.9,
        },
    )
    bar.train_progress(
        step=15, epoch=2, logs={"loss": 0.2, "epoch_loss": 0.25, "learning_rate": 0.01}
    )
    # While epoch 2 runs: epoch 1's line stays, and the bar shows epoch 2's current
    # loss, not epoch 1's validation figures.
    screen = _screen(stream.getvalue())
    assert screen[0] == (
        "epoch 1/2 | loss 0.4000 | accuracy 0.8000 | validation_loss 0.3000 | "
        "validation_accuracy 0.9000"
    )
    assert screen[1].startswith("epoch 2/2 [##########----------] 5/10 | loss 0.2500 | ETA ")
    assert "validation" not in screen[1]
    bar.train_progress(
        step=20, epoch=2, logs={"loss": 0.2, "epoch_loss": 0.22, "learning_rate": 0.01}
    )
    bar.epoch_end(
        step=20,
        epoch=2,
        logs={
            "train_loss": 0.21,
            "train_accuracy": 0.85,
            "validation_loss": 0.2,
            "validation_accuracy": 0.95,
        },
    )
    bar.end({})
    assert _screen(stream.getvalue()) == [
        screen[0],
        "epoch 2/2 | loss 0.2100 | accuracy 0.8500 | validation_loss 0.2000 | "
        "validation_accuracy 0.9500",
        "",  # the cursor waits at the start of a fresh line
    ]


def test_progress_bar_ends_an_epoch_with_its_time_as_keras_does(monkeypatch):
    # The bar at 10/10 showed "ETA 0:00:01" (the run's rest) over a finished epoch, and
    # "ETA 0:00:00" at the last one. keras.utils.Progbar (Keras 3.15.1) ends an epoch
    # with the epoch's elapsed time, "1s", and no ETA.
    now = [100.0]
    monkeypatch.setattr(reporters, "time", type("Clock", (), {"monotonic": lambda: now[0]}))
    stream = _FakeTerminal()
    bar = reporters.BarReporter(file=stream)
    bar.start(epochs=2, steps_per_epoch=10)
    logs = {"loss": 0.5, "epoch_loss": 0.6, "learning_rate": 0.01}
    now[0] = 102.0
    bar.train_progress(step=5, epoch=1, logs=logs)
    # 15 steps left at 2 s / 5 steps: 6 s for the run.
    assert _screen(stream.getvalue())[-1].endswith("5/10 | loss 0.6000 | ETA 0:00:06")
    now[0] = 104.2
    bar.train_progress(step=10, epoch=1, logs=logs)
    assert _screen(stream.getvalue())[-1].endswith("10/10 | loss 0.6000 | 4s")
    now[0] = 105.0  # the validation pass, then epoch 2 starts
    bar.epoch_end(step=10, epoch=1, logs={"train_loss": 0.4})
    now[0] = 106.6
    bar.train_progress(step=20, epoch=2, logs=logs)
    assert _screen(stream.getvalue())[-1].endswith("10/10 | loss 0.6000 | 2s")


def test_progress_bar_of_a_resumed_run_and_one_that_fails():
    stream = _FakeTerminal()
    bar = reporters.BarReporter(file=stream)
    bar.start(epochs=4, steps_per_epoch=10, initial_step=20)  # resumed after epoch 2
    bar.train_progress(step=25, epoch=3, logs={"loss": 0.5, "epoch_loss": 0.5})
    assert _screen(stream.getvalue())[-1].startswith("epoch 3/4 [##########----------] 5/10 |")
    bar.close()  # an error follows: it must start on a line of its own
    assert stream.getvalue().endswith("\n")
    bar.close()
    assert stream.getvalue().count("\n") == 1
