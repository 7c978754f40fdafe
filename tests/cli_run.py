"""Running the command line in-process for tests: one helper, shared by every CLI test module."""

from __future__ import annotations

from pathlib import Path

from mnprof.cli import main

ROOT = Path(__file__).resolve().parent.parent  # the repository: test factories import relative to it


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``mnprof ARGS``: its exit code, stdout and stderr."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


TINY_GRID = ["--alpha", "0.25", "--resolution", "32"]  # the smallest grid the hostile-input tests run
# mnprof table timed briefly on one configuration: the timing tests add their options to it
TIMED = ["table", "--alpha", "0.25", "--resolution", "32", "--quiet", "--threads", "1", "--budget", "0.05"]


def refused(capsys, *args: str) -> str:
    """``mnprof ARGS`` refused as bad input must be: exit 2, one line on stderr, no traceback; returns the line."""
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.count("\n") == 1 and captured.err.startswith("mnprof: error: ")
    assert "Traceback" not in captured.err
    return captured.err
