"""Where a run's progress goes: the `Reporter` protocol and its two console forms.

`LineReporter` prints fixed-width lines (`format_logs`), one per logged step and
one per epoch, for logs and pipes; `BarReporter` redraws a bar in place, as
Keras's progress bar does, for a terminal (`kerasmlp-train` picks it when its
output is one). `kerasmlp.actions.Progress` calls them from the outer loop.

This module imports no TensorFlow: the CLI imports it before TensorFlow starts.
"""

from __future__ import annotations

import datetime
import shutil
import sys
import time
from collections.abc import Mapping
from typing import Protocol, TextIO

from kerasmlp.runfiles import RunFilesError, describe_os_error

__all__ = ["BarReporter", "LineReporter", "Reporter", "format_logs"]


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


class BarReporter:
    """On a terminal, as Keras's progress bar: one line per finished epoch, a bar below.

    The bar (epoch, steps done in it, the training loss over the epoch's steps
    so far, time left for the run; at the epoch's last step, as Keras's bar, the
    epoch's time instead) is redrawn in place; at each epoch's end it gives way to a line
    that stays: ``epoch 3/40 | loss 0.1234 | accuracy 0.9500 | validation_loss
    0.1432 | validation_accuracy 0.9450``, the figures of that epoch.
    """

    _WIDTH = 20  # characters of the bar itself

    def __init__(self, file=None):
        self._file = file  # None: stdout at the time of writing
        self._epochs = self._steps_per_epoch = self._first_step = 0
        self._started = self._epoch_started = 0.0
        self._drawn = False  # a bar is on the current line

    def start(self, *, epochs, steps_per_epoch, initial_step=0, resumed=False):
        self._epochs, self._steps_per_epoch = epochs, steps_per_epoch
        self._first_step, self._started = initial_step, time.monotonic()
        self._epoch_started = self._started

    def train_progress(self, *, step, epoch, logs):
        in_epoch = min(max(step - (epoch - 1) * self._steps_per_epoch, 0), self._steps_per_epoch)
        filled = self._WIDTH * in_epoch // max(self._steps_per_epoch, 1)
        parts = [
            f"epoch {epoch}/{self._epochs} [{'#' * filled}{'-' * (self._WIDTH - filled)}] "
            f"{in_epoch}/{self._steps_per_epoch}",
            # As Keras's bar: the loss over the epoch's steps so far, not the last call's.
            f"loss {logs['epoch_loss']:.4f}",
        ]
        done = step - self._first_step
        if in_epoch == self._steps_per_epoch:
            # Keras's bar ends an epoch with its time, `1s`: an ETA there (the run's rest,
            # or 0:00:00 at the last epoch) read as the time left of an epoch that is done.
            parts.append(f"{time.monotonic() - self._epoch_started:.0f}s")
        elif done > 0:
            left = (self._epochs * self._steps_per_epoch - step) * (
                (time.monotonic() - self._started) / done
            )
            parts.append(f"ETA {datetime.timedelta(seconds=round(left))}")
        line = " | ".join(parts)[: shutil.get_terminal_size().columns - 1]
        self._write(f"\r{line}\x1b[K")  # back to the line's start, then clear what was left
        self._drawn = True

    def epoch_end(self, *, step, epoch, logs):
        shown = {k.removeprefix("train_"): v for k, v in logs.items()}
        line = " | ".join(
            [f"epoch {epoch}/{self._epochs}", *(f"{k} {v:.4f}" for k, v in shown.items())]
        )
        self._write(f"\r{line}\x1b[K\n")
        self._drawn = False
        self._epoch_started = time.monotonic()

    def end(self, results):
        self.close()

    def message(self, text):
        self.close()
        self._write(f"{text}\n")

    def close(self):
        """Ends a bar's line, so that what is written next starts on its own line."""
        if self._drawn:
            self._write("\n")
            self._drawn = False

    def _write(self, text):
        file = self._file or sys.stdout
        file.write(text)
        file.flush()
