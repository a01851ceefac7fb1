"""Reads TensorBoard event files back, for tests: what TensorBoard itself would load."""

from __future__ import annotations

import pathlib

import numpy as np
from tensorboard.backend.event_processing import event_accumulator


def load(event_dir: str | pathlib.Path) -> event_accumulator.EventAccumulator:
    """All events under one split folder (e.g. `run_dir / 'train'`), nothing sampled away."""
    accumulator = event_accumulator.EventAccumulator(
        str(event_dir), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    return accumulator


def tags_by_plugin(event_dir: str | pathlib.Path) -> dict[str, set[str]]:
    """`{'scalars': {'loss', ...}, 'text': {'config'}, ...}`."""
    accumulator = load(event_dir)
    plugins: dict[str, set[str]] = {}
    for tag in accumulator.Tags()["tensors"]:
        plugin = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
        plugins.setdefault(plugin, set()).add(tag)
    return plugins


def scalars(event_dir: str | pathlib.Path) -> dict[str, list[tuple[int, float]]]:
    """`{tag: [(step, value), ...]}` for every scalar summary, in step order."""
    accumulator = load(event_dir)
    out = {}
    for tag in tags_by_plugin(event_dir).get("scalars", ()):
        events = accumulator.Tensors(tag)
        out[tag] = [(e.step, float(np.asarray(_value(e)))) for e in events]
    return out


def texts(event_dir: str | pathlib.Path) -> dict[str, str]:
    """`{tag: last text}` for every text summary."""
    accumulator = load(event_dir)
    return {
        tag: _value(accumulator.Tensors(tag)[-1]).item().decode()
        for tag in tags_by_plugin(event_dir).get("text", ())
    }


def _value(event):
    import tensorflow as tf

    return tf.make_ndarray(event.tensor_proto)
