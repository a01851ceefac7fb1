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
fail. Everything logged afterwards reaches stderr as usual.

This module imports no TensorFlow itself, so the CLIs (`kerasmlp-train`,
`kerasmlp-predict`, `kerasmlp-export`) import it before deciding whether to be
quiet, and call `start_tensorflow` before their first TensorFlow import.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


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


def start_tensorflow(*, verbose: bool = False) -> None:
    """What a CLI calls before it imports TensorFlow: the start-up log held back.

    Args:
      verbose: the CLI's `--verbose`: leave TensorFlow's own log as it is.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # What TensorFlow logs once running.
    import_tensorflow_quietly()
