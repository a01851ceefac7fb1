"""Looking inside a model: unit health, per-layer gradients and the pictures TensorBoard shows.

Small pure numpy functions hold the definitions (`dead_unit_fraction`,
`saturated_unit_fraction`, the image renderers); `ModelProbe` runs the model
once on a fixed batch, in its own `tf.function` outside the training loop, and
hands those functions their inputs. Nothing here writes files: `summaries`
owns all TensorBoard output.

Images are drawn with numpy and Pillow (which TensorBoard itself requires), so
no plotting library is needed.
"""

from __future__ import annotations

import colorsys
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from kerasmlp.batches import HeldOutSplit
from kerasmlp.layers import Dense
from kerasmlp.model import Head

# Activations whose unit can "die": for a pre-activation z <= 0 the unit is off
# (relu) or in its small-slope negative tail (leaky_relu, elu, gelu, swish).
RELU_FAMILY = ("elu", "gelu", "leaky_relu", "relu", "swish")
# Activations whose derivative vanishes for large |z| (vanishing gradients).
SATURATING = ("sigmoid", "tanh")
# A unit is saturated on an example when the derivative of its activation is
# below this share of the derivative's maximum (1/4 for sigmoid, 1 for tanh).
SATURATION_THRESHOLD = 0.01
# Keras serializes an activation by its function's name: swish is its silu.
_CONFIG_NAMES = {"silu": "swish"}
# Examples per model call when predicting over a split held in memory.
PREDICT_BATCH = 4096

# tab10: distinguishable class colours, the usual plotting default (up to 10 classes).
PALETTE = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ],
    dtype=np.uint8,
)
# tab20's lighter partners of the tab10 colours, in tab10's order: classes 10 to 19.
LIGHTER_PALETTE = np.array(
    [
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (199, 199, 199),
        (219, 219, 141),
        (158, 218, 229),
    ],
    dtype=np.uint8,
)


# --- unit health ----------------------------------------------------------------


def dead_unit_fraction(pre_activations: np.ndarray) -> float:
    """Fraction of units whose pre-activation is <= 0 for every example.

    A ReLU unit in that state outputs 0 and passes no gradient for the whole
    batch: it is dead on that data. For leaky_relu, elu, gelu and swish the unit
    still passes a small gradient, but never reaches its linear regime.

    Args:
      pre_activations: `x @ kernel + bias` of one Dense layer, shape
        (examples, units).

    Returns:
      A float in [0, 1]: dead units / units.

    Example:
      >>> dead_unit_fraction(np.array([[-1.0, 2.0, 0.0], [-3.0, -1.0, 0.0]]))
      0.6666666666666666
    """
    z = np.asarray(pre_activations)
    return float(np.mean(np.all(z <= 0, axis=0)))


def activation_derivative(activation: str, pre_activations: np.ndarray) -> np.ndarray:
    """d activation / dz at each pre-activation, for 'sigmoid' and 'tanh'.

    Formula:
      sigmoid'(z) = s (1 - s) with s = sigmoid(z); maximum 1/4 at z = 0
      tanh'(z) = 1 - tanh(z)^2; maximum 1 at z = 0
    """
    z = np.asarray(pre_activations, dtype=np.float64)
    if activation == "sigmoid":
        s = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid without overflow in exp(-z)
        return s * (1.0 - s)
    if activation == "tanh":
        return 1.0 - np.tanh(z) ** 2
    raise ValueError(f"activation must be one of {SATURATING}. Received: activation={activation!r}")


_DERIVATIVE_MAX = {"sigmoid": 0.25, "tanh": 1.0}


def saturated_unit_fraction(
    activation: str, pre_activations: np.ndarray, *, threshold: float = SATURATION_THRESHOLD
) -> float:
    """Share of (example, unit) pairs where a sigmoid or tanh unit is saturated.

    A unit is saturated on an example when the derivative of its activation at
    the example's pre-activation is below `threshold` times the derivative's
    maximum: there the unit passes back less than 1% of the gradient it could.
    The result averages that indicator over every example and every unit of the
    batch (not "units saturated for most examples"), so 0.3 means 30% of the
    unit-example pairs pass back almost nothing.

    With the default threshold 0.01 this is |z| > 5.99 for sigmoid
    (sigmoid'(z) < 0.0025) and |z| > 2.99 for tanh (tanh'(z) < 0.01).

    Args:
      activation: 'sigmoid' or 'tanh'.
      pre_activations: `x @ kernel + bias` of one Dense layer, shape
        (examples, units).
      threshold: share of the derivative's maximum below which a unit counts
        as saturated. Default 0.01.

    Returns:
      A float in [0, 1].
    """
    derivative = activation_derivative(activation, pre_activations)
    return float(np.mean(derivative < threshold * _DERIVATIVE_MAX[activation]))


