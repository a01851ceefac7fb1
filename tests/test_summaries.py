"""Tests for kerasmlp.summaries: each kind of record read back, and what a real run writes when."""

import errno
import io
import itertools
import os
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.scalar.summary_v2 import scalar_pb

from kerasmlp import summaries
from kerasmlp.config import load_config
from kerasmlp.runfiles import RunFilesError
from kerasmlp.summaries import (
    EventFile,
    SummaryWriter,
    description,
    hparam_value,
    model_summary,
    truncate_event_files,
)
from kerasmlp.train import train_and_evaluate
from tests import events


def hparams_records(run_dir):
    accumulator = events.load(run_dir)
    content = {
        tag: accumulator.SummaryMetadata(tag).plugin_data.content
        for tag in accumulator.Tags()["tensors"]
    }
    return (
        hparams_metadata.parse_experiment_plugin_data(content["_hparams_/experiment"]),
        hparams_metadata.parse_session_start_info_plugin_data(
            content["_hparams_/session_start_info"]
        ),
        hparams_metadata.parse_session_end_info_plugin_data(content["_hparams_/session_end_info"])
        if "_hparams_/session_end_info" in content
        else None,
    )


def test_scalars_histograms_and_images_read_back(tmp_path):
    values = np.arange(12, dtype="float32").reshape(3, 4)
    picture = np.zeros((5, 7, 3), np.uint8)
    picture[1, 2] = (255, 0, 0)
    with SummaryWriter(tmp_path) as writer:
        writer.scalars("train", 3, {"loss": 0.25, "layer/x": 1.5})
        writer.histograms("train", 3, {"dense_0/kernel": values})
        writer.image("validation", 3, "picture", picture)
    assert events.scalars(tmp_path / "train") == {"loss": [(3, 0.25)], "layer/x": [(3, 1.5)]}
    accumulator = events.load(tmp_path / "train")
    (event,) = accumulator.Tensors("dense_0/kernel")
    buckets = tf.make_ndarray(event.tensor_proto)  # rows of (left edge, right edge, count)
    assert buckets[:, 2].sum() == 12 and buckets[0, 0] == 0 and buckets[-1, 1] == 11
    (event,) = events.load(tmp_path / "validation").Tensors("picture")
    width, height, png = tf.make_ndarray(event.tensor_proto)
    assert (int(width), int(height)) == (7, 5)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), picture)


def test_a_histogram_of_overflowed_values_counts_the_finite_ones(tmp_path):
    # A float16 gradient that overflowed: TensorBoard's histogram_pb made buckets with NaN
    # and inf edges of [1, 2, inf], with numpy's "invalid value" warnings on the console.
    with SummaryWriter(tmp_path) as writer, np.errstate(all="raise"):
        writer.histograms("train", 1, {"dense_0/kernel_gradient": np.array([1.0, 2.0, np.inf])})
    (event,) = events.load(tmp_path / "train").Tensors("dense_0/kernel_gradient")
    buckets = tf.make_ndarray(event.tensor_proto)
    assert np.isfinite(buckets).all()
    assert (buckets[:, 2].sum(), buckets[0, 0], buckets[-1, 1]) == (2, 1.0, 2.0)


