"""The benchmark scripts run, in a tiny mode, and print the lines their READMEs quote.

Each runs in its own process (as a user runs it, with its own TensorFlow and
TFDS state); the figures are not checked, only the shape of what is printed.
PyTorch is not a dependency: where it is installed the throughput script's
torch column is checked, elsewhere its "skipped" line.
"""

import importlib.util
import re
import subprocess
import sys
import textwrap

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


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_flops_per_example_is_six_times_the_weights():
    # By hand: 784*1024 + 1024*256 + 256*10 = 1,067,520 weights (biases not counted).
    flops = _load("train_loop_vs_fit").flops_per_example
    assert flops([784, 1024, 256, 10]) == 6 * 1_067_520
    assert flops([2, 3]) == 36


def test_train_loop_vs_fit_prints_every_loop_and_the_ratios():
    # One tiny round of the MNIST config (dropout and label smoothing: the torch loop's
    # branches) with one narrow layer, which traces faster: 300 examples, 256 + 44 a batch.
    stdout = _run(
        f"""
        import sys, runpy
        sys.argv = ["train_loop_vs_fit.py", "--examples", "300", "--epochs", "1",
                    "--repeats", "1", "--matmul-repeats", "1", "--models", "config",
                    "--set", "model.hidden_units=[16]"]
        runpy.run_path({str(BENCHMARKS / "train_loop_vs_fit.py")!r}, run_name="__main__")
        """
    )
    lines = stdout.splitlines()
    assert re.search(
        rf"^matmul .*\| float32 {NUMBER} GFLOP/s \| bfloat16 {NUMBER} GFLOP/s$", stdout, re.M
    )
    assert any(
        line.startswith("model config (mnist.yaml) | [16] -> 10, relu, dropout 0.3")
        for line in lines
    )
    # 6 * (784*16 + 16*10) = 76,224 FLOPs.
    assert re.search(r"\| 0\.08 MFLOP/example \(6 \* sum\(in\*out\)\)", stdout)
    loops = ["kerasmlp", "fit", "fit_spe32", "minimal"] + (["torch"] if TORCH else [])
    for loop in loops:
        pattern = rf"^{loop} +\| +{NUMBER} \| +{NUMBER} \| +\d+% \| [\d.]+$"
        assert re.search(pattern, stdout, re.M), loop
    for other in loops[1:]:
        pattern = rf"^ratio +\| kerasmlp / {other} +\| [\d.]+ best \| [\d.]+ median of rounds$"
        assert re.search(pattern, stdout, re.M), other
    if TORCH:
        assert "skipped" not in stdout
    else:
        assert re.search(r"^torch +\| skipped: torch not installed$", stdout, re.M)


def test_train_loop_vs_fit_runs_the_loops_in_bfloat16_too():
    stdout = _run(
        f"""
        import sys, runpy
        sys.argv = ["train_loop_vs_fit.py", "--examples", "300", "--epochs", "1",
                    "--repeats", "1", "--matmul-repeats", "1", "--models", "seeds",
                    "--set", "model.hidden_units=[16]",
                    "--loops", "kerasmlp", "kerasmlp_bf16", "fit_bf16", "minimal_bf16"
                    {', "torch_bf16"' if TORCH else ""}]
        runpy.run_path({str(BENCHMARKS / "train_loop_vs_fit.py")!r}, run_name="__main__")
        """
    )
    assert re.search(rf"\| bfloat16 bound {NUMBER} samples/s$", stdout, re.M)
    others = ["fit_bf16", "minimal_bf16"] + (["torch_bf16"] if TORCH else [])
    for loop in ["kerasmlp", "kerasmlp_bf16", *others]:
        assert re.search(rf"^{loop} +\| +{NUMBER} \| +{NUMBER} \| +\d+% \| [\d.]+$", stdout, re.M)
    for other in others:  # each bfloat16 loop against kerasmlp's in bfloat16
        pattern = rf"^ratio +\| kerasmlp_bf16 / {other} +\| [\d.]+ best \| [\d.]+ median"
        assert re.search(pattern, stdout, re.M), other
    assert "kerasmlp / kerasmlp_bf16" not in stdout


def test_time_to_accuracy_prints_both_runs_and_the_ratio(tmp_path):
    # Mock MNIST (64 random examples a split), one epoch each, no images or histograms.
    stdout = _run(
        f"""
        import tensorflow_datasets as tfds
        import runpy, sys
        sys.argv = ["time_to_accuracy.py", "--dataset", "mnist", "--seeds", "3",
                    "--epochs-scale", "0.01", "--data-dir", {str(tmp_path / "tfds")!r},
                    "--manual-dir", {str(tmp_path)!r}, "--workdir", {str(tmp_path / "runs")!r},
                    "--set", "train.image_every_epochs=0",
                    "--set", "train.histogram_every_epochs=0"]
        with tfds.testing.mock_data(num_examples=64):
            runpy.run_path({str(BENCHMARKS / "time_to_accuracy.py")!r}, run_name="__main__")
        """
    )
    assert re.search(r"^data +\| mnist: 64 train, 64 test", stdout, re.M)
    assert "1 epochs, Keras fit" in stdout
    for who in ("recipe", "kerasmlp"):
        pattern = rf"^seed +3 \| {who} +\| test accuracy [\d.]+% \| wall +[\d.]+ s \("
        assert re.search(pattern, stdout, re.M), who
    assert re.search(r"^seed +3 \| ratio +\| wall time kerasmlp / recipe [\d.]+$", stdout, re.M)
    assert re.search(r"^summary +\| 1 seeds \|", stdout, re.M)
    assert (tmp_path / "runs" / "seed3" / "metrics.json").exists()


def test_whole_command_vs_fit_prints_both_rates_and_the_ratio(tmp_path):
    # Mock MNIST (64 random examples a split), one epoch of a narrow model, shifts on;
    # two pairs, so that fit goes first in the second.
    stdout = _run(
        f"""
        import tensorflow_datasets as tfds
        import runpy, sys
        sys.argv = ["whole_command_vs_fit.py", "--epochs", "1", "--repeats", "2",
                    "--set", "model.hidden_units=[16]",
                    "--set", "data.data_dir={tmp_path / "tfds"}",
                    "--set", "train.image_every_epochs=0",
                    "--set", "train.histogram_every_epochs=0"]
        with tfds.testing.mock_data(num_examples=64):
            runpy.run_path({str(BENCHMARKS / "whole_command_vs_fit.py")!r}, run_name="__main__")
        """
    )
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


def test_logging_overhead_sums_each_epochs_median_over_the_rounds():
    typical_run = _load("logging_overhead")._typical_run
    rounds = [{"epoch_seconds": [1.0, 2.0, 3.0]}, {"epoch_seconds": [3.0, 2.0, 1.0]}]
    rounds.append({"epoch_seconds": [2.0, 9.0, 2.0]})  # a burst in one round's second epoch
    # Worked by hand: medians 2, 2, 2 (the 9 s epoch left out).
    assert typical_run(rounds) == 6.0


def test_logging_overhead_prints_the_three_ratios(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "logging_overhead.py"), "--epochs=3", "--repeats=2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ratios = re.findall(r"ratio logged/off: (\d\.\d{3}) \((best|median|epoch by epoch)", out.stdout)
    assert [kind for _, kind in ratios] == ["best", "median", "epoch by epoch"], out.stdout


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
