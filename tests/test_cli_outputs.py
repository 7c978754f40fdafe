"""Counts-only command output is pinned byte for byte: each command that reports/README.md names as the way
to regenerate a count-only file prints exactly the committed file (the baseline is written with --out)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from mnprof.cli import main
from mnprof.reports.catalogue import COUNT_FILES

REPORTS = Path(__file__).resolve().parent.parent / "reports"


@pytest.mark.parametrize("item", COUNT_FILES, ids=lambda item: item.name)
def test_each_regenerate_command_prints_the_committed_file(item, tmp_path, capsys):
    command = shlex.split(item.regenerate)
    assert command[0] == "mnprof"
    args = command[1:]
    if "--out" in args:  # written to a file: write it elsewhere and compare that
        args[args.index("--out") + 1] = str(tmp_path / item.name)
    code = main([*args, "--quiet"] if args[0] in ("table", "layers", "baseline") else args)
    out = capsys.readouterr().out
    assert code == 0
    text = (tmp_path / item.name).read_text(encoding="utf-8") if "--out" in args else out
    assert text == (REPORTS / item.name).read_text(encoding="utf-8"), f"{item.regenerate} output changed"
