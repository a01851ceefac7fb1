"""Tests for kerasmlp-export: a SavedModel on raw columns, loaded without kerasmlp.

The run is a binary CSV trained a few epochs with binary cross-entropy (a
sigmoid head); the reference is `load_run(...).predict_proba` in this process.
"""

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from kerasmlp import console, export, inference
from kerasmlp.inference import load_run
from tests.conftest import COLLECTOR_OFF, invoke_train


def test_export_serves_probabilities_on_raw_columns(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["size,shape (2d),ok"]  # a header a signature cannot carry
    for i in range(60):
        size = rng.normal()
        shape = ["round", "square"][i % 2]
        lines.append(f"{'' if i % 8 == 0 else f'{size:.3f}'},{shape},{int(size > 0)}")
    data = tmp_path / "b.csv"
    data.write_text("\n".join(lines) + "\n")
    overrides = [
        "data.name=csv",
        f"data.path={data}",
        "data.label=ok",
        "loss.name=binary_crossentropy",
        "metrics=[accuracy, auc]",
        "train.class_weight=balanced",
        "train.epochs=15",
        "model.hidden_units=[8]",
        "train.image_every_epochs=0",
        "train.histogram_every_epochs=0",
        # Served and in-process probabilities agree to 1e-5 in float32, whatever `auto`
        # would pick (in bfloat16 they move with the batch's shape by ~1e-3).
        "train.precision=float32",
    ]
    args = ["--logdir", str(tmp_path / "logs"), "--run-name", "b"]
    result = invoke_train(args + [a for o in overrides for a in ("--set", o)])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "logs" / "b"
    # The run's test_auc against scikit-learn's on the saved model's test predictions.
    run = load_run(run_dir)
    inputs, labels = run.read_test_split()
    probability = run.probabilities(run.outputs(inputs))[:, 1]
    test_auc = json.loads((run_dir / "metrics.json").read_text())["test_auc"]
    assert test_auc == pytest.approx(roc_auc_score(labels, probability), abs=0.02)
    out = tmp_path / "served"
    result = CliRunner().invoke(export.main, [str(run_dir), str(out)])
    assert result.exit_code == 0, result.output

    columns = {"size": [0.8, -1.2, float("nan")], "shape (2d)": ["round", "square", "oval"]}
    expected = run.predict_proba(columns)
    assert expected.shape == (3, 2)  # the sigmoid head as [1 - p, p]
    script = textwrap.dedent(
        f"""
        import json, sys
        import tensorflow as tf
        served = tf.saved_model.load({str(out)!r})
        assert "kerasmlp" not in sys.modules
        inputs = {{
            "size": tf.constant([[0.8], [-1.2], [float("nan")]]),
            "shape (2d)": tf.constant([["round"], ["square"], ["oval"]]),
        }}
        print(json.dumps(served.serve(inputs).numpy().tolist()))
        # What TensorFlow Serving calls: the same inputs keyed by the model's input names
        # (the README: `shape (2d)` becomes `shape__2d_`).
        signature = served.signatures["serving_default"]
        keys = sorted(signature.structured_input_signature[1])
        (out,) = signature(size=inputs["size"], shape__2d_=inputs["shape (2d)"]).values()
        print(json.dumps([keys, out.numpy().tolist()]))
        # In Keras 3 (the README): a layer on the `serve` endpoint, the same raw columns.
        import keras
        layer = keras.layers.TFSMLayer({str(out)!r}, call_endpoint="serve")
        print(json.dumps(keras.ops.convert_to_numpy(layer(inputs)).tolist()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", COLLECTOR_OFF + script], capture_output=True, text=True, check=True
    )
    served = np.array(json.loads(done.stdout.strip().splitlines()[-3]))
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
    keys, by_signature = json.loads(done.stdout.strip().splitlines()[-2])
    assert keys == ["shape__2d_", "size"]
    np.testing.assert_allclose(by_signature, expected, rtol=1e-5, atol=1e-6)
    by_keras = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(by_keras, expected, rtol=1e-5, atol=1e-6)

    result = CliRunner().invoke(export.main, [str(run_dir), str(out)])
    assert result.exit_code == 2 and "already holds files" in result.output

    # As a user runs it: no TF_CPP_MIN_LOG_LEVEL of the tests' own. TensorFlow's C++
    # start-up lines (absl::InitializeLog, cuda drivers, cuInit) once came first on stderr.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "kerasmlp.export", str(run_dir), str(tmp_path / "quiet")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    assert done.stdout == (
        f"saved model: {tmp_path / 'quiet'} (endpoint 'serve': raw inputs -> probabilities)\n"
    )

    # A folder that cannot be made: one line, before TensorFlow starts, nothing written.
    blocker = tmp_path / "afile"
    blocker.write_text("keep")
    result = CliRunner().invoke(export.main, [str(run_dir), str(blocker / "served")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"kerasmlp-export: error: cannot make {blocker / 'served'}: {blocker} is a file, "
        "not a folder\n"
    )
    assert blocker.read_text() == "keep"
    # One that TensorFlow cannot write (a read-only disk): one line, no half-written folder.
    import tensorflow as tf

    def read_only(model, filepath):
        pathlib.Path(filepath, "variables").mkdir(parents=True)  # as far as it got
        raise tf.errors.PermissionDeniedError(None, None, f"{filepath}; Read-only file system")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inference, "export_saved_model", read_only)
        result = CliRunner().invoke(export.main, [str(run_dir), str(tmp_path / "ro")])
    assert result.exit_code == 1 and "Traceback" not in result.output  # as kerasmlp-train
    assert result.stderr == (
        f"kerasmlp-export: error: cannot write {tmp_path / 'ro'}: {tmp_path / 'ro'}; "
        "Read-only file system\n"
    )
    assert not (tmp_path / "ro").exists()
    # So too in an empty folder given (left empty, so that the command can run again)
    # and under folders the command made (gone with it).
    (tmp_path / "empty").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inference, "export_saved_model", read_only)
        for where in (tmp_path / "empty", tmp_path / "new" / "a" / "served"):
            result = CliRunner().invoke(export.main, [str(run_dir), str(where)])
            assert result.exit_code == 1 and "Read-only file system" in result.stderr
    assert list((tmp_path / "empty").iterdir()) == []
    assert not (tmp_path / "new").exists()
    # Its closing line on a full stdout (tests/test_predict.py runs one on /dev/full):
    # one line, exit 1, and the SavedModel, written whole, stays.
    echo = export.click.echo

    def full_stdout(message, err=False, **kwargs):
        if not err:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        echo(message, err=err, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export.click, "echo", full_stdout)
        patch.setattr(console, "silence_stdout", lambda: None)  # the test's own stdout stays
        result = CliRunner().invoke(export.main, [str(run_dir), str(tmp_path / "full")])
    assert result.exit_code == 1
    assert result.stderr == (
        "kerasmlp-export: error: cannot write to <stdout>: No space left on device\n"
    )
    assert (tmp_path / "full" / "saved_model.pb").is_file()


def test_export_verbose_starts_tensorflow_verbose(tmp_path, monkeypatch):
    # As kerasmlp-predict's (test_predict.py): the flag reaches start_tensorflow; the
    # run folder is refused after it, so no model is needed.
    started = []
    monkeypatch.setattr(export, "start_tensorflow", lambda **kw: started.append(kw))
    for flag in ([], ["--verbose"]):
        CliRunner().invoke(export.main, [str(tmp_path / "no-run"), str(tmp_path / "out"), *flag])
    assert started == [{"verbose": False}, {"verbose": True}]


def test_export_says_a_regression_run_serves_values(tmp_path, monkeypatch):
    # The closing line names what `serve` returns: a regression run's value (the
    # README: "the value, for regression"), not probabilities. No model is written.
    class Run:
        task = "regression"

        def probability_model(self):
            return None

    monkeypatch.setattr(inference, "load_run", lambda run_dir: Run())
    monkeypatch.setattr(inference, "export_saved_model", lambda model, path: None)
    result = CliRunner().invoke(export.main, [str(tmp_path / "run"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"saved model: {tmp_path / 'out'} (endpoint 'serve': raw inputs -> values)\n"
    )


class _FakeRun:
    """What kerasmlp-export reads of a run, without one."""

    task = "classification"

    def probability_model(self):
        return None


def _interrupted_export(monkeypatch, stop):
    """kerasmlp-export whose write makes a folder and a file, as far as it got, then
    calls `stop`."""

    def write(model, path):
        pathlib.Path(path, "variables").mkdir(parents=True)
        pathlib.Path(path, "saved_model.pb").write_bytes(b"half")
        stop()

    monkeypatch.setattr(inference, "load_run", lambda run_dir: _FakeRun())
    monkeypatch.setattr(inference, "export_saved_model", write)


def test_ctrl_c_while_exporting_leaves_nothing_half_written(tmp_path, monkeypatch):
    # A KeyboardInterrupt in the write left the folders and files begun, and the same
    # command then refused the folder as holding files; a failed write removed them.
    def ctrl_c():
        raise KeyboardInterrupt

    _interrupted_export(monkeypatch, ctrl_c)
    (tmp_path / "empty").mkdir()
    for where, removed in (
        (tmp_path / "new" / "served", f"removed {tmp_path / 'new'}"),
        (tmp_path / "empty", f"emptied {tmp_path / 'empty'} again"),
    ):
        result = CliRunner().invoke(export.main, [str(tmp_path / "run"), str(where)])
        assert result.exit_code == 130  # 128 + SIGINT, as kerasmlp-train's
        assert result.stderr == (
            f"kerasmlp-export: interrupted; {removed} (the SavedModel was unfinished)\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert list((tmp_path / "empty").iterdir()) == []

    # Stopped before the first file (building the model to export): nothing to remove.
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(_FakeRun, "probability_model", interrupted)
    result = CliRunner().invoke(export.main, [str(tmp_path / "run"), str(tmp_path / "new")])
    assert result.exit_code == 130
    assert result.stderr == "kerasmlp-export: interrupted before anything was written\n"
    assert not (tmp_path / "new").exists()


def test_sigterm_while_exporting_leaves_nothing_half_written(tmp_path, monkeypatch):
    # SIGTERM's default action ended the process with the SavedModel half written; now it
    # is handled as Ctrl-C is, exit 143 (128 + SIGTERM) as kerasmlp-train's, and the
    # handler before is back afterwards.
    def sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends

    _interrupted_export(monkeypatch, sigterm)
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(export.main, [str(tmp_path / "run"), str(tmp_path / "new")])
    assert result.exit_code == 143, result.output
    assert result.stderr == (
        f"kerasmlp-export: interrupted; removed {tmp_path / 'new'} "
        "(the SavedModel was unfinished)\n"
    )
    assert not (tmp_path / "new").exists()
    assert signal.getsignal(signal.SIGTERM) is before
