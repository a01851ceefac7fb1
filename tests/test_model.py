"""Tests for kerasmlp.model: the Dense stack, its head and the probability wrapper."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasmlp.config import ConfigError, ModelConfig
from kerasmlp.model import Head, build_model, probability_model


@pytest.mark.parametrize(
    "task,num_classes,loss,expected",
    [
        ("classification", 10, "sparse_categorical_crossentropy", Head("softmax", 10)),
        ("classification", 2, "sparse_categorical_crossentropy", Head("softmax", 2)),
        ("classification", 2, "binary_crossentropy", Head("sigmoid", 1)),
        ("regression", None, "mean_squared_error", Head("linear", 1)),
    ],
)
def test_head_for_task(task, num_classes, loss, expected):
    assert Head.for_task(task, num_classes=num_classes, loss_name=loss) == expected


def test_binary_crossentropy_needs_two_classes():
    with pytest.raises(ConfigError, match="needs a dataset with 2 classes; this one has 10"):
        Head.for_task("classification", num_classes=10, loss_name="binary_crossentropy")


@pytest.mark.parametrize(
    "head,expected", [(Head("softmax", 10), 10), (Head("sigmoid", 1), 2), (Head("linear", 1), None)]
)
def test_head_num_classes(head, expected):
    assert head.num_classes == expected


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_head_routes_labels_to_the_loss(compiled):
    # Each loss's own convention (Keras's): sparse ids; one-hot rows for
    # categorical cross-entropy; a (batch, 1) column for one-output heads.
    ids = tf.constant([2, 0])
    logits = tf.constant([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]])
    column = tf.constant([[0.5], [-1.5]])

    def route(head, labels, outputs, one_hot=False):
        return head.loss_inputs(labels, outputs, one_hot=one_hot)

    route = tf.function(route) if compiled else route
    y, p = route(Head("softmax", 3), ids, logits)
    assert y.numpy().tolist() == [2, 0] and p is not None
    y, _ = route(Head("softmax", 3), ids, logits, one_hot=True)
    np.testing.assert_array_equal(y.numpy(), [[0, 0, 1], [1, 0, 0]])
    assert y.dtype == tf.float32
    y, _ = route(Head("sigmoid", 1), tf.constant([1, 0]), column)
    np.testing.assert_array_equal(y.numpy(), [[1.0], [0.0]])
    y, _ = route(Head("linear", 1), tf.constant([2.5, -1.0], tf.float64), column)
    assert y.dtype == tf.float32 and y.numpy().tolist() == [[2.5], [-1.0]]


def test_head_gives_the_metrics_one_logit_per_class():
    # A sigmoid logit z becomes [0, z]: softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)],
    # worked with numpy here, so one set of metrics serves both classification heads.
    z = np.array([[-2.0], [0.0], [3.0]], np.float32)
    labels, two = Head("sigmoid", 1).metric_inputs(tf.constant([0, 1, 1]), z)
    assert labels.numpy().tolist() == [0, 1, 1]
    sigmoid = 1 / (1 + np.exp(-z[:, 0]))
    np.testing.assert_allclose(
        tf.nn.softmax(two).numpy(), np.stack([1 - sigmoid, sigmoid], -1), rtol=1e-6
    )
    labels, values = Head("linear", 1).metric_inputs(tf.constant([1, 2]), z[:2])
    assert labels.numpy().tolist() == [[1.0], [2.0]] and values.shape == (2, 1)
    logits = tf.constant([[0.1, 0.9]])
    labels, same = Head("softmax", 2).metric_inputs(tf.constant([1]), logits)
    assert labels.numpy().tolist() == [1]
    np.testing.assert_array_equal(same.numpy(), logits.numpy())


def test_head_probabilities_and_classes():
    # softmax and sigmoid worked with numpy; a sigmoid head's class is z > 0,
    # i.e. sigmoid(z) > 0.5 (z = 0 gives class 0 in both).
    logits = np.array([[1.0, 2.0, 0.5], [3.0, -1.0, 0.0]], np.float32)
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    softmax = Head("softmax", 3)
    np.testing.assert_allclose(softmax.probabilities(logits), expected, rtol=1e-6)
    assert softmax.classes(logits).tolist() == [1, 0]
    z = np.array([[-2.0], [0.0], [0.7]], np.float32)
    sigmoid = Head("sigmoid", 1)
    p = 1 / (1 + np.exp(-z[:, 0]))
    np.testing.assert_allclose(sigmoid.probabilities(z), np.stack([1 - p, p], -1), rtol=1e-6)
    assert sigmoid.classes(z).tolist() == [0, 0, 1]
    assert sigmoid.classes(z).tolist() == np.argmax(sigmoid.probabilities(z), -1).tolist()
    with pytest.raises(ValueError, match="no class probabilities"):
        Head("linear", 1).probabilities(z)
    with pytest.raises(ValueError, match="predicts values, not classes"):
        Head("linear", 1).classes(z)


def test_layers_shapes_and_logit_head():
    config = ModelConfig(hidden_units=(16, 8), activation="tanh", dropout=0.5)
    model = build_model(config, input_dim=5, head=Head("softmax", 3), seed=0)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.name for layer in dense] == ["dense_0", "dense_1", "head"]
    assert [layer.units for layer in dense] == [16, 8, 3]
    assert [layer.activation.__name__ for layer in dense] == ["tanh", "tanh", "linear"]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [
        0.5,
        0.5,
    ]
    assert model(np.zeros((4, 5), "float32")).shape == (4, 3)


def test_no_hidden_layers_is_a_linear_model():
    model = build_model(ModelConfig(hidden_units=()), input_dim=2, head=Head("sigmoid", 1))
    assert [layer.name for layer in model.layers[1:]] == ["head"]


@pytest.mark.parametrize(
    "activation", ["relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu", "swish"]
)
def test_every_activation_builds(activation):
    model = build_model(
        ModelConfig(hidden_units=(4,), activation=activation), input_dim=3, head=Head("linear", 1)
    )
    assert np.isfinite(model(np.ones((2, 3), "float32"))).all()


def test_weight_decay_adds_l2_of_every_kernel():
    config = ModelConfig(hidden_units=(4,), weight_decay=0.01)
    model = build_model(config, input_dim=3, head=Head("softmax", 2), seed=1)
    model(np.ones((1, 3), "float32"))
    # Expected by hand: 0.01 * sum of squared kernel entries, for both kernels.
    expected = sum(0.01 * np.sum(np.square(layer.kernel.numpy())) for layer in model.layers[1:])
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-6)


def test_same_seed_same_weights():
    config = ModelConfig(hidden_units=(8,), kernel_initializer="he_normal")
    a = build_model(config, input_dim=3, head=Head("softmax", 2), seed=7)
    b = build_model(config, input_dim=3, head=Head("softmax", 2), seed=7)
    c = build_model(config, input_dim=3, head=Head("softmax", 2), seed=8)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_probability_model_softmax_and_sigmoid():
    x = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    model = build_model(ModelConfig(hidden_units=(4,)), input_dim=3, head=Head("softmax", 4))
    probs = probability_model(model, Head("softmax", 4))(x).numpy()
    logits = model(x).numpy()
    # numpy softmax written here
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5)

    binary = build_model(ModelConfig(hidden_units=(4,)), input_dim=3, head=Head("sigmoid", 1))
    p = probability_model(binary, Head("sigmoid", 1))(x).numpy()
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-binary(x).numpy())), rtol=1e-5)


def test_raw_uint8_images_give_what_prescaled_floats_gave():
    # Two models from one seed: one takes raw uint8 images and scales and flattens them
    # (Rescaling, Flatten), one takes flat float32 scaled as the input pipeline used to
    # (cast, times 1/255, in float32). Their outputs must agree to the bit.
    config = ModelConfig(hidden_units=(16, 8), dropout=0.25)
    raw = build_model(
        config,
        input_dim=12,
        head=Head("softmax", 3),
        seed=4,
        input_shape=(2, 3, 2),
        input_dtype="uint8",
        input_scale=1 / 255,
    )
    flat = build_model(config, input_dim=12, head=Head("softmax", 3), seed=4)
    assert [layer.name for layer in raw.layers[:3]] == ["features", "rescaling", "flatten"]
    assert raw.input.dtype == "uint8" and raw.input_shape == (None, 2, 3, 2)
    images = np.random.default_rng(0).integers(0, 256, (5, 2, 3, 2), dtype=np.uint8)
    scaled = tf.reshape(tf.cast(images, tf.float32), [5, 12]) * (1.0 / 255)
    np.testing.assert_array_equal(raw(images), flat(scaled))
    with pytest.raises(ValueError, match=r"does not hold input_dim=10 values"):
        build_model(config, input_dim=10, head=Head("softmax", 3), input_shape=(2, 3, 2))


RAW_DIGITS = {"input_shape": (28, 28, 1), "input_dtype": "uint8", "input_scale": 1 / 255}


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`image` moved down dy and right dx pixels, black (0) let in: numpy reference."""
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_random_translation_moves_training_images_by_whole_pixels_only():
    config = ModelConfig(hidden_units=(8,), random_translation=0.1)
    model = build_model(config, input_dim=784, head=Head("softmax", 10), seed=3, **RAW_DIGITS)
    names = [layer.name for layer in model.layers[1:4]]
    assert names == ["random_translation", "rescaling", "flatten"]
    images = np.random.default_rng(0).integers(1, 256, (16, 28, 28, 1)).astype(np.uint8)
    layer = model.get_layer("random_translation")
    moved = np.asarray(layer(images, training=True))
    # Each image is its own whole-pixel shift of at most round(0.1 * 28) = 3 pixels
    # (nearest-pixel interpolation, zeros let in), found by trying every one.
    shifts = []
    for image, out in zip(images, moved, strict=True):
        found = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if np.array_equal(out, _shifted(image, dy, dx).astype(out.dtype))
        ]
        assert found, "not a whole-pixel shift of its input"
        shifts.append(found[0])
    assert len(set(shifts)) > 4  # drawn per image, not one shift for the batch
    # Evaluation and the saved model's predictions see the images as they are.
    plain = build_model(
        ModelConfig(hidden_units=(8,)),
        input_dim=784,
        head=Head("softmax", 10),
        seed=3,
        **RAW_DIGITS,
    )
    np.testing.assert_array_equal(model(images, training=False), plain(images, training=False))
    assert not np.allclose(model(images, training=True), plain(images, training=False))


