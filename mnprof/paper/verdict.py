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
from typing import Any

import pandas as pd

from mnprof.model.reference import MILLION, decimals, delta_pct

__all__ = [
    "counted_beside_published",
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


def counted_beside_published(entry: Any, macs: int, params: int) -> dict[str, object]:
    """The columns every published row's table shares (MobileNetV2's TF-slim rows, MobileNetV3's): the published
    top-1, MACs, params and latency of ``entry`` (a :class:`~mnprof.model.reference.Published`), the counted
    ``macs`` and ``params``, and each delta and verdict."""
    macs_m, params_m = macs / MILLION, params / MILLION
    return {
        "published_top1": entry.top1,
        "published_macs_m": entry.macs_m,
        "macs": macs,
        "macs_m": macs_m,
        "delta_macs_pct": delta_pct(macs_m, entry.macs_m),
        "macs_verdict": verdict(macs_m, entry.macs_m).value if entry.macs_m is not None else "",
        "published_params_m": entry.params_m,
        "params": params,
        "params_m": params_m,
        "delta_params_pct": delta_pct(params_m, entry.params_m),
        "params_verdict": verdict(params_m, entry.params_m).value if entry.params_m is not None else "",
        "published_latency_ms": entry.latency_ms,
    }
