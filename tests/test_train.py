"""Tests for kerasmlp.train: the run directory, the probe batch, resume checks, the config."""

import pytest
import tensorflow as tf

from kerasmlp.config import ConfigError, load_config
from kerasmlp.train import RunDirectoryExistsError, _first_batch, prepare_run_dir


def test_run_dir_is_never_written_over(tmp_path):
    run = tmp_path / "run"
    assert prepare_run_dir(run) == run  # new: created
    assert prepare_run_dir(run) == run  # empty: fine
    (run / "mine.txt").write_text("user data")
    with pytest.raises(RunDirectoryExistsError, match="already holds files"):
        prepare_run_dir(run)
    assert (run / "mine.txt").read_text() == "user data"


def test_the_probe_batch_reads_its_cached_split_to_the_end():
    # An iterator left after one batch of a cached split has left TensorFlow's
    # in-memory cache holding that batch alone (validation on 64 of 400 examples).
    read = []

    def note(i):
        read.append(int(i))
        return i

    dataset = (
        tf.data.Dataset.range(10)
        .map(lambda i: tf.numpy_function(note, [i], tf.int64))
        .cache()
        .batch(4)
    )
    assert _first_batch(dataset).numpy().tolist() == [0, 1, 2, 3]
    assert read == list(range(10))
    # The cache is complete: the next pass is served from it, all of it.
    assert [b.numpy().tolist() for b in dataset] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert read == list(range(10))


@pytest.mark.parametrize(
    "step,epochs,refused",
    [
        (171, 3, None),  # 3 x 57: epoch 3 done exactly, the run finishes at once
        (200, 3, "in epoch 4); --epochs must be at least 4"),  # 29 steps into epoch 4
        (228, 3, "in epoch 4); --epochs must be at least 4"),  # 4 epochs done
        (200, 4, None),
    ],
)
def test_resume_with_fewer_epochs_than_trained_is_refused(step, epochs, refused):
    from kerasmlp.controller import Controller
    from kerasmlp.runfiles import ResumeError
    from kerasmlp.train import _check_epochs_cover

    loop = Controller(None, epochs=epochs, steps_per_epoch=57, log_every_steps=10)
    loop.step, loop.epoch, loop.step_in_epoch = step, step // 57, step % 57
    if refused is None:
        _check_epochs_cover(loop, "run")
        return
    with pytest.raises(ResumeError) as raised:
        _check_epochs_cover(loop, "run")
    assert str(raised.value) == (
        f"--resume run --epochs 3: the run has already trained past epoch 3 ({step} steps of "
        f"57 an epoch, {refused}"
    )


def test_train_and_evaluate_checks_a_config_made_without_load_config(tmp_path):
    # dataclasses.replace skips load_config's checks: a negative rate trained uphill and
    # wrote a config.yaml that load_run then refused; a dict failed on an attribute.
    import dataclasses

    from kerasmlp.train import train_and_evaluate

    config = load_config(None, ["train.epochs=1"])
    rate = dataclasses.replace(config.optimizer.learning_rate, initial_learning_rate=-0.01)
    bad = dataclasses.replace(
        config, optimizer=dataclasses.replace(config.optimizer, learning_rate=rate)
    )
    with pytest.raises(ConfigError, match=r"initial_learning_rate must be > 0\.0\. Received"):
        train_and_evaluate(bad, tmp_path / "run")
    with pytest.raises(TypeError, match=r"config must be a kerasmlp.Config .* Received: dict"):
        train_and_evaluate(config.to_dict(), tmp_path / "run")
    assert not (tmp_path / "run").exists()
