"""Tests for kerasmlp.data: pipelines on the playground builder and on mock MNIST.

MNIST comes from `tfds.testing.mock_data`. No test here reaches the network:
`probe_download_hosts` is replaced by a fake that calls every host unreachable
(its own tests use sockets on localhost only).
"""

import contextlib
import fcntl
import os
import re
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.parse

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import download_manager

from kerasmlp import data
from kerasmlp.sources.common import DataRequest
from kerasmlp.sources.tfds_examples import examples_datasets
from kerasmlp.train import _first_batch
from tests.conftest import COLLECTOR_OFF, REPO_ROOT

REAL_PROBE = data.probe_download_hosts
MNIST_FILES = (
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Every download host is unreachable, as on the test machines; records the probed URLs."""
    probed = []

    def probe(urls, timeout=data.PROBE_TIMEOUT):
        probed.extend(urls)
        return sorted({urllib.parse.urlsplit(url).hostname for url in urls})

    monkeypatch.setattr(data, "probe_download_hosts", probe)
    return probed


@pytest.fixture
def no_download(monkeypatch):
    """Makes any attempt to download and prepare a TFDS dataset fail the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"download_and_prepare reached for {self.name}")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", refuse)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A TFDS data_dir shared by this module; the playground datasets get prepared into it."""
    return tmp_path_factory.mktemp("tfds")


def _load(name="spirals", data_dir=None, **kwargs):
    kwargs.setdefault("batch_size", 128)
    return data.load_datasets(name, data_dir=data_dir, **kwargs)


def _collect(ds):
    """All (x, y) of one pass, concatenated into numpy arrays."""
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def _raw_split(name, split, data_dir):
    """The examples as TFDS serves them, for comparison (numpy arrays)."""
    builder = tfds.builder(f"kerasmlp_playground/{name}", data_dir=str(data_dir))
    return tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True, batch_size=-1))


# ----------------------------------------------------------------------------- playground


def test_playground_batches_are_flat_float32_with_int32_labels(data_dir):
    datasets = _load("spirals", data_dir, batch_size=64)
    for ds in (datasets.train, datasets.validation, datasets.test):
        x_spec, y_spec = ds.element_spec
        assert x_spec.shape.as_list() == [None, 2] and x_spec.dtype.name == "float32"
        assert y_spec.shape.as_list() == [None] and y_spec.dtype.name == "int32"
    x, y = next(iter(datasets.train))
    assert x.shape == (64, 2) and y.shape == (64,)
    assert set(np.unique(y.numpy())) <= {0, 1}


def test_playground_info(data_dir):
    info = _load("spirals", data_dir).info
    assert info == data.DatasetInfo(
        name="spirals",
        task="classification",
        num_classes=2,
        class_names=("spiral_a", "spiral_b"),
        input_shape=(2,),
        input_dim=2,
        num_train=3600,
        num_validation=400,
        num_test=1000,
    )


def test_regression_dataset_has_float_targets(data_dir):
    datasets = _load("sine", data_dir)
    assert datasets.info.task == "regression"
    assert datasets.info.num_classes is None and datasets.info.class_names is None
    x, y = next(iter(datasets.test))
    assert x.dtype.name == "float32" and y.dtype.name == "float32"
    assert y.shape == (128,)
    # The targets are sin(pi x0) cos(pi x1) plus noise of std playground.NOISE (0.03).
    expected = np.sin(np.pi * x.numpy()[:, 0]) * np.cos(np.pi * x.numpy()[:, 1])
    assert np.abs(y.numpy() - expected).max() < 0.2


@pytest.mark.parametrize(
    "fraction, sizes",
    [(0.1, (3600, 400)), (0.25, (3000, 1000)), (0.0, (4000, 0))],
    ids=["tenth", "quarter", "none"],
)
def test_split_sizes_follow_validation_fraction(data_dir, fraction, sizes):
    datasets = _load("xor", data_dir, validation_fraction=fraction)
    info = datasets.info
    assert (info.num_train, info.num_validation, info.num_test) == (*sizes, 1000)
    assert len(_collect(datasets.train)[1]) == sizes[0]
    assert len(_collect(datasets.test)[1]) == 1000
    if fraction:
        assert len(_collect(datasets.validation)[1]) == sizes[1]
    else:
        assert datasets.validation is None


