"""The config tree: typed, frozen dataclasses loaded from YAML and checked at load time.

`load_config(path, overrides)` is the only way the CLI hands settings to the
library. Every mistake a user can make in a YAML file or a `--set` option is
refused here with one line that names the key path, the value received and
what is allowed, so nothing downstream (and nothing traced) has to re-check it.

This module knows only Python and PyYAML: it must stay importable without
TensorFlow so that `kerasmlp-train --help` answers at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import struct
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from kerasmlp import catalog, sources

ACTIVATIONS = ("elu", "gelu", "leaky_relu", "relu", "sigmoid", "swish", "tanh")
KERNEL_INITIALIZERS = (
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
)
# Loss, metric and optimizer names: one home, `kerasmlp.catalog` (TensorFlow-free).
OPTIMIZERS = tuple(catalog.OPTIMIZERS)
CLASSIFICATION_LOSSES = catalog.names_for(catalog.LOSSES, catalog.CLASSIFICATION)
REGRESSION_LOSSES = catalog.names_for(catalog.LOSSES, catalog.REGRESSION)
LOSSES = CLASSIFICATION_LOSSES + REGRESSION_LOSSES
CLASSIFICATION_METRICS = catalog.names_for(catalog.METRICS, catalog.CLASSIFICATION)
REGRESSION_METRICS = catalog.names_for(catalog.METRICS, catalog.REGRESSION)
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
# The data sources' names, tasks and keys: one home, `kerasmlp.sources` (TensorFlow-free).
# The generated (offline) datasets and their task; any other name is a TFDS
# dataset, checked by the data layer when it is loaded.
PLAYGROUND_TASKS = dict(sources.GENERATED_TASKS)
# Your own data: `data.name: csv` (needs data.path and data.label) or `npz` (data.path).
TABLE_SOURCES = sources.FILE_NAMES
DATA_TASKS = ("auto", "classification", "regression")
TABLE_KEYS = tuple(sources.OWN_DATA_KEYS)

# Upper bounds of the integer keys. Each is far above any sensible run and far
# below what breaks: numpy and TensorFlow take 32-bit unsigned seeds, step
# counts go to tf.int32 tensors, and a number of epochs or a batch past these is
# a typo (an extra 0 or two), not a plan.
MAX_SEED = 2**32
MAX_EPOCHS = 100_000
MAX_STEPS = 1_000_000_000  # < 2**31 - 1, the largest tf.int32
MAX_BATCH = 1_000_000
MAX_SHUFFLE = 100_000_000  # the buffer holds examples, and is never larger than the train split
MAX_UNITS = 1_000_000  # per hidden layer; the whole model must also fit in memory
MAX_LAYERS = 1_000
# float32's largest number and smallest normal one (numpy.finfo("float32").max, .tiny):
# the config's numbers go into float32 tensors.
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38
MAX_CPU_DEVICES = 64  # logical CPU devices to split the host into; more only divides the same cores
# A config is 3 levels deep and a sweep 3; deeper YAML is a mistake (or an attack
# on the recursive YAML composer, which would end in a RecursionError).
MAX_YAML_DEPTH = 32
MAX_YAML_BYTES = 1 << 20  # a config or sweep file is a few hundred bytes
# (input length, classes) of TFDS image sets, so that a config is checked against
# them before TensorFlow loads (the data layer reads the real values from TFDS).
KNOWN_IMAGE_DATASETS = dict(sources.BY_KIND["tfds_image"].shapes)
# Per-weight state each optimizer keeps with Keras 3's defaults (no momentum for sgd and
# rmsprop); `optimizer_slots` gives it for a config.
OPTIMIZER_SLOTS = {name: entry.slots for name, entry in catalog.OPTIMIZERS.items()}


class ConfigError(ValueError):
    """A config the user wrote cannot be used. The message is one line for the user."""


class OptimizerOptionsError(ConfigError):
    """`optimizer.*` keys given to an optimizer that does not take them.

    Attributes:
      given: `{key: value}` of those keys (`{'momentum': 0.9}`), for a sweep's advice.
    """

    def __init__(self, message: str, given: Mapping[str, Any]):
        super().__init__(message)
        self.given = dict(given)


def _choice(*allowed: str) -> dict:
    return {"choices": allowed}


def _range(*, gt=None, ge=None, lt=None, le=None) -> dict:
    return {"range": (gt, ge, lt, le)}


def _number_or_null(**bounds) -> dict:
    """A number key that may be null (off, or Keras's default): `Config.flatten` writes it
    as text ('null', '1.0'), so that its HParams column has one type whatever a sweep's
    points set."""
    return {**_range(**bounds), "text": True}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from (see `kerasmlp.data.load_datasets`)."""

    name: str = "spirals"
    data_dir: str | None = None
    manual_dir: str | None = None
    cache: bool = True
    # Only for a training split read through tf.data: one held in memory (cache on, under
    # 1 GiB) is shuffled whole each epoch (`kerasmlp.batches.InMemoryBatches`).
    shuffle_buffer: int = dataclasses.field(default=10_000, metadata=_range(ge=1, le=MAX_SHUFFLE))
    # Your own table (name csv or npz; see `kerasmlp.tabular`).
    path: str | None = None
    test_path: str | None = None
    label: str | None = None
    task: str = dataclasses.field(default="auto", metadata=_choice(*DATA_TASKS))
    test_fraction: float = dataclasses.field(default=0.2, metadata=_range(gt=0.0, lt=1.0))
    # csv: integer columns whose values are categories (one-hot), not amounts.
    categorical: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The Dense stack (see `kerasmlp.model.build_model`)."""

    # The range applies to each width; the list holds at most MAX_LAYERS of them.
    hidden_units: tuple[int, ...] = dataclasses.field(
        default=(32, 32, 32), metadata=_range(ge=1, le=MAX_UNITS)
    )
    activation: str = dataclasses.field(default="relu", metadata=_choice(*ACTIVATIONS))
    dropout: float = dataclasses.field(default=0.0, metadata=_range(ge=0.0, lt=1.0))
    kernel_initializer: str = dataclasses.field(
        default="glorot_uniform", metadata=_choice(*KERNEL_INITIALIZERS)
    )
    weight_decay: float = dataclasses.field(default=0.0, metadata=_range(ge=0.0))
    # Images only: the largest shift of a training image, as a fraction of its height
    # and width (kerasmlp.layers.RandomShift: RandomTranslation, nearest pixel); 0 for none.
    random_translation: float = dataclasses.field(default=0.0, metadata=_range(ge=0.0, lt=0.5))


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The training loss, a `kerasmlp.losses` class by its snake_case name."""

    name: str = dataclasses.field(
        default="sparse_categorical_crossentropy", metadata=_choice(*LOSSES)
    )
    from_logits: bool = True
    label_smoothing: float = dataclasses.field(default=0.0, metadata=_range(ge=0.0, lt=1.0))


@dataclasses.dataclass(frozen=True)
class LearningRateConfig:
    """`keras.optimizers.schedules.ExponentialDecay` arguments.

    lr(step) = initial_learning_rate * decay_rate ** (step / decay_steps), with the
    exponent floored when `staircase` is true.
    """

    initial_learning_rate: float = dataclasses.field(default=1e-2, metadata=_range(gt=0.0))
    decay_steps: int = dataclasses.field(default=1000, metadata=_range(gt=0, le=MAX_STEPS))
    decay_rate: float = dataclasses.field(default=0.5, metadata=_range(gt=0.0, le=1.0))
    staircase: bool = False


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer, its learning-rate schedule and its own Keras 3 arguments.

    Each optimizer takes only the keys its `kerasmlp.catalog.OPTIMIZERS` record
    lists; the defaults are Keras's. `weight_decay` null is the optimizer's own
    Keras default (0.004 for adamw, none for the others).
    """

    name: str = dataclasses.field(default="adam", metadata=_choice(*OPTIMIZERS))
    learning_rate: LearningRateConfig = LearningRateConfig()
    # Keras's base optimizer: decoupled weight decay and gradient clipping (at most one).
    weight_decay: float | None = dataclasses.field(default=None, metadata=_number_or_null(ge=0.0))
    clipnorm: float | None = dataclasses.field(default=None, metadata=_number_or_null(gt=0.0))
    global_clipnorm: float | None = dataclasses.field(
        default=None, metadata=_number_or_null(gt=0.0)
    )
    clipvalue: float | None = dataclasses.field(default=None, metadata=_number_or_null(gt=0.0))
    # sgd and rmsprop; nesterov sgd only.
    momentum: float = dataclasses.field(default=0.0, metadata=_range(ge=0.0, le=1.0))
    nesterov: bool = False
    # adam and adamw; epsilon also rmsprop.
    beta_1: float = dataclasses.field(default=0.9, metadata=_range(ge=0.0, lt=1.0))
    beta_2: float = dataclasses.field(default=0.999, metadata=_range(ge=0.0, lt=1.0))
    epsilon: float = dataclasses.field(default=1e-7, metadata=_range(gt=0.0))


# The `optimizer.*` keys some optimizers take and others not (`kerasmlp.catalog`).
OPTIMIZER_OPTIONS = tuple(
    dict.fromkeys(key for entry in catalog.OPTIMIZERS.values() for key in entry.options)
)


DIVERGENCE_POLICIES = ("stop", "rollback")
# auto: mixed_bfloat16 where the hardware multiplies bfloat16 fast enough for the
# model's layers, else float32 (see `kerasmlp.precision.choose_precision`).
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
MONITOR_MODES = ("auto", "min", "max")


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig:
    """`keras.callbacks.EarlyStopping`'s arguments; off while `monitor` is null."""

    monitor: str | None = None
    mode: str = dataclasses.field(default="auto", metadata=_choice(*MONITOR_MODES))
    patience: int = dataclasses.field(default=5, metadata=_range(ge=0, le=MAX_EPOCHS))
    min_delta: float = dataclasses.field(default=0.0, metadata=_range(ge=0.0, le=1e9))
    restore_best: bool = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = dataclasses.field(default=40, metadata=_range(ge=1, le=MAX_EPOCHS))
    batch_size: int = dataclasses.field(default=64, metadata=_range(ge=1, le=MAX_BATCH))
    validation_fraction: float = dataclasses.field(default=0.1, metadata=_range(ge=0.0, lt=1.0))
    log_every_steps: int = dataclasses.field(default=100, metadata=_range(ge=1, le=MAX_STEPS))
    eval_every_epochs: int = dataclasses.field(default=1, metadata=_range(ge=1, le=MAX_EPOCHS))
    histogram_every_epochs: int = dataclasses.field(
        default=10, metadata=_range(ge=0, le=MAX_EPOCHS)
    )
    image_every_epochs: int = dataclasses.field(default=20, metadata=_range(ge=0, le=MAX_EPOCHS))
    profile_steps: int = dataclasses.field(default=0, metadata=_range(ge=0, le=MAX_STEPS))
    checkpoint_every_seconds: float = dataclasses.field(
        default=600.0, metadata=_range(ge=0.0, le=1e9)
    )
    keep_checkpoints: int = dataclasses.field(default=2, metadata=_range(ge=1, le=1000))
    on_divergence: str = dataclasses.field(default="stop", metadata=_choice(*DIVERGENCE_POLICIES))
    rollback_factor: float = dataclasses.field(default=0.5, metadata=_range(gt=0.0, lt=1.0))
    max_rollbacks: int = dataclasses.field(default=3, metadata=_range(ge=1, le=100))
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    save_best: str | None = None
    # 'none', 'balanced' or {class name: weight}; see `kerasmlp.class_weights`.
    class_weight: str | dict[str, float] | None = "none"
    # A Keras dtype policy per layer; see `kerasmlp.precision`.
    precision: str = dataclasses.field(default="auto", metadata=_choice(*PRECISIONS))


# auto: mirrored when more than one GPU is visible, else one device.
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class DistributeConfig:
    """How many devices and machines train together (see `kerasmlp.distribute`)."""

    strategy: str = dataclasses.field(default="auto", metadata=_choice(*STRATEGIES))
    cpu_devices: int = dataclasses.field(default=1, metadata=_range(ge=1, le=MAX_CPU_DEVICES))


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole run. Sections mirror `configs/default.yaml`."""

    seed: int = dataclasses.field(default=0, metadata=_range(ge=0, lt=MAX_SEED))
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    metrics: tuple[str, ...] = ("accuracy",)
    optimizer: OptimizerConfig = OptimizerConfig()
    train: TrainConfig = TrainConfig()
    distribute: DistributeConfig = DistributeConfig()

    @property
    def task(self) -> str:
        """'regression' or 'classification', as the dataset decides.

        For your own table with `data.task: auto` the data decide once read; until
        then the loss says which task is meant (`check_data_task` compares them).
        """
        record = sources.record_for(self.data.name)
        if record is not None and record.keys:  # your own file
            if self.data.task != "auto":
                return self.data.task
            return "regression" if self.loss.name in REGRESSION_LOSSES else "classification"
        base = self.data.name.split(":")[0]  # "sine:1.0.0" is the sine dataset
        return record.tasks.get(base, "classification") if record else "classification"

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists, as YAML would hold them."""
        return _to_plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict(), sort_keys=False, default_flow_style=None)

    def flatten(self) -> dict[str, Any]:
        """`{'optimizer.learning_rate.decay_rate': 0.5, ...}`: one entry per key of the tree.

        Lists become strings (`32,32,32`), and so does a mapping value
        (`train.class_weight: {spiral_a: 2.0}`, in YAML's flow style): every config
        has the same names, whatever its values, and each name one type. TensorBoard's
        HParams tab takes one run's names for a whole folder; a sweep over
        `train.class_weight: [none, {spiral_a: 2.0}]` gave its points different ones. For
        the same reason a number that may be null (`optimizer.clipnorm`) is text: 'null', '1.0'.
        """
        flat: dict[str, Any] = {}

        def walk(node: Any, prefix: str) -> None:
            for field in dataclasses.fields(node):
                key, value = prefix + field.name, getattr(node, field.name)
                if dataclasses.is_dataclass(value):
                    walk(value, f"{key}.")
                elif field.metadata.get("text"):
                    flat[key] = "null" if value is None else str(value)
                elif isinstance(value, (list, tuple)):
                    flat[key] = ",".join(str(v) for v in value)
                elif isinstance(value, Mapping):
                    flow = dump_yaml(dict(value), default_flow_style=True, width=math.inf)
                    flat[key] = flow.strip()
                else:
                    flat[key] = value

        walk(self, "")
        return flat


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


