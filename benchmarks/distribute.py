"""Training speed on one device, on two logical devices (mirrored) and with two loopback workers.

Runs the real command, `kerasmlp-train` (as `python -m kerasmlp`), in fresh processes
(logical devices and MultiWorkerMirroredStrategy must be set up before TensorFlow
starts) on the same config, model and global batch:

    one_device    one process, one device
    mirrored      one process, MirroredStrategy over `distribute.cpu_devices=2`
    multi_worker  two processes on 127.0.0.1, MultiWorkerMirroredStrategy

Speed is the steady state: the median of the `train/examples_per_second` the
run logged each round (every `train.log_every_steps`), the first round (which
traces the loop) left out. On one CPU, two logical devices or two workers share
the same cores, so the ratios show the cost of the distribution machinery (the
split of each batch, the all-reduce), not a speed-up; on GPUs or machines the
same command measures the real thing.

    python benchmarks/distribute.py
    python benchmarks/distribute.py --epochs 5 --set 'model.hidden_units=[1024,1024]'

Prints examples/s for each and the ratios to one device.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile

# `python -m kerasmlp` is `kerasmlp-train` run by this Python: the script itself need not sit
# beside the interpreter (`pip install --user` puts it elsewhere, PYTHONPATH installs none).
COMMAND = (sys.executable, "-m", "kerasmlp")
DEFAULTS = (
    "model.hidden_units=[256,256]",
    "train.batch_size=256",
    "train.log_every_steps=5",
    "train.histogram_every_epochs=0",
    "train.image_every_epochs=0",
)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _steady_rate(run_dir: pathlib.Path) -> float:
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        str(run_dir / "train"), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    import tensorflow as tf

    values = [
        float(tf.make_ndarray(e.tensor_proto)) for e in accumulator.Tensors("examples_per_second")
    ]
    return statistics.median(values[1:] if len(values) > 1 else values)


def measure(name: str, args: list[str], workdir: pathlib.Path, timeout: float) -> float:
    logdir = workdir / name
    common = [*args, "--logdir", str(logdir), "--run-name", "run"]
    if name == "multi_worker":
        addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
        procs = []
        for index in range(2):
            tf_config = {
                "cluster": {"worker": addresses},
                "task": {"type": "worker", "index": index},
            }
            procs.append(
                subprocess.Popen(
                    [*COMMAND, *common, "--strategy", "multi_worker"],
                    env=_env(TF_CONFIG=json.dumps(tf_config)),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        try:
            for proc in procs:
                _, err = proc.communicate(timeout=timeout)
                if proc.returncode:
                    raise SystemExit(f"{name} failed: {err[-2000:]}")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    else:
        extra = ["--strategy", name]
        if name == "mirrored":
            extra += ["--set", "distribute.cpu_devices=2"]
        proc = subprocess.run(
            [*COMMAND, *common, *extra],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        if proc.returncode:
            raise SystemExit(f"{name} failed: {proc.stderr[-2000:]}")
    return _steady_rate(logdir / "run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per variant")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        args = ["--epochs", str(options.epochs)]
        for item in (*DEFAULTS, f"data.data_dir={workdir / 'data'}", *options.overrides):
            args += ["--set", item]
        # one_device first: it prepares the dataset the others share.
        rates = {
            name: measure(name, args, workdir, options.timeout)
            for name in ("one_device", "mirrored", "multi_worker")
        }
    base = rates["one_device"]
    print(f"{'variant':<14} {'examples/s':>12} {'ratio':>7}")
    for name, rate in rates.items():
        print(f"{name:<14} {rate:>12,.0f} {rate / base:>7.2f}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)
