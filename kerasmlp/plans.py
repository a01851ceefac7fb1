"""Run plans: what `kerasmlp-train` runs, and a sweep folder's own files: plan and summary.

A plan is a list of `(config, run_dir, resume)`: the checked config of each
run (None for a sweep's point that is finished already), the folder it
writes, and whether it continues from that folder's checkpoint. A sweep
writes its plan to `<sweep>/sweep.yaml` (every point's name and config, the
grid's keys, the ranking metric) before its first point, so that
`--resume <sweep>` runs the points left as the sweep would have; at its end,
`<sweep>/summary.txt` ranks the points.

This module knows only Python, PyYAML, the config and the run folder's files:
like `sweep`, it must stay importable without TensorFlow.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kerasmlp import runfiles, sweep
from kerasmlp.config import (
    Config,
    ConfigError,
    config_from_dict,
    dump_yaml,
    load_saved_config,
    parse_yaml,
    shorten,
)

SUMMARY_FILE = "summary.txt"  # a sweep's points ranked, beside its plan (runfiles.SWEEP_FILE)

# One run of a plan: its config (None: a sweep's point finished already), folder, resume.
Run = tuple[Config | None, pathlib.Path, bool]


def _no_worker(config: Config) -> bool:
    return False


def plan_sweep_runs(
    run_dir: pathlib.Path,
    sweep_path: str | os.PathLike,
    config_path: str | os.PathLike | None,
    options: Iterable[tuple[str, str]],
) -> tuple[list[Run], list[str]]:
    """The plan of a new sweep: every point of the grid, each config checked.

    Args:
      run_dir: the sweep's folder; each point runs in a folder of its own below it.
      sweep_path: the sweep file (see `sweep.load_grid`).
      config_path: the base config file; None for the built-in defaults.
      options: the `(option, key=value)` overrides of the command line, e.g.
        `('--epochs 3', 'train.epochs=3')`, applied to every point before its values.

    Returns:
      `(config, run_dir / point name, False)` for every point, in grid order, and
      the grid's keys.

    Raises:
      ConfigError: the sweep file is bad, an option sets a key the grid varies
        (see `sweep.check_overrides`), or a point gives a bad config.
    """
    options = list(options)
    grid = sweep.load_grid(sweep_path)
    sweep.check_overrides(grid, options)
    overrides = [item for _, item in options]
    runs: list[Run] = [
        (point.config, run_dir / point.name, False)
        for point in sweep.plan_sweep(grid, config_path, overrides)
    ]
    return runs, list(grid)


def plan_resume(
    run_dir: pathlib.Path,
    epochs: int | None = None,
    strategy: str | None = None,
    *,
    is_worker: Callable[[Config], bool] = _no_worker,
) -> list[Run]:
    """The plan of `--resume`: a run, or each point of a sweep folder.

    A sweep's points that are completed or diverged come back with config None
    (a diverged point would diverge again: its config is the same); those with a
    folder are resumed, the others start.

    Args:
      run_dir: the run's or the sweep's folder.
      epochs: replaces the runs' `train.epochs` (`--epochs`); None keeps theirs.
      strategy: replaces the runs' `distribute.strategy` (`--strategy`); None keeps theirs.
      is_worker: whether a config's run is a multi-worker run's worker other than
        the chief (TF_CONFIG says); such a worker does not check the run's state:
        the chief, maybe resumed already, owns it. Default: no run is.

    Returns:
      `(config, folder, resume)` for the run, or for each point in grid order.

    Raises:
      ConfigError: the folder's config or sweep plan is bad, or `epochs` or
        `strategy` would make two points the same run or reach points finished
        at another length.
      ResumeError: the run cannot be resumed (see `runfiles.check_resumable`).
    """
    extra = [f"train.epochs={epochs}"] if epochs is not None else []
    if strategy is not None:
        extra.append(f"distribute.strategy={strategy}")
    sweep_file = run_dir / runfiles.SWEEP_FILE
    if not sweep_file.is_file():
        if not (run_dir / runfiles.CONFIG_FILE).is_file():
            runfiles.check_resumable(run_dir)  # says why in one line
        config = load_saved_config(run_dir / runfiles.CONFIG_FILE, extra)
        if not is_worker(config):
            runfiles.check_resumable(run_dir)
        return [(config, run_dir, True)]
    plan = read_sweep_plan(run_dir)
    for option, value, key in (
        ("--epochs", epochs, "train.epochs"),
        ("--strategy", strategy, "distribute.strategy"),
    ):
        planned = _planned_values(plan, key)
        if value is not None and len(planned) > 1:
            # Every point would run with the one value: the same run in two points' folders.
            raise ConfigError(
                f"{option} {value} would give every point of {run_dir} {key}={value}, which "
                f"the sweep varies ({', '.join(planned)}): two points would train the same "
                f"config. Resume without {option}"
            )
    runs: list[Run] = []
    other_lengths = []
    for point in plan["points"]:
        point_dir = run_dir / point["name"]
        status = runfiles.read_status(point_dir) or {}
        if status.get("state") in ("completed", "diverged"):
            runs.append((None, point_dir, False))
            if epochs is not None and (done := _planned_epochs(point_dir, point)) != epochs:
                other_lengths.append(f"{point['name']} (train.epochs={done})")
        elif (point_dir / runfiles.CONFIG_FILE).is_file():
            config = load_saved_config(point_dir / runfiles.CONFIG_FILE, extra)
            if not is_worker(config):
                runfiles.check_resumable(point_dir)
            runs.append((config, point_dir, True))
        else:
            raw = point["config"]
            if epochs is not None:
                raw = {**raw, "train": {**raw.get("train", {}), "epochs": epochs}}
            if strategy is not None:
                raw = {**raw, "distribute": {**raw.get("distribute", {}), "strategy": strategy}}
            runs.append((config_from_dict(raw), point_dir, False))
    if other_lengths:
        raise ConfigError(
            f"--epochs {epochs} cannot reach the points of {run_dir} that finished already: "
            f"{', '.join(other_lengths)}; the summary would rank runs of different lengths "
            "together. Resume without --epochs, or start a new sweep with --epochs"
        )
    sweep.check_distribute([config for config, _, _ in runs if config is not None])
    return runs


def _planned_values(plan: dict[str, Any], key: str) -> list[str]:
    """The values of `key` (`section.field`) in a sweep plan's points, each once, in order."""
    section, field = key.split(".")
    values = [point["config"].get(section) for point in plan["points"]]
    return list(dict.fromkeys(str(v.get(field)) for v in values if isinstance(v, dict)))


