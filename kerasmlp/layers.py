"""Keras layers kerasmlp puts inside saved models, registered so `import kerasmlp` loads them.

`FillMissing` is the one piece of tabular preprocessing Keras has no layer for:
a missing number (NaN) becomes a fixed value after `keras.layers.Normalization`
(0: the training mean), optionally with a 0/1 column saying it was missing.
`RandomShift` is Keras's `RandomTranslation` with nearest-pixel interpolation and
black let in (the training shift of images, `model.random_translation`), computed
by moving whole rows (a gather of rows, twice) instead of a transform per pixel.
`Dropout` is Keras's, with masks of its own on each replica of a `tf.distribute`
strategy (`replica_seed`), as `RandomShift` has shifts of its own there, and
under a 16-bit policy (`mixed_bfloat16`, `mixed_float16`) with a 16-bit draw
(`keep_mask`) and float32's scale, where Keras's draw has 7 or 10 bits.
`Dense` is Keras's, with a smooth activation (GELU, tanh, ...) computed in float32
under a 16-bit policy, where a CPU computes it faster.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def replica_seed(seed_generator: keras.random.SeedGenerator) -> tf.Tensor | None:
    """The generator's next seed, told apart per replica; None outside a strategy of 2+.

    A `SeedGenerator`'s state is one variable, mirrored under a `tf.distribute`
    strategy: every replica reads the same value, so layers drawing from it drew
    the same numbers on every replica (the k-th example of each replica's share
    got the same dropout mask, the same shift). Here the replica's id is folded
    into the seed (`tf.random.experimental.stateless_fold_in`, Philox's way of
    deriving independent streams); the state advances as with Keras's draw. With
    one replica, None: the layer draws as Keras's does, draw for draw.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
    return tf.random.experimental.stateless_fold_in(next_int32_seed(seed_generator), replica)


def next_int32_seed(seed_generator: keras.random.SeedGenerator) -> tf.Tensor:
    """The generator's next seed, as Keras's TensorFlow backend casts its stateless
    seeds to int32 (`_cast_seed`): the seed Keras's own draw would take."""
    return tf.cast(tf.math.floormod(seed_generator.next(), tf.int32.max - 1), tf.int32)