# --- YAML -------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads plain scalars as YAML 1.2's core schema does, refuses a key
    given twice in one mapping (PyYAML keeps the last, silently dropping the first
    block), and refuses nesting deeper than MAX_YAML_DEPTH (the composer recurses).

    PyYAML implements YAML 1.1, where `1e-3` is a string, `0123` an octal 83, `1:30`
    a base-60 90, `yes`, `no`, `on` and `off` booleans and `2024-01-31` a date. Here,
    as in YAML 1.2 and in Python, `1e-3` is a float, `0123` and `1_000` decimal
    integers, `0x1f` and `0o17` hexadecimal and octal, only `true` and `false` (any
    case) booleans, and the rest strings.
    """

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_YAML_DEPTH} levels",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base` merges; the keys given after it win, as YAML says
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = key in lines
                except TypeError:
                    continue  # an unhashable key: SafeConstructor refuses it, with its line
                if seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {shorten(repr(key))} (first on line {lines[key]})",
                        key_node.start_mark,
                    )
                lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_BOOL, _INT, _FLOAT, _TIMESTAMP = (
    f"tag:yaml.org,2002:{kind}" for kind in ("bool", "int", "float", "timestamp")
)
# SafeLoader's resolvers for the rest (null, merge keys); a date stays a string.
_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT,
    re.compile(r"^(?:[-+]?[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """An integer as YAML 1.2 and Python read it: `0123` is 123, not octal 83."""
    text = loader.construct_scalar(node).replace("_", "")
    if text.startswith(("0x", "0o")):
        return int(text, 16 if text[1] == "x" else 8)
    return int(text, 10)


def _construct_bool(loader: _Loader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node).lower() == "true"


_Loader.add_constructor(_INT, _construct_int)
_Loader.add_constructor(_BOOL, _construct_bool)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes every string `_Loader` would read as something else
    (`'1e3'`, `'true'`), so that a run's config.yaml reads back as written."""


