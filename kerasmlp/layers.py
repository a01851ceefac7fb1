"""Keras layers kerasmlp puts inside saved models, registered so `import kerasmlp` loads them.

`FillMissing` is the one piece of tabular preprocessing Keras has no layer for:
a missing number (NaN) becomes a fixed value after `keras.layers.Normalization`
(0: the training mean), optionally with a 0/1 column saying it was missing.
"""

from __future__ import annotations

import keras


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
        self.indicator = bool(indicator)

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
