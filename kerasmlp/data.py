"""`load_datasets`, the one entry to the data: it chooses the source; and TFDS's preparation.

`load_datasets` is what the training loop calls. It checks the arguments every
source takes, then hands the request to the source that serves `name` (see
`kerasmlp.sources`: your own CSV or .npz, the generated 2-D sets, TFDS tables,
TFDS images), which comes back as ``(x, y)`` batches and a `DatasetInfo`.

A TFDS dataset is prepared once when needed, by `prepare_dataset`, which the
TFDS sources are handed. Preparing never hangs on a machine without internet:
when the data are not prepared and no manual download folder is given, the
download host is probed first (a few seconds at most) and a `DataError` says
which config keys to set. Preparing prints one line of its own (``preparing
mnist from data.manual_dir ... done in 12 s``) instead of TFDS's messages,
shows TFDS's progress bars only on a terminal, and holds a file lock in the data
directory, so that runs started together prepare a dataset once.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import functools
import hashlib
import io
import os
import pathlib
import shutil
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download import download_manager

from kerasmlp import playground, sources
from kerasmlp.errors import DataError
from kerasmlp.sources.common import MAX_CACHE_BYTES, DataRequest, DatasetInfo, Datasets

# Importing `playground` registers its builder with TFDS.
# spirals, circles, xor, gaussians, sine
PLAYGROUND_NAMES = sources.BY_KIND["generated"].names
PLAYGROUND_BUILDER = playground.KerasmlpPlayground.name  # "kerasmlp_playground"

# Seconds allowed to open a TCP connection to the download host before calling
# the machine offline. TFDS itself retries for minutes.
PROBE_TIMEOUT = 5.0
# Probed when a dataset records no download URL: TFDS's own host.
_FALLBACK_URL = "https://storage.googleapis.com/"


def load_config_datasets(config) -> Datasets:
    """`load_datasets` with the arguments a run's config gives it (its `data` and
    `train` sections and `seed`), as `kerasmlp-train` and `load_run` load a run's data.

    Args:
        config: a `kerasmlp.config.Config`.
    """
    data = config.data
    return load_datasets(
        data.name,
        batch_size=config.train.batch_size,
        validation_fraction=config.train.validation_fraction,
        seed=config.seed,
        data_dir=data.data_dir,
        manual_dir=data.manual_dir,
        cache=data.cache,
        shuffle_buffer=data.shuffle_buffer,
        path=data.path,
        test_path=data.test_path,
        label=data.label,
        task=data.task,
        test_fraction=data.test_fraction,
        categorical=data.categorical,
    )


def load_datasets(
    name: str,
    *,
    batch_size: int,
    validation_fraction: float = 0.1,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    cache: bool = True,
    shuffle_buffer: int = 10_000,
    path: str | os.PathLike | None = None,
    test_path: str | os.PathLike | None = None,
    label: str | None = None,
    task: str = "auto",
    test_fraction: float = 0.2,
    categorical: Sequence[str] = (),
) -> Datasets:
    """Builds the train, validation and test pipelines of a dataset.

    For the generated sets and TFDS images, the validation split is the last
    `validation_fraction` of TFDS's train split (e.g. ``train[:54000]`` and
    ``train[54000:]`` for MNIST) and the test split is TFDS's test split; for
    tables see `kerasmlp.tabular`. Splits are cached in memory when they fit
    (and `cache` is on), then batched; train is shuffled with `seed` before
    batching and reshuffled at every pass.

    Args:
        name: a playground dataset (one of `PLAYGROUND_NAMES`), a TFDS
            image-classification dataset or table, optionally with a version
            (``"mnist"``, ``"mnist:3.*.*"``, ``"iris"``), or 'csv' or 'npz'.
        batch_size: examples per batch; the last batch of a pass may be smaller.
        validation_fraction: share of the train split held out, in [0, 1);
            0 disables validation. Default 0.1.
        seed: seed of the training shuffle. Default 0.
        data_dir: TFDS data directory; None uses TFDS's default
            (``~/tensorflow_datasets``).
        manual_dir: folder holding the dataset's downloaded files, used instead
            of the network when the dataset is not yet prepared.
        cache: cache decoded splits in memory when they fit. Default True.
        shuffle_buffer: size of the training shuffle buffer. Default 10000.
        path, test_path, label, task, test_fraction, categorical: for `name`
            'csv' or 'npz' (your own table), see `kerasmlp.tabular.load_tabular`;
            `test_fraction` for TFDS tables without a test split too.

    Returns:
        A `Datasets` whose pipelines yield ``(x, y)``: x float32 of shape
        (batch, input_dim), or for a TFDS image set the raw images, uint8 of
        shape (batch, *input_shape), which the model scales and flattens (see
        `DatasetInfo.input_scale`); y int32 of shape (batch,) for classification
        or float32 of shape (batch,) for regression.

    Raises:
        DataError: unknown or unsupported dataset, a validation fraction that
            leaves a split empty, or data that cannot be prepared offline.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise DataError(
            f"Argument `train.batch_size` must be > 0. Received: train.batch_size={batch_size!r}"
        )
    if not 0 <= validation_fraction < 1:
        raise DataError(
            "Argument `train.validation_fraction` must be in [0, 1). "
            f"Received: train.validation_fraction={validation_fraction!r}"
        )
    request = DataRequest(
        name=name,
        batch_size=int(batch_size),
        validation_fraction=validation_fraction,
        seed=seed,
        cache=cache,
        shuffle_buffer=shuffle_buffer,
        path=path,
        test_path=test_path,
        label=label,
        task=task,
        test_fraction=test_fraction,
        categorical=tuple(categorical or ()),
    )
    if name in sources.FILE_NAMES:  # your own file: no TFDS builder
        return sources.source_class(sources.record_for(name).kind)().load(request)
    builder = _make_builder(name, data_dir)
    for kind in sources.BUILDER_KINDS:
        source_class = sources.source_class(kind)
        if source_class.accepts(builder):
            # Made before preparing: an unsupported dataset is refused before any download.
            source = source_class(
                name, builder, functools.partial(prepare_dataset, manual_dir=manual_dir)
            )
            return source.load(request)
    raise AssertionError("the last of sources.BUILDER_KINDS accepts every builder")


