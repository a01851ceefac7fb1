"""`kerasmlp-train`: the command line. Parses options, loads the config, calls the library.

This module alone knows click, argv, environment variables and exit codes.
TensorFlow is imported only after the options are parsed, so `--help` is quick.
A user's mistake (bad config, missing file, bad `--set`, a run directory that
exists, data that cannot be had) ends with one line on stderr and status 2;
a bug still shows its traceback.

Exit status: 0 completed; 1 failed (a file could not be written, or another
worker of a multi-worker run was lost: one line; a bug: its traceback); 2 a
user's mistake; 3 diverged (NaN or infinity; a sweep runs its other points first); 130
and 143 stopped by SIGINT or SIGTERM after saving a checkpoint (`--resume`
continues). A second SIGINT or SIGTERM ends the process at once.
"""

from __future__ import annotations

import datetime
import errno
import functools
import os
import pathlib
import signal
import sys
from typing import NoReturn

import click
from click.core import ParameterSource

from kerasmlp import __version__, distribute, plans, runfiles, sweep
from kerasmlp.config import (
    ConfigError,
    apply_override,
    load_config,
    shorten,
)
from kerasmlp.console import (
    FAILED,
    USAGE_ERROR,
    fail,
    plug_closed_streams,
    start_tensorflow,
)
from kerasmlp.reporters import BarReporter, LineReporter

DIVERGED = 3
# 128 + the signal's number, as a shell reports a process the signal ended.
INTERRUPTED = {"SIGINT": 130, "SIGTERM": 143}


def _run_name(value: str | None, config_path: str | None) -> str:
    if value is None:
        # The process id keeps two runs started in the same second apart; the
        # time first keeps the folders in start order.
        stem = pathlib.Path(config_path).stem if config_path else "default"
        return f"{stem}-{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    # A control character (a CRLF file's '\r') or a space at an end makes a folder that
    # lists like another name, which `--resume` given that name then does not find.
    if (
        not value
        or "/" in value
        or "\\" in value
        or ".." in value
        or value.startswith(".")
        or value != value.strip()
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
    ):
        raise ConfigError(
            f"--run-name must be a plain folder name (no '/', '\\', '..', leading '.', "
            f"control characters or spaces at either end). "
            f"Received: --run-name={shorten(repr(value))}"
        )
    return value


def _command_line_options(overrides, *, epochs, seed, strategy) -> list[tuple[str, str]]:
    """Each `key=value` of the command line with the option that gave it, for a sweep's
    messages: the `--set` items, then the shortcuts given (`('--epochs 3', 'train.epochs=3')`).

    Raises:
      ConfigError: a shortcut and a `--set` give its key two values (see `_check_shortcut`).
    """
    options = [(f"--set {item}", item) for item in overrides]
    for option, key, value in (
        ("--epochs", "train.epochs", epochs),
        ("--seed", "seed", seed),
        ("--strategy", "distribute.strategy", strategy),
    ):
        if value is not None:
            _check_shortcut(option, key, value, overrides)
            options.append((f"{option} {value}", f"{key}={value}"))
    return options


def _check_shortcut(option: str, key: str, value, overrides) -> None:
    """Refuses a shortcut (`--epochs 1`) and a `--set` that give its key another value.

    One of the two was a mistake, and which one the user meant is not known: the
    shortcut, applied last, replaced the `--set` unseen. The same value is no conflict.
    """
    for item in reversed(overrides):  # the last `--set` of the key is the one that counts
        raw: dict = {}
        apply_override(raw, item)
        node = raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            if node != value:
                raise ConfigError(
                    f"{option} {value} and --set {shorten(item)} give {key} two values; "
                    "keep one of them"
                )
            return


