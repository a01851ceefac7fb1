"""Tests for `kerasmlp-train`: help without TensorFlow, a real run, and one-line refusals."""

import io
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds
from click.testing import CliRunner

from kerasmlp import cli
from tests.conftest import REPO_ROOT

# The console script installed next to this Python (the README's `pip install -e .`).
SCRIPT = pathlib.Path(sys.executable).with_name("kerasmlp-train")


def run_script(*args, cwd=REPO_ROOT, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args))


def test_help_lists_the_options_without_importing_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerasmlp.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\n"
        "print(result.exit_code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
        "print(result.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    first, help_text = out.stdout.split("\n", 1)
    assert first == "0 False False"
    for option in ("--config", "-c", "--set", "--logdir", "--run-name", "--epochs", "--seed"):
        assert option in help_text


def test_console_script_is_installed():
    assert SCRIPT.exists(), f"{SCRIPT} missing: install with `pip install -e .`"
    out = run_script("--help", timeout=60)
    assert out.returncode == 0 and "Train a Dense network" in out.stdout


def test_a_real_run_through_the_console_script(tmp_path):
    out = run_script(
        "--epochs",
        "2",
        "--seed",
        "3",
        "--logdir",
        str(tmp_path / "logs"),
        "--run-name",
        "smoke",
        "--set",
        f"data.data_dir={tmp_path / 'tfds'}",
        "--set",
        "train.log_every_steps=20",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("preparing spirals ... done in ")  # the fresh data_dir
    lines = lines[lines.index("training 2 epochs x 57 steps") :]  # 3600 training examples / 64
    # Not a terminal: plain fixed-width lines, then the summary.
    assert lines[1].startswith("train      | step      20 | loss ")
    assert lines[-3].startswith("test       | loss ") and "| accuracy " in lines[-3]
    assert lines[-2] == f"run directory: {tmp_path / 'logs' / 'smoke'}"
    assert lines[-1] == f"see it with:   tensorboard --logdir {tmp_path / 'logs'}"
    run = tmp_path / "logs" / "smoke"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2.0
    assert "seed: 3" in (run / "config.yaml").read_text()


def test_a_default_run_prints_only_kerasmlp_lines(tmp_path):
    # As a user runs it: no TF_CPP_MIN_LOG_LEVEL of the tests' own, a fresh data_dir.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    args = ["--epochs", "1", "--logdir", str(tmp_path / "logs")]
    args += ["--set", f"data.data_dir={tmp_path / 'tfds'}"]
    out = subprocess.run(
        [str(SCRIPT), *args, "--run-name", "quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # No TensorFlow start-up block, no absl warning, no TFDS progress bar.
    assert out.stderr == ""
    patterns = [
        r"preparing spirals \.\.\. done in \d+\.\d s",
        r"training 1 epochs x 57 steps",
        r"train      \| step      57 \| loss \d\.\d{4} \| lr \d\.\de-\d\d",
        r"epoch 1    \| step      57 \| train_loss .* \| validation_accuracy \d\.\d{4}",
        r"test       \| loss \d\.\d{4} \| accuracy \d\.\d{4}",
        re.escape(f"run directory: {tmp_path / 'logs' / 'quiet'}"),
        re.escape(f"see it with:   tensorboard --logdir {tmp_path / 'logs'}"),
    ]
    lines = out.stdout.splitlines()
    assert len(lines) == len(patterns), out.stdout
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)

    # --verbose brings TensorFlow's own log back (the data are prepared by now).
    out = subprocess.run(
        [str(SCRIPT), *args, "--run-name", "verbose", "--verbose"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr != ""  # e.g. "WARNING: All log messages before absl::InitializeLog() ..."
    assert out.stdout.splitlines()[0] == "training 1 epochs x 57 steps"


# Each user mistake, and the words its one line on stderr must hold.
MISTAKES = [
    (["--set", "model.activation=rleu"], "Did you mean 'relu'?"),
    (
        ["--set", "train.batch_size=0"],
        "train.batch_size must be >= 1. Received: train.batch_size=0",
    ),
    (["--set", "oops"], "--set expects dotted.key=value"),
    (["--config", "missing.yaml"], "Config file not found: missing.yaml"),
    (["--run-name", "../escape"], "--run-name must be a plain folder name"),
    (["--run-name", "a/b"], "--run-name must be a plain folder name"),
    (["--epochs", "0"], "train.epochs must be >= 1. Received: train.epochs=0"),
]


@pytest.mark.parametrize("args,message", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_user_mistakes_exit_2_with_one_line(args, message, tmp_path):
    result = invoke("--logdir", str(tmp_path), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("kerasmlp-train: error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


def test_a_bad_config_file_through_the_real_script(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("optimizer:\n  learning_rate:\n    decay_rate: 2\n")
    out = run_script("-c", str(config), "--logdir", str(tmp_path / "logs"), timeout=60)
    assert out.returncode == 2
    assert out.stderr == (
        "kerasmlp-train: error: optimizer.learning_rate.decay_rate must be in (0.0, 1.0]. "
        "Received: optimizer.learning_rate.decay_rate=2.0\n"
    )


def test_an_existing_run_is_not_written_over(tmp_path):
    run = tmp_path / "logs" / "mine"
    run.mkdir(parents=True)
    (run / "notes.txt").write_text("keep me")
    result = invoke("--logdir", str(tmp_path / "logs"), "--run-name", "mine")
    assert result.exit_code == 2
    assert "already holds files" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_offline_without_data_fails_fast_naming_the_keys(tmp_path, monkeypatch):
    from kerasmlp import data

    probed = []

    def offline(urls, timeout=data.PROBE_TIMEOUT):
        probed.extend(urls)
        return sorted({u.split("/")[2] for u in urls})

    monkeypatch.setattr(data, "probe_download_hosts", offline)
    result = invoke(
        "--logdir",
        str(tmp_path / "logs"),
        "--set",
        "data.name=mnist",
        "--set",
        f"data.data_dir={tmp_path / 'tfds'}",
    )
    assert probed, "the download host was not probed"
    assert result.exit_code == 2
    assert "data.manual_dir" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()  # a refused run leaves no folder behind


def test_binary_crossentropy_on_ten_classes_is_refused_before_the_run_starts(tmp_path):
    def run(dataset, run_name, *extra):
        return invoke(
            "--logdir",
            str(tmp_path / "logs"),
            "--set",
            "loss.name=binary_crossentropy",
            "--set",
            f"data.name={dataset}",
            "--set",
            f"data.data_dir={tmp_path / 'tfds'}",
            "--run-name",
            run_name,
            *extra,
        )

    result = run("gaussians", "r", "--epochs", "1")
    assert result.exit_code == 0, result.output  # gaussians has 2 classes: fine
    with tfds.testing.mock_data(num_examples=20):
        result = run("mnist", "ten")
    assert result.exit_code == 2
    assert "needs a dataset with 2 classes; this one has 10" in result.stderr
    assert not (tmp_path / "logs" / "ten").exists()


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _screen(written: str) -> list[str]:
    """The lines a terminal shows for `written`: each line's text after its last carriage return."""
    return [line.rsplit("\r", 1)[-1].replace("\x1b[K", "") for line in written.split("\n")]


def test_progress_bar_leaves_one_line_per_epoch_with_that_epochs_figures():
    stream = _FakeTerminal()
    bar = cli._BarReporter(file=stream)
    bar.start(epochs=2, steps_per_epoch=10)
    bar.train_progress(step=5, epoch=1, logs={"loss": 0.5, "learning_rate": 0.01})
    drawn = _screen(stream.getvalue())[-1]
    assert drawn.startswith("epoch 1/2 [##########----------] 5/10 | loss 0.5000 | ETA ")
    bar.train_progress(step=10, epoch=1, logs={"loss": 0.45, "learning_rate": 0.01})
    bar.epoch_end(
        step=10,
        epoch=1,
        logs={
            "train_loss": 0.4,
            "train_accuracy": 0.8,
            "validation_loss": 0.3,
            "validation_accuracy": 0.9,
        },
    )
    bar.train_progress(step=15, epoch=2, logs={"loss": 0.25, "learning_rate": 0.01})
    # While epoch 2 runs: epoch 1's line stays, and the bar shows epoch 2's current
    # loss, not epoch 1's validation figures.
    screen = _screen(stream.getvalue())
    assert screen[0] == (
        "epoch 1/2 | loss 0.4000 | accuracy 0.8000 | validation_loss 0.3000 | "
        "validation_accuracy 0.9000"
    )
    assert screen[1].startswith("epoch 2/2 [##########----------] 5/10 | loss 0.2500 | ETA ")
    assert "validation" not in screen[1]
    bar.train_progress(step=20, epoch=2, logs={"loss": 0.2, "learning_rate": 0.01})
    bar.epoch_end(
        step=20,
        epoch=2,
        logs={
            "train_loss": 0.21,
            "train_accuracy": 0.85,
            "validation_loss": 0.2,
            "validation_accuracy": 0.95,
        },
    )
    bar.end({})
    assert _screen(stream.getvalue()) == [
        screen[0],
        "epoch 2/2 | loss 0.2100 | accuracy 0.8500 | validation_loss 0.2000 | "
        "validation_accuracy 0.9500",
        "",  # the cursor waits at the start of a fresh line
    ]


def test_progress_bar_of_a_resumed_run_and_one_that_fails():
    stream = _FakeTerminal()
    bar = cli._BarReporter(file=stream)
    bar.start(epochs=4, steps_per_epoch=10, initial_step=20)  # resumed after epoch 2
    bar.train_progress(step=25, epoch=3, logs={"loss": 0.5})
    assert _screen(stream.getvalue())[-1].startswith("epoch 3/4 [##########----------] 5/10 |")
    bar.close()  # an error follows: it must start on a line of its own
    assert stream.getvalue().endswith("\n")
    bar.close()
    assert stream.getvalue().count("\n") == 1
