"""Tests for kerasmlp.layers.RandomShift and Dropout (FillMissing's are in tests/test_tabular.py;
each replica's own draws under MirroredStrategy in tests/test_distribute.py).

References: shifts written in numpy (`_shifted`, from tests/test_model.py), and Keras's own
`keras.layers.RandomTranslation(..., fill_mode="constant", interpolation="nearest")`,
whose shifts are drawn from the same distribution.
"""

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasmlp import layers
from kerasmlp.layers import Dense, Dropout, RandomShift
from tests.test_model import _shifted  # the numpy reference shift


def _impulses(n, size=28):
    """n images with one lit pixel in the middle: a shift moves it by (dy, dx)."""
    images = np.zeros((n, size, size, 1), "uint8")
    images[:, size // 2, size // 2, 0] = 255
    return images


def _found_shifts(moved, size=28):
    """(dy, dx) of each impulse image after the shift."""
    flat = np.asarray(moved)[..., 0].reshape(len(moved), -1).argmax(axis=1)
    return np.stack([flat // size - size // 2, flat % size - size // 2], axis=1)


def _call(layer, images, mode):
    """The layer's training call: eager, traced for this batch, or traced for any batch size."""
    if mode == "eager":
        return layer(images, training=True)
    signature = None
    if mode == "any_batch":
        signature = [tf.TensorSpec((None, *images.shape[1:]), tf.as_dtype(images.dtype))]
    return tf.function(lambda x: layer(x, training=True), input_signature=signature)(images)


@pytest.mark.parametrize("mode", ["eager", "tf_function", "any_batch"])
@pytest.mark.parametrize("shape", [(28, 28, 3), (20, 30, 2)], ids=["square", "wide"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_moves_each_image_by_its_own_whole_pixel_shift(mode, shape, dtype):
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (32, *shape)).astype("uint8")
    # bfloat16 holds every integer up to 256 exactly, so the pixels compare exactly there too.
    layer = RandomShift(0.1, seed=3, dtype=dtype)
    moved = _call(layer, images, mode)
    assert moved.dtype == dtype and tuple(moved.shape) == images.shape
    moved = np.asarray(tf.cast(moved, "float32"))
    # At most round(0.1 * 28) = 3 pixels; for 20 x 30 images 2 down and 3 across.
    most_dy, most_dx = round(0.1 * shape[0]), round(0.1 * shape[1])
    shifts = set()
    for image, out in zip(images, moved, strict=True):
        # Every channel moved alike, exactly.
        found = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if np.array_equal(out, _shifted(image, dy, dx).astype("float32"))
        ]
        assert len(found) == 1, "not a whole-pixel shift of its input"
        assert abs(found[0][0]) <= most_dy and abs(found[0][1]) <= most_dx
        shifts.add(found[0])
    assert len(shifts) > 8  # drawn per image, not one shift for the batch


def test_shifts_are_distributed_as_keras_random_translation_draws_them():
    # By hand: factor 0.08 on 28 pixels draws uniform(-2.24, 2.24) and rounds it, so
    # 0 and +-1 each come with probability 1 / 4.48 and +-2 with 0.74 / 4.48.
    expected = {0: 1 / 4.48, 1: 1 / 4.48, -1: 1 / 4.48, 2: 0.74 / 4.48, -2: 0.74 / 4.48}
    n = 4000
    ours = _found_shifts(RandomShift(0.08, seed=1)(_impulses(n), training=True))
    keras_layer = keras.layers.RandomTranslation(
        0.08, 0.08, fill_mode="constant", interpolation="nearest", seed=1
    )
    theirs = _found_shifts(keras_layer(_impulses(n), training=True))
    for shifts in (ours, theirs):
        assert set(np.unique(shifts)) == set(expected)
        for value, p in expected.items():
            frequency = np.mean(shifts == value)
            # 5 standard deviations of a frequency over 2n draws (both axes).
            assert abs(frequency - p) < 5 * np.sqrt(p * (1 - p) / (2 * n)), (value, frequency)


def test_inference_passes_images_unchanged():
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1)).astype("uint8")
    layer = RandomShift(0.2, seed=0)
    np.testing.assert_array_equal(layer(images), images.astype("float32"))
    np.testing.assert_array_equal(layer(images, training=False), images.astype("float32"))
    np.testing.assert_array_equal(RandomShift(0.0)(images, training=True), images)


def test_a_seed_repeats_its_shifts_and_the_state_advances():
    images = _impulses(64)
    first, second = RandomShift(0.1, seed=5), RandomShift(0.1, seed=5)
    a, b = (_found_shifts(layer(images, training=True)) for layer in (first, second))
    np.testing.assert_array_equal(a, b)
    # The SeedGenerator's state is a variable of the layer: the next batch differs.
    assert [v.name for v in first.variables] == ["seed_generator_state"]
    assert not np.array_equal(_found_shifts(first(images, training=True)), a)


def test_rejects_a_factor_out_of_range():
    with pytest.raises(ValueError, match=r"`factor` must be in \[0, 0.5\). Received: factor=0.5"):
        RandomShift(0.5)


@pytest.mark.parametrize(
    "shape", [(2, 5, 5), (None, None, None, 1)], ids=["no_channel_axis", "unknown_size"]
)
def test_rejects_inputs_that_are_not_images_of_known_size(shape):
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\) with height, width"):
        RandomShift(0.1)(keras.Input(batch_shape=shape, dtype="uint8"))


