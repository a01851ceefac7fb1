"""Training under tf.distribute: the `distribute:` config, TF_CONFIG, runs that match one device.

Two logical CPU devices stand in for two GPUs (`distribute.cpu_devices: 2`), in
a fresh process (tests/_distribute_mirrored.py) because logical devices are set
before TensorFlow initialises. Two worker processes on 127.0.0.1 stand in for
two machines. The reference everywhere is a one-device run with the same seed
and global batch: the distributed step must compute the same update.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kerasmlp import distribute
from kerasmlp.config import ConfigError, DistributeConfig, load_config
from tests.conftest import REPO_ROOT, invoke_train

SCRIPT = pathlib.Path(sys.executable).with_name("kerasmlp-train")
MIRRORED = pathlib.Path(__file__).with_name("_distribute_mirrored.py")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


# --- config and TF_CONFIG, without TensorFlow -----------------------------------


def _tf_config(workers, task_type="worker", index=0, **cluster):
    return json.dumps(
        {"cluster": {"worker": workers, **cluster}, "task": {"type": task_type, "index": index}}
    )


@pytest.mark.parametrize(
    "text,expected",
    [
        # Worker 0 is the chief when there is no chief job (TensorFlow's rule).
        (_tf_config(["a:1", "b:1"], index=0), distribute.Role(0, 2, 2, True)),
        (_tf_config(["a:1", "b:1"], index=1), distribute.Role(1, 2, 2, False)),
        # With a chief job, the chief is worker 0 of 3 and the workers follow it.
        (_tf_config(["a:1", "b:1"], "chief", 0, chief=["c:1"]), distribute.Role(0, 3, 3, True)),
        (_tf_config(["a:1", "b:1"], "worker", 0, chief=["c:1"]), distribute.Role(1, 3, 3, False)),
        # An index written as a string: TensorFlow's TFConfigClusterResolver takes
        # int(index) (task_id 1, TF 2.21), and MultiWorkerMirroredStrategy runs with it.
        (_tf_config(["a:1", "b:1"], index="1"), distribute.Role(1, 2, 2, False)),
    ],
    ids=["worker0-chief", "worker1", "chief-job", "worker-after-chief", "string-index"],
)
def test_tf_config_gives_the_role(text, expected):
    assert distribute.parse_tf_config(text) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        (None, "needs TF_CONFIG"),
        ("{bad", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', '"cluster"'),
        ('{"cluster": {"worker": ["nohostport"]}, "task": {}}', "host:port"),
        (_tf_config(["a:1"], "ps", 0), "not a job of the cluster"),
        (_tf_config(["a:1"], "worker", 1), "index must be an integer in [0, 1)"),
        # TensorFlow's int() refuses "0.5" with a traceback; "1" is out of range as 1 is.
        (
            _tf_config(["a:1"], "worker", "0.5"),
            "integer in [0, 1) for job 'worker'. Received: '0.5'",
        ),
        (_tf_config(["a:1"], "worker", "1"), "integer in [0, 1) for job 'worker'. Received: '1'"),
        # No "index": TensorFlow's resolver gives task_id None, and the strategy a traceback.
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker"}}',
            "index must be an integer in [0, 1) for job 'worker'. Received: None",
        ),
        (_tf_config(["a:1"], "evaluator", 0, evaluator=["e:1"]), "does not train"),
        # TensorFlow's server would fail on these with a traceback, or refuse two chiefs.
        (_tf_config(["127.0.0.1:abc"], "worker", 0), "each port a number from 1 to 65535"),
        (_tf_config(["127.0.0.1:70000"], "worker", 0), "each port a number from 1 to 65535"),
        (_tf_config(["a:1"], "worker", 0, chief=["c:1", "c:2"]), '"chief" holds one task at'),
        # A "ps" job: every worker waited for its tasks forever (TF 2.21); another name:
        # TensorFlow's "Disallowed task type found in cluster spec" traceback.
        (_tf_config(["a:1"], "worker", 0, ps=["p:1"]), 'cluster job "ps" is not one of'),
        (_tf_config(["a:1"], "worker", 0, trainer=["b:1"]), 'cluster job "trainer" is not'),
        # One address for two tasks: the second could not listen, the first waited for it.
        (_tf_config(["a:1", "a:1"], "worker", 0), 'lists "a:1" for two tasks'),
        (_tf_config(["a:1"], "worker", 0, chief=["a:1"]), 'lists "a:1" for two tasks'),
        # Two names of one address: worker 1 could not listen, worker 0 waited for it
        # forever (seen with localhost/127.0.0.1, TF 2.21). TensorFlow's server listens on
        # every interface (0.0.0.0:port): every loopback address is this machine's.
        (
            _tf_config(["localhost:1", "127.0.0.1:1"]),
            '"localhost:1" and "127.0.0.1:1", one address (this machine, port 1), for two',
        ),
        (_tf_config(["[::1]:1", "127.0.0.2:1"]), "one address (this machine, port 1)"),
        (_tf_config(["Host1:1", "host1.:1"]), "one address (host1, port 1)"),  # DNS ignores case
    ],
    ids=[
        "missing",
        "not-json",
        "not-object",
        "no-cluster",
        "address",
        "job",
        "index",
        "string-not-integer",
        "string-index-out-of-range",
        "no-index",
        "evaluator",
        "port",
        "port-range",
        "two-chiefs",
        "ps-job",
        "other-job",
        "same-address",
        "same-address-chief",
        "localhost-and-127.0.0.1",
        "loopback-v6-and-v4",
        "name-case",
    ],
)
def test_a_bad_tf_config_is_refused_in_one_line(text, message):
    with pytest.raises(ConfigError) as info:
        distribute.parse_tf_config(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_tf_config_host_names_that_resolve_to_one_address_are_refused():
    # `resolve` stands in for DNS: two names of one machine, at one port.
    text = _tf_config(["host-a:1", "host-b:1", "host-c:2"])
    with pytest.raises(ConfigError) as info:
        distribute.check_cluster_hosts(text, resolve=lambda host: {"10.0.0.7"})
    assert str(info.value).startswith(
        'TF_CONFIG cluster lists "host-a:1" and "host-b:1", which resolve here to one '
        "address (10.0.0.7, port 1), for two tasks"
    )
    # A name of this machine (/etc/hosts maps one to 127.0.1.1 on Debian) and localhost.
    with pytest.raises(ConfigError, match=r"one address \(this machine, port 1\)"):
        distribute.check_cluster_hosts(
            _tf_config(["myhost:1", "localhost:1"]), resolve=lambda host: {"this machine"}
        )
    assert distribute.check_cluster_hosts(text, resolve=lambda host: {host}) == []


def test_a_tf_config_host_that_does_not_resolve_gets_a_line():
    # `.invalid` never resolves (RFC 2606); refused at once by this machine's resolver (1 ms).
    # Not refused: a cluster manager's names may resolve only once their tasks start.
    text = _tf_config(["localhost:1", "nohost.invalid:1", f"{'a' * 64}.invalid:1"])
    assert distribute.check_cluster_hosts(text) == [
        'TF_CONFIG host "nohost.invalid" (worker 1) does not resolve here: this worker waits '
        "for it as for a task not yet started (a typo? a cluster manager's names may resolve "
        "only once their tasks start)",
        f'TF_CONFIG host "{"a" * 64}.invalid" (worker 2) does not resolve here: this worker '
        "waits for it as for a task not yet started (a typo? a cluster manager's names may "
        "resolve only once their tasks start)",
    ]


def test_a_resolver_that_does_not_answer_is_waited_for_timeout_seconds():
    answered = threading.Event()
    start = time.monotonic()
    text = _tf_config(["slow:1", "127.0.0.1:1"])
    lines = distribute.check_cluster_hosts(
        text, timeout=0.2, resolve=lambda host: answered.wait(30) and set()
    )
    assert lines == [] and time.monotonic() - start < 5  # not the resolver's 30 s
    answered.set()


def test_role_line_names_the_worker_and_the_chief():
    assert distribute.Role(0, 2, 2, True, "multi_worker").describe() == (
        "worker 1 of 2 (chief) | multi_worker | 2 replicas"
    )
    assert distribute.Role(1, 2, 4, False, "multi_worker").describe() == (
        "worker 2 of 2 | multi_worker | 4 replicas"
    )


def test_global_batch_must_divide_by_the_replicas():
    assert distribute.check_batch_size(64, 2) == 32
    with pytest.raises(ConfigError, match=r"train.batch_size=63 is the global batch .* 2 replicas"):
        distribute.check_batch_size(63, 2)


def test_config_defaults_and_refusals():
    assert load_config(None).distribute == DistributeConfig("auto", 1)
    with pytest.raises(ConfigError, match="Did you mean 'mirrored'"):
        load_config(None, ["distribute.strategy=mirorred"])
    with pytest.raises(ConfigError, match="distribute.cpu_devices must be <= 64"):
        load_config(None, ["distribute.cpu_devices=65"])


@pytest.mark.parametrize(
    "strategy,cpu_devices,role,tf_config,expected",
    [
        ("auto", 1, distribute.Role(), None, []),
        ("auto", 1, distribute.Role(), _tf_config(["a:1"]), []),  # a cluster of one
        (
            "auto",
            1,
            distribute.Role(),
            _tf_config(["a:1", "b:1"], index=1),
            [
                "TF_CONFIG names 2 workers, but distribute.strategy is auto (one_device): "
                "this process trains alone; --strategy multi_worker trains with the others"
            ],
        ),
        (
            "multi_worker",
            1,
            distribute.Role(0, 2, 2, True, "multi_worker"),
            _tf_config(["a:1", "b:1"]),
            [],
        ),
        (
            "one_device",
            2,
            distribute.Role(),
            None,
            [
                "distribute.cpu_devices=2 splits the CPU for the mirrored strategy; "
                "distribute.strategy is one_device (one_device): one device trains, "
                "--strategy mirrored trains a replica on each"
            ],
        ),
        ("mirrored", 2, distribute.Role(replicas=2, strategy="mirrored"), None, []),
        # The role of two workers on CPUs: MultiWorkerMirroredStrategy made 1 replica a
        # worker with cpu_devices=2 (metrics.json of a one-worker run said replicas: 1).
        (
            "multi_worker",
            2,
            distribute.Role(0, 2, 2, True, "multi_worker"),
            _tf_config(["a:1", "b:1"]),
            [
                "distribute.cpu_devices=2 splits the CPU for the mirrored strategy; "
                "distribute.strategy is multi_worker: each worker trains 1 replica, on its "
                "GPUs or else on one CPU device"
            ],
        ),
    ],
    ids=[
        "nothing",
        "cluster-of-one",
        "cluster-unused",
        "multi-worker",
        "cpus-unused",
        "mirrored",
        "cpus-unused-multi-worker",
    ],
)
def test_settings_for_more_devices_than_the_run_uses_are_named(
    strategy, cpu_devices, role, tf_config, expected
):
    environ = {"TF_CONFIG": tf_config} if tf_config else {}
    config = DistributeConfig(strategy, cpu_devices)
    assert distribute.unused_settings(config, role, environ) == expected


def test_a_run_that_trains_alone_under_a_cluster_tf_config_says_so(tmp_path):
    # A cluster manager's TF_CONFIG, the config's strategy left at auto: the run line says it.
    tf_config = _tf_config(["127.0.0.1:1", "127.0.0.1:2"])
    args = ["--epochs", "1", "--set", "model.hidden_units=[4]", "--logdir", str(tmp_path)]
    result = invoke_train(args, env={"TF_CONFIG": tf_config})
    assert result.exit_code == 0, result.output[-2000:]
    assert result.output.splitlines()[0] == (
        "TF_CONFIG names 2 workers, but distribute.strategy is auto (one_device): this "
        "process trains alone; --strategy multi_worker trains with the others"
    )


def test_a_run_records_the_strategy_auto_chose(tmp_path):
    # `auto` without GPUs (conftest hides them) is one_device (README's table): status.json
    # and metrics.json say so beside replicas and workers; config.yaml keeps `auto`.
    args = ["--epochs", "1", "--set", "model.hidden_units=[4]", "--logdir", tmp_path]
    result = invoke_train([*args, "--run-name", "run"], env={"TF_CONFIG": ""})
    assert result.exit_code == 0, result.output[-2000:]
    run = tmp_path / "run"
    for name in ("status.json", "metrics.json"):
        record = json.loads((run / name).read_text())
        assert (record["strategy"], record["replicas"], record["workers"]) == ("one_device", 1, 1)
    assert load_config(run / "config.yaml").distribute.strategy == "auto"


@pytest.mark.parametrize(
    "args,tf_config,message",
    [
        (["--strategy", "mirorred"], None, "Unknown strategy 'mirorred' (distribute.strategy)"),
        (["--strategy", "multi_worker"], None, "multi_worker needs TF_CONFIG"),
        ([], "{bad", "TF_CONFIG is not valid JSON"),
    ],
    ids=["unknown-name", "no-tf-config", "bad-tf-config"],
)
def test_cli_refuses_before_tensorflow_starts(tmp_path, args, tf_config, message):
    env = {"TF_CONFIG": tf_config} if tf_config else {"TF_CONFIG": ""}
    result = invoke_train([*args, "--logdir", str(tmp_path)], env=env)
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing written


# --- two logical CPUs: MirroredStrategy against one device ----------------------


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mirrored")
    proc = subprocess.run(
        [sys.executable, str(MIRRORED), str(workdir)],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["stdout"] = proc.stdout
    return report


def test_mirrored_weights_equal_one_device(mirrored):
    one, two = mirrored["one_device"], mirrored["mirrored"]
    assert one["results"]["steps"] == two["results"]["steps"] == 57  # one epoch: ceil(3600 / 64)
    for a, b in zip(one["weights"], two["weights"], strict=True):
        # Same global batches, same loss: only the order of float32 sums differs
        # (each replica sums half of the batch), hence 1e-5 and not equality.
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_mirrored_logs_what_one_device_logs(mirrored):
    one, two = mirrored["one_device"], mirrored["mirrored"]
    for tag in ("train_loss", "gradient_norm"):
        assert [s for s, _ in one[tag]] == [s for s, _ in two[tag]]
        np.testing.assert_allclose([v for _, v in two[tag]], [v for _, v in one[tag]], rtol=1e-5)
    for key, value in one["results"].items():
        if key in ("wall_time_s", "examples_per_second", "strategy", "replicas"):
            continue
        if isinstance(value, str):  # e.g. the precision trained in
            assert two["results"][key] == value, key
        else:
            assert two["results"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


def test_mirrored_clips_the_summed_gradients_as_one_device(mirrored):
    # Reference: the one-device run with the same optimizer.clipvalue, to 1e-5 as above.
    # Keras's class under the strategy clips each replica's part before the sum
    # (tests/_optimizers_mirrored.py shows it); kerasmlp's clips the sum.
    one, two = mirrored["one_device_clipped"], mirrored["mirrored_clipped"]
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    # The logged norm is the summed gradients' own, before clipping, on both.
    np.testing.assert_allclose(
        [v for _, v in two["gradient_norm"]], [v for _, v in one["gradient_norm"]], rtol=1e-5
    )
    # The clipping bit: without it the one-device run ended elsewhere.
    unclipped = mirrored["one_device"]["weights"]
    assert (
        max(
            np.max(np.abs(np.subtract(a, b)))
            for a, b in zip(one["weights"], unclipped, strict=True)
        )
        > 1e-3
    )


def test_mirrored_trains_in_mixed_float16_as_one_device_in_float32(mirrored):
    # The replicas' gradients are summed before the loss scale's finiteness check
    # (see Trainer._reduce_before_loss_scaling), the logged norm is unscaled and
    # global. Reference: the float32 one-device run. Over the first 4 rounds (28
    # steps) only float16 rounding (2^-11 relative each) separates them: 1%
    # (measured: <= 0.3%). Later, Adam's normalised steps magnify those differences
    # (the last round, one step on 16 examples, differed by 7%): 15%.
    one, mixed = mirrored["one_device"], mirrored["mirrored_mixed_float16"]
    assert mixed["results"]["precision"] == "mixed_float16"
    assert mixed["results"]["replicas"] == 2
    for tag in ("train_loss", "gradient_norm"):
        assert [s for s, _ in mixed[tag]] == [s for s, _ in one[tag]]
        got, want = [v for _, v in mixed[tag]], [v for _, v in one[tag]]
        np.testing.assert_allclose(got[:4], want[:4], rtol=1e-2)
        np.testing.assert_allclose(got, want, rtol=0.15)
    assert [v for _, v in mixed["skipped_steps"]] == [0.0] * len(one["train_loss"])
    assert mixed["results"]["test_accuracy"] == pytest.approx(
        one["results"]["test_accuracy"], abs=0.01
    )


def test_mirrored_trains_and_converges_with_dropout_on(mirrored):
    # Each replica drops units of its own rows; the run cannot equal one device step
    # by step, so it must learn: 8 epochs of the spirals with dropout 0.2 reached
    # 0.94-0.97 test accuracy here (seeds 0 and 1), from 0.6 after the first epoch.
    run = mirrored["mirrored_dropout"]
    assert run["results"]["replicas"] == 2 and run["results"]["steps"] == 8 * 57
    losses = [v for _, v in run["train_loss"]]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8]), losses
    assert run["results"]["test_accuracy"] >= 0.85, run["results"]


@pytest.mark.parametrize("data", ["images", "table"])
def test_mirrored_trains_raw_images_and_tables_as_one_device(mirrored, data):
    # Raw uint8 images (mock MNIST: Rescaling and Flatten in the model, each replica
    # gathering its uint8 rows) and a CSV with a string column (a dict of columns,
    # looked up and normalized in the model) and class weights: weights to 1e-5 as above, the same
    # metrics, and the images drawn on the chief.
    one, two = mirrored[f"{data}_one_device"], mirrored[f"{data}_mirrored"]
    assert two["results"]["replicas"] == 2
    assert one["results"]["steps"] == two["results"]["steps"] > 1
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    for key in ("train_loss", "validation_loss", "test_loss", "test_accuracy"):
        assert two["results"][key] == pytest.approx(one["results"][key], rel=1e-5), key
    if data == "images":
        assert one["images"] == two["images"] == ["confusion_matrix", "misclassified"]


def test_each_replica_draws_its_own_dropout_masks_and_shifts(mirrored):
    # Keras's Dropout and random layers draw from one mirrored SeedGenerator state: every
    # replica drew the same mask for the k-th example of its share (seen with Keras 3.15:
    # `keras_dropout` in the report). kerasmlp's layers fold the replica's id into the seed.
    draws = mirrored["replica_draws"]
    for name in ("dropout", "random_shift"):
        assert draws[name] == {"replicas_equal": False, "calls_equal": False}, name
    assert draws["keras_dropout"]["calls_equal"] is False


def test_one_process_runs_mirrored_models_of_different_shapes_one_after_another(mirrored):
    # The subprocess trained three models under MirroredStrategy (spirals, images,
    # table), as a sweep does: a second MirroredStrategy over the same devices would
    # have reused the first one's collective instance and aborted ("Shape mismatch
    # in the collective instance 100"; TensorFlow issue 62790), so the process makes
    # one and every run uses it (kerasmlp.distribute.make_strategy).
    shapes = {
        name: [np.shape(w) for w in mirrored[name]["weights"]]
        for name in ("mirrored", "images_mirrored", "table_mirrored")
    }
    assert len({str(s) for s in shapes.values()}) == 3


def test_mirrored_run_records_replicas_and_names_its_role(mirrored):
    two = mirrored["mirrored"]
    assert (two["results"]["strategy"], two["results"]["replicas"]) == ("mirrored", 2)
    assert (two["status"]["strategy"], two["status"]["replicas"]) == ("mirrored", 2)
    assert two["results"]["workers"] == two["status"]["workers"] == 1
    assert mirrored["one_device"]["results"]["replicas"] == 1
    assert "worker 1 of 1 (chief) | mirrored | 2 replicas" in mirrored["stdout"]


def test_keras_loss_divides_by_the_replicas_inside_a_strategy(mirrored):
    # Why the step sums per-example losses itself: Keras's `sum_over_batch_size`
    # already divides by the 2 replicas inside strategy.run.
    assert mirrored["keras_loss_in_replica_over_outside"] == pytest.approx(0.5)


# --- two worker processes on 127.0.0.1 -------------------------------------------

WORKER_SETTINGS = [
    "--set",
    "model.hidden_units=[16,16]",
    "--set",
    "train.log_every_steps=19",
    "--set",
    "train.histogram_every_epochs=0",
    "--set",
    "train.image_every_epochs=0",
    # Compared with one process to 1e-5: float32, whatever `auto` would pick here.
    "--set",
    "train.precision=float32",
]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(tmp_path, args, count=2, tmp_prefix="tmp"):
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(count)]
    procs = []
    for index in range(count):
        tf_config = json.dumps(
            {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        )
        tmpdir = tmp_path / f"{tmp_prefix}{index}"
        tmpdir.mkdir(exist_ok=True)
        procs.append(
            subprocess.Popen(
                [str(SCRIPT), *args],
                cwd=tmp_path,
                env=_env(TF_CONFIG=tf_config, TMPDIR=str(tmpdir)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        )
    return procs


def _finish(procs, timeout):
    """Waits for every worker up to `timeout` seconds in all; kills what is left."""
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return outputs


def _wait_for_checkpoint(run_dir, step, procs, timeout):
    """Until the chief's status.json names a checkpoint at `step` or later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = json.loads((run_dir / "status.json").read_text())
        except (OSError, ValueError):
            status = {}
        if status.get("checkpoint_step", 0) >= step:
            return
        if any(proc.poll() is not None for proc in procs):
            return  # finished or failed: the test then says which
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint at step {step} after {timeout} s")