def test_validation_is_the_end_of_train_and_test_is_tfds_test(data_dir):
    datasets = _load("circles", data_dir, validation_fraction=0.1)
    train_x, _ = _collect(datasets.train)
    val_x, val_y = _collect(datasets.validation)
    test_x, test_y = _collect(datasets.test)
    raw_val_x, raw_val_y = _raw_split("circles", "train[3600:]", data_dir)
    raw_test_x, raw_test_y = _raw_split("circles", "test", data_dir)
    # Validation and test keep TFDS's order; train holds exactly the rest of TFDS's train.
    np.testing.assert_array_equal(val_x, raw_val_x)
    np.testing.assert_array_equal(val_y, raw_val_y)
    np.testing.assert_array_equal(test_x, raw_test_x)
    np.testing.assert_array_equal(test_y, raw_test_y)
    raw_train_x, _ = _raw_split("circles", "train[:3600]", data_dir)
    np.testing.assert_array_equal(np.sort(train_x, axis=0), np.sort(raw_train_x, axis=0))


def test_last_batch_of_a_pass_is_partial(data_dir):
    datasets = _load("spirals", data_dir, batch_size=1000)
    assert [len(y) for _, y in datasets.train] == [1000, 1000, 1000, 600]
    assert [len(y) for _, y in datasets.validation] == [400]


def test_train_is_reshuffled_each_epoch_deterministically_with_the_seed(data_dir):
    first = _load("spirals", data_dir, seed=7)
    epoch_1, epoch_2 = _collect(first.train)[0], _collect(first.train)[0]
    assert not np.array_equal(epoch_1, epoch_2)
    np.testing.assert_array_equal(np.sort(epoch_1, axis=0), np.sort(epoch_2, axis=0))
    again = _load("spirals", data_dir, seed=7)
    np.testing.assert_array_equal(_collect(again.train)[0], epoch_1)
    np.testing.assert_array_equal(_collect(again.train)[0], epoch_2)
    other = _load("spirals", data_dir, seed=8)
    assert not np.array_equal(_collect(other.train)[0], epoch_1)


def test_validation_and_test_keep_one_order(data_dir):
    datasets = _load("gaussians", data_dir)
    for ds in (datasets.validation, datasets.test):
        np.testing.assert_array_equal(_collect(ds)[0], _collect(ds)[0])


