"""How fast kerasmlp reads a CSV of numbers, against np.loadtxt and pandas.read_csv, side by side.

In one process, on one CSV written to a temporary folder (removed at the end):
`--rows` rows of `--columns` float columns (5 decimals) and an integer label
`label` (0 or 1), as numpy or pandas writes a table:

- kerasmlp: `kerasmlp.tables.read_csv_table(path, label="label")`, which
  `kerasmlp-train` and `kerasmlp-predict` read a CSV with, its checks included
  (kinds, missing values, float32 range);
- numpy: `np.loadtxt(path, delimiter=",", skiprows=1)`, numbers only, no checks;
- pandas: `pandas.read_csv(path)`, where pandas is installed (kerasmlp does
  not need it); a line says it was skipped where it is not.

`--repeats` rounds, each reader once a round, the order rotated every round so
that a busy machine slows them alike. Prints each reader's best and median
seconds and MB/s, and kerasmlp's time over each other reader's (of the best
rounds, and the median of the rounds' ratios). Checks that kerasmlp and numpy
read the same numbers.

    python benchmarks/csv_read.py                      # 300,000 rows x 20 columns, ~52 MB
    python benchmarks/csv_read.py --rows 30000 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from kerasmlp import tables


def write_csv(path: str, rows: int, columns: int, seed: int = 0) -> None:
    """`rows` rows of `columns` normal floats (f0, f1, ...) with 5 decimals and a 0/1 `label`."""
    rng = np.random.default_rng(seed)
    data = np.column_stack([rng.normal(size=(rows, columns)), rng.integers(0, 2, rows)])
    header = ",".join([*(f"f{i}" for i in range(columns)), "label"])
    np.savetxt(
        path, data, fmt=["%.5f"] * columns + ["%d"], delimiter=",", header=header, comments=""
    )


def readers() -> dict:
    """Name -> a function reading the CSV at a path; pandas only where installed."""
    out = {
        "kerasmlp": lambda path: tables.read_csv_table(path, label="label"),
        "numpy": lambda path: np.loadtxt(path, delimiter=",", skiprows=1),
    }
    try:
        import pandas
    except ImportError:
        return out
    out["pandas"] = pandas.read_csv
    return out


def same_numbers(table: tables.Table, loaded: np.ndarray) -> bool:
    """Whether kerasmlp's columns and labels are numpy's, value for value."""
    columns = np.column_stack([table.values[c.name] for c in table.columns])
    labels = np.array([float(t) for t in table.labels])
    return np.array_equal(columns, loaded[:, :-1]) and np.array_equal(labels, loaded[:, -1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for option in ("rows", "columns", "repeats"):
        if (value := getattr(args, option)) < 1:
            parser.error(f"--{option} must be at least 1. Received: {value}")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "table.csv")
        write_csv(path, args.rows, args.columns)
        megabytes = os.path.getsize(path) / 1e6
        run = readers()
        seconds = {name: [] for name in run}
        results = {}
        for r in range(args.repeats):
            names = list(run)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start = time.perf_counter()
                results[name] = run[name](path)
                seconds[name].append(time.perf_counter() - start)
        same = same_numbers(results["kerasmlp"], results["numpy"])
    print(
        f"csv      | {args.rows:,} rows x {args.columns} float columns + an integer label | "
        f"{megabytes:.1f} MB | {args.repeats} round{'' if args.repeats == 1 else 's'}, "
        "order rotated"
    )
    for name, times in seconds.items():
        best = min(times)
        print(
            f"{name:<8} | best {best:7.2f} s | median {statistics.median(times):7.2f} s | "
            f"{megabytes / best:6.1f} MB/s"
        )
    if "pandas" not in run:
        print("pandas   | skipped: pandas not installed")
    for other in [name for name in seconds if name != "kerasmlp"]:
        ours, theirs = seconds["kerasmlp"], seconds[other]
        ratios = [k / o for k, o in zip(ours, theirs, strict=True)]
        print(
            f"ratio    | kerasmlp / {other:<6} | {min(ours) / min(theirs):.2f} best | "
            f"{statistics.median(ratios):.2f} median of rounds"
        )
    print(f"check    | kerasmlp and numpy read the same numbers: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # also under runpy
    from _script import run

    run(main)