@pytest.fixture(scope="module")
def spirals_dir(tmp_path_factory):
    """A TFDS data_dir with the spirals dataset made once: workers then only read it."""
    from kerasmlp.data import load_datasets

    data_dir = tmp_path_factory.mktemp("data")
    load_datasets("spirals", batch_size=64, data_dir=str(data_dir))
    return data_dir


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, spirals_dir):
    """Two workers; one (not the chief) gets SIGTERM; both are resumed to the end.

    Returns the folder, the one-process reference's output, the interrupted
    workers' and the resumed workers' (exit status, stdout, stderr).
    """
    tmp_path = tmp_path_factory.mktemp("workers")
    settings = [*WORKER_SETTINGS, "--set", f"data.data_dir={spirals_dir}"]
    run_dir = tmp_path / "logs" / "run"
    # Far more epochs than will run. Once the chief has checkpointed the end of
    # epoch 1 (step 57), only worker 2 is asked to stop: both must stop after the
    # same compiled call, the chief saving a checkpoint there.
    args = [*settings, "--epochs", "50", "--strategy", "multi_worker"]
    procs = _start_workers(
        tmp_path, [*args, "--logdir", str(tmp_path / "logs"), "--run-name", "run"]
    )
    try:
        _wait_for_checkpoint(run_dir, 57, procs, timeout=240)
        procs[1].send_signal(signal.SIGTERM)
    finally:
        interrupted = _finish(procs, timeout=120)
    stops = {
        int(m) for _, out, _ in interrupted for m in re.findall(r"interrupted at step (\d+)", out)
    }
    assert len(stops) == 1, interrupted
    # Resumed to the end of the epoch after the one in progress; the learning-rate
    # schedule follows the step, so a one-process run of as many epochs is the reference.
    epochs = stops.pop() // 57 + 1
    resumed = _start_workers(
        tmp_path, ["--resume", str(run_dir), "--epochs", str(epochs)], tmp_prefix="resumed"
    )
    # The one-process reference trains here, in the test's process, meanwhile.
    reference = invoke_train(
        [*settings, "--epochs", str(epochs), "--logdir", str(tmp_path / "reference")]
        + ["--run-name", "run"],
        env={"TF_CONFIG": None},
    )
    resumed = _finish(resumed, timeout=300)
    assert reference.exit_code == 0, reference.output[-3000:]
    return tmp_path, reference.stdout, interrupted, resumed, epochs


