"""Generated 2-D datasets in the spirit of the TensorFlow Playground, served through TFDS.

The generators are pure numpy functions (``make_spirals(n, noise, rng)`` and
friends) that return ``(x, y)`` arrays; the `KerasmlpPlayground` builder
(registered in TFDS as ``kerasmlp_playground``) writes them as a normal
prepared TFDS dataset, so generated and downloaded data reach the training loop
the same way. Preparing needs no network and takes about a second.

Points lie in about [-1, 1]^2 (the Playground's [-6, 6] square scaled down), so
no input normalization is needed. ``spirals``, ``circles`` and ``xor`` defeat a
linear model and are easy for a small ReLU/tanh MLP; ``gaussians`` is linearly
separable (a sanity check); ``sine`` is a regression surface.

Example:

>>> import tensorflow_datasets as tfds
>>> import kerasmlp.playground  # registers the builder
>>> ds = tfds.load("kerasmlp_playground/spirals", split="train", as_supervised=True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds

NUM_TRAIN = 4000
NUM_TEST = 1000
# Standard deviation of the Gaussian noise added to every coordinate (and to the
# regression target). Small next to the gaps between classes, so labels stay
# learnable to ~100% while the points do not sit on perfect curves.
NOISE = 0.03
# One numpy seed per split: the data are a pure function of (config, split).
_SPLIT_SEEDS = {"train": 0, "test": 1}

Generator = Callable[[int, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _balanced_labels(n: int) -> np.ndarray:
    """`n` labels, the first half 0 and the rest 1 (counts differ by at most one)."""
    return (np.arange(n) >= n // 2).astype(np.int64)


def make_spirals(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals, 1.75 turns each, radius 0 to 1.

    Args:
        n: number of points; classes get n // 2 and n - n // 2 points.
        noise: standard deviation of the Gaussian noise added to each coordinate.
        rng: the numpy generator that draws the noise.

    Returns:
        ``(x, y)``: x float32 of shape (n, 2), y int64 of shape (n,) in {0, 1}.
    """
    y = _balanced_labels(n)
    x = np.empty((n, 2), np.float64)
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        # Points spread evenly along the arm, as in the Playground's genSpiral;
        # class 1 is class 0 turned by half a turn.
        s = np.arange(idx.size) / idx.size
        radius = s
        angle = 1.75 * 2 * np.pi * s + np.pi * label
        x[idx, 0] = radius * np.sin(angle)
        x[idx, 1] = radius * np.cos(angle)
    x += rng.normal(0.0, noise, size=x.shape)
    return x.astype(np.float32), y