def prepare_offline(
    name: str, manual_dir: str | os.PathLike, data_dir: str | os.PathLike
) -> tfds.core.DatasetBuilder:
    """Prepares a TFDS dataset from downloaded files, without the network.

    For tests and offline machines: ``prepare_offline("mnist", "../shared/data/mnist",
    tmp_dir)``. Does nothing when the dataset is already prepared in `data_dir`.
    Each dataset gets its own download folder (``<data_dir>/downloads/<name>``):
    MNIST and Fashion-MNIST share file names, and one shared folder has been
    seen to build one from the other's files.

    Args:
        name: a TFDS dataset name (``"mnist"``, ``"fashion_mnist"``) or a playground name.
        manual_dir: folder holding the files TFDS would download.
        data_dir: TFDS data directory to prepare into.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.

    Raises:
        DataError: unknown dataset, or `manual_dir` lacks some of the files.
    """
    builder = _make_builder(name, data_dir)
    return prepare_dataset(builder, manual_dir=manual_dir)


def prepare_dataset(
    builder: tfds.core.DatasetBuilder, *, manual_dir: str | os.PathLike | None = None
) -> tfds.core.DatasetBuilder:
    """Downloads and prepares `builder`'s dataset unless it is prepared already.

    With `manual_dir`, every file must be there with the size and checksum TFDS
    records (TFDS would otherwise quietly fetch the missing ones); without it,
    the download host must answer a quick probe first, so an offline machine
    fails in seconds rather than after TFDS's minutes of retries.

    Preparing happens under an exclusive lock on ``<data_dir>/.kerasmlp-<builder
    name>.lock``; a run that waited for it finds the dataset prepared by the
    other one. Prints one line to stdout (``preparing spirals ... done in 0.4 s``)
    in place of TFDS's own messages; TFDS's progress bars show only when stdout
    and stderr are terminals. Files extracted from the downloads are deleted
    after a successful preparation: the prepared dataset does not read them.

    Returns:
        A builder of the prepared dataset: `builder` itself, or a fresh one when
        another run prepared it (a builder keeps what it found when it was made).

    Raises:
        DataError: missing, truncated or corrupt files in `manual_dir`, or no
            network and no `manual_dir`.
    """
    if builder.is_prepared() or _tfds_is_mocked():
        return builder
    if builder.name == PLAYGROUND_BUILDER:
        manual_dir = None  # Generated on the spot: nothing to download or look for.
    urls = sorted((builder.url_infos or {}).keys())
    if manual_dir is not None:
        manual_dir = pathlib.Path(manual_dir).expanduser()
        _check_manual_dir(builder, manual_dir, urls)
        source = " from data.manual_dir"
    elif builder.name != PLAYGROUND_BUILDER:
        unreachable = probe_download_hosts(urls or [_FALLBACK_URL])
        if unreachable:
            raise DataError(_offline_message(builder, urls, unreachable))
        source = f" from {_url_folders(urls)}" if urls else ""
    else:
        source = ""
    with _preparation_lock(builder):
        builder = _fresh_builder(builder)
        if builder.is_prepared():
            return builder
        download_dir = builder.data_dir_root / "downloads" / builder.name
        start = time.monotonic()
        with _progress_line(f"preparing {_shown_name(builder)}{source} ...") as bars:
            with _tfds_quiet():
                try:
                    builder.download_and_prepare(
                        download_dir=os.fspath(download_dir),
                        download_config=tfds.download.DownloadConfig(
                            manual_dir=None if manual_dir is None else os.fspath(manual_dir)
                        ),
                    )
                except download_manager.NonMatchingChecksumError as error:
                    raise DataError(_checksum_message(builder, manual_dir, error)) from error
            # About 53 MB for MNIST: the decompressed copies TFDS read the examples from.
            shutil.rmtree(download_dir / "extracted", ignore_errors=True)
            _remove_empty(download_dir, download_dir.parent)
            seconds = time.monotonic() - start
            # After TFDS's bars on a terminal, on a line of its own.
            _say("... " if bars else " ", end="")
            _say(f"done in {seconds:.1f} s" if seconds < 10 else f"done in {seconds:.0f} s")
    return builder


