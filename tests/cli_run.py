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
