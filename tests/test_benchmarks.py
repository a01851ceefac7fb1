"""The benchmark scripts run, in a tiny mode, and print the lines their READMEs quote.

They run in a process of their own (as a user runs them, with their own TensorFlow
and TFDS state), the five scripts one after the other in one: starting TensorFlow
is most of a tiny run's time. The figures are not checked, only the shape of what
is printed.
PyTorch is not a dependency: where it is installed the throughput script's
torch column is checked, elsewhere its "skipped" line.
"""

import ast
import importlib.util
import json
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
TORCH = importlib.util.find_spec("torch") is not None
NUMBER = r"[\d,]+"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_scripts(*runs: tuple[int | None, list[str]]) -> list[str]:
    """Runs `python benchmarks/SCRIPT ARGS...` for each `(mock_examples, [SCRIPT, *ARGS])`,
    one after another in one process (tests/_run_benchmarks.py), under
    `tfds.testing.mock_data` where mock_examples is a number; returns the stdout of each."""
    out = subprocess.run(
        [sys.executable, "-m", "tests._run_benchmarks", json.dumps(runs)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=400,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    parts = re.split(r"^=== end of (\S+) ===\n", out.stdout, flags=re.M)
    assert parts[-1] == "" and parts[1::2] == [argv[0] for _, argv in runs], out.stdout[-3000:]
    return parts[0:-1:2]


def test_flops_per_example_is_six_times_the_weights():
    # By hand: 784*1024 + 1024*256 + 256*10 = 1,067,520 weights (biases not counted).
    flops = _load("train_loop_vs_fit").flops_per_example
    assert flops([784, 1024, 256, 10]) == 6 * 1_067_520
    assert flops([2, 3]) == 36


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("[!_]*.py")))
def test_each_scripts_help_opens_with_a_whole_sentence(script):
    # `--help` shows the docstring's first line: a summary wrapped over two lines showed
    # half a sentence ("... (scaled and flattened by the model) against").
    summary, blank, *_ = ast.get_docstring(ast.parse((BENCHMARKS / script).read_text())).split("\n")
    assert summary.endswith(".") and blank == "", summary


def test_train_loop_vs_fit_help_names_every_loop(capsys, monkeypatch):
    # `--loops LOOP [LOOP ...]` alone: the names were found only by giving a wrong one.
    script = _load("train_loop_vs_fit")
    monkeypatch.setattr(sys, "argv", ["train_loop_vs_fit.py", "--help"])
    with pytest.raises(SystemExit):
        script.main()
    shown = " ".join(capsys.readouterr().out.split())
    for loop in script.LOOPS + script.EXTRA_LOOPS + script.BF16_LOOPS:
        assert re.search(rf"[ (]{loop}[ ;,)]", shown), loop


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory):
    """The five runs below, one after another in ONE process (one TensorFlow start, not
    two): the stdout of each, and the folder of the mock MNIST runs."""
    tmp_path = tmp_path_factory.mktemp("mock_mnist")
    return tmp_path, _run_scripts(*loop_round_argvs(), *mock_mnist_argvs(tmp_path))


