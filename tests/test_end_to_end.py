"""The real entry point, `train_and_evaluate`, on tiny data: what a run leaves behind.

MNIST comes from `tfds.testing.mock_data` (random images of the right shape),
the default config from the generated playground data; nothing touches the network.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds
import yaml

from kerasmlp.config import load_config
from kerasmlp.data import load_datasets
from kerasmlp.train import train_and_evaluate
from tests import events
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"


def expected_learning_rate(step, initial, decay_steps, decay_rate, staircase):
    # The ExponentialDecay formula, written out in numpy (float64).
    exponent = step / decay_steps
    if staircase:
        exponent = np.floor(exponent)
    return initial * decay_rate**exponent


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    """Two short epochs of configs/mnist.yaml on mock MNIST (300 random examples a split)."""
    run_dir = tmp_path_factory.mktemp("runs") / "mnist"
    config = load_config(
        CONFIGS / "mnist.yaml",
        [
            "train.epochs=2",
            "train.batch_size=16",
            "train.log_every_steps=4",
            "model.hidden_units=[32]",
            "optimizer.learning_rate.decay_steps=5",
            "optimizer.learning_rate.staircase=true",
            "metrics=[accuracy, macro_f1, ece]",
            f"data.data_dir={tmp_path_factory.mktemp('tfds')}",
        ],
    )
    with tfds.testing.mock_data(num_examples=300):
        results = train_and_evaluate(config, run_dir)
        # mock_data serves 300 examples for any split (slices too): 19 steps of 16.
        data = load_datasets("mnist", batch_size=16, data_dir=config.data.data_dir)
        assert data.train.cardinality() == 19
    return config, run_dir, results


def test_run_directory_holds_config_model_metrics_and_events(mnist_run):
    config, run_dir, results = mnist_run
    # The run directory's own event file holds the HParams session (see test_summaries).
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("events.")) == [
        "config.yaml",
        "data.json",
        "metrics.json",
        "model.keras",
        "test",
        "train",
        "validation",
    ]
    assert load_config(run_dir / "config.yaml") == config
    assert json.loads((run_dir / "metrics.json").read_text()) == results


def test_results_are_plain_floats(mnist_run):
    _, _, results = mnist_run
    assert all(type(v) is float for v in results.values())
    for split in ("train", "validation", "test"):
        for name in ("loss", "accuracy", "macro_f1", "ece"):
            assert np.isfinite(results[f"{split}_{name}"])
    assert results["steps"] == 38.0 and results["epochs"] == 2.0
    # 300 mock examples an epoch, 2 epochs: the rate is over the examples actually seen.
    assert results["examples_per_second"] * results["wall_time_s"] == pytest.approx(600)


def test_train_scalars_at_logged_steps_and_epoch_ends(mnist_run):
    config, run_dir, _ = mnist_run
    train = events.scalars(run_dir / "train")
    per_step = {"loss", "learning_rate", "gradient_norm", "examples_per_second"}
    per_epoch = {"epoch", "accuracy", "macro_f1", "ece"}
    # One hidden ReLU layer and the head (see test_summaries for these).
    per_layer = {"dense_0/gradient_norm", "dense_0/dead_fraction", "head/gradient_norm"}
    assert set(train) == per_step | per_epoch | per_layer
    # Every 4 steps, plus the epoch ends at 19 and 38.
    logged = [4, 8, 12, 16, 19, 20, 24, 28, 32, 36, 38]
    for tag in per_step:
        assert [s for s, _ in train[tag]] == logged, tag
    assert train["epoch"] == [(19, 1.0), (38, 2.0)]
    assert [s for s, _ in train["accuracy"]] == [19, 38]


def test_learning_rate_is_the_exact_schedule_value(mnist_run):
    config, run_dir, _ = mnist_run
    lr = config.optimizer.learning_rate
    for step, value in events.scalars(run_dir / "train")["learning_rate"]:
        want = expected_learning_rate(
            step, lr.initial_learning_rate, lr.decay_steps, lr.decay_rate, lr.staircase
        )
        np.testing.assert_allclose(value, want, rtol=1e-6)


def test_validation_and_test_overlay_train_tags(mnist_run):
    _, run_dir, results = mnist_run
    validation = events.scalars(run_dir / "validation")
    assert set(validation) == {"loss", "accuracy", "macro_f1", "ece"}
    assert [s for s, _ in validation["accuracy"]] == [19, 38]
    np.testing.assert_allclose(
        validation["accuracy"][-1][1], results["validation_accuracy"], rtol=1e-6
    )
    test = events.scalars(run_dir / "test")
    assert test["loss"] == [(38, pytest.approx(results["test_loss"], rel=1e-6))]


def test_config_is_in_tensorboard_as_text(mnist_run):
    config, run_dir, _ = mnist_run
    text = events.texts(run_dir / "train")["config"]
    assert yaml.safe_load(textwrap.dedent(text)) == config.to_dict()


def test_saved_model_reloads_in_a_fresh_process_and_gives_probabilities(mnist_run):
    _, run_dir, _ = mnist_run
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import kerasmlp
        from kerasmlp.model import Head, probability_model
        model = keras.models.load_model({str(run_dir / "model.keras")!r})
        x = np.random.rand(3, 784).astype("float32")
        probs = probability_model(model, Head("softmax", 10))(x)
        np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, rtol=1e-5)
        print(model.output_shape)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(None, 10)" in out.stdout


def test_default_config_learns_the_spirals(tmp_path):
    # The offline default: the real playground data, a shortened schedule.
    config = load_config(None, ["train.epochs=8", f"data.data_dir={tmp_path / 'tfds'}"])
    results = train_and_evaluate(config, tmp_path / "run")
    assert results["test_accuracy"] > 0.8  # a linear model stays near 0.5 on spirals
    # The smooth (non-staircase) schedule, at every logged step.
    lr = config.optimizer.learning_rate
    logged = events.scalars(tmp_path / "run" / "train")["learning_rate"]
    assert len(logged) > 10
    for step, value in logged:
        want = expected_learning_rate(
            step, lr.initial_learning_rate, lr.decay_steps, lr.decay_rate, False
        )
        np.testing.assert_allclose(value, want, rtol=1e-6)


def test_regression_dataset_end_to_end(tmp_path):
    config = load_config(
        None,
        [
            "data.name=sine",
            "loss.name=mean_squared_error",
            "metrics=[mse, mae]",
            "train.epochs=5",
            f"data.data_dir={tmp_path / 'tfds'}",
        ],
    )
    results = train_and_evaluate(config, tmp_path / "run")
    # Baseline: predicting the mean of the test targets scores their variance (numpy).
    data = load_datasets("sine", batch_size=1000, data_dir=tmp_path / "tfds")
    targets = np.concatenate([y for _, y in data.test.as_numpy_iterator()])
    assert results["test_mse"] < 0.2 * np.var(targets)
    assert set(events.scalars(tmp_path / "run" / "validation")) == {"loss", "mse", "mae"}


def test_one_epoch_of_the_mnist_config_on_real_mnist(real_tfds_dir, tmp_path):
    # Real MNIST prepared offline from ../shared/data (skipped when absent); bar from issue 2.
    config = load_config(
        CONFIGS / "mnist.yaml",
        ["train.epochs=1", "train.histogram_every_epochs=0", f"data.data_dir={real_tfds_dir}"],
    )
    results = train_and_evaluate(config, tmp_path / "run")
    assert results["test_accuracy"] >= 0.96
