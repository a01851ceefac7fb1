"""The real entry point, `train_and_evaluate`, on tiny data: what a run leaves behind.

MNIST comes from `tfds.testing.mock_data` (random images of the right shape),
the default config from the generated playground data; nothing touches the network.
"""

import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
import yaml
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

import kerasmlp  # noqa: F401  (registers the custom objects that model.keras names)
from kerasmlp.config import load_config
from kerasmlp.controller import StopRequest
from kerasmlp.data import load_datasets
from kerasmlp.model import Head, build_model
from kerasmlp.playground import NUM_TRAIN
from kerasmlp.reporters import LineReporter
from kerasmlp.runfiles import ResumeError
from kerasmlp.train import RunInterrupted, train_and_evaluate
from tests import events
from tests.conftest import COLLECTOR_OFF, REPO_ROOT, invoke_train

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
        "checkpoints",
        "config.yaml",
        "data.json",
        "metrics.json",
        "model.keras",
        "status.json",
        "test",
        "train",
        "validation",
    ]
    # The config resolved: `train.precision: auto` is written as what it chose.
    chosen = dataclasses.replace(config.train, precision=results["precision"])
    assert load_config(run_dir / "config.yaml") == dataclasses.replace(config, train=chosen)
    assert json.loads((run_dir / "metrics.json").read_text()) == results


def test_results_are_plain_floats_and_counts_are_integers(mnist_run):
    _, run_dir, results = mnist_run
    counts = {"steps", "epochs", "replicas", "workers"}
    names = {"precision", "strategy"}
    assert all(type(v) is float for k, v in results.items() if k not in {*counts, *names})
    assert results["precision"] in ("float32", "mixed_bfloat16")  # what `auto` chose here
    for split in ("train", "validation", "test"):
        for name in ("loss", "accuracy", "macro_f1", "ece"):
            assert np.isfinite(results[f"{split}_{name}"])
    # Counts are integers in metrics.json too ("steps": 38, not 38.0).
    written = json.loads((run_dir / "metrics.json").read_text())
    assert (written["steps"], written["epochs"]) == (38, 2)
    assert type(written["steps"]) is int and type(written["epochs"]) is int
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
    config, run_dir, results = mnist_run
    text = events.texts(run_dir / "train")["config"]
    # As config.yaml: `train.precision` as chosen.
    expected = config.to_dict()
    expected["train"]["precision"] = results["precision"]
    assert yaml.safe_load(textwrap.dedent(text)) == expected


