"""`kerasmlp-train`: the command line. Parses options, loads the config, calls the library.

This module alone knows click, argv, environment variables and exit codes.
TensorFlow is imported only after the options are parsed, so `--help` is quick.
A user's mistake (bad config, missing file, bad `--set`, a run directory that
exists, data that cannot be had) ends with one line on stderr and status 2;
a bug still shows its traceback.

Exit status: 0 completed; 1 failed (a file could not be written, or another
worker of a multi-worker run was lost: one line; a bug: its traceback); 2 a
user's mistake; 3 diverged (NaN or infinity); 130
and 143 stopped by SIGINT or SIGTERM after saving a checkpoint (`--resume`
continues). A second SIGINT or SIGTERM ends the process at once.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import signal
import sys

import click
from click.core import ParameterSource

from kerasmlp import __version__, distribute, runfiles
from kerasmlp.config import ConfigError, config_from_dict, load_config, parse_yaml, shorten

FAILED = 1
USAGE_ERROR = 2
DIVERGED = 3
# 128 + the signal's number, as a shell reports a process the signal ended.
INTERRUPTED = {"SIGINT": 130, "SIGTERM": 143}
SWEEP_FILE = "sweep.yaml"


def _run_name(value: str | None, config_path: str | None) -> str:
    if value is None:
        # The process id keeps two runs started in the same second apart; the
        # time first keeps the folders in start order.
        stem = pathlib.Path(config_path).stem if config_path else "default"
        return f"{stem}-{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    if not value or "/" in value or "\\" in value or ".." in value or value.startswith("."):
        raise ConfigError(
            f"--run-name must be a plain folder name (no '/', '\\', '..' or leading '.'). "
            f"Received: --run-name={shorten(repr(value))}"
        )
    return value


def _check_run_dir(run_dir: pathlib.Path, logdir: str) -> None:
    """Refuses, before TensorFlow starts, a run folder that cannot be made or is taken.

    The library checks again (`train.check_run_dir`); this is the fast, early answer.
    """
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
    "E.g. --set model.hidden_units=[512,256]",
)
@click.option(
    "--logdir", default="logs", show_default=True, help="Parent folder of the run directories."
)
@click.option(
    "--run-name", default=None, help="Run folder name. Default: <config name>-<time>-<process id>."
)
@click.option("--epochs", type=int, default=None, help="Shortcut for --set train.epochs=N.")
@click.option("--seed", type=int, default=None, help="Shortcut for --set seed=N.")
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
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Continue the run (or sweep) in this folder from its last checkpoint, with its own "
    "config.yaml. Only --epochs (to extend or shorten the run) and --strategy may come with it.",
)
def main(config_path, overrides, logdir, run_name, epochs, seed, strategy, sweep_path, resume_dir):
    """Train a Dense network (MLP) from a YAML config and log the run to TensorBoard."""
    try:
        if resume_dir is not None:
            _refuse_options_with_resume(click.get_current_context())
            run_dir = pathlib.Path(resume_dir)
            runs = _plan_resume(run_dir, epochs, strategy)
            is_sweep = (run_dir / SWEEP_FILE).is_file()
            _check_tf_config(runs)
        else:
            overrides = list(overrides)
            if epochs is not None:
                overrides.append(f"train.epochs={epochs}")
            if seed is not None:
                overrides.append(f"seed={seed}")
            if strategy is not None:
                overrides.append(f"distribute.strategy={strategy}")
            config = load_config(config_path, overrides)
            run_dir = pathlib.Path(logdir) / _run_name(run_name, config_path or sweep_path)
            runs, is_sweep = [(config, run_dir, False)], sweep_path is not None
            if is_sweep:
                runs = _plan_sweep(run_dir, sweep_path, config_path, overrides)
            _check_tf_config(runs)
            for run_config, point_dir, _ in runs:
                # Only a multi-worker run's chief writes the run folder: the other
                # workers neither check nor make it (the chief may have made it already).
                if not _is_worker(run_config):
                    _check_run_dir(point_dir, logdir)
            if is_sweep:
                _write_sweep_plan(run_dir, runs)
    except (ConfigError, runfiles.ResumeError, runfiles.RunDirectoryExistsError) as e:
        _fail(e)
    except runfiles.RunFilesError as e:
        _fail(e, status=FAILED)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kerasmlp.controller import StopRequest
    from kerasmlp.data import DataError
    from kerasmlp.train import (
        LineReporter,
        RunDiverged,
        RunInterrupted,
        WorkerLost,
        train_and_evaluate,
    )

    stop_request = StopRequest()
    _handle_stop_signals(stop_request)
    for config, point_dir, resume in runs:
        if is_sweep:
            click.echo(f"sweep run {point_dir.name}")
            if config is None:
                click.echo("completed already")
                continue
        reporter = _BarReporter() if sys.stdout.isatty() else LineReporter()
        try:
            results = train_and_evaluate(
                config, point_dir, reporter=reporter, resume=resume, stop_request=stop_request
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
            _fail(e, status=DIVERGED)
        except (
            ConfigError,
            DataError,
            runfiles.RunDirectoryExistsError,
            runfiles.ResumeError,
        ) as e:
            _close(reporter)
            _fail(e)
        except (runfiles.RunFilesError, WorkerLost) as e:
            _close(reporter)
            _fail(e, status=FAILED)
        tests = " | ".join(
            f"{k.removeprefix('test_')} {v:.4f}"
            for k, v in results.items()
            if k.startswith("test_")
        )
        click.echo(f"test       | {tests}")
        click.echo(f"run directory: {point_dir}")
    # A sweep's runs sit together: its folder is the log directory that compares them.
    click.echo(f"see it with:   tensorboard --logdir {run_dir if is_sweep else run_dir.parent}")


def _check_tf_config(runs) -> None:
    """Refuses, before TensorFlow starts (it reads TF_CONFIG too), a TF_CONFIG that
    does not parse, and `multi_worker` without one."""
    for config, _, _ in runs:
        if config is not None:
            distribute.role_from_environment(config.distribute, os.environ)


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
            "--resume continues a run with its own config.yaml; only --epochs and --strategy "
            "may come with it. "
            f"Received also: {', '.join(given)}"
        )


_PARAMETERS = {"config": "config_path", "set": "overrides", "sweep": "sweep_path"}


def _plan_resume(run_dir: pathlib.Path, epochs: int | None, strategy: str | None = None) -> list:
    """`(config, run_dir, resume)` for a run, or for each point of a sweep folder.

    A sweep's points that are completed come back with config None; those with a
    folder are resumed, the others start. `strategy` (from `--strategy`) replaces
    the run's own; a multi-worker run's workers other than the chief do not
    check the run's state: the chief, maybe resumed already, owns it.
    """
    extra = [f"train.epochs={epochs}"] if epochs is not None else []
    if strategy is not None:
        extra.append(f"distribute.strategy={strategy}")
    sweep_file = run_dir / SWEEP_FILE
    if not sweep_file.is_file():
        if not (run_dir / runfiles.CONFIG_FILE).is_file():
            runfiles.check_resumable(run_dir)  # says why in one line
        config = load_config(run_dir / runfiles.CONFIG_FILE, extra)
        if not _is_worker(config):
            runfiles.check_resumable(run_dir)
        return [(config, run_dir, True)]
    plan = parse_yaml(sweep_file.read_text(encoding="utf-8"), source=str(sweep_file))
    runs = []
    for point in plan["points"]:
        point_dir = run_dir / point["name"]
        status = runfiles.read_status(point_dir) or {}
        if status.get("state") == "completed":
            runs.append((None, point_dir, False))
        elif (point_dir / runfiles.CONFIG_FILE).is_file():
            runfiles.check_resumable(point_dir)
            runs.append((load_config(point_dir / runfiles.CONFIG_FILE, extra), point_dir, True))
        else:
            raw = point["config"]
            if epochs is not None:
                raw = {**raw, "train": {**raw.get("train", {}), "epochs": epochs}}
            runs.append((config_from_dict(raw), point_dir, False))
    return runs


def _plan_sweep(run_dir, sweep_path, config_path, overrides) -> list:
    """`(config, run_dir, resume)` for every point of the grid, each config checked."""
    from kerasmlp import sweep

    grid = sweep.load_grid(sweep_path)
    return [
        (point.config, run_dir / point.name, False)
        for point in sweep.plan_sweep(grid, config_path, overrides)
    ]


def _write_sweep_plan(sweep_dir: pathlib.Path, runs: list) -> None:
    """`<sweep>/sweep.yaml`: every point's name and config, so `--resume` can finish the sweep."""
    import yaml

    runfiles.prepare_run_dir(sweep_dir)
    plan = {"points": [{"name": d.name, "config": c.to_dict()} for c, d, _ in runs]}
    runfiles.write_text_atomic(sweep_dir / SWEEP_FILE, yaml.safe_dump(plan, sort_keys=False))


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
    if isinstance(reporter, _BarReporter):
        reporter.close()  # end the bar's line before the message


