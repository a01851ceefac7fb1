"""Tests for kerasmlp.class_weights and `train.class_weight` in the loop.

References: scikit-learn's `compute_class_weight("balanced")` for the weights,
and Keras's own `model.fit(class_weight=...)` for one training step.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from kerasmlp import losses
from kerasmlp.class_weights import resolve_class_weight
from kerasmlp.config import ConfigError, load_config
from kerasmlp.model import Head
from kerasmlp.trainer import Trainer


def test_balanced_matches_scikit_learn():
    labels = np.array([0, 0, 0, 0, 1, 2, 2, 0, 1, 0])
    ours = resolve_class_weight("balanced", class_names=("a", "b", "c"), labels=labels)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_a_mapping_names_classes_and_leaves_the_others_at_one():
    weights = resolve_class_weight({"cherry": 3.0}, class_names=("apple", "banana", "cherry"))
    np.testing.assert_array_equal(weights, [1.0, 1.0, 3.0])
    assert resolve_class_weight("none", class_names=("a", "b")) is None
    with pytest.raises(ConfigError, match="class 'chery'.* Did you mean 'cherry'"):
        resolve_class_weight({"chery": 3.0}, class_names=("apple", "cherry"))
    with pytest.raises(ConfigError, match="b have no training example"):
        resolve_class_weight("balanced", class_names=("a", "b"), labels=np.array([0, 0]))


def test_weights_of_zero_for_every_class_are_refused():
    # Some zeros are a choice (drop a class); all of them leave nothing to train on.
    np.testing.assert_array_equal(
        resolve_class_weight({"a": 0.0}, class_names=("a", "b")), [0.0, 1.0]
    )
    with pytest.raises(ConfigError, match="every class weight 0: .* nothing would train"):
        resolve_class_weight({"a": 0.0, "b": 0}, class_names=("a", "b"))


@pytest.mark.parametrize(
    "value,message",
    [
        ("balnced", "Did you mean 'balanced'"),
        ("{a: -1}", "train.class_weight.a must be >= 0"),
        ("[1, 2]", "train.class_weight must be a name or a mapping"),
        ("{}", "train.class_weight must be a non-empty mapping. Received: train.class_weight={}"),
        # Keys YAML reads as something other than a name: the name the user meant is lost.
        ("{null: 1}", "YAML read the key null as no value: quote the name"),
        ("{1e3: 2}", "YAML read the key 1000.0 as a number: quote the name"),
        ("{true: 2}", "YAML read the key true as a boolean: quote the name"),
    ],
)
def test_bad_settings_are_refused_at_load(value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"train.class_weight={value}"])


def test_keys_are_class_names_as_written():
    # YAML 1.1 would read yes and no as booleans; kerasmlp's YAML keeps them names.
    config = load_config(None, ["train.class_weight={yes: 3, no: 1, 1: 2, '1e3': 4}"])
    assert config.train.class_weight == {"yes": 3.0, "no": 1.0, "1": 2.0, "1e3": 4.0}


def test_regression_refuses_class_weights():
    with pytest.raises(ConfigError, match="this task is regression"):
        load_config(
            None,
            [
                "data.name=sine",
                "loss.name=mean_squared_error",
                "metrics=[mse]",
                "train.class_weight=balanced",
            ],
        )


def test_a_weighted_step_equals_model_fit_with_class_weight():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)).astype("float32")
    y = np.array([0, 1, 2, 0, 0, 1, 2, 2, 0, 1, 0, 0], "int32")
    class_weight = [2.0, 0.5, 1.5]

    def make_model():
        keras.utils.set_random_seed(1)
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])

    ours = make_model()
    trainer = Trainer(
        ours,
        losses.SparseCategoricalCrossentropy(from_logits=True),
        keras.optimizers.SGD(0.5),
        head=Head("softmax", 3),
        metric_names=(),
        class_weight=class_weight,
    )
    batches = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    trainer.run_steps(batches, 1)

    # Reference: Keras's own fit, one full batch, the same start.
    reference = make_model()
    reference.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    reference.fit(
        x,
        y,
        batch_size=12,
        epochs=1,
        shuffle=False,
        verbose=0,
        class_weight=dict(enumerate(class_weight)),
    )
    for a, b in zip(ours.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