def test_a_signal_to_one_worker_stops_both_after_the_same_call(two_workers):
    _, _, interrupted, _, _ = two_workers
    # The chief was not signalled itself: 130, the code of an interrupted run; the
    # signalled worker: 143 (128 + SIGTERM), as a shell reports it.
    assert [code for code, _, _ in interrupted] == [130, 143], interrupted[0][2][-3000:]
    assert interrupted[0][1].startswith("worker 1 of 2 (chief) | multi_worker | 2 replicas\n")
    assert interrupted[1][1].startswith("worker 2 of 2 | multi_worker | 2 replicas\n")


def test_interrupted_workers_resume_and_exit_0(two_workers):
    _, _, _, outputs, _ = two_workers
    for code, out, err in outputs:
        assert code == 0, err[-3000:]
        assert "resuming at step" in out
    assert outputs[0][1].startswith("worker 1 of 2 (chief) | multi_worker | 2 replicas\n")
    assert outputs[1][1].startswith("worker 2 of 2 | multi_worker | 2 replicas\n")


def test_only_the_chief_writes_a_complete_run_folder(two_workers):
    tmp_path, _, _, _, _ = two_workers
    logs = tmp_path / "logs"
    assert [p.name for p in logs.iterdir()] == ["run"]
    run = logs / "run"
    for name in ("config.yaml", "status.json", "metrics.json", "model.keras", "checkpoints"):
        assert (run / name).exists(), name
    for split in ("train", "validation", "test"):
        assert any((run / split).glob("events.out.tfevents.*")), split
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "completed"
    assert (status["strategy"], status["replicas"], status["workers"]) == ("multi_worker", 2, 2)
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["strategy"], metrics["replicas"], metrics["workers"]) == ("multi_worker", 2, 2)
    # The other worker's temporary folder (its checkpoints, events, model) is gone.
    assert not any((tmp_path / "resumed1").iterdir())
    assert not any((tmp_path / "resumed0").iterdir())


