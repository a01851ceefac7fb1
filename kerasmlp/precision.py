"""Mixed precision: `train.precision` made into the Keras dtype policy the model's layers get.

A policy is given to each layer (`keras.layers.Dense(..., dtype=policy)`), never
set globally with `keras.mixed_precision.set_global_policy`: two runs in one
process (a sweep, the tests) cannot leak a policy into each other. The head
always computes in float32, so the logits, the loss and the metrics are
float32 whatever the hidden layers compute in (as the Keras mixed-precision
guide keeps the model's last layer in float32). `mixed_float16` also needs
loss scaling (`keras.optimizers.LossScaleOptimizer`, see
`kerasmlp.components.make_optimizer` and `kerasmlp.trainer.Trainer`).

`choose_precision` is the `auto` rule, a pure function of what the hardware
reports (CPU flags, GPU compute capabilities) and, on a CPU, of the size of the
model's largest hidden layer; `resolve_precision` reads the hardware and
applies it. Reading the CPU flags needs no TensorFlow;
TensorFlow is imported only to list GPUs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

FLOAT32 = "float32"
MIXED_BFLOAT16 = "mixed_bfloat16"
MIXED_FLOAT16 = "mixed_float16"

# CPU flags (as Linux's /proc/cpuinfo names them) of bfloat16 matrix units:
# Intel's AMX tiles (Sapphire Rapids and later) and the AVX512-BF16 dot-product
# instructions (Cooper Lake, AMD Zen 4 and later).
AMX_FLAG = "amx_bf16"
AVX512_BF16_FLAG = "avx512_bf16"
# NVIDIA GPUs multiply bfloat16 on tensor cores from compute capability 8.0 (Ampere).
MIN_BFLOAT16_GPU = (8, 0)
# On a CPU with AMX, the fewest weights of the largest hidden kernel for which `auto`
# picks bfloat16. Measured on 2 cores of a Xeon with AMX (`benchmarks/precision.py
# --repeats 0`, the compiled loop's bfloat16 / float32 ratio): spirals with [32, 32, 32]
# 0.77, [64, 64] 0.89, [128, 128] 0.88 (16,384 weights), [256, 256] 1.18 (65,536);
# MNIST's 784 inputs with [128, 64] 1.11 (100,352), the seeds' [256, 128, 64, 32] 1.27,
# configs/mnist.yaml 1.31, configs/fashion_mnist.yaml (GELU) 1.15. Below it the steps are
# short and the casts cost more than the faster products save.
MIN_BFLOAT16_CPU_WEIGHTS = 32_768


@dataclasses.dataclass(frozen=True)
class Precision:
    """The precision a run trains in, and why.

    Attributes:
      name: 'float32', 'mixed_bfloat16' or 'mixed_float16': the Keras dtype
        policy of the hidden layers (the head is always float32).
      setting: what `train.precision` said ('auto' or one of the names).
      reason: why `auto` chose `name`; for a named precision, a note when the
        hardware does not suit it, else ''.
    """

    name: str
    setting: str = "auto"
    reason: str = ""

    @property
    def loss_scaling(self) -> bool:
        """float16 gradients underflow without it; bfloat16 has float32's exponent range."""
        return self.name == MIXED_FLOAT16

    @property
    def dtype_policy(self) -> str | None:
        """The `dtype=` of the hidden layers; None keeps Keras's default (float32)."""
        return None if self.name == FLOAT32 else self.name

    def describe(self) -> str:
        """`precision: auto -> mixed_bfloat16 (CPU has amx_bf16)`: the run's console line."""
        if self.setting == "auto":
            return f"precision: auto -> {self.name} ({self.reason})"
        return f"precision: {self.name}" + (f" ({self.reason})" if self.reason else "")