def _fail(error: Exception, status: int = USAGE_ERROR) -> None:
    message = " ".join(str(error).split())
    try:
        click.echo(f"kerasmlp-train: error: {message}", err=True)
    finally:
        if status == FAILED:
            _silence_stdout()
    sys.exit(status)


def _silence_stdout() -> None:
    """After stdout failed (a full device), point it at /dev/null so exiting does not fail too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _BarReporter:
    """A click progress bar: epoch, step, loss, metrics and ETA, redrawn in place."""

    def __init__(self, file=None):
        self._file = file  # None: stdout
        self._bar = None
        self._steps_done = 0
        self._epochs = 0
        self._last_epoch: dict[str, float] = {}

    def start(self, *, epochs, steps_per_epoch, initial_step=0):
        self._epochs = epochs
        self._steps_done = initial_step
        self._bar = click.progressbar(
            length=epochs * steps_per_epoch,
            show_eta=True,
            show_pos=True,
            width=24,
            item_show_func=lambda item: item,
            file=self._file,
        )
        self._bar.__enter__()
        if initial_step:
            self._bar.update(initial_step)

    def _show(self, step, epoch, logs):
        shown = {"loss": logs.get("loss", 0.0), **self._last_epoch}
        text = f"epoch {epoch}/{self._epochs} " + " ".join(f"{k} {v:.4f}" for k, v in shown.items())
        self._bar.update(step - self._steps_done, current_item=text)
        self._steps_done = step

    def train_progress(self, *, step, epoch, logs):
        self._show(step, epoch, logs)

    def epoch_end(self, *, step, epoch, logs):
        self._last_epoch = {k: v for k, v in logs.items() if k.startswith("validation_")}
        self._show(step, epoch, {"loss": logs.get("train_loss", 0.0)})

    def end(self, results):
        self.close()

    def message(self, text):
        click.echo(f"\n{text}", file=self._file)

    def close(self):
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="kerasmlp-train")