def loop_round_argvs():
    """One tiny round of train_loop_vs_fit.py in float32, then one of its bfloat16 loops,
    then logging_overhead.py for two epochs (the steady rate starts after the first) and
    one round of each setting.

    300 examples, one narrow layer (it traces faster): 256 + 44 a batch. The float32 round
    takes the MNIST config (dropout and label smoothing: the torch loop's branches).
    """
    tiny = ["--examples", "300", "--epochs", "1", "--repeats", "1", "--matmul-repeats", "1"]
    narrow = ["--set", "model.hidden_units=[16]"]
    return [
        (None, ["train_loop_vs_fit.py", *tiny, "--models", "config", *narrow]),
        (None, [
            "train_loop_vs_fit.py", *tiny, "--models", "seeds", *narrow,
            "--loops", "kerasmlp", "kerasmlp_bf16", "fit_bf16", "minimal_bf16",
            *(["torch_bf16"] if TORCH else []),
        ]),
        (None, ["logging_overhead.py", "--epochs=2", "--repeats=1"]),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def loop_rounds(script_runs):
    return script_runs[1][:3]


def test_train_loop_vs_fit_prints_every_loop_and_the_ratios(loop_rounds):
    stdout, _, _ = loop_rounds
    lines = stdout.splitlines()
    assert re.search(
        rf"^matmul .*\| float32 {NUMBER} GFLOP/s \| bfloat16 {NUMBER} GFLOP/s \| the lowest "
        rf"measurement's best: float32 {NUMBER}, bfloat16 {NUMBER}$",
        stdout,
        re.M,
    )
    assert any(
        line.startswith("model config (mnist.yaml) | [16] -> 10, relu, dropout 0.3")
        for line in lines
    )
    # 6 * (784*16 + 16*10) = 76,224 FLOPs.
    assert re.search(r"\| 0\.08 MFLOP/example \(6 \* sum\(in\*out\)\)", stdout)
    loops = ["kerasmlp", "fit", "fit_spe32", "minimal"] + (["torch"] if TORCH else [])
    for loop in loops:
        pattern = rf"^{loop} +\| +{NUMBER} \| +{NUMBER} \| +\d+% \| +\d+% \| [\d.]+$"
        assert re.search(pattern, stdout, re.M), loop
    for other in loops[1:]:
        pattern = rf"^ratio +\| kerasmlp / {other} +\| [\d.]+ best \| [\d.]+ median of rounds$"
        assert re.search(pattern, stdout, re.M), other
    if TORCH:
        assert "skipped" not in stdout
    else:
        assert re.search(r"^torch +\| skipped: torch not installed$", stdout, re.M)


def test_train_loop_vs_fit_shares_the_bound_two_ways(capsys):
    # Three rounds of a 10 MFLOP/example model; float32 products of 100, 100, then 200
    # GFLOP/s around them (bounds of 10,000, 10,000, 20,000 samples/s). Worked by hand:
    # the loop's 8,000, 7,000, 10,000 samples/s are 80%, 70%, 50% of the product around
    # each, median 70%; its best round is 50% of the run's best product (20,000). The
    # bfloat16 loop, 400 GFLOP/s each time (40,000): 20,000, 30,000, 26,000 are 50%,
    # 75%, 65%, median 65%; best 75%.
    import tensorflow as tf

    f32, bf16 = tf.float32, tf.bfloat16
    result = {
        "title": "t",
        "flops": 10e6,
        "rates": {"kerasmlp": [8e3, 7e3, 10e3], "kerasmlp_bf16": [20e3, 30e3, 26e3]},
        "cores": {"kerasmlp": [1.0, 2.0, 1.5], "kerasmlp_bf16": [2.0, 2.0, 2.0]},
        "nearby": {
            "kerasmlp": [{f32: 100.0, bf16: 400.0}, {f32: 100.0, bf16: 400.0}, {f32: 200.0}],
            "kerasmlp_bf16": [{f32: 200.0, bf16: 400.0}] * 3,
        },
    }
    _load("train_loop_vs_fit").print_summary(result, 200.0, 400.0, torch_skipped=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "t | float32 bound 20,000 samples/s | bfloat16 bound 40,000 samples/s"
    assert lines[2] == "kerasmlp       |   10,000 |    8,000 |  50% |  70% | 1.50"
    assert lines[3] == "kerasmlp_bf16  |   30,000 |   26,000 |  75% |  65% | 2.00"


def test_train_loop_vs_fit_runs_the_loops_in_bfloat16_too(loop_rounds):
    _, stdout, _ = loop_rounds
    assert re.search(rf"\| bfloat16 bound {NUMBER} samples/s$", stdout, re.M)
    others = ["fit_bf16", "minimal_bf16"] + (["torch_bf16"] if TORCH else [])
    for loop in ["kerasmlp", "kerasmlp_bf16", *others]:
        pattern = rf"^{loop} +\| +{NUMBER} \| +{NUMBER} \| +\d+% \| +\d+% \| [\d.]+$"
        assert re.search(pattern, stdout, re.M), loop
    for other in others:  # each bfloat16 loop against kerasmlp's in bfloat16
        pattern = rf"^ratio +\| kerasmlp_bf16 / {other} +\| [\d.]+ best \| [\d.]+ median"
        assert re.search(pattern, stdout, re.M), other
    assert "kerasmlp / kerasmlp_bf16" not in stdout


def mock_mnist_argvs(tmp_path):
    """time_to_accuracy.py, then whole_command_vs_fit.py, on mock MNIST (64 random examples
    a split): one epoch each, no images or histograms."""
    quiet = ["--set", "train.image_every_epochs=0", "--set", "train.histogram_every_epochs=0"]
    return [
        (64, [
            "time_to_accuracy.py", "--dataset", "mnist", "--seeds", "3", "--epochs-scale", "0.01",
            "--data-dir", str(tmp_path / "tfds"), "--manual-dir", str(tmp_path),
            "--workdir", str(tmp_path / "runs"), *quiet,
        ]),
        # A narrow model, shifts on; two pairs, so that fit goes first in the second.
        (64, [
            "whole_command_vs_fit.py", "--epochs", "1", "--repeats", "2",
            "--set", "model.hidden_units=[16]", "--set", f"data.data_dir={tmp_path / 'tfds2'}",
            *quiet,
        ]),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def mock_mnist_runs(script_runs):
    tmp_path, (*_, time_to_accuracy, whole_command) = script_runs
    return tmp_path, time_to_accuracy, whole_command


def test_time_to_accuracy_prints_both_runs_and_the_ratio(mock_mnist_runs):
    tmp_path, stdout, _ = mock_mnist_runs
    assert re.search(r"^data +\| mnist: 64 train, 64 test", stdout, re.M)
    assert "1 epochs, Keras fit" in stdout
    for who in ("recipe", "kerasmlp"):
        pattern = rf"^seed +3 \| {who} +\| test accuracy [\d.]+% \| wall +[\d.]+ s \("
        assert re.search(pattern, stdout, re.M), who
    assert re.search(r"^seed +3 \| ratio +\| wall time kerasmlp / recipe [\d.]+$", stdout, re.M)
    assert re.search(r"^summary +\| 1 seeds \|", stdout, re.M)
    assert (tmp_path / "runs" / "seed3" / "metrics.json").exists()


def test_whole_command_vs_fit_prints_both_rates_and_the_ratio(mock_mnist_runs):
    _, _, stdout = mock_mnist_runs
    config_line = r"^config +\| mnist\.yaml .*\| 1 epochs, batch 256, precision \w+$"
    assert re.search(config_line, stdout, re.M)
    pair = (
        rf"^pair +(\d) \| kerasmlp ({NUMBER}) examples/s, test accuracy [\d.]+ \| "
        rf"fit ({NUMBER}) examples/s, test accuracy [\d.]+ \| kerasmlp / fit ([\d.]+)$"
    )
    pairs = re.findall(pair, stdout, re.M)
    assert [p[0] for p in pairs] == ["1", "2"]
    ratios = sorted(float(p[-1]) for p in pairs)
    # The median of two is their mean, printed to two decimals.
    median = re.search(
        r"^ratio +\| kerasmlp / fit, median of 2 pairs ([\d.]+) \(range ", stdout, re.M
    )
    assert median and abs(float(median.group(1)) - sum(ratios) / 2) <= 0.006


@pytest.mark.parametrize(
    "argv, epochs",
    [([], 3), (["--set", "train.epochs=5"], 5), (["--epochs", "2", "--set", "train.epochs=5"], 2)],
)
def test_whole_command_vs_fit_trains_the_epochs_given(argv, epochs, monkeypatch):
    # --set train.epochs=5 trained 3 epochs: the default --epochs 3 came after it.
    script = _load("whole_command_vs_fit")
    trained = []

    class Trained(Exception):
        pass

    def train_and_evaluate(config, *args, **kwargs):
        trained.append(config.train.epochs)
        raise Trained  # stops the script there: nothing is trained

    monkeypatch.setattr(script, "train_and_evaluate", train_and_evaluate)
    monkeypatch.setattr(sys, "argv", ["whole_command_vs_fit.py", *argv])
    with pytest.raises(Trained):
        script.main()
    assert trained == [epochs]


def test_logging_overhead_sums_each_epochs_median_over_the_rounds():
    typical_run = _load("logging_overhead")._typical_run
    rounds = [{"epoch_seconds": [1.0, 2.0, 3.0]}, {"epoch_seconds": [3.0, 2.0, 1.0]}]
    rounds.append({"epoch_seconds": [2.0, 9.0, 2.0]})  # a burst in one round's second epoch
    # Worked by hand: medians 2, 2, 2 (the 9 s epoch left out).
    assert typical_run(rounds) == 6.0


def test_logging_overhead_prints_the_three_ratios(loop_rounds):
    _, _, stdout = loop_rounds
    ratios = re.findall(r"ratio logged/off: (\d\.\d{3}) \((best|median|epoch by epoch)", stdout)
    assert [kind for _, kind in ratios] == ["best", "median", "epoch by epoch"], stdout


def test_a_mistake_in_a_scripts_arguments_is_one_line(capsys, monkeypatch):
    # As kerasmlp-train says it: the key, the value and what is allowed; status 2.
    from kerasmlp.config import load_config

    monkeypatch.setattr(sys, "argv", ["logging_overhead.py", "--set", "model.activation=rleu"])

    def main():
        load_config(None, sys.argv[2:])

    with pytest.raises(SystemExit) as exited:
        _load("_script").run(main)
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "logging_overhead.py: error: Unknown activation 'rleu' (model.activation). "
        "Did you mean 'relu'? Allowed: elu, gelu, leaky_relu, relu, sigmoid, swish, tanh\n"
    )


def test_tabular_vs_sklearn_prints_both_scores(capsys, monkeypatch):
    # In this process (iris, one epoch: seconds), as `python benchmarks/tabular_vs_sklearn.py`
    # runs it: its __main__ block imports `_script.run`, which must not replace the
    # script's own comparison function.
    import runpy

    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ first
    monkeypatch.setattr(
        sys, "argv", ["tabular_vs_sklearn.py", "--datasets", "iris", "--epochs", "1"]
    )
    runpy.run_path(str(BENCHMARKS / "tabular_vs_sklearn.py"), run_name="__main__")
    assert re.fullmatch(
        r"iris +\| test accuracy \| kerasmlp +[\d.]+ \| scikit-learn +[\d.]+\n",
        capsys.readouterr().out,
    )


def test_tabular_vs_sklearn_without_scikit_learn_is_one_line(capsys, monkeypatch):
    # scikit-learn is a test dependency only: a plain install got a ModuleNotFoundError
    # traceback. None in sys.modules makes its import fail as if it were not installed.
    import runpy

    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setattr(sys, "argv", ["tabular_vs_sklearn.py", "--datasets", "iris"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(BENCHMARKS / "tabular_vs_sklearn.py"), run_name="__main__")
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "tabular_vs_sklearn.py: error: needs scikit-learn, which is not installed "
        "(pip install scikit-learn, or kerasmlp's test extra: pip install -e '.[test]')\n"
    )


@pytest.mark.parametrize("pandas", ["absent", "a stand-in"])
def test_csv_read_prints_each_reader_and_the_ratios(pandas, capsys, monkeypatch):
    # In this process (50 rows: milliseconds, no TensorFlow), as `python benchmarks/csv_read.py`
    # runs it. pandas is not a dependency: None in sys.modules makes its import fail as if
    # it were not installed; a stand-in (np.loadtxt's numbers) shows its lines.
    import runpy
    import types

    import numpy as np

    if pandas == "absent":
        monkeypatch.setitem(sys.modules, "pandas", None)
    else:
        stand_in = types.ModuleType("pandas")
        stand_in.read_csv = lambda path: np.loadtxt(path, delimiter=",", skiprows=1)
        monkeypatch.setitem(sys.modules, "pandas", stand_in)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ first
    monkeypatch.setattr(sys, "argv", ["csv_read.py", "--rows", "50", "--repeats", "2"])
    runpy.run_path(str(BENCHMARKS / "csv_read.py"), run_name="__main__")
    out = capsys.readouterr().out
    seconds = r"best +[\d.]+ s \| median +[\d.]+ s \| +[\d.]+ MB/s"
    ratio = r"[\d.]+ best \| [\d.]+ median of rounds"
    lines = [
        r"csv      \| 50 rows x 20 float columns \+ an integer label \| 0\.0 MB \| "
        r"2 rounds, order rotated",
        rf"kerasmlp \| {seconds}",
        rf"numpy    \| {seconds}",
        rf"pandas   \| {seconds}"
        if pandas != "absent"
        else r"pandas   \| skipped: pandas not installed",
        rf"ratio    \| kerasmlp / numpy  \| {ratio}",
        *([rf"ratio    \| kerasmlp / pandas \| {ratio}"] if pandas != "absent" else []),
        r"check    \| kerasmlp and numpy read the same numbers: yes",
    ]
    assert re.fullmatch("\n".join(lines) + "\n", out), out


def test_long_run_costs_unchecked_loop_trains_as_the_checked_one():
    # In this process: both loops on the same 64 random examples, the same seed. The
    # unchecked loop is the real one less its checks, so the same steps give the same
    # mean loss (float32 sums in the same order) and count the same examples (2 * 16).
    import numpy as np

    from kerasmlp.config import load_config
    from kerasmlp.trainer import Trainer

    costs = _load("long_run_costs")
    config = load_config(None, ["model.hidden_units=[4]", "train.batch_size=16"])
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 2), dtype=np.float32), rng.integers(0, 2, 64).astype(np.int32)
    stats = [
        trainer.run_steps(batches, 2)
        for trainer, batches in (
            costs.make(cls, config, x, y, 2) for cls in (Trainer, costs.UncheckedTrainer)
        )
    ]
    assert stats[1]["examples"] == stats[0]["examples"] == 32
    assert stats[1]["loss"] == stats[0]["loss"]


