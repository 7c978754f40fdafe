"""The versioned JSON document of a table (``mnprof table --format json`` and every view written as JSON):
``schema_version``, ``kind``, ``view``, ``unit``, ``environment`` and flat ``rows``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mnprof.provenance import count_provenance

__all__ = ["TABLE_SCHEMA_VERSION", "table_document"]

# Bump when a key is renamed or removed or its meaning changes; adding keys keeps the version.
# 2: timed rows' noisy, ci_halfwidth_pct, throughput_ips and the GFLOP/s follow the headline latency (the
# host-adjusted median, latency_ms_adjusted) instead of the median.
# 3: the headline latency is the 5th percentile of the calls (latency_ms_p5); noisy, ci_halfwidth_pct,
# the rates and the default latency_ms follow it.
# 4: noisy judges the headline's interval relative to its run (rel_ci_halfwidth_pct) where three or more
# configurations were timed together.
TABLE_SCHEMA_VERSION = 4


def table_document(
    rows: Sequence[Mapping[str, Any]], *, view: str, unit: str | None, kind: str = "mnprof.table"
) -> dict[str, Any]:
    """The JSON document for a table: ``schema_version``, ``kind``, ``environment``, ``rows`` (flat objects);
    ``unit`` (macs or flops) where the rows count operations."""
    document: dict[str, Any] = {"schema_version": TABLE_SCHEMA_VERSION, "kind": kind, "view": view}
    if unit is not None:
        document["unit"] = unit
    return {**document, "environment": count_provenance(), "rows": [dict(row) for row in rows]}
