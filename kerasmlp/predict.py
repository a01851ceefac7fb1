"""`kerasmlp-predict RUN INPUT`: a trained run's predictions on a file, as a CSV.

Thin: `kerasmlp.inference.load_run` does the work. The CSV holds `predicted`
(the class name, or the value for regression) and, for classification, one
`probability_<class>` column per class. When the input has labels, the run's
metrics on it are printed (on stderr when the CSV goes to stdout). `--output`
makes a new file: one that exists (INPUT itself, say) is refused, not overwritten;
the folders it goes in are made, as `kerasmlp-export` makes its own.

TensorFlow's start-up log is held back as `kerasmlp-train` holds it back
(`kerasmlp.console`); `--verbose` shows it.

Exit status: 0 done; 1 the CSV or the metrics line could not be written (a full
disk, stdout on a full device: one line naming where and why; a CSV file begun
is removed, not left cut short), as `kerasmlp-train` exits 1; 2 a user's mistake
(one line on stderr, nothing written).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import pathlib
import sys
from typing import NoReturn

import click

from kerasmlp import __version__
from kerasmlp.config import ConfigError
from kerasmlp.console import (
    FAILED,
    USAGE_ERROR,
    fail,
    plug_closed_streams,
    start_tensorflow,
)
from kerasmlp.runfiles import describe_os_error


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kerasmlp-predict", message="%(prog)s %(version)s")
@click.argument("run_dir", type=click.Path(file_okay=False))
# INPUT may be left out for --split test: the usage line shows it in brackets.
@click.argument("input_path", metavar="[INPUT]", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--split",
    type=click.Choice(["test"]),
    default=None,
    help="Predict the run's own test split instead of INPUT.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV file to write (a new file: one that exists is refused). Default, or -: stdout.",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's own log (its C++ start-up lines, absl warnings), hidden by default.",
)
def main(run_dir, input_path, split, output, verbose):
    """Predict with the run RUN_DIR on INPUT, a CSV or .npz shaped like its training data,
    or on the run's own test split with --split test."""
    plug_closed_streams()
    if output == "-":  # as click's File type and most command-line tools read it
        output = None
    if (input_path is None) == (split is None):
        _fail("give INPUT or --split test (one of them)")
    if output is not None and os.path.lexists(output):
        # Nothing overwritten: `--output` naming INPUT would destroy the data predicted on.
        _fail(_taken(output))
    if output is not None:
        if output.endswith(("/", os.sep)):  # `-o preds/`: a folder, made below, then refused
            _fail(f"--output {output} names a folder; give a file name, e.g. {output}p.csv")
        existing = next((p for p in pathlib.Path(output).absolute().parents if p.exists()), None)
        if existing is not None and not existing.is_dir():
            _fail(f"cannot make --output {output}: {existing} is a file, not a folder")
    start_tensorflow(verbose=verbose)
    from kerasmlp.errors import DataError
    from kerasmlp.inference import load_run

    # Without --output, stdout holds the CSV alone: what reading the data says (TFDS
    # preparing the test split: "preparing mnist ... done") goes to stderr.
    said = contextlib.redirect_stdout(sys.stderr) if output is None else contextlib.nullcontext()
    try:
        with said:
            run = load_run(run_dir)
            if split is not None:
                model_inputs, labels = run.read_test_split()
            else:
                model_inputs, labels = run.read(input_path)
            outputs = run.outputs(model_inputs)
    except (ConfigError, DataError) as e:
        _fail(e)
    _write_csv(predictions_csv(run, outputs), output)
    if labels is not None:
        results = run.evaluate(outputs, labels)
        line = " | ".join(f"{k} {v:.4f}" for k, v in results.items())
        name = "stderr" if output is None else "stdout"  # stdout holds the CSV, if not a file
        try:
            getattr(sys, name).write(f"{'metrics':<10} | examples {len(labels)} | {line}\n")
            getattr(sys, name).flush()
        except OSError as e:
            _fail(f"cannot write to <{name}>: {describe_os_error(e, None)}", FAILED)


def _write_csv(text: str, output: str | None) -> None:
    """`text` to stdout (`output` None) or to the new file `output`, its folders made;
    one line if it fails."""
    if output is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()  # a full device fails here, not in a traceback at exit
        except OSError as e:
            _fail(f"cannot write to <stdout>: {describe_os_error(e, None)}", FAILED)
        return
    try:
        os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
        f = open(output, "x", encoding="utf-8")  # "x": never over a file made since
    except FileExistsError:
        _fail(_taken(output))
    except OSError as e:
        _fail(f"cannot write {describe_os_error(e, output)}", FAILED)
    try:
        with f:
            f.write(text)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(output)  # ours, begun above: cut short, it would read as a whole CSV
        _fail(f"cannot write {describe_os_error(e, output)}", FAILED)


def predictions_csv(run, outputs) -> str:
    """The CSV text: `predicted`, then `probability_<class>` per class for classification."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    predicted = run.decide(outputs)
    if run.task == "regression":
        writer.writerow(["predicted"])
        writer.writerows([f"{float(v):.9g}"] for v in predicted)
    else:
        probabilities = run.probabilities(outputs)
        writer.writerow(["predicted", *(f"probability_{name}" for name in run.class_names)])
        for name, row in zip(predicted, probabilities, strict=True):
            writer.writerow([name, *(f"{float(p):.9g}" for p in row)])
    return buffer.getvalue()


def _taken(output) -> str:
    return f"--output {output} already exists; give a new file name, or remove it first"


def _fail(error: Exception | str, status: int = USAGE_ERROR) -> NoReturn:
    fail("kerasmlp-predict", error, status)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="kerasmlp-predict")
