"""Versions of the software that produced a number: one lookup for every document mnprof writes."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["count_provenance", "package_version"]


def package_version(package: str) -> str | None:
    """The installed version of ``package`` (a distribution name), or ``None`` when it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def count_provenance() -> dict[str, Any]:
    """Versions that decide the counts (no host name or date: count-only documents stay reproducible)."""
    return {
        "mnprof": package_version("mnprof"),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "fvcore": package_version("fvcore"),
        "thop": package_version("ultralytics-thop"),
        "platform": sys.platform,
    }