def test_config_round_trip_and_a_saved_model(tmp_path):
    layer = RandomShift(0.15, seed=7, name="shift")
    config = layer.get_config()
    assert config["factor"] == 0.15 and config["seed"] == 7
    assert RandomShift.from_config(config).get_config() == config
    inputs = keras.Input((28, 28, 1), dtype="uint8")
    model = keras.Model(inputs, keras.layers.Flatten()(RandomShift(0.1, seed=0)(inputs)))
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded.layers[1], RandomShift)
    images = _impulses(3)
    np.testing.assert_array_equal(reloaded(images), model(images))


@pytest.mark.parametrize("noise_shape", [None, (None, 1)], ids=["elementwise", "per_row"])
def test_dropout_on_one_device_is_keras_dropout_mask_for_mask(noise_shape, tmp_path):
    # Reference: keras.layers.Dropout with the same seed, call after call, eager and traced.
    x = np.random.default_rng(0).normal(size=(8, 32)).astype("float32")
    ours, keras_layer = (
        cls(0.3, noise_shape=noise_shape, seed=11) for cls in (Dropout, keras.layers.Dropout)
    )
    for call in (
        lambda layer: layer(x, training=True),
        tf.function(lambda layer: layer(x, training=True)),
    ):
        for _ in range(2):
            np.testing.assert_array_equal(call(ours), call(keras_layer))
    np.testing.assert_array_equal(ours(x), x)  # inference: the inputs as they are
    config = ours.get_config()
    assert Dropout.from_config(config).get_config() == config
    inputs = keras.Input((32,))
    model = keras.Model(inputs, Dropout(0.3, seed=0)(inputs))
    model.save(tmp_path / "model.keras")
    assert isinstance(keras.models.load_model(tmp_path / "model.keras").layers[1], Dropout)


def test_docstring_examples_run():
    result = doctest.testmod(layers)
    assert result.attempted >= 6
    assert result.failed == 0


def _keras_seeds(seed, count):
    """The stateless seeds of Keras's first `count` float32 draws from SeedGenerator(seed),
    found by matching `keras.random.uniform` (Keras's draw) bit for bit."""
    reference, probe = keras.random.SeedGenerator(seed), keras.random.SeedGenerator(seed)
    seeds = []
    for _ in range(count):
        drawn = keras.random.uniform((4,), seed=reference)
        candidate = layers.next_int32_seed(probe)
        np.testing.assert_array_equal(tf.random.stateless_uniform((4,), seed=candidate), drawn)
        seeds.append(candidate)
    return seeds


