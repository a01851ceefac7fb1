"""What long runs end in: divergence, rollbacks, early stops, a full disk or a closed
stdout, and a sweep resumed.

Split from tests/test_long_runs.py (kills, signals and bitwise resumes), whose helpers it
uses, so that pytest-xdist's `--dist loadfile` can give the two files to two workers. As
there, the runs that are killed, and the one whose stdout is /dev/full, are processes of
their own; the others run in the test's process (`invoke`).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess

import keras
import numpy as np
import pytest

from kerasmlp.config import load_config
from tests import events
from tests.conftest import REPO_ROOT
from tests.test_long_runs import (
    SCRIPT,
    TIMEOUT_S,
    assert_each_step_once,
    env,
    finish,
    metrics_without_timing,
    resume,
    run,
    start,
    status,
    tensor_steps,
    weights,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


def test_a_diverging_run_stops_with_status_3_and_saves_no_model(tmp_path, data_dir):
    returncode, out, err = run(
        [
            "--epochs", "2", "--logdir", str(tmp_path), "--run-name", "nan",
            "--set", "optimizer.learning_rate.initial_learning_rate=1e6",
        ],
        data_dir=data_dir,
    )  # fmt: skip
    assert returncode == 3, err[-3000:]
    (line,) = err.strip().splitlines()
    assert re.fullmatch(
        r"kerasmlp-train: error: diverged at step \d: .* \(learning rate (1e\+06|9\.99e\+05)\); "
        r"try a lower optimizer.learning_rate.initial_learning_rate",
        line,
    ), line
    run_dir = tmp_path / "nan"
    record = status(run_dir)
    assert record["state"] == "diverged"
    # The rate of the step that went bad, one or two steps into the decay: 1e6 * 0.5 ** (i / 1000).
    assert record["divergence"]["learning_rate"] == pytest.approx(1e6, rel=2e-3)
    assert not (run_dir / "model.keras").exists() and not (run_dir / "metrics.json").exists()
    json.loads((run_dir / "status.json").read_text())  # strict JSON: no NaN literal


def test_rollback_lowers_the_rate_and_gives_up_after_max_rollbacks(tmp_path, data_dir):
    returncode, out, err = run(
        [
            "--epochs", "2", "--logdir", str(tmp_path), "--run-name", "rb",
            "--set", "optimizer.name=sgd",
            "--set", "optimizer.learning_rate.initial_learning_rate=1e30",
            "--set", "train.on_divergence=rollback",
            "--set", "train.max_rollbacks=2",
        ],
        data_dir=data_dir,
    )  # fmt: skip
    assert returncode == 3, err[-3000:]
    assert re.search(
        r"error: diverged at step \d+ after 2 rollbacks: .*; try a lower \S+$", err, re.M
    )
    rollbacks = [line for line in out.splitlines() if line.startswith("rollback ")]
    assert [line.split(":")[0] for line in rollbacks] == ["rollback 1/2", "rollback 2/2"]
    assert all("back to step 0" in line for line in rollbacks)
    # Both rollbacks went back to step 0: one value there, the last (0.5 ** 2, by hand).
    scalars = events.scalars(tmp_path / "rb" / "train")
    assert scalars["rollbacks"] == [(0, 2.0)]
    assert scalars["learning_rate_scale"] == [(0, 0.25)]
    # The rate step 1 uses, as train/learning_rate says at step 0: 1e30 * 0.5 ** (0 / 1000)
    # times the scale (by hand). At a rollback to a logged step, the unscaled value goes.
    assert scalars["learning_rate"][0] == (0, pytest.approx(1e30 * 0.25, rel=1e-6))
    for tag, points in scalars.items():
        assert [step for step, _ in points] == sorted({step for step, _ in points}), tag
    # The initial weights' histograms, drawn after the step-0 checkpoint, dropped by
    # each rollback to it and drawn again: once in the end.
    steps = tensor_steps(tmp_path / "rb" / "train")
    assert steps["dense_0/kernel"] == steps["dense_0/gradient_norm"] == [0]


def test_early_stopping_the_best_model_and_a_run_killed_after_its_stop(tmp_path, data_dir):
    # Nothing improves by 10 after the first epoch: stops at epoch 2 (patience 0) and
    # restores epoch 1's weights. Saves: the start, epoch 1, epoch 2 (the stop); one kept.
    # The same run killed right after its third save, before the test evaluation: the
    # resumed run must not train on to epoch 3, and must end as the first one did.
    stopping = [
        "--epochs", "6",
        "--set", "train.early_stopping={monitor: validation_loss, patience: 0, min_delta: 10, "
        "restore_best: true}",
        "--set", "train.save_best=validation_accuracy",
        "--set", "train.keep_checkpoints=1",
    ]  # fmt: skip
    killed = start(
        [*stopping, "--logdir", str(tmp_path), "--run-name", "killed"],
        data_dir=data_dir,
        killed_at=("checkpoint", "3"),
    )
    code, out, err = run(
        [*stopping, "--logdir", str(tmp_path), "--run-name", "es"], data_dir=data_dir
    )
    assert code == 0, err[-3000:]
    assert "early stopping at epoch 2: validation_loss has not improved for 1 epoch (best" in out
    assert "restored the weights of epoch 1" in out
    run_dir = tmp_path / "es"
    record = status(run_dir)
    assert record["state"] == "completed" and record["stopped_early"] is True
    assert record["stopped_epoch"] == 2
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 2
    best = record["best"]
    assert best["monitor"] == "validation_accuracy" and best["file"] == "best.keras"
    validation = dict(events.scalars(run_dir / "validation")["accuracy"])
    assert best["value"] == pytest.approx(max(validation.values()), rel=1e-6)
    assert keras.models.load_model(run_dir / "best.keras").count_params() > 0
    assert [p.name for p in (run_dir / "checkpoints").glob("*.index")] == ["ckpt-114.index"]

    code, _, err = finish(killed)
    assert code == -signal.SIGKILL, err[-3000:]
    code, out, err = resume(tmp_path / "killed")
    assert code == 0, err[-3000:]
    assert "restored the weights of epoch 1" in out
    record = status(tmp_path / "killed")
    assert record["stopped_early"] is True and record["stopped_epoch"] == 2
    assert metrics_without_timing(tmp_path / "killed") == metrics_without_timing(run_dir)
    for got, want in zip(weights(tmp_path / "killed"), weights(run_dir), strict=True):
        np.testing.assert_array_equal(got, want)


def test_resume_takes_only_epochs(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    for extra in (["--seed", "1"], ["--set", "train.epochs=3"], ["--logdir", "x"]):
        returncode, out, err = resume(tmp_path, *extra)
        assert returncode == 2 and len(err.splitlines()) == 1
        assert "only --epochs, --strategy, --verbose and (for a sweep) --sweep-metric may" in err
        assert extra[0] in err
    returncode, out, err = resume(tmp_path / "missing")
    assert returncode == 2 and "no such run folder" in err


def test_stdout_that_cannot_be_written_fails_in_one_line(tmp_path, data_dir):
    with open("/dev/full", "w") as full:
        process = subprocess.Popen(
            [
                str(SCRIPT), "--epochs", "1", "--logdir", str(tmp_path), "--run-name", "full",
                "--set", f"data.data_dir={data_dir}",
            ],
            cwd=REPO_ROOT, env=env(), stdout=full, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _, err = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 1, err[-3000:]
    (line,) = err.strip().splitlines()
    assert "cannot write to <stdout>: No space left on device" in line
    # Marked failed where it could be: once its folder exists (the first line may come sooner).
    if (tmp_path / "full").exists():
        assert status(tmp_path / "full")["state"] == "failed"


@pytest.fixture
def small_disk(tmp_path):
    """A 120 KB tmpfs: room for a run's first files, not for its checkpoints and events."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_ends_in_one_line_naming_the_path(small_disk, data_dir):
    returncode, out, err = run(
        ["--epochs", "2", "--logdir", str(small_disk), "--run-name", "full"], data_dir=data_dir
    )
    assert returncode == 1, err[-3000:]
    (line,) = err.strip().splitlines()
    assert line.startswith("kerasmlp-train: error: cannot write ") and str(small_disk) in line
    assert line.endswith("No space left on device")
    # config.yaml was written whole or not at all: never a truncated file.
    config = small_disk / "full" / "config.yaml"
    assert not config.exists() or load_config(config).train.epochs == 2


