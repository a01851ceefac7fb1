"""The Dense stack: an MLP built from `ModelConfig`, with a head that emits logits.

The head never applies an activation: classification heads emit logits that the
loss reads with `from_logits=True` (log-softmax / log-sigmoid, stable where
`log(softmax(x))` overflows), and the regression head is linear. Probabilities
for users come from `probability_model`, which appends softmax or sigmoid.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from kerasmlp.config import ConfigError, ModelConfig
from kerasmlp.layers import Dense, Dropout, RandomShift


@dataclasses.dataclass(frozen=True)
class Head:
    """What the last layer emits.

    Attributes:
      kind: 'softmax' (one logit per class), 'sigmoid' (one logit, binary) or
        'linear' (regression).
      units: width of the last Dense layer.
    """

    kind: str
    units: int

    @classmethod
    def for_task(cls, task: str, *, num_classes: int | None, loss_name: str) -> Head:
        """The head a task and loss need: binary cross-entropy reads one sigmoid logit."""
        if task == "regression":
            return cls("linear", 1)
        if loss_name == "binary_crossentropy":
            if num_classes != 2:
                raise ConfigError(
                    f"loss.name 'binary_crossentropy' needs a dataset with 2 classes; this one "
                    f"has {num_classes}. Use sparse_categorical_crossentropy."
                )
            return cls("sigmoid", 1)
        return cls("softmax", int(num_classes))

    @property
    def num_classes(self) -> int | None:
        """Classes the metrics count: 2 for a sigmoid head, one per logit for softmax."""
        return {"softmax": self.units, "sigmoid": 2}.get(self.kind)

    def probabilities(self, outputs) -> np.ndarray:
        """Class probabilities (n, num_classes) from the head's outputs (logits).

        softmax for one logit per class; for a sigmoid head's logit z, the two
        columns [1 - sigmoid(z), sigmoid(z)]. A regression head has none.
        """
        if self.kind == "softmax":
            return np.asarray(keras.ops.softmax(outputs, axis=-1))
        if self.kind == "sigmoid":
            p = np.asarray(keras.ops.sigmoid(outputs))[:, :1]
            return np.concatenate([1.0 - p, p], axis=-1)
        raise ValueError("a regression head has no class probabilities")

    def classes(self, outputs) -> np.ndarray:
        """Predicted class ids (n,): the largest logit, or z > 0 for a sigmoid head's logit z
        (where sigmoid(z) > 0.5, as `probabilities` gives it)."""
        outputs = np.asarray(outputs)
        if self.kind == "softmax":
            return np.argmax(outputs, axis=-1)
        if self.kind == "sigmoid":
            return (outputs[:, 0] > 0).astype(np.int64)
        raise ValueError("a regression head predicts values, not classes")

    def loss_inputs(self, labels, outputs, *, one_hot: bool = False):
        """`(y_true, y_pred)` as the loss takes them, from the labels as the data gives them.

        Labels arrive as class ids (classification) or values (regression). A
        softmax head's loss takes the ids (sparse cross-entropy) or, with
        `one_hot`, one-hot rows in the outputs' dtype (categorical
        cross-entropy); a one-column head (a sigmoid logit, a regression value)
        takes a column of the labels in the outputs' dtype, as Keras's
        `BinaryCrossentropy` and `MeanSquaredError` expect `(batch, 1)`.
        """
        if self.kind == "softmax":
            if one_hot:
                return tf.one_hot(labels, self.units, dtype=outputs.dtype), outputs
            return labels, outputs
        return tf.cast(labels, outputs.dtype)[:, None], outputs

    def metric_inputs(self, labels, outputs):
        """`(y_true, y_pred)` as kerasmlp's metrics take them.

        Classification metrics take class ids and one logit per class, so one set
        serves both classification heads: a sigmoid head's logit z becomes the
        logits [0, z], whose softmax is [1 - sigmoid(z), sigmoid(z)]. Regression
        metrics take a column of the labels in the outputs' dtype.
        """
        outputs = tf.convert_to_tensor(outputs)
        if self.kind == "sigmoid":
            return labels, tf.concat([tf.zeros_like(outputs), outputs], axis=-1)
        if self.kind == "linear":
            return tf.cast(labels, outputs.dtype)[:, None], outputs
        return labels, outputs


def build_model(
    config: ModelConfig,
    *,
    input_dim: int,
    head: Head,
    seed: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    input_dtype: str = "float32",
    input_scale: float | None = None,
    target_mean: float | None = None,
    target_variance: float | None = None,
    dtype_policy: str | None = None,
) -> keras.Model:
    """Builds the MLP `input -> [Dense -> activation -> Dropout] * n -> Dense head`.

    Raw images go in as they are stored: `keras.layers.Rescaling(input_scale)`
    and `keras.layers.Flatten` come first, so the model (and the saved
    `model.keras`) takes uint8 images. Both run in the compiled step, where
    they cost a cast, a multiply and a reshape per batch.

    Args:
      config: hidden layer widths, activation, dropout, kernel initializer,
        L2 weight decay (`weight_decay * sum(kernel ** 2)` per hidden and head kernel)
        and, for images, the training shift (`random_translation`).
      input_dim: length of one flattened example.
      head: the last layer's width and kind (see `Head`); it has no activation.
      seed: seeds the kernel initializers and dropout, so two builds match.
      input_shape: shape of one example as the model takes it, e.g. (28, 28, 1);
        None (default) for (input_dim,). More than one axis adds a `Flatten`.
      input_dtype: the input's dtype, e.g. 'uint8' for raw images. Default 'float32'.
      input_scale: multiplies the input first (`Rescaling`, in float32), e.g.
        1/255 for uint8 images; None (default) for none.
      target_mean, target_variance: a regression target's training statistics:
        the head's output is scaled back with them
        (`keras.layers.Normalization(invert=True)`: head * std + mean), so the
        head learns the standardized target while the model, its loss and its
        metrics stay in the target's own units. None (default) for none.
      dtype_policy: the Keras dtype policy of the hidden layers, e.g.
        'mixed_bfloat16' (see `kerasmlp.precision`); None (default) is Keras's
        default, float32. The head is float32 whatever the policy: the logits,
        and the loss and metrics computed from them, stay float32.

    Returns:
      A functional `keras.Model` mapping (batch, *input_shape) to (batch, head.units)
      logits (or regression outputs). Hidden layers are named `dense_0`, `dense_1`,
      ...; then `head`; `random_translation`, `rescaling` and `flatten` come
      before them when used, `target_units` after the head.
    """
    regularizer = keras.regularizers.L2(config.weight_decay) if config.weight_decay else None

    def initializer(index: int):
        cls = keras.initializers.get(config.kernel_initializer).__class__
        return cls(seed=None if seed is None else seed + index)

    input_shape = tuple(input_shape) if input_shape is not None else (input_dim,)
    if math.prod(input_shape) != input_dim:
        raise ValueError(f"input_shape {input_shape} does not hold input_dim={input_dim} values")
    inputs = keras.Input(shape=input_shape, dtype=input_dtype, name="features")
    x = inputs
    if config.random_translation:
        if len(input_shape) != 3:
            raise ConfigError(
                f"model.random_translation shifts images (height, width, channels); this "
                f"dataset's examples have shape {input_shape}. Received: "
                f"model.random_translation={config.random_translation}. Use 0 for this dataset"
            )
        # Shifts are rounded to whole pixels: up to half a pixel of the larger side, every
        # shift rounds to 0 (as with Keras's RandomTranslation, nearest), and the run would
        # train on unshifted images while its config said otherwise.
        largest = max(input_shape[:2])
        if config.random_translation * largest <= 0.5:
            raise ConfigError(
                f"model.random_translation moves no pixel of these {input_shape[0]}x"
                f"{input_shape[1]} images: every shift, up to {config.random_translation:g} x "
                f"{largest} pixels, rounds to 0. Received: model.random_translation="
                f"{config.random_translation}. Use 0, or more than {0.5 / largest:.3g} "
                "(half a pixel)"
            )
        # Training only (identity at evaluation and in the saved model's predictions):
        # each image moved by up to this fraction of its height and width, the pixels
        # let in black (0), the nearest source pixel taken: Keras's RandomTranslation
        # with nearest interpolation, by moving whole rows of the uint8 images (its
        # docstring has the timings).
        x = RandomShift(
            config.random_translation,
            seed=None if seed is None else seed + 2000,
            name="random_translation",
        )(x)
    if input_scale is not None:
        # x * scale in float32: the same values as scaling in the input pipeline.
        x = keras.layers.Rescaling(input_scale, name="rescaling")(x)
    if len(input_shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    # Under a 16-bit policy, kerasmlp's Dense: a smooth activation (GELU, tanh, ...) in
    # float32, cheaper on a CPU than in bfloat16; float32 models keep Keras's layer.
    dense = keras.layers.Dense if dtype_policy is None else Dense
    for i, units in enumerate(config.hidden_units):
        x = dense(
            units,
            activation=config.activation,
            kernel_initializer=initializer(i),
            kernel_regularizer=regularizer,
            dtype=dtype_policy,
            name=f"dense_{i}",
        )(x)
        if config.dropout:
            # Keras's Dropout, with a mask of its own per replica under a strategy.
            x = Dropout(
                config.dropout,
                seed=None if seed is None else seed + 1000 + i,
                dtype=dtype_policy,
                name=f"dropout_{i}",
            )(x)
    outputs = keras.layers.Dense(
        head.units,
        activation=None,
        kernel_initializer=initializer(len(config.hidden_units)),
        kernel_regularizer=regularizer,
        # float32 logits, as the Keras mixed-precision guide keeps the last layer: the
        # loss and metrics read them, and bfloat16's 8-bit significand would round a
        # logit of 20 by up to 0.0625. The head's matmul is the model's smallest.
        dtype="float32",
        name="head",
    )(x)
    if target_mean is not None:
        # Starts the predictions at the training mean with the targets' spread, whatever
        # their units (prices in the 100,000s, rates near 0.01).
        outputs = keras.layers.Normalization(
            mean=[target_mean], variance=[target_variance], invert=True, name="target_units"
        )(outputs)
    return keras.Model(inputs, outputs, name=f"mlp_{head.kind}")


def probability_model(model: keras.Model, head: Head) -> keras.Model:
    """Wraps a logits model so that it returns probabilities (or the regression value).

    softmax for a 'softmax' head, sigmoid for a 'sigmoid' head (the probability of
    class 1, shape (batch, 1)), identity for 'linear'.
    """
    activation = {"softmax": "softmax", "sigmoid": "sigmoid", "linear": "linear"}[head.kind]
    outputs = keras.layers.Activation(activation, name="probabilities")(model.output)
    return keras.Model(model.input, outputs, name=f"{model.name}_probabilities")