def _check_run_dir(run_dir: pathlib.Path, logdir: str) -> None:
    """Refuses, before TensorFlow starts, a run folder that cannot be made or is taken.

    The library checks again (`train.check_run_dir`); this is the fast, early answer.
    """
    try:
        str(run_dir).encode("utf-8")
    except UnicodeEncodeError:
        # A byte that is no UTF-8 (a Latin-1 folder name): TensorFlow's file functions take
        # UTF-8 paths only, and the run failed with a traceback once its folder was made.
        raise ConfigError(
            "--logdir and --run-name must be UTF-8 text: TensorFlow takes UTF-8 paths only. "
            f"Received: {shorten(repr(os.fsencode(run_dir)))}"
        ) from None
    existing = pathlib.Path(logdir)
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--logdir {logdir}: {existing} is not a folder")
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    folder = pathlib.Path(logdir)
    for name in run_dir.relative_to(logdir).parts:  # the run, and a sweep's point below it
        folder = folder / name
        if len(os.fsencode(name)) > name_max:
            raise ConfigError(
                f"Run folder name is {len(os.fsencode(name))} bytes; the file system allows "
                f"{name_max}. Received: {shorten(name)}"
            )
        if folder.is_symlink() and not folder.exists():
            raise ConfigError(f"Run directory {folder} is a link to nothing; remove it or rename")
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"Run directory {folder} is a file, not a folder")
    runfiles.check_run_dir(run_dir)  # taken: says whether it holds a kerasmlp run, and which


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kerasmlp-train", message="%(prog)s %(version)s")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config (see configs/). Default: the built-in defaults, as in configs/default.yaml.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config key, value read as YAML; repeatable. "
    "E.g. --set 'model.hidden_units=[512,256]'",
)
@click.option(
    "--logdir",
    default="logs",
    show_default=True,
    metavar="DIR",
    help="Parent folder of the run directories.",
)
@click.option(
    "--run-name",
    default=None,
    metavar="NAME",
    help="Run folder name. Default: <config or sweep file name>-<date>-<time>-<process id>.",
)
@click.option(
    "--epochs", type=int, default=None, metavar="N", help="Shortcut for --set train.epochs=N."
)
@click.option("--seed", type=int, default=None, metavar="N", help="Shortcut for --set seed=N.")
@click.option(
    "--strategy",
    default=None,
    metavar="NAME",
    help="Shortcut for --set distribute.strategy=NAME: auto, one_device, mirrored or "
    "multi_worker (reads TF_CONFIG).",
)
@click.option(
    "--sweep",
    "sweep_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML grid {dotted.key: [value, ...]}: one run per point, each named after its "
    "point, under <logdir>/<run-name>/; compare them in TensorBoard's HParams tab.",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's own log (its C++ start-up lines, absl warnings), hidden by default.",
)
@click.option(
    "--sweep-metric",
    default=None,
    metavar="NAME",
    help="Rank a sweep's points by this value of their metrics.json at its end (table "
    "printed and written to <sweep>/summary.txt). Default: the first metric on the "
    "validation split, e.g. validation_accuracy (test_ without a validation split).",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="Continue the run (or sweep) in this folder from its last checkpoint, with its own "
    "config.yaml. Only --epochs (to extend or shorten the run), --strategy, --verbose and "
    "(for a sweep) --sweep-metric may come with it.",
)
def main(
    config_path,
    overrides,
    logdir,
    run_name,
    epochs,
    seed,
    strategy,
    sweep_path,
    sweep_metric,
    verbose,
    resume_dir,
):
    """Train a Dense network (MLP) from a YAML config and log the run to TensorBoard."""
    plug_closed_streams()
    swept_keys, metric, columns = [], None, []
    try:
        if resume_dir is not None:
            _refuse_options_with_resume(click.get_current_context())
            run_dir = pathlib.Path(resume_dir)
            runs = plans.plan_resume(run_dir, epochs, strategy, is_worker=_is_worker)
            is_sweep = (run_dir / runfiles.SWEEP_FILE).is_file()
            _check_tf_config(runs)
            if is_sweep:
                swept_keys, metric, columns = plans.sweep_plan_settings(run_dir, sweep_metric)
        else:
            options = _command_line_options(overrides, epochs=epochs, seed=seed, strategy=strategy)
            overrides = [item for _, item in options]
            run_dir = pathlib.Path(logdir) / _run_name(run_name, config_path or sweep_path)
            is_sweep = sweep_path is not None
            if is_sweep:
                # Each point is checked, not the base config alone: `--set
                # optimizer.momentum=0.9` is refused under the default adam, which a
                # grid `optimizer.name: [sgd, rmsprop]` replaces in every point.
                runs, swept_keys = plans.plan_sweep_runs(run_dir, sweep_path, config_path, options)
                metric = sweep.check_sweep_metric(sweep_metric, [c for c, _, _ in runs])
                columns = sweep.hparams_metrics([c for c, _, _ in runs])
            else:
                runs = [(load_config(config_path, overrides), run_dir, False)]
            _check_tf_config(runs)
            for run_config, point_dir, _ in runs:
                # Only a multi-worker run's chief writes the run folder: the other
                # workers neither check nor make it (the chief may have made it already).
                if not _is_worker(run_config):
                    _check_run_dir(point_dir, logdir)
            if is_sweep and not _is_worker(runs[0][0]):
                plans.write_sweep_plan(run_dir, runs, swept_keys=swept_keys, metric=metric)
        if sweep_metric is not None and not is_sweep:
            _refuse_sweep_metric_of_one_run(sweep_metric, resume_dir)
    except (ConfigError, runfiles.ResumeError, runfiles.RunDirectoryExistsError) as e:
        _fail(e)
    except runfiles.RunFilesError as e:
        _fail(e, status=FAILED)

    try:  # Until the handlers below are in place, Ctrl-C stops the command at once.
        start_tensorflow(verbose=verbose)
        from kerasmlp.controller import StopRequest
        from kerasmlp.data import DataError
        from kerasmlp.train import RunDiverged, RunInterrupted, WorkerLost, train_and_evaluate

        stop_request = StopRequest()
        _handle_stop_signals(stop_request)
    except KeyboardInterrupt:
        click.echo("interrupted while TensorFlow started, before training", err=True)
        sys.exit(INTERRUPTED["SIGINT"])

    diverged = []  # a sweep's points that diverged: the sweep goes on, then exits with 3
    # Every point before this one is finished: completed or diverged (any other end stops here).
    for finished, (config, point_dir, resume) in enumerate(runs):
        if is_sweep:
            click.echo(f"sweep run {point_dir.name}")
            if config is None:
                state = (runfiles.read_status(point_dir) or {}).get("state")
                click.echo(f"{state} already")
                if state == "diverged":
                    diverged.append(point_dir.name)
                continue
            if stop_request and config.distribute.strategy != "multi_worker":
                # Asked during the last point's test or save, which completed it: the
                # next point is not begun (it stopped at step 0, in a folder of its own).
                # Workers of a cluster stop together, inside their compiled call.
                click.echo(
                    f"interrupted before it began; continue with: kerasmlp-train --resume {run_dir}"
                )
                sys.exit(INTERRUPTED.get(stop_request.signal_name, 130))
        # The error of a sweep's point names the point and says what is kept.
        failed = functools.partial(
            _point_failed,
            is_sweep=is_sweep,
            config=config,
            point_dir=point_dir,
            keys=swept_keys,
            finished=finished,
            total=len(runs),
        )
        reporter = BarReporter() if sys.stdout.isatty() else LineReporter()
        try:
            results = train_and_evaluate(
                config,
                point_dir,
                reporter=reporter,
                resume=resume,
                stop_request=stop_request,
                hparams_first=swept_keys,
                hparams_metrics=columns,
            )
        except RunInterrupted as e:
            _close(reporter)
            where = run_dir if is_sweep else point_dir
            click.echo(
                f"interrupted at step {e.step} (epoch {e.epoch}); continue with: "
                f"kerasmlp-train --resume {where}"
            )
            sys.exit(INTERRUPTED.get(e.signal_name, 130))
        except RunDiverged as e:
            _close(reporter)
            if not is_sweep:
                _fail(e, status=DIVERGED)
            # One point's rate was too high: the other points still tell which one is not.
            label = _point_label(config, point_dir, swept_keys)
            click.echo(f"kerasmlp-train: error: {label}: {e}", err=True)
            diverged.append(point_dir.name)
            continue
        except (
            ConfigError,
            DataError,
            runfiles.RunDirectoryExistsError,
            runfiles.ResumeError,
        ) as e:
            _close(reporter)
            _fail(failed(e))
        except WorkerLost as e:
            _close(reporter)
            if is_sweep:  # the sweep's folder resumes the point, then the points left
                label = _point_label(config, point_dir, swept_keys)
                _fail(e.advice(run_dir, f" in {label}"), status=FAILED)
            _fail(e, status=FAILED)
        except runfiles.RunFilesError as e:
            _close(reporter)
            _fail(failed(e), status=FAILED)
        except OSError as e:
            if e.errno not in _ENVIRONMENT_ERRORS:
                raise  # a bug: its traceback
            _close(reporter)
            _fail(failed(_environment_error(e)), status=FAILED)
        tests = " | ".join(
            f"{k.removeprefix('test_')} {v:.4f}"
            for k, v in results.items()
            if k.startswith("test_")
        )
        click.echo(f"test       | {tests}")
        click.echo(f"run directory: {point_dir}")
    # The chief ranks the points; the other workers of a multi-worker sweep wrote
    # nothing (and the chief may not have written the last metrics.json yet).
    if is_sweep and not any(_is_worker(config) for config, _, _ in runs):
        try:
            _summarize_sweep(run_dir, [point_dir for _, point_dir, _ in runs], metric)
        except runfiles.RunFilesError as e:
            _fail(e, status=FAILED)
    # A sweep's runs sit together: its folder is the log directory that compares them.
    click.echo(f"see it with:   tensorboard --logdir {run_dir if is_sweep else run_dir.parent}")
    if diverged:
        _fail(
            f"{len(diverged)} of {len(runs)} sweep runs diverged (ranked last): "
            f"{', '.join(diverged)}",
            status=DIVERGED,
        )


