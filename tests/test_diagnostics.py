"""Tests for kerasmlp.diagnostics: unit health by hand, the probe against Keras, the pictures."""

import io
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from kerasmlp import diagnostics
from kerasmlp.components import make_loss, make_optimizer
from kerasmlp.config import ACTIVATIONS, LossConfig, ModelConfig, OptimizerConfig
from kerasmlp.data import DatasetInfo
from kerasmlp.model import Head, build_model
from kerasmlp.trainer import Trainer

# --- unit health ------------------------------------------------------------------


def test_dead_units_are_those_never_positive_on_the_batch():
    # By hand: unit 0 is <= 0 everywhere (dead), unit 1 is positive once, unit 2 is exactly 0.
    z = np.array([[-1.0, -2.0, 0.0], [-0.5, 3.0, 0.0], [-4.0, -1.0, 0.0]])
    assert diagnostics.dead_unit_fraction(z) == pytest.approx(2 / 3)
    assert diagnostics.dead_unit_fraction(np.ones((4, 5))) == 0.0


def tiny_dense(activation):
    """Dense(4) on 1 input: pre-activation z = 1 * x + b with b = (0, 2.9, 3.0, 6.0)."""
    layer = keras.layers.Dense(4, activation=activation)
    layer.build((None, 1))
    layer.set_weights([np.ones((1, 4), "float32"), np.array([0.0, 2.9, 3.0, 6.0], "float32")])
    return layer


def pre_activations(layer, x):
    return np.asarray(x @ layer.kernel.numpy() + layer.bias.numpy())


def test_saturation_by_hand_on_a_tiny_tanh_layer():
    # x = 0 gives z = (0, 2.9, 3.0, 6.0). tanh'(z) = 1 - tanh(z)^2 (max 1):
    # 1, 0.0120, 0.00987, 2.5e-5 -> below 0.01: the last two units.
    layer = tiny_dense("tanh")
    z = pre_activations(layer, np.zeros((1, 1), "float32"))
    np.testing.assert_allclose(z, [[0.0, 2.9, 3.0, 6.0]])
    assert diagnostics.saturated_unit_fraction("tanh", z) == pytest.approx(2 / 4)
    # Two examples, x = 0 and x = -3: z = (-3, -0.1, 0, 3): one more saturated pair out of 8.
    z = pre_activations(layer, np.array([[0.0], [-3.0]], "float32"))
    assert diagnostics.saturated_unit_fraction("tanh", z) == pytest.approx(4 / 8)