def test_cache_off_serves_the_same_data(data_dir):
    cached, uncached = _load("xor", data_dir, seed=3), _load("xor", data_dir, seed=3, cache=False)
    for ds_a, ds_b in [(cached.train, uncached.train), (cached.test, uncached.test)]:
        for a, b in zip(_collect(ds_a), _collect(ds_b), strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_probe_batch_leaves_a_cached_split_whole(data_dir):
    # train.build_actions takes one batch of the cached validation split for its
    # layer reports. Left after one batch, an iterator leaves TensorFlow's memory
    # cache partly written, and whether a later pass sees the whole split is a
    # race (CI once counted 129 of 400 here in a tf.function), so the probe reads
    # its pass to the end. Every later pass, in a tf.function as Trainer.evaluate
    # reads it or eagerly, is then the whole split. Reference: the same split with
    # the cache off, which nothing can truncate.
    cached = _load("gaussians", data_dir, seed=3)
    uncached = _load("gaussians", data_dir, seed=3, cache=False)
    first = _first_batch(cached.validation)

    @tf.function
    def examples(dataset):
        count = tf.constant(0)
        for features, _ in dataset:
            count += tf.shape(features)[0]
        return count

    assert int(examples(cached.validation)) == cached.info.num_validation
    reference = _collect(uncached.validation)
    for a, b in zip(_collect(cached.validation), reference, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[0], reference[0][: len(first[0])])


def test_playground_never_probes_the_network(tmp_path, offline):
    _load("gaussians", tmp_path)
    assert offline == []


# ----------------------------------------------------------------------------- MNIST, mocked


def test_mnist_images_stay_raw_uint8_for_the_model_to_scale(no_download, offline):
    with tfds.testing.mock_data(num_examples=20):
        datasets = data.load_datasets("mnist", batch_size=8)
        # Iterated, not batch_size=-1: get_single_element on mock_data's
        # from_generator dataset aborts the process (TF 2.21).
        raw = tfds.builder("mnist").as_dataset(split="test", as_supervised=True)
        raw_images, raw_labels = map(np.stack, zip(*tfds.as_numpy(raw), strict=True))
        test_x, test_y = _collect(datasets.test)
        train_x, train_y = _collect(datasets.train)
    info = datasets.info
    assert (info.task, info.num_classes, info.input_shape, info.input_dim) == (
        "classification",
        10,
        (28, 28, 1),
        784,
    )
    # The model scales by 1/255 (its Rescaling layer) and flattens.
    assert (info.input_dtype, info.input_scale) == ("uint8", 1 / 255)
    assert info.class_names == tuple(str(i) for i in range(10))
    # mock_data serves num_examples examples for any split (slices included).
    assert (info.num_train, info.num_validation, info.num_test) == (20, 20, 20)
    x_spec, _ = datasets.train.element_spec
    assert x_spec.shape.as_list() == [None, 28, 28, 1] and x_spec.dtype.name == "uint8"
    assert test_x.shape == (20, 28, 28, 1) and test_x.dtype == np.uint8
    assert test_y.dtype == np.int32 and set(test_y) <= set(range(10))
    # The images exactly as TFDS decodes them.
    np.testing.assert_array_equal(test_x, raw_images)
    np.testing.assert_array_equal(test_y, raw_labels)
    assert train_x.dtype == np.uint8 and train_y.dtype == np.int32
    assert offline == []  # Inside mock_data nothing is downloaded, so nothing is probed.


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("mnsit", "mnist"),
        ("spiral", "spirals"),
        ("fashion_mnsit", "fashion_mnist"),
        ("qqqzzz", None),
    ],
)
def test_unknown_dataset_names_the_key_and_suggests(name, suggestion):
    with pytest.raises(data.DataError) as error:
        data.load_datasets(name, batch_size=8)
    message = str(error.value)
    assert message.startswith(f"Unknown dataset {name!r} (data.name).")
    if suggestion:
        assert f"Did you mean {suggestion!r}?" in message
    else:
        assert "Did you mean" not in message
    assert "spirals" in message and "\n" not in message


def test_dataset_that_is_not_image_classification_is_refused(no_download):
    with pytest.raises(data.DataError, match=r"'imdb_reviews' \(data.name\) is not an image-class"):
        data.load_datasets("imdb_reviews", batch_size=8)


def test_images_of_varying_size_are_refused(no_download):
    with pytest.raises(data.DataError, match=r"'cats_vs_dogs' \(data.name\) has images of varying"):
        data.load_datasets("cats_vs_dogs", batch_size=8)


@pytest.mark.parametrize(
    "kept,message",
    [
        # cifar10_1 and cifar10_corrupted hold a test split only: TFDS's "Unknown split
        # 'train'" came out as a traceback.
        ("test", "'cifar10_1' (data.name) has no 'train' split (it has: test); kerasmlp trains"),
        ("train", "'cifar10_1' (data.name) has no 'test' split (it has: train); kerasmlp evalu"),
    ],
)
def test_a_dataset_without_a_train_or_test_split_is_refused(kept, message):
    # A prepared builder's split record, with one split; nothing else is read before the refusal.
    builder = types.SimpleNamespace(info=types.SimpleNamespace(splits={kept: None}))
    request = DataRequest(name="cifar10_1", batch_size=8)
    with pytest.raises(data.DataError, match=re.escape(message)):
        examples_datasets(builder, "image", "label", "classification", request)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_validation_fraction_out_of_range(fraction):
    expected = (
        "Argument `train.validation_fraction` must be in [0, 1). "
        f"Received: train.validation_fraction={fraction!r}"
    )
    with pytest.raises(data.DataError) as error:
        data.load_datasets("spirals", batch_size=8, validation_fraction=fraction)
    assert str(error.value) == expected