_Dumper.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


def dump_yaml(value: Any, **options: Any) -> str:
    """`value` as YAML that `parse_yaml` reads back equal (`yaml.dump`'s `options`)."""
    return yaml.dump(value, Dumper=_Dumper, **options)


def read_yaml_file(path: str | os.PathLike, *, what: str) -> Any:
    """The parsed YAML of a file, or a one-line ConfigError naming the file.

    Args:
      path: the file.
      what: 'Config' or 'Sweep', the word the messages use for the file.

    Raises:
      ConfigError: "Config file not found: x.yaml", a file that is binary, not
        UTF-8 text or larger than MAX_YAML_BYTES, and every refusal of `parse_yaml`.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"Cannot read {what.lower()} file {path}: {e.strerror}") from None
    if len(data) > MAX_YAML_BYTES:
        raise ConfigError(
            f"{what} file {path} is larger than {MAX_YAML_BYTES} bytes; a config is a few hundred"
        )
    if b"\0" in data:
        raise ConfigError(f"{what} file {path} is a binary file, not YAML text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} file {path} is not UTF-8 text: byte 0x{data[e.start]:02x} on line {line}"
        ) from None
    return parse_yaml(text, source=str(path), source_is_file=True)


def parse_yaml(text: str, *, source: str, source_is_file: bool = False) -> Any:
    """Parses YAML text, refusing duplicate keys and nesting deeper than MAX_YAML_DEPTH.

    Args:
      text: the YAML.
      source: what the messages call it: a file name, or `--set key`.
      source_is_file: messages then give the line: "x.yaml line 3: ...".

    Raises:
      ConfigError: one line naming the source (and the line, for a file).
    """
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source} line {mark.line + 1}" if source_is_file and mark else source
        problem = e.problem or ""
        if e.context:
            context_line = e.context_mark.line + 1 if e.context_mark else None
            at = f" (line {context_line})" if source_is_file and context_line else ""
            problem = f"{e.context}{at}, {problem}"
        raise ConfigError(f"{where}: not valid YAML: {shorten(problem, 200)}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {shorten(str(e), 200)}") from None
    except RecursionError:  # the depth limit should have come first; a last guard
        raise ConfigError(f"{source}: YAML nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as e:
        # A tagged scalar the constructor cannot read (`!!int x`), an integer of
        # more digits than Python converts.
        raise ConfigError(f"{source}: not valid YAML: {shorten(str(e), 200)}") from None
    if _holds_itself(value):
        raise ConfigError(
            f"{source}: an alias (*name) refers to a list or mapping that holds it; "
            "a config is a tree"
        )
    return value


def _holds_itself(value: Any) -> bool:
    """Whether a list or mapping contains itself (YAML allows `a: &x [*x]`).

    A node reached twice through aliases is walked once, so that aliases of
    aliases cannot make the walk exponential.
    """
    open_nodes: set[int] = set()
    done: set[int] = set()

    def walk(node: Any) -> bool:
        if not isinstance(node, (list, dict)) or id(node) in done:
            return False
        if id(node) in open_nodes:
            return True
        open_nodes.add(id(node))
        if any(walk(item) for item in (node.values() if isinstance(node, dict) else node)):
            return True
        open_nodes.discard(id(node))
        done.add(id(node))
        return False

    return walk(value)


# --- Loading ----------------------------------------------------------------


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> Config:
    """Reads a YAML config, applies `--set key.path=value` overrides, and checks it all.

    Args:
      path: a YAML file; None means the built-in defaults (`configs/default.yaml`
        holds the same values, each with a comment).
      overrides: strings `dotted.key=value`, the value parsed as YAML
        (`model.hidden_units=[512,256]`, `train.epochs=3`).

    Returns:
      The frozen `Config`.

    Raises:
      ConfigError: one line naming the key path, the value and what is allowed.
    """
    raw = _read_config_file(path) if path is not None else {}
    for item in overrides:
        apply_override(raw, item)
    return config_from_dict(raw)


def load_saved_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> Config:
    """A run's own config.yaml, as `load_config` reads it, a mistake in the file named so.

    The file was written by kerasmlp: a key it refuses now was edited by hand or
    written by another version, and the message says which file, not only which key.
    The `overrides` (`--resume --epochs N`) are checked after, as `--set` options.
    """
    try:
        config_from_dict(_read_config_file(path))
    except ConfigError as e:
        if str(path) in str(e):  # the YAML's own errors name the file already
            raise
        raise ConfigError(f"{path}: {e}") from None
    return load_config(path, overrides)


def _read_config_file(path: str | os.PathLike) -> dict:
    raw = read_yaml_file(path, what="Config")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping of sections (seed, data, model, ...). "
            f"Received: {_show(raw)}"
        )
    return raw


def apply_override(raw: dict, item: str) -> None:
    """Sets `raw[a][b][c] = value` for `item == 'a.b.c=value'` (value parsed as YAML).

    A mapping given to a section (`optimizer={name: sgd}`) sets those keys in it
    and keeps the others, as a section in a config file does over the defaults.
    """
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"--set expects dotted.key=value, e.g. --set train.epochs=3. Received: {_show(item)}"
        )
    value = parse_yaml(text, source=f"--set {shorten(key)}") if text.strip() else None
    parts = key.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        if node.get(part) is None:  # absent, or a section left empty (`train:`)
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"--set {shorten(key)}: {_show(where)} is a value, not a section")
        node = child
    _set(node, parts, value)


def is_section(key: str) -> bool:
    """Whether the dotted `key` names a section of the config (`train`, `train.early_stopping`),
    into which a mapping is merged key by key (see `apply_override`)."""
    return _is_section(key.split("."))


def _is_section(parts: list[str]) -> bool:
    """Whether the dotted key `parts` names a section of `Config` (a dataclass field)."""
    cls: Any = Config
    for part in parts:
        fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else ()
        if part not in fields:
            return False
        cls = typing.get_type_hints(cls)[part]
    return dataclasses.is_dataclass(cls)


def _set(node: dict, parts: list[str], value: Any) -> None:
    """`node[parts[-1]] = value`; a mapping for a section is merged into it key by key."""
    last = parts[-1]
    if value is None and _is_section(parts):
        return  # an empty section changes nothing, as `train:` alone in a file
    if not (_is_section(parts) and isinstance(value, dict) and isinstance(node.get(last), dict)):
        node[last] = value
        return
    for key, item in value.items():
        _set(node[last], [*parts, key], item)


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Builds and checks a `Config` from nested dicts (as YAML gives them)."""
    config = _build(Config, raw, path="")
    _check_consistency(config)
    return config


