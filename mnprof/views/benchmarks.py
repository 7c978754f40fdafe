"""The grid as benchmark-tracking services read it: ``mnprof table --format benchmark-action|bencher``.

- ``benchmark-action``: github-action-benchmark's ``customSmallerIsBetter`` tool, a JSON list of
  ``{"name", "unit", "value", "range"?, "extra"?}``; params, MACs and latency all improve as they fall.
- ``bencher``: Bencher Metric Format (BMF), ``{benchmark: {measure: {"value", "lower_value"?, "upper_value"?}}}``.
  Latency goes into Bencher's built-in ``latency`` measure, which is in nanoseconds, with the headline's 95%
  interval as its bounds; params and MACs (or FLOPs) into measures of those names, created on first upload.

One benchmark per configuration (its id), and per runtime, batch size and threads where it was timed. Counts are
exact integers; a configuration whose timing failed has no latency. Every value is checked to be a finite number
before anything is written.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from mnprof.errors import MnprofError
from mnprof.views.render import is_missing

__all__ = ["BENCHMARK_FORMATS", "render_benchmarks"]

BENCHMARK_FORMATS = ("benchmark-action", "bencher")


def _timed(row: pd.Series) -> bool:
    return "latency_ms" in row.index and not is_missing(row.get("latency_ms"))


def _series(row: pd.Series) -> str:
    """What tells two timings of one configuration apart, in words: ``eager, batch 1, 4 threads``."""
    return f"{row['backend']}, batch {int(row['batch_size'])}, {int(row['threads'])} threads"


def _value(value: Any, what: str) -> int | float:
    value = value.item() if hasattr(value, "item") else value  # numpy scalars: exact Python numbers
    if is_missing(value) or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MnprofError(f"{what} has no value to report; accepted: a configuration counted (and timed) in full")
    if not math.isfinite(value):
        raise MnprofError(f"{what} is {value}, not a finite number; accepted: a configuration counted in full")
    return value


def _counts(frame: pd.DataFrame, flops: bool) -> list[tuple[str, str, int]]:
    """(configuration id, measure, exact value) of params and MACs (or FLOPs), once per configuration."""
    out = []
    for _, row in frame.drop_duplicates("id").iterrows():
        macs = _value(row["macs_analytic"], f"{row['id']} macs")
        out.append((row["id"], "params", _value(row["params"], f"{row['id']} params")))
        out.append((row["id"], "flops" if flops else "macs", 2 * macs if flops else macs))
    return out


def render_benchmarks(frame: pd.DataFrame, fmt: str, *, flops: bool = False) -> str:
    """``frame`` (:func:`mnprof.views.grid.grid_frame`, timed or not) as ``benchmark-action`` or ``bencher`` JSON."""
    if fmt == "benchmark-action":
        entries: list[dict[str, Any]] = [
            {
                "name": f"{config} {measure}",
                "unit": {"flops": "FLOPs", "macs": "MACs"}.get(measure, measure),
                "value": value,
            }
            for config, measure, value in _counts(frame, flops)
        ]
        for _, row in frame.iterrows():
            if not _timed(row):
                continue
            entry = {
                "name": f"{row['id']} latency ({_series(row)})",
                "unit": "ms",
                "value": _value(row["latency_ms"], f"{row['id']} latency"),
                "extra": f"statistic {row.get('statistic', 'p5')}; host {row.get('host', '?')}",
            }
            low, high = row.get("latency_ms_ci_low"), row.get("latency_ms_ci_high")
            if row.get("statistic", "p5") == "p5" and not is_missing(low) and not is_missing(high):
                entry["range"] = f"{_value(low, 'interval'):.4g} to {_value(high, 'interval'):.4g} ms (95%)"
            entries.append(entry)
        return json.dumps(entries, indent=2, allow_nan=False) + "\n"
    if fmt == "bencher":
        document: dict[str, dict[str, dict[str, int | float]]] = {}
        for config, measure, value in _counts(frame, flops):
            document.setdefault(config, {})[measure] = {"value": value}
        for _, row in frame.iterrows():
            if not _timed(row):
                continue
            metric: dict[str, int | float] = {"value": _value(row["latency_ms"], f"{row['id']} latency") * 1e6}
            low, high = row.get("latency_ms_ci_low"), row.get("latency_ms_ci_high")
            if row.get("statistic", "p5") == "p5" and not is_missing(low) and not is_missing(high):
                metric["lower_value"] = _value(low, "interval") * 1e6
                metric["upper_value"] = _value(high, "interval") * 1e6
            document.setdefault(f"{row['id']} ({_series(row)})", {})["latency"] = metric  # nanoseconds
        return json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
    raise ValueError(f"not a benchmark format: {fmt}")