def test_two_workers_interrupted_and_resumed_train_as_one_process_does(two_workers):
    import keras

    import kerasmlp  # noqa: F401 - registers the model's classes for loading

    tmp_path, reference_out, _, outputs, epochs = two_workers
    one = keras.models.load_model(tmp_path / "reference" / "run" / "model.keras")
    two = keras.models.load_model(tmp_path / "logs" / "run" / "model.keras")
    for a, b in zip(one.get_weights(), two.get_weights(), strict=True):
        # As on two logical devices: the same global batches and objective; the
        # all-reduce adds the two halves' gradients in another order than one
        # device's sum, a float32 rounding difference of ~1e-7 per step.
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    # The epoch lines (train and validation values). The two workers print the
    # same lines: the all-reduce hands both the same sums, so their weights are
    # the same bits, and each evaluates the same validation split. Against one
    # process, the weights differ by ~1e-7, which can round a value printed to 4
    # decimals either way: the last epoch's values equal to one unit in the last place.
    chief, other = (
        [x for x in out.splitlines() if x.startswith("epoch ")] for _, out, _ in outputs
    )
    assert chief == other and chief[-1].startswith(f"epoch {epochs} "), (chief, other)
    (last,) = [x for x in reference_out.splitlines() if x.startswith(f"epoch {epochs} ")]
    assert _logged_values(chief[-1]) == pytest.approx(_logged_values(last), rel=0, abs=1.01e-4)


