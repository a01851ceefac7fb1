"""Tests for kerasmlp.config: loading, overrides, and every refusal's message."""

import dataclasses

import pytest
import yaml

from kerasmlp.config import Config, ConfigError, config_from_dict, load_config
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"


def test_default_yaml_equals_builtin_defaults():
    # configs/default.yaml documents the built-in defaults: they must not drift apart.
    assert load_config(CONFIGS / "default.yaml") == Config()
    assert load_config(None) == Config()


def test_default_yaml_lists_every_key():
    raw = yaml.safe_load((CONFIGS / "default.yaml").read_text())
    assert raw == Config().to_dict()


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_shipped_configs_load_and_differ_from_default(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.data.name == name
    assert config != Config()


def test_overrides_are_parsed_as_yaml():
    config = load_config(
        CONFIGS / "default.yaml",
        [
            "optimizer.learning_rate.initial_learning_rate=3e-4",
            "model.hidden_units=[512,256]",
            "optimizer.learning_rate.staircase=true",
            "data.data_dir=/tmp/x",
        ],
    )
    assert config.optimizer.learning_rate.initial_learning_rate == 3e-4
    assert config.model.hidden_units == (512, 256)
    assert config.optimizer.learning_rate.staircase is True
    assert config.data.data_dir == "/tmp/x"


def test_plain_exponent_floats_are_floats(tmp_path):
    # YAML 1.1 reads `1e-3` as a string; kerasmlp reads it as the number users mean.
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  learning_rate:\n    initial_learning_rate: 1e-3\n")
    assert load_config(path).optimizer.learning_rate.initial_learning_rate == 1e-3


def test_int_is_accepted_for_float_but_not_bool_for_int():
    assert load_config(None, ["model.weight_decay=0"]).model.weight_decay == 0.0
    with pytest.raises(ConfigError, match="train.epochs must be an integer"):
        load_config(None, ["train.epochs=true"])


def test_round_trip_through_yaml(tmp_path):
    config = load_config(None, ["model.hidden_units=[8]", "metrics=[accuracy, macro_f1]"])
    path = tmp_path / "resolved.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().seed = 3


def test_flatten_names_every_leaf_by_its_path():
    flat = Config().flatten()
    assert flat["optimizer.learning_rate.decay_rate"] == 0.5
    assert flat["model.hidden_units"] == "32,32,32"
    # Expected keys: every leaf of configs/default.yaml, walked here independently.
    raw = yaml.safe_load((CONFIGS / "default.yaml").read_text())

    def leaves(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield prefix + key

    assert sorted(flat) == sorted(leaves(raw))


def test_task_follows_the_dataset():
    assert Config().task == "classification"
    regression = config_from_dict(
        {"data": {"name": "sine"}, "loss": {"name": "mean_squared_error"}, "metrics": ["mse"]}
    )
    assert regression.task == "regression"


# Each bad setting, and the exact words its one-line message must contain.
BAD = [
    ("model.activaton=relu", "Unknown key 'model.activaton'. Did you mean 'activation'?"),
    ("model.activation=rleu", "Unknown activation 'rleu' (model.activation). Did you mean 'relu'?"),
    ("optimizer.name=adma", "Unknown optimizer 'adma' (optimizer.name). Did you mean 'adam'?"),
    ("loss.name=sparse_crossentropy", "Unknown loss 'sparse_crossentropy' (loss.name)."),
    ("metrics=[acuracy]", "Unknown metric 'acuracy' (metrics[0]). Did you mean 'accuracy'?"),
    ("train.batch_size=0", "train.batch_size must be >= 1. Received: train.batch_size=0"),
    ("optimizer.learning_rate.decay_steps=0", "decay_steps must be > 0. Received:"),
    ("optimizer.learning_rate.decay_rate=1.5", "decay_rate must be in (0.0, 1.0]. Received:"),
    ("optimizer.learning_rate.decay_rate=0", "decay_rate must be in (0.0, 1.0]."),
    ("optimizer.learning_rate.initial_learning_rate=-1", "initial_learning_rate must be > 0.0"),
    ("model.dropout=1", "model.dropout must be in [0.0, 1.0). Received: model.dropout=1.0"),
    ("model.hidden_units=[64, 0]", "model.hidden_units[1] must be >= 1."),
    ("model.hidden_units=64", "model.hidden_units must be a list. Received: model.hidden_units=64"),
    ("train.epochs=2.5", "train.epochs must be an integer. Received: train.epochs=2.5"),
    ("loss.from_logits=false", "loss.from_logits must be true: the model's head emits logits"),
    ("loss.name=mean_squared_error", "is a regression loss; the dataset 'spirals'"),
    ("data.name=sine", "does not fit the regression dataset 'sine' (data.name)"),
    ("metrics=[mse]", "metrics[0] 'mse' does not fit a classification task"),
    ("metrics=[accuracy, accuracy]", "metrics lists a name twice"),
    ("train.validation_fraction=1", "train.validation_fraction must be in [0.0, 1.0)"),
    ("model=3", "model must be a mapping of keys. Received: model=3"),
    ("seed=-1", "seed must be >= 0. Received: seed=-1"),
    ("model.weight_decay=.nan", "model.weight_decay must be a finite number"),
    ("data.name=''", "data.name must be a non-empty string"),
    ("train", "--set expects dotted.key=value"),
    ("model.activation.x=1", "model.activation must be a non-empty string. Received:"),
    ("model.hidden_units=[1,", "--set model.hidden_units is not valid YAML"),
]


@pytest.mark.parametrize("override,message", BAD, ids=[b[0] for b in BAD])
def test_bad_settings_are_refused_with_the_key_value_and_allowed(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_set_below_a_value_is_refused():
    with pytest.raises(ConfigError, match="--set seed.x: 'seed' is a value, not a section"):
        load_config(None, ["seed=1", "seed.x=2"])


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="Config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(path)


def test_invalid_yaml_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config(path)


def test_empty_file_means_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert load_config(path) == Config()
