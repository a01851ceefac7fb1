"""The files of a run folder: atomic writes, strict JSON, `status.json`, and the folder checks.

Every file kerasmlp writes into a run (`config.yaml`, `metrics.json`,
`status.json`, `model.keras`, `best.keras`) is written under a temporary name
in the same folder and renamed over the old one, so a crash leaves the
previous file or none, never a truncated one.

`status.json` says what the run is at every moment:

    running      the process `pid` is training it (or was killed: see `pid`)
    completed    finished; `model.keras` and `metrics.json` are final
    interrupted  stopped by SIGINT/SIGTERM after a checkpoint; `--resume` continues it
    diverged     stopped because the loss, a gradient or a weight became NaN/inf
    failed       stopped by an error (`error` says which)

This module knows only Python: the CLI uses it before TensorFlow is imported.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import pathlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

STATUS_FILE = "status.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
CHECKPOINTS_FOLDER = "checkpoints"
SWEEP_FILE = "sweep.yaml"  # a sweep's plan, in the folder that holds its runs
STATES = ("running", "completed", "interrupted", "diverged", "failed")


class RunDirectoryExistsError(FileExistsError):
    """The run directory already holds files; kerasmlp never writes over a user's run."""


class RunFilesError(OSError):
    """A file of the run could not be written or read (disk full, read-only, ...).

    The message is one line naming the path and the cause.
    """


def describe_os_error(error: OSError, path: str | os.PathLike | None = None) -> str:
    """`logs/run/config.yaml: No space left on device`: the path and the cause, one line."""
    where = path if path is not None else error.filename
    cause = error.strerror or (os.strerror(error.errno) if error.errno else str(error))
    return f"{os.fspath(where)}: {cause}" if where is not None else cause


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turns an OSError raised while writing `path` into a one-line `RunFilesError`."""
    try:
        yield
    except RunFilesError:
        raise
    except OSError as e:
        raise RunFilesError(f"cannot write {describe_os_error(e, path)}") from e


def _temporary_name(path: pathlib.Path) -> pathlib.Path:
    # Same folder (a rename across file systems is not atomic), a dot name that a
    # reader skips, and the same suffix (Keras checks `.keras`).
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def replace_atomically(path: str | os.PathLike, write: Callable[[pathlib.Path], None]) -> None:
    """Calls `write(temporary_path)`, then renames the result onto `path`.

    Raises:
      RunFilesError: writing or renaming failed; the temporary file is removed
        and `path` is left as it was.
    """
    path = pathlib.Path(path)
    temporary = _temporary_name(path)
    with writing(path):
        try:
            write(temporary)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` through a temporary file and a rename."""

    def write(temporary: pathlib.Path) -> None:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    replace_atomically(path, write)