def test_random_translation_needs_images():
    with pytest.raises(ConfigError, match=r"shifts images .* examples have shape \(2,\)"):
        build_model(
            ModelConfig(random_translation=0.1), input_dim=2, head=Head("softmax", 2), seed=0
        )


@pytest.mark.parametrize("factor,moves", [(0.01, False), (0.5 / 28, False), (0.018, True)])
def test_random_translation_too_small_to_move_a_pixel_is_refused(factor, moves):
    # By hand: shifts are uniform in [-factor, factor] x 28 pixels, rounded; with
    # factor x 28 <= 0.5 every one rounds to 0 (Keras's nearest RandomTranslation
    # moves nothing either), and the run trained on the images as they are.
    config = ModelConfig(hidden_units=(8,), random_translation=factor)
    if moves:
        build_model(config, input_dim=784, head=Head("softmax", 10), seed=0, **RAW_DIGITS)
        return
    with pytest.raises(ConfigError) as info:
        build_model(config, input_dim=784, head=Head("softmax", 10), seed=0, **RAW_DIGITS)
    assert str(info.value) == (
        "model.random_translation moves no pixel of these 28x28 images: every shift, up to "
        f"{factor:g} x 28 pixels, rounds to 0. Received: model.random_translation={factor}. "
        "Use 0, or more than 0.0179 (half a pixel)"
    )
