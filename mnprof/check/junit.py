"""``mnprof check --format junit``: the comparison as a JUnit XML test report, which every CI shows.

One ``<testsuite>`` per model (``mnprof check: NAME``). One ``<testcase>`` per configuration and metric compared:
``classname`` is the configuration (``NAME@alpha-resolution``, as the baseline keys it) and ``name`` the counter and
metric (``fvcore macs``, ``fvcore macs[conv]``, ``pytorch params``), so that a CI lists them as "configuration >
metric". A count that grew beyond the tolerance (or changed at all, with ``--strict``) is a ``<failure>`` whose
message names configuration, metric, expected (the baseline), got (now), delta and percent; a metric or
configuration not in the baseline, or no longer counted, is ``<skipped>`` unless ``--strict`` fails it. An operator
fvcore newly cannot count is a failing test case of its own (``fvcore unsupported[OP]``), and with ``--latency``
each configuration's relative latency is one more (``latency relative to control``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mnprof.check.findings import INSTRUCTIONS_COUNTER, CheckResult, Finding

__all__ = ["LATENCY_CASE", "JUnitCase", "junit_xml", "render_junit"]

LATENCY_CASE = "latency relative to control"
CONFIGURATION_CASE = "configuration"


def _number(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4g}"


def _message(finding: Finding, result: CheckResult) -> str:
    """What a CI shows for a failure: configuration, metric, expected, got, delta (and percent)."""
    what = f"{finding.entry} {_case_name(finding)}"
    if finding.counter == "":
        return f"{finding.entry}: configuration {finding.status} (--strict fails every change)"
    if finding.status == "uncounted":
        return f"{what}: fvcore newly cannot count {finding.metric} ({finding.now} call(s)); its MACs are missing"
    delta = "" if finding.delta is None else f"delta {'+' if finding.delta > 0 else ''}{_number(finding.delta)}"
    percent = "" if finding.percent is None else f", {finding.percent:+.2f}%"
    limit = (
        f"latency tolerance {result.latency_tolerance_pct:g}%"
        if finding.status == "slower" and result.latency_tolerance_pct is not None
        else f"instructions tolerance {result.instructions_tolerance_pct:g}%" + (", strict" if result.strict else "")
        if finding.counter == INSTRUCTIONS_COUNTER and result.instructions_tolerance_pct is not None
        else f"tolerance {result.tolerance_pct:g}%" + (", strict" if result.strict else "")
    )
    return (
        f"{what} {finding.status}: expected {_number(finding.baseline)}, got {_number(finding.now)} "
        f"({delta}{percent}; {limit})"
    )


def _case_name(finding: Finding) -> str:
    if finding.status == "slower":
        return LATENCY_CASE
    if finding.status == "uncounted":
        return f"fvcore unsupported[{finding.metric}]"
    if finding.counter == "":
        return CONFIGURATION_CASE
    return f"{finding.counter} {finding.metric}"


def _cases(result: CheckResult) -> Iterator[tuple[str, str, Finding | None]]:
    """(configuration, test name, its finding or None) for every test case, in a stable order."""
    by_case = {(f.entry, _case_name(f)): f for f in result.findings}
    seen: set[tuple[str, str]] = set()
    for entry, counter, metric in result.metrics:
        key = (entry, f"{counter} {metric}")
        seen.add(key)
        yield entry, key[1], by_case.get(key)
    for entry in sorted(result.latency or {}):
        key = (entry, LATENCY_CASE)
        seen.add(key)
        yield entry, LATENCY_CASE, by_case.get(key)
    for (entry, name), finding in sorted(by_case.items()):  # configurations added or removed, operators uncounted
        if (entry, name) not in seen:
            yield entry, name, finding


@dataclass(frozen=True)
class JUnitCase:
    """One ``<testcase>`` of :func:`junit_xml`: in test suite ``suite``, ``classname`` > ``name``; a failure (its
    ``failure_type`` and message), skipped (its message), or passed, with ``output`` as its ``<system-out>``."""

    suite: str
    classname: str
    name: str
    failure: str | None = None
    failure_type: str = "failure"
    skipped: str | None = None
    output: str | None = None


def render_junit(result: CheckResult, baseline_path: Path) -> str:
    """The JUnit XML document (UTF-8, with its declaration) of ``result``, laid out by :func:`junit_xml`."""
    failing = set(result.failures)
    cases = [_junit_case(entry, name, finding, result, failing) for entry, name, finding in _cases(result)]
    return junit_xml("mnprof check", cases, _properties(result, baseline_path))


def _properties(result: CheckResult, baseline_path: Path) -> dict[str, str]:
    """Each test suite's ``<properties>``: the baseline, the tolerances, the warnings, strict or not."""
    properties = {"baseline": str(baseline_path), "tolerance_pct": f"{result.tolerance_pct:g}"}
    if result.instructions_tolerance_pct is not None:
        properties["instructions_tolerance_pct"] = f"{result.instructions_tolerance_pct:g}"
    for index, warning in enumerate(result.warnings, 1):
        properties[f"warning_{index}"] = warning
    properties["strict"] = str(result.strict).lower()
    return properties


def _junit_case(
    entry: str, name: str, finding: Finding | None, result: CheckResult, failing: set[Finding]
) -> JUnitCase:
    """One configuration's metric as a test case in its model's suite: failed, skipped (added or removed), or
    passed (with what changed within the tolerance as its output)."""
    suite = f"mnprof check: {entry.rpartition('@')[0] or entry}"
    if finding is not None and finding in failing:
        return JUnitCase(suite, entry, name, failure=_message(finding, result), failure_type=finding.status)
    if finding is not None and finding.status in ("added", "removed"):
        what = "not in the baseline" if finding.status == "added" else "in the baseline, not counted now"
        return JUnitCase(suite, entry, name, skipped=f"{entry} {name}: {what}")
    if finding is not None:  # shrank, or grew within the tolerance: passes, said in its output
        return JUnitCase(suite, entry, name, output=_message(finding, result))
    return JUnitCase(suite, entry, name)


def junit_xml(title: str, cases: Iterable[JUnitCase], properties: Mapping[str, str] | None = None) -> str:
    """The JUnit XML document (UTF-8, with its declaration) of ``cases``, for ``mnprof check`` and ``mnprof table``
    alike: one ``<testsuites name=title>``, a ``<testsuite>`` per suite in order of first appearance with
    ``properties`` and its own totals, ``time="0"`` (nothing is timed as a test)."""
    root = ET.Element("testsuites", name=title)
    suites: dict[str, ET.Element] = {}
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for case in cases:
        suite = suites.get(case.suite)
        if suite is None:
            suite = suites[case.suite] = ET.SubElement(root, "testsuite", name=case.suite)
            listed = ET.SubElement(suite, "properties")
            for name, value in (properties or {}).items():
                ET.SubElement(listed, "property", name=name, value=value)
            for counter in (*totals, "errors"):
                suite.set(counter, "0")
        element = ET.SubElement(suite, "testcase", classname=case.classname, name=case.name, time="0")
        outcome = "tests"
        if case.failure is not None:
            ET.SubElement(element, "failure", type=case.failure_type, message=case.failure).text = case.failure
            outcome = "failures"
        elif case.skipped is not None:
            ET.SubElement(element, "skipped", message=case.skipped)
            outcome = "skipped"
        if case.output is not None:
            ET.SubElement(element, "system-out").text = case.output
        for counter in {"tests", outcome}:
            suite.set(counter, str(int(suite.get(counter, "0")) + 1))
            totals[counter] += 1
    for counter, value in totals.items():
        root.set(counter, str(value))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