def strict_json(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None: JSON has no literal for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
    """Strict JSON (no NaN literals, which `json.loads` of other languages refuse), atomically."""
    text = json.dumps(strict_json(value), indent=2, allow_nan=False) + "\n"
    write_text_atomic(path, text)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


_STOP_FIELDS = ("signal", "error", "divergence")  # set with interrupted, failed, diverged


class RunStatus:
    """Keeps `<run>/status.json` up to date; each write replaces the file atomically.

    Args:
      run_dir: the run's folder.
      previous: the status a resumed run had (its start time and history are kept).
    """

    def __init__(self, run_dir: str | os.PathLike, previous: Mapping[str, Any] | None = None):
        self.path = pathlib.Path(run_dir) / STATUS_FILE
        self.record: dict[str, Any] = dict(previous or {})

    def update(self, state: str | None = None, **fields: Any) -> None:
        """Sets `state` and any fields (step, epoch, best, ...), then writes the file."""
        if state is not None:
            if state not in STATES:
                raise ValueError(f"state must be one of {STATES}. Received: state={state!r}")
            self.record["state"] = state
            # Why an earlier attempt stopped is not why this one did: a resumed run
            # marked completed says no signal nor error.
            for key in _STOP_FIELDS:
                self.record.pop(key, None)
            if state == "running":
                self.record.setdefault("started", now_iso())
                self.record["pid"] = os.getpid()
                self.record["pid_started"] = process_start_time(os.getpid())
                self.record["ended"] = None
            else:
                self.record["ended"] = now_iso()
                self.record.pop("pid", None)
                self.record.pop("pid_started", None)
        self.record.update(fields)
        self.record["updated"] = now_iso()
        write_json_atomic(self.path, self.record)


def read_status(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's `status.json`, or None when there is none (or it cannot be parsed)."""
    try:
        value = read_json(pathlib.Path(run_dir) / STATUS_FILE)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def process_is_alive(pid: Any, started: Any = None) -> bool:
    """Whether a process with this id runs on this machine (signal 0 probes without signalling).

    With `started` (the process's start time as `process_start_time` gave it), a
    process of that id that started at another time is another process: after a
    reboot or a crash, ids are given again.
    """
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = process_start_time(pid)
    return not isinstance(started, (int, float)) or now is None or abs(now - started) < 2.0


def process_start_time(pid: int) -> float | None:
    """When process `pid` started, in seconds since the epoch; None where /proc cannot say.

    Linux's /proc/<pid>/stat gives it in clock ticks since boot (field 22), and
    /proc/stat the boot time (btime).
    """
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        boot = pathlib.Path("/proc/stat").read_text()
        ticks = int(stat.rpartition(")")[2].split()[19])  # fields after "(comm)" start at 3
        btime = int(next(line.split()[1] for line in boot.splitlines() if line.startswith("btime")))
        return round(btime + ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def check_run_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    """Returns `run_dir` as a path, refusing one that already holds files (dot files too).

    Raises:
      RunDirectoryExistsError: the folder holds files; when they are a kerasmlp
        run, the message says in which state and how to continue it.
      RunFilesError: the path is a file, a dangling link, or cannot be read.
    """
    run_dir = pathlib.Path(run_dir)
    if run_dir.is_symlink() and not run_dir.exists():
        raise RunFilesError(f"{run_dir} is a link to {os.readlink(run_dir)}, which does not exist")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFilesError(f"{run_dir} is a file, not a run folder")
    try:
        holds_files = run_dir.is_dir() and any(run_dir.iterdir())
    except OSError as e:
        raise RunFilesError(f"cannot read {describe_os_error(e, run_dir)}") from e
    if holds_files:
        status = read_status(run_dir)
        if status is not None and status.get("state") in STATES:
            state = status["state"]
            hint = (
                f"continue it with: kerasmlp-train --resume {run_dir}"
                if state != "completed"
                else "choose another --run-name or --logdir"
            )
            raise RunDirectoryExistsError(
                f"Run directory {run_dir} holds a {state} kerasmlp run (see its status.json); "
                f"{hint}"
            )
        raise RunDirectoryExistsError(
            f"Run directory {run_dir} already holds files; kerasmlp does not write over a run. "
            "Choose another --run-name or --logdir."
        )
    return run_dir


def prepare_run_dir(run_dir: str | os.PathLike) -> pathlib.Path:
    """Creates `run_dir`, refusing one that already holds files."""
    run_dir = check_run_dir(run_dir)
    with writing(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


class ResumeError(ValueError):
    """A folder that `--resume` cannot continue; the message is one line for the user."""


def check_resumable(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The status of a run that `--resume` may continue, or a one-line refusal.

    A run can be continued unless it is completed or still running (its process
    alive). A run killed outright still says `running`, with a dead `pid`. A
    folder without kerasmlp's `status.json` is not continued (nor written over),
    and neither is a run whose recorded checkpoint is gone with every older one
    kept: starting it again from step 0 would drop what it had done.

    Raises:
      ResumeError: no such folder, not a kerasmlp run, completed, running, or
        its checkpoint cannot be found.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ResumeError(f"--resume {run_dir}: no such run folder")
    if not (run_dir / CONFIG_FILE).is_file():
        raise ResumeError(
            f"--resume {run_dir}: not a kerasmlp run folder (it has no {CONFIG_FILE})"
        )
    status = read_status(run_dir) or {}
    state = status.get("state")
    if state not in STATES:
        raise ResumeError(
            f"--resume {run_dir}: not a kerasmlp run (it has no readable {STATUS_FILE}); "
            f"to train from its {CONFIG_FILE}, start a new run: "
            f"kerasmlp-train -c {run_dir / CONFIG_FILE}"
        )
    if state == "completed":
        raise ResumeError(
            f"--resume {run_dir}: the run is completed (status.json); there is nothing to "
            "continue. Start a new run to train more"
        )
    if (
        state == "running"
        and process_is_alive(status.get("pid"), status.get("pid_started"))
        and status.get("pid") != os.getpid()
    ):
        raise ResumeError(
            f"--resume {run_dir}: the run is still running (process {status['pid']}); "
            "stop it first (Ctrl-C or kill -TERM saves a checkpoint)"
        )
    if status.get("checkpoint_step") is not None:
        _check_checkpoint_found(run_dir, status["checkpoint_step"])
    return status


@contextlib.contextmanager
def resuming(run_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """`check_resumable`'s status, with the run folder held by this process for the block.

    `check_resumable` sees a run as taken once its process has written `running`, which a
    resumed run does only after TensorFlow, the data and the checkpoint are loaded:
    seconds in which a second `--resume` of the same run found it free, and both then
    trained and wrote into the one folder. The block holds an exclusive `flock` on the
    folder itself (nothing is written for it; the system drops it when the process
    ends), and a second process is refused. Without `fcntl` (not POSIX) or where the file
    system takes no lock, the block runs without one.

    Raises:
      ResumeError: another process holds the run, or `check_resumable`'s refusals.
    """
    status = check_resumable(run_dir)
    try:
        import fcntl

        held = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except (ImportError, OSError):
        yield status
        return
    try:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResumeError(
                f"--resume {run_dir}: another process is resuming this run now; wait for it "
                "to end, or stop it first (Ctrl-C or kill -TERM saves a checkpoint)"
            ) from None
        except OSError:
            pass  # a file system without locks (some network ones): go on as before
        yield check_resumable(run_dir)  # again: it may have been continued meanwhile
    finally:
        os.close(held)


def _check_checkpoint_found(run_dir: pathlib.Path, step: Any) -> None:
    """Refuses a run whose status records a checkpoint that its `checkpoints/` no longer has,
    nor any older one.

    `tf.train.CheckpointManager` finds its latest checkpoint through the index file
    `checkpoints/checkpoint` (a text proto); without it, it would find none.
    """
    folder = run_dir / CHECKPOINTS_FOLDER
    where = f"--resume {run_dir}: status.json records a checkpoint at step {step}, but"
    if not folder.is_dir():
        raise ResumeError(f"{where} {folder} is missing; restore it, or start a new run")
    try:
        index = (folder / "checkpoint").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        index = ""
    match = re.search(r'^model_checkpoint_path: "([^"]+)"\s*$', index, re.MULTILINE)
    if match is None:
        raise ResumeError(
            f"{where} {folder} has no readable index of its checkpoints (the file "
            "'checkpoint'); restore the folder, or start a new run"
        )
    latest = match.group(1)
    prefix = folder / latest  # relative to the folder, or absolute
    # An older checkpoint kept will do: `checkpoints.RunCheckpoints.restore_latest` goes on
    # from it, saying which one is missing, as it does past a damaged one.
    kept = re.findall(r'^all_model_checkpoint_paths: "([^"]+)"\s*$', index, re.MULTILINE)
    if not any(pathlib.Path(f"{folder / path}.index").is_file() for path in [latest, *kept]):
        nor = ", and so are the older ones it keeps" if set(kept) - {latest} else ""
        raise ResumeError(
            f"{where} {prefix}.index, the latest checkpoint in {folder}, is missing{nor}; "
            "restore the folder, or start a new run"
        )
