"""Sweeps: a grid of `--set` overrides, one run per point, compared in TensorBoard's HParams tab.

A sweep file is a YAML mapping from dotted config keys to lists of values::

    model.activation: [relu, tanh]
    optimizer.learning_rate.initial_learning_rate: [0.01, 0.003]

which is the grid of 4 points. Every point is a config (the base config, the
`--set` options, then the point's values) checked before any run starts, so
a typo in the last point fails at once. Runs go to `<logdir>/<sweep>/<point>`,
each named after its point, and each writes its HParams session, so that
`tensorboard --logdir <logdir>/<sweep>` lists them side by side. At the end,
`summary_table` ranks the points by one value of their `metrics.json`.

This module knows only Python, PyYAML and the config: like `config`, it must
stay importable without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from kerasmlp import catalog
from kerasmlp.config import (
    Config,
    ConfigError,
    OptimizerOptionsError,
    dump_yaml,
    is_section,
    load_config,
    parse_yaml,
    read_yaml_file,
    shorten,
)

# More runs than this is almost surely a mistake in the file (a long list pasted twice).
MAX_POINTS = 256
# Longer point names are cut at a `key=value` boundary: TensorBoard's HParams table
# shows about this much of a trial's name, and the columns carry the full values.
MAX_NAME = 64
# Values of metrics.json for which lower is better; for every other metric, higher is.
LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse", "ece")
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One point of the grid: its values, its run name and its checked config."""

    point: dict[str, Any]
    name: str
    config: Config


def load_grid(path: str | os.PathLike) -> dict[str, list[Any]]:
    """Reads a sweep file: `{dotted.key: [value, ...], ...}`, keys in file order.

    Raises:
      ConfigError: the file is missing or not YAML, not a mapping, a key is not
        a dotted name, a value is not a non-empty list, or the grid is too large.
    """
    return check_grid(read_yaml_file(path, what="Sweep"), source=str(path))


