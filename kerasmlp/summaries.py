"""One object that owns all TensorBoard output of a run.

A run directory holds one event-file folder per split (`train/`,
`validation/`, `test/`), and every split uses the same tag names (`loss`,
`accuracy`, ...) so that TensorBoard overlays their curves. The step axis is
always the optimizer's iteration count.

The HParams records live in the run directory itself (TensorBoard run
`<run>`), not in a split: the HParams plugin treats the run holding a
session-start record as one session and looks its metrics up in the runs
below it, so the metric `(group='validation', tag='accuracy')` is read from
`<run>/validation`.

Every record is built as a proto in numpy and appended to the split's event
file by `EventFile`, the file `tf.summary.create_file_writer` would write,
without an eager op per write: eager `tf.summary.histogram` costs milliseconds
per tag, and even `write_raw_pb` a quarter of a millisecond per call, which
adds up at every round of a small dataset. What needs no TensorFlow state of the moment and
takes milliseconds (drawing the pictures, the histograms) can be handed to
`SummaryWriter.in_background`, which writes it on the writer's own thread while
the compiled calls that follow run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import itertools
import os
import pathlib
import re
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image
import rich.console
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.histogram import summary_v2 as histogram_summary
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import summary as hparams_summary
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import summary_v2 as text_summary
from tensorboard.util import tensor_util

from kerasmlp.runfiles import RunFilesError, describe_os_error, writing

SPLITS = ("train", "validation", "test")
_SCALAR_SHAPE = tensor_shape_pb2.TensorShapeProto()

# What TensorBoard shows under a tag's name (its description), by split and tag:
# `<layer>/<what>` tags as `*/<what>`, and `*` for the configured metrics.
_PROBE = (
    "on a fixed held-out batch (the first validation batch, or the first test batch "
    "without a validation split), dropout off"
)
DESCRIPTIONS = {
    ("train", "loss"): (
        "Training loss: the mean per example over the steps since the previous point, "
        "dropout on, L2 regularization and class weights included (as `model.fit` reports it)."
    ),
    ("train", "learning_rate"): (
        "The schedule's value at this step (the optimizer's iteration count), the rate "
        "the next step uses: `initial_learning_rate * decay_rate ** (step / decay_steps)`, "
        "the exponent floored with `staircase`; times `learning_rate_scale` after a rollback."
    ),
    ("train", "gradient_norm"): (
        "Global L2 norm of the gradients of all trainable weights, the mean over the "
        "training steps since the previous point (dropout on): before the optimizer's "
        "clipping (optimizer.clipnorm, global_clipnorm or clipvalue), as one device takes "
        "them (unscaled under mixed_float16, summed over the replicas under distribute)."
    ),
    ("train", "examples_per_second"): (
        "Training examples per second of the compiled steps since the previous point; "
        "the first point of each process (the run's, and a --resume's) includes tracing the "
        "loop."
    ),
    ("train", "epoch"): "Epochs completed at this step.",
    ("train", "loss_scale"): "mixed_float16: the dynamic loss scale after these steps.",
    ("train", "skipped_steps"): (
        "mixed_float16: steps since the previous point skipped because the scaled "
        "gradients overflowed (the scale is then halved)."
    ),
    ("train", "rollbacks"): "Rollbacks to the last checkpoint after a divergence so far.",
    ("train", "learning_rate_scale"): (
        "What the schedule's rate is multiplied by after the rollbacks so far."
    ),
    ("train", "*"): (
        "Over the epoch's training steps, dropout on, while the weights changed "
        "(as `model.fit` reports it); compare with validation at the epoch's end."
    ),
    ("train", "*/gradient_norm"): (
        f"L2 norm of the gradient of the loss with respect to this layer's kernel and bias, "
        f"{_PROBE}: not the training batches of `gradient_norm`."
    ),
    ("train", "*/dead_fraction"): (
        f"Share of this layer's units whose pre-activation is <= 0 for every example {_PROBE}. "
        "A relu unit there outputs 0 and passes no gradient; a leaky_relu, elu, gelu or "
        "swish unit stays in its small-slope negative tail."
    ),
    ("train", "*/saturated_fraction"): (
        f"Share of (example, unit) pairs {_PROBE}, whose activation derivative is below 1% "
        "of its maximum (|z| > 5.99 for sigmoid, |z| > 2.99 for tanh): they pass back "
        "almost no gradient."
    ),
    ("train", "*/kernel"): "This layer's kernel (weights).",
    ("train", "*/bias"): "This layer's bias.",
    ("train", "*/kernel_gradient"): f"Gradient of the loss with respect to the kernel, {_PROBE}.",
    ("train", "*/bias_gradient"): f"Gradient of the loss with respect to the bias, {_PROBE}.",
    ("train", "config"): "The resolved config of the run (config.yaml).",
    ("train", "model_summary"): "The model's layers, output shapes and parameter counts.",
    ("validation", "*"): (
        "Over the whole validation split at the end of the epoch, dropout off (the loss "
        "includes L2 regularization, not class weights)."
    ),
    ("test", "*"): (
        "Over the whole test split, once, with the weights tested and saved (dropout off)."
    ),
}
for _split in ("validation", "test"):
    DESCRIPTIONS[(_split, "confusion_matrix")] = (
        "Rows are true classes, columns predicted classes; each cell holds its count and is "
        "shaded by its share of the row."
    )
    DESCRIPTIONS[(_split, "decision_boundary")] = (
        "The predicted class (regression: value) over the plane, and up to 1000 of the "
        "split's points in the colour of their true class (value)."
    )
    DESCRIPTIONS[(_split, "misclassified")] = (
        "Up to 32 misclassified examples: T the true class, P the predicted one."
    )


def description(split: str, tag: str) -> str | None:
    """The description TensorBoard shows for `tag` in `split` (see `DESCRIPTIONS`)."""
    if "/" in tag:
        return DESCRIPTIONS.get((split, "*/" + tag.split("/", 1)[1]))
    return DESCRIPTIONS.get((split, tag), DESCRIPTIONS.get((split, "*")))


# What `scalar_pb` attaches to a value, made once: the scalars of every round are
# written in the hot path. The description goes with a tag's first value only, as
# TensorFlow's v1 FileWriter sends metadata: TensorBoard keeps the first it reads.
_SCALAR_METADATA = scalar_metadata.create_summary_metadata(display_name=None, description=None)


def _described_scalar_metadata(split: str, tag: str) -> summary_pb2.SummaryMetadata:
    return scalar_metadata.create_summary_metadata(
        display_name=None, description=description(split, tag)
    )


# The writer of the run directory itself, for the HParams session records.
RUN = "run"


# Tells apart the event files this process makes within one second.
_EVENT_FILE_NUMBERS = itertools.count()


class EventFile:
    """One TensorBoard event file: `Event` records, each on disk when `write` returns.

    The file `tf.summary.create_file_writer` makes (same name pattern, same
    first record) written through `tf.io.TFRecordWriter`: no eager op, no
    queue, about a tenth of the cost of a `write_raw_pb` call. Each write is
    flushed, so TensorBoard sees it at once and a killed run loses nothing it
    wrote. Safe to write from two threads.

    Args:
      folder: made if missing.
    """

    def __init__(self, folder: str | pathlib.Path, clock: Callable[[], float] = time.time):
        folder = pathlib.Path(folder)
        self._clock = clock
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunFilesError(f"cannot write {describe_os_error(e, folder)}") from e
        number = next(_EVENT_FILE_NUMBERS)
        # TensorBoard reads a folder's files in name order: the clock's, as in the events,
        # then this process's count, padded (TensorFlow's is not) so that the file made
        # after `...9.v2` in the same second (a rollback's) is not `...10.v2`, read first.
        name = f"events.out.tfevents.{int(clock()):010d}.{socket.gethostname()}"
        self.path = folder / f"{name}.{os.getpid()}.{number:06d}.v2"
        self._lock = threading.Lock()
        with _writing(folder):
            self._records = tf.io.TFRecordWriter(str(self.path))
        self.write(event_pb2.Event(wall_time=clock(), file_version="brain.Event:2"))

    def write(self, event: event_pb2.Event) -> None:
        record = event.SerializeToString()
        with self._lock, _writing(self.path.parent):
            self._records.write(record)
            self._records.flush()

    def summary(self, step: int, summary) -> None:
        """A `Summary` at `step`, stamped with the wall time now.

        TensorBoard's own proto, or TensorFlow's (which TensorBoard's HParams
        helpers return when TensorFlow is installed): the same message.
        """
        event = event_pb2.Event(wall_time=self._clock(), step=step)
        if isinstance(summary, summary_pb2.Summary):
            event.summary.CopyFrom(summary)
        else:
            event.summary.ParseFromString(summary.SerializeToString())
        self.write(event)

    def close(self) -> None:
        with self._lock, _writing(self.path.parent):
            self._records.close()


class SummaryWriter:
    """Writes scalars and text for the splits of one run.

    Args:
      run_dir: the run's directory; event files go to `run_dir/<split>/`.
    """

    def __init__(self, run_dir: str | pathlib.Path):
        self.run_dir = pathlib.Path(run_dir)
        self._writers: dict[str, EventFile] = {}
        self._writers_lock = threading.Lock()  # the background thread makes writers too
        self._background: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[concurrent.futures.Future] = []
        self._described: set[tuple[str, str]] = set()  # scalar tags given their description
        self._clock_offset = 0.0  # see `truncate_after`

    def now(self) -> float:
        """The wall time events are stamped with, and checkpoints (`truncate_after`)."""
        return time.time() + self._clock_offset

    def writer(self, split: str) -> EventFile:
        """The writer of `split`, or of the run directory itself (`RUN`); made on first use."""
        folder = self._folder(split)
        with self._writers_lock:
            if split not in self._writers:
                self._writers[split] = EventFile(folder, clock=self.now)
            return self._writers[split]

    def _folder(self, split: str) -> pathlib.Path:
        if split not in SPLITS and split != RUN:
            raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
        return self.run_dir if split == RUN else self.run_dir / split

    def in_background(self, work: Callable[[], None]) -> None:
        """Runs `work`, which writes through this writer, on the writer's own thread.

        For what costs milliseconds of numpy and Pillow at an epoch's end (the
        pictures, the layers' histograms): the compiled calls that follow (the
        validation, the next training steps), which leave Python's lock free,
        run meanwhile, as with CLU's asynchronous writer. Work runs in the order
        given. `flush`, `close` and the next `in_background` check what is done
        and raise its error (e.g. `RunFilesError` on a full disk) in the caller;
        `flush` and `close` wait for all of it first.
        """
        self._raise_failed()
        if self._background is None:
            self._background = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="kerasmlp-summaries"
            )
        self._pending.append(self._background.submit(work))

    def _raise_failed(self) -> None:
        """Forgets background work that is done; raises the first error among it."""
        done, pending = [], []
        for future in self._pending:  # one look at each: work may finish meanwhile
            (done if future.done() else pending).append(future)
        self._pending = pending
        for future in done:
            future.result()

    def _wait(self) -> None:
        """Waits for every background work; raises the first error among it."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def scalars(self, split: str, step: int, values: Mapping[str, float]) -> None:
        """Scalars (float32, as `tf.summary.scalar` writes them), in one write."""
        summary = summary_pb2.Summary(
            value=[
                # The proto `scalar_pb` builds, byte for byte, in a quarter of its time.
                summary_pb2.Summary.Value(
                    tag=tag,
                    metadata=self._scalar_metadata(split, tag),
                    tensor=tensor_pb2.TensorProto(
                        dtype=types_pb2.DT_FLOAT,
                        tensor_shape=_SCALAR_SHAPE,
                        float_val=[np.float32(value)],
                    ),
                )
                for tag, value in values.items()
            ]
        )
        self._write_pb(split, step, summary)

    def _scalar_metadata(self, split: str, tag: str) -> summary_pb2.SummaryMetadata:
        """The metadata of a tag's value: with its description the first time in this file."""
        if (split, tag) in self._described:
            return _SCALAR_METADATA
        self._described.add((split, tag))
        return _described_scalar_metadata(split, tag)

    def text(self, split: str, step: int, tag: str, markdown: str) -> None:
        """Markdown for the Text tab, as `tf.summary.text` records it."""
        summary = text_summary.text_pb(tag, markdown, description=description(split, tag))
        self._write_pb(split, step, summary)

    def histograms(self, split: str, step: int, values: Mapping[str, np.ndarray]) -> None:
        """One histogram per tag (30 buckets, TensorBoard's default), in one write.

        Of the finite values only: TensorBoard's buckets of an inf (a float16 gradient
        that overflowed) had NaN and inf edges, with numpy's warnings on the console.
        """
        summary = summary_pb2.Summary()
        for tag, data in values.items():
            data = np.asarray(data)
            pb = histogram_summary.histogram_pb(
                tag, data[np.isfinite(data)], description=description(split, tag)
            )
            summary.value.extend(pb.value)
        self._write_pb(split, step, summary)

    def layer_reports(self, split: str, step: int, reports) -> None:
        """Per Dense layer: histograms of weights and gradients, gradient norm, unit health.

        Tags are `<layer>/<what>`: `dense_0/kernel`, `dense_0/kernel_gradient`,
        `dense_0/gradient_norm`, `dense_0/dead_fraction` (ReLU family) or
        `dense_0/saturated_fraction` (sigmoid, tanh); see `diagnostics.LayerReport`.
        """
        histograms, scalars = {}, {}
        for report in reports:
            for what, values in report.histograms().items():
                histograms[f"{report.name}/{what}"] = values
            for what, value in report.scalars().items():
                scalars[f"{report.name}/{what}"] = value
        self.histograms(split, step, histograms)
        self.scalars(split, step, scalars)

    def image(self, split: str, step: int, tag: str, image: np.ndarray) -> None:
        """One uint8 RGB image, shape (height, width, 3), as `tf.summary.image` records it.

        Encoded by Pillow at its fastest compression: a third of the time of
        TensorFlow's `encode_png` for these flat-coloured pictures (measured).
        """
        image = np.asarray(image, dtype=np.uint8)
        encoded = io.BytesIO()
        PIL.Image.fromarray(image).save(encoded, format="PNG", compress_level=1)
        height, width = image.shape[:2]
        tensor = tensor_util.make_tensor_proto(
            [str(width).encode(), str(height).encode(), encoded.getvalue()]
        )
        summary = summary_pb2.Summary()
        summary.value.add(
            tag=tag,
            metadata=image_metadata.create_summary_metadata(
                display_name=None, description=description(split, tag)
            ),
            tensor=tensor,
        )
        self._write_pb(split, step, summary)

    def graph(self, split: str, graph: tf.Graph) -> None:
        """A traced graph (e.g. a `tf.function`'s concrete function) for the Graphs tab.

        As `tf.summary.graph` records it: the `GraphDef` with shapes, at step 0.
        """
        graph_def = graph.as_graph_def(add_shapes=True).SerializeToString()
        event = event_pb2.Event(wall_time=self.now(), step=0, graph_def=graph_def)
        self.writer(split).write(event)

    def hparams(
        self,
        values: Mapping[str, Any],
        *,
        metrics: Sequence[tuple[str, str]],
        trial_id: str = "",
        start_time_secs: float | None = None,
        first: Sequence[str] = (),
    ) -> None:
        """The HParams experiment config and this run's session start, in the run directory.

        Every run writes the same kind of experiment record: each hparam with
        its type and no domain, and the metrics as (split, tag) pairs. TensorBoard
        reads one experiment record per log directory, picked arbitrarily among
        the runs, so none may narrow the others: a discrete domain listing only
        this run's values would make the dashboard filter the other runs out.

        The hparams named in `first` (a sweep's grid keys) lead the records and
        are marked `differs`: TensorBoard sorts the HParams columns by `differs`,
        then by name, so they come before the keys every run shares.

        Args:
          values: hparam name -> bool, number or string (None becomes 'null').
          metrics: (split, tag) pairs of scalars the dashboard shows, e.g.
            ('validation', 'accuracy'); their last values are the run's result.
          trial_id: the session group: TensorBoard shows a group as one row, the
            metrics of its sessions averaged. Default none: each run is its own row,
            named by its path under TensorBoard's logdir (a run's folder name is not
            unique there: two sweeps' `00-activation=relu` made one row).
          start_time_secs: session start, default now.
          first: hparam names to put first (a name also leads those below it:
            `optimizer.learning_rate` leads `optimizer.learning_rate.*`, and the one
            above it: `train.class_weight.spiral_a` leads `train.class_weight`).
        """
        front = [
            name
            for key in first
            for name in values
            if name == key or name.startswith(f"{key}.") or key.startswith(f"{name}.")
        ]
        front = list(dict.fromkeys(front))
        values = {
            name: hparam_value(values[name])
            for name in [*front, *(name for name in values if name not in front)]
        }
        infos = [
            api_pb2.HParamInfo(name=name, type=_hparam_type(value), differs=name in front)
            for name, value in values.items()
        ]
        metric_infos = [
            api_pb2.MetricInfo(
                name=api_pb2.MetricName(group=group, tag=tag), display_name=f"{group}_{tag}"
            )
            for group, tag in metrics
        ]
        experiment = hparams_summary.experiment_pb(infos, metric_infos)
        start = hparams_summary.session_start_pb(
            values, group_name=trial_id, start_time_secs=start_time_secs or time.time()
        )
        self._write_pb(RUN, 0, experiment)
        self._write_pb(RUN, 0, start)

    def hparams_end(self, step: int, *, status: str = "success") -> None:
        """Closes the session as `success` or `failure`.

        An interrupted run writes no end: TensorBoard shows a session without one
        as STATUS_UNKNOWN, all that its HParams protocol could say of an aborted
        one (it has only unknown, success, failure, running). An end record would
        also stay: TensorBoard keeps the first end it reads, so one left running
        showed the run resumed and completed as unknown, not success.
        """
        value = {"success": api_pb2.STATUS_SUCCESS, "failure": api_pb2.STATUS_FAILURE}[status]
        self._write_pb(RUN, step, hparams_summary.session_end_pb(value))

    def restate(self, values: Mapping[str, Any], *, config_text: str) -> None:
        """Puts a resumed run's config in its HParams session start and `train/config` text.

        `--resume --epochs N` (or `--strategy`) changes the config a run started with;
        its HParams row and config text said the old one. Both are replaced where they
        are: TensorBoard takes a tag's metadata (where the session start keeps its
        values) from the tag's first record, so a second record would not be seen.

        Args:
          values: hparam name -> value, as given to `hparams`.
          config_text: the markdown written as `config` at step 0.
        """
        self.close()
        values = {name: hparam_value(value) for name, value in values.items()}

        def session_start(old: summary_pb2.Summary.Value) -> summary_pb2.Summary.Value:
            content = old.metadata.plugin_data.content
            info = hparams_metadata.parse_session_start_info_plugin_data(content)
            (value,) = hparams_summary.session_start_pb(
                values,
                model_uri=info.model_uri,
                monitor_url=info.monitor_url,
                group_name=info.group_name,
                start_time_secs=info.start_time_secs,
            ).value
            return value

        def config(old: summary_pb2.Summary.Value) -> summary_pb2.Summary.Value:
            (value,) = text_summary.text_pb(
                old.tag, config_text, description=description("train", old.tag)
            ).value
            return value

        replace_values(self.run_dir, {hparams_metadata.SESSION_START_INFO_TAG: session_start})
        replace_values(self.run_dir / "train", {"config": config})

    def truncate_after(self, wall_time: float) -> int:
        """Closes the writers and drops every event written after `wall_time` (seconds).

        A resumed or rolled-back run continues from a checkpoint taken at
        `wall_time`; what the run wrote after it is written again, so it goes,
        and TensorBoard shows each step once per tag. Returns the events dropped.

        The events written from then on are stamped later than `wall_time` (`now`),
        even where the clock is behind it (the run resumed on another machine, a clock
        set back): stamped earlier, they and the checkpoints taken among them would
        have a later resume drop everything written before them.
        """
        self.close()
        self._clock_offset = max(self._clock_offset, wall_time + 1e-3 - time.time())
        return truncate_event_files(self.run_dir, wall_time)

    def replace_scalars(self, split: str, step: int, values: Mapping[str, float]) -> None:
        """Scalars at `step` in place of those of the same tags the run wrote there before.

        TensorBoard wants one value per tag and step: a second rollback to the same
        checkpoint logs its count and rate scale at the step where the first did.
        """
        self.close()  # the files are rewritten: the next writes open new ones
        drop_values(self._folder(split), step=step, tags=set(values))
        self.scalars(split, step, values)

    def _write_pb(self, split: str, step: int, summary) -> None:
        self.writer(split).summary(step, summary)

    def flush(self) -> None:
        """Waits for the background work: then everything given so far is on disk."""
        self._wait()

    def close(self) -> None:
        try:
            self._wait()
        finally:
            if self._background is not None:
                self._background.shutdown(wait=True)
                self._background = None
        writers, self._writers = list(self._writers.values()), {}
        self._described = set()  # the next writes open new files
        for writer in writers:
            writer.close()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def _writing(folder: pathlib.Path):
    """TensorFlow's write errors (a full disk, a read-only folder) as one-line RunFilesErrors.

    `cannot write logs/run/train/events.out.tfevents...: No space left on device`,
    as `kerasmlp.runfiles` says it for the run's other files.
    """
    try:
        yield
    except tf.errors.OpError as e:
        # "<path>; No space left on device", sometimes after "{{function_node ...}}".
        first = (e.message or str(e)).strip().splitlines()[0]
        first = re.sub(r"^\{\{[^}]*\}\}\s*", "", first)
        where, _, cause = first.rpartition("; ")
        raise RunFilesError(f"cannot write {where or folder}: {cause}") from e