def _logged_values(line):
    """`{name: value}` of a fixed-width log line (`format_logs`), step left out."""
    return {name: float(value) for name, value in re.findall(r"(\w+) (-?\d+\.\d+)", line)}


def test_ctrl_c_ends_a_worker_whose_peer_never_starts(tmp_path, spirals_dir):
    # MultiWorkerMirroredStrategy waits in C++ for every worker of TF_CONFIG, where
    # Python's handlers cannot run: Ctrl-C, a second one and SIGTERM were all ignored,
    # and only SIGKILL ended the process. Nothing is written yet: it ends at once.
    args = [*WORKER_SETTINGS, "--set", f"data.data_dir={spirals_dir}", "--epochs", "1"]
    args += ["--strategy", "multi_worker", "--logdir", str(tmp_path / "logs"), "--run-name", "run"]
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    tf_config = json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": 0}}
    )
    alone = subprocess.Popen(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env=_env(TF_CONFIG=tf_config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # Its server listens once the strategy is being made: then it waits for worker 1.
        host, port = addresses[0].split(":")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and alone.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex((host, int(port))) == 0:
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"worker 0 never listened: {alone.communicate()}")
        time.sleep(1.0)
        alone.send_signal(signal.SIGINT)
        alone.wait(timeout=20)
    finally:
        if alone.poll() is None:
            os.killpg(alone.pid, signal.SIGKILL)
            alone.wait()
            pytest.fail("a worker waiting for its peer ignored Ctrl-C")
    assert alone.returncode in (-signal.SIGINT, 130)
    assert not (tmp_path / "logs" / "run").exists()


def test_a_worker_whose_port_is_taken_is_refused_in_one_line(tmp_path):
    # The same task started twice: the second's server cannot bind the port, which
    # TensorFlow reported as a traceback ending in "Could not start gRPC server".
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    host, port = addresses[0].split(":")
    with socket.socket() as first:  # the first start of task worker 0 holds its port
        first.bind((host, int(port)))
        first.listen()
        result = subprocess.run(
            [str(SCRIPT), "--strategy", "multi_worker", "--logdir", str(tmp_path), "--epochs", "1"],
            cwd=tmp_path,
            env=_env(TF_CONFIG=_tf_config(addresses)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert (
        f"kerasmlp-train: error: TF_CONFIG task worker 0 ({addresses[0]}): port {port} is "
        "taken on this machine"
    ) in result.stderr


def test_a_checkpoint_write_a_lost_peer_aborted_reports_the_lost_worker(tmp_path):
    # Under MultiWorkerMirroredStrategy a checkpoint's save runs collectives: a worker
    # killed while the chief writes one aborts the write with the coordination
    # service's UnavailableError (this message is one CI printed), which
    # RunCheckpoints.save wraps in "cannot write a checkpoint". The run must still say
    # which worker was lost, not blame the disk.
    import tensorflow as tf

    from kerasmlp import train
    from kerasmlp.checkpoints import RunCheckpoints

    message = (
        "{{function_node __inference_<lambda>_909}} Collective ops is aborted by: Error "
        "reported from /job:worker/task:1: The following tasks are unhealthy (stopped "
        "sending heartbeats): /job:worker/replica:0/task:1 The tasks have crashed."
    )

    class AbortedWriter:  # the save's first step, standing in for its collectives
        def flush(self):
            raise tf.errors.UnavailableError(None, None, message)

    checkpoints = RunCheckpoints(
        tmp_path / "checkpoints", {"step": tf.Variable(0)}, keep=1, writer=AbortedWriter()
    )
    with pytest.raises(OSError, match="cannot write a checkpoint") as raised:
        checkpoints.save({}, step=57)
    lost = train.peer_loss(raised.value)
    assert isinstance(lost, tf.errors.UnavailableError)
    assert str(train.WorkerLost(tmp_path, lost)).startswith(
        "lost task /job:worker/replica:0/task:1 of the multi-worker run (UnavailableError);"
    )

    # A disk that fails is still the disk's failure.
    class FullDisk:
        def flush(self):
            raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    full = RunCheckpoints(tmp_path / "full", {"step": tf.Variable(0)}, keep=1, writer=FullDisk())
    with pytest.raises(OSError, match="No space left on device") as raised:
        full.save({}, step=57)
    assert train.peer_loss(raised.value) is None


# Small enough that the test below costs little: 15 steps of 256 spirals per epoch,
# and no validation split to evaluate at each epoch's end.
TINY_SETTINGS = [
    "--set",
    "model.hidden_units=[8]",
    "--set",
    "train.batch_size=256",
    "--set",
    "train.validation_fraction=0",
    "--set",
    "train.log_every_steps=5",
    "--set",
    "train.histogram_every_epochs=0",
    "--set",
    "train.image_every_epochs=0",
]
TINY_STEPS_PER_EPOCH = 16  # ceil(4000 / 256): the whole training split


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_ends_the_other_and_both_resumed_finish_it(tmp_path, spirals_dir):
    """SIGKILL to one worker mid-sweep ends the other in one line; `--resume` on both
    then completes every point.

    Four things in one pair of workers, to keep the suite short: a worker killed
    outright (no handler, no goodbye) ends the chief with one line saying which;
    the run continues from the chief's last epoch checkpoint; a sweep runs under
    multi_worker, the second point under the strategy the process made for the
    first (one per process); and the training split read through tf.data
    (`data.cache: false`) restores its data position on both workers; all in
    mixed_float16, whose loss scale the checkpoints carry.
    """
    grid = tmp_path / "grid.yaml"
    grid.write_text("seed: [1, 2]\n")
    logs, sweep_dir = tmp_path / "logs", tmp_path / "logs" / "sweep"
    args = [*TINY_SETTINGS, "--set", f"data.data_dir={spirals_dir}", "--set", "data.cache=false"]
    # Mixed precision with loss scaling too: its scale is in the checkpoints that resume.
    args += ["--set", "train.precision=mixed_float16"]
    args += ["--epochs", "50", "--strategy", "multi_worker", "--sweep", str(grid)]
    procs = _start_workers(tmp_path, [*args, "--logdir", str(logs), "--run-name", "sweep"])
    try:
        _wait_for_checkpoint(sweep_dir / "00-seed=1", TINY_STEPS_PER_EPOCH, procs, timeout=240)
        procs[1].kill()  # SIGKILL: no handler, no goodbye
        start = time.monotonic()
        (code, _, err), (killed, _, _) = _finish(procs, timeout=120)
        waited = time.monotonic() - start
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert killed == -signal.SIGKILL
    # TensorFlow's coordination service misses the heartbeats (every few seconds)
    # and aborts the all-reduce the chief waits in; 120 s bounds it generously.
    assert waited < 120
    assert code == 1, err[-3000:]
    assert "Traceback" not in err
    last = err.rstrip().splitlines()[-1]
    assert last.startswith("kerasmlp-train: error: lost "), last
    # The point that was training, and the sweep's folder to resume (not the point's:
    # that would finish the point alone).
    assert "of the multi-worker run (UnavailableError) in sweep run 00-seed=1 (seed=1); " in last
    assert last.endswith(f"kerasmlp-train --resume {sweep_dir} (on every worker)"), last
    status = json.loads((sweep_dir / "00-seed=1" / "status.json").read_text())
    assert status["state"] == "failed" and status["checkpoint_step"] >= TINY_STEPS_PER_EPOCH
    # Continue for one epoch past the last recorded checkpoint.
    epochs = status["checkpoint_step"] // TINY_STEPS_PER_EPOCH + 1
    resumed = _start_workers(
        tmp_path, ["--resume", str(sweep_dir), "--epochs", str(epochs)], tmp_prefix="resumed"
    )
    outputs = _finish(resumed, timeout=300)
    for code, out, err in outputs:
        assert code == 0, err[-3000:]
        assert "sweep run 00-seed=1\n" in out and "sweep run 01-seed=2\n" in out
        assert "resuming at step" in out
    assert "\nworker 1 of 2 (chief) | multi_worker | 2 replicas\n" in outputs[0][1]
    assert "\nworker 2 of 2 | multi_worker | 2 replicas\n" in outputs[1][1]
    assert "summary:" in outputs[0][1] and "summary:" not in outputs[1][1]
    # Both workers hold the same weights, so each worker's own test evaluation agrees.
    chief, other = (
        [x for x in out.splitlines() if x.startswith(("epoch ", "test "))] for _, out, _ in outputs
    )
    assert chief == other and sum(x.startswith("test ") for x in chief) == 2, (chief, other)
    # Only the chief wrote: the sweep's plan and summary, and both points complete.
    assert [p.name for p in logs.iterdir()] == ["sweep"]
    assert sorted(p.name for p in sweep_dir.iterdir()) == [
        "00-seed=1",
        "01-seed=2",
        "summary.txt",
        "sweep.yaml",
    ]
    for point in ("00-seed=1", "01-seed=2"):
        status = json.loads((sweep_dir / point / "status.json").read_text())
        assert status["state"] == "completed" and status["epoch"] == epochs, point
        assert (status["replicas"], status["workers"]) == (2, 2)
        metrics = json.loads((sweep_dir / point / "metrics.json").read_text())
        assert (metrics["replicas"], metrics["workers"]) == (2, 2)
        assert metrics["precision"] == "mixed_float16"
        assert metrics["steps"] == epochs * TINY_STEPS_PER_EPOCH
        assert "test_accuracy" in metrics
    assert not any((tmp_path / "resumed1").iterdir())  # the other worker's folder is gone


@pytest.mark.slow
def test_two_workers_roll_back_together_and_stop_together_when_the_run_diverges(
    tmp_path, spirals_dir
):
    """sgd at 1e30 diverges at once: every rollback and the final stop agree across workers.

    The divergence guard reads values that are all-reduced (the loss, the
    gradient norm) or mirrored (the weights), so both workers see the same bad
    step in the same compiled call; a rollback restores the same epoch-start
    checkpoint on each (the chief's in the run folder, the other's in its
    temporary folder) and lowers the rate by the same factor.
    """
    args = [*TINY_SETTINGS, "--set", f"data.data_dir={spirals_dir}", "--epochs", "2"]
    args += ["--set", "optimizer.name=sgd"]
    args += ["--set", "optimizer.learning_rate.initial_learning_rate=1e30"]
    args += ["--set", "train.on_divergence=rollback", "--set", "train.max_rollbacks=2"]
    args += ["--strategy", "multi_worker", "--logdir", str(tmp_path / "logs"), "--run-name", "nan"]
    outputs = _finish(_start_workers(tmp_path, args), timeout=240)
    assert [code for code, _, _ in outputs] == [3, 3], outputs[0][2][-3000:]
    rollbacks = [
        [x for x in out.splitlines() if x.startswith("rollback ")] for _, out, _ in outputs
    ]
    assert rollbacks[0] == rollbacks[1], rollbacks
    assert [x.split(":")[0] for x in rollbacks[0]] == ["rollback 1/2", "rollback 2/2"]
    assert all("back to step 0" in x for x in rollbacks[0])
    for _, _, err in outputs:
        assert "Traceback" not in err
        last = err.rstrip().splitlines()[-1]
        assert re.match(r"kerasmlp-train: error: diverged at step \d+ after 2 rollbacks: ", last), (
            last
        )
    # Only the chief wrote, and it says diverged; no model saved as if it were good.
    run_dir = tmp_path / "logs" / "nan"
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["nan"]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "diverged" and (status["replicas"], status["workers"]) == (2, 2)
    assert not (run_dir / "model.keras").exists() and not (run_dir / "metrics.json").exists()
    assert not any((tmp_path / "tmp1").iterdir())  # the other worker's folder is gone
