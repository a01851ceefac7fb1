"""Long runs of kerasmlp-train: kills, signals and --resume.

The runs that are killed or signalled are the real console script (or the killing
wrapper, tests/_killed_run.py), each a process started by the test, bounded by a
timeout and killed in a `finally` if it is still running. The references, the
resumes that finish and the refusals run in the test's own process (`invoke`),
where TensorFlow has started already. The reference for "resumed exactly" is the
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
import traceback

import keras
import numpy as np
import pytest
from tensorboard.plugins.hparams.metadata import parse_session_start_info_plugin_data

import kerasmlp  # noqa: F401  (registers kerasmlp's classes for load_model)
from tests import events
from tests.conftest import REPO_ROOT, invoke_train

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


def run(args, *, data_dir):
    """A whole run in this process (see `invoke`), with the shared data_dir."""
    return invoke(*args, "--set", f"data.data_dir={data_dir}")


def invoke(*args):
    """`kerasmlp-train ARGS` in this process (`conftest.invoke_train`). Returns (exit status,
    stdout, stderr); stderr ends with the traceback of an exception the command let
    through, if any."""
    result = invoke_train(args)
    err = result.stderr
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        err += "".join(traceback.format_exception(*result.exc_info))
    return result.exit_code, result.stdout, err


def resume(run_dir, *extra):
    """`--resume` alone, in this process: the run's own config.yaml names the data_dir."""
    return invoke("--resume", run_dir, *extra)


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


def resume_killed(run_dir, killed_at):
    """`--resume` through the killing wrapper: dies at `killed_at` of the resumed process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests._killed_run", *killed_at, "--", "--resume", str(run_dir)],
        cwd=REPO_ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return finish(process)


def assert_killed(run_dir, code, err):
    assert code == -signal.SIGKILL, f"{code} {err[-2000:]}"
    assert status(run_dir)["state"] == "running"  # SIGKILL: nothing ran after
    assert not (run_dir / "model.keras").exists()


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
    assert line.endswith(
        "does the run's config.yaml still describe the model and optimizer that were trained?"
    )
    (run_dir / "config.yaml").write_text(config)

    data = max((run_dir / "checkpoints").glob("ckpt-114.data-*"), key=lambda p: p.stat().st_size)
    os.truncate(data, data.stat().st_size // 2)


def test_a_run_killed_again_and_again_resumes_to_bitwise_the_same_weights_and_metrics(
    tmp_path, data_dir, uninterrupted
):
    # One run killed (SIGKILL) at a new point by each resume, then resumed to its end.
    # 57 steps an epoch; checkpoints at steps 0, 57, 114 and 171, the last two kept
    # (train.keep_checkpoints 2). Each resume starts a new process, whose counts of
    # evaluations and saves start from 0.
    run_dir = tmp_path / "run"
    process = start(
        [*RUN, "--logdir", str(tmp_path), "--run-name", "run"],
        data_dir=data_dir,
        killed_at=("step", "70"),  # after the round ending at step 80, mid-epoch 2
    )
    code, _, err = finish(process)
    assert_killed(run_dir, code, err)

    # From ckpt-57: dies in epoch 3's validation, its second, before epoch 3's checkpoint.
    code, out, err = resume_killed(run_dir, ("evaluate", "2"))
    assert_killed(run_dir, code, err)
    assert "resuming at step 57\n" in out

    # ckpt-57 and ckpt-114 are kept; ckpt-114 is damaged (see `damage`). The resume goes
    # on from ckpt-57 and dies right after its second save, epoch 3's: the last
    # checkpoint, before that epoch's histograms and pictures (drawn after it).
    damage(run_dir)
    code, out, err = resume_killed(run_dir, ("checkpoint", "2"))
    assert_killed(run_dir, code, err)
    assert re.search(
        r"cannot read checkpoint \S+ckpt-114 \(truncated or corrupt\?\): .*; "
        r"going on from the one before it, ckpt-57\nresuming at step 57\n",
        out,
    ), out[:3000]

    # From ckpt-171: draws the last epoch's histograms and pictures, once, and ends.
    code, out, err = resume(run_dir)
    assert code == 0, err[-3000:]
    assert "resuming at step 171\n" in out
    assert metrics_without_timing(run_dir) == metrics_without_timing(uninterrupted)
    for got, want in zip(weights(run_dir), weights(uninterrupted), strict=True):
        np.testing.assert_array_equal(got, want)
    assert status(run_dir)["state"] == "completed"
    assert_each_step_once(run_dir)
    # The same curves, histograms and pictures as the reference: every tag at the same steps.
    for split in ("train", "validation"):
        assert tensor_steps(run_dir / split) == tensor_steps(uninterrupted / split)
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
    # TensorBoard's HParams row and config text give the epochs trained, not the 40 begun with.
    accumulator = events.load(run_dir)
    (start,) = accumulator.Tensors("_hparams_/session_start_info")
    content = accumulator.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    hparams = parse_session_start_info_plugin_data(content).hparams
    assert start.step == 0 and hparams["train.epochs"].number_value == max(2, begun)
    assert f"epochs: {max(2, begun)}\n" in events.texts(run_dir / "train")["config"]

    # A completed run is not resumed again.
    returncode, out, err = resume(run_dir)
    assert returncode == 2 and "the run is completed" in err and len(err.splitlines()) == 1
