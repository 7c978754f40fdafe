"""Rendering a :class:`~mnprof.check.findings.CheckResult`: text, json, markdown, github annotations and junit.

Text is for people, json for tools, markdown for a job summary (``$GITHUB_STEP_SUMMARY``), and
github for workflow commands (``::error ...``), with their data and properties escaped.
"""

from __future__ import annotations

from pathlib import Path

from mnprof.check.baseline import BASELINE_SCHEMA_VERSION
from mnprof.check.findings import CheckResult, Finding
from mnprof.check.junit import render_junit
from mnprof.files.documents import dumps
from mnprof.views.render import number

__all__ = ["render_check", "summary"]


def _describe(finding: Finding) -> str:
    if finding.counter == "":
        return f"{finding.entry}: configuration {finding.status}"
    if finding.status == "uncounted":
        return (
            f"{finding.entry} fvcore could not count operator {finding.metric} ({finding.now} call(s)); "
            "its MACs are missing from fvcore's total"
        )
    head = f"{finding.entry} {finding.counter} {finding.metric}"
    if finding.status == "slower" and finding.baseline is not None and finding.now is not None:
        return (
            f"{finding.entry} latency relative to the control: {finding.baseline:.3f} -> {finding.now:.3f} "
            f"({finding.percent:+.1f}%, beyond the tolerance and both runs' 95% intervals)"
        )
    if finding.status == "added" and finding.baseline is None:
        return f"{head}: {finding.now:,} (not in the baseline: recorded from the next mnprof baseline on)"
    if finding.baseline is None or finding.now is None:
        return f"{head}: {finding.status} ({finding.baseline} -> {finding.now})"
    percent = finding.percent
    pct = f", {percent:+.2f}%" if percent is not None else ""
    return f"{head}: {finding.baseline:,} -> {finding.now:,} ({finding.delta:+,}{pct})"


def summary(result: CheckResult) -> str:
    counts = {status: 0 for status in ("grew", "shrank", "added", "removed", "uncounted", "slower")}
    for finding in result.findings:
        counts[finding.status] += 1
    verdict = "FAILED" if result.failed else "passed"
    instructions = result.instructions_tolerance_pct
    return (
        f"mnprof check {verdict}: {result.compared} configurations compared, tolerance {result.tolerance_pct:g}%"
        + (f", instructions tolerance {instructions:g}%" if instructions is not None else "")
        + (", strict" if result.strict else "")
        + f"; {counts['grew']} grew, {counts['shrank']} shrank, {counts['added']} added, {counts['removed']} removed, "
        f"{counts['uncounted']} newly uncounted" + (f", {counts['slower']} slower" if counts["slower"] else "")
    )


def _advice(result: CheckResult, baseline_path: Path) -> str | None:
    if any(f.status in ("shrank", "added", "removed") for f in result.findings):
        return f"counts changed on purpose? update the baseline and commit it: mnprof baseline --out {baseline_path}"
    return None


def render_check(result: CheckResult, fmt: str, baseline_path: Path) -> str:
    """Render as ``text``, ``json``, ``markdown`` (a job summary), ``github`` (workflow annotations) or ``junit``
    (a JUnit XML test report, :mod:`mnprof.check.junit`)."""
    advice = _advice(result, baseline_path)
    if fmt == "junit":
        return render_junit(result, baseline_path)
    if fmt == "json":
        return _json(result, baseline_path)
    if fmt == "github":
        return _github(result, advice)
    if fmt == "markdown":
        return _markdown(result, advice)
    return _text(result, advice)


def _json(result: CheckResult, baseline_path: Path) -> str:
    failing = set(result.failures)
    document = {
        "schema_version": BASELINE_SCHEMA_VERSION,
        "kind": "mnprof.check",
        "passed": not result.failed,
        "tolerance_pct": result.tolerance_pct,
        "strict": result.strict,
        "compared": result.compared,
        "baseline": str(baseline_path),
        **(
            {"latency_tolerance_pct": result.latency_tolerance_pct, "latency": dict(result.latency)}
            if result.latency is not None
            else {}
        ),
        **(
            {"instructions_tolerance_pct": result.instructions_tolerance_pct}
            if result.instructions_tolerance_pct is not None
            else {}
        ),
        **({"warnings": list(result.warnings)} if result.warnings else {}),
        "findings": [
            {
                "status": f.status,
                "fails": f in failing,
                "entry": f.entry,
                "counter": f.counter,
                "metric": f.metric,
                "baseline": f.baseline,
                "now": f.now,
                "delta": f.delta,
                "percent": f.percent,
            }
            for f in result.findings
        ],
    }
    return dumps(document)


def _github(result: CheckResult, advice: str | None) -> str:
    failing = set(result.failures)
    lines = [f"::warning title=mnprof check::{_escape_data(warning)}" for warning in result.warnings]
    for f in result.findings:
        level = "error" if f in failing else "notice" if f.status in ("shrank", "added", "removed") else "warning"
        title = f"mnprof: {f.entry} {f.status}"
        lines.append(f"::{level} title={_escape_property(title)}::{_escape_data(_describe(f))}")
    if advice:
        lines.append(f"::notice title=mnprof baseline::{_escape_data(advice)}")
    lines.append(summary(result))
    return "\n".join(lines) + "\n"


def _markdown(result: CheckResult, advice: str | None) -> str:
    failing = set(result.failures)
    icon = ":x:" if result.failed else ":white_check_mark:"
    lines = [f"### {icon} {summary(result)}", ""]
    lines += [f"> **Warning:** {warning}\n" for warning in result.warnings]
    if result.findings:
        lines += [
            "| | configuration | counter | metric | baseline | now | delta | % |",
            "|---|---|---|---|---:|---:|---:|---:|",
        ]
        for f in result.findings:
            mark = "FAIL" if f in failing else f.status
            pct = f"{f.percent:+.2f}" if f.percent is not None else ""
            baseline, now = number(f.baseline, missing=""), number(f.now, missing="")
            delta = number(f.delta, sign=True, missing="")
            lines.append(
                f"| {mark} | `{f.entry}` | {f.counter} | `{f.metric}` | {baseline} | {now} | {delta} | {pct} |"
            )
        lines.append("")
    if advice:
        lines.append(f"> {advice}")
    return "\n".join(lines) + "\n"


def _text(result: CheckResult, advice: str | None) -> str:
    failing = set(result.failures)
    lines = [f"WARNING   {warning}" for warning in result.warnings]
    for f in result.findings:
        mark = "FAIL" if f in failing else f.status
        lines.append(f"{mark:<9} {_describe(f)}")
    lines.append(summary(result))
    if result.latency:
        lines.append(latency_line(result))
    if advice:
        lines.append(advice)
    return "\n".join(lines) + "\n"


def latency_line(result: CheckResult) -> str:
    """The latency comparison in one line: how many entries, the largest change and its significance."""
    latency = result.latency or {}
    key, row = max(latency.items(), key=lambda item: item[1]["change_pct"])
    z = f", {row['z']:.1f} standard errors" if row["z"] is not None else ""
    return (
        f"latency: {len(latency)} configuration(s) compared relative to their controls, tolerance "
        f"{result.latency_tolerance_pct:g}%; largest change {key} {row['change_pct']:+.1f}%{z}"
    )


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
