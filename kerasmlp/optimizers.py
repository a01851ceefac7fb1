"""Keras's optimizers, clipping the replicas' summed gradients; Adam and AdamW fused.

All four (`Adam`, `AdamW`, `RMSprop`, `SGD`) clip the gradients once the
replicas' gradients are summed (see `_ClipSummedGradients`), so that under
`tf.distribute` a step with `clipnorm`, `global_clipnorm` or `clipvalue` is one
device's step on the same global batch. Adam and AdamW also update each
variable in one fused TensorFlow kernel:

Keras's `Adam.update_step` is written in `keras.ops`: about a dozen
element-wise ops per variable, each a pass over the whole variable, its
gradient or a slot. On a CPU these passes cost as much as a fifth of a step of
the MNIST config (1.07 million weights), where the matrix products alone should
take the time. TensorFlow's `ResourceApplyAdam` kernel computes the same
formula in one pass:

    m        += (g - m) * (1 - beta_1)
    v        += (g**2 - v) * (1 - beta_2)
    variable -= m * alpha / (sqrt(v) + epsilon)
    alpha     = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)

with t the step, counted from 1. The kernel takes `beta_1` and `beta_2` in the
variable's dtype and computes `1 - beta` from them, as it does `beta**t`;
Keras's computes `beta**t` the same way but rounds Python's `1 - beta`. In
float32, `beta_2 = 0.999` is 0.99899995, so the two `1 - beta_2` differ by
4.7e-5 relative: Keras's bias-corrected `v` after the first step is 0.99995 g**2
where the kernel's is g**2, and the updates differ by about 2e-5 relative. In
float64, Keras raises the betas to the power t after rounding them to float32
(`ops.cast` of a Python float) where the kernel is given them in float64: there
the kernel follows the formula to float64 rounding and Keras's updates are off it
by about 1e-5 relative.

Everything around the update stays Keras's: the slots (`m`, `v`) are the same
variables under the same names, so checkpoints of either class restore into
the other; weight decay (AdamW), `use_ema` and loss scaling are applied by the
base class as before, and the gradient clipping by Keras's code after the sum.
`amsgrad`, sparse gradients (`tf.IndexedSlices`) and dtypes other than float32
and float64 take Keras's own update. `kerasmlp-train` uses these classes for
`optimizer.name: adam`, `adamw`, `rmsprop` and `sgd`; `RMSprop` and `SGD` update
as Keras's do.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["Adam", "AdamW", "RMSprop", "SGD"]

_FUSED_DTYPES = (tf.float32, tf.float64)


class _ClipSummedGradients:
    """Gradient clipping after the replicas' gradients are summed, as on one device.

    Keras's `BaseOptimizer._backend_apply_gradients` clips (`_clip_gradients`)
    before its TensorFlow `_backend_update_step` sums the replicas' gradients
    (`_all_reduce_sum_gradients`): under a strategy each replica's part would be
    clipped by its own norm or values, and the clipped parts summed, which is not
    the one-device step. Here that sum comes first and the clipping after it, as
    Keras clips one device's gradients. Weight decay, applied between the two in
    Keras, reads no gradient. On one device, and where the trainer has summed the
    gradients itself (loss scaling), the sum is the identity: the same step as Keras's.
    """

    def _clip_gradients(self, grads):
        return grads  # in `_backend_update_step`, once summed

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Keras's TensorFlow `_backend_update_step`, with the clipping after the sum.
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        summed = self._all_reduce_sum_gradients(list(zip(grads, variables, strict=True)))
        clipped = super()._clip_gradients([g for g, _ in summed])
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step,
            self._distribution_strategy,
            list(zip(clipped, [v for _, v in summed], strict=True)),
            learning_rate,
        )


class _FusedAdamUpdate:
    """`update_step` through `tf.raw_ops.ResourceApplyAdam`, for Adam and AdamW."""

    def update_step(self, gradient, variable, learning_rate):
        if not self._fuses(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        # The same step and powers as Keras's Adam.update_step, in the variable's dtype.
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.constant(self.beta_1, dtype)
        beta_2 = tf.constant(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.constant(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
            use_nesterov=False,
        )

    def _fuses(self, gradient, variable) -> bool:
        """Whether this update can be the fused kernel (else Keras's own ops)."""
        return (
            keras.backend.backend() == "tensorflow"
            and not self.amsgrad
            and not isinstance(gradient, tf.IndexedSlices)
            and tf.as_dtype(variable.dtype) in _FUSED_DTYPES
        )


def _handle(variable) -> tf.Tensor:
    """The resource handle of a Keras variable, a `tf.Variable` or a replica's copy.

    Inside `tf.distribute`'s `extended.update`, where Keras's TensorFlow
    optimizer calls `update_step`, a mirrored variable's `handle` is the copy on
    the replica being updated.
    """
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


@keras.saving.register_keras_serializable(package="kerasmlp")
class Adam(_FusedAdamUpdate, _ClipSummedGradients, keras.optimizers.Adam):
    """`keras.optimizers.Adam`, each variable updated by one fused kernel (see the module).

    Same arguments, defaults, slots and `get_config` as Keras's Adam.

    Example:
    >>> import numpy as np
    >>> variable = keras.Variable(np.array([1.0, 2.0], "float32"))
    >>> optimizer = Adam(learning_rate=0.1)
    >>> _ = optimizer.apply_gradients([(np.array([0.5, -0.5], "float32"), variable)])
    >>> [round(float(w), 4) for w in variable.numpy()]  # the first step moves each by the rate
    [0.9, 2.1]
    """


@keras.saving.register_keras_serializable(package="kerasmlp")
class AdamW(_FusedAdamUpdate, _ClipSummedGradients, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW`, each variable's Adam update one fused kernel (see the module).

    The decoupled weight decay (`variable -= variable * weight_decay * lr`) is
    applied by Keras's base optimizer before the update, as in Keras's AdamW.
    """


@keras.saving.register_keras_serializable(package="kerasmlp")
class RMSprop(_ClipSummedGradients, keras.optimizers.RMSprop):
    """`keras.optimizers.RMSprop`, clipping the replicas' summed gradients (see the module).

    Same arguments, defaults, slots, update and `get_config` as Keras's RMSprop.
    """


@keras.saving.register_keras_serializable(package="kerasmlp")
class SGD(_ClipSummedGradients, keras.optimizers.SGD):
    """`keras.optimizers.SGD`, clipping the replicas' summed gradients (see the module).

    Same arguments, defaults, slots, update and `get_config` as Keras's SGD.
    """
