"""Tests for kerasmlp.config: loading, overrides, and every refusal's message."""

import dataclasses
import typing

import pytest
import yaml

from kerasmlp import config as config_module
from kerasmlp.config import Config, ConfigError, config_from_dict, load_config, parse_yaml
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


@pytest.mark.parametrize(
    "text,expected",
    [
        # Each as YAML 1.2's core schema and Python read it, not YAML 1.1 (in brackets).
        ("064", 64),  # (octal 52)
        ("0123", 123),  # (83)
        ("1_000", 1000),
        ("0x1f", 31),
        ("0o17", 15),
        ("-12", -12),
        ("1:30", "1:30"),  # (base 60: 90)
        ("yes", "yes"),  # (true)
        ("off", "off"),  # (false)
        ("True", True),
        ("FALSE", False),
        ("2024-01-31", "2024-01-31"),  # (a date)
        ("-.5", -0.5),
        ("1.0e+30", 1e30),
        ("~", None),
    ],
)
def test_plain_scalars_read_as_yaml_1_2_core(text, expected):
    value = config_module.parse_yaml(text, source="t")
    assert value == expected and type(value) is type(expected)


def test_integers_with_leading_zeros_are_decimal():
    config = load_config(None, ["model.hidden_units=[064, 032]", "seed=0123"])
    assert config.model.hidden_units == (64, 32) and config.seed == 123
    with pytest.raises(ConfigError, match="train.epochs must be an integer. Received: .*'1:30'"):
        load_config(None, ["train.epochs=1:30"])


def test_int_is_accepted_for_float_but_not_bool_for_int():
    assert load_config(None, ["model.weight_decay=0"]).model.weight_decay == 0.0
    with pytest.raises(ConfigError, match="train.epochs must be an integer"):
        load_config(None, ["train.epochs=true"])


def test_round_trip_through_yaml(tmp_path):
    config = load_config(None, ["model.hidden_units=[8]", "metrics=[accuracy, macro_f1]"])
    path = tmp_path / "resolved.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