@pytest.mark.parametrize(
    "fraction, empty, advice",
    # 4000 examples: 0.0001 holds out round(0.4) = 0, 0.99999 holds out round(3999.96) = 4000.
    [
        (0.0001, "validation", "Use 0 to disable validation, or a fraction of at least 0.00025."),
        (0.99999, "training", "Use a smaller fraction."),
    ],
)
def test_validation_fraction_leaving_an_empty_split(data_dir, fraction, empty, advice):
    with pytest.raises(data.DataError, match=f"leaves an empty {empty} split") as error:
        _load("spirals", data_dir, validation_fraction=fraction)
    assert str(error.value).endswith(advice)


def test_a_test_fraction_is_refused_where_the_dataset_has_a_test_split(data_dir):
    # It would be ignored: the generated sets and TFDS image sets bring their test split.
    with pytest.raises(data.DataError, match="test_fraction applies to tables .* test split of"):
        _load("spirals", data_dir, test_fraction=0.5)


def test_folders_left_after_preparing_stay_when_not_empty(tmp_path):
    # TFDS gives its data folder as an etils path, whose rmdir raises ValueError (not
    # OSError) for a folder that is not empty: ~/tensorflow_datasets/downloads holds
    # other datasets' files and the default manual folder.
    from etils import epath

    downloads = epath.Path(tmp_path) / "downloads"
    (downloads / "manual").mkdir(parents=True)
    (downloads / "manual" / "notes.txt").write_text("keep")
    (downloads / "mnist").mkdir()
    data._remove_empty(downloads / "mnist", downloads)
    assert not (downloads / "mnist").exists()
    assert (downloads / "manual" / "notes.txt").read_text() == "keep"


def test_batch_size_must_be_positive():
    with pytest.raises(
        data.DataError,
        match=r"^Argument `train.batch_size` must be > 0. Received: train.batch_size=0$",
    ):
        data.load_datasets("spirals", batch_size=0)


@pytest.mark.parametrize(
    "name, host",
    [("mnist", "storage.googleapis.com"), ("fashion_mnist", "fashion-mnist.s3-website")],
)
def test_offline_without_manual_dir_fails_at_once_naming_the_keys(
    tmp_path, no_download, offline, name, host
):
    start = time.monotonic()
    with pytest.raises(data.DataError) as error:
        data.load_datasets(name, batch_size=8, data_dir=tmp_path)
    message = str(error.value)
    assert message.startswith(f"Cannot download dataset {name!r} (data.name): {host}")
    for part in ("data.manual_dir", "data.data_dir", str(tmp_path), *MNIST_FILES):
        assert part in message
    assert "\n" not in message
    assert all(host in url for url in offline) and len(offline) == 4
    print(f"offline failure after {time.monotonic() - start:.2f} s")  # Reported, not asserted.


def test_manual_dir_missing_files_are_listed(tmp_path, no_download):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    for name in MNIST_FILES[2:]:
        (manual_dir / name).write_bytes(b"")
    with pytest.raises(data.DataError) as error:
        data.load_datasets("mnist", batch_size=8, data_dir=tmp_path / "tfds", manual_dir=manual_dir)
    assert str(error.value) == (
        f"data.manual_dir {str(manual_dir)!r} lacks 2 file(s) of 'mnist': "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz "
        "(from https://storage.googleapis.com/cvdf-datasets/mnist/)."
    )


def test_manual_dir_that_does_not_exist(tmp_path, no_download):
    with pytest.raises(data.DataError, match=r"data.manual_dir '.*nowhere' is not a folder"):
        data.prepare_offline("mnist", tmp_path / "nowhere", tmp_path / "tfds")


def test_prepare_offline_on_the_playground(tmp_path, offline):
    builder = data.prepare_offline("xor", tmp_path / "unused", tmp_path / "tfds")
    assert builder.is_prepared()
    assert builder.info.splits["train"].num_examples == 4000
    assert offline == []


