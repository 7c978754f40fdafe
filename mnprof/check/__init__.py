"""The regression gate: record exact counts in a baseline, recount, and compare.

A baseline is a sorted, diff-friendly JSON document. Each entry is one model at one alpha and
resolution, with the exact params and MACs of every counter and fvcore's per-operator totals.
``compare`` turns two sets of entries into findings: counts that grew (a regression unless
within tolerance), shrank (passes, with a notice to update the baseline on purpose), entries
added or removed, and operators a counter newly failed to count.

Modules: :mod:`~mnprof.check.settings` (what to guard), :mod:`~mnprof.check.baseline` (counting
into entries; the baseline file), :mod:`~mnprof.check.latency` (opt-in latency),
:mod:`~mnprof.check.findings` (findings) and :mod:`~mnprof.check.render` (text, json, markdown, github).
"""

from __future__ import annotations

from mnprof.check.baseline import (
    BASELINE_KIND,
    BASELINE_SCHEMA_VERSION,
    baseline_document,
    builtin_entries,
    entry_key,
    entry_macs,
    load_baseline,
    measure,
    refuse_other_models,
    refuse_part,
    refuse_unrelated,
    training_to_check,
)
from mnprof.check.findings import CheckResult, Finding, compare
from mnprof.check.latency import DEFAULT_LATENCY_TOLERANCE_PCT, compare_latency, measure_latency, usable_baseline
from mnprof.check.render import render_check, summary
from mnprof.check.settings import (
    BUILTIN,
    DEFAULT_BASELINE,
    DEFAULT_INSTRUCTIONS_TOLERANCE_PCT,
    CheckSettings,
    ModelSpec,
    load_settings,
    parse_tolerance,
)

__all__ = [
    "entry_macs",
    "BASELINE_KIND",
    "BASELINE_SCHEMA_VERSION",
    "BUILTIN",
    "DEFAULT_BASELINE",
    "DEFAULT_INSTRUCTIONS_TOLERANCE_PCT",
    "CheckResult",
    "CheckSettings",
    "Finding",
    "ModelSpec",
    "baseline_document",
    "builtin_entries",
    "compare",
    "DEFAULT_LATENCY_TOLERANCE_PCT",
    "compare_latency",
    "entry_key",
    "load_baseline",
    "load_settings",
    "measure",
    "measure_latency",
    "refuse_other_models",
    "refuse_part",
    "refuse_unrelated",
    "training_to_check",
    "usable_baseline",
    "parse_tolerance",
    "render_check",
    "summary",
]
