"""Training on several devices or machines: the `distribute:` config made into a strategy.

`make_strategy` turns `distribute.strategy` into a `tf.distribute` strategy
(or None: one device, the loop exactly as without distribution), and
`Role` says which worker this process is and how many replicas train in sync.
`parse_tf_config` reads the `TF_CONFIG` a multi-worker run needs, without
TensorFlow, so the CLI refuses a bad one before TensorFlow starts; TensorFlow
is imported inside the functions that need it for the same reason.

Logical CPU devices (`distribute.cpu_devices`) must be configured before
TensorFlow initialises its devices, and `MultiWorkerMirroredStrategy` must be
created before any other TensorFlow operation runs: `train_and_evaluate` calls
`configure_cpu_devices` and `make_strategy` first. A process makes one
strategy of each kind (one `MirroredStrategy` per device list, one
`MultiWorkerMirroredStrategy`) and every run in it (a sweep's points) uses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from kerasmlp.config import ConfigError, DistributeConfig, shorten

# The jobs whose tasks train (TensorFlow's `evaluator` and `ps` do not take part in
# MultiWorkerMirroredStrategy's all-reduce).
TRAINING_JOBS = ("chief", "worker")
# The one other job MultiWorkerMirroredStrategy's cluster may hold (outside the run).
EVALUATOR_JOB = "evaluator"
# How long the CLI waits for DNS on TF_CONFIG's host names, all of them together.
RESOLVE_TIMEOUT_S = 2.0

# This process's MultiWorkerMirroredStrategy, once made. Making it starts the
# process's server and enables collective ops in TensorFlow's context; a second
# one enables them again, which TensorFlow warns "may cause error when accessing
# previously created tensors" (seen with TF 2.21: it works, with that warning).
# So a sweep's points, run one after the other in one process, share the first.
_multi_worker_strategy = None
# This process's MirroredStrategy for each device list. Two of them over the same
# devices number their collective ops alike: the second run's gradient all-reduce
# reuses the first one's instance key, and TensorFlow, which keeps what that
# instance was, aborts it when the model differs ("Shape mismatch in the
# collective instance 100", seen with two sweep points of different widths;
# TensorFlow issue 62790). One strategy goes on counting, so its runs never collide.
_mirrored_strategies: dict[tuple[str, ...], Any] = {}


@dataclasses.dataclass(frozen=True)
class Role:
    """This process in the run.

    Attributes:
      worker: 0-based index among the training tasks (the chief is 0).
      workers: training tasks in the cluster (1 without a cluster).
      replicas: replicas that train in sync, over every worker.
      is_chief: this process writes the run folder.
      strategy: the name of the strategy in use ('one_device', 'mirrored', 'multi_worker').
    """

    worker: int = 0
    workers: int = 1
    replicas: int = 1
    is_chief: bool = True
    strategy: str = "one_device"

    def describe(self) -> str:
        """`worker 1 of 2 (chief) | multi_worker | 2 replicas`: the line each worker prints."""
        chief = " (chief)" if self.is_chief else ""
        replicas = "replica" if self.replicas == 1 else "replicas"
        return (
            f"worker {self.worker + 1} of {self.workers}{chief} | {self.strategy} | "
            f"{self.replicas} {replicas}"
        )


def parse_tf_config(text: str | None) -> Role:
    """The role `TF_CONFIG` gives this process (replicas not known yet: 1 per worker).

    `TF_CONFIG` is JSON: `{"cluster": {"worker": ["host:port", ...]}, "task":
    {"type": "worker", "index": 0}}`, optionally with a `chief` job of one task.
    The chief is the `chief` task, else worker 0.

    Raises:
      ConfigError: one line: not JSON, no cluster, a task not in the cluster.
    """
    if text is None or not text.strip():
        raise ConfigError(
            "distribute.strategy=multi_worker needs TF_CONFIG, e.g. "
            'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\''
        )
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e}). Received: {shorten(text)}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"TF_CONFIG must be a JSON object. Received: {shorten(text)}")
    cluster, task = value.get("cluster"), value.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ConfigError(
            f'TF_CONFIG must hold "cluster": {{"worker": ["host:port", ...]}}. '
            f"Received: {shorten(text)}"
        )
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(map(_is_address, addresses)):
            raise ConfigError(
                f'TF_CONFIG cluster "{job}" must list "host:port" strings, each port a '
                f"number from 1 to 65535. Received: {shorten(json.dumps(addresses))}"
            )
    # Two tasks cannot both listen at one address: one would fail, and the rest wait
    # for it. `localhost:1234` and `127.0.0.1:1234` are one address (see `_listener`).
    seen: dict[tuple[str, int], str] = {}
    for address in (address for job in cluster.values() for address in job):
        host, _, port = address.rpartition(":")
        key = (_listener(host), int(port))
        if key in seen:
            first = seen[key]
            both = (
                f'"{shorten(first)}"'
                if first == address
                else f'"{shorten(first)}" and "{shorten(address)}", one address ({key[0]}, '
                f"port {port}),"
            )
            raise ConfigError(
                f"TF_CONFIG cluster lists {both} for two tasks; each task needs "
                f"an address of its own. Received: {shorten(json.dumps(cluster))}"
            )
        seen[key] = address
    other = sorted(set(cluster) - {*TRAINING_JOBS, EVALUATOR_JOB})
    if other:
        # TensorFlow refuses a job of another name with a traceback, and with a "ps" job
        # (ParameterServerStrategy's) every worker waits for the ps tasks forever.
        raise ConfigError(
            f'TF_CONFIG cluster job "{shorten(other[0])}" is not one of a multi_worker run, '
            f'whose jobs are "chief", "worker" and "evaluator". Received: '
            f"{shorten(json.dumps(sorted(cluster)))}"
        )
    if len(cluster.get("chief", [])) > 1:
        raise ConfigError(
            'TF_CONFIG cluster "chief" holds one task at most (the other tasks are '
            f'"worker"s). Received: {shorten(json.dumps(cluster["chief"]))}'
        )
    if not isinstance(task, dict):
        raise ConfigError(
            f'TF_CONFIG must hold "task": {{"type": "worker", "index": 0}}. '
            f"Received: {shorten(text)}"
        )
    # No default index: TensorFlow's resolver has none, and MultiWorkerMirroredStrategy
    # then fails with a traceback ("you must also specify `task_type` and `task_id`").
    task_type, index = task.get("type"), task.get("index")
    given = index
    if isinstance(index, str) and index.strip().isascii() and index.strip().isdigit():
        index = int(index)  # "1": TensorFlow's resolver takes int(index), and so its strategy
    if task_type not in cluster:
        raise ConfigError(
            f"TF_CONFIG task type {task_type!r} is not a job of the cluster ({', '.join(cluster)})"
        )
    if (
        isinstance(index, bool)
        or not isinstance(index, int)
        or not 0 <= index < len(cluster[task_type])
    ):
        raise ConfigError(
            f"TF_CONFIG task index must be an integer in [0, {len(cluster[task_type])}) for "
            f"job {task_type!r}. Received: {shorten(repr(given))}"
        )
    if task_type not in TRAINING_JOBS:
        raise ConfigError(
            f"TF_CONFIG task type {task_type!r} does not train; kerasmlp runs as "
            f"{' or '.join(TRAINING_JOBS)}"
        )
    chiefs = cluster.get("chief", [])
    workers = len(chiefs) + len(cluster.get("worker", []))
    worker = index if task_type == "chief" else len(chiefs) + index
    is_chief = task_type == "chief" or (not chiefs and index == 0)
    return Role(worker=worker, workers=workers, replicas=workers, is_chief=is_chief)


def _is_address(address: Any) -> bool:
    """Whether `address` is "host:port" with a port TensorFlow's server can bind."""
    if not isinstance(address, str):
        return False
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 1 <= int(port) <= 65535