def test_precision_loop_rates_train_the_runs_model_on_raw_images(tmp_path, monkeypatch):
    # In this process, on mock MNIST (uint8 images, 32 a split): the compiled loop alone
    # takes the images as the run does, through the run's own model (`model_for`).
    import tensorflow_datasets as tfds

    from kerasmlp.config import load_config

    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports logging_overhead
    config = load_config(
        REPO_ROOT / "configs" / "mnist.yaml",
        ["model.hidden_units=[4]", "train.batch_size=16", f"data.data_dir={tmp_path}"],
    )
    with tfds.testing.mock_data(num_examples=32):
        rates = _load("precision").loop_rates(config, ["float32"], calls=1, steps=1)
    assert list(rates) == ["float32"] and len(rates["float32"]) == 1


def test_precision_prints_a_one_epoch_runs_steady_rate_as_not_available(monkeypatch):
    # `measure` gives nan for one epoch (the rate starts after the first), printed as "nan".
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports logging_overhead
    steady_text = _load("precision").steady_text
    assert steady_text(float("nan")) == "n/a"
    assert steady_text(1234.5) == "1234"  # as "{:.0f}" rounds it, half to even


@pytest.mark.parametrize(
    "script, option, value, least",
    [
        ("train_loop_vs_fit", "--repeats", "0", 1),  # was: max() arg is an empty sequence
        ("train_loop_vs_fit", "--matmul-repeats", "0", 1),  # was: ZeroDivisionError
        ("train_loop_vs_fit", "--epochs", "0", 1),  # was: every rate printed as 0
        ("long_run_costs", "--calls", "0", 1),
        ("long_run_costs", "--repeats", "0", 1),
        ("whole_command_vs_fit", "--repeats", "0", 1),  # was: StatisticsError
        ("logging_overhead", "--repeats", "0", 1),
        ("precision", "--loop-calls", "0", 1),
        ("precision", "--repeats", "-1", 0),
        ("raw_image_inputs", "--rounds", "0", 1),  # was: nan
        ("csv_read", "--rows", "0", 1),
    ],
)
def test_a_count_below_its_least_is_refused_before_any_work(
    script, option, value, least, capsys, monkeypatch
):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # precision.py imports logging_overhead
    monkeypatch.setattr(sys, "argv", [f"{script}.py", option, value])
    with pytest.raises(SystemExit) as exited:
        _load(script).main()
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error == f"{script}.py: error: {option} must be at least {least}. Received: {value}"


