"""Tests for kerasmlp.console: output on file descriptor 2 held back, or shown on failure;
the garbage collector paused while TensorFlow imports.

`capfd` reads file descriptor 2 itself, where TensorFlow's C++ logging writes,
so these tests see what a terminal would. (Python's own writes to stderr go
through it too in a real process; the CLI test checks a whole run's stderr.)
"""

import gc
import os

import pytest

from kerasmlp import console


def test_what_a_block_writes_to_stderr_is_dropped_when_it_succeeds(capfd):
    with console.held_back_stderr():
        os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers\n")  # as C++ does
    os.write(2, b"after the block\n")
    assert capfd.readouterr().err == "after the block\n"


def test_what_a_block_wrote_is_shown_when_it_fails(capfd):
    with pytest.raises(ImportError, match="no such library"):
        with console.held_back_stderr():
            os.write(2, b"E0000 loader.cc] libfoo.so: cannot open shared object\n")
            raise ImportError("no such library")
    # The real cause stays visible, and stderr works again afterwards.
    os.write(2, b"later\n")
    assert capfd.readouterr().err == (
        "E0000 loader.cc] libfoo.so: cannot open shared object\nlater\n"
    )


def test_what_a_block_wrote_is_dropped_when_ctrl_c_stops_it(capfd):
    # Stopping the start-up is no failure of it: its log would only bury the user's prompt.
    with pytest.raises(KeyboardInterrupt):
        with console.held_back_stderr():
            os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers\n")
            raise KeyboardInterrupt
    os.write(2, b"later\n")
    assert capfd.readouterr().err == "later\n"


@pytest.fixture
def collector_restored():
    """The collector on or off as it was, after the test. (Frozen objects stay frozen: the
    CLIs' tests freeze TensorFlow's in this process too, through `start_tensorflow`.)"""
    enabled = gc.isenabled()
    yield
    (gc.enable if enabled else gc.disable)()


def test_the_collector_is_paused_in_the_block_and_what_it_made_is_frozen(collector_restored):
    gc.enable()
    frozen = gc.get_freeze_count()
    with console.collector_paused():
        assert not gc.isenabled()
        made = [[index] for index in range(1000)]  # 1,000 containers the collector tracks
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(made)


def test_a_collector_that_was_off_stays_off(collector_restored):
    gc.disable()
    with console.collector_paused():
        pass
    assert not gc.isenabled()


def test_a_block_that_fails_freezes_nothing_and_the_collector_runs_again(collector_restored):
    gc.enable()
    frozen = gc.get_freeze_count()
    with pytest.raises(ImportError):
        with console.collector_paused():
            made = [[index] for index in range(1000)]  # noqa: F841
            raise ImportError("no such library")
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def _warn_of_retracing(function_name):
    """What tf.function logs when a function's last 5 calls all traced (TensorFlow's own code)."""
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    detector = polymorphic_function._FrequentTracingDetector()
    for _ in range(polymorphic_function.FREQUENT_TRACING_WARNING_THRESHOLD):
        detector.called_with_tracing(function_name, omit_warning=False)


def test_retracing_warnings_about_kerasmlps_loops_are_dropped_others_kept(caplog):
    # A sweep builds one Trainer per point and TensorFlow counts their traces together:
    # from the third point kerasmlp-train printed "Tracing is expensive ... please define
    # your @tf.function outside of the loop" about its own evaluation loop.
    console.quiet_own_retracing_warnings()
    caplog.clear()
    _warn_of_retracing("<bound method Trainer._evaluate_in_memory of <kerasmlp.trainer.Trainer>>")
    assert not caplog.records
    _warn_of_retracing("<function my_step at 0x7f00>")  # a user's function: still warned about
    assert [r.getMessage().split(" triggered")[0] for r in caplog.records] == [
        "5 out of the last 5 calls to <function my_step at 0x7f00>"
    ]


def test_kerasmlp_train_keeps_its_own_retracing_warnings_off_stderr(monkeypatch):
    monkeypatch.setattr(console, "import_tensorflow_quietly", lambda: None)
    added = []
    monkeypatch.setattr(console, "quiet_own_retracing_warnings", lambda: added.append(True))
    console.start_tensorflow(verbose=True)
    assert not added  # --verbose shows TensorFlow's log as it is
    console.start_tensorflow(verbose=False)
    assert added


def test_a_closed_stdout_is_plugged_with_devnull():
    # `kerasmlp-train >&-`: Python starts with sys.stdout None, and the commands ended in
    # an AttributeError's traceback at their first line. A child without TensorFlow
    # (a closed descriptor 1 cannot be made in the test's own process).
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from kerasmlp import console\n"
        "assert sys.stdout is None\n"
        "console.plug_closed_streams()\n"
        "print('dropped')\n"
        "sys.stdout.flush()\n"
        "with open(os.devnull) as f:\n"  # descriptor 1 is taken: a file cannot land there
        "    os.write(2, f'{os.readlink(\"/proc/self/fd/1\")} {f.fileno() != 1}'.encode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: os.close(1),
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "/dev/null True"
