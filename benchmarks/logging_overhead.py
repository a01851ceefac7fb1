"""What TensorBoard logging costs: training throughput with the default logging vs logging off.

Runs the real entry point, `train_and_evaluate`, side by side in one process on
the same config: once as configured (default: the spirals config with every
logging default: loss, learning rate, gradient norm and examples/s every
`log_every_steps`, layer histograms and unit health every 10 epochs, images
every 20, both also at the end, HParams), once with logging off (`histogram_every_epochs=0`,
`image_every_epochs=0`, `log_every_steps` larger than the run). The two
alternate over `--repeats` rounds and the best round of each is reported.

Throughput is the steady state: training examples over the wall time from the
end of the first epoch to the end of the last, so it includes every epoch-end
summary, image and the per-epoch validation (the same in both), not only the
compiled steps. What happens once per run (tracing the train loop in both;
tracing the probe, the model summary, the HParams records and the graph with
logging on) is left out of that rate and shown as the whole call's wall time.

    python benchmarks/logging_overhead.py
    python benchmarks/logging_overhead.py --epochs 20 --repeats 5 --set model.activation=tanh

Prints examples/s for each and the ratio logged / off (1.0: logging is free)
three ways: from the best round of each; as the median of the per-round ratios;
and epoch by epoch: each epoch's time is the median over the rounds of that
epoch's time, and the ratio is that of their sums. The last is the steadiest on
a shared machine, where a burst of other work slows one round by 10-40%: the
epoch it lands in is left out, not the whole round.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasmlp.config import load_config  # noqa: E402
from kerasmlp.train import LineReporter, train_and_evaluate  # noqa: E402

LOGGING_OFF = (
    "train.histogram_every_epochs=0",
    "train.image_every_epochs=0",
    "train.log_every_steps=1000000000",
)


class TimingReporter(LineReporter):
    """Notes when each epoch ends."""

    def __init__(self):
        super().__init__(io.StringIO())
        self.epoch_ends: list[float] = []

    def epoch_end(self, *, step, epoch, logs):
        self.epoch_ends.append(time.perf_counter())


def measure(config, workdir: str, name: str) -> dict[str, float]:
    """One `train_and_evaluate` call: its rates, test accuracy and wall time.

    `steady` is the steady-state training rate: examples over the wall time
    from the end of the first epoch to the end of the last (nan for one epoch);
    `epoch_seconds` the wall time of each epoch after the first.
    """
    reporter = TimingReporter()
    start = time.perf_counter()
    results = train_and_evaluate(config, os.path.join(workdir, name), reporter=reporter)
    wall = time.perf_counter() - start
    # Examples per epoch, from the loop's own count (examples/s over its step time).
    per_epoch = results["examples_per_second"] * results["wall_time_s"] / results["epochs"]
    ends = reporter.epoch_ends
    steady = per_epoch * (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 else float("nan")
    return {
        "examples_per_second": results["examples_per_second"],
        "steady": steady,
        "test_accuracy": results.get("test_accuracy", float("nan")),
        "wall": wall,
        "epoch_seconds": [b - a for a, b in zip(ends[:-1], ends[1:], strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=None, help="YAML config; default: the built-in one")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Received: {args.repeats}")

    with tempfile.TemporaryDirectory() as workdir:
        base = list(args.overrides)
        if args.epochs is not None:
            base.append(f"train.epochs={args.epochs}")
        if not any(o.startswith("data.data_dir=") for o in base):
            base.append(f"data.data_dir={os.path.join(workdir, 'tfds')}")
        logged_config = load_config(args.config, base)
        off_config = load_config(args.config, [*base, *LOGGING_OFF])
        if logged_config.train.epochs < 2:
            parser.error(
                "--epochs must be at least 2: the rates are taken after the first epoch. "
                f"Received: train.epochs={logged_config.train.epochs}"
            )
        # Warm-up: prepares the data and lets TensorFlow settle; not timed.
        measure(off_config, workdir, "warmup")
        logged, off = [], []
        for r in range(args.repeats):
            order = [("logged", logged_config, logged), ("off", off_config, off)]
            for name, config, out in order if r % 2 == 0 else order[::-1]:
                out.append(measure(config, workdir, f"{name}-{r}"))
        best_logged = max(v["steady"] for v in logged)
        best_off = max(v["steady"] for v in off)
        wall_logged, wall_off = min(v["wall"] for v in logged), min(v["wall"] for v in off)
        print(f"config: {args.config or 'built-in default'} {' '.join(args.overrides)}")
        print(f"epochs {logged_config.train.epochs}, best of {args.repeats} alternating rounds")
        print(f"default logging : {best_logged:9.0f} examples/s  (rounds {_rounds(logged)})")
        print(f"logging off     : {best_off:9.0f} examples/s  (rounds {_rounds(off)})")
        print(f"ratio logged/off: {best_logged / best_off:.3f} (best round of each)")
        # Each round runs the two back to back, so their ratio shares the machine's
        # state of the moment; the median of these is the steadier figure.
        paired = sorted(lo["steady"] / of["steady"] for lo, of in zip(logged, off, strict=True))
        print(f"ratio logged/off: {statistics.median(paired):.3f} (median of per-round ratios)")
        print(
            f"ratio logged/off: {_typical_run(off) / _typical_run(logged):.3f} "
            "(epoch by epoch: the median over rounds of each epoch's time, summed)"
        )
        print(f"whole run wall time: logged {wall_logged:.2f} s, off {wall_off:.2f} s")


def _typical_run(values) -> float:
    """Seconds of a run whose every epoch takes its median time over the rounds."""
    per_round = [v["epoch_seconds"] for v in values]
    return sum(statistics.median(times) for times in zip(*per_round, strict=True))


def _rounds(values) -> str:
    return " ".join(f"{v['steady']:.0f}" for v in values)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)
