"""Sweeps: a grid of `--set` overrides, one run per point, compared in TensorBoard's HParams tab.

A sweep file is a YAML mapping from dotted config keys to lists of values::

    model.activation: [relu, tanh]
    optimizer.learning_rate.initial_learning_rate: [0.01, 0.003]

which is the grid of 4 points. Every point is a config (the base config, the
`--set` options, then the point's values) checked before any run starts, so
a typo in the last point fails at once. Runs go to `<logdir>/<sweep>/<point>`,
each named after its point, and each writes its HParams session, so that
`tensorboard --logdir <logdir>/<sweep>` lists them side by side.

This module knows only Python, PyYAML and the config: like `config`, it must
stay importable without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from kerasmlp.config import Config, ConfigError, load_config, read_yaml_file, shorten

# More runs than this is almost surely a mistake in the file (a long list pasted twice).
MAX_POINTS = 256


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


def run_name(index: int, point: Mapping[str, Any]) -> str:
    """A folder name for a point: `03-activation=tanh,initial_learning_rate=0.003`.

    Keys are shortened to their last part unless two points' keys share it;
    characters outside `[A-Za-z0-9._=,+-]` become `_`. The index keeps names
    unique and in grid order.
    """
    last = [key.rsplit(".", 1)[-1] for key in point]
    names = last if len(set(last)) == len(last) else list(point)
    parts = [
        f"{name}={_name_value(value)}" for name, value in zip(names, point.values(), strict=True)
    ]
    text = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", ",".join(parts)).strip("_")
    text = text.replace("..", "_")
    return f"{index:02d}-{text}"[:200]


def plan_sweep(
    grid: Mapping[str, Sequence[Any]],
    config_path: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
) -> list[SweepRun]:
    """The checked config of every point: base config, then `overrides`, then the point.

    Raises:
      ConfigError: a point gives a bad config; the message names the point.
    """
    overrides = list(overrides)
    runs = []
    for index, point in enumerate(grid_points(grid)):
        try:
            config = load_config(config_path, [*overrides, *point_overrides(point)])
        except ConfigError as e:
            raise ConfigError(f"sweep point {index} ({_describe(point)}): {e}") from None
        runs.append(SweepRun(point=point, name=run_name(index, point), config=config))
    return runs


def _name_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_name_value(v) for v in value)  # [64, 32] -> 64x32
    return _yaml_value(value)


def _yaml_value(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=math.inf)
        .strip()
        .removesuffix("...")
        .strip()
    )


def _describe(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in point.items())


def _show(value: Any) -> str:
    """One line, cut to about 80 characters: messages never wrap."""
    return "null" if value is None else shorten(_yaml_value(value))