def probe_download_hosts(urls: Iterable[str], timeout: float = PROBE_TIMEOUT) -> list[str]:
    """Returns the hosts among `urls` that do not accept a TCP connection within `timeout`.

    Goes through the HTTP(S) proxy when one is configured in the environment.
    The probes run in threads joined with a deadline, because name resolution
    ignores socket timeouts. Tests replace this function to stay off the network.
    """
    proxies = urllib.request.getproxies()
    targets = {}
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        proxy = proxies.get(parts.scheme)
        if proxy:
            parts = urllib.parse.urlsplit(proxy)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        targets[parts.hostname] = port
    reached = set()

    def connect(host, port):
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            reached.add(host)
        except OSError:
            pass

    threads = [threading.Thread(target=connect, args=item, daemon=True) for item in targets.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:  # One shared deadline: all hosts are probed at once.
        thread.join(max(0.0, deadline - time.monotonic()))
    return sorted(host for host in targets if host not in reached)


def _make_builder(name: str, data_dir) -> tfds.core.DatasetBuilder:
    """The TFDS builder for `name`, or a DataError with a did-you-mean."""
    if not isinstance(name, str) or not name:
        raise DataError(
            f"Argument `data.name` must be a dataset name. Received: data.name={name!r}"
        )
    base = name.split(":")[0].split("/")[0]
    if base in PLAYGROUND_NAMES:
        tfds_name = f"{PLAYGROUND_BUILDER}/{name}"  # "spirals" or "spirals:1.0.0".
    else:
        tfds_name = name
        known = tfds.list_builders(with_community_datasets=False)
        if base not in known:
            close = difflib.get_close_matches(base.lower(), [*PLAYGROUND_NAMES, *known], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"Unknown dataset {name!r} (data.name).{hint} Use a playground dataset "
                f"({', '.join(PLAYGROUND_NAMES)}) or a TFDS image-classification dataset "
                "such as mnist or fashion_mnist."
            )
    if data_dir is not None:
        _check_data_dir(pathlib.Path(data_dir).expanduser())
    try:
        return tfds.builder(tfds_name, data_dir=None if data_dir is None else os.fspath(data_dir))
    # TFDS raises AssertionError for a version it does not have ("mnist:9.9.9").
    except (tfds.core.registered.DatasetNotFoundError, ValueError, AssertionError) as error:
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise DataError(f"Cannot load dataset {name!r} (data.name): {first_line}") from error


def _check_data_dir(data_dir: pathlib.Path) -> None:
    """Refuses a data_dir that is, or lies under, something other than a folder."""
    for path in (data_dir, *data_dir.parents):
        if path.exists():
            if not path.is_dir():
                what = "is" if path == data_dir else f"lies under {os.fspath(path)!r}, which is"
                raise DataError(
                    f"data.data_dir {os.fspath(data_dir)!r} {what} a file, not a folder; "
                    "set data.data_dir to a folder (it is created when missing)."
                )
            return


def _check_manual_dir(builder, manual_dir: pathlib.Path, urls: list[str]) -> None:
    if not manual_dir.is_dir():
        raise DataError(
            f"data.manual_dir {os.fspath(manual_dir)!r} is not a folder; it should hold the "
            f"downloaded files of {builder.name!r}{_files_hint(builder, urls)}."
        )
    infos = builder.url_infos or {}
    names = [infos[url].filename or url.rsplit("/", 1)[-1] for url in urls]
    missing = [n for n in names if not (manual_dir / n).exists()]
    if missing:
        raise DataError(
            f"data.manual_dir {os.fspath(manual_dir)!r} lacks {len(missing)} file(s) of "
            f"{builder.name!r}: {', '.join(missing)} (from {_url_folders(urls)})."
        )
    for url, name in zip(urls, names, strict=True):
        expected, path = infos[url], manual_dir / name
        size = path.stat().st_size
        if expected.size is not None and size != int(expected.size):
            raise DataError(
                f"data.manual_dir file {os.fspath(path)!r} has {size} bytes instead of "
                f"{int(expected.size)}: it is truncated or corrupt; fetch it again from {url}"
            )
        if expected.checksum and _sha256(path) != expected.checksum:
            raise DataError(
                f"data.manual_dir file {os.fspath(path)!r} does not have the sha256 "
                f"{expected.checksum} TFDS records for it: it is corrupt; fetch it again from {url}"
            )


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksum_message(builder, manual_dir, error) -> str:
    """One line from TFDS's NonMatchingChecksumError (a download that came back wrong)."""
    first = str(error).strip().splitlines()[0]
    where = f" in data.manual_dir {os.fspath(manual_dir)!r}" if manual_dir is not None else ""
    return (
        f"A file of {builder.name!r}{where} has the wrong checksum; fetch it again. TFDS: {first}"
    )


@contextlib.contextmanager
def _preparation_lock(builder):
    """Holds an exclusive lock on ``<data_dir>/.kerasmlp-<builder name>.lock`` for the block.

    TFDS writes a split to a temporary folder and renames it into place; two
    processes doing so at once fail with ``Failed to finalize writing of split``.
    The lock file stays: deleting it would let a third process lock a new file
    while a second one still holds the old.
    """
    root = pathlib.Path(builder.data_dir_root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".kerasmlp-{builder.name}.lock", "a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for another run preparing {_shown_name(builder)} in {root}", end="\n")
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _fresh_builder(builder):
    """A new builder of the same dataset, config and version: it looks at the files anew."""
    name = builder.name
    if builder.builder_config is not None:
        name += f"/{builder.builder_config.name}"
    return tfds.builder(f"{name}:{builder.version}", data_dir=os.fspath(builder.data_dir_root))


def _shown_name(builder) -> str:
    """The name a user configured: ``spirals`` for the playground builder's config."""
    if builder.name == PLAYGROUND_BUILDER and builder.builder_config is not None:
        return builder.builder_config.name
    return builder.name


def _say(text: str, end: str = "") -> None:
    print(text, end=end, flush=True)


@contextlib.contextmanager
def _progress_line(text: str):
    """Prints `text`, and ` failed` after it when the block raises; the block's end ends the line.

    Yields whether TFDS's progress bars will show (on a terminal): then the
    line ends at once, to leave them a line of their own.
    """
    bars = _on_terminal()
    _say(text, end="\n" if bars else "")
    try:
        yield bars
    except BaseException:
        _say("... failed" if bars else " failed", end="\n")
        raise
    _say("", end="\n")


@contextlib.contextmanager
def _tfds_quiet():
    """Drops TFDS's prints to stdout; keeps its progress bars only on a terminal."""
    # TFDS has no public getter for the setting; it is put back as it was found.
    enabled = getattr(tfds.core.utils.tqdm_utils, "_active", True)
    tfds.display_progress_bar(_on_terminal())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        tfds.display_progress_bar(enabled)


def _on_terminal() -> bool:
    # TFDS's bars go to stderr; the line they belong to goes to stdout.
    return sys.stdout.isatty() and sys.stderr.isatty()


def _remove_empty(folder: pathlib.Path, *parents: pathlib.Path) -> None:
    """Removes `folder` and then each of `parents` while they are empty."""
    for path in (folder, *parents):
        try:
            path.rmdir()
        except (OSError, ValueError):  # Not empty (etils' paths raise ValueError), or gone.
            return


def _offline_message(builder, urls: list[str], unreachable: list[str]) -> str:
    return (
        f"Cannot download dataset {builder.name!r} (data.name): {', '.join(unreachable)} "
        f"cannot be reached (no network?) and the dataset is not prepared in data.data_dir "
        f"({os.fspath(builder.data_dir_root)}). Set data.manual_dir to a folder holding its "
        f"downloaded files{_files_hint(builder, urls)}, or data.data_dir to a folder where it "
        "is prepared already."
    )


def _files_hint(builder, urls: list[str]) -> str:
    infos = builder.url_infos or {}
    if not urls:
        return ""
    names = [infos[url].filename or url.rsplit("/", 1)[-1] for url in urls]
    return f" ({', '.join(names)}, from {_url_folders(urls)})"


def _url_folders(urls: list[str]) -> str:
    return ", ".join(sorted({url.rsplit("/", 1)[0] + "/" for url in urls}))


def _tfds_is_mocked() -> bool:
    """True inside `tfds.testing.mock_data`, where preparing is a no-op: nothing to download.

    A test hook kept on purpose: mock_data replaces `download_and_prepare` but
    not `is_prepared` (False), and points every builder's data_dir at TFDS's own
    packaged metadata folder. Without this check, a mocked dataset would still
    be probed for on the network, have its manual files checked, and get a lock
    file written into site-packages, around a preparation that never happens.
    """
    method = tfds.core.DatasetBuilder.download_and_prepare
    return getattr(method, "__name__", "") == "mock_download_and_prepare"


# `DatasetInfo`, `Datasets`, `DataError` and `MAX_CACHE_BYTES` live in
# `kerasmlp.sources.common` (below every source); they are named here too, their
# historical home.
__all__ = [
    "MAX_CACHE_BYTES",
    "PLAYGROUND_BUILDER",
    "PLAYGROUND_NAMES",
    "PROBE_TIMEOUT",
    "DataError",
    "DatasetInfo",
    "Datasets",
    "load_datasets",
    "prepare_dataset",
    "prepare_offline",
    "probe_download_hosts",
]