def _listener(host: str) -> str:
    """Who listens at `host`, as far as it is known without DNS: `this machine` for a
    loopback name (TensorFlow's server listens on every interface, 0.0.0.0:port),
    an IP address in one spelling, or the name in lower case."""
    name = host.strip("[]").rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return "this machine" if name == "localhost" or name.endswith(".localhost") else name
    return "this machine" if ip.is_loopback else ip.compressed


def _is_literal(host: str) -> bool:
    """Whether `host` is an IP address or a loopback name: known here without DNS."""
    name = _listener(host)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name == "this machine"
    return True


def _resolve(host: str) -> set[str]:
    """The listeners `host` resolves to here (see `_listener`); OSError when it does not."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return {_listener(info[4][0].partition("%")[0]) for info in infos}


def check_cluster_hosts(
    text: str, *, timeout: float = RESOLVE_TIMEOUT_S, resolve: Callable[[str], set[str]] = _resolve
) -> list[str]:
    """Resolves the host names of TF_CONFIG's cluster here, before TensorFlow waits on them.

    Two tasks at one port of hosts that resolve to one address (`host1:1234` and
    `127.0.1.1:1234`, where /etc/hosts maps host1 there) are refused as
    `parse_tf_config` refuses one address listed twice: every worker would wait
    forever. A name that does not resolve here gets a line, not a refusal: a
    cluster manager's names (a TFJob's service of each task) may resolve only once
    their tasks start, and another machine's resolver may know it; this worker
    waits for that task as for one not yet started, without a word from TensorFlow.

    Args:
      text: a TF_CONFIG that `parse_tf_config` accepts.
      timeout: seconds to wait for DNS, all names together (each in a thread of its
        own); a name without an answer by then is left alone.
      resolve: host name -> its listeners (see `_listener`), OSError (or UnicodeError)
        when it does not resolve; default `socket.getaddrinfo`'s addresses.

    Returns:
      One line for each task whose host name does not resolve.

    Raises:
      ConfigError: two tasks whose hosts resolve to one address use the same port.
    """
    cluster = json.loads(text)["cluster"]
    tasks = [
        (f"{job} {index}", address, *address.rpartition(":")[::2])
        for job, addresses in cluster.items()
        for index, address in enumerate(addresses)
    ]
    answers: dict[str, set[str] | Exception] = {}

    def look_up(name: str) -> None:
        try:
            answers[name] = set(resolve(name))
        except (OSError, UnicodeError) as e:  # UnicodeError: a label of 64 characters or more
            answers[name] = e

    # Daemon threads: a resolver that never answers must not hold the process at exit.
    names = {host for _, _, host, _ in tasks if not _is_literal(host)}
    threads = [threading.Thread(target=look_up, args=(name,), daemon=True) for name in names]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    answers = dict(answers)  # what came in time
    lines, seen = [], {}
    for task, address, host, port in tasks:
        answer = {_listener(host)} if _is_literal(host) else answers.get(host)
        if isinstance(answer, Exception):
            lines.append(
                f'TF_CONFIG host "{shorten(host)}" ({task}) does not resolve here: this worker '
                "waits for it as for a task not yet started (a typo? a cluster manager's "
                "names may resolve only once their tasks start)"
            )
            continue
        for listener in sorted(answer or ()):
            first = seen.setdefault((listener, int(port)), address)
            if first != address:
                raise ConfigError(
                    f'TF_CONFIG cluster lists "{shorten(first)}" and "{shorten(address)}", '
                    f"which resolve here to one address ({listener}, port {port}), for two "
                    f"tasks; each task needs an address of its own. Received: "
                    f"{shorten(json.dumps(cluster))}"
                )
    return lines


def role_from_environment(config: DistributeConfig, environ: dict[str, Any] | Any) -> Role | None:
    """The CLI's early check: the role a multi-worker run will have, else None.

    Raises:
      ConfigError: `multi_worker` without a valid TF_CONFIG, or a TF_CONFIG that
        is set but does not parse (whatever the strategy: TensorFlow reads it too).
    """
    text = environ.get("TF_CONFIG")
    if config.strategy == "multi_worker":
        return parse_tf_config(text)
    if text is not None and text.strip():
        parse_tf_config(text)
    return None


def configure_cpu_devices(count: int) -> None:
    """Splits the host CPU into `count` logical devices (1: leaves it as it is).

    Raises:
      ConfigError: TensorFlow's devices were initialised already with another count
        (logical devices can be set only before that: a fresh process).
    """
    import tensorflow as tf

    if count == 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    try:
        tf.config.set_logical_device_configuration(cpus[0], wanted)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != count:
            raise ConfigError(
                f"distribute.cpu_devices={count}: TensorFlow's devices were already "
                f"initialised in this process with {have} CPU device(s); logical devices "
                "can only be set in a fresh process"
            ) from None


def make_strategy(config: DistributeConfig):
    """The `tf.distribute` strategy `config` names, or None for one device.

    `auto` is `mirrored` when more than one GPU is visible, else one device.
    `mirrored` uses every GPU, or every logical CPU device when there is no GPU
    (`distribute.cpu_devices`). `multi_worker` reads TF_CONFIG. The process
    makes one strategy of each kind and returns it again to every later call.
    """
    global _multi_worker_strategy
    import tensorflow as tf

    name = config.strategy
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return None
    if name == "mirrored":
        kind = "GPU" if gpus else "CPU"
        devices = tuple(d.name for d in tf.config.list_logical_devices(kind))
        if devices not in _mirrored_strategies:
            _mirrored_strategies[devices] = tf.distribute.MirroredStrategy(
                None if gpus else list(devices)
            )
        return _mirrored_strategies[devices]
    if _multi_worker_strategy is None:
        # It waits in C++ until every worker in TF_CONFIG has started, where Python's
        # signal handlers cannot run: a worker whose peer never comes would ignore
        # Ctrl-C and SIGTERM. Nothing of the run is written yet, so until then the
        # signals end the process at once, as they do by default: Ctrl-C does, but
        # TensorFlow installs its own SIGTERM handler (tsl's SigtermNotifier, a
        # preemption notice) before it waits, and holds the GIL through the wait,
        # so no thread of ours can undo that: SIGTERM is ignored there (TF 2.21).
        with _signals_end_the_process():
            try:
                _multi_worker_strategy = tf.distribute.MultiWorkerMirroredStrategy()
            except tf.errors.UnknownError as e:
                if "Could not start gRPC server" not in str(e):
                    raise
                raise ConfigError(_server_not_started()) from None
    return _multi_worker_strategy


def _server_not_started() -> str:
    """Why this worker's gRPC server did not start: its TF_CONFIG port cannot be bound."""
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    task_type, index = resolver.task_type, int(resolver.task_id or 0)
    address = resolver.cluster_spec().task_address(task_type, index)
    port = int(address.rpartition(":")[2])
    # TensorFlow's server listens on every interface of this machine (0.0.0.0:port);
    # binding fails when the port is taken, or (below 1024) without root.
    privileged = " or needs root (below 1024)" if port < 1024 else ""
    return (
        f"TF_CONFIG task {task_type} {index} ({address}): port {port} is taken on this "
        f"machine, by this task started twice or by another program{privileged}; stop "
        "it, or give this task another port in every worker's TF_CONFIG"
    )


