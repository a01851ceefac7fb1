"""Shared pytest setup: quiet TensorFlow, keep runs on the CPU, and locate the real data."""

import os
import pathlib
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# Canonical MNIST / Fashion-MNIST files laid beside the checkout (see ../shared/data/README.md).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
# The first lines of the tests' `python -c` scripts that import TensorFlow: the cyclic
# garbage collector off, and what is left frozen at exit, so that the process does
# not walk TensorFlow's 730,000 objects again and again (2-3 s of a short process, as
# kerasmlp.console.collector_paused saves kerasmlp's own commands).
COLLECTOR_OFF = "import atexit, gc\ngc.disable()\natexit.register(gc.freeze)\n"


@pytest.fixture(scope="session")
def shared_data_dir() -> pathlib.Path:
    """The folder of canonical MNIST files, or a skip saying why it is missing."""
    if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_tfds_dir(shared_data_dir, tmp_path_factory) -> pathlib.Path:
    """A TFDS data_dir with MNIST and Fashion-MNIST prepared offline, once per test session.

    Preparing takes 10-40 s a dataset; every test that needs real data shares this one.
    Under pytest-xdist the workers share it too: the folder sits beside their own
    temporary folders, and kerasmlp's lock around preparation lets one prepare while
    the others wait, then read (the same lock that lets two runs share a data_dir).
    """
    from kerasmlp.data import prepare_offline

    if os.environ.get("PYTEST_XDIST_WORKER"):
        data_dir = tmp_path_factory.getbasetemp().parent / "tfds_real"
        data_dir.mkdir(exist_ok=True)
    else:
        data_dir = tmp_path_factory.mktemp("tfds_real")
    for name in ("mnist", "fashion_mnist"):
        # Each gets its own download folder inside prepare_offline: the two share file names.
        prepare_offline(name, shared_data_dir / name, data_dir)
    return data_dir


def invoke_train(args, *, env=None):
    """`kerasmlp-train ARGS` in this process, through click's `CliRunner`; returns its
    `Result`. A run here takes seconds less than in a new process, which starts
    TensorFlow first. A run installs SIGINT and SIGTERM handlers (its Ctrl-C stop):
    they are put back as they were, so that the pytest worker keeps its own."""
    from click.testing import CliRunner

    from kerasmlp import cli

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        return CliRunner().invoke(cli.main, [str(a) for a in args], env=env)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
