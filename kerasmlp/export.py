"""`kerasmlp-export RUN DIR`: a trained run as a TensorFlow SavedModel for serving.

Thin: `kerasmlp.inference.load_run` loads the run and
`kerasmlp.inference.export_saved_model` writes the SavedModel. Its `serve` endpoint
takes the raw inputs the run's model takes (for your own CSV, a dict of (n, 1)
tensors named by column; strings stripped of surrounding spaces first, as a CSV's
are read) and returns class probabilities (or the regression value); load it with
`tf.saved_model.load(DIR)`, no kerasmlp needed. The `serving_default` signature
(what TensorFlow Serving calls) takes the same tensors keyed by the model's input
names (`kerasmlp.tabular.input_name`): a header that is not letters, digits, '_',
'.' and '-' after a letter has the others replaced by '_', and 'c_' in front of a
leading digit (`width (cm)` is `width__cm_`, `1st` is `c_1st`), and one '_' more on a
name an earlier column took (headers `a b` then `a_b` are `a_b` then `a_b_`).

TensorFlow's start-up log is held back as `kerasmlp-train` holds it back
(`kerasmlp.console`); `--verbose` shows it.

Exit status: 0 done; 1 the SavedModel or the closing line could not be written (a
read-only or full disk, stdout on a full device: one line naming where and why; the
folders made are removed, an empty EXPORT_DIR given is emptied again), as
`kerasmlp-train` exits 1; 2 a user's mistake (one line on stderr, nothing written);
130 or 143 Ctrl-C or SIGTERM while the SavedModel was written (removed as after a
failure, one line).
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import signal
import sys
from typing import NoReturn

import click

from kerasmlp import __version__
from kerasmlp.config import ConfigError
from kerasmlp.console import (
    FAILED,
    USAGE_ERROR,
    fail,
    plug_closed_streams,
    start_tensorflow,
)
from kerasmlp.runfiles import describe_os_error

# Exit status after Ctrl-C or SIGTERM (128 + the signal's number), as kerasmlp-train's.
INTERRUPTED = {"SIGINT": 130, "SIGTERM": 143}


class _Terminated(KeyboardInterrupt):
    """SIGTERM while the SavedModel is written: handled as Ctrl-C is (see `_terminating`)."""


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kerasmlp-export", message="%(prog)s %(version)s")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option(
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's own log (its C++ start-up lines, absl warnings), hidden by default.",
)
def main(run_dir, export_dir, verbose):
    """Export the trained run RUN_DIR as a SavedModel in EXPORT_DIR (new or empty)."""
    plug_closed_streams()
    target = pathlib.Path(export_dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        _fail(f"{export_dir} already holds files; give a new or empty folder")
    existing = next((p for p in target.absolute().parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        _fail(f"cannot make {export_dir}: {existing} is a file, not a folder")
    start_tensorflow(verbose=verbose)
    import tensorflow as tf

    from kerasmlp.errors import DataError
    from kerasmlp.inference import export_saved_model, load_run

    try:
        run = load_run(run_dir)
    except (ConfigError, DataError) as e:
        _fail(e)
    # The first folder this command makes (EXPORT_DIR or a missing parent); None when
    # EXPORT_DIR is an empty folder already, which is emptied again on a failure.
    made = next((p for p in [*reversed(target.absolute().parents), target] if not p.exists()), None)
    try:
        with _terminating():
            export_saved_model(run.probability_model(), target)
    except (OSError, tf.errors.OpError) as e:
        _remove_begun(target, made)
        _fail(f"cannot write {export_dir}: {getattr(e, 'message', None) or e}", FAILED)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM: as a failure, nothing half-written left
        begun = made.exists() if made is not None else any(target.iterdir())
        _remove_begun(target, made)
        if not begun:
            said = " before anything was written"
        elif made is not None:
            said = f"; removed {made} (the SavedModel was unfinished)"
        else:
            said = f"; emptied {export_dir} again (the SavedModel was unfinished)"
        name = "SIGTERM" if isinstance(e, _Terminated) else "SIGINT"
        click.echo(f"kerasmlp-export: interrupted{said}", err=True)
        sys.exit(INTERRUPTED[name])
    served = "values" if run.task == "regression" else "probabilities"
    try:
        click.echo(f"saved model: {target} (endpoint 'serve': raw inputs -> {served})")
    except OSError as e:  # the model is whole: it stays
        _fail(f"cannot write to <stdout>: {describe_os_error(e, None)}", FAILED)


@contextlib.contextmanager
def _terminating():
    """SIGTERM (a scheduler's stop, `kill`) raises `_Terminated` in the write, where it
    would end the process with the SavedModel half written; the handler before is
    restored after."""

    def terminate(signum, frame):
        raise _Terminated

    try:
        before = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: SIGTERM keeps its handler
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _remove_begun(target: pathlib.Path, made: pathlib.Path | None) -> None:
    """Nothing half-written left behind: the folders made, or what went into the
    empty folder given, so that the same command can be run again."""
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _fail(error: Exception | str, status: int = USAGE_ERROR) -> NoReturn:
    fail("kerasmlp-export", error, status)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="kerasmlp-export")