@keras.saving.register_keras_serializable(package="kerasmlp")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout`, with a mask of its own on each replica of a strategy,
    and a 16-bit draw with float32's scale under a 16-bit policy.

    On one device in float32 this is Keras's layer, mask for mask (it calls it).
    Under a `tf.distribute` strategy with 2+ replicas, Keras's layer drew the
    same mask on every replica; this one draws each replica's from
    `replica_seed`, with the same `tf.nn.experimental.stateless_dropout` Keras
    calls.

    Under `mixed_bfloat16` (or `mixed_float16`) Keras draws its uniform numbers
    in the layer's compute dtype: bfloat16 has 128 values in [0, 1), so
    `rate=0.3` kept 89 in 128 units (69.5%, not 70%) and scaled them by
    1/0.7 rounded to bfloat16 (1.4297), an output 0.7% low on average where
    inference, without dropout, is not. This layer draws 16 random bits a unit
    (`keep_mask`: each 32-bit Philox number, the same generator and seed as
    Keras's draw, gives two units), so it drops a unit with probability
    round(rate * 2**16) / 2**16 (0.3: 0.3000031), and scales in float32 by
    1 / (1 - rate) before rounding the output once. Half the random numbers of
    float32's draw: on a CPU the draw was the dearest part of dropout, and a
    bfloat16 step of configs/mnist.yaml ran 13-16% faster than with
    float32's uniforms. Rates within 2**-17 of 0 or 1, which 16 bits cannot
    tell from them, draw float32 uniforms instead.

    Args: as `keras.layers.Dropout` (rate, noise_shape, seed).
    """

    def call(self, inputs, training=False):
        if not (training and 0 < self.rate < 1):
            return super().call(inputs, training=training)
        narrow = keras.backend.standardize_dtype(inputs.dtype) in ("bfloat16", "float16")
        seed = replica_seed(self.seed_generator)
        if seed is None and not narrow:
            return super().call(inputs, training=training)
        if seed is None:  # one device: the seed Keras's own draw takes
            seed = next_int32_seed(self.seed_generator)
        shape = tf.shape(inputs)
        if self.noise_shape is not None:
            shape = [shape[i] if size is None else size for i, size in enumerate(self.noise_shape)]
        if not narrow:
            return tf.nn.experimental.stateless_dropout(
                inputs, rate=self.rate, noise_shape=shape, seed=seed
            )
        # stateless_dropout's scale times the inputs in float32, the output rounded once.
        keep = keep_mask(shape, seed, self.rate)
        scaled = tf.cast(tf.cast(inputs, tf.float32) * (1 / (1 - self.rate)), inputs.dtype)
        return tf.where(keep, scaled, tf.zeros([], inputs.dtype))


def keep_mask(shape, seed: tf.Tensor, rate: float) -> tf.Tensor:
    """Which units dropout keeps: True with probability 1 - round(rate * 2**16) / 2**16.

    Each unit takes 16 bits of `tf.random.stateless_uniform`'s 32-bit Philox
    numbers for `seed` (the low half of the k-th number for unit 2k, the high half
    for 2k + 1, on a little-endian machine: `tf.bitcast`), kept where they are at
    least round(rate * 2**16). Where that rounds to 0 or 2**16 (a rate within
    2**-17 of 0 or 1), float32 uniforms as `tf.nn.experimental.stateless_dropout`
    draws them, kept where at least `rate`.

    Args:
      shape: the mask's shape (a list of ints and scalar tensors, or a 1-D tensor).
      seed: a `[2]` int32 seed for the stateless draw.
      rate: the share to drop, in (0, 1).

    Returns:
      A bool tensor of `shape`.
    """
    threshold = round(rate * 2**16)
    if not 0 < threshold < 2**16:
        return tf.random.stateless_uniform(shape, seed=seed) >= rate
    shape = tf.convert_to_tensor(shape, tf.int32)
    count = tf.reduce_prod(shape)
    words = tf.random.stateless_uniform(
        [(count + 1) // 2], seed=seed, minval=None, maxval=None, dtype=tf.uint32
    )
    halves = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:count]
    return tf.reshape(halves >= tf.constant(threshold, tf.uint16), shape)


# Activations dearer in bfloat16 than in float32 with the casts there and back, on a CPU
# (forward and backward on 256 x 1024, a Xeon with AMX, ms): gelu 1.63 against 0.82, elu
# 0.57 / 0.28, swish 0.70 / 0.50, sigmoid 0.64 / 0.27, tanh 0.36 / 0.22. ReLU (0.20 / 0.22)
# and leaky ReLU (0.12 / 0.23) are cheaper in bfloat16.
SMOOTH_ACTIVATIONS = ("elu", "gelu", "sigmoid", "silu", "swish", "tanh")


@keras.saving.register_keras_serializable(package="kerasmlp")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense` whose smooth activation computes in float32 under a 16-bit policy.

    Under `mixed_bfloat16` (or `mixed_float16`) Keras's layer applies its activation
    in the compute dtype. For GELU, ELU, swish, sigmoid and tanh that is dearer on a
    CPU than in float32 (`SMOOTH_ACTIVATIONS`): GELU's `Erfc` in bfloat16 made the
    Fashion-MNIST config's step slower in bfloat16 than in float32. Here the matrix
    product and the bias stay in the compute dtype; the activation takes them in
    float32, and its output is rounded once to the compute dtype. In float32, and
    for ReLU, leaky ReLU or no activation, this is Keras's layer.

    Args: as `keras.layers.Dense`.
    """

    def call(self, inputs, training=None):
        if not self._activates_in_float32():
            return super().call(inputs, training=training)
        x = keras.ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            x = keras.ops.add(x, self.bias)
        return self.activate(x)

    def activate(self, x):
        """The layer's activation of pre-activations `x`, in float32 where it is smooth."""
        if not self._activates_in_float32():
            return self.activation(x)
        return keras.ops.cast(self.activation(keras.ops.cast(x, "float32")), x.dtype)

    def _activates_in_float32(self) -> bool:
        return (
            self.compute_dtype in ("bfloat16", "float16")
            and self.quantization_mode is None
            and self.activation is not None
            and getattr(self.activation, "__name__", None) in SMOOTH_ACTIVATIONS
        )