@pytest.mark.skipif(TORCH, reason="torch is installed: its loops run")
def test_train_loop_vs_fit_refuses_only_torch_loops_without_torch(capsys, monkeypatch):
    # Every loop asked for was dropped: the rounds rotated an empty list (ZeroDivisionError).
    monkeypatch.setattr(sys, "argv", ["train_loop_vs_fit.py", "--loops", "torch", "torch_bf16"])
    with pytest.raises(SystemExit) as exited:
        _load("train_loop_vs_fit").main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "train_loop_vs_fit.py: error: --loops has no loop to run: torch is not installed "
        "(PyTorch is not a kerasmlp dependency). Received: torch torch_bf16"
    )


@pytest.mark.parametrize(
    "script, argv", [("raw_image_inputs", []), ("train_loop_vs_fit", ["--data", "mnist"])]
)
def test_a_tfds_script_reads_the_data_folders_a_data_error_names(
    script, argv, tmp_path, monkeypatch
):
    # The error for missing data says "Set data.manual_dir ... or data.data_dir ...": the
    # script read only --manual-dir and --data-dir, so a user who did so got it again.
    from kerasmlp.errors import DataError

    none = tmp_path / "none"
    data = [f"data.manual_dir={none}", f"data.data_dir={tmp_path / 'tfds'}"]
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv, "--set", data[0], "--set", data[1]])
    with pytest.raises(DataError) as raised:
        _load(script).main()
    assert str(raised.value).startswith(f"data.manual_dir '{none}' is not a folder")


