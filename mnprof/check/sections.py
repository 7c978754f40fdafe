"""The baseline's opt-in sections (``latency``, ``instructions``): a section the gate cannot compare with is refused
before anything is measured, in one line that says how to record one here."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnprof.errors import MnprofError

__all__ = ["refuse_other_method"]


def refuse_other_method(
    section: Mapping[str, Any] | None, path: Path, *, what: str, method: str, recorded: str, this: str
) -> str:
    """Refuse the baseline ``path`` when its ``what`` section (``latency``, ``instructions``) is missing or was
    recorded by a method other than ``method`` (``recorded`` says how, ``this`` names the mnprof that compares);
    returns the hint that says how to record one here, for the section's own refusals."""
    regenerate = f"record one here with: mnprof baseline --{what} --out {path}"
    if not section:
        raise MnprofError(f"baseline {path} has no {what}; {regenerate}")
    if section.get("method") != method:
        raise MnprofError(
            f"baseline {path} {what} {recorded} (method {section.get('method')!r}, {this} compares {method!r}); "
            f"{regenerate}"
        )
    return regenerate