def check_grid(raw: Any, *, source: str = "the sweep") -> dict[str, list[Any]]:
    """Checks a grid mapping (see `load_grid`) and returns it as `{key: list}`."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"{source} must map dotted config keys to lists of values, e.g. "
            f"'model.activation: [relu, tanh]'. Received: {_show(raw) if raw else 'nothing'}"
        )
    grid: dict[str, list[Any]] = {}
    for key, values in raw.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
            raise ConfigError(
                f"{source}: keys must be dotted config keys. Received: {shorten(repr(key))}"
            )
        if isinstance(values, Mapping) and values and isinstance(next(iter(values)), str):
            # A config file's nesting: the message below asked for `model: [a, b]`.
            inner = next(iter(values))
            raise ConfigError(
                f"{source}: keys are dotted, one per line, not nested: write "
                f"{key}.{inner}: [a, b]. Received: {key}={_show(values)}"
            )
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{source}: {key} must be a non-empty list of values, e.g. {key}: [a, b]. "
                f"Received: {key}={_show(values)}"
            )
        grid[key] = values
    size = 1
    for values in grid.values():
        size *= len(values)
    if size > MAX_POINTS:
        raise ConfigError(f"{source} has {size} points; at most {MAX_POINTS} runs per sweep")
    return grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination, the last key varying fastest (as nested loops in file order)."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def point_overrides(point: Mapping[str, Any]) -> list[str]:
    """`--set` strings for a point: `key=value`, the value written back as YAML."""
    return [f"{key}={_yaml_value(value)}" for key, value in point.items()]


def run_name(index: int, point: Mapping[str, Any], *, digits: int = 2) -> str:
    """A folder name for a point: `03-activation=tanh,initial_learning_rate=0.003`.

    Keys are shortened to their last part unless two points' keys share it; a
    list is written `64x32`, a mapping `spiral_a-2.0+spiral_b-0.5`; characters
    outside `[A-Za-z0-9._=,+-]` become `_`. The index, `digits`
    wide (those of the grid's last index, at least 2), keeps names unique and in
    grid order when sorted as text. A name is at most `MAX_NAME` characters, so that
    TensorBoard shows it whole as the trial's name: the `key=value` parts that
    do not fit are left out, and a first one too long is cut, a mapping after its
    last whole entry, with no `+`, `-`, `=`, `_`, `.` or `,` left at its end (the
    HParams columns hold every value).
    """
    last = [key.rsplit(".", 1)[-1] for key in point]
    names = last if len(set(last)) == len(last) else list(point)
    parts = [
        _plain_name(f"{name}={_name_value(value)}")
        for name, value in zip(names, point.values(), strict=True)
    ]
    whole = f"{index:0{digits}d}-{parts[0]}" if parts else f"{index:0{digits}d}"
    name = whole[:MAX_NAME]
    if len(whole) > MAX_NAME:
        # A mapping keeps its whole entries (`...+class_2-1.25`, not `...+class_3-1`, which
        # reads as a weight of 1), and no name ends in a `+` or `-`, which reads as more
        # to come. Names not cut keep their ending: a sweep planned before goes on
        # under them.
        value = name.partition("=")[2]
        if "+" in value:
            name = name[: name.rindex("+")]
        return name.rstrip("_.,=+-")
    for part in parts[1:]:
        if len(name) + 1 + len(part) > MAX_NAME:
            break
        name += f",{part}"
    return name.rstrip("_.,=")


def check_overrides(grid: Mapping[str, Sequence[Any]], options: Iterable[tuple[str, str]]) -> None:
    """Refuses an option that sets a key the grid varies: each point's value replaced it unseen.

    Args:
      grid: see `load_grid`.
      options: `(option, key=value)` pairs, e.g. `('--epochs 3', 'train.epochs=3')`.

    Raises:
      ConfigError: one line naming the option and the swept key.
    """
    for option, item in options:
        name, _, text = item.partition("=")
        given = parse_yaml(text, source=shorten(option)) if text.strip() else None
        for key, value in _keys_set(name.strip(), given):
            for swept, values in grid.items():
                # A section's mapping in the grid (`train: [{batch_size: 16}]`): only its keys.
                leaves = {leaf for v in values for leaf, _ in _keys_set(swept, v, is_section)}
                if any(_overlaps(key, value, leaf) for leaf in leaves):
                    raise ConfigError(
                        f"{shorten(option)} sets {key}, which the sweep varies ({swept}: "
                        f"{_show(list(values))}): every point would take its own value "
                        "instead. Drop the option, or the key from the sweep"
                    )


def _overlaps(key: str, value: Any, leaf: str) -> bool:
    """Whether a point that sets `leaf` after an option set `key` to `value` loses the option."""
    # `train=` (null) leaves the section as it is, as `train:` in a file.
    above = leaf.startswith(f"{key}.") and value is not None
    return key == leaf or key.startswith(f"{leaf}.") or above


def _keys_set(
    key: str, value: Any, merged: Callable[[str], bool] = lambda key: True
) -> Iterator[tuple[str, Any]]:
    """The dotted keys `key=value` sets, with their values: a mapping given to a key that
    `merged` says takes it key by key sets each of its keys (`train={epochs: 3}` sets
    train.epochs: `load_config` merges a section's). Another mapping replaces the whole
    value, but a later `key.inner=...` still goes into it: an option's always splits."""
    if isinstance(value, Mapping) and value and merged(key):
        for inner, item in value.items():
            yield from _keys_set(f"{key}.{inner}", item, merged)
    else:
        yield key, value


def plan_sweep(
    grid: Mapping[str, Sequence[Any]],
    config_path: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
) -> list[SweepRun]:
    """The checked config of every point: base config, then `overrides`, then the point.

    Raises:
      ConfigError: a point gives a bad config (the message names the point), or
        the grid varies `distribute.*` under `multi_worker` (see `check_distribute`).
    """
    overrides = list(overrides)
    runs = []
    seen: dict[str, int] = {}  # a point's resolved config -> its index
    points = grid_points(grid)
    # 100 points and more: '100-...' sorted before '11-...' (ls, a script's sorted()).
    digits = max(2, len(str(len(points) - 1)))
    for index, point in enumerate(points):
        try:
            config = load_config(config_path, [*overrides, *point_overrides(point)])
        except ConfigError as e:
            advice = _optimizer_grid_advice(grid, e)
            raise ConfigError(f"sweep point {index} ({_describe(point)}): {e}{advice}") from None
        # The same config is the same run (same seed, same weights): `seed: [1, 1]` or
        # `[0.01, 1e-2]` would train it twice and rank the copies as two points.
        first = seen.setdefault(_as_run(config), index)
        if first != index:
            raise ConfigError(
                f"sweep points {first} ({_describe(runs[first].point)}) and {index} "
                f"({_describe(point)}) give the same config: the same run twice. "
                "List each value once"
            )
        runs.append(
            SweepRun(point=point, name=run_name(index, point, digits=digits), config=config)
        )
    check_distribute([run.config for run in runs])
    return runs


def _optimizer_grid_advice(grid: Mapping[str, Sequence[Any]], error: ConfigError) -> str:
    """For a grid over `optimizer.name` whose points do not all take a key the base config
    or an option gives (`--set optimizer.momentum=0.9` with `[adam, sgd]`): how to give it
    to the points that take it, a grid over the section; else ''."""
    names = grid.get("optimizer.name")
    if not isinstance(error, OptimizerOptionsError) or not names:
        return ""
    points = [
        {
            "name": name,
            **{
                key: value
                for key, value in error.given.items()
                if key in getattr(catalog.OPTIMIZERS.get(name), "options", ())
            },
        }
        for name in names
    ]
    keys = " and ".join(f"optimizer.{key}" for key in error.given)
    it = "it" if len(error.given) == 1 else "them"
    grid_text = dump_yaml(points, default_flow_style=True, width=math.inf, sort_keys=False)
    return (
        f". To give {keys} only to the optimizers that take {it}, set {it} in the grid, not "
        f"in the config or an option: optimizer: {grid_text.strip()}"
    )


def _as_run(config: Config) -> str:
    """The config's text with what it leaves to Keras filled in: `optimizer.weight_decay`
    null is its optimizer's Keras default, so `[null, 0.004]` under adamw is one run."""
    optimizer = config.optimizer
    if optimizer.weight_decay is None:
        default = catalog.OPTIMIZERS[optimizer.name].options["weight_decay"]
        config = dataclasses.replace(
            config, optimizer=dataclasses.replace(optimizer, weight_decay=default)
        )
    return config.to_yaml()


def describe_point(config: Config, keys: Sequence[str]) -> str:
    """A point's value of each swept key, read back from its config: `model.activation=tanh`.

    `keys` are the grid's dotted keys; a key the config does not hold shows null.
    """
    values = {}
    for key in keys:
        node: Any = config.to_dict()
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        values[key] = node
    return _describe(values)


def check_distribute(configs: Sequence[Config]) -> None:
    """Refuses a sweep whose points differ in `distribute` when any point is `multi_worker`.

    Every worker process runs the points one after the other under the one
    MultiWorkerMirroredStrategy it makes (see `kerasmlp.distribute`), and all
    workers take part in every point: a point on one device would instead
    train on every machine separately, each writing its folder.

    Nor can points vary `distribute.cpu_devices`: TensorFlow splits the CPU into
    logical devices once per process, before the first point.

    Raises:
      ConfigError: one line naming the keys that vary.
    """
    counts = sorted({config.distribute.cpu_devices for config in configs})
    if len(counts) > 1:
        raise ConfigError(
            "A sweep runs its points in one process, where TensorFlow splits the CPU into "
            "logical devices once: its points cannot vary distribute.cpu_devices; run one "
            f"sweep per count. Received: distribute.cpu_devices={counts}"
        )
    settings = {config.distribute for config in configs}
    if len(settings) < 2 or all(s.strategy != "multi_worker" for s in settings):
        return
    varying = {
        f"distribute.{field.name}": sorted({str(getattr(s, field.name)) for s in settings})
        for field in dataclasses.fields(next(iter(settings)))
        if len({getattr(s, field.name) for s in settings}) > 1
    }
    raise ConfigError(
        "A sweep under distribute.strategy=multi_worker runs every point under the one "
        f"strategy each worker process makes: its points cannot vary {', '.join(varying)}; "
        "run one sweep per setting. Received: "
        + ", ".join(f"{key}=[{', '.join(values)}]" for key, values in varying.items())
    )


def metric_direction(metric: str) -> str:
    """'min' when a lower value of `metric` is better (loss, mse, mae, rmse, ece), else 'max'.

    `metric` is a key of metrics.json, e.g. `validation_loss` (min) or `test_accuracy` (max).
    """
    split, _, name = metric.partition("_")
    if split not in SPLITS:
        name = metric
    return "min" if name in LOWER_IS_BETTER else "max"


def sweep_metrics(configs: Sequence[Config]) -> tuple[str, ...]:
    """The keys of metrics.json every point of a sweep writes, in a stable order.

    `<split>_loss` and `<split>_<metric>` for the splits train and test, and
    validation where every point holds out a validation split. A metric that
    only some points write is left out: the others could not be ranked by it.
    """
    names: list[str] | None = None
    for config in configs:
        own = _point_metrics(config)
        names = own if names is None else [name for name in names if name in own]
    return tuple(names or ())


def _point_metrics(config: Config) -> list[str]:
    """The keys of metrics.json one run of `config` writes that can rank it."""
    splits = [s for s in SPLITS if s != "validation" or config.train.validation_fraction > 0]
    return [f"{split}_{metric}" for split in splits for metric in ("loss", *config.metrics)]


def check_sweep_metric(metric: str | None, configs: Sequence[Config]) -> str:
    """The value that ranks the points: `metric`, checked, or the default.

    The default is the first metric of the first point's config that every
    point writes, on the validation split (`validation_accuracy`), or on the
    test split when a point has no validation split; `<split>_loss` when no
    metric is written by every point.

    Raises:
      ConfigError: `metric` is not a value every run writes to metrics.json.
    """
    allowed = sweep_metrics(configs)
    if metric is None:
        split = "validation" if all(c.train.validation_fraction > 0 for c in configs) else "test"
        names = (f"{split}_{name}" for name in (*configs[0].metrics, "loss"))
        return next(name for name in names if name in allowed)
    if metric not in allowed:
        missing = [i for i, config in enumerate(configs) if metric not in _point_metrics(config)]
        if len(missing) < len(configs):
            # Those points would have no value: ranked last, unranked, whatever they scored.
            raise ConfigError(
                f"--sweep-metric {shorten(metric)} is not written by every point: sweep "
                f"point{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                f"(no validation split, or not in its metrics) would have no value. "
                f"Allowed: {', '.join(allowed)}"
            )
        close = difflib.get_close_matches(metric, allowed, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"Unknown metric {shorten(repr(metric))} (--sweep-metric).{hint} "
            f"Allowed: {', '.join(allowed)}"
        )
    return metric


def hparams_metrics(configs: Sequence[Config]) -> list[tuple[str, str]]:
    """The HParams tab's metric columns for a sweep: each (split, tag) that a point writes.

    TensorBoard shows the columns of one run's experiment record, picked
    arbitrarily, for the whole folder: every point lists those of all the
    points, so that none hides another's (validation, when only some points
    hold out a validation split). Validation first, then test.
    """
    pairs = {
        (split, tag): None
        for config in configs
        for split in ("validation", "test")
        if split == "test" or config.train.validation_fraction > 0
        for tag in ("loss", *config.metrics)
    }
    return sorted(pairs, key=lambda pair: SPLITS.index(pair[0]))  # stable: tags keep order


@dataclasses.dataclass(frozen=True)
class RankedPoint:
    """One row of a sweep's summary: rank 1 is the best; None when the point has no value."""

    rank: int | None
    name: str
    value: float | None


def rank_points(results: Mapping[str, Mapping[str, Any] | None], metric: str) -> list[RankedPoint]:
    """The points best first by `metric` (see `metric_direction`).

    Args:
      results: point name -> its metrics.json, or None when it has none; in grid order.
      metric: the key of metrics.json to rank by, e.g. `validation_accuracy`.

    Returns:
      One `RankedPoint` per point. Equal values share a rank (1, 1, 3) and keep
      grid order; points without a finite value (no metrics.json, a NaN written
      as null) come last, unranked, in grid order.
    """
    scored, unranked = [], []
    for name, values in results.items():
        value = (values or {}).get(metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            scored.append((name, float(value)))
        else:
            unranked.append(RankedPoint(None, name, None))
    sign = 1.0 if metric_direction(metric) == "min" else -1.0
    scored.sort(key=lambda item: sign * item[1])  # a stable sort: ties stay in grid order
    ranked: list[RankedPoint] = []
    for position, (name, value) in enumerate(scored, start=1):
        tied = ranked and ranked[-1].value == value
        ranked.append(RankedPoint(ranked[-1].rank if tied else position, name, value))
    return ranked + unranked


def summary_table(results: Mapping[str, Mapping[str, Any] | None], metric: str) -> str:
    """The sweep's points ranked by `metric`, as fixed-width lines that all start `sweep |`.

    ::

        sweep | 2 points ranked by validation_accuracy (higher is better)
        sweep | rank | validation_accuracy | test_accuracy | run
        sweep |    1 |              0.9550 |        0.9470 | 01-activation=tanh
        sweep |    2 |              0.8830 |        0.8710 | 00-activation=relu

    Beside `metric`, its test value (`validation_x` -> `test_x`) when there is one.
    A point without a value shows `-`.
    """
    split, _, name = metric.partition("_")
    columns = [metric]
    if (
        split in SPLITS
        and split != "test"
        and any(f"test_{name}" in (v or {}) for v in results.values())
    ):
        columns.append(f"test_{name}")
    direction = "lower" if metric_direction(metric) == "min" else "higher"
    lines = [f"sweep | {len(results)} points ranked by {metric} ({direction} is better)"]
    header = ["rank", *columns, "run"]
    widths = [max(len(h), 6 if h != "rank" else 4) for h in header[:-1]]
    rows = [header]
    for point in rank_points(results, metric):
        values = results[point.name] or {}
        cells = [str(point.rank) if point.rank is not None else "-"]
        for column in columns:
            value = values.get(column)
            cells.append(f"{value:.4f}" if isinstance(value, (int, float)) else "-")
        rows.append([*cells, point.name])
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row[:-1], strict=False)]
    for row in rows:
        cells = [cell.rjust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append(" | ".join(["sweep", *cells, row[-1]]))
    return "\n".join(lines) + "\n"


def _plain_name(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", text).strip("_")
    return text.replace("..", "_")


def _name_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_name_value(v) for v in value)  # [64, 32] -> 64x32
    if isinstance(value, Mapping):
        # {spiral_a: 2.0, spiral_b: 0.5} -> spiral_a-2.0+spiral_b-0.5; as YAML, its braces
        # and spaces became `_spiral_a_2.0,_spiral_b_0.5` (a comma, as between two keys).
        return "+".join(f"{key}-{_name_value(item)}" for key, item in value.items())
    return _yaml_value(value)


def _yaml_value(value: Any) -> str:
    return (
        dump_yaml(value, default_flow_style=True, width=math.inf)
        .strip()
        .removesuffix("...")
        .strip()
    )


def _describe(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in point.items())


def _show(value: Any) -> str:
    """One line, cut to about 80 characters: messages never wrap."""
    return "null" if value is None else shorten(_yaml_value(value))