def truncate_event_files(folder: str | pathlib.Path, wall_time: float) -> int:
    """Drops the events written after `wall_time` from a run's event files.

    Only the run's own: those in `folder` itself (the HParams session) and in its
    split folders (`train/`, `validation/`, `test/`). Other folders inside it,
    which a user may keep there, are not the run's and are left alone.

    Each changed file is rewritten under a temporary name (without "tfevents",
    so TensorBoard ignores it) and renamed over the original: a crash leaves
    the old file or the new one. A file whose first event (its header) is
    later than `wall_time` goes whole. A record cut short by a killed process
    ends the file's readable part.

    Returns:
      The number of events dropped.

    Raises:
      RunFilesError: a file could not be rewritten or removed (a read-only or full
        disk); that file is left as it was, and no temporary copy stays.
    """
    dropped = 0
    folder = pathlib.Path(folder)
    own = [folder, *(folder / split for split in SPLITS)]
    for path in sorted(path for place in own for path in place.glob("*tfevents*")):
        if not path.is_file():
            continue
        kept, total = [], 0
        try:
            for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                total += 1
                if event_pb2.Event.FromString(record).wall_time <= wall_time:
                    kept.append(record)
        except tf.errors.DataLossError:
            total += 1  # a torn last record
        if len(kept) == total:
            continue
        dropped += total - len(kept)
        _rewrite_event_file(path, kept)
    return dropped