@contextlib.contextmanager
def _signals_end_the_process():
    """SIGINT and SIGTERM take their default action (the process ends) during the block."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread sets handlers
        return
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in saved:
        signal.signal(signum, signal.SIG_DFL)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


def reinstall_signal_handlers() -> None:
    """Puts the Python handlers of SIGINT and SIGTERM back in force.

    Under MultiWorkerMirroredStrategy the CLI's SIGTERM handler (stop after the
    current call, save a checkpoint, exit 143) stops running once training has
    started: seen here with two loopback workers, where a SIGTERM was then
    ignored, most likely TensorFlow's own preemption handler for SIGTERM taking
    the signal. Setting the Python handler again after each compiled call
    brings it back (tests/test_distribute.py sends SIGTERM to one worker); it
    costs microseconds.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not None:
            with contextlib.suppress(ValueError):  # not the main thread: the caller's affair
                signal.signal(signum, handler)


def strategy_role(strategy) -> Role:
    """This process's `Role` under `strategy` (None: one device)."""
    import tensorflow as tf

    if strategy is None:
        return Role()
    replicas = int(strategy.num_replicas_in_sync)
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not any(spec.get(job) for job in TRAINING_JOBS):
        multi = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        return Role(replicas=replicas, strategy="multi_worker" if multi else "mirrored")
    chiefs = len(spec.get("chief", []))
    workers = chiefs + len(spec.get("worker", []))
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    worker = task_id if task_type == "chief" else chiefs + task_id
    is_chief = task_type == "chief" or (not chiefs and task_id == 0)
    return Role(
        worker=worker,
        workers=workers,
        replicas=replicas,
        is_chief=is_chief,
        strategy="multi_worker",
    )