def unit_health(activation: str, pre_activations: np.ndarray) -> dict[str, float]:
    """`{'dead_fraction': f}`, `{'saturated_fraction': f}` or `{}` for other activations."""
    if activation in RELU_FAMILY:
        return {"dead_fraction": dead_unit_fraction(pre_activations)}
    if activation in SATURATING:
        return {"saturated_fraction": saturated_unit_fraction(activation, pre_activations)}
    return {}


# --- looking at a model on one batch ----------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerReport:
    """One Dense layer at one moment, measured on one fixed batch.

    Attributes:
      name: the layer's name (`dense_0`, ..., `head`).
      activation: its activation's name ('linear' for the head).
      kernel, bias: current weights, shapes (inputs, units) and (units,).
      kernel_gradient, bias_gradient: gradients of the loss on the batch.
      pre_activations: `x @ kernel + bias` on the batch, shape (examples, units).
    """

    name: str
    activation: str
    kernel: np.ndarray
    bias: np.ndarray
    kernel_gradient: np.ndarray
    bias_gradient: np.ndarray
    pre_activations: np.ndarray

    @property
    def gradient_norm(self) -> float:
        """sqrt(|dL/dkernel|^2 + |dL/dbias|^2): the layer's share of the global norm.

        Summed in float64: float32 squares overflow from gradients of 1.8e19 (a squared
        error on targets in the billions), printing numpy's overflow warnings and giving inf.
        """
        squares = [
            np.square(g, dtype=np.float64) for g in (self.kernel_gradient, self.bias_gradient)
        ]
        return float(np.sqrt(sum(np.sum(s) for s in squares)))

    def scalars(self) -> dict[str, float]:
        return {
            "gradient_norm": self.gradient_norm,
            **unit_health(self.activation, self.pre_activations),
        }

    def histograms(self) -> dict[str, np.ndarray]:
        return {
            "kernel": self.kernel,
            "bias": self.bias,
            "kernel_gradient": self.kernel_gradient,
            "bias_gradient": self.bias_gradient,
        }


class ModelProbe:
    """Measures a chain of layers (as `build_model` makes) on a fixed batch.

    Everything runs in `tf.function`s of its own, called from the outer loop at
    epoch ends, never from the compiled training loop.

    Args:
      model: a functional model whose layers form a chain
        (Input -> Dense/Dropout ... -> Dense).
      loss_fn: `loss_fn(labels, outputs)`, the training loss including
        regularization (see `Trainer.total_loss`).
      head: the model's `Head`, which decides the predicted classes.
    """

    def __init__(self, model: keras.Model, loss_fn: Callable[[Any, Any], Any], head: Head):
        self.model = model
        self.loss_fn = loss_fn
        self.head = head
        self.dense_layers = [
            layer for layer in model.layers if isinstance(layer, keras.layers.Dense)
        ]
        # As the config names them, which `unit_health` reads.
        self._activations = [
            _CONFIG_NAMES.get(name, name)
            for name in (
                keras.activations.serialize(layer.activation) for layer in self.dense_layers
            )
        ]
        # Raw images (uint8, (28, 28, 1)) as the model takes them, or flat float32 features.
        spec = tf.TensorSpec([None, *model.input_shape[1:]], model.input.dtype)
        # No AutoGraph: the code has no tensor-dependent control flow, and
        # converting it (and Keras's loss code) would cost most of a second.
        self._measure = tf.function(self._measure_fn, autograph=False)
        # One trace for every batch size (the last batch of a split is smaller).
        self.predict = tf.function(
            lambda features: model(features, training=False),
            input_signature=[spec],
            autograph=False,
        )
        self._input_spec = spec

    def warm_up(self) -> None:
        """Traces `predict` and runs it once, on one example of zeros.

        TensorFlow optimises a traced function's graph at its first call; done
        here, neither cost falls on the first picture drawn mid-training.
        """
        spec = self._input_spec
        self.predict(tf.zeros([1, *spec.shape[1:]], spec.dtype))

    def _forward(self, features):
        """The model's inference pass, layer by layer, keeping each Dense pre-activation.

        Each Dense computes in its own compute dtype, as the layer does under a
        mixed-precision policy (bfloat16 or float16 hidden layers, a float32
        head); the pre-activations are reported in float32.
        """
        x = features
        pre_activations = []
        for layer in self.model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if isinstance(layer, keras.layers.Dense):
                dtype = layer.compute_dtype
                kernel, bias = tf.cast(layer.kernel, dtype), tf.cast(layer.bias, dtype)
                z = tf.matmul(tf.cast(x, dtype), kernel) + bias
                pre_activations.append(tf.cast(z, tf.float32))
                # kerasmlp's Dense computes a smooth activation in float32, as it trains.
                x = layer.activate(z) if isinstance(layer, Dense) else layer.activation(z)
            else:
                x = layer(x, training=False)
        return x, pre_activations

    def _measure_fn(self, features, labels):
        weights = [(layer.kernel, layer.bias) for layer in self.dense_layers]
        with tf.GradientTape() as tape:
            outputs, pre_activations = self._forward(features)
            loss = self.loss_fn(labels, outputs)
        gradients = tape.gradient(loss, weights)
        return weights, gradients, pre_activations

    def layer_reports(self, features, labels) -> list[LayerReport]:
        """Weights, gradients and pre-activations of every Dense layer on one batch.

        Dropout is off (`training=False`), so two calls on the same weights agree.
        """
        weights, gradients, pre_activations = self._measure(features, labels)
        return [
            LayerReport(
                name=layer.name,
                activation=activation,
                kernel=np.asarray(w[0]),
                bias=np.asarray(w[1]),
                kernel_gradient=np.asarray(g[0]),
                bias_gradient=np.asarray(g[1]),
                pre_activations=np.asarray(z),
            )
            for layer, activation, w, g, z in zip(
                self.dense_layers,
                self._activations,
                weights,
                gradients,
                pre_activations,
                strict=True,
            )
        ]

    def predict_classes(self, features) -> np.ndarray:
        """Class ids, as the head decides them (see `Head.classes`)."""
        return self.head.classes(self.predict(features))


