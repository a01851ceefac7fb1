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
import sys

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
    """A click progress bar: epoch, step, loss, metrics and ETA, redrawn in place."""

    def __init__(self, file=None):
        self._file = file  # None: stdout
        self._bar = None
        self._steps_done = 0
        self._epochs = 0
        self._last_epoch: dict[str, float] = {}

    def start(self, *, epochs, steps_per_epoch):
        self._epochs = epochs
        self._bar = click.progressbar(
            length=epochs * steps_per_epoch,
            show_eta=True,
            show_pos=True,
            width=24,
            item_show_func=lambda item: item,
            file=self._file,
        )
        self._bar.__enter__()

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

    def close(self):
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


if __name__ == "__main__":  # pragma: no cover
    main()
