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

Scalars, histograms and HParams records are built as protos in numpy and
written with one `write_raw_pb` call per batch of values: eager
`tf.summary.histogram` costs milliseconds per tag, which adds up at every
epoch end of a small dataset.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.histogram import summary_v2 as histogram_summary
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hparams_summary
from tensorboard.plugins.scalar import summary_v2 as scalar_summary

SPLITS = ("train", "validation", "test")
# The writer of the run directory itself, for the HParams session records.
RUN = "run"


class SummaryWriter:
    """Writes scalars and text for the splits of one run.

    Args:
      run_dir: the run's directory; event files go to `run_dir/<split>/`.
    """

    def __init__(self, run_dir: str | pathlib.Path):
        self.run_dir = pathlib.Path(run_dir)
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def writer(self, split: str) -> tf.summary.SummaryWriter:
        """The writer of `split`, or of the run directory itself (`RUN`); made on first use."""
        if split not in SPLITS and split != RUN:
            raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
        if split not in self._writers:
            folder = self.run_dir if split == RUN else self.run_dir / split
            self._writers[split] = tf.summary.create_file_writer(str(folder))
        return self._writers[split]

    def scalars(self, split: str, step: int, values: Mapping[str, float]) -> None:
        """Scalars (float32, as `tf.summary.scalar` writes them), in one write."""
        summary = summary_pb2.Summary()
        for tag, value in values.items():
            summary.value.extend(scalar_summary.scalar_pb(tag, np.float32(value)).value)
        self._write_pb(split, step, summary)

    def text(self, split: str, step: int, tag: str, markdown: str) -> None:
        with self.writer(split).as_default(step=step):
            tf.summary.text(tag, markdown)

    def histograms(self, split: str, step: int, values: Mapping[str, np.ndarray]) -> None:
        """One histogram per tag (30 buckets, TensorBoard's default), in one write."""
        summary = summary_pb2.Summary()
        for tag, data in values.items():
            summary.value.extend(histogram_summary.histogram_pb(tag, np.asarray(data)).value)
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
        """One uint8 RGB image, shape (height, width, 3)."""
        with self.writer(split).as_default(step=step):
            tf.summary.image(tag, np.asarray(image, dtype=np.uint8)[None], max_outputs=1)

    def graph(self, split: str, graph: tf.Graph) -> None:
        """A traced graph (e.g. a `tf.function`'s concrete function) for the Graphs tab."""
        with self.writer(split).as_default():
            tf.summary.graph(graph)

    def hparams(
        self,
        values: Mapping[str, Any],
        *,
        metrics: Sequence[tuple[str, str]],
        trial_id: str,
        start_time_secs: float | None = None,
    ) -> None:
        """The HParams experiment config and this run's session start, in the run directory.

        Every run writes the same kind of experiment record: each hparam with
        its type and no domain, and the metrics as (split, tag) pairs. TensorBoard
        reads one experiment record per log directory, picked arbitrarily among
        the runs, so none may narrow the others: a discrete domain listing only
        this run's values would make the dashboard filter the other runs out.

        Args:
          values: hparam name -> bool, number or string (None becomes 'null').
          metrics: (split, tag) pairs of scalars the dashboard shows, e.g.
            ('validation', 'accuracy'); their last values are the run's result.
          trial_id: the session group; the run's name, so that two runs with
            equal hparams stay two rows.
          start_time_secs: session start, default now.
        """
        values = {name: hparam_value(value) for name, value in values.items()}
        infos = [
            api_pb2.HParamInfo(name=name, type=_hparam_type(value))
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

    def hparams_end(self, step: int, *, success: bool = True) -> None:
        """Closes the session: the dashboard shows the run as finished (or failed)."""
        status = api_pb2.STATUS_SUCCESS if success else api_pb2.STATUS_FAILURE
        self._write_pb(RUN, step, hparams_summary.session_end_pb(status))

    def _write_pb(self, split: str, step: int, summary) -> None:
        with self.writer(split).as_default(step=step):
            tf.summary.experimental.write_raw_pb(summary.SerializeToString())

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
    """`model.summary()` as plain text (Keras draws it with box characters)."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), line_length=90)
    return "\n".join(lines)