def _build(cls: type, raw: Any, path: str) -> Any:
    if raw is None and path:
        raw = {}  # a section with every key commented out: its defaults
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(raw, Mapping):
        where = path.rstrip(".") or "the config"
        received = f"{where}={_show(raw)}" if path else _show(raw)
        allowed = f" Allowed in {where}: {', '.join(fields)}." if path else ""
        raise ConfigError(
            f"{where} must be a mapping of keys.{_section_hint(cls, raw, path)}{allowed} "
            f"Received: {received}"
        )
    hints = typing.get_type_hints(cls)
    for key in raw:
        head = key.split(".")[0] if isinstance(key, str) and key not in fields else None
        if head in fields and dataclasses.is_dataclass(hints[head]):
            # `model.activation: tanh` in a file, as --set and a sweep file write keys.
            nested: Any = raw[key]
            for part in reversed(key.split(".")):
                nested = {part: nested}
            raise ConfigError(
                f"Unknown key {_show(f'{path}{key}')}: a config file nests its sections, "
                f"write {_show(nested)} (dotted keys are for --set and --sweep files). "
                f"Received: {path}{key}={_show(raw[key])}"
            )
        if key not in fields:
            hint = _did_you_mean(str(key), fields) or (_home(str(key)) if not path else "")
            raise ConfigError(
                f"Unknown key {_show(f'{path}{key}')}.{hint} "
                f"Allowed in {path.rstrip('.') or 'the top level'}: {', '.join(fields)}"
            )
    kwargs = {}
    for name, field in fields.items():
        if name not in raw:
            continue
        key_path = path + name
        value = _convert(hints[name], raw[name], key_path)
        _check_field(field, value, key_path)
        kwargs[name] = value
    return cls(**kwargs)


def _home(key: str) -> str:
    """A "did you mean" for a section's key given at the top level (`--set epochs=3`, or
    `epochs: 3` left unindented under `train:`): its path, when one section has it."""
    homes = [path for path in _key_paths(Config) if _fold(path.rsplit(".", 1)[-1]) == _fold(key)]
    return f" Did you mean {homes[0]!r}?" if len(homes) == 1 else ""


def _key_paths(cls: type, prefix: str = "") -> Iterable[str]:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        yield prefix + field.name
        if dataclasses.is_dataclass(hints[field.name]):
            yield from _key_paths(hints[field.name], f"{prefix}{field.name}.")