def _point_failed(error, *, is_sweep, config, point_dir, keys, finished, total):
    """The line for an error that ends a run; in a sweep, it names the point (folder and
    grid values) and says what is kept and how to go on: a 30-point sweep said only why."""
    if not is_sweep:
        return error
    left = total - finished
    return (
        f"{_point_label(config, point_dir, keys)} failed: {str(error).rstrip('.')}. The sweep "
        f"stopped there; its finished points ({finished} of {total}) are kept in "
        f"{point_dir.parent}: kerasmlp-train --resume {point_dir.parent} runs the {left} "
        "left, this one first, with the same config"
    )


def _point_label(config, point_dir: pathlib.Path, keys: list[str]) -> str:
    """`sweep run 03-activation=tanh,... (model.activation=tanh, ...)`: a long point's
    name leaves values out (`sweep.MAX_NAME`), its grid values here do not."""
    values = f" ({sweep.describe_point(config, keys)})" if keys else ""
    return f"sweep run {point_dir.name}{values}"


def _check_tf_config(runs) -> None:
    """Refuses, before TensorFlow starts (it reads TF_CONFIG too), a TF_CONFIG that
    does not parse, and `multi_worker` without one; under `multi_worker`, resolves
    its host names (a line for each that does not resolve)."""
    for config, _, _ in runs:
        if config is not None:
            distribute.role_from_environment(config.distribute, os.environ)
    if any(c is not None and c.distribute.strategy == "multi_worker" for c, _, _ in runs):
        for line in distribute.check_cluster_hosts(os.environ["TF_CONFIG"]):
            click.echo(line)


