"""``mnprof table --format junit``: what the table can report as tests without a baseline, as JUnit XML.

A table has nothing to compare with, so a test case here is a claim the table itself can check:

- ``COUNTER macs`` (fvcore, thop; torch in the counts view): the counter's total is what its documented
  conventions predict from the analytic layer plan, operator by operator (the reconciliation's unexplained
  MACs are 0). A failure names the configuration, the counter's total, the analytic count and the MACs no
  convention explains; the reconciliation line (``fvcore = analytic + batch_norm ...``) is the case's output.
- ``shapes macs`` (counts view): the shape counter, the layer plan's independent witness, counts the analytic
  MACs exactly.
- ``latency (RUNTIME, batch B, T threads, DEVICE)``, where timed: fails when the measurement posted no time (its
  error is the message); passes with its latency as output otherwise (noisy or contended is said there, not
  failed: the table is no latency gate). A configuration the timings read hold nothing for is ``<skipped>``.

One ``<testsuite>`` per model (``mnprof table: FAMILY``), ``classname`` the configuration's id, laid out by
:func:`mnprof.check.junit.junit_xml` as ``mnprof check --format junit`` is. A configuration that cannot be built or
counted ends the command (one line, exit 2) before any report exists, so it is never a test case; and the command
exits 0 whatever the cases say (the table reports; ``mnprof check`` is the gate).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from mnprof.check.junit import JUnitCase, junit_xml
from mnprof.views.render import is_missing

__all__ = ["render_table_junit"]

COUNTERS = ("fvcore", "thop", "torch")


def _int(value: Any) -> int | None:
    return None if is_missing(value) else int(value)


def _count_cases(row: pd.Series, suite: str) -> Iterator[JUnitCase]:
    config, analytic = row["id"], _int(row["macs_analytic"])
    for counter in COUNTERS:
        unexplained = _int(row.get(f"macs_{counter}_unexplained"))
        if unexplained is None:  # torch's counter runs in the counts view only
            continue
        explained = row.get(f"{counter}_explained")
        output = None if is_missing(explained) else str(explained)
        failure = None
        if unexplained:
            failure = (
                f"{config} {counter} macs: counted {_int(row[f'macs_{counter}']):,}, analytic {analytic:,}; "
                f"{unexplained:+,} MACs no convention of {counter}'s explains ({output})"
            )
        yield JUnitCase(suite, config, f"{counter} macs", failure, "unexplained", output=None if failure else output)
    shapes = _int(row.get("macs_shapes"))
    if shapes is not None:
        failure = None
        if shapes != analytic:
            failure = (
                f"{config} shapes macs: the shape counter counted {shapes:,}, the analytic plan {analytic:,} "
                f"({shapes - analytic:+,})"
            )
        yield JUnitCase(suite, config, "shapes macs", failure, "differs", output=f"{shapes:,} MACs")


def _series(row: pd.Series) -> str:
    return f"{row['backend']}, batch {int(row['batch_size'])}, {int(row['threads'])} threads, {row['device']}"


def _latency_cases(rows: pd.DataFrame, suite: str) -> Iterator[JUnitCase]:
    timed = rows[rows["backend"].map(lambda value: not is_missing(value))]
    config = rows["id"].iloc[0]
    if timed.empty:
        yield JUnitCase(suite, config, "latency", skipped=f"{config}: not timed (no measurement of it was read)")
        return
    names = [f"latency ({_series(row)})" for _, row in timed.iterrows()]
    for name, (_, row) in zip(names, timed.iterrows(), strict=True):
        if names.count(name) > 1:  # several hosts or runs timed it alike (--from-results): told apart by them
            name = f"{name[:-1]}, host {row.get('host')}, run {row.get('run_id')})"
        error, latency = row.get("error"), row.get("latency_ms")
        if (not is_missing(error) and error) or is_missing(latency):
            reason = error if not is_missing(error) and error else "none posted, and no error said why"
            yield JUnitCase(suite, config, name, f"{config} {name}: no time: {reason}", "error")
            continue
        notes = [note for note in ("noisy", "contended") if not is_missing(row.get(note)) and bool(row.get(note))]
        output = (
            f"{config} {name}: {float(latency):.4g} ms ({row.get('statistic', 'p5')})"
            f"{''.join(f', {note}' for note in notes)}; host {row.get('host')}"
        )
        yield JUnitCase(suite, config, name, output=output)


def render_table_junit(frame: pd.DataFrame, properties: dict[str, str] | None = None) -> str:
    """The test cases of the module's docstring for ``frame`` (:func:`mnprof.views.grid.grid_frame`, timed or not),
    as a JUnit XML document."""

    def cases() -> Iterator[JUnitCase]:
        for _, rows in frame.groupby("id", sort=False):
            first = rows.iloc[0]
            suite = f"mnprof table: {first.get('family') or 'mobilenetv1'}"
            yield from _count_cases(first, suite)
            if "backend" in frame.columns:
                yield from _latency_cases(rows, suite)

    return junit_xml("mnprof table", cases(), properties)