def _section_hint(cls: type, value: Any, path: str) -> str:
    """A "did you mean" for a section given a value (`optimizer: adam`, as `compile` takes
    it; `optimizer.learning_rate=1e-3`): the section's first key, when it takes the value."""
    first = dataclasses.fields(cls)[0]
    hint = typing.get_type_hints(cls)[first.name]
    if not path or value is None or dataclasses.is_dataclass(hint):
        return ""
    try:
        _check_field(first, _convert(hint, value, path + first.name), path + first.name)
    except ConfigError:
        return ""
    return f" Did you mean {path}{first.name}: {_show(value)}?"


def _convert(hint: Any, value: Any, path: str) -> Any:
    """Checks `value` against the annotation `hint` and returns it in that type."""
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path + ".")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or (origin is not None and type(None) in args):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) > 1:  # `str | dict[...]`: a mapping takes the dict form
            mappings = [a for a in inner if typing.get_origin(a) is dict]
            others = [a for a in inner if typing.get_origin(a) is not dict]
            chosen = mappings if isinstance(value, Mapping) and mappings else others
            if not isinstance(value, (Mapping, str)):
                raise ConfigError(
                    f"{path} must be a name or a mapping. Received: {path}={_show(value)}"
                )
            return _convert(chosen[0], value, path)
        return _convert(inner[0], value, path)
    if origin is dict:
        if not isinstance(value, Mapping) or not value:
            # `{}` is a mapping: "must be a mapping" told its writer nothing.
            raise ConfigError(
                f"{path} must be a non-empty mapping. Received: {path}={_show(value)}"
            )
        for k in value:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                kind = {type(None): "no value", bool: "a boolean"}.get(type(k), "a number")
                raise ConfigError(
                    f"{path} keys are class names; YAML read the key {_show(k)} as {kind}: "
                    f"quote the name as written. Received: {path}={_show(value)}"
                )
        # YAML reads the key 1 as an integer; a class named "1" is meant.
        return {str(k): _convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list. Received: {path}={_show(value)}")
        return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false. Received: {path}={_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer. Received: {path}={_show(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number. Received: {path}={_show(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{path} must be a finite number. Received: {path}={value}")
        if abs(value) > FLOAT32_MAX or 0 < abs(value) < FLOAT32_TINY:
            # The rate, L2 coefficient and class weights become float32 tensors: 1e300
            # would be inf there (a traceback, or a run 'diverged' at its first step),
            # 1e-320 a rate of 0 that trains nothing.
            raise ConfigError(
                f"{path} must be 0 or within float32's range, {FLOAT32_TINY:.2g} to "
                f"{FLOAT32_MAX:.2g} in magnitude (kerasmlp computes in float32). "
                f"Received: {path}={value!r}"
            )
        return float(value)
    if hint is str:
        if isinstance(value, (int, float)) and path.split("[")[0] in _COLUMN_NAME_KEYS:
            # A header `1` is the text "1", which YAML reads as a number: taken as text,
            # `01`, `1.0` or `1e3` would lose how the header writes them, so it is quoted.
            kind = "a boolean" if isinstance(value, bool) else "a number"
            raise ConfigError(
                f"{path} is a column name; YAML read {_show(value)} as {kind}: quote it as "
                f'the header writes it, e.g. "{_show(value)}". Received: {path}={_show(value)}'
            )
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path} must be a non-empty string. Received: {path}={_show(value)}")
        return value
    raise TypeError(f"unsupported config annotation {hint!r} at {path}")  # a bug, not a user error


# Keys whose values name columns of the user's CSV header: text, whatever they look like.
_COLUMN_NAME_KEYS = ("data.label", "data.categorical")


def _check_field(field: dataclasses.Field, value: Any, path: str) -> None:
    choices = field.metadata.get("choices")
    if choices is not None:
        # `optimizer.name` reads best as "Unknown optimizer 'adma'".
        parts = path.split(".")
        what = parts[-2] if parts[-1] == "name" and len(parts) > 1 else None
        _check_name(value, choices, path, what=what)
    bounds = field.metadata.get("range")
    if value is None:  # an optional key left off (`optimizer.clipnorm: null`)
        return
    if bounds is not None and isinstance(value, tuple):
        if len(value) > MAX_LAYERS:
            raise ConfigError(
                f"{path} must list at most {MAX_LAYERS} values. Received: {len(value)} values"
            )
        for i, item in enumerate(value):
            _check_range(item, bounds, f"{path}[{i}]")
    elif bounds is not None:
        _check_range(value, bounds, path)


def _check_name(value: str, allowed: Iterable[str], path: str, what: str | None = None) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        what = what or path.rsplit(".", 1)[-1].split("[")[0]
        raise ConfigError(
            f"Unknown {what} {_show(value)} ({path}).{_did_you_mean(value, allowed)} "
            f"Allowed: {', '.join(sorted(allowed))}"
        )


def _check_range(value: float, bounds: tuple, path: str) -> None:
    gt, ge, lt, le = bounds
    ok = (
        (gt is None or value > gt)
        and (ge is None or value >= ge)
        and (lt is None or value < lt)
        and (le is None or value <= le)
    )
    if ok:
        return
    low = f"> {gt}" if gt is not None else f">= {ge}" if ge is not None else None
    high = f"< {lt}" if lt is not None else f"<= {le}" if le is not None else None
    if isinstance(value, int):
        # An integer key's upper bound is a cap against typos: name the side crossed.
        too_low = (gt is not None and value <= gt) or (ge is not None and value < ge)
        allowed = low if too_low else high
    elif low and high:
        allowed = f"in ({gt}, " if gt is not None else f"in [{ge}, "
        allowed += f"{lt})" if lt is not None else f"{le}]"
    else:
        allowed = low or high
    raise ConfigError(f"{path} must be {allowed}. Received: {path}={_show(value)}")


def _check_table_keys(data: DataConfig) -> None:
    """Your own data's keys: each only where its source takes it, and the required ones set.

    Which source takes which key is `kerasmlp.sources`' records.
    """
    record = sources.record_for(data.name)
    taken = record.keys if record is not None else ()
    defaults = DataConfig()
    for key in sources.OWN_DATA_KEYS:
        value = getattr(data, key)
        if key in taken or value == getattr(defaults, key):
            continue
        takers = " or ".join(sources.taking(key))
        if taken:  # another of your own files: npz
            raise ConfigError(f"data.{key} applies to {takers}; {record.note}")
        fixed = ", whose task is fixed" if key == "task" else ""
        shown = value if key == "task" else _show(value)
        raise ConfigError(
            f"data.{key} applies to your own data (data.name {takers}); data.name is "
            f"{_show(data.name)}{fixed}. Received: data.{key}={shown}"
        )
    for key in record.required if record is not None else ():
        if getattr(data, key) is None:
            raise ConfigError(
                f"data.name {data.name} needs data.{key}, {sources.OWN_DATA_KEYS[key]}"
            )


def _check_generated_name(data: DataConfig) -> None:
    """Refuses the generated sets' TFDS builder (`kerasmlp_playground/sine`) as data.name.

    TFDS loads it, but the config knows a generated set's task by the set's own name:
    under the builder's, sine was taken for classification, and a run with the
    default loss ended in a traceback (one with a regression loss was refused).
    """
    name, _, version = data.name.partition(":")
    builder, _, set_name = name.partition("/")
    if builder != sources.GENERATED_BUILDER:
        return
    known = set_name in PLAYGROUND_TASKS
    hint = f" Did you mean {set_name + (':' + version if version else '')!r}?" if known else ""
    raise ConfigError(
        f"data.name {data.name!r} is the TFDS builder of the generated sets; name the set "
        f"itself.{hint} Allowed: {', '.join(PLAYGROUND_TASKS)}, or a TFDS dataset"
    )


def _check_test_fraction(data: DataConfig) -> None:
    """`data.test_fraction` only where a split is held out: not for the datasets known
    to have a test split of their own (the generated sets, the common image sets)."""
    record = sources.record_for(data.name)
    own_test_split = (record is not None and record.kind == "generated") or (
        data.name.split(":")[0] in sources.BY_KIND["tfds_image"].shapes
    )
    if own_test_split and data.test_fraction != DataConfig.test_fraction:
        raise ConfigError(
            f"data.test_fraction applies to tables and your own files; {data.name!r} "
            f"(data.name) has a test split of its own. "
            f"Received: data.test_fraction={data.test_fraction}"
        )


def check_data_task(config: Config, task: str, why: str) -> None:
    """Refuses a loss or metric that does not fit the task the data turned out to be.

    Args:
      config: the run's config (`data.task: auto`: the task was guessed from the loss).
      task: what `kerasmlp.tables.choose_labels` decided.
      why: its reason, for the message.
    """
    if task == config.task:
        return
    if task == "regression":
        fix = "loss.name: mean_squared_error and metrics: [mse]"
    else:
        fix = "loss.name: sparse_categorical_crossentropy and metrics: [accuracy]"
    raise ConfigError(
        f"data.task auto chose {task} for label {_show(config.data.label or 'y')} of "
        f"{config.data.path} ({why}), but loss.name {config.loss.name} is for "
        f"{config.task}: set {fix}, or data.task: {config.task}"
    )


# The data keys that name files or folders, and whether the data layer expands `~` in them.
PATH_KEYS = {"path": False, "test_path": False, "data_dir": True, "manual_dir": True}


def with_absolute_paths(config: Config) -> Config:
    """`config` with its data paths made absolute, from the working directory.

    A run's config.yaml is read again from elsewhere: `--resume`, `load_run` and
    `kerasmlp-predict --split test` in another folder read `data.path: train.csv`
    there, a different file of the same name (or, for `data_dir`, another copy of
    the data), without a word.
    """
    data = config.data
    absolute = {
        key: os.path.abspath(os.path.expanduser(value) if expand else value)
        for key, expand in PATH_KEYS.items()
        if (value := getattr(data, key)) is not None
    }
    return dataclasses.replace(config, data=dataclasses.replace(data, **absolute))


def check_learning_rate_lasts(config: Config, steps: int) -> None:
    """Refuses a schedule whose rate decays to 0 in float32 before the run's last step.

    `ExponentialDecay` computes in float32: once initial_learning_rate *
    decay_rate ** (step / decay_steps) is below FLOAT32_TINY it is 0 (or subnormal),
    and every step after it trains nothing. How many steps a run takes is known
    only once its data is, so `train_and_evaluate` calls this then.

    Args:
      config: the run's config.
      steps: the run's optimizer steps, epochs x steps per epoch.

    Raises:
      ConfigError: naming the step from which the rate is 0.
    """
    lr = config.optimizer.learning_rate
    if lr.decay_rate == 1 or steps < 1:
        return
    # Decay periods after which the rate is below FLOAT32_TINY (> 0: the rate starts above).
    periods = math.log(FLOAT32_TINY / lr.initial_learning_rate) / math.log(lr.decay_rate)
    if lr.staircase:
        first = (math.floor(periods) + 1) * lr.decay_steps
    else:
        first = math.floor(periods * lr.decay_steps) + 1
    if first > steps - 1:  # step s uses the rate at s (from 0); the last step is steps - 1
        return
    exponent = "floor(step / decay_steps)" if lr.staircase else "(step / decay_steps)"
    raise ConfigError(
        f"optimizer.learning_rate decays to 0 in float32 at step {first:,} of the run's "
        f"{steps:,}: {lr.initial_learning_rate:g} x {lr.decay_rate:g} ** {exponent} with "
        f"decay_steps {lr.decay_steps} is below {FLOAT32_TINY:.2g} there, and the steps "
        "after it would train nothing. Raise decay_steps or decay_rate, or train fewer epochs"
    )


def _check_consistency(config: Config) -> None:
    """Rules that tie several keys together."""
    _check_generated_name(config.data)
    _check_table_keys(config.data)
    _check_test_fraction(config.data)
    for i, name in enumerate(config.metrics):
        _check_name(name, METRICS, f"metrics[{i}]", what="metric")
    if len(set(config.metrics)) != len(config.metrics):
        raise ConfigError(f"metrics lists a name twice. Received: metrics={list(config.metrics)}")

    shift = config.model.random_translation
    if shift and (config.data.name in PLAYGROUND_TASKS or config.data.name in TABLE_SOURCES):
        raise ConfigError(
            f"model.random_translation shifts images; data.name {_show(config.data.name)} "
            f"gives rows of numbers, not images. Received: model.random_translation={shift}. "
            "Use 0 here, or a TFDS image set such as mnist"
        )

    task = config.task
    loss = config.loss
    if task == "regression":
        if loss.name not in REGRESSION_LOSSES:
            raise ConfigError(
                f"loss.name {loss.name!r} does not fit the regression dataset "
                f"{_show(config.data.name)} (data.name). Allowed: {', '.join(REGRESSION_LOSSES)}"
            )
        if loss.label_smoothing:
            raise ConfigError(
                f"loss.label_smoothing applies to cross-entropy only, not {loss.name}. "
                f"Received: loss.label_smoothing={loss.label_smoothing}"
            )
        allowed_metrics = REGRESSION_METRICS
    else:
        if loss.name not in CLASSIFICATION_LOSSES:
            raise ConfigError(
                f"loss.name {loss.name!r} is a regression loss; the dataset "
                f"{_show(config.data.name)} (data.name) is classification. "
                f"Allowed: {', '.join(CLASSIFICATION_LOSSES)}"
            )
        allowed_metrics = CLASSIFICATION_METRICS
    if not loss.from_logits:
        raise ConfigError(
            "loss.from_logits must be true: the model's head emits logits (no activation), "
            "and cross-entropy from logits is the numerically stable form. "
            "Received: loss.from_logits=false"
        )
    for i, name in enumerate(config.metrics):
        if name not in allowed_metrics:
            raise ConfigError(
                f"metrics[{i}] {name!r} does not fit a {task} task. "
                f"Allowed: {', '.join(allowed_metrics)}"
            )
    _check_class_weight(config)
    _check_optimizer_options(config.optimizer)
    _check_rollbacks_leave_a_rate(config)
    _check_monitor(config, "train.early_stopping.monitor", config.train.early_stopping.monitor)
    _check_monitor(config, "train.save_best", config.train.save_best)
    _check_known_dataset(config)
    _check_fits_in_memory(config)


def _check_optimizer_options(optimizer: OptimizerConfig) -> None:
    """Refuses `optimizer.*` keys its optimizer does not take (`optimizer_options_not_taken`),
    two clipping keys, a beta that float32 rounds to 1, and `nesterov` without momentum."""
    refused = optimizer_options_not_taken(optimizer)
    if refused:
        # Every such key at once (`sgd` with momentum and nesterov switched to adam by
        # --set optimizer.name=adam), with the way out: a key at its default is not given.
        said = ", ".join(
            f"optimizer.{key} {'applies ' if i == 0 else ''}to "
            f"{_listed(catalog.optimizers_taking(key))}"
            for i, key in enumerate(refused)
        )
        them, defaults = ("it", "its default") if len(refused) == 1 else ("them", "their defaults")
        back = ", ".join(
            f"optimizer.{key}={_show(getattr(OptimizerConfig, key))}" for key in refused
        )
        received = ", ".join(f"optimizer.{key}={_show(getattr(optimizer, key))}" for key in refused)
        raise OptimizerOptionsError(
            f"{said}; optimizer.name is {optimizer.name}: remove {them} from the "
            f"config, or set {them} back to {defaults} ({back}). Received: {received}",
            {key: getattr(optimizer, key) for key in refused},
        )
    clipping = {key: getattr(optimizer, key) for key in catalog.CLIPPING_OPTIONS}
    if sum(value is not None for value in clipping.values()) > 1:
        # Keras's own refusal (BaseOptimizer.__init__), with the key paths.
        received = ", ".join(f"optimizer.{key}={_show(value)}" for key, value in clipping.items())
        raise ConfigError(
            "Only one of optimizer.clipnorm, optimizer.global_clipnorm and "
            f"optimizer.clipvalue can be set. Received: {received}"
        )
    for key in ("beta_1", "beta_2"):
        value = getattr(optimizer, key)
        if _float32(value) >= 1.0:
            # Adam divides by 1 - beta ** t, which is 0 once beta is 1.0 in float32.
            raise ConfigError(
                f"optimizer.{key} must be < 1 in float32 (at most {_float32(1 - 2**-24)!r}); "
                f"float32 rounds it to 1.0. Received: optimizer.{key}={value!r}"
            )
    if optimizer.nesterov and optimizer.momentum == 0:
        raise ConfigError(
            "optimizer.nesterov needs optimizer.momentum > 0: Keras's SGD ignores it without "
            "momentum. Received: optimizer.nesterov=true, optimizer.momentum=0.0"
        )


def optimizer_options_not_taken(optimizer: OptimizerConfig) -> list[str]:
    """The `optimizer.*` keys given (away from their default) that its optimizer does not take.

    A key at its Keras default is not taken as given: a run's config.yaml holds every
    key, whatever the optimizer.
    """
    entry = catalog.OPTIMIZERS[optimizer.name]
    return [
        key
        for key in OPTIMIZER_OPTIONS
        if key not in entry.options and getattr(optimizer, key) != getattr(OptimizerConfig, key)
    ]


def _listed(names: Iterable[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    names = list(names)
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _float32(value: float) -> float:
    """`value` rounded to float32, as the optimizer's tensors hold it."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _check_rollbacks_leave_a_rate(config: Config) -> None:
    """Refuses rollbacks whose last one would scale the rate below float32's smallest normal.

    The learning-rate scale is a float32 variable: at 0.1 ** 40 it is 0 (or subnormal),
    and the run would go on after that rollback training nothing, without a word.
    """
    train = config.train
    if train.on_divergence != "rollback":
        return
    initial = config.optimizer.learning_rate.initial_learning_rate
    if initial * train.rollback_factor**train.max_rollbacks >= FLOAT32_TINY:
        return
    raise ConfigError(
        f"train.max_rollbacks={train.max_rollbacks} rollbacks at train.rollback_factor="
        f"{train.rollback_factor:g} would take the learning rate ({initial:g} at the start) "
        f"below {FLOAT32_TINY:.2g}, 0 in float32, where the run trains nothing. Allow fewer "
        "rollbacks or a larger factor"
    )


CLASS_WEIGHT_MODES = ("none", "balanced")


def _check_class_weight(config: Config) -> None:
    setting = config.train.class_weight
    if setting is None or setting == "none":
        return
    if isinstance(setting, str):
        _check_name(setting, CLASS_WEIGHT_MODES, "train.class_weight", what="class_weight")
    else:
        for name, weight in setting.items():
            if weight < 0:
                raise ConfigError(
                    f"train.class_weight.{name} must be >= 0. "
                    f"Received: train.class_weight.{name}={weight}"
                )
    if config.task == "regression":
        raise ConfigError(
            "train.class_weight weighs classes; this task is regression. "
            f"Received: train.class_weight={_show(setting)}"
        )


def monitored_values(config: Config) -> tuple[str, ...]:
    """What early stopping and `save_best` can watch: the logged validation values."""
    return tuple(f"validation_{name}" for name in ("loss", *config.metrics))


def _check_monitor(config: Config, path: str, monitor: str | None) -> None:
    if monitor is None:
        return
    _check_name(monitor, monitored_values(config), path, what="monitor")
    if config.train.validation_fraction == 0:
        raise ConfigError(
            f"{path}={monitor} watches the validation split, but train.validation_fraction is 0. "
            "Hold out a validation split (e.g. train.validation_fraction=0.1) or drop "
            f"{path}"
        )


def _check_known_dataset(config: Config) -> None:
    """Rules that need the class count, for the datasets whose count is known here.

    Other TFDS sets are checked again (`Head.for_task`, `components.make_metrics`)
    once their info is loaded.
    """
    _, num_classes = dataset_shape(config.data.name)
    if num_classes is None or config.task != "classification":
        return
    if config.loss.name == "binary_crossentropy" and num_classes != 2:
        raise ConfigError(
            f"loss.name 'binary_crossentropy' needs a dataset with 2 classes; this one "
            f"has {num_classes} (data.name={_show(config.data.name)}). "
            "Use sparse_categorical_crossentropy."
        )
    if "top5_accuracy" in config.metrics and num_classes <= 5:
        raise ConfigError(
            f"metrics: top5_accuracy is always 1 with {num_classes} classes "
            f"(data.name={_show(config.data.name)}); use it on datasets with more than 5"
        )
    if "auc" in config.metrics and num_classes != 2:
        raise ConfigError(
            f"metrics: auc needs 2 classes; data.name={_show(config.data.name)} has "
            f"{num_classes}. Use it on binary tasks"
        )


def dataset_shape(name: str) -> tuple[int | None, int | None]:
    """(input length, number of classes) of a dataset, where known without TensorFlow.

    The playground sets are 2-D with 2 classes (sine: 1 regression output); the
    TFDS image sets in KNOWN_IMAGE_DATASETS are listed there; any other is
    (None, None), known only once TFDS has loaded its info.
    """
    base = name.split(":")[0]
    for record in sources.RECORDS:
        if base in record.shapes:
            return record.shapes[base]
    return None, None


def estimate_model_bytes(config: Config) -> tuple[int, int]:
    """(parameters, bytes) of the model's training state, a lower bound.

    Bytes count float32 weights, their gradients and the optimizer's slots
    (`optimizer_slots`); activations and TensorFlow's own memory come on top. An
    unknown dataset's input length and class count are taken as 1, which gives
    a lower bound for every dataset.
    """
    input_dim, num_classes = dataset_shape(config.data.name)
    widths = [input_dim or 1, *config.model.hidden_units, num_classes or 1]
    if config.loss.name == "binary_crossentropy" or config.task == "regression":
        widths[-1] = 1
    params = sum(
        (fan_in + 1) * fan_out for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True)
    )
    copies = 2 + optimizer_slots(config.optimizer)
    return params, params * 4 * copies


def optimizer_slots(optimizer: OptimizerConfig) -> int:
    """Per-weight state the optimizer keeps (sgd with momentum 1, rmsprop with it 2)."""
    return catalog.OPTIMIZERS[optimizer.name].slots_for(optimizer.momentum)


def physical_memory_bytes() -> int | None:
    """The machine's memory, or None where the system does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def _check_fits_in_memory(config: Config) -> None:
    params, needed = estimate_model_bytes(config)
    available = physical_memory_bytes()
    if available is None or needed <= available:
        return
    slots = optimizer_slots(config.optimizer)
    raise ConfigError(
        f"model.hidden_units={_show(list(config.model.hidden_units), 60)} cannot fit in memory: "
        f"{params:,} parameters x 4 bytes x {2 + slots} copies (weights, gradients and "
        f"{config.optimizer.name}'s {slots} slot{'' if slots == 1 else 's'}) = "
        f"{needed / 2**30:,.1f} GiB at least; "
        f"this machine has {available / 2**30:,.1f} GiB"
    )


# Keras's other spellings of names the config knows by one (`keras.losses.get("mse")`,
# compile's metrics=["acc"]), in both directions: the config's losses are spelled out,
# its metrics short, as the README's tables list them. difflib offered 'auc' for 'acc'.
_KERAS_SPELLINGS = {
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "bce": "binary_crossentropy",
    "acc": "accuracy",
    "mean_squared_error": "mse",
    "mean_absolute_error": "mae",
    "root_mean_squared_error": "rmse",
    "sparse_categorical_accuracy": "accuracy",
    "categorical_accuracy": "accuracy",
    "binary_accuracy": "accuracy",
}


def _did_you_mean(value: str, allowed: Iterable[str]) -> str:
    # Keras's class names (AdamW, ReLU, LeakyReLU) are the config's names but for case
    # and '_': matched so first. difflib alone is case-sensitive: 'AdamW' got 'adam'.
    allowed = list(allowed)
    spelled = _KERAS_SPELLINGS.get(value.lower())
    if spelled in allowed:
        return f" Did you mean {spelled!r}, as kerasmlp spells Keras's {value!r}?"
    folded = {_fold(name): name for name in allowed}
    if _fold(value) in folded:
        return f" Did you mean {folded[_fold(value)]!r}?"
    lowered = {name.lower(): name for name in allowed}
    close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
    return f" Did you mean {lowered[close[0]]!r}?" if close else ""


def _fold(name: str) -> str:
    return name.lower().replace("_", "")


def _show(value: Any, limit: int = 80) -> str:
    """A value as the user wrote it, on one line, cut to about `limit` characters."""
    if isinstance(value, str):
        text = repr(value)
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list, tuple)):
        text = yaml.safe_dump(
            _to_plain(value), default_flow_style=True, width=math.inf, allow_unicode=True
        ).strip()
        text = text.removesuffix("...").strip()
    else:
        text = repr(value)
    return shorten(text, limit)


def shorten(text: str, limit: int = 80) -> str:
    """`text` without line breaks, cut to `limit` characters with '...' when longer."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."
