"""Tests for kerasmlp.checkpoints: a damaged checkpoint gives way to the one kept before it.

The checkpoints hold a single vector whose value says which save it came from.
"""

import logging
import os
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

from kerasmlp.checkpoints import RunCheckpoints
from kerasmlp.runfiles import ResumeError
from kerasmlp.summaries import SummaryWriter


def saved_twice(run_dir, shape=(64,)):
    """Checkpoints at steps 1 and 2 of a vector of ones, then of twos; returns a restorer."""
    weights = tf.Variable(tf.ones(shape))
    messages = []
    checkpoints = RunCheckpoints(
        run_dir / "checkpoints",
        {"weights": weights},
        keep=2,
        writer=SummaryWriter(run_dir),
        log=messages.append,
    )
    checkpoints.save({"step": 1}, step=1)
    weights.assign(2.0 * tf.ones(shape))
    checkpoints.save({"step": 2}, step=2)
    weights.assign(tf.zeros(shape))
    return checkpoints, weights, messages


def cut_short(prefix):
    """Halves the largest data file of a checkpoint, as a crash in its write may leave it."""
    data = max(prefix.parent.glob(f"{prefix.name}.data-*"), key=lambda p: p.stat().st_size)
    os.truncate(data, data.stat().st_size // 2)


def test_the_latest_checkpoint_is_restored(tmp_path):
    checkpoints, weights, messages = saved_twice(tmp_path)
    assert checkpoints.restore_latest()["step"] == 2
    np.testing.assert_array_equal(weights.numpy(), np.full(64, 2.0))
    assert messages == []


def test_a_truncated_checkpoint_gives_way_to_the_one_before_it(tmp_path):
    checkpoints, weights, messages = saved_twice(tmp_path)
    cut_short(tmp_path / "checkpoints" / "ckpt-2")
    assert checkpoints.restore_latest()["step"] == 1
    np.testing.assert_array_equal(weights.numpy(), np.ones(64))
    (message,) = messages
    assert message.startswith(f"cannot read checkpoint {tmp_path / 'checkpoints' / 'ckpt-2'} ")
    assert message.endswith("going on from the one before it, ckpt-1")


def test_a_missing_checkpoint_gives_way_to_the_one_before_it(tmp_path):
    checkpoints, weights, messages = saved_twice(tmp_path)
    for path in (tmp_path / "checkpoints").glob("ckpt-2.*"):
        path.unlink()  # deleted by hand, or lost
    left = sorted((tmp_path / "checkpoints").iterdir())
    assert checkpoints.restore_latest()["step"] == 1
    np.testing.assert_array_equal(weights.numpy(), np.ones(64))
    assert messages == [
        f"cannot read checkpoint {tmp_path / 'checkpoints' / 'ckpt-2'}: its files are missing "
        "(deleted or lost?); going on from the one before it, ckpt-1"
    ]
    assert sorted((tmp_path / "checkpoints").iterdir()) == left  # nothing deleted


def test_a_missing_checkpoint_holds_none_of_the_kept_slots(tmp_path):
    # keep=2 and ckpt-2 deleted by hand: the resumed run's next save (a stop or a timed
    # checkpoint, numbered by its step) deleted ckpt-1, the one it had resumed from, and
    # kept the missing ckpt-2 listed: one readable checkpoint where two were asked for.
    checkpoints, _, _ = saved_twice(tmp_path)
    for path in (tmp_path / "checkpoints").glob("ckpt-2.*"):
        path.unlink()
    assert checkpoints.restore_latest()["step"] == 1
    checkpoints.save({"step": 3}, step=3)
    assert {p.name for p in (tmp_path / "checkpoints").glob("*.index")} == {
        "ckpt-1.index",
        "ckpt-3.index",
    }
    recorded = tf.train.get_checkpoint_state(str(tmp_path / "checkpoints"))
    assert [os.path.basename(p) for p in recorded.all_model_checkpoint_paths] == [
        "ckpt-1",
        "ckpt-3",
    ]


def test_a_checkpoint_listed_in_a_folder_that_is_gone_gives_way_too(tmp_path):
    # An index may name a checkpoint by an absolute path (tf.compat.v1's Saver writes
    # them): in a folder moved or deleted since, it is as missing as a deleted one.
    checkpoints, _, messages = saved_twice(tmp_path)
    directory = str(tmp_path / "checkpoints")
    gone = str(tmp_path / "gone" / "ckpt-9")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Use tf.train.CheckpointManager ..."
        tf.compat.v1.train.update_checkpoint_state(
            directory, gone, all_model_checkpoint_paths=[f"{directory}/ckpt-2", gone]
        )
    assert checkpoints.restore_latest()["step"] == 2
    assert messages == [
        f"cannot read checkpoint {gone}: its files are missing (deleted or lost?); "
        "going on from the one before it, ckpt-2"
    ]


def test_a_truncated_checkpoint_keeps_its_slot_until_it_is_deleted(tmp_path):
    # Its files are kerasmlp's own: it stays listed, so that a later save deletes them.
    checkpoints, _, _ = saved_twice(tmp_path)
    cut_short(tmp_path / "checkpoints" / "ckpt-2")
    assert checkpoints.restore_latest()["step"] == 1
    for step in (3, 4):
        checkpoints.save({"step": step}, step=step)
    assert {p.name for p in (tmp_path / "checkpoints").glob("*.index")} == {
        "ckpt-3.index",
        "ckpt-4.index",
    }


def test_no_readable_checkpoint_is_one_line_naming_the_latest(tmp_path):
    checkpoints, _, _ = saved_twice(tmp_path)
    cut_short(tmp_path / "checkpoints" / "ckpt-2")
    cut_short(tmp_path / "checkpoints" / "ckpt-1")
    with pytest.raises(ResumeError) as raised:
        checkpoints.restore_latest()
    message = str(raised.value)
    assert message.startswith(
        f"cannot read checkpoint {tmp_path / 'checkpoints' / 'ckpt-2'} (truncated or corrupt?): "
    )
    assert message.endswith(f", nor the older ones in {tmp_path / 'checkpoints'}")
    assert "\n" not in message


def test_a_checkpoint_that_does_not_fit_is_refused_and_tensorflows_warnings_dropped(
    tmp_path, caplog
):
    saved_twice(tmp_path)
    other = RunCheckpoints(
        tmp_path / "checkpoints",
        {"weights": tf.Variable(tf.ones((65,)))},
        keep=2,
        writer=SummaryWriter(tmp_path),
    )
    with pytest.raises(ResumeError, match=r"ckpt-2: .*incompatible tensor with shape \(64,\)"):
        other.restore_latest()
    # What TensorFlow logs when the failed restore's objects are deleted (at exit).
    caplog.clear()  # what was logged before (tf.function's retracing notes, in a long session)
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logging.getLogger("tensorflow").warning(
            "Value in checkpoint could not be found in the restored object: (root).save_counter"
        )
        logging.getLogger("tensorflow").warning("another warning")
    assert [record.getMessage() for record in caplog.records] == ["another warning"]


def test_a_checkpoint_that_cannot_be_written_is_one_line_naming_the_path_and_the_cause(tmp_path):
    # A file where TensorFlow makes its temporary folder stands for a full disk (which
    # needs a small tmpfs, and root, to make): the traced write fails the same way,
    # its message wrapped in TensorFlow's function and node names, which go.
    from kerasmlp.runfiles import RunFilesError

    checkpoints, _, _ = saved_twice(tmp_path)
    (tmp_path / "checkpoints" / "ckpt-3_temp").write_text("in the way")
    with pytest.raises(RunFilesError) as raised:
        checkpoints.save({"step": 3}, step=3)
    message = str(raised.value)
    assert message.startswith(f"cannot write a checkpoint in {tmp_path / 'checkpoints'}: ")
    assert f"{tmp_path / 'checkpoints' / 'ckpt-3_temp'}/part-" in message
    assert message.endswith("; Not a directory"), message


def test_a_clock_set_back_still_finds_the_checkpoints(tmp_path, monkeypatch):
    # Resumed where time.time() is an hour behind the saves (another machine, a clock
    # set back): tf.train.CheckpointManager's own list then holds none of them.
    saved_twice(tmp_path)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now - 3600.0)
    weights = tf.Variable(tf.zeros(64))
    checkpoints = RunCheckpoints(
        tmp_path / "checkpoints", {"weights": weights}, keep=2, writer=SummaryWriter(tmp_path)
    )
    assert checkpoints.manager.checkpoints == []  # what went wrong before
    assert checkpoints.restore_latest()["step"] == 2
    np.testing.assert_array_equal(weights.numpy(), np.full(64, 2.0))


