"""Tests for kerasmlp.playground: the numpy generators and the TFDS builder that serves them."""

import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kerasmlp import playground

CLASSIFIERS = {
    "spirals": playground.make_spirals,
    "circles": playground.make_circles,
    "xor": playground.make_xor,
    "gaussians": playground.make_gaussians,
}
ALL = {**CLASSIFIERS, "sine": playground.make_sine}


def _fit_logistic_regression(x, y, steps=300, learning_rate=1.0):
    """Plain numpy logistic regression by full-batch gradient descent: the linear baseline."""
    features = np.c_[x, np.ones(len(x))]
    w = np.zeros(features.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-features @ w))
        w -= learning_rate * features.T @ (p - y) / len(y)
    return lambda x_new: np.c_[x_new, np.ones(len(x_new))] @ w


def _knn_predict(x_train, y_train, x_new, k=5):
    """Mean of the k nearest training targets (numpy): proof that the labels are learnable."""
    distances = ((x_new[:, None, :] - x_train[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(distances, axis=1)[:, :k]
    return y_train[nearest].mean(axis=1)


def _train_test(generator):
    train = generator(2000, playground.NOISE, np.random.default_rng(0))
    test = generator(500, playground.NOISE, np.random.default_rng(1))
    return train, test


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("n", [1, 7, 100])
def test_generator_shapes_and_dtypes(name, n):
    x, y = ALL[name](n, playground.NOISE, np.random.default_rng(0))
    assert x.shape == (n, 2) and x.dtype == np.float32
    assert y.shape == (n,)
    assert y.dtype == (np.float32 if name == "sine" else np.int64)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))


@pytest.mark.parametrize("name", list(ALL))
def test_generator_points_lie_in_the_unit_square(name):
    x, _ = ALL[name](1000, playground.NOISE, np.random.default_rng(0))
    # [-1, 1] plus the Gaussian blobs' tails and the noise.
    assert np.abs(x).max() < 1.5
    assert np.abs(x).max() > 0.8


@pytest.mark.parametrize("name", list(CLASSIFIERS))
@pytest.mark.parametrize("n", [100, 101])
def test_classes_are_balanced(name, n):
    _, y = CLASSIFIERS[name](n, playground.NOISE, np.random.default_rng(0))
    assert sorted(np.bincount(y, minlength=2)) == [n // 2, n - n // 2]


@pytest.mark.parametrize("name", list(ALL))
def test_generators_are_deterministic_given_the_rng(name):
    first = ALL[name](50, playground.NOISE, np.random.default_rng(3))
    again = ALL[name](50, playground.NOISE, np.random.default_rng(3))
    other = ALL[name](50, playground.NOISE, np.random.default_rng(4))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_spirals_without_noise_are_each_others_half_turn():
    x, y = playground.make_spirals(8, 0.0, np.random.default_rng(0))
    # By hand: 4 points per arm at s = 0, 1/4, 1/2, 3/4; radius s, angle 3.5*pi*s
    # (+ pi for the second arm), so arm 1 is arm 0 mirrored through the origin.
    np.testing.assert_allclose(x[y == 1], -x[y == 0], atol=1e-6)
    s = np.arange(4) / 4
    np.testing.assert_allclose(np.linalg.norm(x[y == 0], axis=1), s, atol=1e-6)
    angle = 3.5 * np.pi / 4
    np.testing.assert_allclose(x[y == 0][1], [np.sin(angle) / 4, np.cos(angle) / 4], atol=1e-6)


def test_circles_without_noise_keep_disc_and_ring_apart():
    x, y = playground.make_circles(400, 0.0, np.random.default_rng(0))
    radius = np.linalg.norm(x, axis=1)
    assert radius[y == 1].max() <= 0.5 + 1e-6
    assert radius[y == 0].min() >= 0.7 - 1e-6 and radius[y == 0].max() <= 1.0 + 1e-6


def test_xor_without_noise_labels_the_sign_of_the_product():
    x, y = playground.make_xor(400, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(y, (x[:, 0] * x[:, 1] > 0).astype(np.int64))
    assert np.abs(x).min() >= 0.05 - 1e-6  # The padding away from the axes.


def test_sine_without_noise_is_the_formula():
    x, target = playground.make_sine(200, 0.0, np.random.default_rng(0))
    expected = np.sin(np.pi * x[:, 0]) * np.cos(np.pi * x[:, 1])  # numpy, float64
    np.testing.assert_allclose(target, expected, atol=1e-6)


@pytest.mark.parametrize("name", ["spirals", "circles", "xor"])
def test_a_linear_model_fails_where_the_labels_are_learnable(name):
    (x, y), (x_test, y_test) = _train_test(CLASSIFIERS[name])
    linear = _fit_logistic_regression(x, y)
    linear_accuracy = np.mean((linear(x_test) > 0) == y_test)
    knn_accuracy = np.mean((_knn_predict(x, y, x_test) > 0.5) == y_test)
    # Chance is 0.5; a linear boundary gets at most ~0.6 on these shapes.
    assert linear_accuracy < 0.7, linear_accuracy
    assert knn_accuracy > 0.97, knn_accuracy


def test_gaussians_are_linearly_separable():
    (x, y), (x_test, y_test) = _train_test(playground.make_gaussians)
    linear = _fit_logistic_regression(x, y)
    assert np.mean((linear(x_test) > 0) == y_test) > 0.97


def test_sine_defeats_a_linear_fit_but_not_a_local_one():
    (x, target), (x_test, target_test) = _train_test(playground.make_sine)
    design = np.c_[x, np.ones(len(x))]
    w, *_ = np.linalg.lstsq(design, target, rcond=None)

    def r2(prediction):
        return 1 - np.mean((prediction - target_test) ** 2) / np.var(target_test)

    assert r2(np.c_[x_test, np.ones(len(x_test))] @ w) < 0.05
    assert r2(_knn_predict(x, target, x_test)) > 0.95


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Every playground config prepared once into a temporary data_dir, with sockets forbidden."""
    data_dir = tmp_path_factory.mktemp("tfds")
    builders = {}
    with pytest.MonkeyPatch.context() as patch:

        def no_network(*args, **kwargs):
            raise AssertionError("the playground must prepare without the network")

        patch.setattr(socket, "create_connection", no_network)
        patch.setattr(socket.socket, "connect", no_network)
        for config in playground.CONFIGS:
            builder = tfds.builder(f"kerasmlp_playground/{config.name}", data_dir=str(data_dir))
            builder.download_and_prepare()
            builders[config.name] = builder
    return builders


def _as_numpy(builder, split):
    ds = builder.as_dataset(split=split, as_supervised=True, batch_size=-1)
    x, y = tfds.as_numpy(ds)
    return x, y


def test_builder_is_registered_with_one_config_per_dataset():
    assert "kerasmlp_playground" in tfds.list_builders(with_community_datasets=False)
    names = [config.name for config in playground.KerasmlpPlayground.BUILDER_CONFIGS]
    assert names == ["spirals", "circles", "xor", "gaussians", "sine"]


@pytest.mark.parametrize("name", list(ALL))
def test_builder_prepares_train_and_test_splits(prepared, name):
    builder = prepared[name]
    assert builder.is_prepared()
    assert builder.info.splits["train"].num_examples == playground.NUM_TRAIN
    assert builder.info.splits["test"].num_examples == playground.NUM_TEST
    x, y = _as_numpy(builder, "train")
    assert x.shape == (playground.NUM_TRAIN, 2) and x.dtype == np.float32
    if name == "sine":
        assert builder.info.supervised_keys == ("features", "target")
        assert y.dtype == np.float32 and y.shape == (playground.NUM_TRAIN,)
    else:
        assert builder.info.supervised_keys == ("features", "label")
        label = builder.info.features["label"]
        assert isinstance(label, tfds.features.ClassLabel) and label.num_classes == 2
        assert np.bincount(y).tolist() == [playground.NUM_TRAIN // 2] * 2


@pytest.mark.parametrize("name", list(ALL))
def test_builder_serves_exactly_the_generators_output(prepared, name):
    builder = prepared[name]
    for split, seed, n in [("train", 0, playground.NUM_TRAIN), ("test", 1, playground.NUM_TEST)]:
        x, y = _as_numpy(builder, split)
        expected_x, expected_y = ALL[name](n, playground.NOISE, np.random.default_rng(seed))
        # The builder shuffles the examples once; as a set they are the generator's.
        order, expected_order = np.lexsort(x.T), np.lexsort(expected_x.T)
        np.testing.assert_array_equal(x[order], expected_x[expected_order])
        np.testing.assert_array_equal(y[order], expected_y[expected_order])


def test_builder_mixes_classes_so_the_end_of_train_holds_both(prepared):
    _, y = _as_numpy(prepared["spirals"], "train[3600:]")
    assert 150 < np.sum(y == 1) < 250  # ~Binomial(400, 0.5): 200 +- 10.


def test_preparing_again_gives_the_same_data(prepared, tmp_path):
    builder = tfds.builder("kerasmlp_playground/xor", data_dir=str(tmp_path))
    builder.download_and_prepare()
    for split in ("train", "test"):
        got, want = _as_numpy(builder, split), _as_numpy(prepared["xor"], split)
        for got_array, want_array in zip(got, want, strict=True):
            np.testing.assert_array_equal(got_array, want_array)


def test_config_knows_every_playground_dataset_and_its_task():
    # kerasmlp.config keeps its own table (it must load without TensorFlow); it must agree.
    from kerasmlp.config import PLAYGROUND_TASKS, Config, config_from_dict

    assert PLAYGROUND_TASKS == {c.name: c.task for c in playground.CONFIGS}
    versioned = {"data": {"name": "sine:1.0.0"}, "loss": {"name": "mean_squared_error"}}
    assert config_from_dict({**versioned, "metrics": ["mse"]}).task == "regression"
    assert Config().task == "classification"
