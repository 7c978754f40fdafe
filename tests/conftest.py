from __future__ import annotations

import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parent.parent  # the repository


@pytest.fixture
def golden():
    """Compare text with tests/golden/<name>; MNPROF_UPDATE_GOLDEN=1 rewrites the file instead."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if os.environ.get("MNPROF_UPDATE_GOLDEN") == "1":
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"missing golden file {path}; run with MNPROF_UPDATE_GOLDEN=1 to create it"
        assert text == path.read_text(encoding="utf-8")

    return check


@pytest.fixture(autouse=True)
def _no_inherited_terminal_width(monkeypatch):
    """Rendered tables follow COLUMNS when piped: tests that care set it; none inherits the caller's."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture
def at_repo_root(monkeypatch):
    """The working directory is the repository: factories such as ``tests.regression_models:tiny`` are imported
    relative to it. A module that needs it everywhere says ``pytestmark = pytest.mark.usefixtures("at_repo_root")``."""
    monkeypatch.chdir(ROOT)


FAKE_PEAK = {"device": "cpu", "threads": 1, "kernel": "fake", "gflops": 100.0, "gflops_by_kernel": {}}


@pytest.fixture
def fake_peak(monkeypatch):
    """Skip the GEMM microbenchmark (about 2 s) where a test does not look at it."""
    from mnprof.timing import sweep as latency  # here, not at the top: collecting the suite imports no torch
    from mnprof.timing.records import GemmPeak

    monkeypatch.setattr(
        latency, "measure_gemm_peak", lambda device, threads, **_: GemmPeak.from_row(dict(FAKE_PEAK, threads=threads))
    )