def replace_values(
    folder: str | pathlib.Path,
    replace: Mapping[str, Callable[[summary_pb2.Summary.Value], summary_pb2.Summary.Value]],
) -> int:
    """Replaces, in the event files directly in `folder`, each summary value of a tag in `replace`.

    `replace[tag](old)` gives the new value. Each record keeps its wall time and step,
    so `truncate_event_files` keeps or drops it as it did the old one; a file is
    rewritten (as there) only when a value changes. Returns how many changed.
    """

    def edit(event: event_pb2.Event) -> int:
        # TensorBoard's protos or TensorFlow's (as `EventFile.summary` takes): bytes.
        news = [
            (value, replace[value.tag](value).SerializeToString())
            for value in event.summary.value
            if value.tag in replace
        ]
        news = [(value, new) for value, new in news if new != value.SerializeToString()]
        for value, new in news:
            value.ParseFromString(new)
        return len(news)

    return _edit_event_files(folder, edit)


def drop_values(folder: str | pathlib.Path, *, step: int, tags: Collection[str]) -> int:
    """Drops, from the event files directly in `folder`, the summary values of `tags` at `step`.

    An event left without a value goes whole; a file is rewritten (as in
    `truncate_event_files`) only when a value goes. Returns how many went.
    """

    def edit(event: event_pb2.Event) -> int:
        if event.step != step:
            return 0
        kept = [value for value in event.summary.value if value.tag not in tags]
        dropped = len(event.summary.value) - len(kept)
        if dropped:
            del event.summary.value[:]
            event.summary.value.extend(kept)
        return dropped

    return _edit_event_files(folder, edit)