def choose_precision(
    cpu_flags: Iterable[str],
    gpu_capabilities: Sequence[tuple[int, int]],
    largest_kernel: int | None = None,
) -> tuple[str, str]:
    """The `auto` rule: bfloat16 where the hardware multiplies it fast, else float32.

    With GPUs the model trains on them, so they decide: `mixed_bfloat16` when
    every GPU has compute capability >= 8.0 (bfloat16 tensor cores), else
    float32. Without GPUs, a CPU with AMX (`amx_bf16`) gets `mixed_bfloat16`
    for a model whose largest hidden kernel has at least
    `MIN_BFLOAT16_CPU_WEIGHTS` weights: its bfloat16 matmul runs at about 4x
    float32, and the loop trained 1.1x to 1.4x faster from MNIST's
    [128, 64] to the MNIST config; a smaller model (the default spirals one)
    trained 0.77x to 0.89x as fast, so it stays float32. A CPU with AVX512-BF16
    but no AMX stays float32: on the AMD EPYC this was measured on, bfloat16
    multiplied 1.7x faster and trained the MNIST config 1.28x faster at the same
    accuracy, but trained the default spirals model 0.84x as fast; there
    `mixed_bfloat16` is one setting away for wide models (README, "Mixed precision").

    Args:
      cpu_flags: the CPU's feature flags, as /proc/cpuinfo lists them.
      gpu_capabilities: (major, minor) compute capability of each GPU; empty
        when there is none.
      largest_kernel: weights of the model's largest hidden Dense kernel
        (`largest_layer_weights`); None when not known, taken as large enough.

    Returns:
      (policy name, reason), e.g. `('mixed_bfloat16', 'CPU has amx_bf16')`.

    Example:
      >>> choose_precision({"avx512f", "amx_bf16"}, [])
      ('mixed_bfloat16', 'CPU has amx_bf16')
      >>> choose_precision({"amx_bf16"}, [], largest_kernel=1024)
      ('float32', 'CPU has amx_bf16; largest layer 1,024 weights < 32,768')
      >>> choose_precision({"amx_bf16"}, [(7, 5)])
      ('float32', 'GPU compute capability 7.5 < 8.0')
    """
    if gpu_capabilities:
        lowest = min(tuple(c) for c in gpu_capabilities)
        shown = f"{lowest[0]}.{lowest[1]}"
        if lowest >= MIN_BFLOAT16_GPU:
            return MIXED_BFLOAT16, f"GPU compute capability {shown} >= 8.0"
        return FLOAT32, f"GPU compute capability {shown} < 8.0"
    flags = set(cpu_flags)
    if AMX_FLAG in flags:
        if largest_kernel is not None and largest_kernel < MIN_BFLOAT16_CPU_WEIGHTS:
            return FLOAT32, (
                f"CPU has {AMX_FLAG}; largest layer {largest_kernel:,} weights "
                f"< {MIN_BFLOAT16_CPU_WEIGHTS:,}"
            )
        return MIXED_BFLOAT16, f"CPU has {AMX_FLAG}"
    if AVX512_BF16_FLAG in flags:
        return FLOAT32, f"CPU has {AVX512_BF16_FLAG} but no {AMX_FLAG}"
    return FLOAT32, f"no GPU, CPU without {AMX_FLAG}"


def named_precision_note(name: str, gpu_capabilities: Sequence[tuple[int, int]]) -> str:
    """What the console line adds to a precision the config names: '' where it suits.

    float16 is meant for GPUs: a CPU multiplies it slower than float32 (0.6x
    measured on the development machine's EPYC), so training there is slower
    than in float32, not faster. bfloat16 on a GPU needs compute capability 8.0
    (Ampere) for tensor cores of its own; below it, it is no faster (the rule
    `choose_precision` applies to `auto`).

    Example:
      >>> named_precision_note("mixed_float16", [])
      'no GPU: float16 multiplies slower than float32 on a CPU'
      >>> named_precision_note("mixed_float16", [(8, 0)])
      ''
      >>> named_precision_note("mixed_bfloat16", [(7, 5)])
      'GPU compute capability 7.5 < 8.0: no bfloat16 tensor cores'
    """
    if name == MIXED_FLOAT16 and not gpu_capabilities:
        return "no GPU: float16 multiplies slower than float32 on a CPU"
    if name == MIXED_BFLOAT16 and gpu_capabilities:
        lowest = min(tuple(c) for c in gpu_capabilities)
        if lowest < MIN_BFLOAT16_GPU:
            return f"GPU compute capability {lowest[0]}.{lowest[1]} < 8.0: no bfloat16 tensor cores"
    return ""


def read_cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from Linux's /proc/cpuinfo; empty where it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":  # one line per core, all the same
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def gpu_capabilities() -> list[tuple[int, int]]:
    """The compute capability of each visible GPU (TensorFlow's device details)."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        # A GPU that does not say (not CUDA) is taken as one without bfloat16 units.
        capabilities.append(tuple(capability) if capability else (0, 0))
    return capabilities


def largest_layer_weights(input_dim: int, hidden_units: Sequence[int]) -> int:
    """Weights of the largest hidden Dense kernel: `max(in * out)` from the input on.

    Example:
      >>> largest_layer_weights(784, [1024, 256])
      802816
      >>> largest_layer_weights(2, [32, 32, 32])
      1024
    """
    sizes = [input_dim, *hidden_units]
    return max((a * b for a, b in zip(sizes, sizes[1:], strict=False)), default=0)


def resolve_precision(setting: str, largest_kernel: int | None = None) -> Precision:
    """`train.precision` as a `Precision`: `auto` decided on this machine's hardware
    and, on a CPU, the weights of the model's largest hidden layer (`choose_precision`)."""
    if setting != "auto":
        gpus = gpu_capabilities() if setting != FLOAT32 else []
        return Precision(setting, setting, named_precision_note(setting, gpus))
    name, reason = choose_precision(read_cpu_flags(), gpu_capabilities(), largest_kernel)
    return Precision(name, "auto", reason)
