"""Comparing a baseline with a recount: :class:`Finding` for each difference, :class:`CheckResult` for the verdict.

Counts that grew fail unless within tolerance; counts that shrank, and entries added or removed,
pass (with a notice to update the baseline on purpose) unless strict; an operator a counter newly
failed to count always fails, and so do extra findings such as latency that grew.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["INSTRUCTIONS_COUNTER", "INSTRUCTIONS_METRIC", "CheckResult", "Finding", "compare"]

# With mnprof check --instructions, each entry's instructions per forward pass (counted under Valgrind's Callgrind)
# are compared as this counter's metric, against --instructions-tolerance instead of --tolerance.
INSTRUCTIONS_COUNTER = "callgrind"
INSTRUCTIONS_METRIC = "instructions"


@dataclass(frozen=True)
class Finding:
    """One difference between the baseline and now.

    ``status``: ``grew``, ``shrank``, ``added`` (entry or metric new), ``removed``,
    ``uncounted`` (a counter newly reports an operator it could not count), or ``slower``
    (latency beyond ``--latency-tolerance``, same host only).
    """

    status: str
    entry: str
    counter: str = ""
    metric: str = ""
    baseline: float | None = None  # exact integers for counts; milliseconds for latency
    now: float | None = None

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.now is None else self.now - self.baseline

    @property
    def percent(self) -> float | None:
        if self.delta is None or not self.baseline:
            return None
        return self.delta / self.baseline * 100


@dataclass(frozen=True)
class CheckResult:
    findings: tuple[Finding, ...]
    tolerance_pct: float
    strict: bool
    compared: int  # entries present in both
    failures: tuple[Finding, ...] = field(default=())
    # With --latency: every compared entry's relative latency then and now (mnprof.check.latency)
    latency: Mapping[str, Mapping[str, Any]] | None = None
    latency_tolerance_pct: float | None = None
    # Every (entry, counter, metric) compared, changed or not: what a test report lists as its test cases
    metrics: tuple[tuple[str, str, str], ...] = field(default=())
    # With --instructions: the tolerance of the callgrind instructions metric
    instructions_tolerance_pct: float | None = None
    # What the report must say aloud whatever the verdict (instructions compared across software with --force)
    warnings: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def passed(self) -> bool:
        return not self.failures


def _metrics(entry: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    flat: dict[tuple[str, str], int] = {}
    for counter, values in entry.get("counts", {}).items():
        for metric, value in values.items():
            if metric == "unsupported_ops":
                continue
            if isinstance(value, dict):
                for operator, count in value.items():  # macs_by_operator -> macs[conv], macs[batch_norm], ...
                    flat[(counter, f"{metric.removesuffix('_by_operator')}[{operator}]")] = count
            else:
                flat[(counter, metric)] = value
    return flat


def _unsupported(entry: Mapping[str, Any]) -> dict[str, int]:
    return dict(entry.get("counts", {}).get("fvcore", {}).get("unsupported_ops", {}))


def compare(
    baseline: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]],
    *,
    tolerance_pct: float = 0.0,
    strict: bool = False,
    extra: Sequence[Finding] = (),
    instructions_tolerance_pct: float | None = None,
) -> CheckResult:
    """Compare entries. Fails on growth beyond ``tolerance_pct`` (``instructions_tolerance_pct`` for the
    :data:`INSTRUCTIONS_COUNTER`'s metric) and on newly uncounted operators; with ``strict``, on any change at all
    (shrinkage, entries added or removed). ``extra`` findings (latency that grew) join the result and fail it."""
    findings: list[Finding] = []
    metrics: list[tuple[str, str, str]] = []
    for key in sorted(set(baseline) | set(current)):
        if key not in current:
            findings.append(Finding("removed", key))
        elif key not in baseline:
            findings.append(Finding("added", key))
        else:
            found, compared_metrics = _entry_findings(key, baseline[key], current[key])
            findings += found
            metrics += compared_metrics
    findings += extra
    compared = len(set(baseline) & set(current))
    failures = tuple(f for f in findings if _fails(f, strict, tolerance_pct, instructions_tolerance_pct))
    return CheckResult(
        tuple(findings),
        tolerance_pct,
        strict,
        compared,
        failures,
        metrics=tuple(metrics),
        instructions_tolerance_pct=instructions_tolerance_pct,
    )


def _entry_findings(
    key: str, baseline: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[list[Finding], list[tuple[str, str, str]]]:
    """One entry in both: a finding for each metric that changed and each operator newly uncounted, and every
    (entry, counter, metric) compared."""
    findings: list[Finding] = []
    metrics: list[tuple[str, str, str]] = []
    before, now = _metrics(baseline), _metrics(current)
    for counter, metric in sorted(set(before) | set(now)):
        metrics.append((key, counter, metric))
        old, new = before.get((counter, metric)), now.get((counter, metric))
        if old == new:
            continue
        if old is None:  # a metric this baseline did not record: nothing to compare it with yet
            status = "added"
        elif new is None:
            status = "removed"
        else:
            status = "grew" if new > old else "shrank"
        findings.append(Finding(status, key, counter, metric, old, new))
    newly_uncounted = set(_unsupported(current)) - set(_unsupported(baseline))
    for operator in sorted(newly_uncounted):
        findings.append(Finding("uncounted", key, "fvcore", operator, None, _unsupported(current)[operator]))
    return findings, metrics


def _fails(finding: Finding, strict: bool, tolerance_pct: float, instructions_tolerance_pct: float | None) -> bool:
    """Whether a finding fails the check: any with ``strict``; otherwise an operator newly uncounted, latency that
    grew, or a count that grew beyond its tolerance."""
    if strict or finding.status in ("uncounted", "slower"):
        return True
    if finding.status != "grew":
        return False
    percent = finding.percent
    limit = tolerance_pct
    if finding.counter == INSTRUCTIONS_COUNTER and instructions_tolerance_pct is not None:
        limit = instructions_tolerance_pct
    return percent is None or percent > limit
