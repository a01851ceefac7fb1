"""The real TensorBoard program, serving a log directory that kerasmlp wrote, read over HTTP.

Starts `tensorboard` on 127.0.0.1 on a free port (nothing leaves the machine),
waits until it has loaded the runs, and checks what its data API serves
against the event files. The server is killed in the fixture's finalizer, also
when a test fails. One of the two runs it serves was stopped and resumed.
"""

import functools
import json
import pathlib
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from kerasmlp.controller import StopRequest
from kerasmlp.sweep import plan_sweep
from kerasmlp.train import RunInterrupted, train_and_evaluate
from tests import events

STARTUP_TIMEOUT_S = 60
RUNS = ("00-activation=relu", "01-activation=tanh")


def tensorboard_command() -> list[str]:
    """The `tensorboard` script beside this Python, or the module when there is none."""
    script = pathlib.Path(sys.executable).parent / "tensorboard"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "tensorboard.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    """A two-point sweep (relu, tanh), one short epoch each, in one log directory.

    The second point is stopped as Ctrl-C stops it, after the round ending at step 20,
    and resumed to its end: what TensorBoard serves of it must show each step once and
    one HParams session.
    """
    root = tmp_path_factory.mktemp("logs")
    overrides = [
        "train.epochs=1",
        "train.log_every_steps=20",
        "train.image_every_epochs=1",
        "model.hidden_units=[8, 8]",
        f"data.data_dir={tmp_path_factory.mktemp('tfds')}",
    ]
    results = {}
    for run in plan_sweep({"model.activation": ["relu", "tanh"]}, None, overrides):
        train = functools.partial(
            train_and_evaluate, run.config, root / run.name, hparams_first=["model.activation"]
        )
        if run.name == RUNS[1]:
            stop = StopRequest()
            with pytest.raises(RunInterrupted):
                train(reporter=_Quiet(stop_at_step=20, stop=stop), stop_request=stop)
            results[run.name] = train(reporter=_Quiet(), resume=True)
        else:
            results[run.name] = train(reporter=_Quiet())
    assert tuple(results) == RUNS
    return root, results


class _Quiet:
    """Prints nothing; with `stop_at_step`, asks `stop` to stop the run there, as Ctrl-C does."""

    def __init__(self, stop_at_step=None, stop=None):
        self.stop_at_step, self.stop = stop_at_step, stop

    def start(self, **kwargs): ...

    def train_progress(self, *, step, **kwargs):
        if self.stop_at_step is not None and step >= self.stop_at_step:
            self.stop.request("SIGINT")

    def epoch_end(self, **kwargs): ...

    def end(self, results): ...

    def message(self, text): ...


@pytest.fixture(scope="module")
def server(logdir):
    root, _ = logdir
    port = free_port()
    command = [
        *tensorboard_command(),
        f"--logdir={root}",
        "--host=127.0.0.1",
        f"--port={port}",
        "--load_fast=false",  # the Python loader: no Rust data server needed offline
        "--reload_interval=1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"tensorboard exited: {process.stderr.read().decode()[-2000:]}")
            try:
                runs = get(base, "/data/runs")
                if all(
                    f"{run}/{split}" in runs for run in RUNS for split in ("train", "validation")
                ):
                    break
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"tensorboard did not serve the runs within {STARTUP_TIMEOUT_S} s")
            time.sleep(0.5)
        yield base
    finally:
        process.kill()
        process.wait(timeout=30)
        process.stderr.close()


def get(base: str, path: str, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post(base: str, path: str, body: dict):
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_runs_are_listed(server):
    runs = get(server, "/data/runs")
    for run in RUNS:
        assert {f"{run}/train", f"{run}/validation", f"{run}/test"} <= set(runs)


def test_scalar_values_served_equal_the_event_files(server, logdir):
    root, _ = logdir
    tags = get(server, "/data/plugin/scalars/tags")
    for run in RUNS:
        train_tags = set(tags[f"{run}/train"])
        assert {"loss", "learning_rate", "gradient_norm", "examples_per_second"} <= train_tags
        written = events.scalars(root / run / "train")
        for tag in ("loss", "learning_rate", "gradient_norm"):
            served = get(server, "/data/plugin/scalars/scalars", run=f"{run}/train", tag=tag)
            steps = [step for _, step, _ in served]
            assert steps == sorted(set(steps)), f"{run} {tag}: {steps}"  # resumed: each once
            assert steps == [step for step, _ in written[tag]]
            np.testing.assert_allclose(
                [value for _, _, value in served], [value for _, value in written[tag]], rtol=1e-6
            )


def test_histogram_and_image_plugins_list_the_layer_and_picture_tags(server):
    histograms = get(server, "/data/plugin/histograms/tags")
    images = get(server, "/data/plugin/images/tags")
    for run in RUNS:
        assert {"dense_0/kernel", "dense_0/kernel_gradient", "head/bias"} <= set(
            histograms[f"{run}/train"]
        )
        assert {"confusion_matrix", "decision_boundary"} <= set(images[f"{run}/validation"])


def test_hparams_plugin_lists_every_run_with_hparams_and_metric_values(server, logdir):
    _, results = logdir
    experiment = post(server, "/data/plugin/hparams/experiment", {"experimentName": ""})
    hparam_names = {info["name"] for info in experiment["hparamInfos"]}
    # The swept key is the first column, before the keys both runs share.
    assert experiment["hparamInfos"][0]["name"] == "model.activation"
    assert {"model.activation", "optimizer.learning_rate.initial_learning_rate", "seed"} <= (
        hparam_names
    )
    metric_names = {(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]}
    assert {("validation", "accuracy"), ("test", "accuracy"), ("test", "loss")} <= metric_names

    # What the dashboard asks for when it opens: every status, every column.
    request = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"hparam": name, "includeInResult": True} for name in sorted(hparam_names)],
        "startIndex": 0,
        "sliceSize": 100,
    }
    response = post(server, "/data/plugin/hparams/session_groups", request)
    groups = {group["name"]: group for group in response["sessionGroups"]}
    assert set(groups) == set(RUNS)
    for run, activation in zip(RUNS, ("relu", "tanh"), strict=True):
        group = groups[run]
        assert group["hparams"]["model.activation"] == activation
        assert group["hparams"]["train.epochs"] == 1
        (session,) = group["sessions"]
        assert session["name"] == run and session["status"] == "STATUS_SUCCESS"
        served = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in group["metricValues"]}
        for split in ("validation", "test"):
            for tag in ("loss", "accuracy"):
                assert served[(split, tag)] == pytest.approx(
                    results[run][f"{split}_{tag}"], rel=1e-6
                )
