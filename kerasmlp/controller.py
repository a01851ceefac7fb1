"""The outer loop: drives the compiled inner loop in chunks and calls actions between them.

What one step does lives in `kerasmlp.trainer.Trainer` (a compiled function
that runs many steps per call). When to log, evaluate, checkpoint, stop early
or give up on a diverged run is decided here, in plain Python, by a list of
`Action`s, in the manner of Orbit's `Controller` with its actions, CLU's
`PeriodicAction` and Keras's `CallbackList` with `model.stop_training`.

One round of the loop:

1. `trainer.run_steps(n)` runs n steps, up to the next multiple of
   `log_every_steps` or the end of the epoch (whichever comes first), and
   returns that interval's statistics: the one host read of the round.
2. Every action's `on_steps(loop, stats)`.
3. At the end of an epoch, every action's `on_epoch_end(loop, logs)`; the
   `logs` dict starts as the epoch's training results and grows as actions
   add to it (evaluation adds `validation_*`), as Keras's callbacks share it.

An action may set `loop.stop_training = True` (the round finishes, as in
Keras), or call `loop.halt(reason)` (the round ends at once: later actions of
that round do not run). A stop request (a signal) halts with `interrupted`
after the current round's compiled call. At the end, `on_train_end(loop)`.

An action that rewinds to a checkpoint (`loop.restore_checkpoint()`, the
divergence guard's rollback) ends its round too; then every action's
`on_restore(loop)` runs, so that what is written after a checkpoint (and was
dropped with the events after it) can be written again.

The host-side counters and every action's state travel in checkpoints
(`state_dict` / `load_state_dict`), so a resumed or rolled-back run continues
exactly where the checkpoint was taken.

This module knows only Python: it is tested with a fake trainer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

COMPLETED = "completed"
STOPPED_EARLY = "stopped_early"
INTERRUPTED = "interrupted"
DIVERGED = "diverged"


class StepRunner(Protocol):
    """What the controller needs of a trainer."""

    def run_steps(self, num_steps: int) -> Mapping[str, float]:
        """Runs `num_steps` steps; returns the interval's stats.

        Among them `examples`, `loss` (the interval's mean) and `epoch_loss` (the
        mean over the epoch's steps so far).
        """

    def start_epoch(self) -> None:
        """Resets the epoch's training accumulators."""

    def train_results(self) -> dict[str, float]:
        """The epoch's training loss and metrics so far."""

    def state_dict(self) -> dict[str, Any]:
        """Host-side state (JSON-able) that a checkpoint must keep."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class Checkpoints(Protocol):
    """Saves and restores the device state together with the controller's host state."""

    def save(self, host_state: Mapping[str, Any], *, step: int) -> str: ...

    def restore_latest(self) -> Mapping[str, Any] | None: ...


class StopRequest:
    """Set by a signal handler, read by the loop after each compiled call.

    Attributes:
      signal_name: 'SIGINT' or 'SIGTERM' once a stop was asked for, else None.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def request(self, signal_name: str) -> None:
        self.signal_name = signal_name

    def __bool__(self) -> bool:
        return self.signal_name is not None


class Action:
    """One concern of the outer loop. Override the hooks it needs; each has its own "when".

    Attributes:
      name: key of the action's state in checkpoints; unique within a loop.
    """

    name = "action"

    def on_train_begin(self, loop: Controller) -> None:
        pass

    def on_steps(self, loop: Controller, stats: Mapping[str, float]) -> None:
        pass

    def on_epoch_end(self, loop: Controller, logs: dict[str, float]) -> None:
        pass

    def on_train_end(self, loop: Controller) -> None:
        pass

    def on_restore(self, loop: Controller) -> None:
        """After a round that rewound to a checkpoint (a rollback), at the checkpoint's step."""

    def get_state(self) -> dict[str, Any]:
        """JSON-able state a resumed run needs (e.g. early stopping's patience counter)."""
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        pass


class Every:
    """When a periodic action is due: every N epochs / steps / seconds, and at the last epoch.

    Modelled on CLU's `PeriodicAction(every_steps, every_secs)`; 0 or None turns
    a criterion off.
    """

    def __init__(
        self,
        *,
        epochs: int | None = None,
        secs: float | None = None,
        at_last_epoch: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.epochs = epochs or 0
        self.secs = secs or 0.0
        self.at_last_epoch = at_last_epoch
        self._clock = clock
        self._last_time = clock()

    def epoch_due(self, loop: Controller) -> bool:
        """Whether an epoch end is due: every `epochs`, and at the last one trained.

        The last is the run's last epoch, or the one an earlier action of this
        epoch end (early stopping) decided to stop at.
        """
        last = self.at_last_epoch and (loop.epoch == loop.epochs or loop.stop_training)
        return bool(self.epochs) and (loop.epoch % self.epochs == 0 or last)

    def time_due(self) -> bool:
        return bool(self.secs) and self._clock() - self._last_time >= self.secs

    def reset_time(self) -> None:
        self._last_time = self._clock()


class Controller:
    """Runs `epochs` epochs of `steps_per_epoch` steps through `trainer`, calling `actions`.

    Args:
      trainer: a `StepRunner`.
      epochs: epochs to train in all (a resumed run counts those already done).
      steps_per_epoch: steps in one pass over the training split.
      log_every_steps: the host reads the loop's statistics every N steps.
      actions: called in order at each hook.
      checkpoints: saves and restores state; None disables `save_checkpoint`.
      stop_request: polled after each compiled call (see `StopRequest`).
      clock: seconds, for the training time (tests pass a fake one).
    """

    def __init__(
        self,
        trainer: StepRunner,
        *,
        epochs: int,
        steps_per_epoch: int,
        log_every_steps: int,
        actions: Sequence[Action] = (),
        checkpoints: Checkpoints | None = None,
        stop_request: StopRequest | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        names = [action.name for action in actions]
        if len(set(names)) != len(names):
            raise ValueError(f"Action names must be unique. Received: {names}")
        self.trainer = trainer
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.log_every_steps = log_every_steps
        self.actions = list(actions)
        self.checkpoints = checkpoints
        self.stop_request = stop_request if stop_request is not None else StopRequest()
        self._clock = clock
        # Host-side counters; all of them go into checkpoints.
        self.step = 0
        self.epoch = 0  # epochs completed
        self.step_in_epoch = 0
        self.train_time = 0.0  # seconds spent in compiled training calls
        self.examples_seen = 0.0
        # Per round.
        self.stop_training = False
        self.halted: str | None = None
        self.rewound = False
        self.last_checkpoint_step: int | None = None
        self.max_steps_this_round: int | None = None
        self.end_reason: str | None = None  # set when training ends, before on_train_end
        self.resumed = False  # state loaded from a checkpoint: the start was logged already

    # --- control, for actions ----------------------------------------------------

    def halt(self, reason: str) -> None:
        """Ends training after the current action: later actions of this round are skipped."""
        self.halted = reason

    def save_checkpoint(self, *, force: bool = False) -> str | None:
        """Saves device and host state now; returns the path.

        Once per step unless `force` (a rollback saves its new rate at the step it
        went back to, so that what it logged there survives a later restore).
        """
        if self.checkpoints is None or (self.last_checkpoint_step == self.step and not force):
            return None
        path = self.checkpoints.save(self.state_dict(), step=self.step)
        self.last_checkpoint_step = self.step
        return path

    def restore_checkpoint(self) -> bool:
        """Rewinds to the latest checkpoint; the rest of this round's actions are skipped."""
        if self.checkpoints is None:
            return False
        state = self.checkpoints.restore_latest()
        if state is None:
            return False
        self.load_state_dict(state)
        self.last_checkpoint_step = self.step
        self.rewound = True
        return True

    def limit_next_round(self, num_steps: int) -> None:
        """Makes the next compiled call run at most `num_steps` steps (e.g. for the profiler)."""
        self.max_steps_this_round = num_steps

    # --- state ----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "train_time": self.train_time,
            "examples_seen": self.examples_seen,
            # An early stop decided at an epoch end is saved with that epoch's checkpoint:
            # a run interrupted after it finishes at once when resumed.
            "stop_training": self.stop_training,
            "trainer": self.trainer.state_dict(),
            "actions": {action.name: action.get_state() for action in self.actions},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.resumed = True
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.train_time = float(state["train_time"])
        self.examples_seen = float(state["examples_seen"])
        self.stop_training = bool(state.get("stop_training", False))  # older checkpoints lack it
        self.trainer.load_state_dict(state["trainer"])
        saved = state.get("actions", {})
        for action in self.actions:
            if action.name in saved:
                action.set_state(saved[action.name])

    # --- the loop ---------------------------------------------------------------

    @property
    def finished_epochs(self) -> bool:
        return self.epoch >= self.epochs

    def train(self) -> str:
        """Trains until the last epoch, an early stop, a halt or a stop request.

        Returns:
          Why it ended: `completed`, `stopped_early`, `interrupted` or the
          reason an action passed to `halt` (e.g. `diverged`).
        """
        self._dispatch("on_train_begin")
        while not self.finished_epochs and not self.stop_training and not self.halted:
            if self.stop_request:
                self.halt(INTERRUPTED)
                break
            self._round()
        self.end_reason = self.halted or (STOPPED_EARLY if self.stop_training else COMPLETED)
        self._dispatch("on_train_end")
        return self.end_reason

    def _round(self) -> None:
        if self.step_in_epoch == 0:
            self.trainer.start_epoch()
        n = min(
            self.log_every_steps - self.step % self.log_every_steps,
            self.steps_per_epoch - self.step_in_epoch,
        )
        if self.max_steps_this_round is not None:
            n = max(1, min(self.max_steps_this_round, self.steps_per_epoch - self.step_in_epoch))
            self.max_steps_this_round = None
        start = self._clock()
        stats = dict(self.trainer.run_steps(n))  # waits for the steps: the round's host read
        elapsed = self._clock() - start
        self.step += n
        self.step_in_epoch += n
        self.train_time += elapsed
        self.examples_seen += stats.get("examples", 0.0)
        stats.update(steps=n, seconds=elapsed)
        self.rewound = False
        self._dispatch("on_steps", stats)
        if self.rewound:
            for action in self.actions:
                action.on_restore(self)
        if self.halted or self.rewound:
            return
        if self.step_in_epoch >= self.steps_per_epoch:
            self.epoch += 1
            self.step_in_epoch = 0
            logs = {f"train_{k}": v for k, v in self.trainer.train_results().items()}
            self._dispatch("on_epoch_end", logs)
        if self.stop_request and not self.halted and not self.rewound:
            self.halt(INTERRUPTED)

    def _dispatch(self, hook: str, *args: Any) -> None:
        for action in self.actions:
            getattr(action, hook)(self, *args)
            if hook != "on_train_end" and (self.halted or self.rewound):
                return
