"""Real MNIST and Fashion-MNIST, prepared offline from the canonical files in ../shared/data.

Skipped when the files are absent (see `shared_data_dir` in conftest.py). Both
datasets are prepared once per session into ONE temporary data_dir, which is the
case where TFDS has been seen to build Fashion-MNIST from the MNIST files; the
mean pixel checks would catch it.
"""

import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kerasmlp import data
from kerasmlp.config import load_config
from kerasmlp.train import train_and_evaluate
from tests.conftest import REPO_ROOT

# Reference figures from ../shared/data/README.md (mean pixel on the 0..255 scale,
# three decimals; label counts per class), except the MNIST test counts, which
# are the standard ones of LeCun's distribution.
EXPECTED = {
    "mnist": {
        "mean": {"train": 33.318, "test": 33.791},
        "counts": {
            "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
            "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
        },
    },
    "fashion_mnist": {
        "mean": {"train": 72.940, "test": 73.147},
        "counts": {"train": [6000] * 10, "test": [1000] * 10},
    },
}
SIZES = {"train": 60_000, "test": 10_000}


def _no_probe(*args, **kwargs):
    raise AssertionError("a prepared dataset or a manual_dir must not probe the network")


@pytest.fixture(scope="module")
def data_dir(real_tfds_dir):
    # Both datasets prepared into one data_dir (conftest.py), the pitfall's setting.
    return real_tfds_dir


@pytest.fixture(scope="module", params=["mnist", "fashion_mnist"])
def prepared(request, shared_data_dir, data_dir):
    """(name, builder) of a dataset prepared offline from its canonical files."""
    name = request.param
    start = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "probe_download_hosts", _no_probe)
        builder = data.prepare_offline(name, shared_data_dir / name, data_dir)
    print(f"\n{name} prepared offline in {time.monotonic() - start:.1f} s")  # Reported only.
    return name, builder


def test_prepared_test_images_match_the_reference(prepared):
    # The raw uint8 images as TFDS prepared them (train is checked through the
    # pipeline below; decoding it twice would cost ~5 s per dataset).
    name, builder = prepared
    split = "test"
    images, labels = tfds.as_numpy(
        builder.as_dataset(split=split, as_supervised=True, batch_size=-1)
    )
    assert images.shape == (SIZES[split], 28, 28, 1) and images.dtype == np.uint8
    assert images.mean(dtype=np.float64) == pytest.approx(EXPECTED[name]["mean"][split], abs=6e-4)
    assert np.bincount(labels, minlength=10).tolist() == EXPECTED[name]["counts"][split]


def test_load_datasets_serves_the_prepared_data(prepared, data_dir, monkeypatch):
    name, _ = prepared
    monkeypatch.setattr(data, "probe_download_hosts", _no_probe)
    datasets = data.load_datasets(name, batch_size=2000, data_dir=data_dir, validation_fraction=0.1)
    info = datasets.info
    assert (info.num_train, info.num_validation, info.num_test) == (54_000, 6_000, 10_000)
    assert (info.input_shape, info.input_dim, info.num_classes) == ((28, 28, 1), 784, 10)

    def totals(*pipelines):
        pixel_sum, n, counts = 0.0, 0, np.zeros(10, np.int64)
        for ds in pipelines:
            for x, y in ds:
                assert x.shape[1:] == (28, 28, 1) and x.dtype.name == "uint8"
                assert y.dtype.name == "int32"
                pixel_sum += x.numpy().sum(dtype=np.float64)
                n += x.shape[0]
                counts += np.bincount(y.numpy(), minlength=10)
        # x is the raw uint8 image (the model scales it): the README's 0..255 mean pixel.
        return pixel_sum / n / 784, n, counts.tolist()

    # Train plus validation is the whole TFDS train split, as TFDS decodes it.
    train_mean, n, counts = totals(datasets.train, datasets.validation)
    assert n == SIZES["train"] and counts == EXPECTED[name]["counts"]["train"]
    assert train_mean == pytest.approx(EXPECTED[name]["mean"]["train"], abs=6e-4)
    test_mean, n, counts = totals(datasets.test)
    assert n == SIZES["test"] and counts == EXPECTED[name]["counts"]["test"]
    assert test_mean == pytest.approx(EXPECTED[name]["mean"]["test"], abs=6e-4)


def test_the_extracted_copies_are_deleted_after_preparing(prepared, data_dir):
    # TFDS decompresses the four files (about 53 MB for MNIST) under
    # downloads/<name>/extracted; the prepared TFRecords do not need them, and the
    # tests above read the dataset after they are gone.
    name, _ = prepared
    assert not (data_dir / "downloads" / name).exists()
    assert sorted(p.name for p in (data_dir / name).glob("*/*.tfrecord*")) == [
        f"{name}-test.tfrecord-00000-of-00001",
        f"{name}-train.tfrecord-00000-of-00001",
    ]


def test_prepare_offline_again_is_a_no_op(prepared, data_dir, tmp_path):
    name, _ = prepared
    # Prepared already: the manual_dir is not even looked at.
    builder = data.prepare_offline(name, tmp_path / "not-there", data_dir)
    assert builder.is_prepared()


def test_one_epoch_of_the_mnist_config_on_real_mnist(data_dir, tmp_path):
    # The real entry point on real MNIST (here, not in test_end_to_end.py, so that one
    # pytest-xdist worker prepares the real data and no other waits for it); bar from issue 2.
    config = load_config(
        REPO_ROOT / "configs" / "mnist.yaml",
        ["train.epochs=1", "train.histogram_every_epochs=0", f"data.data_dir={data_dir}"],
    )
    results = train_and_evaluate(config, tmp_path / "run")
    assert results["test_accuracy"] >= 0.96