@keras.saving.register_keras_serializable(package="kerasmlp")
class FillMissing(keras.layers.Layer):
    """Replaces NaN by `value`; with `indicator`, appends one 0/1 "was missing" column per input.

    Formula:
      y = where(isnan(x), value, x)            # indicator=False, shape (..., d)
      y = concat([where(...), isnan(x)], -1)   # indicator=True,  shape (..., 2d)

    Example:
    >>> import numpy as np
    >>> FillMissing(indicator=True)(np.array([[1.5], [np.nan]], "float32")).numpy().tolist()
    [[1.5, 0.0], [0.0, 1.0]]

    Args:
      value: what a missing value becomes. Default 0.0 (the mean, after Normalization).
      indicator: append the "was missing" columns. Default False.
    """

    def __init__(self, value: float = 0.0, indicator: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)
        if not isinstance(indicator, bool):  # bool("false") is True, silently
            raise ValueError(
                f"Argument `indicator` must be a bool. Received: indicator={indicator!r}"
            )
        self.indicator = indicator

    def call(self, inputs):
        missing = keras.ops.isnan(inputs)
        filled = keras.ops.where(missing, keras.ops.cast(self.value, inputs.dtype), inputs)
        if not self.indicator:
            return filled
        return keras.ops.concatenate([filled, keras.ops.cast(missing, inputs.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        if not self.indicator or input_shape[-1] is None:
            return tuple(input_shape)
        return (*input_shape[:-1], 2 * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "value": self.value, "indicator": self.indicator}


def shift_rows(images, shift):
    """Moves each image's rows down by its own whole number of rows; zero rows come in.

    Formula: out[b, i] = images[b, i - shift[b]] if 0 <= i - shift[b] < n, else 0.

    One gather of rows from the batch with a zero row appended to each image, so
    the data moves row by row, in its own dtype.

    Args:
      images: (batch, n, m), any dtype; m must be known.
      shift: (batch,) int32; negative moves up.

    Returns:
      (batch, n, m), the dtype of `images`.
    """
    batch, n, m = keras.ops.shape(images)[0], keras.ops.shape(images)[1], images.shape[2]
    source = keras.ops.arange(n, dtype="int32")[None, :] - shift[:, None]
    # Rows from outside the image read the zero row at index n of their image.
    source = keras.ops.where((source >= 0) & (source < n), source, n)
    padded = keras.ops.concatenate([images, keras.ops.zeros((batch, 1, m), images.dtype)], axis=1)
    first_row = (n + 1) * keras.ops.arange(batch, dtype="int32")[:, None]
    return keras.ops.take(keras.ops.reshape(padded, (-1, m)), first_row + source, axis=0)


@keras.saving.register_keras_serializable(package="kerasmlp")
class RandomShift(keras.layers.Layer):
    """Shifts each training image by whole pixels, its own shift per image; black comes in.

    The shifts are drawn as `keras.layers.RandomTranslation(factor, factor,
    fill_mode="constant", interpolation="nearest")` draws and applies them: dy
    uniform in [-factor, factor] times the height, dx likewise times the width,
    each rounded to the nearest pixel (so at most round(factor * size) pixels).
    Keras's layer moves the pixels through an affine transform computed pixel by
    pixel; here each image's rows move by dy, then (transposed) its columns by dx,
    each a gather of whole rows (`shift_rows`), in the input's dtype (a uint8 image
    moves a quarter of the bytes of a float32 one), cast to the compute dtype at the
    end. The same pixels, in 0.76-0.83 ms per batch of 256 MNIST images on 2 CPU
    cores, against 1.96-2.23 for `RandomTranslation` and 1.75-2.10 for two 0/1
    matrix products per image (this layer's earlier form), timed side by side
    through a `tf.function` call (a bare cast costs 0.27-0.30 ms that way). At
    inference (`training=False`, the saved model's predictions) the images pass
    unchanged.

    Formula (each channel of an image X of shape (height, width)):
      Y[i, j] = X[i - dy, j - dx] if that pixel is inside the image, else 0

    Example:
    >>> import numpy as np
    >>> image = np.arange(1, 10, dtype="uint8").reshape(1, 3, 3, 1)
    >>> layer = RandomShift(0.49, seed=0)  # up to round(0.49 * 3) = 1 pixel
    >>> layer(image)[0, ..., 0].numpy().tolist()  # inference: the image as it is, in float32
    [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]

    Args:
      factor: the largest shift, as a fraction of the height and of the width, in [0, 0.5).
      seed: seeds the layer's `keras.random.SeedGenerator`, whose state is one of
        the layer's variables (checkpointed with the model's). Default None: random.

    Input: images of shape (batch, height, width, channels), any numeric dtype; height,
      width and channels known.
    Output: the same shape, in the layer's compute dtype (float32 by default).
    """

    def __init__(self, factor: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(factor) < 0.5:
            raise ValueError(f"Argument `factor` must be in [0, 0.5). Received: factor={factor}")
        self.factor = float(factor)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        # Checked here, once, not in `call`: the rows are moved with these sizes fixed.
        if len(input_shape) != 4 or None in tuple(input_shape)[1:]:
            raise ValueError(
                "RandomShift takes images of shape (batch, height, width, channels) with "
                f"height, width and channels known. Received: input_shape={tuple(input_shape)}"
            )

    def call(self, inputs, training=False):
        if not training or self.factor == 0.0:
            return keras.ops.cast(inputs, self.compute_dtype)
        batch = keras.ops.shape(inputs)[0]
        height, width, channels = inputs.shape[1:]
        seed = replica_seed(self.seed_generator)
        if seed is None:  # one device
            fractions = keras.random.uniform(
                (batch, 2), -self.factor, self.factor, seed=self.seed_generator
            )
        else:  # a shift of its own per replica; the same draw as Keras's TensorFlow backend
            fractions = tf.random.stateless_uniform(
                (batch, 2),
                seed=seed,
                minval=-self.factor,
                maxval=self.factor,
                dtype=keras.config.floatx(),
            )
        sizes = keras.ops.convert_to_tensor([height, width], fractions.dtype)
        shifts = keras.ops.cast(keras.ops.round(fractions * sizes), "int32")
        rows = keras.ops.reshape(inputs, (batch, height, width * channels))
        moved = keras.ops.reshape(shift_rows(rows, shifts[:, 0]), (batch, height, width, channels))
        # The columns: transposed to rows, moved, and back.
        columns = keras.ops.transpose(moved, (0, 2, 1, 3))
        columns = keras.ops.reshape(columns, (batch, width, height * channels))
        moved = keras.ops.reshape(
            shift_rows(columns, shifts[:, 1]), (batch, width, height, channels)
        )
        moved = keras.ops.transpose(moved, (0, 2, 1, 3))
        return keras.ops.cast(moved, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "seed": self.seed}