@pytest.mark.parametrize("text", ["1e3", "true", "yes", "0123", "1:30", "null", "2024-01-31"])
def test_strings_that_look_like_other_values_round_trip(tmp_path, text):
    # A run's config.yaml is read back by `-c` and `--resume`: strings stay strings.
    config = load_config(None, ["data.name=csv", "data.path=x.csv", f"data.label='{text}'"])
    assert config.data.label == text
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
    # A mapping is one name too, as YAML writes it: whatever its keys, every config
    # has the same names (TensorBoard's HParams columns of a sweep's points).
    weighed = load_config(None, ["train.class_weight={spiral_a: 2, spiral_b: 0.5}"]).flatten()
    assert weighed["train.class_weight"] == "{spiral_a: 2.0, spiral_b: 0.5}"
    assert list(weighed) == list(flat)
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
    # A section's key at the top level (`--set epochs=3`, `epochs:` not indented under
    # `train:`): its section named; "name" is in three sections, so none is.
    ("epochs=3", "Unknown key 'epochs'. Did you mean 'train.epochs'? Allowed in the top level"),
    ("initial_learning_rate=0.1", "Did you mean 'optimizer.learning_rate.initial_learning_rate'?"),
    ("name=mnist", "Unknown key 'name'. Allowed in the top level: seed, data, model, loss,"),
    ("model.activation=rleu", "Unknown activation 'rleu' (model.activation). Did you mean 'relu'?"),
    ("optimizer.name=adma", "Unknown optimizer 'adma' (optimizer.name). Did you mean 'adam'?"),
    # Keras's class names differ from the config's by case and '_' only: matched so first,
    # where difflib (case-sensitive) offered 'adam' for 'AdamW' and nothing for 'LeakyReLU'.
    ("optimizer.name=AdamW", "Unknown optimizer 'AdamW' (optimizer.name). Did you mean 'adamw'?"),
    ("model.activation=LeakyReLU", "(model.activation). Did you mean 'leaky_relu'?"),
    ("loss.name=sparse_crossentropy", "Unknown loss 'sparse_crossentropy' (loss.name)."),
    ("metrics=[acuracy]", "Unknown metric 'acuracy' (metrics[0]). Did you mean 'accuracy'?"),
    # Keras's aliases (keras.losses.get("mse"), compile's metrics=["acc"]): difflib offered
    # 'auc' for 'acc', and nothing for 'mse'.
    ("loss.name=mse", "(loss.name). Did you mean 'mean_squared_error', as kerasmlp spells Keras's"),
    ("metrics=[acc]", "Unknown metric 'acc' (metrics[0]). Did you mean 'accuracy', as kerasmlp"),
    ("metrics=[mean_absolute_error]", "(metrics[0]). Did you mean 'mae', as kerasmlp spells"),
    ("train.batch_size=0", "train.batch_size must be >= 1. Received: train.batch_size=0"),
    ("optimizer.learning_rate.decay_steps=0", "decay_steps must be > 0. Received:"),
    ("optimizer.learning_rate.decay_rate=1.5", "decay_rate must be in (0.0, 1.0]. Received:"),
    ("optimizer.learning_rate.decay_rate=0", "decay_rate must be in (0.0, 1.0]."),
    ("optimizer.learning_rate.initial_learning_rate=-1", "initial_learning_rate must be > 0.0"),
    ("model.dropout=1", "model.dropout must be in [0.0, 1.0). Received: model.dropout=1.0"),
    ("model.random_translation=0.5", "model.random_translation must be in [0.0, 0.5)."),
    (
        "model.random_translation=0.1",
        "model.random_translation shifts images; data.name 'spirals' gives rows of numbers",
    ),
    (
        "model.random_translation=0.1 --also data.name=csv --also data.path=a.csv "
        "--also data.label=y",
        "data.name 'csv' gives rows of numbers, not images",
    ),
    ("model.random_translation=0.1 --also data.name=mnist", None),
    # The generated sets and the image sets have test splits of their own.
    (
        "data.test_fraction=0.5",
        "data.test_fraction applies to tables and your own files; 'spirals'",
    ),
    ("data.test_fraction=0.3 --also data.name=mnist", "'mnist' (data.name) has a test split"),
    ("data.test_fraction=0.3 --also data.name=iris", None),
    ("model.hidden_units=[64, 0]", "model.hidden_units[1] must be >= 1."),
    ("model.hidden_units=64", "model.hidden_units must be a list. Received: model.hidden_units=64"),
    ("train.epochs=2.5", "train.epochs must be an integer. Received: train.epochs=2.5"),
    ("loss.from_logits=false", "loss.from_logits must be true: the model's head emits logits"),
    ("loss.name=mean_squared_error", "is a regression loss; the dataset 'spirals'"),
    ("data.name=sine", "does not fit the regression dataset 'sine' (data.name)"),
    ("metrics=[mse]", "metrics[0] 'mse' does not fit a classification task"),
    ("metrics=[accuracy, accuracy]", "metrics lists a name twice"),
    ("train.validation_fraction=1", "train.validation_fraction must be in [0.0, 1.0)"),
    ("model=3", "model must be a mapping of keys. Allowed in model: hidden_units, activation,"),
    # A section given a value, as Keras's `compile(optimizer="adam")` takes it: the section's
    # keys, and its first key when that takes the value.
    ("optimizer=adam", "optimizer must be a mapping of keys. Did you mean optimizer.name: 'adam'?"),
    (
        "optimizer.learning_rate=1e-3",
        "Did you mean optimizer.learning_rate.initial_learning_rate: 0.001? Allowed in "
        "optimizer.learning_rate: initial_learning_rate, decay_steps, decay_rate, staircase. "
        "Received: optimizer.learning_rate=0.001",
    ),
    ("loss=mse", "loss must be a mapping of keys. Allowed in loss: name, from_logits,"),
    ("seed=-1", "seed must be >= 0. Received: seed=-1"),
    ("model.weight_decay=.nan", "model.weight_decay must be a finite number"),
    # Numbers go into float32 tensors: beyond its range they would be inf (a traceback),
    # below its smallest normal number a rate of 0 (a run that trains nothing).
    ("optimizer.learning_rate.initial_learning_rate=1e300", "must be 0 or within float32's"),
    ("optimizer.learning_rate.initial_learning_rate=1e-320", "Received: optimizer.learning_"),
    ("model.weight_decay=1e39", "model.weight_decay must be 0 or within float32's range, 1.2e-38"),
    ("train.class_weight={a: 1e39}", "train.class_weight.a must be 0 or within float32's"),
    ("model.weight_decay=3.4e38", None),
    ("data.name=''", "data.name must be a non-empty string"),
    # The generated sets' TFDS builder: the config took its sine for classification, and
    # the run with the default loss ended in a traceback from the compiled step.
    (
        "data.name=kerasmlp_playground/sine",
        "data.name 'kerasmlp_playground/sine' is the TFDS builder of the generated sets; "
        "name the set itself. Did you mean 'sine'?",
    ),
    ("data.name=kerasmlp_playground", "is the TFDS builder of the generated sets"),
    # A CSV header `1`: YAML reads the name as a number, and "must be a string" did not say why.
    (
        "data.name=csv --also data.path=x.csv --also data.label=1",
        "data.label is a column name; YAML read 1 as a number: quote it as the header writes "
        'it, e.g. "1". Received: data.label=1',
    ),
    ("data.categorical=[a, true]", "data.categorical[1] is a column name; YAML read true as a"),
    ("train", "--set expects dotted.key=value"),
    ("model.activation.x=1", "model.activation must be a non-empty string. Received:"),
    ("model.hidden_units=[1,", "--set model.hidden_units: not valid YAML"),
    # Integer keys have upper bounds: each is a cap against a typo, far above any real run.
    ("train.epochs=10**20", "train.epochs must be an integer"),
    (f"train.epochs={10**20}", f"train.epochs must be <= 100000. Received: train.epochs={10**20}"),
    (f"train.batch_size={10**20}", "train.batch_size must be <= 1000000."),
    ("seed=4294967296", "seed must be < 4294967296. Received: seed=4294967296"),
    ("train.log_every_steps=1000000001", "train.log_every_steps must be <= 1000000000."),
    ("train.eval_every_epochs=100001", "train.eval_every_epochs must be <= 100000."),
    ("train.histogram_every_epochs=100001", "train.histogram_every_epochs must be <= 100000."),
    ("train.image_every_epochs=100001", "train.image_every_epochs must be <= 100000."),
    ("train.profile_steps=1000000001", "train.profile_steps must be <= 1000000000."),
    ("data.shuffle_buffer=100000001", "data.shuffle_buffer must be <= 100000000."),
    ("optimizer.learning_rate.decay_steps=1000000001", "decay_steps must be <= 1000000000."),
    ("model.hidden_units=[8, 1000001]", "model.hidden_units[1] must be <= 1000000."),
    (f"model.hidden_units=[{', '.join(['1'] * 1001)}]", "must list at most 1000 values"),
    # The optimizer's own keys (kerasmlp.catalog.OPTIMIZERS says which takes which), in
    # Keras's ranges, and each only for an optimizer that takes it.
    (
        "optimizer.momentum=0.9",
        "optimizer.momentum applies to rmsprop and sgd; optimizer.name is adam: remove it "
        "from the config, or set it back to its default (optimizer.momentum=0.0). "
        "Received: optimizer.momentum=0.9",
    ),
    (
        "optimizer.name=rmsprop --also optimizer.nesterov=true",
        "optimizer.nesterov applies to sgd; optimizer.name is rmsprop: remove it",
    ),
    (
        "optimizer.name=sgd --also optimizer.beta_2=0.99",
        "optimizer.beta_2 applies to adam and adamw; optimizer.name is sgd:",
    ),
    (
        "optimizer.name=sgd --also optimizer.epsilon=1e-3",
        "optimizer.epsilon applies to adam, adamw and rmsprop; optimizer.name is sgd:",
    ),
    # Every key its optimizer does not take, in one line: an sgd config with momentum and
    # nesterov, run with --set optimizer.name=adam, was refused for momentum, and once that
    # was set back, for nesterov.
    (
        "optimizer.name=sgd --also optimizer.momentum=0.9 --also optimizer.nesterov=true "
        "--also optimizer.name=adam",
        "optimizer.momentum applies to rmsprop and sgd, optimizer.nesterov to sgd; "
        "optimizer.name is adam: remove them from the config, or set them back to their "
        "defaults (optimizer.momentum=0.0, optimizer.nesterov=false). "
        "Received: optimizer.momentum=0.9, optimizer.nesterov=true",
    ),
    # Keras's own refusal (BaseOptimizer.__init__), with the key paths.
    (
        "optimizer.clipnorm=1 --also optimizer.global_clipnorm=2",
        "Only one of optimizer.clipnorm, optimizer.global_clipnorm and optimizer.clipvalue "
        "can be set. Received: optimizer.clipnorm=1.0, optimizer.global_clipnorm=2.0, "
        "optimizer.clipvalue=null",
    ),
    # Keras's `_clip_gradients` skips a clip of 0 or less without a word.
    ("optimizer.clipvalue=0", "optimizer.clipvalue must be > 0.0. Received: optimizer.clipvalue"),
    ("optimizer.global_clipnorm=-1", "optimizer.global_clipnorm must be > 0.0."),
    ("optimizer.weight_decay=-0.1", "optimizer.weight_decay must be >= 0.0."),
    # Keras's SGD: "`momentum` must be a float between [0, 1]".
    ("optimizer.name=sgd --also optimizer.momentum=1.5", "momentum must be in [0.0, 1.0]."),
    ("optimizer.name=rmsprop --also optimizer.momentum=-0.1", "momentum must be in [0.0, 1.0]."),
    ("optimizer.name=sgd --also optimizer.momentum=1", None),
    # Adam divides by 1 - beta ** t; epsilon 0 makes 0 / 0 of a weight whose gradient is 0.
    ("optimizer.beta_1=1", "optimizer.beta_1 must be in [0.0, 1.0). Received: optimizer.beta_1"),
    (
        "optimizer.beta_2=0.99999999",
        "optimizer.beta_2 must be < 1 in float32 (at most 0.9999999403953552); float32 rounds "
        "it to 1.0. Received: optimizer.beta_2=0.99999999",
    ),
    ("optimizer.beta_2=0.9999999", None),  # 0.99999988 in float32
    ("optimizer.epsilon=0", "optimizer.epsilon must be > 0.0. Received: optimizer.epsilon=0.0"),
    (
        "optimizer.name=sgd --also optimizer.nesterov=true",
        "optimizer.nesterov needs optimizer.momentum > 0: Keras's SGD ignores it without momentum",
    ),
    ("optimizer.momentm=0.9", "Unknown key 'optimizer.momentm'. Did you mean 'momentum'?"),
    ("optimizer.clip_norm=1", "Unknown key 'optimizer.clip_norm'. Did you mean 'clipnorm'?"),
    # Cross-key rules checked at load for datasets whose class count is known here.
    ("metrics=[top5_accuracy]", "top5_accuracy is always 1 with 2 classes (data.name='spirals')"),
    ("data.name=xor:1.0.0 --also metrics=[top5_accuracy]", "with 2 classes"),
    ("data.name=mnist --also loss.name=binary_crossentropy", "has 10 (data.name='mnist')"),
    ("data.name=cifar10 --also metrics=[top5_accuracy]", None),  # 10 classes: fine
    ("data.name=cifar100 --also metrics=[top5_accuracy]", None),
    ("data.name=my_set --also metrics=[top5_accuracy]", None),  # unknown: checked later
    # Long values stay on one line, cut.
    ("model.hidden_units=[" + ", ".join(["x" * 20] * 40) + "]", "model.hidden_units[0] must be"),
    ("model.dropout=[" + ", ".join(["0.5"] * 200) + "]", "Received: model.dropout=[0.5, 0.5,"),
    ("model.activation=" + "r" * 500, "Unknown activation 'rrrrrr"),
    ("seed=" + "1" * 5000, "--set seed: not valid YAML: Exceeds the limit"),
    ("seed=" + "[" * 5000, "--set seed: not valid YAML: nested deeper than 32 levels"),
    ("seed={a: 1, a: 2}", "--set seed: not valid YAML: duplicate key 'a' (first on line 1)"),
    ("data.name=" + "s" * 500 + " --also loss.name=mean_squared_error", "the dataset 'sssss"),
    ("model." + "k" * 500 + "=1", "Unknown key 'model.kkkk"),
    ("seed=1 --also seed." + "k" * 500 + "=1", "'seed' is a value, not a section"),
]


