"""Long runs through the real console script: kills, signals, --resume, divergence, early stops.

Every process is started by the test, bounded by a timeout, and killed in a
`finally` if it is still running. The reference for "resumed exactly" is the
same command never interrupted: weights compared bit for bit, metrics.json
compared whole except its two timing fields.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import kerasmlp  # noqa: F401  (registers kerasmlp's classes for load_model)
from tests import events
from tests.conftest import REPO_ROOT
from tests.test_tensorboard_server import free_port, get, tensorboard_command

SCRIPT = pathlib.Path(sys.executable).with_name("kerasmlp-train")
TIMEOUT_S = 240
TIMING_KEYS = ("wall_time_s", "examples_per_second")
# 3 epochs of spirals: 57 steps each, a round every 20 steps, dropout on, shuffled.
RUN = ["--epochs", "3", "--set", "model.dropout=0.2", "--set", "train.log_every_steps=20"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


def env():
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def start(args, *, data_dir, killed_at=None):
    """Starts kerasmlp-train (or the killing wrapper) with the shared data_dir."""
    options = [*args, "--set", f"data.data_dir={data_dir}"]
    if killed_at is None:
        command = [str(SCRIPT), *options]
    else:
        command = [sys.executable, "-m", "tests._killed_run", *killed_at, "--", *options]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process, timeout=TIMEOUT_S):
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


def run(args, *, data_dir, timeout=TIMEOUT_S):
    return finish(start(args, data_dir=data_dir), timeout)


def resume(run_dir, *extra):
    """`--resume` alone: the run's own config.yaml names the data_dir."""
    process = subprocess.Popen(
        [str(SCRIPT), "--resume", str(run_dir), *extra],
        cwd=REPO_ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return finish(process)


def metrics_without_timing(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def weights(run_dir):
    return keras.models.load_model(run_dir / "model.keras").get_weights()


def status(run_dir):
    return json.loads((run_dir / "status.json").read_text())


def assert_each_step_once(run_dir):
    """TensorBoard would draw a zig-zag for a tag logged twice at one step."""
    for split in ("train", "validation", "test"):
        for tag, points in events.scalars(run_dir / split).items():
            steps = [step for step, _ in points]
            assert steps == sorted(set(steps)), f"{split}/{tag}: {steps}"


def tensor_steps(event_dir):
    """`{tag: [step, ...]}` of every summary in a split: scalars, histograms, pictures, text."""
    accumulator = events.load(event_dir)
    return {
        tag: [event.step for event in accumulator.Tensors(tag)]
        for tag in accumulator.Tags()["tensors"]
    }


def session_ends(run_dir):
    accumulator = events.load(run_dir)
    return [
        event
        for tag in accumulator.Tags()["tensors"]
        if tag == "_hparams_/session_end_info"
        for event in accumulator.Tensors(tag)
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir):
    logdir = tmp_path_factory.mktemp("reference")
    code, out, err = run([*RUN, "--logdir", str(logdir), "--run-name", "ref"], data_dir=data_dir)
    assert code == 0, err[-3000:]
    return logdir / "ref"


KILL_POINTS = {
    "mid_epoch": ("step", "70"),  # dies after the round ending at step 80, in epoch 2
    # Right after the end of epoch 2 was saved: ckpt-57 and ckpt-114 are kept
    # (train.keep_checkpoints 2). The newest is damaged before the resume (see `damage`).
    "damaged": ("checkpoint", "3"),
    # Right after the last epoch's save, before its histograms and pictures (drawn
    # after the checkpoint): the resumed run draws them, once.
    "after_the_last_checkpoint": ("checkpoint", "4"),
    "during_evaluation": ("evaluate", "3"),  # in epoch 3's validation, before its checkpoint
}


def damage(run_dir):
    """A config.yaml that no longer describes the trained model is refused in one line;
    then the newest checkpoint's largest data file is cut short, as a crash in its write
    leaves it, and the resume must go on from the one kept before it."""
    config = (run_dir / "config.yaml").read_text()
    assert "hidden_units: [32, 32, 32]" in config  # the defaults
    (run_dir / "config.yaml").write_text(config.replace("[32, 32, 32]", "[33, 32, 32]"))
    code, out, err = resume(run_dir)
    assert code == 2, err[-3000:]
    (line,) = err.splitlines()  # TensorFlow's warnings about unrestored values are silenced
    assert line.startswith("kerasmlp-train: error: cannot restore checkpoint ")
    assert "ckpt-114: Received incompatible tensor with shape" in line
    assert line.endswith("does the run's config.yaml still describe the model that was trained?")
    (run_dir / "config.yaml").write_text(config)

    data = max((run_dir / "checkpoints").glob("ckpt-114.data-*"), key=lambda p: p.stat().st_size)
    os.truncate(data, data.stat().st_size // 2)


def test_killed_runs_resume_to_bitwise_the_same_weights_and_metrics(
    tmp_path, data_dir, uninterrupted
):
    # The killed runs go side by side (two cores), then their resumes.
    killed = {
        name: start(
            [*RUN, "--logdir", str(tmp_path), "--run-name", name],
            data_dir=data_dir,
            killed_at=point,
        )
        for name, point in KILL_POINTS.items()
    }
    for name, process in killed.items():
        code, _, err = finish(process)
        assert code == -signal.SIGKILL, f"{name}: {code} {err[-2000:]}"
        assert status(tmp_path / name)["state"] == "running"  # SIGKILL: nothing ran after
        assert not (tmp_path / name / "model.keras").exists()
    damage(tmp_path / "damaged")
    resumed = {
        name: subprocess.Popen(
            [str(SCRIPT), "--resume", str(tmp_path / name)],
            cwd=REPO_ROOT,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in KILL_POINTS
    }
    expected_metrics = metrics_without_timing(uninterrupted)
    expected_weights = weights(uninterrupted)
    for name, process in resumed.items():
        code, out, err = finish(process)
        assert code == 0, f"{name}: {err[-3000:]}"
        assert "resuming at step " in out
        if name == "damaged":
            assert re.search(
                r"cannot read checkpoint \S+ckpt-114 \(truncated or corrupt\?\): .*; "
                r"going on from the one before it, ckpt-57\n",
                out,
            ), out[:3000]
            assert "resuming at step 57" in out
        run_dir = tmp_path / name
        assert metrics_without_timing(run_dir) == expected_metrics, name
        for got, want in zip(weights(run_dir), expected_weights, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)
        assert status(run_dir)["state"] == "completed"
        assert_each_step_once(run_dir)
        # The same curves, histograms and pictures as the reference: every tag at the same steps.
        for split in ("train", "validation"):
            assert tensor_steps(run_dir / split) == tensor_steps(uninterrupted / split), name
        assert len(session_ends(run_dir)) == 1


def wait_for_step(run_dir, process, step, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            if status(run_dir).get("step", 0) >= step:
                return
        except (OSError, ValueError):
            pass  # not written yet
        time.sleep(0.2)
    pytest.fail(f"the run did not reach step {step} within {timeout} s")


def interrupt(tmp_path, data_dir, signal_name, code):
    """A run stopped by `signal_name` once its first epoch's checkpoint is written: it saves
    a checkpoint, exits with `code` and says how to continue. Returns (run_dir, the epoch
    it was in, or the last done at an epoch's end)."""
    run_dir = tmp_path / "run"
    process = start(
        ["--epochs", "40", "--logdir", str(tmp_path), "--run-name", "run"], data_dir=data_dir
    )
    try:
        wait_for_step(run_dir, process, 57)  # the first epoch's checkpoint is written
        process.send_signal(getattr(signal, signal_name))
        returncode, out, err = finish(process, timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert returncode == code, err[-3000:]
    last = out.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"interrupted at step (\d+) \(epoch (\d+)\); continue with: "
        rf"kerasmlp-train --resume {re.escape(str(run_dir))}",
        last,
    )
    assert match, last
    record = status(run_dir)
    assert record["state"] == "interrupted" and record["signal"] == signal_name
    assert record["step"] == int(match.group(1)) == record["checkpoint_step"]
    assert not (run_dir / "model.keras").exists()
    return run_dir, int(match.group(2))


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path, data_dir):
    # As Ctrl-C below; the resume is the same whichever signal stopped the run.
    interrupt(tmp_path, data_dir, "SIGTERM", 143)


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_run(tmp_path, data_dir):
    run_dir, begun = interrupt(tmp_path, data_dir, "SIGINT", 130)

    # Fewer epochs than it has trained: refused, nothing written (57 steps an epoch).
    if status(run_dir)["step"] > 57:
        before = (run_dir / "status.json").read_text(), (run_dir / "config.yaml").read_text()
        returncode, out, err = resume(run_dir, "--epochs", "1")
        assert returncode == 2, err[-3000:]
        assert err.endswith(f"--epochs must be at least {begun}\n") and len(err.splitlines()) == 1
        after = (run_dir / "status.json").read_text(), (run_dir / "config.yaml").read_text()
        assert after == before

    # Continue, shortened to 2 epochs (or to the epoch it was in, if later).
    returncode, out, err = resume(run_dir, "--epochs", str(max(2, begun)))
    assert returncode == 0, err[-3000:]
    record = status(run_dir)
    assert record["state"] == "completed"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == max(2, begun) and isinstance(metrics["steps"], int)
    assert_each_step_once(run_dir)
    assert len(session_ends(run_dir)) == 1
    assert_served_once_per_step(tmp_path)

    # A completed run is not resumed again.
    returncode, out, err = resume(run_dir)
    assert returncode == 2 and "the run is completed" in err and len(err.splitlines()) == 1


def assert_served_once_per_step(logdir):
    """The real TensorBoard, on 127.0.0.1: the resumed run's curves have each step once."""
    port = free_port()
    process = subprocess.Popen(
        [
            *tensorboard_command(),
            f"--logdir={logdir}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--load_fast=false",
            "--reload_interval=1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if "run/test" in get(base, "/data/runs"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not serve the run within 60 s"
            time.sleep(0.5)
        tags = get(base, "/data/plugin/scalars/tags")["run/train"]
        for tag in tags:
            served = get(base, "/data/plugin/scalars/scalars", run="run/train", tag=tag)
            steps = [step for _, step, _ in served]
            assert steps == sorted(set(steps)), f"{tag}: {steps}"
    finally:
        process.kill()
        process.wait(timeout=30)
