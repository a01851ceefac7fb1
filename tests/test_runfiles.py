"""Tests for kerasmlp.runfiles: atomic writes, strict JSON, status.json, run-folder checks."""

import json
import os
import subprocess
import sys

import pytest

from kerasmlp import runfiles


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")

    def fails(temporary):
        temporary.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(runfiles.RunFilesError, match=r"metrics.json: No space left on device"):
        runfiles.replace_atomically(path, fails)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_write_text_atomic_replaces_whole(tmp_path):
    path = tmp_path / "config.yaml"
    runfiles.write_text_atomic(path, "a: 1\n")
    runfiles.write_text_atomic(path, "b: 2\n")
    assert path.read_text() == "b: 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_json_is_strict(tmp_path):
    path = tmp_path / "metrics.json"
    runfiles.write_json_atomic(path, {"loss": float("nan"), "nested": [float("inf"), 1.5]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"loss": None, "nested": [None, 1.5]}


def test_status_moves_through_its_states(tmp_path):
    status = runfiles.RunStatus(tmp_path)
    status.update("running", epochs=3)
    record = runfiles.read_status(tmp_path)
    assert record["state"] == "running" and record["pid"] == os.getpid()
    assert record["pid_started"] == runfiles.process_start_time(os.getpid())
    assert record["ended"] is None and record["epochs"] == 3
    status.update(step=10, epoch=1)
    status.update("interrupted", step=12)
    record = runfiles.read_status(tmp_path)
    assert record["state"] == "interrupted" and "pid" not in record and record["ended"]
    assert "pid_started" not in record
    assert (record["step"], record["epoch"]) == (12, 1)
    resumed = runfiles.RunStatus(tmp_path, record)
    resumed.update("running")
    assert runfiles.read_status(tmp_path)["started"] == record["started"]  # kept on resume
    with pytest.raises(ValueError, match="state must be one of"):
        status.update("paused")


def test_a_resumed_run_keeps_no_stale_stop_fields(tmp_path):
    status = runfiles.RunStatus(tmp_path)
    status.update("running")
    status.update("interrupted", signal="SIGINT")
    resumed = runfiles.RunStatus(tmp_path, runfiles.read_status(tmp_path))
    resumed.update("running")
    resumed.update("failed", error="OSError: disk full")
    again = runfiles.RunStatus(tmp_path, runfiles.read_status(tmp_path))
    again.update("running")
    again.update("completed", step=114)
    record = runfiles.read_status(tmp_path)
    assert record["state"] == "completed" and record["step"] == 114
    assert "signal" not in record and "error" not in record


def test_check_run_dir_refuses_any_file_dot_files_too(tmp_path):
    run = tmp_path / "run"
    assert runfiles.check_run_dir(run) == run  # missing: fine
    run.mkdir()
    assert runfiles.check_run_dir(run) == run  # empty: fine
    (run / ".hidden").write_text("mine")
    with pytest.raises(runfiles.RunDirectoryExistsError, match="already holds files"):
        runfiles.check_run_dir(run)
    assert (run / ".hidden").read_text() == "mine"


@pytest.mark.parametrize("state", runfiles.STATES)
def test_a_taken_name_says_which_run_holds_it(tmp_path, state):
    runfiles.RunStatus(tmp_path).update(state)
    hint = "choose another" if state == "completed" else f"--resume {tmp_path}"
    with pytest.raises(runfiles.RunDirectoryExistsError, match=f"holds a {state} kerasmlp run"):
        try:
            runfiles.check_run_dir(tmp_path)
        except runfiles.RunDirectoryExistsError as e:
            assert hint in str(e)
            raise


def test_check_run_dir_refuses_a_file_and_a_dangling_link(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(runfiles.RunFilesError, match="is a file, not a run folder"):
        runfiles.check_run_dir(tmp_path / "file")
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(runfiles.RunFilesError, match="which does not exist"):
        runfiles.check_run_dir(tmp_path / "link")


def test_check_resumable(tmp_path):
    with pytest.raises(runfiles.ResumeError, match="no such run folder"):
        runfiles.check_resumable(tmp_path / "missing")
    with pytest.raises(runfiles.ResumeError, match="not a kerasmlp run folder"):
        runfiles.check_resumable(tmp_path)
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    # A folder with a config but no status.json: not a run of kerasmlp's to go on with.
    with pytest.raises(runfiles.ResumeError, match="not a kerasmlp run .*no readable status"):
        runfiles.check_resumable(tmp_path)
    status = runfiles.RunStatus(tmp_path)
    status.update("running")  # killed before its first checkpoint: starts again
    assert runfiles.check_resumable(tmp_path)["state"] == "running"
    status.update("interrupted")
    assert runfiles.check_resumable(tmp_path)["state"] == "interrupted"
    status.update("completed")
    with pytest.raises(runfiles.ResumeError, match="the run is completed"):
        runfiles.check_resumable(tmp_path)


def interrupted_at_step_210(run_dir):
    """A run folder as an interrupt at step 210 leaves it (the CheckpointManager's index)."""
    (run_dir / "config.yaml").write_text("seed: 0\n")
    runfiles.write_json_atomic(
        run_dir / "status.json", {"state": "interrupted", "step": 210, "checkpoint_step": 210}
    )
    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-210"\nall_model_checkpoint_paths: "ckpt-210"\n'
    )
    (checkpoints / "ckpt-210.index").write_bytes(b"")
    return checkpoints


def test_a_run_whose_recorded_checkpoint_is_gone_is_refused(tmp_path):
    checkpoints = interrupted_at_step_210(tmp_path)
    assert runfiles.check_resumable(tmp_path)["checkpoint_step"] == 210
    (checkpoints / "ckpt-210.index").unlink()
    with pytest.raises(runfiles.ResumeError, match=r"step 210, but .*ckpt-210.index.* is missing"):
        runfiles.check_resumable(tmp_path)
    (checkpoints / "checkpoint").write_text("garbled\x00")
    with pytest.raises(runfiles.ResumeError, match=r"step 210, but .*no readable index"):
        runfiles.check_resumable(tmp_path)
    (checkpoints / "checkpoint").unlink()
    with pytest.raises(runfiles.ResumeError, match=r"step 210, but .*no readable index"):
        runfiles.check_resumable(tmp_path)
    checkpoints.rmdir()
    with pytest.raises(runfiles.ResumeError, match=r"step 210, but .*checkpoints is missing"):
        runfiles.check_resumable(tmp_path)


def test_a_run_whose_latest_checkpoint_is_gone_goes_on_from_an_older_one_kept(tmp_path):
    # keep_checkpoints 2: ckpt-200 is kept beside ckpt-210; RunCheckpoints.restore_latest
    # goes on from it, saying that ckpt-210 is missing.
    checkpoints = interrupted_at_step_210(tmp_path)
    (checkpoints / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-210"\nall_model_checkpoint_paths: "ckpt-200"\n'
        'all_model_checkpoint_paths: "ckpt-210"\n'
    )
    (checkpoints / "ckpt-200.index").write_bytes(b"")
    (checkpoints / "ckpt-210.index").unlink()
    assert runfiles.check_resumable(tmp_path)["checkpoint_step"] == 210
    (checkpoints / "ckpt-200.index").unlink()
    with pytest.raises(
        runfiles.ResumeError,
        match=r"step 210, but .*ckpt-210.index.* is missing, and so are the older ones it keeps;",
    ):
        runfiles.check_resumable(tmp_path)


def test_a_running_run_is_refused_only_while_its_process_lives(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        runfiles.write_json_atomic(
            tmp_path / "status.json", {"state": "running", "pid": sleeper.pid}
        )
        with pytest.raises(
            runfiles.ResumeError, match=f"still running \\(process {sleeper.pid}\\)"
        ):
            runfiles.check_resumable(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)
    # Killed (as by SIGKILL): its status still says running, and the run can be resumed.
    assert runfiles.check_resumable(tmp_path)["state"] == "running"


def test_a_process_id_given_again_to_another_process_does_not_block_resume(tmp_path):
    # After a reboot the run's pid may belong to another process: one that started at
    # another time than the run's (pid_started, from /proc) is not the run.
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = runfiles.process_start_time(other.pid)
        if started is None:
            pytest.skip("no /proc here: a process's start time is unknown")
        status = {"state": "running", "pid": other.pid, "pid_started": started}
        runfiles.write_json_atomic(tmp_path / "status.json", status)
        with pytest.raises(runfiles.ResumeError, match="still running"):
            runfiles.check_resumable(tmp_path)
        status["pid_started"] = started - 3600.0  # the run's process started an hour before
        runfiles.write_json_atomic(tmp_path / "status.json", status)
        assert runfiles.check_resumable(tmp_path)["state"] == "running"
    finally:
        other.kill()
        other.wait(timeout=10)


def test_resuming_holds_the_run_folder_against_a_second_process(tmp_path):
    # flock locks belong to an open file description: a second open in this process
    # stands for a second process.
    import fcntl

    (tmp_path / "config.yaml").write_text("seed: 0\n")
    runfiles.RunStatus(tmp_path).update("interrupted")
    with runfiles.resuming(tmp_path) as status:
        assert status["state"] == "interrupted"
        with pytest.raises(runfiles.ResumeError, match="another process is resuming this run"):
            with runfiles.resuming(tmp_path):
                pass
        other = os.open(tmp_path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
    with runfiles.resuming(tmp_path):  # released at the block's end
        pass
    with pytest.raises(runfiles.ResumeError, match="no such run folder"):
        with runfiles.resuming(tmp_path / "missing"):
            pass