def test_saved_model_reloads_in_a_fresh_process_and_gives_probabilities(mnist_run, tmp_path):
    # model.keras takes raw uint8 images; on them it gives what its Dense stack gives
    # on the images scaled and flattened the way the input pipeline used to (cast to
    # float32, times 1/255, in float32). kerasmlp-export's SavedModel takes them too.
    from click.testing import CliRunner

    from kerasmlp import export

    _, run_dir, _ = mnist_run
    served = tmp_path / "served"
    result = CliRunner().invoke(export.main, [str(run_dir), str(served)])
    assert result.exit_code == 0, result.output
    script = textwrap.dedent(
        f"""
        import numpy as np, keras, tensorflow as tf
        import kerasmlp
        from kerasmlp.model import Head, probability_model
        model = keras.models.load_model({str(run_dir / "model.keras")!r})
        assert model.input.dtype == "uint8" and model.input_shape == (None, 28, 28, 1)
        x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
        probs = probability_model(model, Head("softmax", 10))(x)
        np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, rtol=1e-5)
        scaled = tf.reshape(tf.cast(x, tf.float32), [3, 784]) * (1.0 / 255)
        names = [layer.name for layer in model.layers]
        for layer in model.layers[names.index("flatten") + 1 :]:
            scaled = layer(scaled, training=False)
        np.testing.assert_allclose(model(x), scaled, rtol=1e-6, atol=1e-7)
        loaded = tf.saved_model.load({str(served)!r})
        np.testing.assert_allclose(loaded.serve(tf.constant(x)), probs, rtol=1e-5, atol=1e-6)
        print(model.output_shape)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", COLLECTOR_OFF + script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(None, 10)" in out.stdout


def test_predict_takes_raw_uint8_images(mnist_run, tmp_path):
    # kerasmlp-predict and load_run on the images as stored: an .npz of (n, 28, 28)
    # uint8 as keras.datasets.mnist gives them; scaled images are refused.
    from click.testing import CliRunner

    from kerasmlp import predict
    from kerasmlp.errors import DataError
    from kerasmlp.inference import load_run

    _, run_dir, _ = mnist_run
    run = load_run(run_dir)
    with tfds.testing.mock_data(num_examples=300):
        images, labels = run.read_test_split()
    assert images.dtype.name == "uint8" and images.shape == (300, 28, 28, 1)
    images = images.numpy()[:5]
    path = tmp_path / "digits.npz"
    np.savez(path, x=images[..., 0], y=labels[:5])
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(predict.main, [str(run_dir), str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "examples 5 | accuracy" in result.output
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    expected = run.predict_proba(images)
    np.testing.assert_allclose(
        [[float(v) for v in row[1:]] for row in rows], expected, rtol=1e-6, atol=1e-7
    )
    assert [row[0] for row in rows] == list(run.predict(images.reshape(5, 784)))
    np.savez(path, x=images / 255.0)  # would be scaled a second time by the model
    result = CliRunner().invoke(predict.main, [str(run_dir), str(path)])
    assert result.exit_code == 2
    assert "takes raw images, whole numbers from 0 to 255 (uint8)" in result.output
    # Scaled, then binarized: whole numbers, all black as pixels. Refused too, as floats
    # and as a bool mask; the same 0s and 1s as uint8 are pixels as stored, and pass.
    for binarized in [(images > 127).astype("float32"), images > 127]:
        with pytest.raises(DataError, match=r"values all within \[0, 1\] \(at most 1.0\)"):
            run.predict_proba(binarized)
    assert run.predict_proba((images > 127).astype("uint8")).shape == (5, 10)


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


# --- one-step runs on the spirals, checked against numpy ---------------------------


def log_softmax(logits):
    # Written out in numpy (float64), the max subtracted for stability.
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropy(logits, labels, label_smoothing=0.0):
    """Mean sparse softmax cross-entropy, by hand: targets (1 - e) * one_hot + e / K."""
    log_probs = log_softmax(np.asarray(logits, np.float64))
    num_classes = log_probs.shape[-1]
    targets = np.eye(num_classes)[labels] * (1 - label_smoothing) + label_smoothing / num_classes
    return float(np.mean(-(targets * log_probs).sum(axis=-1)))


def split_arrays(dataset):
    features, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.concatenate(features), np.concatenate(labels)


@pytest.fixture(scope="module")
def one_step_runs(tmp_path_factory):
    """One optimizer step on the whole spirals training split, with and without smoothing.

    No validation split (train.validation_fraction=0), so the batch of 4000 is the
    whole training split: its loss does not depend on the shuffle.
    """
    data_dir = tmp_path_factory.mktemp("tfds")
    runs = {}
    for smoothing in (0.0, 0.1):
        config = load_config(
            None,
            [
                "train.epochs=1",
                f"train.batch_size={NUM_TRAIN}",
                "train.validation_fraction=0",
                "train.histogram_every_epochs=0",
                "train.image_every_epochs=0",
                "model.hidden_units=[8]",
                # The reference below is a float32 model: whatever `auto` would pick.
                "train.precision=float32",
                f"loss.label_smoothing={smoothing}",
                f"data.data_dir={data_dir}",
            ],
        )
        run_dir = tmp_path_factory.mktemp("runs") / f"smoothing-{smoothing}"
        results = train_and_evaluate(config, run_dir)
        assert results["steps"] == 1
        runs[smoothing] = config, run_dir, results
    return runs


def datasets_of(config):
    """The splits the run saw, rebuilt from the same config values."""
    return load_datasets(
        config.data.name,
        batch_size=config.train.batch_size,
        validation_fraction=config.train.validation_fraction,
        seed=config.seed,
        data_dir=config.data.data_dir,
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_test_metrics_equal_numpy_on_the_saved_model(one_step_runs, smoothing):
    config, run_dir, _ = one_step_runs[smoothing]
    written = json.loads((run_dir / "metrics.json").read_text())
    model = keras.models.load_model(run_dir / "model.keras")
    features, labels = split_arrays(datasets_of(config).test)
    logits = model.predict(features, verbose=0)
    # test_loss is the run's loss object on the test split: smoothing included.
    np.testing.assert_allclose(
        written["test_loss"], cross_entropy(logits, labels, smoothing), rtol=1e-5
    )
    accuracy = np.mean(np.argmax(logits, axis=-1) == labels)
    np.testing.assert_allclose(written["test_accuracy"], accuracy, rtol=1e-5)


def test_label_smoothing_reaches_the_training_loss(one_step_runs):
    # The first step's loss is taken at the initial weights, which the seed alone
    # decides: rebuild them, and compute the loss of the whole training split by hand.
    config, _, plain = one_step_runs[0.0]
    _, _, smoothed = one_step_runs[0.1]
    model = build_model(config.model, input_dim=2, head=Head("softmax", 2), seed=config.seed)
    features, labels = split_arrays(datasets_of(config).train)
    assert len(labels) == NUM_TRAIN
    logits = model.predict(features, verbose=0)
    np.testing.assert_allclose(plain["train_loss"], cross_entropy(logits, labels), rtol=1e-5)
    np.testing.assert_allclose(
        smoothed["train_loss"], cross_entropy(logits, labels, 0.1), rtol=1e-5
    )
    assert abs(smoothed["train_loss"] - plain["train_loss"]) > 1e-4  # 0.0017 here


def test_no_validation_split_means_no_validation_metrics_in_hparams(one_step_runs):
    _, run_dir, results = one_step_runs[0.0]
    accumulator = events.load(run_dir)
    content = accumulator.SummaryMetadata("_hparams_/experiment").plugin_data.content
    experiment = hparams_metadata.parse_experiment_plugin_data(content)
    assert [(m.name.group, m.name.tag) for m in experiment.metric_infos] == [
        ("test", "loss"),
        ("test", "accuracy"),
    ]
    assert not (run_dir / "validation").exists()
    assert not any(key.startswith("validation_") for key in results)


def small_run_config(tmp_path, *overrides):
    """Two epochs of a 4-unit model on the spirals, no histograms or images: a run to
    interrupt and resume in a few seconds."""
    return load_config(
        None,
        [
            *overrides,
            "train.epochs=2",
            "model.hidden_units=[4]",
            "train.histogram_every_epochs=0",
            "train.image_every_epochs=0",
            f"data.data_dir={tmp_path / 'tfds'}",
        ],
    )


def interrupt_after_epoch(last, config, run_dir):
    """Trains `config` into `run_dir`, stopped as Ctrl-C stops it at the end of epoch `last`."""
    stop = StopRequest()

    class StopAtTheEnd(LineReporter):
        def epoch_end(self, *, step, epoch, logs):
            if epoch == last:
                stop.request("SIGINT")

    with pytest.raises(RunInterrupted):
        train_and_evaluate(config, run_dir, reporter=StopAtTheEnd(io.StringIO()), stop_request=stop)


def test_a_resume_takes_the_optimizer_keys_as_config_yaml_holds_them(tmp_path):
    # As for optimizer.name: --resume reads the run's config.yaml, whatever was edited
    # there. An edit that adds optimizer state the checkpoint lacks (sgd's momentum slots)
    # is refused in one line and leaves the run as it was; one that adds none
    # (a clipping key) is taken.
    config = small_run_config(tmp_path, "optimizer.name=sgd")
    run_dir = tmp_path / "cut"
    interrupt_after_epoch(1, config, run_dir)
    written = (run_dir / "config.yaml").read_text()
    assert "  momentum: 0.0\n" in written and "  clipvalue: null\n" in written
    (run_dir / "config.yaml").write_text(written.replace("momentum: 0.0", "momentum: 0.9"))
    result = invoke_train(["--resume", run_dir])
    assert result.exit_code == 2, result.output
    # Where `auto` chose a mixed precision, config.yaml names it and the resume says so first.
    (line,) = [line for line in result.output.splitlines() if not line.startswith("precision: ")]
    assert line.startswith("kerasmlp-train: error: cannot restore checkpoint ")
    assert line.endswith("still describe the model and optimizer that were trained?")
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    (run_dir / "config.yaml").write_text(written.replace("clipvalue: null", "clipvalue: 0.01"))
    result = invoke_train(["--resume", run_dir])
    assert result.exit_code == 0, result.output
    assert load_config(run_dir / "config.yaml").optimizer.clipvalue == 0.01


def test_ctrl_c_without_a_handler_marks_the_run_interrupted(tmp_path):
    # In a notebook, Ctrl-C raises KeyboardInterrupt inside train_and_evaluate (no handler
    # turns it into a stop request). status.json said failed, "KeyboardInterrupt: ".
    config = small_run_config(tmp_path)

    class CtrlC(LineReporter):
        def epoch_end(self, *, step, epoch, logs):
            raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, run_dir, reporter=CtrlC(io.StringIO()))
    status = json.loads((run_dir / "status.json").read_text())
    assert (status["state"], status["signal"]) == ("interrupted", "SIGINT")
    assert "error" not in status and "pid" not in status
    results = train_and_evaluate(config, run_dir, reporter=LineReporter(io.StringIO()), resume=True)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"
    assert set(results) >= {"test_loss", "test_accuracy"}


def test_a_run_with_random_translation_resumes_bitwise(tmp_path):
    # The shifts come from the layer's seed generator, whose state checkpoints hold
    # with the model's: a run stopped after its first epoch and resumed ends with the
    # weights and metrics of the same run never stopped. A run without the shifts
    # ends elsewhere, so they were drawn.
    def config(shift):
        return load_config(
            CONFIGS / "mnist.yaml",
            [
                "train.epochs=2",
                "train.batch_size=32",
                "model.hidden_units=[16]",
                f"model.random_translation={shift}",
                "train.histogram_every_epochs=0",
                "train.image_every_epochs=0",
                f"data.data_dir={tmp_path / 'tfds'}",
            ],
        )

    quiet = {"reporter": LineReporter(io.StringIO())}
    with tfds.testing.mock_data(num_examples=200):
        reference = train_and_evaluate(config(0.1), tmp_path / "ref", **quiet)
        unshifted = train_and_evaluate(config(0.0), tmp_path / "plain", **quiet)
        interrupt_after_epoch(1, config(0.1), tmp_path / "cut")
        lines = io.StringIO()
        resumed = train_and_evaluate(
            config(0.1), tmp_path / "cut", resume=True, reporter=LineReporter(lines)
        )
    # From the first epoch's checkpoint, not from the start (which would match too).
    steps_per_epoch = reference["steps"] // 2
    assert f"resuming at step {steps_per_epoch}" in lines.getvalue()
    timing = {"wall_time_s", "examples_per_second"}
    assert {k: v for k, v in resumed.items() if k not in timing} == {
        k: v for k, v in reference.items() if k not in timing
    }
    want = keras.models.load_model(tmp_path / "ref" / "model.keras").get_weights()
    got = keras.models.load_model(tmp_path / "cut" / "model.keras").get_weights()
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed["train_loss"] != unshifted["train_loss"]


def test_a_resume_refuses_own_data_changed_since_the_run_began(tmp_path):
    # Split and scaled again, a changed CSV gives other rows than the checkpoint trained on:
    # 40 rows appended failed inside the restore with a tensor shape error, and a value
    # edited in place trained on silently.
    path = tmp_path / "table.csv"
    rng = np.random.default_rng(0)
    rows = [f"{a:.4f},{b:.4f},{int(a + b > 0)}" for a, b in rng.normal(size=(120, 2))]
    path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    config = load_config(
        None,
        ["data.name=csv", f"data.path={path}", "data.label=label", "train.epochs=2"],
    )
    run_dir = tmp_path / "run"
    interrupt_after_epoch(1, config, run_dir)
    recorded = json.loads((run_dir / "status.json").read_text())["data_sha256"]
    assert recorded == {"data.path": hashlib.sha256(path.read_bytes()).hexdigest()}
    original = path.read_bytes()
    path.write_bytes(original.replace(b"0.1", b"0.2", 1))  # one value edited, same rows
    before = sorted(p.name for p in run_dir.rglob("*"))
    quiet = {"reporter": LineReporter(io.StringIO())}
    with pytest.raises(ResumeError) as error:
        train_and_evaluate(config, run_dir, resume=True, **quiet)
    assert str(error.value) == (
        f"--resume {run_dir}: data.path has changed since the run began (its sha256 differs): "
        "split and scaled again it would give other rows than the run trained on. Restore "
        "the file, or start a new run on it with -c"
    )
    assert sorted(p.name for p in run_dir.rglob("*")) == before
    path.write_bytes(original)
    assert train_and_evaluate(config, run_dir, resume=True, **quiet)["epochs"] == 2


def test_an_interrupted_run_ends_its_hparams_session_only_when_it_completes(tmp_path):
    # TensorBoard's HParams plugin takes a session's status from the first end record it
    # reads: an interrupted run's STATUS_UNKNOWN end stayed in a TensorBoard left running,
    # which showed the run resumed and completed as unknown rather than success.
    config = small_run_config(tmp_path)
    run_dir = tmp_path / "cut"

    def session_ends():
        accumulator = events.load(run_dir)
        if hparams_metadata.SESSION_END_INFO_TAG not in accumulator.Tags()["tensors"]:
            return []
        content = accumulator.SummaryMetadata(hparams_metadata.SESSION_END_INFO_TAG)
        info = hparams_metadata.parse_session_end_info_plugin_data(content.plugin_data.content)
        return [info.status for _ in accumulator.Tensors(hparams_metadata.SESSION_END_INFO_TAG)]

    interrupt_after_epoch(1, config, run_dir)
    assert session_ends() == []  # as a run still going: STATUS_UNKNOWN in TensorBoard
    train_and_evaluate(config, run_dir, resume=True, reporter=LineReporter(io.StringIO()))
    assert session_ends() == [api_pb2.STATUS_SUCCESS]


def test_a_run_resumed_with_fewer_epochs_validates_its_new_last_epoch(tmp_path):
    # Stopped at the end of epoch 2 of 4 with validation every 3 epochs, epoch 2 was
    # not validated; resumed as a 2-epoch run, it is the last, and the last is validated.
    def config(epochs):
        return load_config(
            None,
            [
                f"train.epochs={epochs}",
                "train.eval_every_epochs=3",
                "model.hidden_units=[8]",
                "train.histogram_every_epochs=0",
                "train.image_every_epochs=0",
                f"data.data_dir={tmp_path / 'tfds'}",
            ],
        )

    interrupt_after_epoch(2, config(4), tmp_path / "cut")
    quiet = io.StringIO()
    assert not (tmp_path / "cut" / "validation").exists()  # epoch 2 was not due
    resumed = train_and_evaluate(
        config(2), tmp_path / "cut", resume=True, reporter=LineReporter(quiet)
    )
    reference = train_and_evaluate(config(2), tmp_path / "ref", reporter=LineReporter(quiet))
    # Expected: the uninterrupted 2-epoch run, which validates its last epoch.
    for key in ("validation_loss", "validation_accuracy"):
        assert resumed[key] == reference[key]
    step = resumed["steps"]
    assert [s for s, _ in events.scalars(tmp_path / "cut" / "validation")["loss"]] == [step]


def test_restore_best_returns_the_validation_values_of_the_restored_model(tmp_path):
    # No epoch beats the first by 10, so epoch 1's weights are restored after epoch 3:
    # validation_* must be those of the saved model, as test_* are, not epoch 3's.
    config = load_config(
        None,
        [
            "train.epochs=3",
            "train.early_stopping={monitor: validation_loss, patience: 5, min_delta: 10, "
            "restore_best: true}",
            "model.hidden_units=[8]",
            "train.histogram_every_epochs=0",
            "train.image_every_epochs=0",
            "train.precision=float32",
            f"data.data_dir={tmp_path / 'tfds'}",
        ],
    )
    results = train_and_evaluate(config, tmp_path / "run", reporter=LineReporter(io.StringIO()))
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    features, labels = split_arrays(datasets_of(config).validation)
    logits = model.predict(features, verbose=0)
    # Reference: the saved model's loss and accuracy on the validation split, in numpy.
    np.testing.assert_allclose(results["validation_loss"], cross_entropy(logits, labels), rtol=1e-5)
    accuracy = np.mean(np.argmax(logits, axis=-1) == labels)
    np.testing.assert_allclose(results["validation_accuracy"], accuracy, rtol=1e-5)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["validation_loss"] == results["validation_loss"]
    # The curve still ends at epoch 3, whose loss is another.
    curve = events.scalars(tmp_path / "run" / "validation")["loss"]
    assert curve[-1][0] == results["steps"]
    assert abs(curve[-1][1] - results["validation_loss"]) > 1e-4


def test_early_stopping_and_save_best_hear_the_validation_of_a_new_last_epoch(tmp_path):
    # Stopped at the end of epoch 3 of 5 with validation every 2 epochs, epoch 3 was not
    # validated; resumed as a 3-epoch run, its late validation must reach restore_best and
    # save_best as in the uninterrupted 3-epoch run, which validates epochs 2 and 3.
    def config(epochs):
        return load_config(
            None,
            [
                f"train.epochs={epochs}",
                "train.eval_every_epochs=2",
                "train.early_stopping.monitor=validation_loss",
                "train.early_stopping.restore_best=true",
                "train.save_best=validation_loss",
                "model.hidden_units=[8]",
                "train.histogram_every_epochs=0",
                "train.image_every_epochs=0",
                f"data.data_dir={tmp_path / 'tfds'}",
            ],
        )

    stop = StopRequest()

    class StopAfterThirdEpoch(LineReporter):
        def epoch_end(self, *, step, epoch, logs):
            if epoch == 3:
                stop.request("SIGINT")

    quiet = io.StringIO()
    with pytest.raises(RunInterrupted):
        train_and_evaluate(
            config(5), tmp_path / "cut", reporter=StopAfterThirdEpoch(quiet), stop_request=stop
        )
    resumed = train_and_evaluate(
        config(3), tmp_path / "cut", resume=True, reporter=LineReporter(quiet)
    )
    reference = train_and_evaluate(config(3), tmp_path / "ref", reporter=LineReporter(quiet))
    # Expected: the uninterrupted 3-epoch run, whose best validation_loss is epoch 3's.
    best = json.loads((tmp_path / "ref" / "status.json").read_text())["best"]
    assert best["epoch"] == 3  # else this test would not tell the two apart
    assert json.loads((tmp_path / "cut" / "status.json").read_text())["best"] == best
    for key in ("validation_loss", "test_loss", "test_accuracy"):
        assert resumed[key] == reference[key]
    for name in ("model.keras", "best.keras"):
        got = keras.models.load_model(tmp_path / "cut" / name).get_weights()
        want = keras.models.load_model(tmp_path / "ref" / name).get_weights()
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    # TensorBoard's validation curve holds epoch 3's values, not the restored model's.
    assert events.scalars(tmp_path / "cut" / "validation") == events.scalars(
        tmp_path / "ref" / "validation"
    )
