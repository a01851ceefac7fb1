"""Tests for kerasmlp.console: output on file descriptor 2 held back, or shown on failure.

`capfd` reads file descriptor 2 itself, where TensorFlow's C++ logging writes,
so these tests see what a terminal would. (Python's own writes to stderr go
through it too in a real process; the CLI test checks a whole run's stderr.)
"""

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
