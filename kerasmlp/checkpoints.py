"""Checkpoints of a run: device state and host state together, in `<run>/checkpoints/`.

A checkpoint holds everything a resumed run needs: the model (with dropout's
RNG state), the optimizer (with its iteration count), the position in the
shuffled training data, the metrics' accumulators, the learning-rate scale
and the best weights when early stopping restores them, plus the outer loop's
host state as one JSON string (step, epoch, the epoch's loss sums, the
actions' state, and the wall time of the save).

The wall time matters for TensorBoard: before saving, every summary writer
is flushed, so everything written before the checkpoint is on disk; after a
restore, every event written later than the checkpoint is dropped from the
event files (`summaries.truncate_event_files`) because the run writes it again.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from kerasmlp.runfiles import ResumeError, RunFilesError
from kerasmlp.summaries import SummaryWriter

_GRAPH_OPTIONS_WARNING = "To make it possible to preserve tf.data options across serialization"


class _TracedCheckpoint(tf.train.Checkpoint):
    """A `tf.train.Checkpoint` whose writes run as one traced function.

    An eager write walks the object graph and reads every variable from Python:
    about 10x the time of the same write traced once (measured here: 80-130 ms
    against 9 ms for the default model, optimizer and metrics), which at every
    epoch end of a small dataset would cost more than the epoch. The files are
    the same; `tf.train.CheckpointManager` still names, records and deletes them
    through the write callbacks it passes in `options`.
    """

    def __init__(self, **objects):
        super().__init__(**objects)
        self._traced_write = None

    def _write(self, file_prefix, options=None):
        if self._traced_write is None:
            # All variables exist by now (the optimizer and metrics are built).
            self._traced_write = tf.function(
                lambda prefix: tf.train.Checkpoint._write(self, prefix), autograph=False
            )
        # The eager write makes the folder; the traced one does not.
        tf.io.gfile.makedirs(os.path.dirname(file_prefix))
        with warnings.catch_warnings():
            # Tracing serializes a tf.data iterator (`data.cache: false`) in graph mode,
            # where TensorFlow warns on stderr that `Dataset.options()` may not be the
            # graph's: the options set in Python are what the save uses, as intended.
            warnings.filterwarnings("ignore", message=_GRAPH_OPTIONS_WARNING)
            self._traced_write(tf.constant(file_prefix))
        for callback in (options.experimental_write_callbacks if options else None) or ():
            callback(file_prefix)
        return file_prefix


class RunCheckpoints:
    """`tf.train.CheckpointManager` over a run's state, as `controller.Checkpoints` wants it.

    Args:
      directory: where checkpoints go (`<run>/checkpoints`).
      objects: name -> trackable (model, optimizer, batches, variable lists).
      keep: how many of the latest checkpoints to keep.
      writer: the run's summaries, flushed before and truncated after.
      log: prints one line when a damaged checkpoint gives way to an older one.
    """

    def __init__(
        self,
        directory: str | pathlib.Path,
        objects: Mapping[str, Any],
        *,
        keep: int,
        writer: SummaryWriter,
        log: Callable[[str], None] = print,
    ):
        self.directory = pathlib.Path(directory)
        self.writer = writer
        self.log = log
        self._host = tf.Variable("", dtype=tf.string, trainable=False, name="host_state")
        self.checkpoint = _TracedCheckpoint(**objects, host_state=self._host)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.directory), max_to_keep=keep, checkpoint_name="ckpt"
        )

    def save(self, host_state: Mapping[str, Any], *, step: int) -> str:
        """Flushes the summaries, then saves `ckpt-<step>`; returns its path."""
        try:
            self.writer.flush()
            # Events written up to now are on disk and at most this old.
            self._host.assign(json.dumps({**host_state, "wall_time": self.writer.now()}))
            return self.manager.save(checkpoint_number=step)
        except tf.errors.OpError as e:
            raise RunFilesError(
                f"cannot write a checkpoint in {self.directory}: {_cause(e)}"
            ) from e

    def restore_latest(self) -> dict[str, Any] | None:
        """Restores the latest readable checkpoint and drops later events; returns its host state.

        A checkpoint whose files cannot be read (truncated or corrupt: a crash
        while it was written, a damaged disk; or missing: deleted, lost) gives way
        to the one before it, with a message: the older checkpoints kept
        (`train.keep_checkpoints`) are there for that. A checkpoint that does not
        fit the run (a config.yaml edited so that the model differs) is refused at
        once: an older one would not fit either.

        Raises:
          ResumeError: the checkpoint does not fit the run, or none kept can be read.
        """
        # From the folder's index, not the manager's list: the manager leaves out every
        # checkpoint saved later than time.time() says it is now (a clock set back, the
        # run resumed on a machine whose clock is behind), and with none left the run
        # started again from step 0, its events dropped.
        recorded = tf.train.get_checkpoint_state(str(self.directory))
        if recorded is None or not recorded.model_checkpoint_path:
            return None
        paths = list(reversed(recorded.all_model_checkpoint_paths))  # newest first
        paths = paths or [recorded.model_checkpoint_path]
        first_error = None
        for path, older in zip(paths, [*paths[1:], None], strict=True):
            try:
                self._restore(path)
                break
            except _UNREADABLE as e:
                first_error = first_error or e
                if isinstance(e, FileNotFoundError) and not _files_left(path):
                    # Gone: it must not hold one of the `keep` slots, or the next save
                    # deletes the readable one restored here. The manager has no public
                    # way to forget a checkpoint; this deletes nothing.
                    getattr(self.manager, "_maybe_delete", {}).pop(path, None)
                if older is None:
                    nor = f", nor the older ones in {self.directory}" if len(paths) > 1 else ""
                    raise ResumeError(f"{_unreadable(paths[0], first_error)}{nor}") from e
                self.log(
                    f"{_unreadable(path, e)}; "
                    f"going on from the one before it, {pathlib.Path(older).name}"
                )
        state = json.loads(self._host.numpy().decode("utf-8"))
        self.writer.truncate_after(state["wall_time"])
        return state

    def _restore(self, path: str) -> None:
        if not tf.io.gfile.exists(f"{path}.index"):
            # TensorFlow's error says this in 300 characters.
            raise FileNotFoundError(f"{path}.index")
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            _quiet_unrestored_warnings()
            raise ResumeError(
                f"cannot restore checkpoint {path}: {_cause(e).rstrip('.')}; does the run's "
                "config.yaml still describe the model and optimizer that were trained?"
            ) from e
        except _UNREADABLE:
            _quiet_unrestored_warnings()
            raise


# What reading a damaged checkpoint raises: a truncated data file gives IndexError
# ("Read less bytes than requested"), a damaged index a DataLossError; `_restore`
# raises FileNotFoundError for one whose files are gone (deleted by hand, lost).
_UNREADABLE = (tf.errors.OpError, IndexError, FileNotFoundError)
_UNRESTORED_WARNINGS = (
    "Detecting that an object or model or tf.train.Checkpoint is being deleted with "
    "unrestored values",
    "Value in checkpoint could not be found in the restored object",
)


class _UnrestoredWarnings(logging.Filter):
    """Drops TensorFlow's warnings about a failed restore's values, said once already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_UNRESTORED_WARNINGS)