@pytest.mark.parametrize(
    "setting, refusal",
    [
        ("model.activation=tanh", "builds ReLU layers only. Received: model.activation=tanh"),
        ("optimizer.name=sgd", "uses Adam only. Received: optimizer.name=sgd"),
    ],
)
def test_train_loop_vs_fit_refuses_a_step_the_torch_loop_cannot_train(
    setting, refusal, capsys, monkeypatch
):
    # Was: a ValueError traceback once the data, the matmul warm-up and the other loops
    # were ready. Where torch is absent, it is said to be there (its version is all that
    # is read before the refusal).
    script = _load("train_loop_vs_fit")
    if not TORCH:
        monkeypatch.setattr(script, "torch_version", lambda threads: "a stand-in")
    argv = ["train_loop_vs_fit.py", "--loops", "kerasmlp", "torch", "--set", setting]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        script.main()
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error == f"train_loop_vs_fit.py: error: --loops torch: the torch loop {refusal}"


def test_train_loop_vs_fit_refuses_a_precision_no_loop_reads(capsys, monkeypatch):
    # Every loop trained float32 under --set train.precision=mixed_bfloat16, named as float32
    # loops, without a word; the _bf16 loops are the way.
    tiny = ["--examples", "30", "--epochs", "1", "--repeats", "1", "--matmul-repeats", "1"]
    tiny += ["--models", "config", "--loops", "kerasmlp", "--set", "model.hidden_units=[4]"]
    argv = ["train_loop_vs_fit.py", *tiny, "--set", "train.precision=mixed_bfloat16"]
    monkeypatch.setattr(sys, "argv", argv)  # tiny: should the check go, this fails in seconds
    with pytest.raises(SystemExit) as exited:
        _load("train_loop_vs_fit").main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "train_loop_vs_fit.py: error: train.precision: the loops train in float32, and in "
        "mixed_bfloat16 when named with _bf16 (--loops kerasmlp_bf16 fit_bf16 ...). "
        "Received: train.precision=mixed_bfloat16"
    )


