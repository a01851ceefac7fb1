"""Tests for `kerasmlp-train`: help without TensorFlow, a real run, and one-line refusals."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from kerasmlp import cli
from kerasmlp.precision import largest_layer_weights, resolve_precision
from tests.conftest import REPO_ROOT, SHARED_DATA, invoke_train

# The console script installed next to this Python (the README's `pip install -e .`).
SCRIPT = pathlib.Path(sys.executable).with_name("kerasmlp-train")


def run_script(*args, cwd=REPO_ROOT, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def invoke(*args):
    return invoke_train(list(args))


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
    for option in (
        "--config",
        "-c",
        "--set",
        "--logdir",
        "--run-name",
        "--epochs",
        "--seed",
        "--version",
    ):
        assert option in help_text


def test_console_script_is_installed():
    assert SCRIPT.exists(), f"{SCRIPT} missing: install with `pip install -e .`"
    out = run_script("--help", timeout=60)
    assert out.returncode == 0 and "Train a Dense network" in out.stdout


def test_a_two_epoch_run_prints_its_lines_and_writes_its_run(tmp_path):
    # In this process; the console script runs in test_a_default_run_prints_only_kerasmlp_lines.
    result = invoke(
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
        "--set",
        "seed=3",  # the value of --seed too: no conflict
    )
    assert result.exit_code == 0, result.output[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("preparing spirals ... done in ")  # the fresh data_dir
    lines = lines[lines.index("training 2 epochs x 57 steps") :]  # 3600 training examples / 64
    # Not a terminal: plain fixed-width lines, then the summary.
    assert lines[1].startswith("train      | step      20 | loss ")
    # The interval's loss (TensorBoard's train/loss at that step) and the rate; the
    # epoch's running loss is the terminal bar's alone.
    assert [part.split()[0] for part in lines[1].split(" | ")[2:]] == ["loss", "lr"]
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
        r"training 1 epoch x 57 steps",
        r"train      \| step      57 \| loss \d\.\d{4} \| lr \d\.\de-\d\d",
        r"epoch 1    \| step      57 \| train_loss .* \| validation_accuracy \d\.\d{4}",
        r"test       \| loss \d\.\d{4} \| accuracy \d\.\d{4}",
        re.escape(f"run directory: {tmp_path / 'logs' / 'quiet'}"),
        re.escape(f"see it with:   tensorboard --logdir {tmp_path / 'logs'}"),
    ]
    # `train.precision: auto` says what it chose where that is a mixed precision
    # (on a CPU with AMX, say); float32 is silent.
    chosen = resolve_precision("auto", largest_layer_weights(2, [32, 32, 32]))  # the default model
    if chosen.dtype_policy is not None:
        patterns.insert(1, re.escape(chosen.describe()))
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
    first = out.stdout.splitlines()[1 if chosen.dtype_policy is not None else 0]
    assert first == "training 1 epoch x 57 steps"


# Each user mistake, and the words its one line on stderr must hold.
MISTAKES = [
    (["--set", "model.activation=rleu"], "Did you mean 'relu'?"),
    (
        ["--set", "train.batch_size=0"],
        "train.batch_size must be >= 1. Received: train.batch_size=0",
    ),
    (["--set", "oops"], "--set expects dotted.key=value"),
    (
        ["--set", "optimizer.momentum=0.9"],
        "optimizer.momentum applies to rmsprop and sgd; optimizer.name is adam: remove it "
        "from the config, or set it back to its default (optimizer.momentum=0.0). "
        "Received: optimizer.momentum=0.9",
    ),
    (
        ["--set", "optimizer.clipnorm=1", "--set", "optimizer.clipvalue=0.5"],
        "Only one of optimizer.clipnorm, optimizer.global_clipnorm and optimizer.clipvalue",
    ),
    (["--config", "missing.yaml"], "Config file not found: missing.yaml"),
    (["--run-name", "../escape"], "--run-name must be a plain folder name"),
    (["--run-name", "a/b"], "--run-name must be a plain folder name"),
    # A name read from a CRLF file: the folder 'exp1\r' lists as exp1, which --resume misses.
    (["--run-name", "exp1\r"], "--run-name must be a plain folder name"),
    (["--run-name", "a\nb"], "Received: --run-name='a\\nb'"),
    (["--run-name", " "], "control characters or spaces at either end). Received: --run-name=' '"),
    # As argv brings a Latin-1 byte (os.fsdecode(b"r\xff")): TensorFlow took the folder's
    # name as UTF-8 and failed with a traceback, after the run folder was made.
    (["--run-name", "r\udcff"], r"must be UTF-8 text: TensorFlow takes UTF-8 paths only."),
    (["--epochs", "0"], "train.epochs must be >= 1. Received: train.epochs=0"),
    # A shortcut and a --set that disagree: the shortcut, applied last, won unseen.
    (
        ["--epochs", "1", "--set", "train.epochs=2"],
        "--epochs 1 and --set train.epochs=2 give train.epochs two values; keep one of them",
    ),
    (["--seed", "3", "--set", "seed=4"], "--seed 3 and --set seed=4 give seed two values"),
    (
        ["--strategy", "mirrored", "--set", "distribute={strategy: one_device}"],
        "--strategy mirrored and --set distribute={strategy: one_device} give "
        "distribute.strategy two values",
    ),
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


def test_ctrl_c_while_tensorflow_starts_exits_130_in_one_line(tmp_path, monkeypatch):
    from kerasmlp import console

    def interrupted():
        raise KeyboardInterrupt  # as Ctrl-C lands during `import tensorflow`

    monkeypatch.setattr(console, "import_tensorflow_quietly", interrupted)
    result = invoke("--logdir", str(tmp_path / "logs"))
    # 130 as for a run interrupted later (128 + SIGINT), not click's "Aborted!" and 1.
    assert result.exit_code == 130
    assert result.stderr == "interrupted while TensorFlow started, before training\n"


def test_resume_of_a_folder_that_is_not_a_run_writes_nothing(tmp_path):
    # A project folder: the user's commented config and another run kept inside.
    project = tmp_path / "proj"
    (project / "old-run" / "train").mkdir(parents=True)
    config = "# my notes\nseed: 0\n"
    (project / "config.yaml").write_text(config)
    (project / "old-run" / "train" / "events.out.tfevents.1.host").write_bytes(b"x")
    before = sorted(project.rglob("*"))
    result = invoke("--resume", str(project))
    assert result.exit_code == 2
    assert result.stderr == (
        f"kerasmlp-train: error: --resume {project}: not a kerasmlp run (it has no readable "
        f"status.json); to train from its config.yaml, start a new run: "
        f"kerasmlp-train -c {project / 'config.yaml'}\n"
    )
    assert sorted(project.rglob("*")) == before
    assert (project / "config.yaml").read_text() == config


def test_a_second_resume_of_a_run_being_resumed_is_refused_and_writes_nothing(tmp_path):
    # Two `--resume` of one interrupted run started together: each saw it interrupted
    # (the first writes `running` only once its data and checkpoint are loaded), and both
    # trained into the one folder. The first holds the folder (`flock`) from its check on:
    # here the test holds it, as the first process would.
    import fcntl

    from kerasmlp.config import load_config
    from kerasmlp.runfiles import RunStatus

    run = tmp_path / "logs" / "r"
    run.mkdir(parents=True)
    config = load_config(None, ["train.epochs=1", "model.hidden_units=[4]"])
    (run / "config.yaml").write_text(config.to_yaml())
    RunStatus(run).update("interrupted")  # before its first checkpoint
    before = _tree(run)
    held = os.open(run, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = invoke("--resume", str(run))
    finally:
        os.close(held)
    assert result.exit_code == 2, result.output[-2000:]
    assert result.stderr == (
        f"kerasmlp-train: error: --resume {run}: another process is resuming this run now; "
        "wait for it to end, or stop it first (Ctrl-C or kill -TERM saves a checkpoint)\n"
    )
    assert _tree(run) == before


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


# --- bad input and edges, through the installed console script -------------------


def _write(path: pathlib.Path, content) -> str:
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return str(path)


def _file_as_logdir(tmp):
    return ["--logdir", _write(tmp / "logs", "not a folder")]


def _file_as_run_dir(tmp):
    (tmp / "logs").mkdir()
    _write(tmp / "logs" / "r", "not a folder")
    return ["--run-name", "r"]


def _dangling_run_dir(tmp):
    (tmp / "logs").mkdir()
    (tmp / "logs" / "r").symlink_to(tmp / "nowhere")
    return ["--run-name", "r"]


def _taken_run_dir(tmp):
    (tmp / "logs" / "r").mkdir(parents=True)
    _write(tmp / "logs" / "r" / "notes.txt", "keep me")
    return ["--run-name", "r"]


def _dot_file_run_dir(tmp):
    # A dot file alone (an editor's .keep, a sync tool's marker) still makes the folder taken.
    (tmp / "logs" / "r").mkdir(parents=True)
    _write(tmp / "logs" / "r" / ".keep", "mine")
    return ["--run-name", "r"]


def _taken_sweep_point(tmp):
    (tmp / "logs" / "r" / "00-seed=1").mkdir(parents=True)
    _write(tmp / "logs" / "r" / "00-seed=1" / "notes.txt", "keep me")
    return ["--run-name", "r", "--sweep", _write(tmp / "s.yaml", "seed: [1, 2]\n")]


def _config(name, content):
    return lambda tmp: ["-c", _write(tmp / name, content)]


# (id, the arguments (or a function of tmp_path that prepares files and returns
# them), the words the one line on stderr must hold). --logdir is tmp_path/logs
# unless the arguments set it.
EDGES = [
    ("binary-config", _config("bin.yaml", bytes(range(256))), "bin.yaml is a binary file"),
    (
        "latin-1-config",
        _config("l1.yaml", "seed: 1 # caf\u00e9\n".encode("latin-1")),
        "l1.yaml is not UTF-8 text: byte 0xe9 on line 1",
    ),
    (
        "deep-config",
        _config("deep.yaml", "seed: " + "[" * 5000),
        "deep.yaml line 1: not valid YAML: nested deeper than 32 levels",
    ),
    (
        "deep-set",
        ["--set", "seed=" + "[" * 5000],
        "--set seed: not valid YAML: nested deeper than 32 levels",
    ),
    (
        "syntax-error-line",
        _config("x.yaml", "seed: 1\nmodel:\n  dropout: [0.1\n"),
        "x.yaml line 4: not valid YAML: while parsing a flow sequence (line 3)",
    ),
    (
        "duplicate-section",
        _config("dup.yaml", "model:\n  dropout: 0.1\nmodel:\n  activation: tanh\n"),
        "dup.yaml line 3: not valid YAML: duplicate key 'model' (first on line 1)",
    ),
    (
        "duplicate-sweep-key",
        lambda tmp: ["--sweep", _write(tmp / "s.yaml", "seed: [1]\nseed: [2]\n")],
        "s.yaml line 2: not valid YAML: duplicate key 'seed'",
    ),
    (
        "epochs-1e20",
        ["--epochs", str(10**20)],
        f"train.epochs must be <= 100000. Received: train.epochs={10**20}",
    ),
    (
        "batch-1e20",
        ["--set", f"train.batch_size={10**20}"],
        f"train.batch_size must be <= 1000000. Received: train.batch_size={10**20}",
    ),
    (
        "seed-2**32",
        ["--seed", "4294967296"],
        "seed must be < 4294967296. Received: seed=4294967296",
    ),
    (
        "decay-steps-1e20",
        ["--set", f"optimizer.learning_rate.decay_steps={10**20}"],
        "decay_steps must be <= 1000000000.",
    ),
    (
        "model-beyond-memory",
        ["--set", "model.hidden_units=[1000000, 1000000, 1000000]"],
        # By hand: widths 2 -> 1e6 -> 1e6 -> 1e6 -> 2, each layer (fan_in + 1) * fan_out.
        "model.hidden_units=[1000000, 1000000, 1000000] cannot fit in memory: "
        f"{3 * 10**6 + 2 * (10**6 + 1) * 10**6 + (10**6 + 1) * 2:,} parameters x 4 bytes x 4",
    ),
    (
        "long-list-cut",
        ["--set", "model.dropout=[" + ", ".join(["0.5"] * 300) + "]"],
        "model.dropout must be a number. Received: model.dropout=[0.5, 0.5,",
    ),
    ("long-name-cut", ["--set", "model.activation=" + "r" * 3000], "Unknown activation 'rrrr"),
    (
        "top5-on-2-classes",
        ["--set", "metrics=[top5_accuracy]"],
        "top5_accuracy is always 1 with 2 classes (data.name='spirals')",
    ),
    (
        "bce-on-mnist",
        ["--set", "data.name=mnist", "--set", "loss.name=binary_crossentropy"],
        "needs a dataset with 2 classes; this one has 10",
    ),
    ("logdir-is-a-file", _file_as_logdir, "logs is not a folder"),
    ("run-dir-is-a-file", _file_as_run_dir, "logs/r is a file, not a folder"),
    ("run-dir-dangling-link", _dangling_run_dir, "logs/r is a link to nothing"),
    ("run-dir-holds-files", _taken_run_dir, "logs/r already holds files"),
    ("run-dir-holds-a-dot-file", _dot_file_run_dir, "logs/r already holds files"),
    (
        "sweep-metric-typo",
        lambda tmp: [
            "--sweep",
            _write(tmp / "s.yaml", "seed: [1]\n"),
            "--sweep-metric",
            "tst_loss",
        ],
        "Unknown metric 'tst_loss' (--sweep-metric). Did you mean 'test_loss'?",
    ),
    (
        "sweep-run-dir-is-a-file",
        lambda tmp: [*_file_as_run_dir(tmp), "--sweep", _write(tmp / "s.yaml", "seed: [1]\n")],
        "logs/r is a file, not a folder",
    ),
    ("sweep-point-holds-files", _taken_sweep_point, "logs/r/00-seed=1 already holds files"),
    (
        "run-name-too-long",
        ["--run-name", "r" * 300],
        "Run folder name is 300 bytes; the file system allows 255.",
    ),
]


def _edge_args(tmp, args):
    args = args(tmp) if callable(args) else list(args)
    return args if "--logdir" in args else ["--logdir", str(tmp / "logs"), *args]


def _tree(root: pathlib.Path) -> dict:
    """Every path under root, with its bytes or link target: what a run could have touched."""
    tree = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            tree[key] = ("link", os.readlink(path))
        elif path.is_file():
            tree[key] = path.read_bytes()
        else:
            tree[key] = "folder"
    return tree


@pytest.mark.parametrize("args,message", [e[1:] for e in EDGES], ids=[e[0] for e in EDGES])
def test_bad_input_exits_2_with_one_line_through_the_script(tmp_path, args, message):
    args = _edge_args(tmp_path, args)
    before = _tree(tmp_path)
    out = run_script(*args, cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("kerasmlp-train: error: ")
    assert out.stderr.count("\n") == 1 and out.stderr.endswith("\n"), out.stderr
    assert len(out.stderr) < 600  # long values are cut
    assert "Traceback" not in out.stderr
    assert message in out.stderr
    assert out.stdout == ""
    assert _tree(tmp_path) == before  # nothing written, nothing removed


def test_bad_input_is_refused_before_tensorflow_is_imported(tmp_path):
    # All the cases in one process (TensorFlow's import alone takes ~5 s).
    cases = []
    for i, (_, args, _) in enumerate(EDGES):
        (tmp_path / str(i)).mkdir()
        cases.append(_edge_args(tmp_path / str(i), args))
    code = (
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from kerasmlp.cli import main\n"
        "codes = [CliRunner().invoke(main, args).exit_code for args in json.load(sys.stdin)]\n"
        "print(json.dumps([codes, 'tensorflow' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == [[2] * len(EDGES), False]


def test_version_without_tensorflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from kerasmlp.cli import main\n"
        "result = CliRunner().invoke(main, ['--version'])\n"
        "print(result.exit_code, repr(result.output), 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    from kerasmlp import __version__

    assert out.stdout == f"0 'kerasmlp-train {__version__}\\n' False\n"
    assert run_script("--version", timeout=60).stdout == f"kerasmlp-train {__version__}\n"


def test_python_dash_m_kerasmlp_is_the_same_command(tmp_path):
    from kerasmlp import __version__

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = [sys.executable, "-m", "kerasmlp"]
    out = subprocess.run([*run, "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout == f"kerasmlp-train {__version__}\n"
    out = subprocess.run([*run, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.startswith("Usage: kerasmlp-train [OPTIONS]")
    args = ["--logdir", str(tmp_path), "--set", "train.epochs=0"]
    out = subprocess.run([*run, *args], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert out.stderr == (
        "kerasmlp-train: error: train.epochs must be >= 1. Received: train.epochs=0\n"
    )


def test_default_run_names_differ_for_runs_started_in_the_same_second():
    code = "from kerasmlp.cli import _run_name; print(_run_name(None, 'configs/mnist.yaml'))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    names = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert names[0] != names[1]
    for name in names:  # readable, and sorted by start time up to the second
        assert re.fullmatch(r"mnist-\d{8}-\d{6}-\d+", name), name


def test_the_first_stop_signal_asks_the_loop_to_stop_and_a_second_one_ends_at_once():
    from kerasmlp.controller import StopRequest

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop = StopRequest()
    try:
        cli._handle_stop_signals(stop)
        signal.raise_signal(signal.SIGTERM)  # handled in this thread before the next line
        assert stop.signal_name == "SIGTERM"
        # The next one gets the default action: the process ends without saving.
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def _data_dir_that_is_a_file(tmp):
    return ["--set", f"data.data_dir={_write(tmp / 'tfds', 'not a folder')}"]


def _truncated_manual_file(tmp):
    source = SHARED_DATA / "mnist"
    if not (source / "train-labels-idx1-ubyte.gz").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (see shared/data/README.md)")
    manual = tmp / "manual"
    manual.mkdir()
    for file in source.glob("*.gz"):
        (manual / file.name).symlink_to(file)
    (manual / "train-labels-idx1-ubyte.gz").unlink()
    _write(
        manual / "train-labels-idx1-ubyte.gz",
        (source / "train-labels-idx1-ubyte.gz").read_bytes()[:1000],
    )
    return [
        "--set", "data.name=mnist",
        "--set", f"data.manual_dir={manual}",
        "--set", f"data.data_dir={tmp / 'tfds'}",
    ]  # fmt: skip


def _rate_decaying_to_zero(tmp):
    return [
        "--set", "optimizer.learning_rate={decay_steps: 1, decay_rate: 1e-10}",
        "--set", f"data.data_dir={tmp / 'tfds'}",
    ]  # fmt: skip


# Bad data settings, and settings that need the data's size, refused once TensorFlow is
# up (they need TFDS to check), still in one line, with exit 2 and no run folder.
DATA_EDGES = [
    ("data-dir-is-a-file", _data_dir_that_is_a_file, "tfds"),
    ("truncated-manual-file", _truncated_manual_file, "train-labels-idx1-ubyte.gz"),
    # By hand: 0.01 x 1e-10 ** s < 1.18e-38 from s = 3.59, so step 4; spirals'
    # 3600 training points / 64 = 57 steps x 40 epochs = 2,280.
    (
        "rate-decays-to-0",
        _rate_decaying_to_zero,
        "decays to 0 in float32 at step 4 of the run's 2,280",
    ),
]


@pytest.mark.parametrize(
    "make,message", [e[1:] for e in DATA_EDGES], ids=[e[0] for e in DATA_EDGES]
)
def test_bad_data_settings_exit_2_with_one_line(tmp_path, make, message):
    # In this process, where TensorFlow has started already (a new one takes seconds).
    result = invoke(*make(tmp_path), "--logdir", str(tmp_path / "logs"), "--run-name", "r")
    assert result.exit_code == 2, result.output[-2000:]
    assert result.stderr.startswith("kerasmlp-train: error: ")
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "logs" / "r").exists()
