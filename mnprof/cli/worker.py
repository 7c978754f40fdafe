"""The worker process's life (:mod:`mnprof.worker` is its side of the pipe, :mod:`mnprof.supervisor` the other):
connect to the ``mnprof`` process, run the command line, say the exit code, end."""

from __future__ import annotations

import os
import sys
from contextlib import suppress

from mnprof import worker
from mnprof.cli import run_in_worker

__all__ = ["main"]


def main() -> None:
    """Run the command line with the arguments the ``mnprof`` process gave (``sys.argv[1:]``), tell it the exit code
    (:func:`mnprof.worker.done`), and end at once: exit handlers the user's code registered cannot change the
    outcome, which the ``mnprof`` process already has."""
    if not worker.connect():
        sys.stderr.write("mnprof: error: mnprof.cli.worker runs only as the mnprof command's worker process\n")
        os._exit(2)
    code = run_in_worker(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # a stream the user's code closed: its output is lost, not the outcome
            stream.flush()
    worker.done(code)
    os._exit(code)
