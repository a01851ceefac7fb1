"""Every config key reaches the Keras object it configures (kerasmlp.components, .model, .train).

Each row sets one key with `--set` syntax, builds the object the key is for through
the same functions `train_and_evaluate` calls, and reads the value back from that
object (its attribute or `get_config()`), so a key that is parsed but dropped on the
way fails here.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasmlp import catalog, components, data, losses, metrics, optimizers
from kerasmlp.config import Config, ConfigError, load_config
from kerasmlp.model import Head, build_model
from kerasmlp.trainer import Trainer

HEAD = Head("softmax", 10)
REGRESSION = catalog.REGRESSION


def _loss(config):
    return components.make_loss(config.loss)


def _metrics(config):
    return {m.name: m for m in components.make_metrics(config.metrics, HEAD)}


def _schedule(config):
    # The optimizer's `learning_rate` property is the current value; the schedule
    # object it holds is `_learning_rate` (Keras 3's BaseOptimizer).
    schedule = components.make_optimizer(config.optimizer)._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.ExponentialDecay)
    return schedule


def _optimizer_config(config):
    return components.make_optimizer(config.optimizer).get_config()


def _model(config):
    return build_model(config.model, input_dim=2, head=Head("softmax", 3), seed=config.seed)


def _image_model(config):
    raw = {"input_shape": (28, 28, 1), "input_dtype": "uint8", "input_scale": 1 / 255}
    return build_model(config.model, input_dim=784, head=HEAD, seed=config.seed, **raw)


def _loaded(config, monkeypatch):
    """The keyword arguments `train_and_evaluate` passes to `load_datasets`."""
    seen = {}
    monkeypatch.setattr(
        data, "load_datasets", lambda name, **kwargs: seen.update(kwargs, name=name)
    )
    data.load_config_datasets(config)
    return seen


# (id, overrides, what to read from the built object, the value it must hold). Each
# value set differs from the default, so a key that is dropped fails its row.
KEYS = [
    (
        "loss.name=bce",
        ["loss.name=binary_crossentropy"],
        lambda c: type(_loss(c)),
        losses.BinaryCrossentropy,
    ),
    (
        "loss.name=cce",
        ["loss.name=categorical_crossentropy"],
        lambda c: type(_loss(c)),
        losses.CategoricalCrossentropy,
    ),
    ("loss.name=scce", [], lambda c: type(_loss(c)), losses.SparseCategoricalCrossentropy),
    (
        "loss.name=mse",
        ["data.name=sine", "loss.name=mean_squared_error", "metrics=[mse]"],
        lambda c: type(_loss(c)),
        losses.MeanSquaredError,
    ),
    (
        "loss.name=mae",
        ["data.name=sine", "loss.name=mean_absolute_error", "metrics=[mae]"],
        lambda c: type(_loss(c)),
        losses.MeanAbsoluteError,
    ),
    (
        "loss.label_smoothing",
        ["loss.label_smoothing=0.1"],
        lambda c: _loss(c).get_config()["label_smoothing"],
        0.1,
    ),
    ("loss.from_logits", [], lambda c: _loss(c).get_config()["from_logits"], True),
    (
        "metrics=accuracy",
        ["metrics=[accuracy]"],
        lambda c: type(_metrics(c)["accuracy"]),
        metrics.SparseCategoricalAccuracy,
    ),
    (
        "metrics=top5_accuracy",
        ["data.name=mnist", "metrics=[top5_accuracy]"],
        lambda c: _metrics(c)["top5_accuracy"].get_config()["k"],
        5,
    ),
    (
        "metrics=ece",
        ["metrics=[ece]"],
        lambda c: _metrics(c)["ece"].get_config()["from_logits"],
        True,
    ),
    (
        "metrics=macro_f1",
        ["metrics=[macro_f1]"],
        lambda c: (type(m := _metrics(c)["macro_f1"]), m.average, m.num_classes),
        (metrics.F1Score, "macro", 10),
    ),
    (
        "metrics=micro_f1",
        ["metrics=[micro_f1]"],
        lambda c: _metrics(c)["micro_f1"].average,
        "micro",
    ),
    (
        "metrics=weighted_f1",
        ["metrics=[weighted_f1]"],
        lambda c: _metrics(c)["weighted_f1"].average,
        "weighted",
    ),
    (
        "metrics=macro_precision",
        ["metrics=[macro_precision]"],
        lambda c: type(_metrics(c)["macro_precision"]),
        metrics.Precision,
    ),
    (
        "metrics=macro_recall",
        ["metrics=[macro_recall]"],
        lambda c: type(_metrics(c)["macro_recall"]),
        metrics.Recall,
    ),
    (
        "metrics=mse",
        ["data.name=sine", "loss.name=mean_squared_error", "metrics=[mse]"],
        lambda c: type(_metrics(c)["mse"]),
        metrics.MeanSquaredError,
    ),
    (
        "metrics=mae",
        ["data.name=sine", "loss.name=mean_squared_error", "metrics=[mae]"],
        lambda c: type(_metrics(c)["mae"]),
        metrics.MeanAbsoluteError,
    ),
    (
        "metrics=rmse",
        ["data.name=sine", "loss.name=mean_squared_error", "metrics=[rmse]"],
        lambda c: type(_metrics(c)["rmse"]),
        metrics.RootMeanSquaredError,
    ),
    (
        "optimizer.name=adam",
        ["optimizer.name=adam"],
        lambda c: type(components.make_optimizer(c.optimizer)),
        optimizers.Adam,
    ),
    (
        "optimizer.name=adamw",
        ["optimizer.name=adamw"],
        lambda c: type(components.make_optimizer(c.optimizer)),
        optimizers.AdamW,
    ),
    (
        "optimizer.name=rmsprop",
        ["optimizer.name=rmsprop"],
        lambda c: type(components.make_optimizer(c.optimizer)),
        optimizers.RMSprop,
    ),
    (
        "optimizer.name=sgd",
        ["optimizer.name=sgd"],
        lambda c: type(components.make_optimizer(c.optimizer)),
        optimizers.SGD,
    ),
    (
        "initial_learning_rate",
        ["optimizer.learning_rate.initial_learning_rate=0.25"],
        lambda c: _schedule(c).get_config()["initial_learning_rate"],
        0.25,
    ),
    (
        "decay_steps",
        ["optimizer.learning_rate.decay_steps=77"],
        lambda c: _schedule(c).get_config()["decay_steps"],
        77,
    ),
    (
        "decay_rate",
        ["optimizer.learning_rate.decay_rate=0.3"],
        lambda c: _schedule(c).get_config()["decay_rate"],
        0.3,
    ),
    (
        "staircase",
        ["optimizer.learning_rate.staircase=true"],
        lambda c: _schedule(c).get_config()["staircase"],
        True,
    ),
    (
        "optimizer.weight_decay",
        ["optimizer.weight_decay=0.01"],
        lambda c: _optimizer_config(c)["weight_decay"],
        0.01,
    ),
    (
        "optimizer.weight_decay(adamw)",
        ["optimizer.name=adamw", "optimizer.weight_decay=0.0"],
        lambda c: _optimizer_config(c)["weight_decay"],
        0.0,
    ),
    (
        "optimizer.clipnorm",
        ["optimizer.clipnorm=1.5"],
        lambda c: _optimizer_config(c)["clipnorm"],
        1.5,
    ),
    (
        "optimizer.global_clipnorm",
        ["optimizer.global_clipnorm=2.5"],
        lambda c: _optimizer_config(c)["global_clipnorm"],
        2.5,
    ),
    (
        "optimizer.clipvalue",
        ["optimizer.clipvalue=0.5"],
        lambda c: _optimizer_config(c)["clipvalue"],
        0.5,
    ),
    (
        "optimizer.momentum(sgd)",
        ["optimizer.name=sgd", "optimizer.momentum=0.9"],
        lambda c: _optimizer_config(c)["momentum"],
        0.9,
    ),
    (
        "optimizer.momentum(rmsprop)",
        ["optimizer.name=rmsprop", "optimizer.momentum=0.5"],
        lambda c: _optimizer_config(c)["momentum"],
        0.5,
    ),
    (
        "optimizer.nesterov",
        ["optimizer.name=sgd", "optimizer.momentum=0.9", "optimizer.nesterov=true"],
        lambda c: _optimizer_config(c)["nesterov"],
        True,
    ),
    (
        "optimizer.beta_1",
        ["optimizer.beta_1=0.8"],
        lambda c: _optimizer_config(c)["beta_1"],
        0.8,
    ),
    (
        "optimizer.beta_2",
        ["optimizer.name=adamw", "optimizer.beta_2=0.99"],
        lambda c: _optimizer_config(c)["beta_2"],
        0.99,
    ),
    (
        "optimizer.epsilon",
        ["optimizer.epsilon=1e-5"],
        lambda c: _optimizer_config(c)["epsilon"],
        1e-05,
    ),
    (
        "optimizer.epsilon(rmsprop)",
        ["optimizer.name=rmsprop", "optimizer.epsilon=1e-3"],
        lambda c: _optimizer_config(c)["epsilon"],
        0.001,
    ),
    (
        "model.hidden_units",
        ["model.hidden_units=[5, 7]"],
        lambda c: [
            layer.units for layer in _model(c).layers if isinstance(layer, keras.layers.Dense)
        ],
        [5, 7, 3],
    ),
    (
        "model.activation",
        ["model.activation=tanh"],
        lambda c: _model(c).get_layer("dense_1").get_config()["activation"],
        "tanh",
    ),
    (
        "model.dropout",
        ["model.dropout=0.25"],
        lambda c: _model(c).get_layer("dropout_2").rate,
        0.25,
    ),
    (
        "model.kernel_initializer",
        ["model.kernel_initializer=he_normal"],
        lambda c: {type(layer.kernel_initializer).__name__ for layer in _model(c).layers[1:]},
        {"HeNormal"},
    ),
    (
        "model.weight_decay",
        ["model.weight_decay=0.5"],
        lambda c: {float(layer.kernel_regularizer.l2) for layer in _model(c).layers[1:]},
        {0.5},
    ),
    (
        "model.random_translation",
        ["data.name=mnist", "model.random_translation=0.1"],
        lambda c: _image_model(c).get_layer("random_translation").get_config()["factor"],
        0.1,
    ),
    ("seed", ["seed=7"], lambda c: _model(c).get_layer("dense_0").kernel_initializer.seed, 7),
]
# Keys read by the training loop itself; test_train.py and test_end_to_end.py show
# them at work (steps run, when events are written).
LOOP_KEYS = {
    "train.epochs",
    "train.log_every_steps",
    "train.eval_every_epochs",
    "train.histogram_every_epochs",
    "train.image_every_epochs",
    "train.profile_steps",
    # The long-run keys reach the controller's actions: tests/test_long_run*.py run each
    # (checkpoints and resume, on_divergence with its factor and count, early stopping,
    # save_best) through the console script, and tests/test_actions.py checks the actions.
    "train.checkpoint_every_seconds",
    "train.keep_checkpoints",
    "train.on_divergence",
    "train.rollback_factor",
    "train.max_rollbacks",
    "train.early_stopping.monitor",
    "train.early_stopping.mode",
    "train.early_stopping.patience",
    "train.early_stopping.min_delta",
    "train.early_stopping.restore_best",
    "train.save_best",
    "train.class_weight",  # test_class_weights.py: one step equals model.fit's
    # test_precision.py: the layers' policies, loss scaling, the auto rule, short runs.
    "train.precision",
}
# Keys that choose the devices: checked by tests/test_distribute.py.
DISTRIBUTE_KEYS = {"distribute.strategy", "distribute.cpu_devices"}
# Keys passed to load_datasets: checked by test_data_keys_reach_load_datasets.
DATA_KEYS = {
    "data.name": ("name", "csv"),
    "data.path": ("path", "/some/train.csv"),
    "data.test_path": ("test_path", "/some/test.csv"),
    "data.label": ("label", "target"),
    "data.task": ("task", "classification"),
    "data.test_fraction": ("test_fraction", 0.3),
    "data.categorical": ("categorical", ["rooms", "zip"]),
    "data.data_dir": ("data_dir", "/somewhere"),
    "data.manual_dir": ("manual_dir", "/elsewhere"),
    "data.cache": ("cache", False),
    "data.shuffle_buffer": ("shuffle_buffer", 123),
    "train.batch_size": ("batch_size", 17),
    "train.validation_fraction": ("validation_fraction", 0.3),
    "seed": ("seed", 5),
}


@pytest.mark.parametrize("overrides,read,expected", [k[1:] for k in KEYS], ids=[k[0] for k in KEYS])
def test_each_key_reaches_its_object(overrides, read, expected):
    config = load_config(None, overrides)
    value = read(config)
    if isinstance(expected, float):  # Keras keeps some floats as float32
        assert value == pytest.approx(expected, rel=1e-6)
    else:
        assert value == expected


def test_data_keys_reach_load_datasets(monkeypatch):
    config = load_config(
        None, [f"{key}={value!r}".replace("'", "") for key, (_, value) in DATA_KEYS.items()]
    )
    seen = _loaded(config, monkeypatch)
    for key, (argument, value) in DATA_KEYS.items():
        # A YAML list arrives as the config's tuple.
        assert seen[argument] == (tuple(value) if isinstance(value, list) else value), key


def test_every_config_key_is_covered_here():
    # A new key must get a row above (or be named a loop or data key).
    covered = {o.split("=")[0] for _, overrides, _, _ in KEYS for o in overrides} | {
        "loss.name",
        "loss.from_logits",
        "metrics",
    }
    assert set(Config().flatten()) <= covered | LOOP_KEYS | set(DATA_KEYS) | DISTRIBUTE_KEYS


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop", "sgd"])
def test_each_optimizer_takes_a_training_step(name):
    config = load_config(None, [f"optimizer.name={name}", "model.hidden_units=[4]"])
    model = _model(config)
    optimizer = components.make_optimizer(config.optimizer)
    loss_fn = components.make_loss(config.loss)
    x = np.array([[0.5, -1.0], [1.0, 2.0]], "float32")
    y = np.array([0, 2])
    before = [w.numpy().copy() for w in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    assert int(optimizer.iterations) == 1
    after = [w.numpy() for w in model.trainable_variables]
    assert not np.array_equal(before[-2], after[-2])  # the head's kernel moved
    # The step used the schedule's first value, the config's initial rate.
    assert float(optimizer.learning_rate) == pytest.approx(
        config.optimizer.learning_rate.initial_learning_rate * 0.5 ** (1 / 1000), rel=1e-5
    )


@pytest.mark.parametrize("name", sorted(catalog.OPTIMIZERS))
def test_each_optimizers_options_and_defaults_are_keras_own(name):
    # Reference: Keras 3.15's class of that name built with no arguments but the rate.
    entry = catalog.OPTIMIZERS[name]
    keras_config = getattr(keras.optimizers, entry.cls)(learning_rate=0.1).get_config()
    for key, default in entry.options.items():
        # The base class's weight_decay None is written 0.0 (no decay) in the config.
        want = 0.0 if key == "weight_decay" and keras_config[key] is None else keras_config[key]
        assert default == pytest.approx(want, rel=1e-6) if default else default == want, key
    # Left at the config's defaults, the optimizer is Keras's with its own defaults.
    config = load_config(None, [f"optimizer.name={name}"])
    assert components.optimizer_options(config.optimizer) == {}
    built = components.make_optimizer(config.optimizer).get_config()
    assert {k: built[k] for k in entry.options} == {k: keras_config[k] for k in entry.options}


def test_the_configs_defaults_are_the_catalogs():
    # The config's defaults decide which keys were given (refused for an optimizer that
    # does not take them); the catalog's which are passed to Keras: they must agree.
    # weight_decay null is each optimizer's own (the catalog's 0.0 or 0.004).
    from kerasmlp.config import OPTIMIZER_OPTIONS, OptimizerConfig

    defaults = OptimizerConfig()
    assert set(OPTIMIZER_OPTIONS) == {
        key for entry in catalog.OPTIMIZERS.values() for key in entry.options
    }
    for name, entry in catalog.OPTIMIZERS.items():
        for key, default in entry.options.items():
            if key != "weight_decay":
                assert getattr(defaults, key) == default, (name, key)
    assert defaults.weight_decay is None


@pytest.mark.parametrize(
    "name, momentum",
    [("adam", 0.0), ("adamw", 0.0), ("rmsprop", 0.0), ("rmsprop", 0.9), ("sgd", 0.0), ("sgd", 0.9)],
)
def test_memory_estimate_slots_are_those_keras_builds(name, momentum):
    # Reference: the variables Keras's class builds per weight (all but `iterations`).
    from kerasmlp.config import optimizer_slots

    overrides = [f"optimizer.name={name}"] + (
        [f"optimizer.momentum={momentum}"] if momentum else []
    )
    config = load_config(None, overrides)
    optimizer = components.make_optimizer(config.optimizer)
    optimizer.build([keras.Variable(np.zeros((3, 2), "float32"))])
    per_weight = [v for v in optimizer.variables if tuple(v.shape) == (3, 2)]
    assert len(per_weight) == optimizer_slots(config.optimizer)


@pytest.mark.parametrize("name", sorted(catalog.METRICS))
def test_each_metric_name_builds_the_class_the_catalog_names(name):
    entry = catalog.METRICS[name]
    heads = {"auc": Head("sigmoid", 1)}
    head = heads.get(name, Head("linear", 1) if entry.task == REGRESSION else HEAD)
    (metric,) = components.make_metrics((name,), head)
    assert type(metric) is getattr(metrics, entry.cls) and metric.name == name
    if entry.per_class:
        assert metric.num_classes == head.num_classes
    for key, value in entry.kwargs.items():
        assert metric.get_config()[key] == value


@pytest.mark.parametrize("name", sorted(catalog.LOSSES))
def test_each_loss_name_builds_the_class_the_catalog_names(name):
    config = load_config(
        None,
        [f"loss.name={name}"]
        + (["data.name=sine", "metrics=[mse]"] if catalog.LOSSES[name].task == REGRESSION else []),
    )
    assert type(components.make_loss(config.loss)) is getattr(losses, catalog.LOSSES[name].cls)


def test_the_config_checks_the_catalog_names():
    # The config's lists are read from the catalog, not kept beside it.
    from kerasmlp import config as config_module

    assert set(config_module.LOSSES) == set(catalog.LOSSES)
    assert set(config_module.METRICS) == set(catalog.METRICS)
    assert set(config_module.OPTIMIZERS) == set(catalog.OPTIMIZERS)
    assert config_module.OPTIMIZER_SLOTS == {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 0}


def test_top5_accuracy_on_few_classes_is_still_refused_when_the_count_comes_late():
    # An unknown TFDS set passes the config check; make_metrics refuses once TFDS says 3.
    config = load_config(None, ["data.name=my_set", "metrics=[top5_accuracy]"])
    with pytest.raises(ConfigError, match="top5_accuracy is always 1 with 3 classes"):
        components.make_metrics(config.metrics, Head("softmax", 3))


@pytest.mark.parametrize(
    "head", [Head("softmax", 3), Head("sigmoid", 1)], ids=["softmax", "sigmoid"]
)
def test_the_trainer_feeds_ece_logits_and_says_so(head):
    # Both heads emit logits (a sigmoid head's z reaches the metrics as [0, z]): an ECE
    # built with from_logits=False would read them as probabilities, silently wrong.
    config = load_config(None, ["metrics=[accuracy, ece]"])
    model = build_model(config.model, input_dim=2, head=head, seed=0)
    trainer = Trainer(
        model,
        components.make_loss(config.loss),
        components.make_optimizer(config.optimizer),
        head=head,
        metric_names=config.metrics,
    )
    for metric_set in (trainer.train_metrics, trainer.eval_metrics):
        (ece,) = [m for m in metric_set if m.name == "ece"]
        assert isinstance(ece, metrics.ExpectedCalibrationError)
        assert ece.get_config()["from_logits"] is True