def _planned_epochs(point_dir: pathlib.Path, point: dict[str, Any]) -> int:
    """The `train.epochs` a finished sweep point ran to: its config.yaml's, else the plan's."""
    saved = point_dir / runfiles.CONFIG_FILE
    if saved.is_file():
        return load_saved_config(saved, []).train.epochs
    return config_from_dict(point["config"]).train.epochs


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


def summarize_sweep(point_dirs: Iterable[pathlib.Path], metric: str) -> str:
    """A sweep's points ranked by `metric`, read from each point's metrics.json.

    Args:
      point_dirs: the points' folders, in grid order.
      metric: the key of metrics.json that ranks them, e.g. `validation_accuracy`.

    Returns:
      The table of `sweep.summary_table`; a point whose metrics.json is missing
      or unreadable shows `-`, unranked.
    """
    results = {}
    for point_dir in point_dirs:
        try:
            results[point_dir.name] = runfiles.read_json(point_dir / runfiles.METRICS_FILE)
        except (OSError, ValueError):
            results[point_dir.name] = None
    return sweep.summary_table(results, metric)


def write_summary(sweep_dir: pathlib.Path, table: str) -> pathlib.Path:
    """Writes `table` (see `summarize_sweep`) to `<sweep>/summary.txt`; returns its path.

    Raises:
      RunFilesError: the file could not be written.
    """
    path = sweep_dir / SUMMARY_FILE
    runfiles.write_text_atomic(path, table)
    return path