@pytest.mark.parametrize("override,message", BAD, ids=[b[0][:40] for b in BAD])
def test_bad_settings_are_refused_with_the_key_value_and_allowed(override, message):
    overrides = override.split(" --also ")
    if message is None:
        load_config(None, overrides)
        return
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 400  # long values are cut, not echoed whole


def test_every_integer_key_has_an_upper_bound():
    def walk(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            hint = hints[field.name]
            if dataclasses.is_dataclass(hint):
                yield from walk(hint, f"{prefix}{field.name}.")
            elif hint in (int, tuple[int, ...]):
                yield prefix + field.name, field.metadata.get("range")

    keys = dict(walk(Config))
    assert "train.epochs" in keys and "model.hidden_units" in keys
    for key, bounds in keys.items():
        assert bounds is not None, key
        _, _, lt, le = bounds
        assert lt is not None or le is not None, f"{key} has no upper bound"


def test_bounds_are_inclusive_where_documented():
    config = load_config(
        None, ["seed=4294967295", "train.epochs=100000", "model.hidden_units=[1000000]"]
    )
    assert config.seed == 2**32 - 1 and config.train.epochs == 100_000


def test_set_below_a_value_is_refused():
    with pytest.raises(ConfigError, match="--set seed.x: 'seed' is a value, not a section"):
        load_config(None, ["seed=1", "seed.x=2"])


def test_a_mapping_set_on_a_section_keeps_its_other_keys():
    # As a section in a file keeps the defaults it does not name.
    mnist = load_config(CONFIGS / "mnist.yaml")
    config = load_config(CONFIGS / "mnist.yaml", ["optimizer={name: sgd}", "train={epochs: 1}"])
    assert config.optimizer == dataclasses.replace(mnist.optimizer, name="sgd")
    assert config.train == dataclasses.replace(mnist.train, epochs=1)
    nested = load_config(CONFIGS / "mnist.yaml", ["optimizer={learning_rate: {decay_rate: 0.5}}"])
    assert nested.optimizer.learning_rate == dataclasses.replace(
        mnist.optimizer.learning_rate, decay_rate=0.5
    )


def test_a_mapping_set_on_a_value_replaces_it():
    # train.class_weight is one value, a mapping of classes: a new one replaces it.
    config = load_config(None, ["train.class_weight={a: 2, b: 1}", "train={class_weight: {c: 3}}"])
    assert config.train.class_weight == {"c": 3.0}


def test_an_empty_section_means_its_defaults(tmp_path):
    path = tmp_path / "empty-section.yaml"
    path.write_text("train:\n  # epochs: 3\nmodel:\n")
    assert load_config(path) == Config()
    assert load_config(path, ["train.epochs=2"]).train.epochs == 2
    assert load_config(CONFIGS / "mnist.yaml", ["train="]) == load_config(CONFIGS / "mnist.yaml")


@pytest.mark.parametrize("text", ["seed: &a [*a]\n", "model: &m {hidden_units: *m}\n"])
def test_an_alias_inside_its_own_node_is_refused(tmp_path, text):
    path = tmp_path / "cycle.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="an alias .* refers to a list or mapping that holds it"):
        load_config(path)
    with pytest.raises(ConfigError, match="^--set model.hidden_units: an alias"):
        load_config(None, ["model.hidden_units=&a [1, *a]"])


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="Config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(path)


@pytest.mark.parametrize(
    "text,message",
    [
        # Written as --set and a sweep file write keys; the one line said only "Unknown
        # key 'model.activation'. Allowed in the top level: seed, data, ...".
        (
            "model.activation: tanh\n",
            "Unknown key 'model.activation': a config file nests its sections, write "
            "{model: {activation: tanh}} (dotted keys are for --set and --sweep files). "
            "Received: model.activation='tanh'",
        ),
        (
            "train:\n  early_stopping.patience: 3\n",
            "Unknown key 'train.early_stopping.patience': a config file nests its sections, "
            "write {early_stopping: {patience: 3}}",
        ),
        # A dot after a value's name is no section: the usual "did you mean".
        ("model:\n  hidden_units.0: 3\n", "Unknown key 'model.hidden_units.0'. Did you mean"),
    ],
    ids=["top", "in-section", "not-a-section"],
)
def test_a_dotted_key_in_a_file_is_shown_nested(tmp_path, text, message):
    path = tmp_path / "dotted.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(message)


# Each bad file, and the exact start of its one-line message after the file's path.
BAD_FILES = [
    (
        "flow",
        b"seed: 1\nmodel: [1, 2\n",
        " line 3: not valid YAML: while parsing a flow sequence (line 2)",
    ),
    ("indent", b"model:\n  dropout: 0.1\n dropout: 2\n", " line 3: not valid YAML:"),
    (
        "duplicate",
        b"model:\n  dropout: 0.1\nseed: 1\nmodel:\n  dropout: 0.2\n",
        " line 4: not valid YAML: duplicate key 'model' (first on line 1)",
    ),
    (
        "nested-duplicate",
        b"model:\n  dropout: 0.1\n  dropout: 0.2\n",
        " line 3: not valid YAML: duplicate key 'dropout' (first on line 2)",
    ),
    (
        "deep",
        b"seed: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        " line 1: not valid YAML: nested deeper than 32 levels",
    ),
    (
        "deep-block",
        b"".join(b"  " * i + b"k:\n" for i in range(200)),
        " line 32: not valid YAML: nested deeper than 32 levels",
    ),
    (
        "latin-1",
        "seed: 1\n# caf\u00e9\n".encode("latin-1"),
        " is not UTF-8 text: byte 0xe9 on line 2",
    ),
    ("binary", bytes(range(256)), " is a binary file, not YAML text"),
    ("huge", b"# " + b"x" * (1 << 20) + b"\n", " is larger than 1048576 bytes"),
    ("bad-int", b"seed: !!int abc\n", ": not valid YAML: invalid literal for int()"),
]


@pytest.mark.parametrize(
    "content,message", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_bad_files_are_refused_naming_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "\n" not in text and "<unicode string>" not in text
    assert f"{path}{message}" in text


def test_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {dropout: 0.1, activation: tanh}\n")
    assert config_module.read_yaml_file(path, what="Config") == {
        "base": {"dropout": 0.1, "activation": "tanh"}
    }
    path.write_text("model:\n  <<: {dropout: 0.1, activation: tanh}\n  dropout: 0.2\n")
    assert (
        load_config(path).model
        == load_config(None, ["model.dropout=0.2", "model.activation=tanh"]).model
    )


def test_a_utf8_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffseed: 3\n".encode())
    assert load_config(path).seed == 3


def test_a_model_too_large_for_memory_is_refused_with_the_figures(monkeypatch):
    monkeypatch.setattr(config_module, "physical_memory_bytes", lambda: 64 * 2**30)
    with pytest.raises(ConfigError) as info:
        load_config(None, ["model.hidden_units=[200000, 200000]"])
    # By hand: (2+1)*200000 + (200000+1)*200000 + (200000+1)*2 parameters, 16 bytes each
    # (weights, gradients and Adam's two slots, float32).
    params = 3 * 200_000 + 200_001 * 200_000 + 200_001 * 2
    assert str(info.value) == (
        f"model.hidden_units=[200000, 200000] cannot fit in memory: {params:,} parameters "
        f"x 4 bytes x 4 copies (weights, gradients and adam's 2 slots) = "
        f"{params * 16 / 2**30:,.1f} GiB at least; this machine has 64.0 GiB"
    )
    # SGD keeps no slot: a quarter less... half as much.
    with pytest.raises(ConfigError, match=r"x 2 copies \(weights, gradients and sgd's 0 slots\)"):
        load_config(None, ["model.hidden_units=[200000, 200000]", "optimizer.name=sgd"])
    # Unknown memory: the check is skipped.
    monkeypatch.setattr(config_module, "physical_memory_bytes", lambda: None)
    load_config(None, ["model.hidden_units=[200000, 200000]"])


def test_momentum_adds_the_slots_keras_builds_to_the_memory_estimate(monkeypatch):
    # Keras's SGD builds `momentums` once momentum != 0; RMSprop its `_momentums` beside its
    # velocities once momentum > 0 (tests/test_components.py counts them on the built classes).
    monkeypatch.setattr(config_module, "physical_memory_bytes", lambda: 64 * 2**30)
    wide = "model.hidden_units=[200000, 200000]"
    for optimizer, copies, slots in [("sgd", 3, 1), ("rmsprop", 4, 2)]:
        chosen = [f"optimizer.name={optimizer}", "optimizer.momentum=0.9"]
        noun = "slot" if slots == 1 else "slots"
        expected = rf"x {copies} copies \(weights, gradients and {optimizer}'s {slots} {noun}\) = "
        with pytest.raises(ConfigError, match=expected):
            load_config(None, [wide, *chosen])
        config = load_config(None, ["model.hidden_units=[8]", *chosen])
        assert config_module.optimizer_slots(config.optimizer) == slots
        params, size = config_module.estimate_model_bytes(config)
        assert size == params * 4 * (2 + slots)


@pytest.mark.parametrize("name, keras_default", [("adam", None), ("adamw", 0.004), ("sgd", None)])
def test_weight_decay_null_is_the_optimizers_keras_default(name, keras_default):
    from kerasmlp.components import make_optimizer

    # Reference: Keras 3.15's constructors, AdamW(weight_decay=0.004), the others None.
    config = load_config(None, [f"optimizer.name={name}"])
    assert config.optimizer.weight_decay is None
    assert make_optimizer(config.optimizer).weight_decay == keras_default
    # Set, it is Keras's argument; 0 is no decay, for adamw too (where Keras refuses None).
    decayed = load_config(None, [f"optimizer.name={name}", "optimizer.weight_decay=0.01"])
    assert make_optimizer(decayed.optimizer).weight_decay == pytest.approx(0.01)
    none = load_config(None, [f"optimizer.name={name}", "optimizer.weight_decay=0"])
    assert make_optimizer(none.optimizer).weight_decay == (0.0 if name == "adamw" else None)
    # HParams: text, whatever a sweep's points set.
    assert (
        config.flatten()["optimizer.weight_decay"],
        decayed.flatten()["optimizer.weight_decay"],
    ) == (
        "null",
        "0.01",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ["optimizer.name=adamw", "optimizer.beta_1=0.8", "optimizer.global_clipnorm=1.5"],
        ["optimizer.name=sgd", "optimizer.momentum=0.9", "optimizer.nesterov=true"],
        ["optimizer.name=rmsprop", "optimizer.momentum=0.5", "optimizer.clipvalue=0.1"],
    ],
    ids=["adamw", "sgd", "rmsprop"],
)
def test_a_runs_config_yaml_with_every_optimizer_key_reads_back(overrides):
    # config.yaml holds every key, those the optimizer does not take at Keras's defaults
    # (sgd's beta_1: 0.9): they are not taken as given, and the file loads as written.
    config = load_config(None, overrides)
    text = config.to_yaml()
    assert "beta_1:" in text and "momentum:" in text and "clipnorm: null" in text
    assert config_from_dict(parse_yaml(text, source="t")) == config
    flat = config.flatten()
    # HParams: the clipping keys are text, null or the number, whatever a sweep's point sets.
    clipping = {flat[f"optimizer.{k}"] for k in ("clipnorm", "global_clipnorm", "clipvalue")}
    assert clipping <= {"null", "1.5", "0.1"} and len(clipping) <= 2
    assert isinstance(flat["optimizer.momentum"], float)


def test_model_size_estimate_uses_the_known_input_and_classes():
    # mnist: 784 inputs, 10 classes; by hand (784+1)*8 + (8+1)*10.
    config = load_config(None, ["data.name=mnist", "model.hidden_units=[8]"])
    assert config_module.estimate_model_bytes(config) == (785 * 8 + 9 * 10, (785 * 8 + 90) * 16)
    # an unknown set: input length and classes taken as 1, a lower bound.
    config = load_config(None, ["data.name=my_set", "model.hidden_units=[8]"])
    assert config_module.estimate_model_bytes(config)[0] == 2 * 8 + 9 * 1


def test_physical_memory_is_known_here():
    memory = config_module.physical_memory_bytes()
    assert memory is None or memory > 2**28


def test_empty_file_means_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert load_config(path) == Config()


def test_a_saved_config_names_its_file_in_a_refusal(tmp_path):
    # A run's config.yaml edited by hand (or by another version): load_run, kerasmlp-predict,
    # kerasmlp-export and --resume read it with no -c given, so the message names the file.
    path = tmp_path / "config.yaml"
    path.write_text(Config().to_yaml() + "foo: 1\n")
    with pytest.raises(ConfigError, match=rf"^{path}: Unknown key 'foo'\. Allowed"):
        config_module.load_saved_config(path)
    # The YAML's own errors name the file already, once.
    path.write_text("seed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=rf"^{path} line 2: not valid YAML: duplicate key"):
        config_module.load_saved_config(path)
    # --resume's --epochs is the user's, not the file's.
    path.write_text(Config().to_yaml())
    with pytest.raises(ConfigError, match=r"^train\.epochs must be >= 1\."):
        config_module.load_saved_config(path, ["train.epochs=0"])
    assert config_module.load_saved_config(path, ["train.epochs=3"]).train.epochs == 3


def test_the_float32_limits_are_numpys():
    # Written out so that config.py needs no numpy; the reference is numpy.finfo.
    np = pytest.importorskip("numpy")
    assert config_module.FLOAT32_MAX == float(np.finfo("float32").max)
    assert config_module.FLOAT32_TINY == float(np.finfo("float32").tiny)


@pytest.mark.parametrize(
    "staircase, first",
    # By hand: 0.01 x 0.5 ** (s / 10) < 1.1754944e-38 (float32's smallest normal) once
    # s / 10 > log2(0.01 / 1.1754944e-38) = 119.356, so from step 1194; floored, from
    # s / 10 = 120. Keras's ExponentialDecay (float32) gives 1.22e-38 at step 1193 and 0.0
    # at 1194, and 1.50e-38 at 1199 and 0.0 at 1200.
    [(False, 1194), (True, 1200)],
    ids=["smooth", "staircase"],
)
def test_a_rate_that_decays_to_0_in_float32_before_the_end_is_refused(staircase, first):
    config = load_config(
        None,
        [f"optimizer.learning_rate={{decay_steps: 10, staircase: {str(staircase).lower()}}}"],
    )
    config_module.check_learning_rate_lasts(config, first)  # the last step, first - 1, is fine
    with pytest.raises(ConfigError, match=rf"decays to 0 in float32 at step {first:,} of the"):
        config_module.check_learning_rate_lasts(config, first + 1)
    # decay_rate 1 keeps the rate.
    constant = load_config(None, ["optimizer.learning_rate.decay_rate=1"])
    config_module.check_learning_rate_lasts(constant, 10**9)


def test_rollbacks_that_would_scale_the_rate_to_0_in_float32_are_refused():
    # By hand: 0.01 x 0.1 ** 36 = 1e-38 < 1.1754944e-38 (float32's smallest normal);
    # 0.01 x 0.1 ** 35 = 1e-37 is above it.
    rollback = ["train.on_divergence=rollback", "train.rollback_factor=0.1"]
    load_config(None, [*rollback, "train.max_rollbacks=35"])
    with pytest.raises(ConfigError, match=r"^train.max_rollbacks=36 rollbacks at train.rollback"):
        load_config(None, [*rollback, "train.max_rollbacks=36"])
    load_config(None, ["train.rollback_factor=0.1", "train.max_rollbacks=36"])  # policy stop


def test_with_absolute_paths_resolves_from_the_working_directory(tmp_path, monkeypatch):
    # By hand: the working directory joined to each relative path; `~` expanded where the
    # data layer expands it (data_dir, manual_dir), an absolute path and null kept.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "/home/u")
    config = load_config(
        None,
        ["data.name=csv", "data.path=d/train.csv", "data.label=y", "data.data_dir=~/tfds"],
    )
    data = config_module.with_absolute_paths(config).data
    assert (data.path, data.test_path) == (str(tmp_path / "d" / "train.csv"), None)
    assert (data.data_dir, data.manual_dir) == ("/home/u/tfds", None)
    assert config_module.with_absolute_paths(config_module.with_absolute_paths(config)) == (
        config_module.with_absolute_paths(config)
    )
