"""Run plans: what `kerasmlp-train` runs, and a sweep folder's plan file that `--resume` reads.

A plan is a list of `(config, run_dir, resume)`: the checked config of each
run (None for a sweep's point that is finished already), the folder it
writes, and whether it continues from that folder's checkpoint. A sweep
writes its plan to `<sweep>/sweep.yaml` (every point's name and config, the
grid's keys, the ranking metric) before its first point, so that
`--resume <sweep>` runs the points left as the sweep would have.

This module knows only Python, PyYAML, the config and the run folder's files:
like `sweep`, it must stay importable without TensorFlow.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

from kerasmlp import runfiles, sweep
from kerasmlp.config import (
    Config,
    ConfigError,
    config_from_dict,
    dump_yaml,
    parse_yaml,
    shorten,
)

# One run of a plan: its config (None: a sweep's point finished already), folder, resume.
Run = tuple[Config | None, pathlib.Path, bool]


def write_sweep_plan(
    sweep_dir: pathlib.Path, runs: Sequence[Run], *, swept_keys: Sequence[str], metric: str
) -> None:
    """Writes `<sweep>/sweep.yaml`: every point's name and config, so `--resume` can finish it.

    Also the grid's keys (shown first in TensorBoard's HParams tab) and the
    value that ranks the points, so a resumed sweep ends as it would have.

    Args:
      sweep_dir: the sweep's folder, made if missing (see `runfiles.prepare_run_dir`).
      runs: the sweep's plan, in grid order (see `plan_sweep_runs`).
      swept_keys: the grid's dotted keys.
      metric: the key of metrics.json that ranks the points.

    Raises:
      RunFilesError: the folder or the file could not be written.
    """
    runfiles.prepare_run_dir(sweep_dir)
    plan = {
        "keys": list(swept_keys),
        "metric": metric,
        "points": [{"name": d.name, "config": c.to_dict()} for c, d, _ in runs],
    }
    runfiles.write_text_atomic(sweep_dir / runfiles.SWEEP_FILE, dump_yaml(plan, sort_keys=False))


def read_sweep_plan(sweep_dir: pathlib.Path) -> dict[str, Any]:
    """Reads `<sweep>/sweep.yaml` as `write_sweep_plan` wrote it.

    Returns:
      The plan: `{keys: [...], metric: str, points: [{name: str, config: dict}, ...]}`.

    Raises:
      ConfigError: one line saying what is wrong: the file is not YAML, or not a
        mapping with `points`, a list of `{name: <plain folder name>, config:
        <mapping>}`, and optional `keys` (a list) and `metric` (a string).
    """
    sweep_file = sweep_dir / runfiles.SWEEP_FILE
    plan = parse_yaml(sweep_file.read_text(encoding="utf-8"), source=str(sweep_file))
    wrong = _what_is_wrong_with_plan(plan)
    if wrong:
        raise ConfigError(
            f"{sweep_file} is not a sweep plan as --sweep writes it: {wrong}. Restore it, or "
            "start the sweep again under another --run-name"
        )
    return plan


def _what_is_wrong_with_plan(plan: Any) -> str | None:
    """What makes `plan` (a parsed sweep.yaml) not a plan, or None when it is one."""
    if plan is None:
        return "it is empty"
    if not isinstance(plan, dict):
        return f"it must be a mapping with 'points'; it holds {shorten(repr(plan))}"
    points = plan.get("points")
    if not isinstance(points, list) or not points:
        return f"'points' must be a non-empty list. Received: points={shorten(repr(points))}"
    for i, point in enumerate(points):
        name = point.get("name") if isinstance(point, dict) else None
        plain = isinstance(name, str) and name and not set(name) & {"/", "\\"}
        if not plain or name.startswith(".") or not isinstance(point.get("config"), dict):
            return (
                f"point {i} must be {{name: <folder name>, config: <mapping>}}. "
                f"Received: {shorten(repr(point))}"
            )
    if not isinstance(plan.get("keys", []), (list, type(None))):
        return f"'keys' must be a list. Received: keys={shorten(repr(plan['keys']))}"
    if not isinstance(plan.get("metric", ""), (str, type(None))):
        return f"'metric' must be a string. Received: metric={shorten(repr(plan['metric']))}"
    return None


def sweep_plan_settings(
    sweep_dir: pathlib.Path, metric: str | None
) -> tuple[list[str], str, list[tuple[str, str]]]:
    """The settings a resumed sweep keeps from its plan file.

    Args:
      sweep_dir: the sweep's folder.
      metric: the ranking metric given again (`--sweep-metric`); None keeps the plan's.

    Returns:
      The swept keys, the ranking metric (checked, see `sweep.check_sweep_metric`)
      and the HParams metric columns (see `sweep.hparams_metrics`).

    Raises:
      ConfigError: the plan file is damaged (see `read_sweep_plan`), or the metric
        is not one every point writes.
    """
    plan = read_sweep_plan(sweep_dir)
    configs = [config_from_dict(point["config"]) for point in plan["points"]]
    keys = list(plan.get("keys") or [])
    return (
        keys,
        sweep.check_sweep_metric(metric or plan.get("metric"), configs),
        sweep.hparams_metrics(configs),
    )