def _is_chief(environ) -> bool:
    """False for a worker of a multi-worker cluster other than the chief (TF_CONFIG says)."""
    try:
        return distribute.parse_tf_config(environ.get("TF_CONFIG")).is_chief
    except ConfigError:
        return True  # no cluster (or a bad TF_CONFIG, refused once the strategy is known)


def _is_worker(config) -> bool:
    """True for a multi-worker run's worker that is not the chief: it writes no run folder."""
    if config is None or config.distribute.strategy != "multi_worker":
        return False
    return not _is_chief(os.environ)


def _refuse_options_with_resume(ctx: click.Context) -> None:
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("config", "set", "logdir", "run_name", "seed", "sweep")
        if ctx.get_parameter_source(_PARAMETERS.get(name, name)) is not ParameterSource.DEFAULT
    ]
    if given:
        raise ConfigError(
            "--resume continues a run with its own config.yaml; only --epochs, --strategy, "
            "--verbose and (for a sweep) --sweep-metric may come with it. "
            f"Received also: {', '.join(given)}"
        )


_PARAMETERS = {"config": "config_path", "set": "overrides", "sweep": "sweep_path"}


def _refuse_sweep_metric_of_one_run(sweep_metric: str, resume_dir: str | None) -> NoReturn:
    """Refuses `--sweep-metric` for one run: there are no points to rank."""
    # --sweep cannot come with --resume: there, only the folder can be a sweep.
    fix = (
        f"--resume {resume_dir} is one run, not a sweep's folder: drop it"
        if resume_dir is not None
        else "this is one run. Give --sweep or drop it"
    )
    raise ConfigError(
        f"--sweep-metric ranks the points of a sweep; {fix}. "
        f"Received: --sweep-metric={shorten(sweep_metric)}"
    )


def _summarize_sweep(sweep_dir: pathlib.Path, point_dirs: list, metric: str) -> None:
    """Prints the points ranked by `metric` and writes the table to `<sweep>/summary.txt`."""
    table = plans.summarize_sweep(point_dirs, metric)
    click.echo(table, nl=False)
    click.echo(f"summary:       {plans.write_summary(sweep_dir, table)}")


def _handle_stop_signals(stop_request) -> None:
    """SIGINT and SIGTERM ask the loop to stop after its current call and save a checkpoint."""

    def handler(signum, frame):
        stop_request.request(signal.Signals(signum).name)
        # A second one ends the process at once (the default action), without saving.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _close(reporter) -> None:
    if isinstance(reporter, BarReporter):
        reporter.close()  # end the bar's line before the message


def _fail(error: Exception | str, status: int = USAGE_ERROR) -> NoReturn:
    fail("kerasmlp-train", error, status)


# Errors of the machine, not of kerasmlp: a full disk, a read-only folder, a closed pipe.
_ENVIRONMENT_ERRORS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EPIPE,
    errno.EIO,
    errno.ENAMETOOLONG,
}


def _environment_error(error: OSError) -> str:
    """One line naming what could not be written: a file, or standard output.

    An error without a file name came from a stream: our output is on stdout.
    """
    if error.filename is None:
        return f"cannot write to <stdout>: {runfiles.describe_os_error(error, None)}"
    return f"cannot write {runfiles.describe_os_error(error)}"


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="kerasmlp-train")