def _dropped_16_bit(x, seed, rate, noise_shape):
    """Dropout by 16 random bits a unit, written in numpy: the 32-bit Philox words of
    Keras's stateless draw for `seed`, each split into its low and high 16 bits, a unit
    kept where its bits are >= round(rate * 65536); kept units times 1 / (1 - rate) in
    float32, rounded once to x's dtype."""
    mask_shape = [n if size is None else size for n, size in zip(x.shape, noise_shape, strict=True)]
    count = int(np.prod(mask_shape))
    words = tf.random.stateless_uniform(
        [(count + 1) // 2], seed=seed, minval=None, maxval=None, dtype=tf.uint32
    ).numpy()
    bits = words.astype("<u4").view("<u2")[:count].reshape(mask_shape)
    keep = bits >= round(rate * 65536)
    scaled = np.asarray(x).astype("float32") * np.float32(1 / (1 - rate))
    return np.where(keep, scaled, np.float32(0)).astype(np.asarray(x).dtype)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize(
    "shape, noise_shape",
    [((256, 1024), (None, None)), ((64, 256), (None, 1)), ((5, 7), (None, None))],
    ids=["elementwise", "per_row", "odd_count"],
)
def test_dropout_under_a_16_bit_policy_draws_16_bits_a_unit(policy, shape, noise_shape):
    # Keras's layer draws its uniforms in the compute dtype: bfloat16 has 128 values in
    # [0, 1), so rate 0.3 kept 69.5% of the units and scaled them by 1.4297. Reference:
    # the numpy draw above (`_dropped_16_bit`) on Keras's seeds, call after call.
    dtype = policy.removeprefix("mixed_")
    x = tf.cast(np.random.default_rng(1).normal(size=shape), dtype)
    given_shape = None if noise_shape == (None, None) else noise_shape
    for call in (
        lambda layer, x: layer(x, training=True),
        tf.function(lambda layer, x: layer(x, training=True)),
    ):
        ours = Dropout(0.3, noise_shape=given_shape, seed=11, dtype=policy)
        for seed in _keras_seeds(11, 2):
            got = call(ours, x)
            assert got.dtype == dtype
            expected = _dropped_16_bit(x.numpy(), seed, 0.3, noise_shape)
            np.testing.assert_array_equal(got.numpy().astype("float32"), expected.astype("float32"))
    np.testing.assert_array_equal(ours(x).numpy(), x.numpy())  # inference: the inputs as they are


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_dropout_under_a_16_bit_policy_keeps_its_share(policy):
    # round(0.3 * 65536) = 19661 of the 65536 values of 16 bits are dropped: 0.3000031.
    # The share kept, within 5 standard deviations of 4M draws (1.1e-3 / 4.6 = 2.3e-4),
    # is 0.7; Keras's bfloat16 draw keeps 89 / 128 = 0.6953, outside it.
    ones = tf.ones((65536, 64), policy.removeprefix("mixed_"))
    kept = Dropout(0.3, seed=3, dtype=policy)(ones, training=True) != 0
    share = float(tf.reduce_mean(tf.cast(kept, "float32")))
    assert abs(share - 45875 / 65536) < 5 * np.sqrt(0.21 / ones.shape.num_elements()), share


@pytest.mark.parametrize("rate", [1e-6, 1 - 1e-6])
def test_keep_mask_draws_float32_where_16_bits_cannot_tell_the_rate_from_0_or_1(rate):
    # round(1e-6 * 65536) = 0 would keep everything, round((1 - 1e-6) * 65536) = 65536
    # overflow 16 bits: float32 uniforms instead, as tf.nn.experimental.stateless_dropout's.
    seed = tf.constant([3, 4])
    got = layers.keep_mask([50, 40], seed, rate)
    np.testing.assert_array_equal(got, tf.random.stateless_uniform([50, 40], seed=seed) >= rate)


def _dense_pair(activation, policy):
    """kerasmlp's Dense and Keras's Dense without activation, built with the same weights."""
    ours = Dense(64, activation=activation, dtype=policy)
    linear = keras.layers.Dense(64, dtype=policy)
    ours.build((None, 32))
    linear.build((None, 32))
    linear.set_weights(ours.get_weights())
    return ours, linear


@pytest.mark.parametrize("activation", ["gelu", "tanh", "swish"])
def test_dense_under_bfloat16_takes_a_smooth_activation_in_float32(activation):
    # Reference: Keras's Dense (no activation) under the same policy for the bfloat16 product
    # and bias, then Keras's activation in float32, rounded once to bfloat16. Keras's own
    # Dense applies it in bfloat16, 2-4x dearer on a CPU (SMOOTH_ACTIVATIONS).
    x = tf.constant(np.random.default_rng(2).normal(size=(8, 32)), "float32")
    ours, linear = _dense_pair(activation, "mixed_bfloat16")
    act = keras.activations.get(activation)

    def reference(x):
        return tf.cast(act(tf.cast(linear(x), "float32")), "bfloat16")

    for call in (lambda f, x: f(x), tf.function(lambda f, x: f(x))):
        got = call(ours, x)
        assert got.dtype == "bfloat16"
        np.testing.assert_array_equal(got.numpy(), call(reference, x).numpy())
    with tf.GradientTape(persistent=True) as tape:
        ours_out = tf.reduce_sum(tf.cast(ours(x), "float32"))
        reference_out = tf.reduce_sum(tf.cast(reference(x), "float32"))
    np.testing.assert_array_equal(
        tape.gradient(ours_out, ours.kernel), tape.gradient(reference_out, linear.kernel)
    )
    # Keras's layer rounds the pre-activations to bfloat16 and applies the activation there:
    # the same to within bfloat16's precision, not bit for bit.
    keras_layer = keras.layers.Dense(64, activation=activation, dtype="mixed_bfloat16")
    keras_layer.build((None, 32))
    keras_layer.set_weights(ours.get_weights())
    np.testing.assert_allclose(
        ours(x).numpy().astype("float32"), keras_layer(x).numpy().astype("float32"), atol=0.03
    )


@pytest.mark.parametrize(
    "activation,policy",
    [("relu", "mixed_bfloat16"), ("leaky_relu", "mixed_bfloat16"), (None, "mixed_bfloat16")]
    + [("gelu", "float32"), ("tanh", "float32")],
)
def test_dense_is_keras_dense_for_relu_and_in_float32(activation, policy):
    # Reference: keras.layers.Dense with the same weights, bit for bit.
    x = tf.constant(np.random.default_rng(3).normal(size=(8, 32)), "float32")
    ours = Dense(64, activation=activation, dtype=policy)
    keras_layer = keras.layers.Dense(64, activation=activation, dtype=policy)
    ours.build((None, 32))
    keras_layer.build((None, 32))
    keras_layer.set_weights(ours.get_weights())
    np.testing.assert_array_equal(ours(x).numpy(), keras_layer(x).numpy())


def test_a_bfloat16_gelu_dense_saves_and_reloads(tmp_path):
    inputs = keras.Input((32,))
    outputs = keras.layers.Dense(3, dtype="float32")(
        Dense(64, activation="gelu", dtype="mixed_bfloat16")(inputs)
    )
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded.layers[1], Dense)
    assert reloaded.layers[1].dtype_policy.name == "mixed_bfloat16"
    x = np.random.default_rng(4).normal(size=(5, 32)).astype("float32")
    np.testing.assert_array_equal(reloaded(x), model(x))