def make_circles(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A disc (label 1, radius < 0.5) inside a ring (label 0, radius 0.7 to 1).

    Args:
        n: number of points; classes get n // 2 and n - n // 2 points.
        noise: standard deviation of the Gaussian noise added to each coordinate.
        rng: the numpy generator that draws positions and noise.

    Returns:
        ``(x, y)``: x float32 of shape (n, 2), y int64 of shape (n,) in {0, 1}.
    """
    y = _balanced_labels(n)
    # Label 0 is the outer ring, label 1 the inner disc (the Playground's radii, scaled).
    low = np.where(y == 1, 0.0, 0.7)
    high = np.where(y == 1, 0.5, 1.0)
    radius = rng.uniform(low, high)
    angle = rng.uniform(0.0, 2 * np.pi, size=n)
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    x += rng.normal(0.0, noise, size=x.shape)
    return x.astype(np.float32), y


def make_xor(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points in the four quadrants; label 1 where x0 * x1 > 0 (first and third).

    The points keep 0.05 away from both axes (the Playground's padding) so that
    the small noise rarely carries a point across into the other class.

    Args:
        n: number of points; classes get n // 2 and n - n // 2 points.
        noise: standard deviation of the Gaussian noise added to each coordinate.
        rng: the numpy generator that draws positions and noise.

    Returns:
        ``(x, y)``: x float32 of shape (n, 2), y int64 of shape (n,) in {0, 1}.
    """
    y = _balanced_labels(n)
    magnitude = rng.uniform(0.05, 1.0, size=(n, 2))
    sign0 = rng.choice([-1.0, 1.0], size=n)
    # Same signs for label 1, opposite signs for label 0.
    sign1 = np.where(y == 1, sign0, -sign0)
    x = magnitude * np.stack([sign0, sign1], axis=1)
    x += rng.normal(0.0, noise, size=x.shape)
    return x.astype(np.float32), y


def make_gaussians(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs (std 0.2) at (0.4, 0.4) (label 1) and (-0.4, -0.4) (label 0).

    Linearly separable up to a thin overlap: the line x0 + x1 = 0 is ~2.8 std
    from each centre.

    Args:
        n: number of points; classes get n // 2 and n - n // 2 points.
        noise: standard deviation of the extra Gaussian noise on each coordinate.
        rng: the numpy generator that draws the points.

    Returns:
        ``(x, y)``: x float32 of shape (n, 2), y int64 of shape (n,) in {0, 1}.
    """
    y = _balanced_labels(n)
    centre = np.where(y[:, None] == 1, 0.4, -0.4)
    x = centre + rng.normal(0.0, 0.2, size=(n, 2)) + rng.normal(0.0, noise, size=(n, 2))
    return x.astype(np.float32), y


def make_sine(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Regression: target ``sin(pi * x0) * cos(pi * x1)`` over the square [-1, 1]^2.

    The surface has two bumps and two dips, so a linear model explains nothing
    of it (its best fit is ~0) while a small MLP fits it closely.

    Args:
        n: number of points.
        noise: standard deviation of the Gaussian noise added to the target.
        rng: the numpy generator that draws positions and noise.

    Returns:
        ``(x, target)``: x float32 of shape (n, 2), target float32 of shape (n,).
    """
    x = rng.uniform(-1.0, 1.0, size=(n, 2))
    target = np.sin(np.pi * x[:, 0]) * np.cos(np.pi * x[:, 1])
    target += rng.normal(0.0, noise, size=n)
    return x.astype(np.float32), target.astype(np.float32)


@dataclasses.dataclass(eq=False)
class PlaygroundConfig(tfds.core.BuilderConfig):
    """One generated dataset: its generator, its task and, for classification, class names."""

    generator: Generator | None = None
    task: str = "classification"
    class_names: tuple[str, ...] = ()


def _config(name, generator, class_names, description):
    task = "classification" if class_names else "regression"
    return PlaygroundConfig(
        name=name,
        description=description,
        generator=generator,
        task=task,
        class_names=class_names,
    )


CONFIGS = (
    _config("spirals", make_spirals, ("spiral_a", "spiral_b"), "Two interleaved spirals."),
    _config("circles", make_circles, ("ring", "disc"), "A disc inside a ring."),
    _config("xor", make_xor, ("opposite_signs", "same_signs"), "Label is the sign of x0 * x1."),
    _config("gaussians", make_gaussians, ("negative", "positive"), "Two Gaussian blobs."),
    _config("sine", make_sine, (), "Regression on sin(pi x0) cos(pi x1)."),
)


class KerasmlpPlayground(tfds.core.GeneratorBasedBuilder):
    """TFDS builder for the generated 2-D datasets; one BuilderConfig per dataset."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Spirals, circles, xor, gaussians and sine."}
    BUILDER_CONFIGS = list(CONFIGS)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        if config.task == "classification":
            target_key = "label"
            target = tfds.features.ClassLabel(names=list(config.class_names))
        else:
            target_key = "target"
            target = tfds.features.Tensor(shape=(), dtype=np.float32)
        return self.dataset_info_from_configs(
            description="Generated 2-D data in the spirit of the TensorFlow Playground.",
            features=tfds.features.FeaturesDict(
                {
                    "features": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                    target_key: target,
                }
            ),
            supervised_keys=("features", target_key),
            homepage="https://playground.tensorflow.org",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {
            "train": self._generate_examples(NUM_TRAIN, _SPLIT_SEEDS["train"]),
            "test": self._generate_examples(NUM_TEST, _SPLIT_SEEDS["test"]),
        }

    def _generate_examples(self, n, split_seed):
        config = self.builder_config
        rng = np.random.default_rng(split_seed)
        x, y = config.generator(n, NOISE, rng)
        # Shuffle once at generation: the generators emit classes in blocks, and
        # the validation slice taken from the end of train must hold both.
        order = rng.permutation(n)
        target_key = "label" if config.task == "classification" else "target"
        for i, j in enumerate(order):
            yield i, {"features": x[j], target_key: y[j]}