def test_a_read_only_log_folder_ends_in_one_line(small_disk, data_dir):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    returncode, out, err = run(
        ["--epochs", "1", "--logdir", str(small_disk), "--run-name", "ro"], data_dir=data_dir
    )
    assert returncode == 1, err[-3000:]
    (line,) = err.strip().splitlines()
    assert line == f"kerasmlp-train: error: cannot write {small_disk / 'ro'}: Read-only file system"


def test_resume_of_a_sweep_keeps_finished_points_and_runs_the_rest(tmp_path, data_dir):
    grid = tmp_path / "grid.yaml"
    grid.write_text("model.activation: [relu, tanh, sigmoid]\n")
    # One epoch a point: two checkpoints each (start, epoch end). The third save is the
    # second point's first: the process dies there, in the middle of the sweep.
    process = start(
        ["--sweep", str(grid), "--epochs", "1", "--logdir", str(tmp_path), "--run-name", "S"],
        data_dir=data_dir,
        killed_at=("checkpoint", "3"),
    )
    code, out, err = finish(process)
    assert code == -signal.SIGKILL, err[-3000:]
    sweep = tmp_path / "S"
    points = ["00-activation=relu", "01-activation=tanh", "02-activation=sigmoid"]
    assert status(sweep / points[0])["state"] == "completed"
    assert status(sweep / points[1])["state"] == "running"
    assert not (sweep / points[2]).exists()
    first_model = (sweep / points[0] / "model.keras").read_bytes()

    code, out, err = resume(sweep)
    assert code == 0, err[-3000:]
    lines = out.splitlines()
    assert lines[lines.index(f"sweep run {points[0]}") + 1] == "completed already"
    assert_each_step_once(sweep / points[1])  # continued from its step-0 checkpoint
    for point in points:
        assert status(sweep / point)["state"] == "completed"
        assert json.loads((sweep / point / "metrics.json").read_text())["epochs"] == 1
    assert (sweep / points[0] / "model.keras").read_bytes() == first_model  # left alone
    assert (sweep / "summary.txt").read_text().count(" | 0") == 3  # every point ranked