def test_logging_overhead_refuses_one_epoch(capsys, monkeypatch):
    # One epoch has no steady rate: the ratios divided 0 s by 0 s (ZeroDivisionError).
    monkeypatch.setattr(sys, "argv", ["logging_overhead.py", "--epochs", "1"])
    with pytest.raises(SystemExit) as exited:
        _load("logging_overhead").main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "logging_overhead.py: error: --epochs must be at least 2: the rates are taken after "
        "the first epoch. Received: train.epochs=1"
    )


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf"])
def test_time_to_accuracy_refuses_an_epochs_scale_that_is_no_positive_number(scale, capsys):
    # 0 and -1 trained 1 epoch each without a word; nan and inf ended in a traceback.
    with pytest.raises(SystemExit) as exited:
        _load("time_to_accuracy").main(["--epochs-scale", scale])
    assert exited.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(f"error: --epochs-scale must be a number > 0. Received: {float(scale)}")
    )


def test_time_to_accuracy_reads_set_data_folders_and_refuses_a_bad_set_or_seed_first(
    tmp_path, monkeypatch
):
    # A data error names data.manual_dir and data.data_dir; --set gave them and the script
    # prepared from ../shared/data/<dataset> into a fresh folder all the same. And a bad
    # --set was refused only after the data had been prepared and read (tens of seconds).
    from kerasmlp.config import ConfigError

    time_to_accuracy = _load("time_to_accuracy")
    prepared = []

    class Prepared(Exception):
        pass

    def prepare_offline(name, manual_dir, data_dir):
        prepared.append((name, str(manual_dir), str(data_dir)))
        raise Prepared  # stops the script there: nothing is prepared or trained

    monkeypatch.setattr(time_to_accuracy, "prepare_offline", prepare_offline)
    with pytest.raises(ConfigError, match="rleu"):
        time_to_accuracy.main(["--set", "model.activation=rleu"])
    # A seed the config refuses: found after every seed before it had trained (minutes each).
    with pytest.raises(ConfigError, match="seed must be >= 0. Received: seed=-1"):
        time_to_accuracy.main(["--seeds", "0", "-1"])
    assert prepared == []
    folders = [f"data.manual_dir={tmp_path / 'mine'}", f"data.data_dir={tmp_path / 'tfds'}"]
    with pytest.raises(Prepared):
        time_to_accuracy.main(["--set", folders[0], "--set", folders[1]])
    assert prepared == [("mnist", str(tmp_path / "mine"), str(tmp_path / "tfds"))]


def test_time_to_accuracy_refuses_a_taken_seed_folder_before_any_work(tmp_path, capsys):
    # Found only after the seed's recipe run (minutes), as a RunDirectoryExistsError traceback.
    (tmp_path / "seed1").mkdir()
    (tmp_path / "seed1" / "notes.txt").write_text("mine")
    time_to_accuracy = _load("time_to_accuracy")
    # No canonical files there: should the check come late again, this fails in seconds.
    no_data = ["--manual-dir", str(tmp_path / "none")]
    for argv, error in [
        (["--seeds", "0", "1", "--workdir", str(tmp_path)], "seed1 already holds files"),
        (["--seeds", "2", "2"], "--seeds must differ: each trains into seed<N>. Received: [2, 2]"),
    ]:
        with pytest.raises(SystemExit) as exited:
            time_to_accuracy.main([*argv, *no_data])
        assert exited.value.code == 2
        assert error in capsys.readouterr().err.splitlines()[-1]
    assert (tmp_path / "seed1" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed1"]