@dataclasses.dataclass(frozen=True)
class Predictions:
    """Labels and predicted classes over a dataset, plus a few misclassified examples."""

    labels: np.ndarray
    predicted: np.ndarray
    wrong_features: np.ndarray  # (k, *input shape), the first k misclassified examples
    wrong_labels: np.ndarray
    wrong_predicted: np.ndarray
    points: np.ndarray  # (n, *input shape) every x, when asked for (2-D plots)


def collect_predictions(
    probe: ModelProbe,
    dataset: tf.data.Dataset,
    *,
    classification: bool = True,
    keep_wrong: int = 0,
    keep_points: bool = False,
) -> Predictions:
    """One pass of `probe` over a batched `(x, y)` dataset.

    Args:
      probe: the model's `ModelProbe`.
      dataset: batched `(x, y)`; y class ids (or regression targets).
      classification: predict classes; False (regression) collects labels only.
      keep_wrong: keep up to this many misclassified examples (classification).
      keep_points: keep every x (for 2-D plots).
    """
    labels, predicted, wrong, points = [], [], [], []
    kept = 0
    if isinstance(dataset, HeldOutSplit):  # in memory: fewer, larger calls than its batches
        dataset = dataset.batches(PREDICT_BATCH)
    for features, batch_labels in dataset:
        x, y = np.asarray(features), np.asarray(batch_labels)
        labels.append(y)
        if keep_points:
            points.append(x)
        if not classification:
            continue
        p = probe.predict_classes(x)
        predicted.append(p)
        if kept < keep_wrong:
            idx = np.flatnonzero(p != y)[: keep_wrong - kept]
            if idx.size:
                wrong.append((x[idx], y[idx], p[idx]))
                kept += idx.size
    input_shape = tuple(probe.model.input_shape[1:])
    input_dtype = np.dtype(probe.model.input.dtype)
    empty = np.zeros(0, np.int64)
    return Predictions(
        labels=np.concatenate(labels) if labels else empty,
        predicted=np.concatenate(predicted) if predicted else empty,
        wrong_features=np.concatenate([w[0] for w in wrong])
        if wrong
        else np.zeros((0, *input_shape), input_dtype),
        wrong_labels=np.concatenate([w[1] for w in wrong]) if wrong else empty,
        wrong_predicted=np.concatenate([w[2] for w in wrong]) if wrong else empty,
        points=np.concatenate(points) if points else np.zeros((0, *input_shape), input_dtype),
    )


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts `cm[true, predicted]`, shape (num_classes, num_classes), as scikit-learn's."""
    flat = np.asarray(labels, np.int64) * num_classes + np.asarray(predicted, np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def render_images(
    probe: ModelProbe,
    dataset: tf.data.Dataset,
    info,
    *,
    resolution: int = 100,
    max_points: int = 1000,
    max_wrong: int = 32,
) -> dict[str, np.ndarray]:
    """The pictures of a model on a held-out split, by TensorBoard tag.

    - `confusion_matrix` (classification), labelled with the class names;
    - `decision_boundary` for 2-D inputs: predictions over the plane (classes,
      or the regression surface) with up to `max_points` of the split's points;
    - `misclassified` for image inputs: up to `max_wrong` misclassified examples
      with their true and predicted labels.

    The model's part (`predict_for_images`) and the drawing (`draw_images`,
    numpy only, which a caller may run on another thread) are separate.

    Args:
      probe: the model's `ModelProbe`.
      dataset: batched `(x, y)` pairs, x as the model takes it (flat features,
        or raw images).
      info: the `kerasmlp.data.DatasetInfo` (task, class names, input shape).

    Returns:
      `{tag: uint8 RGB image}`.
    """
    found = predict_for_images(
        probe, dataset, info, resolution=resolution, max_points=max_points, max_wrong=max_wrong
    )
    return draw_images(found, info)


@dataclasses.dataclass(frozen=True)
class ImagePredictions:
    """What `draw_images` draws: the model's predictions on a split, and on the plane."""

    predictions: Predictions
    points: np.ndarray  # up to max_points of the split's x (2-D inputs), else empty
    labels: np.ndarray  # their labels
    extent: tuple[float, float, float, float] | None  # the plane shown (2-D inputs)
    boundary: np.ndarray | None  # (resolution, resolution) classes or values over it


def predict_for_images(
    probe: ModelProbe,
    dataset: tf.data.Dataset,
    info,
    *,
    resolution: int = 100,
    max_points: int = 1000,
    max_wrong: int = 32,
) -> ImagePredictions:
    """The model's part of `render_images`: predictions on `dataset` (and on the plane)."""
    classification = info.task == "classification"
    is_image = len(info.input_shape) == 3
    keep = max_wrong if classification and is_image else 0
    found = collect_predictions(
        probe,
        dataset,
        classification=classification,
        keep_wrong=keep,
        keep_points=info.input_dim == 2,
    )
    points, labels = found.points[:max_points], found.labels[:max_points]
    extent = boundary = None
    if info.input_dim == 2:
        extent = plot_extent(points)
        grid = grid_points(extent, resolution)
        if classification:
            values = probe.predict_classes(grid)
        else:
            values = np.asarray(probe.predict(grid))[:, 0]
        boundary = values.reshape(resolution, resolution)
    return ImagePredictions(found, points, labels, extent, boundary)


def draw_images(found: ImagePredictions, info) -> dict[str, np.ndarray]:
    """The pictures of `render_images` from the model's predictions: numpy only."""
    images: dict[str, np.ndarray] = {}
    classification = info.task == "classification"
    predictions = found.predictions
    if classification:
        matrix = confusion_matrix(predictions.labels, predictions.predicted, info.num_classes)
        images["confusion_matrix"] = confusion_matrix_image(matrix, info.class_names)
        if len(info.input_shape) == 3:
            wrong = predictions.wrong_features.reshape((-1, *info.input_shape))
            images["misclassified"] = misclassified_grid(
                wrong, predictions.wrong_labels, predictions.wrong_predicted, info.class_names
            )
    if found.boundary is not None:
        images["decision_boundary"] = decision_boundary_image(
            found.boundary,
            found.points,
            found.labels,
            extent=found.extent,
            classification=classification,
            num_classes=info.num_classes if classification else None,
        )
    return images


# --- pictures ---------------------------------------------------------------------


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except (TypeError, OSError):  # pragma: no cover - old Pillow or no FreeType
        return ImageFont.load_default()


def _short(name: str, width: int = 12) -> str:
    return name if len(name) <= width else name[: width - 1] + "~"


def confusion_matrix_image(matrix: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Renders a confusion matrix as a labelled heat map.

    Rows are true classes, columns predicted classes; each cell shows its count
    and is shaded by the share of its row (its recall share), so a weak class
    stands out whatever the class sizes.

    Args:
      matrix: counts, shape (k, k), rows true classes.
      class_names: k names, in label order.

    Returns:
      uint8 RGB image, shape (height, width, 3).
    """
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    if matrix.shape != (k, k) or len(class_names) != k:
        raise ValueError(
            f"matrix must be (k, k) with k = len(class_names). "
            f"Received: matrix.shape={matrix.shape}, {len(class_names)} class names"
        )
    cell = max(28, min(64, 480 // k))
    font, small = _font(13), _font(max(9, min(13, cell // 3)))
    names = [_short(str(n)) for n in class_names]
    label_width = max(int(small.getlength(n)) for n in names) + 10
    left, top = 24 + label_width, 24 + label_width
    width, height = left + k * cell + 10, top + k * cell + 10
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    for t in range(k):
        for p in range(k):
            x0, y0 = left + p * cell, top + t * cell
            # White (share 0) to a deep blue (share 1), as matplotlib's "Blues".
            shade = share[t, p]
            color = tuple(int(255 - shade * (255 - c)) for c in (8, 48, 107))
            draw.rectangle(
                [x0, y0, x0 + cell - 1, y0 + cell - 1], fill=color, outline=(200, 200, 200)
            )
            ink = "white" if shade > 0.5 else "black"
            center = (x0 + cell / 2, y0 + cell / 2)
            draw.text(center, str(int(matrix[t, p])), fill=ink, font=small, anchor="mm")
    for i, name in enumerate(names):
        draw.text(
            (left - 6, top + i * cell + cell / 2), name, fill="black", font=small, anchor="rm"
        )
        # Column names read bottom-up above their column: draw, then rotate a strip.
        strip = Image.new("RGB", (label_width, cell), "white")
        ImageDraw.Draw(strip).text((4, cell / 2), name, fill="black", font=small, anchor="lm")
        image.paste(strip.rotate(90, expand=True), (left + i * cell, top - label_width))
    draw.text((left, 4), "predicted", fill="black", font=font)
    strip = Image.new("RGB", (80, 20), "white")
    ImageDraw.Draw(strip).text((2, 2), "true", fill="black", font=font)
    image.paste(strip.rotate(90, expand=True), (2, top))
    return np.asarray(image)


def grid_points(extent: tuple[float, float, float, float], resolution: int) -> np.ndarray:
    """`resolution**2` points covering `extent = (x_min, x_max, y_min, y_max)`, row-major
    from the top (largest y) down, as an image is laid out. Shape (resolution**2, 2), float32."""
    x_min, x_max, y_min, y_max = extent
    xs = np.linspace(x_min, x_max, resolution)
    ys = np.linspace(y_max, y_min, resolution)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=-1).astype(np.float32)


def plot_extent(points: np.ndarray, margin: float = 0.1) -> tuple[float, float, float, float]:
    """The bounding box of 2-D points, widened by `margin` of its size on each side."""
    low, high = points.min(axis=0), points.max(axis=0)
    pad = (high - low) * margin + 1e-6
    return (low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])


def class_colors(num_classes: int) -> np.ndarray:
    """A colour of its own for each class id: uint8 RGB, shape (at least num_classes, 3).

    tab10 up to 10 classes (`PALETTE`), tab20's colours up to 20 (tab10, then its
    lighter partners), and beyond, `num_classes` hues evenly spaced around the colour
    wheel. Ten colours repeated painted class 10 as class 0.
    """
    if num_classes <= len(PALETTE):
        return PALETTE
    if num_classes <= len(PALETTE) + len(LIGHTER_PALETTE):
        return np.concatenate([PALETTE, LIGHTER_PALETTE])
    hues = [colorsys.hsv_to_rgb(i / num_classes, 0.65, 0.85) for i in range(num_classes)]
    return np.round(np.array(hues) * 255).astype(np.uint8)


def decision_boundary_image(
    grid_values: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    *,
    extent: tuple[float, float, float, float],
    classification: bool = True,
    num_classes: int | None = None,
    scale: int = 3,
) -> np.ndarray:
    """Paints a model's predictions over the plane with the data points on top.

    Args:
      grid_values: predictions at `grid_points(extent, r)` reshaped to (r, r):
        class ids for classification, real values for regression.
      points: data points, shape (n, 2).
      labels: their class ids (or regression targets), shape (n,).
      extent: (x_min, x_max, y_min, y_max) the grid covers.
      classification: class colours (True) or a blue-white-red value scale.
      num_classes: the classes there are, which pick the colours (`class_colors`);
        default: the largest class id in `grid_values` and `labels`, plus 1.
      scale: pixels per grid cell.

    Returns:
      uint8 RGB image, shape (r * scale, r * scale, 3).
    """
    grid_values = np.asarray(grid_values)
    resolution = grid_values.shape[0]
    if classification:
        ids = grid_values.astype(np.int64)
        if num_classes is None:
            num_classes = int(max(ids.max(), np.max(labels, initial=0))) + 1
        colors = class_colors(num_classes)
        # Regions in a pale version of the class colour, points in the full one.
        background = (0.35 * colors[ids] + 0.65 * 255).astype(np.uint8)
        point_colors = [tuple(int(c) for c in colors[int(y)]) for y in labels]
    else:
        low = min(float(grid_values.min()), float(np.min(labels)))
        high = max(float(grid_values.max()), float(np.max(labels)))
        background = (0.35 * _diverging(grid_values, low, high) + 0.65 * 255).astype(np.uint8)
        point_colors = [tuple(int(c) for c in _diverging(np.array(y), low, high)) for y in labels]
    background = np.repeat(np.repeat(background, scale, axis=0), scale, axis=1)
    image = Image.fromarray(background, "RGB")
    draw = ImageDraw.Draw(image)
    x_min, x_max, y_min, y_max = extent
    size = resolution * scale
    for (px, py), color in zip(np.asarray(points), point_colors, strict=True):
        u = (px - x_min) / (x_max - x_min) * (size - 1)
        v = (y_max - py) / (y_max - y_min) * (size - 1)
        draw.ellipse([u - 2.5, v - 2.5, u + 2.5, v + 2.5], fill=color, outline=(40, 40, 40))
    return np.asarray(image)


def _diverging(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Blue (low) through white to red (high), uint8 RGB."""
    t = (np.asarray(values, float) - low) / max(high - low, 1e-12)
    t = np.clip(t, 0.0, 1.0)[..., None]
    blue, white, red = np.array([33, 102, 172]), np.array([247, 247, 247]), np.array([178, 24, 43])
    rgb = np.where(t < 0.5, blue + (white - blue) * (t * 2), white + (red - white) * (t * 2 - 1))
    return rgb.astype(np.uint8)


def misclassified_grid(
    images: np.ndarray,
    true_labels: np.ndarray,
    predicted_labels: np.ndarray,
    class_names: Sequence[str],
    *,
    columns: int = 8,
    scale: int = 2,
) -> np.ndarray:
    """Tiles misclassified examples, each captioned `true -> predicted`.

    Args:
      images: shape (k, height, width, channels): floats in [0, 1], or raw
        integer pixels (uint8: 0 to 255), scaled by their dtype's maximum.
      true_labels, predicted_labels: class ids, shape (k,).
      class_names: names in label order.
      columns: tiles per row. Default 8.
      scale: pixels per image pixel. Default 2.

    Returns:
      uint8 RGB image; a single caption "none misclassified" when k = 0.
    """
    images = np.asarray(images)
    if np.issubdtype(images.dtype, np.integer):
        images = images / np.float32(np.iinfo(images.dtype).max)
    images = images.astype(np.float32)
    font = _font(10)
    if images.shape[0] == 0:
        canvas = Image.new("RGB", (200, 30), "white")
        ImageDraw.Draw(canvas).text((6, 8), "none misclassified", fill="black", font=font)
        return np.asarray(canvas)
    k, height, width = images.shape[:3]
    channels = images.shape[3] if images.ndim == 4 else 1
    caption = 26
    tile_w = max(width * scale, 64)
    tile_h = height * scale + caption
    rows = -(-k // columns)
    canvas = Image.new("RGB", (min(k, columns) * tile_w, rows * tile_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(k):
        pixels = np.clip(images[i].reshape(height, width, channels), 0.0, 1.0)
        pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
        if channels == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        tile = Image.fromarray((pixels[..., :3] * 255).astype(np.uint8), "RGB")
        x0, y0 = (i % columns) * tile_w, (i // columns) * tile_h
        canvas.paste(tile, (x0 + (tile_w - width * scale) // 2, y0))
        t, p = int(true_labels[i]), int(predicted_labels[i])
        draw.text(
            (x0 + 2, y0 + height * scale + 1),
            f"T {_short(str(class_names[t]), 10)}",
            fill=(0, 110, 0),
            font=font,
        )
        draw.text(
            (x0 + 2, y0 + height * scale + 13),
            f"P {_short(str(class_names[p]), 10)}",
            fill=(190, 0, 0),
            font=font,
        )
    return np.asarray(canvas)
