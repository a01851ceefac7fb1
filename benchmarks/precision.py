"""What mixed precision does to a run: speed and accuracy of float32 against mixed_bfloat16.

Runs the real entry point, `train_and_evaluate`, side by side in one process on
the same config, once per precision (`train.precision`), alternating the order
over `--repeats` rounds so that both see the machine in the same state. For each
precision it prints, per round and as the best round:

- the training throughput that `metrics.json` reports (`examples_per_second`:
  every training example over the time of the compiled steps, tracing included);
- the steady-state throughput: examples from the end of the first epoch to the
  end of the last, over that wall time (no tracing; needs 2 epochs or more);
- the test accuracy (the same seed, so the precisions differ by rounding only)
  and the wall time of the whole call.

Then the compiled loop alone (no evaluation, no logging, no tracing): one
trainer per precision on the same data, their calls of `--loop-steps` steps
interleaved `--loop-calls` times; the median of the per-call ratios is the
figure that stays steady on a machine shared with other work.

It also prints the machine's float32 and bfloat16 matmul rate on the first
layer's shape (the batch times the input and the first hidden width), so the
figures can be read against what the hardware offers.

    python benchmarks/precision.py                                   # the default spirals config
    python benchmarks/precision.py -c configs/mnist.yaml --epochs 3 \\
        --set data.manual_dir=../shared/data/mnist --set data.data_dir=/tmp/tfds
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from logging_overhead import measure  # noqa: E402  (the script's own folder)

from kerasmlp.config import dataset_shape, load_config  # noqa: E402
from kerasmlp.precision import read_cpu_flags  # noqa: E402


def loop_rates(config, precisions: list[str], *, calls: int, steps: int) -> dict[str, list[float]]:
    """Examples/s of each precision's compiled loop, calls of `steps` steps interleaved.

    One `Trainer` per precision on the same in-memory training split; their calls
    alternate (A B, B A, ...), so both see the machine in the same state, which
    matters on a loaded machine more than the number of rounds. Tracing is left out.
    """
    from kerasmlp.components import make_loss, make_optimizer
    from kerasmlp.data import load_config_datasets
    from kerasmlp.model import Head
    from kerasmlp.train import Trainer, _training_batches, model_for

    data = load_config_datasets(config)
    head = Head.for_task(
        data.info.task, num_classes=data.info.num_classes, loss_name=config.loss.name
    )
    runs = {}
    for p in precisions:
        # The run's model (`model_for`): it scales, flattens and shifts raw images itself.
        model = model_for(config, data.info, head, dtype_policy=None if p == "float32" else p)
        optimizer = make_optimizer(config.optimizer, loss_scaling=p == "mixed_float16")
        trainer = Trainer(
            model, make_loss(config.loss), optimizer, head=head, metric_names=config.metrics
        )
        batches = _training_batches(data, config)
        trainer.run_steps(batches, steps)  # traces
        runs[p] = (trainer, batches)
    rates: dict[str, list[float]] = {p: [] for p in precisions}
    for i in range(calls):
        for p in precisions if i % 2 == 0 else precisions[::-1]:
            trainer, batches = runs[p]
            start = time.perf_counter()
            stats = trainer.run_steps(batches, steps)
            rates[p].append(stats["examples"] / (time.perf_counter() - start))
    return rates


def steady_text(rate: float) -> str:
    """A steady rate as printed: 'n/a' for a one-epoch run, which has none (`measure`'s nan)."""
    return "n/a" if math.isnan(rate) else f"{rate:.0f}"


def matmul_rates(batch: int, fan_in: int, units: int, seconds: float = 1.0) -> dict[str, float]:
    """GFLOP/s of `(batch, fan_in) @ (fan_in, units)` in float32 and bfloat16, best of 3."""
    import tensorflow as tf

    rates = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal((batch, fan_in)), dtype)
        b = tf.cast(tf.random.normal((fan_in, units)), dtype)
        product = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
        product(a, b)
        best = 0.0
        for _ in range(3):
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / 3:
                product(a, b).numpy()
                count += 1
            best = max(best, count * 2 * batch * fan_in * units / (time.perf_counter() - start))
        rates[dtype.name] = best / 1e9
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", default=None, help="YAML config; default: built-in")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--repeats", type=int, default=3, help="whole runs; 0: the loop only")
    parser.add_argument(
        "--precisions", default="float32,mixed_bfloat16", help="comma-separated train.precision"
    )
    parser.add_argument("--loop-calls", type=int, default=40, help="interleaved loop calls")
    parser.add_argument("--loop-steps", type=int, default=50, help="steps per loop call")
    args = parser.parse_args()
    for option, least in (("repeats", 0), ("loop_calls", 1), ("loop_steps", 1)):
        if (value := getattr(args, option)) < least:
            option = option.replace("_", "-")
            parser.error(f"--{option} must be at least {least}. Received: {value}")

    with tempfile.TemporaryDirectory() as workdir:
        base = list(args.overrides)
        if args.epochs is not None:
            base.append(f"train.epochs={args.epochs}")
        if not any(o.startswith("data.data_dir=") for o in base):
            base.append(f"data.data_dir={os.path.join(workdir, 'tfds')}")
        precisions = args.precisions.split(",")
        configs = {p: load_config(args.config, [*base, f"train.precision={p}"]) for p in precisions}
        first = configs[precisions[0]]
        if args.repeats:
            # Warm-up: prepares the data and lets TensorFlow settle; not timed.
            measure(load_config(args.config, [*base, "train.epochs=1"]), workdir, "warmup")
        rounds: dict[str, list[dict[str, float]]] = {p: [] for p in precisions}
        for r in range(args.repeats):
            order = precisions if r % 2 == 0 else precisions[::-1]
            for p in order:
                rounds[p].append(measure(configs[p], workdir, f"{p}-{r}"))
        input_dim, _ = dataset_shape(first.data.name)
        units = (first.model.hidden_units or (1,))[0]
        flags = sorted(read_cpu_flags() & {"amx_bf16", "avx512_bf16", "avx512f"})
        print(f"config: {args.config or 'built-in default'} {' '.join(args.overrides)}")
        rounds_said = f"{args.repeats} alternating rounds" if args.repeats else "no whole runs"
        if args.repeats and first.train.epochs < 2:
            rounds_said += " (steady rate n/a: it starts after the first epoch)"
        print(f"epochs {first.train.epochs}, {rounds_said}; CPU flags {flags}")
        for p in precisions if args.repeats else ():
            runs = rounds[p]
            accuracies = " ".join(f"{v['test_accuracy']:.4f}" for v in runs)
            print(
                f"{p:<15} | examples/s (metrics.json) best "
                f"{max(v['examples_per_second'] for v in runs):8.0f}"
                f" | steady best {steady_text(max(v['steady'] for v in runs)):>8}"
                f" | test accuracy {accuracies}"
                f" | wall best {min(v['wall'] for v in runs):6.1f} s"
            )
            each = ", ".join(
                f"{v['examples_per_second']:.0f}/{steady_text(v['steady'])}" for v in runs
            )
            print(f"{'':<15} | rounds (metrics.json/steady): {each}")
        calls, steps = args.loop_calls, args.loop_steps
        rates = loop_rates(first, precisions, calls=calls, steps=steps)
        print(f"compiled loop alone, {calls} interleaved calls of {steps} steps each:")
        reference = rates[precisions[0]]
        for p in precisions:
            ratios = [r / q for r, q in zip(rates[p], reference, strict=True)]
            print(
                f"{p:<15} | examples/s median {statistics.median(rates[p]):8.0f}"
                f" | best {max(rates[p]):8.0f}"
                f" | median ratio to {precisions[0]} {statistics.median(ratios):.3f}"
            )
        # A 2-D input's first layer (the playground sets) is too small to time.
        if input_dim and input_dim * units >= 10_000:
            rates = matmul_rates(first.train.batch_size, input_dim, units)
            shape = f"({first.train.batch_size} x {input_dim}) @ ({input_dim} x {units})"
            print(
                f"matmul {shape}: float32 {rates['float32']:.1f} GFLOP/s, "
                f"bfloat16 {rates['bfloat16']:.1f} GFLOP/s"
            )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)
