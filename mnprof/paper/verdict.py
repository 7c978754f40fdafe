"""Verdicts and the computed-table record shared by every table of the paper.

Each ``table<N>()`` function (in :mod:`mnprof.paper.architecture` and :mod:`mnprof.paper.models`)
returns a :class:`PaperTable`: a flat DataFrame (exact integers in ``macs`` / ``params`` columns,
units in the other names) and notes. Every verdict in a note ("reproduced", "differs", "confirmed")
is derived by comparing numbers at the precision the paper printed them with (:func:`verdict`); the
notes' fixed text only explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum

import pandas as pd

from mnprof.model.reference import decimals

__all__ = [
    "PaperTable",
    "Verdict",
    "rounded",
    "verdict",
]


class Verdict(StrEnum):
    """How a computed number compares with a published one, at the precision it was printed with."""

    REPRODUCED = "reproduced"  # rounded half up to the printed decimals, it is the published number
    TRUNCATED = "truncated"  # only cut (not rounded) to the printed decimals does it give the published number
    DIFFERS = "differs"


def _quantize(value: float, places: int, rounding: str) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places), rounding=rounding)


def verdict(computed: float, published: float) -> Verdict:
    """Compare ``computed`` with ``published`` at the decimals ``published`` was printed with (569 -> 0, 4.2 -> 1)."""
    places = decimals(published)
    target = _quantize(published, places, ROUND_HALF_UP)
    if _quantize(computed, places, ROUND_HALF_UP) == target:
        return Verdict.REPRODUCED
    if _quantize(computed, places, ROUND_DOWN) == target:
        return Verdict.TRUNCATED
    return Verdict.DIFFERS


def rounded(value: float, like: float) -> str:
    """``value`` rounded half up to the decimals ``like`` was printed with."""
    return str(_quantize(value, decimals(like), ROUND_HALF_UP))


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's tables, computed: ``frame`` holds one row per printed row, ``notes`` the findings."""

    key: str  # "1" to "9"
    title: str
    frame: pd.DataFrame
    notes: tuple[str, ...]