def test_saturation_by_hand_on_a_tiny_sigmoid_layer():
    # sigmoid'(z) = s (1 - s) (max 1/4), threshold 0.0025: |z| > 5.99.
    # z = (0, 2.9, 3.0, 6.0): 0.25, 0.0498, 0.0452, 0.00247 -> only the last unit.
    layer = tiny_dense("sigmoid")
    z = pre_activations(layer, np.zeros((1, 1), "float32"))
    assert diagnostics.saturated_unit_fraction("sigmoid", z) == pytest.approx(1 / 4)
    # Bias 5.9 is not saturated: sigmoid'(5.9) = 0.00271 > 0.0025.
    assert diagnostics.saturated_unit_fraction("sigmoid", np.array([[5.9, -5.9]])) == 0.0
    assert diagnostics.saturated_unit_fraction("sigmoid", np.array([[6.0, -6.0]])) == 1.0


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_activation_derivative_matches_autodiff(activation):
    # Reference: tf.GradientTape through Keras's own activation.
    z = tf.constant(np.linspace(-8, 8, 33), tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(z)
        y = keras.activations.get(activation)(z)
    np.testing.assert_allclose(
        diagnostics.activation_derivative(activation, z.numpy()), tape.gradient(y, z), atol=1e-12
    )


def test_activation_derivative_refuses_other_activations():
    with pytest.raises(ValueError, match="activation must be one of"):
        diagnostics.activation_derivative("relu", np.zeros(3))


@pytest.mark.parametrize(
    "activation,key",
    [
        ("relu", "dead_fraction"),
        ("leaky_relu", "dead_fraction"),
        ("elu", "dead_fraction"),
        ("gelu", "dead_fraction"),
        ("swish", "dead_fraction"),
        ("sigmoid", "saturated_fraction"),
        ("tanh", "saturated_fraction"),
        ("linear", None),
    ],
)
def test_unit_health_picks_the_measure_of_the_activation(activation, key):
    health = diagnostics.unit_health(activation, np.zeros((2, 3)))
    assert list(health) == ([key] if key else [])


# --- the probe --------------------------------------------------------------------


THREE_LOGITS = Head("softmax", 3)


def make_trainer(activation="relu", head=THREE_LOGITS, dropout=0.0):
    config = ModelConfig(
        hidden_units=(8, 6), activation=activation, dropout=dropout, weight_decay=1e-3
    )
    model = build_model(config, input_dim=4, head=head, seed=0)
    return Trainer(
        model,
        make_loss(LossConfig()),
        make_optimizer(OptimizerConfig()),
        head=head,
        metric_names=(),
    )


def batch(n=16, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, classes, n).astype("int32")


@pytest.mark.parametrize("dropout", [0.0, 0.5], ids=["no-dropout", "dropout"])
def test_probe_gradients_and_pre_activations_match_keras(dropout):
    trainer = make_trainer(dropout=dropout)
    probe = diagnostics.ModelProbe(trainer.model, trainer.total_loss, trainer.head)
    x, y = batch()
    reports = probe.layer_reports(x, y)
    assert [r.name for r in reports] == ["dense_0", "dense_1", "head"]
    assert [r.activation for r in reports] == ["relu", "relu", "linear"]

    # Reference: a tape over the model's own inference call (dropout off).
    model = trainer.model
    with tf.GradientTape() as tape:
        loss = trainer.total_loss(y, model(x, training=False))
    grads = dict(
        zip(
            [v.path for v in model.trainable_variables],
            tape.gradient(loss, model.trainable_variables),
            strict=True,
        )
    )
    inputs = x
    for report, layer in zip(reports, [model.get_layer(r.name) for r in reports], strict=True):
        np.testing.assert_allclose(report.kernel, layer.kernel.numpy())
        np.testing.assert_allclose(
            report.kernel_gradient, grads[layer.kernel.path], rtol=1e-5, atol=1e-7
        )
        np.testing.assert_allclose(
            report.bias_gradient, grads[layer.bias.path], rtol=1e-5, atol=1e-7
        )
        z = inputs @ layer.kernel.numpy() + layer.bias.numpy()
        np.testing.assert_allclose(report.pre_activations, z, rtol=1e-5, atol=1e-6)
        inputs = np.asarray(layer.activation(z))
        # numpy: the layer's norm is the norm of its two gradients stacked.
        flat = np.concatenate([report.kernel_gradient.ravel(), report.bias_gradient.ravel()])
        assert report.gradient_norm == pytest.approx(np.linalg.norm(flat), rel=1e-5)
    np.testing.assert_allclose(inputs, model(x, training=False), rtol=1e-5, atol=1e-6)


def test_a_layers_gradient_norm_past_float32_squares_is_finite_and_warns_nothing():
    # Gradients of 1e20 (a squared error on targets in the billions): their float32 squares
    # overflowed, giving inf and numpy's "overflow encountered" warnings on the console.
    big = np.full((2, 2), 1e20, np.float32)
    report = diagnostics.LayerReport(
        "head", "linear", big, big[0], big, big[0], np.zeros((1, 2), np.float32)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        norm = report.gradient_norm
    assert norm == pytest.approx(1e20 * np.sqrt(6), rel=1e-6)  # by hand: six entries of 1e20


def test_probe_sees_a_unit_killed_by_hand():
    trainer = make_trainer()
    layer = trainer.model.get_layer("dense_1")
    bias = layer.bias.numpy()
    bias[[0, 3]] = -100.0  # two of six units can never fire on this data
    layer.bias.assign(bias)
    probe = diagnostics.ModelProbe(trainer.model, trainer.total_loss, trainer.head)
    scalars = probe.layer_reports(*batch())[1].scalars()
    assert scalars["dead_fraction"] == pytest.approx(2 / 6)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_probe_reports_the_unit_health_of_each_configurable_activation(activation):
    # The probe reads each layer's activation back from Keras, which names swish "silu".
    trainer = make_trainer(activation=activation)
    probe = diagnostics.ModelProbe(trainer.model, trainer.total_loss, trainer.head)
    reports = probe.layer_reports(*batch())
    assert [r.activation for r in reports] == [activation, activation, "linear"]
    expected = "saturated_fraction" if activation in diagnostics.SATURATING else "dead_fraction"
    assert set(reports[0].scalars()) == {"gradient_norm", expected}


def test_probe_traces_once_and_leaves_the_train_loop_alone():
    trainer = make_trainer()
    probe = diagnostics.ModelProbe(trainer.model, trainer.total_loss, trainer.head)
    data = tf.data.Dataset.from_tensor_slices(batch(n=40)).batch(16)
    trainer.run_steps(iter(data.repeat()), 5)
    for n in (16, 8):
        probe.layer_reports(*batch(n=n))
        probe.predict_classes(batch(n=n)[0])
    trainer.run_steps(iter(data.repeat()), 3)
    assert trainer.train_loop.experimental_get_tracing_count() == 1
    assert probe.predict.experimental_get_tracing_count() == 1


def test_predict_classes_of_a_single_logit_head():
    trainer = make_trainer(head=Head("sigmoid", 1))
    probe = diagnostics.ModelProbe(trainer.model, trainer.total_loss, trainer.head)
    x, _ = batch()
    logits = trainer.model(x, training=False).numpy()[:, 0]
    np.testing.assert_array_equal(probe.predict_classes(x), (logits > 0).astype(int))


def test_confusion_matrix_matches_scikit_learn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    np.testing.assert_array_equal(
        diagnostics.confusion_matrix(y, p, 4), sklearn_confusion_matrix(y, p, labels=range(4))
    )


def test_collect_predictions_keeps_the_first_misclassified():
    trainer = make_trainer()
    probe = diagnostics.ModelProbe(trainer.model, trainer.total_loss, trainer.head)
    x, y = batch(n=50)
    found = diagnostics.collect_predictions(
        probe, tf.data.Dataset.from_tensor_slices((x, y)).batch(16), keep_wrong=5
    )
    predicted = np.argmax(trainer.model(x, training=False), axis=-1)
    np.testing.assert_array_equal(found.predicted, predicted)
    wrong = np.flatnonzero(predicted != y)[:5]
    np.testing.assert_array_equal(found.wrong_features, x[wrong])
    np.testing.assert_array_equal(found.wrong_labels, y[wrong])


# --- pictures -----------------------------------------------------------------------


def test_confusion_matrix_image_shades_cells_by_row_share():
    matrix = np.array([[9, 1], [0, 5]])
    image = diagnostics.confusion_matrix_image(matrix, ["cat", "dog"])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    # The image's darkest blue is the full-row cells, the palest the empty one.
    blues = image[(image[..., 2] > image[..., 0] + 60)]
    assert len(blues) > 0
    with pytest.raises(ValueError, match="class names"):
        diagnostics.confusion_matrix_image(matrix, ["only one"])


def test_grid_points_run_row_major_from_the_top_left():
    grid = diagnostics.grid_points((0.0, 1.0, 0.0, 2.0), 3)
    np.testing.assert_allclose(grid[0], [0.0, 2.0])  # top left
    np.testing.assert_allclose(grid[2], [1.0, 2.0])  # top right
    np.testing.assert_allclose(grid[-1], [1.0, 0.0])  # bottom right


def test_decision_boundary_paints_regions_and_points():
    # Left half class 0, right half class 1; one class-1 point in the left half's middle.
    values = np.zeros((10, 10), int)
    values[:, 5:] = 1
    image = diagnostics.decision_boundary_image(
        values, np.array([[-0.5, 0.0]]), np.array([1]), extent=(-1.0, 1.0, -1.0, 1.0), scale=4
    )
    assert image.shape == (40, 40, 3)
    pale = lambda c: (0.35 * diagnostics.PALETTE[c] + 0.65 * 255).astype(np.uint8)  # noqa: E731
    np.testing.assert_array_equal(image[2, 2], pale(0))
    np.testing.assert_array_equal(image[2, 37], pale(1))
    # The point at x = -0.5, y = 0 sits at column 0.25 * 39, row 0.5 * 39, in class 1's colour.
    np.testing.assert_array_equal(image[20, 10], diagnostics.PALETTE[1])


@pytest.mark.parametrize("num_classes", [2, 10, 11, 20, 21, 300])
def test_every_class_has_a_colour_of_its_own(num_classes):
    colors = diagnostics.class_colors(num_classes)
    assert len({tuple(c) for c in colors[:num_classes]}) == num_classes
    if num_classes <= 20:  # tab10 first, as before (matplotlib's values, diagnostics.PALETTE)
        np.testing.assert_array_equal(colors[:10], diagnostics.PALETTE)


def test_decision_boundary_of_eleven_classes_paints_class_10_unlike_class_0():
    # A 2-feature CSV may have any number of string classes; tab10 alone repeats after
    # 10, and class 10's region and points were class 0's blue.
    values = np.zeros((10, 10), int)
    values[:, 5:] = 10
    image = diagnostics.decision_boundary_image(
        values,
        np.array([[-0.5, 0.0], [0.5, 0.0]]),
        np.array([10, 0]),
        extent=(-1.0, 1.0, -1.0, 1.0),
        scale=4,
    )  # num_classes: 11, from the largest id (draw_images passes the dataset's)
    assert not np.array_equal(image[2, 2], image[2, 37])  # the regions
    assert not np.array_equal(image[20, 10], image[20, 29])  # the points
    np.testing.assert_array_equal(image[20, 29], diagnostics.PALETTE[0])


def test_decision_boundary_of_a_regression_surface():
    values = np.linspace(-1, 1, 100).reshape(10, 10)
    image = diagnostics.decision_boundary_image(
        values,
        np.zeros((3, 2)),
        np.array([-1.0, 0.0, 1.0]),
        extent=(-1, 1, -1, 1),
        classification=False,
    )
    assert image.shape == (30, 30, 3)
    assert image[0, 0, 2] > image[0, 0, 0]  # lowest value: blue
    assert image[-1, -1, 0] > image[-1, -1, 2]  # highest value: red


def test_misclassified_grid_tiles_images_with_captions():
    images = np.zeros((10, 28, 28, 1), "float32")
    images[:, 10:18, 10:18] = 1.0
    grid = diagnostics.misclassified_grid(
        images, np.arange(10) % 3, np.arange(10) % 2, ["a", "b", "c"], columns=4
    )
    tile_w, tile_h = 64, 28 * 2 + 26
    assert grid.shape == (3 * tile_h, 4 * tile_w, 3)
    assert grid[28, (64 - 56) // 2 + 28].tolist() == [255, 255, 255]  # a white square's centre
    # Raw uint8 pixels (what an image run's model takes) draw as the same picture.
    raw = diagnostics.misclassified_grid(
        (images * 255).astype(np.uint8),
        np.arange(10) % 3,
        np.arange(10) % 2,
        ["a", "b", "c"],
        columns=4,
    )
    np.testing.assert_array_equal(raw, grid)
    empty = diagnostics.misclassified_grid(np.zeros((0, 28, 28, 1)), [], [], ["a"])
    assert empty.shape[2] == 3


def fake_info(input_shape, num_classes=2, task="classification"):
    return DatasetInfo(
        name="fake",
        task=task,
        num_classes=num_classes if task == "classification" else None,
        class_names=tuple(f"class_{i}" for i in range(num_classes))
        if task == "classification"
        else None,
        input_shape=input_shape,
        input_dim=int(np.prod(input_shape)),
        num_train=0,
        num_validation=0,
        num_test=0,
    )


@pytest.mark.parametrize(
    "input_shape,task,tags,raw",
    [
        ((2,), "classification", {"confusion_matrix", "decision_boundary"}, False),
        ((2,), "regression", {"decision_boundary"}, False),
        ((4, 4, 1), "classification", {"confusion_matrix", "misclassified"}, False),
        ((4, 4, 1), "classification", {"confusion_matrix", "misclassified"}, True),
    ],
    ids=["2d-classes", "2d-regression", "flat-images", "raw-uint8-images"],
)
def test_render_images_by_kind_of_dataset(input_shape, task, tags, raw):
    info = fake_info(input_shape, task=task)
    head = Head("softmax", 2) if task == "classification" else Head("linear", 1)
    # raw: the model takes uint8 images and scales and flattens them, as TFDS image runs do.
    as_raw = {"input_shape": input_shape, "input_dtype": "uint8", "input_scale": 1 / 255}
    model = build_model(
        ModelConfig(hidden_units=(4,)),
        input_dim=info.input_dim,
        head=head,
        seed=0,
        **(as_raw if raw else {}),
    )
    probe = diagnostics.ModelProbe(model, lambda y, out: tf.reduce_mean(out), head)
    rng = np.random.default_rng(0)
    x = rng.random((30, info.input_dim)).astype("float32")
    if raw:
        x = (x * 255).astype(np.uint8).reshape(30, *input_shape)
        assert [r.name for r in probe.layer_reports(x, np.zeros(30, "int32"))] == [
            "dense_0",
            "head",
        ]
    y = rng.integers(0, 2, 30).astype("int32" if task == "classification" else "float32")
    images = diagnostics.render_images(
        probe, tf.data.Dataset.from_tensor_slices((x, y)).batch(8), info
    )
    assert set(images) == tags
    for image in images.values():
        assert image.dtype == np.uint8 and image.shape[2] == 3
        Image.fromarray(image).save(io.BytesIO(), format="PNG")  # a valid picture