def test_scalars_are_written_as_tensorboards_scalar_pb_writes_them(tmp_path):
    # The writer builds the scalar protos itself (it is in the hot path); the
    # reference is TensorBoard's own `scalar_pb`, byte for byte, NaN and inf included.
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.scalar import summary_v2

    values = {"loss": 0.1234567, "nan": float("nan"), "inf": -float("inf"), "big": 1e30}
    with SummaryWriter(tmp_path) as writer:
        writer.scalars("train", 7, values)
        writer.scalars("train", 8, values)
    (path,) = (tmp_path / "train").glob("events.out.tfevents.*")
    records = [event_pb2.Event.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    event, later = [e for e in records if e.HasField("summary")]
    assert (event.step, later.step) == (7, 8)
    # The description with a tag's first value only: TensorBoard keeps the first metadata.
    assert [v.SerializeToString() for v in later.summary.value] == [
        summary_v2.scalar_pb(tag, np.float32(value)).value[0].SerializeToString()
        for tag, value in values.items()
    ]
    assert [v.SerializeToString() for v in event.summary.value] == [
        summary_v2.scalar_pb(tag, np.float32(value), description=description("train", tag))
        .value[0]
        .SerializeToString()
        for tag, value in values.items()
    ]


def _records(folder):
    from tensorboard.compat.proto import event_pb2

    (path,) = pathlib.Path(folder).glob("events.out.tfevents.*")
    return path, [event_pb2.Event.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


def test_event_files_hold_what_tf_summary_writes(tmp_path):
    from tensorboard.compat.proto import graph_pb2

    # The reference: the same text and graph through tf.summary's own writer.
    @tf.function
    def f(x):
        return x * 2.0

    graph = f.get_concrete_function(tf.TensorSpec([], tf.float32)).graph
    reference = tf.summary.create_file_writer(str(tmp_path / "reference"))
    with reference.as_default(step=3):
        tf.summary.text("config", "    seed: 0", description=description("train", "config"))
        tf.summary.graph(graph)
    reference.close()
    with SummaryWriter(tmp_path / "run") as writer:
        writer.text("train", 3, "config", "    seed: 0")
        writer.graph("train", graph)
    ref_path, expected = _records(tmp_path / "reference")
    path, got = _records(tmp_path / "run" / "train")
    # Same name pattern: events.out.tfevents.<seconds>.<host>.<pid>.<n>.v2.
    assert path.name.split(".")[:3] == ref_path.name.split(".")[:3]
    assert path.name.endswith(".v2") and ref_path.name.endswith(".v2")
    assert [e.file_version for e in got[:1]] == [e.file_version for e in expected[:1]]
    (text, graph_event), (expected_text, expected_graph) = got[1:], expected[1:]
    assert (text.step, text.summary) == (expected_text.step, expected_text.summary)
    # A GraphDef's attributes are a map, serialized in no fixed order: compare parsed.
    assert graph_event.step == expected_graph.step == 0
    assert graph_pb2.GraphDef.FromString(graph_event.graph_def) == graph_pb2.GraphDef.FromString(
        expected_graph.graph_def
    )


def test_event_files_opened_in_one_second_sort_in_the_order_they_were_made(tmp_path, monkeypatch):
    # TensorBoard reads a folder's event files in name order (DirectoryWatcher sorts
    # them, and while watching takes no file named before the one it reads): the tenth
    # file of a process, after a rollback in the same second, named `...10.v2`, sorted
    # before `...9.v2`, and the curve went from step 40 back to step 20.
    monkeypatch.setattr(summaries, "_EVENT_FILE_NUMBERS", itertools.count(9))
    made = [EventFile(tmp_path, clock=lambda: 1000.0) for _ in range(2)]
    for file, step in zip(made, (20, 40), strict=True):
        file.summary(step, scalar_pb("loss", 1.0))
        file.close()
    assert sorted(tmp_path.iterdir()) == [file.path for file in made]
    assert [event.step for event in events.load(tmp_path).Tensors("loss")] == [20, 40]


def test_each_write_is_on_disk_when_it_returns(tmp_path):
    # TensorBoard sees a round's scalars at once, and a killed run keeps them.
    writer = SummaryWriter(tmp_path)
    writer.scalars("train", 5, {"loss": 0.5})
    assert events.scalars(tmp_path / "train") == {"loss": [(5, 0.5)]}
    writer.close()


def test_background_work_runs_in_order_and_flush_waits_for_it(tmp_path):
    import threading

    writer = SummaryWriter(tmp_path)
    started, release, threads = threading.Event(), threading.Event(), []

    def slow(step):
        threads.append(threading.current_thread().name)
        started.set()
        release.wait(timeout=30)
        writer.scalars("train", step, {"loss": step / 4})

    writer.in_background(lambda: slow(1))
    writer.in_background(lambda: writer.scalars("train", 2, {"loss": 0.5}))
    assert started.wait(timeout=30)
    assert not (tmp_path / "train").exists()  # nothing written yet: the work waits
    release.set()
    writer.flush()  # waits for both, then flushes the files
    assert events.scalars(tmp_path / "train") == {"loss": [(1, 0.25), (2, 0.5)]}
    assert threads[0].startswith("kerasmlp-summaries")
    writer.close()


def test_an_error_in_background_work_is_raised_by_the_next_call(tmp_path):
    from kerasmlp.runfiles import RunFilesError

    def fails():
        raise RunFilesError(f"cannot write {tmp_path}: No space left on device")

    writer = SummaryWriter(tmp_path)
    writer.in_background(fails)
    with pytest.raises(RunFilesError, match="No space left on device"):
        writer.flush()
    writer.in_background(fails)
    with pytest.raises(RunFilesError, match="No space left on device"):
        writer.close()  # and the thread is stopped all the same
    assert writer._background is None


def test_hparams_records_live_in_the_run_directory(tmp_path):
    with SummaryWriter(tmp_path) as writer:
        writer.hparams(
            {"model.activation": "relu", "seed": 3, "data.data_dir": None, "staircase": False},
            metrics=[("validation", "accuracy"), ("test", "loss")],
            trial_id="run-7",
        )
        writer.hparams_end(10)
    experiment, start, end = hparams_records(tmp_path)
    types = {info.name: info.type for info in experiment.hparam_infos}
    assert types == {
        "model.activation": api_pb2.DATA_TYPE_STRING,
        "seed": api_pb2.DATA_TYPE_FLOAT64,
        "data.data_dir": api_pb2.DATA_TYPE_STRING,
        "staircase": api_pb2.DATA_TYPE_BOOL,
    }
    # No domains: one run's values must never filter another run out of the dashboard.
    assert not any(info.HasField("domain_discrete") for info in experiment.hparam_infos)
    assert [(m.name.group, m.name.tag) for m in experiment.metric_infos] == [
        ("validation", "accuracy"),
        ("test", "loss"),
    ]
    assert start.group_name == "run-7"
    assert start.hparams["data.data_dir"].string_value == "null"
    assert start.hparams["seed"].number_value == 3
    assert end.status == api_pb2.STATUS_SUCCESS


def test_restate_replaces_the_config_a_resumed_run_began_with(tmp_path):
    # `--resume --epochs 5` of a run begun with 12: TensorBoard reads a tag's metadata
    # from its first record only, so HParams said train.epochs 12 whatever followed.
    with SummaryWriter(tmp_path) as writer:
        writer.text("train", 0, "config", "train.epochs: 12")
        writer.hparams({"train.epochs": 12, "seed": 0}, metrics=[("test", "loss")], trial_id="t")
        writer.scalars("train", 5, {"loss": 1.0})
    _, began, _ = hparams_records(tmp_path)
    (began_event,) = events.load(tmp_path).Tensors("_hparams_/session_start_info")
    writer = SummaryWriter(tmp_path)
    writer.restate({"train.epochs": 5, "seed": 0}, config_text="train.epochs: 5")
    writer.hparams_end(10)
    writer.close()
    _, start, end = hparams_records(tmp_path)
    assert start.hparams["train.epochs"].number_value == 5
    assert start.hparams["seed"].number_value == 0
    assert (start.group_name, start.start_time_secs) == ("t", began.start_time_secs)
    assert end.status == api_pb2.STATUS_SUCCESS
    assert events.texts(tmp_path / "train") == {"config": "train.epochs: 5"}
    assert events.scalars(tmp_path / "train") == {"loss": [(5, 1.0)]}
    # In place, one record a tag: the same wall time and step 0, which truncation keeps.
    (event,) = events.load(tmp_path).Tensors("_hparams_/session_start_info")
    assert (event.step, event.wall_time) == (0, began_event.wall_time)
    assert len(events.load(tmp_path / "train").Tensors("config")) == 1


def test_replace_scalars_leaves_one_value_per_tag_and_step(tmp_path):
    # A rollback to step 1, one to step 3, and a second to step 3: TensorBoard would draw
    # both values at step 3 (a vertical jump). Only the replaced tags at that step go.
    with SummaryWriter(tmp_path) as writer:
        writer.scalars("train", 1, {"rollbacks": 1.0})
        writer.scalars("train", 3, {"rollbacks": 2.0, "learning_rate_scale": 0.5, "loss": 2.0})
        writer.replace_scalars("train", 3, {"rollbacks": 3.0, "learning_rate_scale": 0.25})
    assert events.scalars(tmp_path / "train") == {
        "rollbacks": [(1, 1.0), (3, 3.0)],
        "learning_rate_scale": [(3, 0.25)],
        "loss": [(3, 2.0)],
    }
    assert description("train", "rollbacks")
    accumulator = events.load(tmp_path / "train")
    assert accumulator.SummaryMetadata("rollbacks").summary_description == description(
        "train", "rollbacks"
    )


def test_the_gradient_norm_is_described_as_the_norm_before_clipping():
    # The trainer logs the norm of the gradients it hands the optimizer, which clips
    # them after (test_trainer's clipping test checks the value); a user who set
    # optimizer.global_clipnorm=1 and saw 40 in the chart took the clipping for broken.
    assert "before the optimizer's clipping" in description("train", "gradient_norm")


def test_hparams_named_first_lead_the_records_and_differ(tmp_path):
    values = {
        "seed": 0,
        "data.name": "spirals",
        "model.activation": "relu",
        "opt.lr.a": 1,
        "opt.lr.b": 2,
    }
    with SummaryWriter(tmp_path) as writer:
        writer.hparams(values, metrics=[], trial_id="t", first=["model.activation", "opt.lr"])
    experiment, start, _ = hparams_records(tmp_path)
    assert [(i.name, i.differs) for i in experiment.hparam_infos] == [
        ("model.activation", True),
        ("opt.lr.a", True),
        ("opt.lr.b", True),
        ("seed", False),
        ("data.name", False),
    ]
    # The session start holds a proto map, which keeps no order: the values are all there.
    assert start.hparams["model.activation"].string_value == "relu"
    assert set(start.hparams) == set(values)


def test_hparam_values_are_plain():
    assert [hparam_value(v) for v in (None, True, 2, 0.5, "x", (1, 2))] == [
        "null",
        True,
        2,
        0.5,
        "x",
        "(1, 2)",
    ]


def test_truncation_touches_only_the_runs_own_event_files(tmp_path):
    with SummaryWriter(tmp_path) as writer:
        writer.scalars("train", 1, {"loss": 1.0})
        writer.hparams({"seed": 0}, metrics=[("test", "loss")], trial_id="run")
    # Another run a user keeps inside the folder: its events are not this run's.
    with SummaryWriter(tmp_path / "old-run") as other:
        other.scalars("train", 1, {"loss": 1.0})
    kept = {path: path.read_bytes() for path in (tmp_path / "old-run").rglob("*tfevents*")}
    # Every event is later than wall time 0: the run's own files go whole.
    assert truncate_event_files(tmp_path, 0.0) > 0
    assert not list((tmp_path / "train").glob("*tfevents*"))
    assert not list(tmp_path.glob("*tfevents*"))
    assert {path: path.read_bytes() for path in kept} == kept


def test_truncation_on_a_read_only_disk_is_one_line_and_leaves_the_files(tmp_path, monkeypatch):
    # `--resume` of a run on a read-only (or full) disk drops the events after its
    # checkpoint: TensorFlow's PermissionDeniedError came out as a traceback.
    now = [10.0]  # the events' wall times, in seconds; the checkpoint's is 20
    cut = EventFile(tmp_path / "cut" / "train", clock=lambda: now[0])  # loses its last event
    cut.summary(1, summary_pb2.Summary())
    now[0] = 30.0
    cut.summary(2, summary_pb2.Summary())
    cut.close()
    EventFile(tmp_path / "gone" / "train", clock=lambda: now[0]).close()  # goes whole
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    def read_only(path, *args, **kwargs):
        raise tf.errors.PermissionDeniedError(None, None, f"{path}; Read-only file system")

    def cannot_unlink(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(tf.io, "TFRecordWriter", read_only)
    monkeypatch.setattr(pathlib.Path, "unlink", cannot_unlink)
    for run, shown in (("cut", ".truncate-events.out.events"), ("gone", "events.out.tfevents")):
        with pytest.raises(RunFilesError) as raised:
            truncate_event_files(tmp_path / run, 20.0)
        where = re.escape(str(tmp_path / run / "train" / shown))
        assert re.fullmatch(rf"cannot write {where}\S*: Read-only file system", str(raised.value))
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


def test_unknown_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        SummaryWriter(tmp_path).writer("eval")


@pytest.fixture(scope="module")
def tanh_run(tmp_path_factory):
    """Two epochs of the spirals with tanh units and every kind of summary each epoch."""
    run_dir = tmp_path_factory.mktemp("runs") / "tanh"
    config = load_config(
        None,
        [
            "train.epochs=2",
            "train.log_every_steps=20",
            "train.histogram_every_epochs=1",
            "train.image_every_epochs=1",
            "model.activation=tanh",
            "model.hidden_units=[8, 8]",
            "metrics=[accuracy, macro_f1]",
            f"data.data_dir={tmp_path_factory.mktemp('tfds')}",
        ],
    )
    results = train_and_evaluate(config, run_dir, reporter=_Quiet())
    return config, run_dir, results


class _Quiet:
    def start(self, **kwargs): ...

    def train_progress(self, **kwargs): ...

    def epoch_end(self, **kwargs): ...

    def end(self, results): ...

    def message(self, text): ...


def test_per_step_gradient_norm_and_throughput(tanh_run):
    _, run_dir, results = tanh_run
    train = events.scalars(run_dir / "train")
    steps = int(results["steps"])
    logged = [s for s, _ in train["loss"]]
    assert logged[-1] == steps and logged[:2] == [20, 40]
    for tag in ("gradient_norm", "examples_per_second"):
        assert [s for s, _ in train[tag]] == logged
        assert all(np.isfinite(v) and v > 0 for _, v in train[tag])


def test_per_layer_histograms_and_unit_health_at_start_and_epoch_ends(tanh_run):
    _, run_dir, results = tanh_run
    plugins = events.tags_by_plugin(run_dir / "train")
    layers = ("dense_0", "dense_1", "head")
    kinds = ("kernel", "bias", "kernel_gradient", "bias_gradient")
    assert plugins["histograms"] == {f"{layer}/{kind}" for layer in layers for kind in kinds}
    train = events.scalars(run_dir / "train")
    epoch_ends = [s for s, _ in train["epoch"]]
    for layer in layers:
        assert [s for s, _ in train[f"{layer}/gradient_norm"]] == [0, *epoch_ends]
    for layer in ("dense_0", "dense_1"):  # tanh layers: saturation, not dead units
        assert all(0 <= v <= 1 for _, v in train[f"{layer}/saturated_fraction"])
        assert f"{layer}/dead_fraction" not in train
    assert "head/saturated_fraction" not in train
    accumulator = events.load(run_dir / "train")
    assert [e.step for e in accumulator.Tensors("dense_0/kernel")] == [0, *epoch_ends]


def test_images_text_and_graph(tanh_run):
    _, run_dir, _ = tanh_run
    validation = events.load(run_dir / "validation")
    train_steps = [s for s, _ in events.scalars(run_dir / "train")["epoch"]]
    for tag in ("confusion_matrix", "decision_boundary"):
        assert [e.step for e in validation.Tensors(tag)] == train_steps
    texts = events.texts(run_dir / "train")
    assert "dense_0" in texts["model_summary"] and "Total params" in texts["model_summary"]
    graph = events.load(run_dir / "train").Graph()
    assert any(node.op == "While" or "while" in node.name.lower() for node in graph.node)


def test_every_tag_of_a_run_says_what_it_measures(tanh_run):
    # TensorBoard shows a tag's description beside its chart: none may be empty.
    _, run_dir, _ = tanh_run
    for split in ("train", "validation", "test"):
        accumulator = events.load(run_dir / split)
        for tag in accumulator.Tags()["tensors"]:
            assert accumulator.SummaryMetadata(tag).summary_description, (split, tag)
    train = events.load(run_dir / "train")
    # Per layer, by what follows the layer's name; the metrics by the split.
    assert "below 1%" in train.SummaryMetadata("dense_1/saturated_fraction").summary_description
    assert (
        "the rate the next step uses" in train.SummaryMetadata("learning_rate").summary_description
    )
    assert "dropout on" in train.SummaryMetadata("macro_f1").summary_description
    validation = events.load(run_dir / "validation").SummaryMetadata("macro_f1")
    assert "dropout off" in validation.summary_description
    assert description("train", "dense_0/dead_fraction").startswith("Share of this layer's units")


def test_hparams_session_of_a_run(tanh_run):
    config, run_dir, _ = tanh_run
    experiment, start, end = hparams_records(run_dir)
    assert {info.name for info in experiment.hparam_infos} == set(config.flatten())
    assert {(m.name.group, m.name.tag) for m in experiment.metric_infos} == {
        (split, tag) for split in ("validation", "test") for tag in ("loss", "accuracy", "macro_f1")
    }
    assert start.hparams["model.activation"].string_value == "tanh"
    assert start.hparams["model.hidden_units"].string_value == "8,8"
    assert start.group_name == ""  # each run its own row (see test_sweep)
    assert end.status == api_pb2.STATUS_SUCCESS


def test_off_switches_write_no_histograms_or_images(tmp_path):
    config = load_config(
        None,
        [
            "train.epochs=1",
            "train.histogram_every_epochs=0",
            "train.image_every_epochs=0",
            "model.hidden_units=[4]",
            f"data.data_dir={tmp_path / 'tfds'}",
        ],
    )
    train_and_evaluate(config, tmp_path / "run", reporter=_Quiet())
    assert "histograms" not in events.tags_by_plugin(tmp_path / "run" / "train")
    assert "images" not in events.tags_by_plugin(tmp_path / "run" / "validation")


def test_profile_steps_writes_a_profile_for_the_profile_tab(tmp_path):
    config = load_config(
        None,
        [
            "train.epochs=2",
            "train.profile_steps=3",
            "model.hidden_units=[4]",
            f"data.data_dir={tmp_path / 'tfds'}",
        ],
    )
    train_and_evaluate(config, tmp_path / "run", reporter=_Quiet())
    # TensorBoard's profile plugin reads <run>/plugins/profile/<session>/*.xplane.pb.
    profiles = list((tmp_path / "run" / "train" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(profiles) == 1 and profiles[0].stat().st_size > 0


def test_model_summary_is_text():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense_0")])
    text = model_summary(model)
    assert "dense_0" in text and "8" in text  # 3 * 2 + 2 parameters


@pytest.mark.parametrize("columns", ["80", "60", "200"])
def test_model_summary_keeps_every_column_on_any_console(monkeypatch, columns):
    # rich draws Keras's table on a console of the terminal's width (COLUMNS), 80
    # without one: a 90-column table lost its right-hand `Param #` column there.
    import keras

    monkeypatch.setenv("COLUMNS", columns)
    model = keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(16, name="dense_0"), keras.layers.Dense(10)]
    )
    text = model_summary(model)
    assert "Param #" in text
    assert "12,560" in text  # dense_0: 784 * 16 + 16, by hand
    table = [line for line in text.splitlines() if line[:1] in "┏┃┡│├└"]
    assert all(line[-1] in "┓┃┩│┤┘" for line in table)  # each row closed: nothing cut
    assert max(len(line) for line in table) <= min(90, int(columns))