def _edit_event_files(folder: str | pathlib.Path, edit: Callable[[event_pb2.Event], int]) -> int:
    """Rewrites each event file directly in `folder` whose events `edit` changes.

    `edit(event)` changes the event in place and returns how many of its summary
    values it changed or dropped; an event whose values all went is dropped.
    """
    changed = 0
    for path in sorted(pathlib.Path(folder).glob("*tfevents*")):
        if not path.is_file():
            continue
        records, changed_here = [], 0
        try:
            for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                event = event_pb2.Event.FromString(record)
                had_values = len(event.summary.value)
                edited = edit(event)
                changed_here += edited
                if not edited:
                    records.append(record)
                elif event.summary.value or not had_values:
                    records.append(event.SerializeToString())
        except tf.errors.DataLossError:
            pass  # a torn last record: dropped, as truncation drops it
        if changed_here:
            _rewrite_event_file(path, records)
            changed += changed_here
    return changed


def _rewrite_event_file(path: pathlib.Path, records: Sequence[bytes]) -> None:
    """Replaces the file with `records` (removes it when none) through a temporary file.

    The temporary's name lacks "tfevents", so TensorBoard ignores it.

    Raises:
      RunFilesError: a read-only or full disk; the file is left as it was.
    """
    with writing(path), _writing(path.parent):
        if not records:
            path.unlink()
            return
        temporary = path.with_name(f".truncate-{path.name.replace('tfevents', 'events')}")
        try:
            with tf.io.TFRecordWriter(str(temporary)) as writer:
                for record in records:
                    writer.write(record)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise


def code_block(text: str) -> str:
    """Markdown that TensorBoard's text plugin shows verbatim (indented by four spaces)."""
    return "\n".join("    " + line for line in text.splitlines())


def hparam_value(value: Any) -> bool | float | int | str:
    """A config value as the HParams plugin stores it: bool, number or string."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _hparam_type(value) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    if isinstance(value, (int, float)):
        return api_pb2.DATA_TYPE_FLOAT64
    return api_pb2.DATA_TYPE_STRING


def model_summary(model) -> str:
    """`model.summary()` as plain text (Keras draws it with box characters).

    At most 90 columns wide, and no wider than the console rich draws it on (the
    terminal's width; 80 without a terminal): a wider table is cut at the console's
    edge, and the summary lost its `Param #` column.
    """
    lines: list[str] = []
    width = min(90, rich.console.Console().width)
    # Keras draws with rich, which also writes to stdout: keep that off the console.
    with contextlib.redirect_stdout(io.StringIO()):
        model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), line_length=width)
    return "\n".join(lines)