def _quiet_unrestored_warnings() -> None:
    """After a failed restore, TensorFlow warns (when its objects are deleted, at exit)
    about the values it did not restore: four lines more for what the error said. A
    restore that raised leaves no status object whose `expect_partial()` would silence
    them, so they are filtered out of the `tensorflow` logger."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _UnrestoredWarnings) for f in logger.filters):
        logger.addFilter(_UnrestoredWarnings())


def _files_left(path: str) -> bool:
    """Whether any file of checkpoint `path` (`ckpt-N.index`, `ckpt-N.data-*`) is there."""
    prefix = pathlib.Path(path)
    try:
        return any(f.name.startswith(f"{prefix.name}.") for f in prefix.parent.iterdir())
    except OSError:  # its folder is gone too
        return False


def _cause(error: Exception) -> str:
    text = getattr(error, "message", None) or str(error)
    # An error of the traced write names TensorFlow's function and node around the cause:
    # "{{function_node __inference_<lambda>_889}} PATH; No space left on device
    # [[{{node SaveV2}}]] Hint: If you want to see a list of allocated tensors when OOM
    # happens, ..." (a hint about memory, for a full disk). The path and the cause stay.
    text = re.sub(r"\{\{function_node [^}]*\}\}", "", text)
    text = re.sub(r"\s*\[\[\{\{node .*", "", text, flags=re.DOTALL)
    return " ".join(text.split())[:300]


def _unreadable(path: str, error: Exception) -> str:
    """`cannot read checkpoint PATH` and why."""
    if isinstance(error, FileNotFoundError):
        return f"cannot read checkpoint {path}: its files are missing (deleted or lost?)"
    return f"cannot read checkpoint {path} (truncated or corrupt?): {_cause(error)}"