# ----------------------------------------------------------------------------- the probe


@pytest.fixture
def listening_port():
    """A port on localhost that accepts connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def closed_port():
    """A port on localhost where nothing listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_probe_reports_only_unreachable_hosts(monkeypatch, listening_port, closed_port):
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    assert REAL_PROBE([f"http://127.0.0.1:{listening_port}/a.gz"], timeout=2) == []
    assert REAL_PROBE([f"http://127.0.0.1:{closed_port}/a.gz"], timeout=2) == ["127.0.0.1"]


def test_probe_gives_up_at_its_deadline(monkeypatch):
    release = threading.Event()

    def hang(*args, **kwargs):  # A resolver that never answers, as offline DNS can.
        release.wait(10)
        raise OSError("gave up")

    monkeypatch.setattr(socket, "create_connection", hang)
    try:
        urls = ["https://a.example.invalid/x.gz", "http://b.example.invalid/y.gz"]
        assert REAL_PROBE(urls, timeout=0.2) == ["a.example.invalid", "b.example.invalid"]
    finally:
        release.set()


def test_probe_goes_through_the_configured_proxy(monkeypatch, listening_port):
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{listening_port}")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listening_port}")
    assert REAL_PROBE(["https://example.invalid/x.gz"], timeout=2) == []


def test_names_may_carry_a_version(data_dir):
    _load("sine", data_dir)  # Prepared: a versioned name now gets TFDS's ReadOnlyBuilder.
    info = _load("sine:1.0.0", data_dir).info
    assert (info.task, info.num_classes, info.num_test) == ("regression", None, 1000)
    assert _load("spirals:1.0.0", data_dir).info.class_names == ("spiral_a", "spiral_b")
    with pytest.raises(data.DataError, match=r"^Cannot load dataset 'mnist:9.9.9' \(data.name\): "):
        data.load_datasets("mnist:9.9.9", batch_size=8)


# ----------------------------------------------------------------------------- preparing


def test_preparing_prints_one_line_instead_of_tfds_messages(tmp_path, capsys):
    _load("xor", tmp_path / "tfds")
    out, err = capsys.readouterr()
    # Not a terminal here: no progress bars, and TFDS's "Downloading and preparing
    # dataset Unknown size ..." and "Dataset ... downloaded and prepared" are gone.
    assert re.fullmatch(r"preparing xor \.\.\. done in \d+\.\d s\n", out), out
    assert err == ""
    _load("xor", tmp_path / "tfds")  # Prepared: nothing more to say.
    assert capsys.readouterr() == ("", "")
    assert (tmp_path / "tfds" / ".kerasmlp-kerasmlp_playground.lock").is_file()
    assert not (tmp_path / "tfds" / "downloads").exists()


def test_on_a_terminal_the_line_leaves_room_for_tfds_bars(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "_on_terminal", lambda: True)
    _load("xor", tmp_path / "tfds")
    out = capsys.readouterr().out
    assert re.fullmatch(r"preparing xor \.\.\.\n\.\.\. done in \d+\.\d s\n", out), out


def test_a_data_dir_that_is_a_file_is_refused(tmp_path):
    not_a_folder = tmp_path / "tfds"
    not_a_folder.write_text("")
    with pytest.raises(data.DataError) as error:
        _load("xor", not_a_folder)
    assert str(error.value) == (
        f"data.data_dir {str(not_a_folder)!r} is a file, not a folder; "
        "set data.data_dir to a folder (it is created when missing)."
    )
    with pytest.raises(data.DataError, match=r"lies under '.*tfds', which is a file, not a"):
        _load("xor", not_a_folder / "below")


@pytest.fixture
def mnist_copy(shared_data_dir, tmp_path):
    """A writable copy of the canonical MNIST files."""
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    for name in MNIST_FILES:
        (manual_dir / name).write_bytes((shared_data_dir / "mnist" / name).read_bytes())
    return manual_dir


