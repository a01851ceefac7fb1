"""Runs `kerasmlp-train` and kills itself with SIGKILL at a chosen point, for resume tests.

    python -m tests._killed_run POINT N -- <kerasmlp-train options>

POINT is where the process dies, N which occurrence:
  step        after the compiled call that reaches step >= N (mid-epoch when N is)
  checkpoint  right after the N-th checkpoint is saved
  evaluate    at the start of the N-th evaluation (validation or test)
  save_model  just before model.keras is written

SIGKILL cannot be caught: nothing of kerasmlp's runs after it, as when a machine
loses power or the kernel kills a process for memory.
"""

from __future__ import annotations

import os
import signal
import sys

from kerasmlp import cli
from kerasmlp.console import start_tensorflow


def kill() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, n: int) -> None:
    import kerasmlp.checkpoints
    import kerasmlp.train

    counts = {"calls": 0}
    if point == "step":
        run_steps = kerasmlp.train.Trainer.run_steps

        def killing_run_steps(self, iterator, num_steps):
            stats = run_steps(self, iterator, num_steps)
            if int(self.optimizer.iterations.numpy()) >= n:
                kill()
            return stats

        kerasmlp.train.Trainer.run_steps = killing_run_steps
    elif point == "checkpoint":
        save = kerasmlp.checkpoints.RunCheckpoints.save

        def killing_save(self, host_state, *, step):
            path = save(self, host_state, step=step)
            counts["calls"] += 1
            if counts["calls"] >= n:
                kill()
            return path

        kerasmlp.checkpoints.RunCheckpoints.save = killing_save
    elif point == "evaluate":
        evaluate = kerasmlp.train.Trainer.evaluate

        def killing_evaluate(self, dataset):
            counts["calls"] += 1
            if counts["calls"] >= n:
                kill()
            return evaluate(self, dataset)

        kerasmlp.train.Trainer.evaluate = killing_evaluate
    elif point == "save_model":
        replace = kerasmlp.train.replace_atomically

        def killing_replace(path, write):
            if str(path).endswith("model.keras"):
                kill()
            return replace(path, write)

        kerasmlp.train.replace_atomically = killing_replace
    else:
        raise SystemExit(f"unknown point {point!r}")


if __name__ == "__main__":
    point, n, separator, *options = sys.argv[1:]
    assert separator == "--"
    # As kerasmlp-train starts it (quiet, the collector paused): the patches import it first.
    start_tensorflow()
    install(point, int(n))
    cli.main(options, prog_name="kerasmlp-train")
