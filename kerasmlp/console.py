"""What the command lines leave on the console: TensorFlow's start-up log held back.

TensorFlow 2.21 logs from C++ before absl's logging is initialised (``WARNING:
All log messages before absl::InitializeLog() ...``, ``cudart_stub.cc] Could not
find cuda drivers``, ``cpu_feature_guard.cc] This TensorFlow binary is
optimized ...``), from static initialisers that run while ``import tensorflow``
loads its shared libraries: `TF_CPP_MIN_LOG_LEVEL` is not read yet. Looking for
devices then logs ``failed call to cuInit`` on a machine without a GPU driver.
No environment variable silences these (3 hides only the cuInit line, and real
errors with it), so `import_tensorflow_quietly` sends file descriptor 2 to a
temporary file for those two steps only, and shows what it held back when they
fail. Everything logged afterwards reaches stderr as usual, but for
tf.function's retracing warning about kerasmlp's own functions
(`quiet_own_retracing_warnings`).

`start_tensorflow` also keeps Python's cyclic garbage collector out of the
objects those imports make (`collector_paused`): a command then starts and ends
1.5-3 s sooner.

This module imports no TensorFlow itself, so the CLIs (`kerasmlp-train`,
`kerasmlp-predict`, `kerasmlp-export`) import it before deciding whether to be
quiet, and call `start_tensorflow` before their first TensorFlow import.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import NoReturn

import click


def plug_closed_streams() -> None:
    """Opens os.devnull on stdout's or stderr's file descriptor where it is closed (`cmd >&-`).

    Python leaves `sys.stdout` None then (a command ended in an AttributeError's
    traceback), and the next file opened would take descriptor 1, where `print`
    and C++ code write. The output is dropped instead, as `print` drops it.
    """
    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_WRONLY)  # the lowest free descriptor
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "w", encoding="utf-8", closefd=False))


# Exit status of the three commands, for what stops them (also DIVERGED = 3, 130, 143
# for kerasmlp-train): a file or stream that cannot be written, and a user's mistake.
FAILED = 1
USAGE_ERROR = 2


def fail(program: str, error: Exception | str, status: int = USAGE_ERROR) -> NoReturn:
    """Ends the command with one line, `<program>: error: <message>`, on stderr.

    After a write failure (`FAILED`), stdout may be a full device: it is pointed
    at /dev/null first, so Python's flush at exit adds no traceback of its own.
    """
    message = " ".join(str(error).split())
    try:
        click.echo(f"{program}: error: {message}", err=True)
    finally:
        if status == FAILED:
            silence_stdout()
    sys.exit(status)


def silence_stdout() -> None:
    """After stdout failed (a full device), point it at /dev/null so exiting does not fail too.

    Python flushes stdout's buffer again at exit: on a full device that printed
    "Exception ignored ... OSError" and changed the exit status to 120.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@contextlib.contextmanager
def held_back_stderr() -> Iterator[None]:
    """Sends file descriptor 2 (C++ and Python alike) to a temporary file during the block.

    What was written is dropped when the block succeeds or is interrupted (Ctrl-C),
    and written to the real stderr, before the exception travels on, when it fails.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        except KeyboardInterrupt:
            failed = False  # the user stopped it: the start-up log tells them nothing
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                held.seek(0)
                sys.stderr.flush()
                os.write(2, held.read())


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and TFDS and finds the devices, with their start-up log held back.

    Also quiets absl's Python logging (TFDS's ``WARNING:absl:Variant folder ...
    has no dataset_info.json`` and the like) to errors only.
    """
    with held_back_stderr():
        import tensorflow as tf
        import tensorflow_datasets  # noqa: F401

        # The CUDA platform is initialised (and cuInit fails without a driver)
        # the first time devices are listed; do it here rather than at the first op.
        tf.config.list_physical_devices()
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)


# What tf.function logs when 5 of a function's last 10 calls traced it.
_RETRACING_WARNING = "triggered tf.function retracing"


class _OwnRetracingWarnings(logging.Filter):
    """Drops tf.function's retracing warning when the function is a kerasmlp object's method."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return not (_RETRACING_WARNING in message and " of <kerasmlp." in message)


def quiet_own_retracing_warnings() -> None:
    """Keeps tf.function's "Tracing is expensive" warning about kerasmlp's loops off stderr.

    TensorFlow counts traces per Python function across all its instances. Each
    run (each point of a sweep) builds its own `Trainer` and `ModelProbe`, whose
    functions trace once or twice for that run (validation and test differ in
    length), so from a sweep's third point TensorFlow warns, twice, that the
    evaluation loop retraced too often and should be defined outside the loop.
    Those traces are each new run's first, so the advice does not apply; the
    warning about any other function still shows, and `--verbose` shows all.
    """
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _OwnRetracingWarnings) for f in logger.filters):
        logger.addFilter(_OwnRetracingWarnings())


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pauses Python's cyclic garbage collector for the block, then freezes what it made.

    Importing TensorFlow, Keras and TFDS makes about 730,000 objects that live as
    long as the process, and only a few thousand of them are garbage. Each full
    collection walks them all (0.4 s on a 2-core machine): several ran during the
    imports, and more at exit. Frozen (`gc.freeze`), they are left out of every
    later collection. Measured on one machine, side by side: a process that only
    imports TensorFlow took 6.1-6.8 s with the collector as it is, and 4.8-5.0 s so.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


def start_tensorflow(*, verbose: bool = False) -> None:
    """What a CLI calls before it imports TensorFlow: TensorFlow, TFDS and Keras imported,
    with their start-up log held back, and the objects they made frozen
    (`collector_paused`).

    Args:
      verbose: the CLI's `--verbose`: leave TensorFlow's own log as it is.
    """
    with collector_paused():
        if verbose:
            import tensorflow_datasets  # noqa: F401
        else:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # What TensorFlow logs once running.
            import_tensorflow_quietly()
            quiet_own_retracing_warnings()
        import keras  # noqa: F401
