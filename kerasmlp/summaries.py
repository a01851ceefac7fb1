"""One object that owns all TensorBoard output of a run.

A run directory holds one event-file folder per split (`train/`,
`validation/`, `test/`), and every split uses the same tag names (`loss`,
`accuracy`, ...) so that TensorBoard overlays their curves. The step axis is
always the optimizer's iteration count.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import tensorflow as tf

SPLITS = ("train", "validation", "test")


class SummaryWriter:
    """Writes scalars and text for the splits of one run.

    Args:
      run_dir: the run's directory; event files go to `run_dir/<split>/`.
    """

    def __init__(self, run_dir: str | pathlib.Path):
        self.run_dir = pathlib.Path(run_dir)
        self._writers: dict[str, tf.summary.SummaryWriter] = {}

    def writer(self, split: str) -> tf.summary.SummaryWriter:
        """The `tf.summary` writer of `split`, created on first use."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(str(self.run_dir / split))
        return self._writers[split]

    def scalars(self, split: str, step: int, values: Mapping[str, float]) -> None:
        with self.writer(split).as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, value)

    def text(self, split: str, step: int, tag: str, markdown: str) -> None:
        with self.writer(split).as_default(step=step):
            tf.summary.text(tag, markdown)

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