def unused_settings(config: DistributeConfig, role: Role, environ) -> list[str]:
    """One line for each setting that asks for more devices than this run uses.

    A cluster manager's `TF_CONFIG` while the strategy is not `multi_worker` (this
    process would train alone, without a word), and `cpu_devices` above 1 on one
    device or under `multi_worker` (the logical CPUs are `mirrored`'s replicas on a
    machine without GPUs).
    """
    lines = []
    if role.strategy != "multi_worker" and (environ.get("TF_CONFIG") or "").strip():
        workers = parse_tf_config(environ["TF_CONFIG"]).workers
        if workers > 1:
            lines.append(
                f"TF_CONFIG names {workers} workers, but distribute.strategy is "
                f"{config.strategy} ({role.strategy}): this process trains alone; "
                "--strategy multi_worker trains with the others"
            )
    if config.cpu_devices > 1 and role.strategy == "one_device":
        lines.append(
            f"distribute.cpu_devices={config.cpu_devices} splits the CPU for the mirrored "
            f"strategy; distribute.strategy is {config.strategy} (one_device): one device "
            "trains, --strategy mirrored trains a replica on each"
        )
    if config.cpu_devices > 1 and role.strategy == "multi_worker":
        # MultiWorkerMirroredStrategy takes a worker's GPUs, else one CPU device, never
        # the logical CPUs (`_initialize_local_devices`: 1 replica a worker here, TF 2.21).
        per_worker = role.replicas // role.workers
        replicas = "replica" if per_worker == 1 else "replicas"
        lines.append(
            f"distribute.cpu_devices={config.cpu_devices} splits the CPU for the mirrored "
            f"strategy; distribute.strategy is multi_worker: each worker trains {per_worker} "
            f"{replicas}, on its GPUs or else on one CPU device"
        )
    return lines


def check_batch_size(batch_size: int, replicas: int) -> int:
    """The per-replica batch: `train.batch_size` is the global batch, split evenly.

    Raises:
      ConfigError: the global batch does not divide by the number of replicas.
    """
    if batch_size % replicas:
        raise ConfigError(
            f"train.batch_size={batch_size} is the global batch and must divide by the "
            f"{replicas} replicas in sync; use a multiple of {replicas}"
        )
    return batch_size // replicas
