"""Runs benchmark scripts one after another in ONE process, for tests/test_benchmarks.py.

    python -m tests._run_benchmarks '[[MOCK, ["SCRIPT.py", "ARG", ...]], ...]'

Each runs as `python benchmarks/SCRIPT.py ARG ...` would (`runpy`, as `__main__`),
and a line `=== end of SCRIPT.py ===` follows its output. One process for several:
starting TensorFlow takes most of a tiny run's time. With MOCK a number, that
script runs under `tfds.testing.mock_data` (that many random examples a split, no
files); with MOCK null, on the real TFDS (the playground data are generated).
"""

from __future__ import annotations

import contextlib
import json
import runpy
import sys

from kerasmlp.console import collector_paused
from tests.conftest import REPO_ROOT


def main(args: list[str]) -> None:
    (runs,) = args
    with collector_paused():  # as kerasmlp's commands import TensorFlow: 2-3 s sooner
        import keras  # noqa: F401
        import tensorflow_datasets as tfds
    for mock_examples, argv in json.loads(runs):
        with contextlib.ExitStack() as stack:
            if mock_examples is not None:
                stack.enter_context(tfds.testing.mock_data(num_examples=mock_examples))
            sys.argv = list(argv)
            runpy.run_path(str(REPO_ROOT / "benchmarks" / argv[0]), run_name="__main__")
        print(f"=== end of {argv[0]} ===", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