def test_a_truncated_manual_file_is_named(mnist_copy, tmp_path, no_download):
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(data.DataError) as error:
        data.prepare_offline("mnist", mnist_copy, tmp_path / "tfds")
    # 4542 bytes: the size TFDS records for this file (url_checksums/mnist.tsv).
    assert str(error.value) == (
        f"data.manual_dir file {str(path)!r} has 1000 bytes instead of 4542: it is "
        "truncated or corrupt; fetch it again from "
        "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-labels-idx1-ubyte.gz"
    )


def test_a_corrupt_manual_file_of_the_right_size_is_named(mnist_copy, tmp_path, no_download):
    path = mnist_copy / "train-labels-idx1-ubyte.gz"
    content = bytearray(path.read_bytes())
    content[100] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(data.DataError) as error:
        data.prepare_offline("mnist", mnist_copy, tmp_path / "tfds")
    message = str(error.value)
    assert message.startswith(f"data.manual_dir file {str(path)!r} does not have the sha256 ")
    assert message.endswith(
        "it is corrupt; fetch it again from "
        "https://storage.googleapis.com/cvdf-datasets/mnist/"
        "train-labels-idx1-ubyte.gz"
    )
    assert "\n" not in message


def test_a_wrong_checksum_from_tfds_becomes_one_line(tmp_path, monkeypatch, capsys):
    # A download that arrives corrupt: TFDS's own check fails inside download_and_prepare.
    def corrupt(self, *args, **kwargs):
        raise download_manager.NonMatchingChecksumError("Artifact x has wrong checksum:\n* ...")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", corrupt)
    with pytest.raises(data.DataError) as error:
        _load("xor", tmp_path / "tfds")
    assert str(error.value) == (
        "A file of 'kerasmlp_playground' has the wrong checksum; fetch it again. "
        "TFDS: Artifact x has wrong checksum:"
    )
    assert capsys.readouterr().out == "preparing xor ... failed\n"


# Run in a fresh Python by the next test: prepares spirals, prints a digest of its examples.
PREPARE_AND_DIGEST = """
import hashlib, sys
from kerasmlp import data
from kerasmlp.train import _first_batch
datasets = data.load_datasets("spirals", batch_size=5000, data_dir=sys.argv[1])
digest = hashlib.sha256()
for split in (datasets.train.unbatch().batch(10**6), datasets.validation, datasets.test):
    for x, y in split:
        digest.update(x.numpy().tobytes()); digest.update(y.numpy().tobytes())
print("digest", digest.hexdigest(), flush=True)
"""


def test_two_runs_preparing_one_data_dir_at_once_both_succeed(tmp_path):
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    lock_path = data_dir / ".kerasmlp-kerasmlp_playground.lock"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    outputs = [tmp_path / f"run{i}.out" for i in range(2)]
    # This test holds the lock until both runs wait for it, so that they start
    # preparing at the same moment; the one that gets it second must find the
    # dataset prepared by the first.
    with open(lock_path, "a") as lock, contextlib.ExitStack() as files:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", COLLECTOR_OFF + PREPARE_AND_DIGEST, str(data_dir)],
                stdout=files.enter_context(open(out, "w")),
                stderr=subprocess.STDOUT,
                env=env,
            )
            for out in outputs
        ]
        try:
            deadline = time.monotonic() + 240
            while not all("waiting for another run" in out.read_text() for out in outputs):
                assert all(run.poll() is None for run in runs), [o.read_text() for o in outputs]
                assert time.monotonic() < deadline, "the runs never reached the lock"
                time.sleep(0.5)
            fcntl.flock(lock, fcntl.LOCK_UN)
            for run in runs:
                run.wait(timeout=240)
        finally:
            for run in runs:
                run.kill()
    texts = [out.read_text() for out in outputs]
    assert [run.returncode for run in runs] == [0, 0], texts
    digests = [re.search(r"^digest (\w+)$", text, re.M).group(1) for text in texts]
    assert digests[0] == digests[1]
    # Exactly one of them prepared the data.
    assert sorted("preparing spirals ... done in" in text for text in texts) == [False, True]
