"""How latency is shown: the cells and notes the compact and the wide grid share.

A timed grid row (:func:`mnprof.views.grid_timings.with_timings`) has ``latency_ms``, the statistic chosen with
``--statistic`` (the headline, the 5th percentile of the calls, by default), ``latency_relative`` over
``reference_id``, and the median and IQR of every timed call as the typical figure.
"""

from __future__ import annotations

import pandas as pd

from mnprof.timing.records import GEOMETRIC_MEAN, STATISTIC_LABEL, STATISTIC_MEANING, Statistic
from mnprof.views.render import is_missing, number

__all__ = ["latency_cell", "latency_notes", "relative_cell", "typical_cell"]


def latency_cell(row: pd.Series) -> str:
    """The chosen statistic in ms, ``!`` when its 95% CI did not reach the target (noisy); ``error``; ``-``."""
    if not is_missing(row.get("error")):
        return "error"
    if is_missing(row.get("latency_ms")):
        return "-"
    noisy = "!" if row.get("noisy") is True and row.get("statistic") == Statistic.P5.value else ""
    return f"{row['latency_ms']:.2f}{noisy}"


def typical_cell(row: pd.Series) -> str:
    """The median of every timed call and its IQR, in ms."""
    if is_missing(row.get("latency_ms_median")):
        return "-"
    return f"{row['latency_ms_median']:.2f} ({row['latency_ms_iqr']:.2f})"


def relative_cell(row: pd.Series) -> str:
    return number(row.get("latency_relative"), 3)


def latency_notes(frame: pd.DataFrame, *, detailed: bool = False) -> list[str]:
    """What the latency columns mean: the statistic shown, the reference, the typical figure, noisy."""
    measured = frame[frame["latency_ms"].notna()]
    statistic = Statistic(measured["statistic"].iloc[0]) if not measured.empty else Statistic.P5
    chosen = {str(r) for r in measured["reference_id"].dropna()} - {GEOMETRIC_MEAN}
    reference = ", ".join(sorted(chosen)) + "'s" if chosen else f"the {GEOMETRIC_MEAN} of the configurations"
    meaning = STATISTIC_MEANING[statistic] if detailed else f"{STATISTIC_LABEL[statistic]} (mnprof table --help)"
    notes = [
        f"ms: {meaning}, per batch; rel: ms over {reference} timed together (same runtime, batch, threads, "
        "run), what transfers across runs; median (IQR): every call as it came"
    ]
    noisy = "noisy" in measured.columns and bool((measured["noisy"] == True).any())  # noqa: E712 - pandas mask
    if statistic is Statistic.P5 and noisy:
        target = measured["target_ci_pct"].dropna()
        bound = f"±{target.iloc[0]:g}%" if len(target) else "the target"
        notes.append(
            f"! noisy: its 95% CI relative to the run was wider than {bound} when the budget ran out (its low "
            "end moved from pass to pass unlike the other configurations')"
        )
    return notes
