"""`kerasmlp-train`: the command line. Parses options, loads the config, calls the library.

This module alone knows click, argv, environment variables and exit codes.
TensorFlow is imported only after the options are parsed, so `--help` is quick.
A user's mistake (bad config, missing file, bad `--set`, a run directory that
exists, data that cannot be had) ends with one line on stderr and status 2;
a bug still shows its traceback.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import shutil
import sys
import time

import click

from kerasmlp.config import ConfigError, load_config

USAGE_ERROR = 2


def _run_name(value: str | None, config_path: str | None) -> str:
    if value is None:
        stem = pathlib.Path(config_path).stem if config_path else "default"
        return f"{stem}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    if not value or "/" in value or "\\" in value or ".." in value or value.startswith("."):
        raise ConfigError(
            f"--run-name must be a plain folder name (no '/', '\\', '..' or leading '.'). "
            f"Received: --run-name={value!r}"
        )
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--run-name", default=None, help="Run folder name. Default: <config name>-<time>.")
@click.option("--epochs", type=int, default=None, help="Shortcut for --set train.epochs=N.")
@click.option("--seed", type=int, default=None, help="Shortcut for --set seed=N.")
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
def main(config_path, overrides, logdir, run_name, epochs, seed, sweep_path, verbose):
    """Train a Dense network (MLP) from a YAML config and log the run to TensorBoard."""
    overrides = list(overrides)
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    try:
        config = load_config(config_path, overrides)
        run_dir = pathlib.Path(logdir) / _run_name(run_name, config_path or sweep_path)
        runs = [(config, run_dir)]
        if sweep_path is not None:
            from kerasmlp import sweep

            grid = sweep.load_grid(sweep_path)
            runs = [
                (point.config, run_dir / point.name)
                for point in sweep.plan_sweep(grid, config_path, overrides)
            ]
    except ConfigError as e:
        _fail(e)

    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # What TensorFlow logs once running.
        from kerasmlp.console import import_tensorflow_quietly

        import_tensorflow_quietly()
    from kerasmlp.data import DataError
    from kerasmlp.train import LineReporter, RunDirectoryExistsError, train_and_evaluate

    for config, point_dir in runs:
        if sweep_path is not None:
            click.echo(f"sweep run {point_dir.name}")
        reporter = _BarReporter() if sys.stdout.isatty() else LineReporter()
        try:
            results = train_and_evaluate(config, point_dir, reporter=reporter)
        except (ConfigError, DataError, RunDirectoryExistsError) as e:
            if isinstance(reporter, _BarReporter):
                reporter.close()  # end the bar's line before the message
            _fail(e)
        tests = " | ".join(
            f"{k.removeprefix('test_')} {v:.4f}"
            for k, v in results.items()
            if k.startswith("test_")
        )
        click.echo(f"test       | {tests}")
        click.echo(f"run directory: {point_dir}")
    # A sweep's runs sit together: its folder is the log directory that compares them.
    click.echo(f"see it with:   tensorboard --logdir {run_dir if sweep_path else logdir}")


def _fail(error: Exception) -> None:
    click.echo(f"kerasmlp-train: error: {error}", err=True)
    sys.exit(USAGE_ERROR)


class _BarReporter:
    """On a terminal, as Keras's progress bar: one line per finished epoch, a bar below.

    The bar (epoch, steps done in it, the current training loss, time left for
    the run) is redrawn in place; at each epoch's end it gives way to a line
    that stays: ``epoch 3/40 | loss 0.1234 | accuracy 0.9500 | validation_loss
    0.1432 | validation_accuracy 0.9450``, the figures of that epoch.
    """

    _WIDTH = 20  # characters of the bar itself

    def __init__(self, file=None):
        self._file = file  # None: stdout at the time of writing
        self._epochs = self._steps_per_epoch = self._first_step = 0
        self._started = 0.0
        self._drawn = False  # a bar is on the current line

    def start(self, *, epochs, steps_per_epoch, initial_step=0):
        self._epochs, self._steps_per_epoch = epochs, steps_per_epoch
        self._first_step, self._started = initial_step, time.monotonic()

    def train_progress(self, *, step, epoch, logs):
        in_epoch = min(max(step - (epoch - 1) * self._steps_per_epoch, 0), self._steps_per_epoch)
        filled = self._WIDTH * in_epoch // max(self._steps_per_epoch, 1)
        parts = [
            f"epoch {epoch}/{self._epochs} [{'#' * filled}{'-' * (self._WIDTH - filled)}] "
            f"{in_epoch}/{self._steps_per_epoch}",
            *(f"{k} {v:.4f}" for k, v in logs.items() if k not in ("lr", "learning_rate")),
        ]
        done = step - self._first_step
        if done > 0:
            left = (self._epochs * self._steps_per_epoch - step) * (
                (time.monotonic() - self._started) / done
            )
            parts.append(f"ETA {datetime.timedelta(seconds=round(left))}")
        line = " | ".join(parts)[: shutil.get_terminal_size().columns - 1]
        self._write(f"\r{line}\x1b[K")  # back to the line's start, then clear what was left
        self._drawn = True

    def epoch_end(self, *, step, epoch, logs):
        shown = {k.removeprefix("train_"): v for k, v in logs.items()}
        line = " | ".join(
            [f"epoch {epoch}/{self._epochs}", *(f"{k} {v:.4f}" for k, v in shown.items())]
        )
        self._write(f"\r{line}\x1b[K\n")
        self._drawn = False

    def end(self, results):
        self.close()

    def close(self):
        """Ends a bar's line, so that what is written next starts on its own line."""
        if self._drawn:
            self._write("\n")
            self._drawn = False

    def _write(self, text):
        file = self._file or sys.stdout
        file.write(text)
        file.flush()


if __name__ == "__main__":  # pragma: no cover
    main()
