from __future__ import annotations

import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


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