def test_events_of_a_run_resumed_on_a_clock_behind_survive_the_next_resume(tmp_path, monkeypatch):
    # Step 1 written, checkpoint, step 2 written (then dropped). Resumed on a clock an
    # hour behind: step 2 written, checkpoint, step 3 written (then dropped). Resumed on
    # the right clock again: steps 1 and 2 stay. By the clock alone, step 1 (written an
    # hour "after" the second checkpoint) went too.
    from tests import events

    real = time.time
    variable = tf.Variable(0)

    def attempt():
        writer = SummaryWriter(tmp_path)
        checkpoints = RunCheckpoints(
            tmp_path / "checkpoints", {"v": variable}, keep=2, writer=writer
        )
        return writer, checkpoints

    writer, checkpoints = attempt()
    writer.scalars("train", 1, {"loss": 1.0})
    checkpoints.save({"step": 1}, step=1)
    writer.scalars("train", 2, {"loss": 2.0})
    writer.close()

    monkeypatch.setattr(time, "time", lambda: real() - 3600.0)
    writer, checkpoints = attempt()
    assert checkpoints.restore_latest()["step"] == 1
    writer.scalars("train", 2, {"loss": 2.0})
    checkpoints.save({"step": 2}, step=2)
    writer.scalars("train", 3, {"loss": 3.0})
    writer.close()

    monkeypatch.setattr(time, "time", real)
    writer, checkpoints = attempt()
    assert checkpoints.restore_latest()["step"] == 2
    writer.close()
    assert events.scalars(tmp_path / "train")["loss"] == [(1, 1.0), (2, 2.0)]


def test_a_tf_data_iterator_is_saved_without_tensorflows_graph_options_warning(tmp_path):
    # With data.cache: false, the run's batches are a tf.data iterator. Tracing the write
    # serialized it in graph mode, and TensorFlow's UserWarning on Dataset.options() went to
    # the console of every such run ("To make it possible to preserve tf.data options ...").
    iterator = iter(tf.data.Dataset.range(10))
    checkpoints = RunCheckpoints(
        tmp_path / "checkpoints",
        {"batches": iterator},
        keep=1,
        writer=SummaryWriter(tmp_path),
    )
    next(iterator)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checkpoints.save({"step": 1}, step=1)
    assert [str(w.message) for w in caught] == []
    assert int(next(iterator)) == 1
    checkpoints.restore_latest()
    assert int(next(iterator)) == 1  # the position saved: one element taken
