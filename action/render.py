"""The GitHub Action's renderer: ``mnprof check --format json``'s report as the job summary (markdown) and as
workflow annotations (``::error ...``), so that the action counts the models once and shows one result three ways.

It reads the report alone (standard library only, no mnprof import: importing mnprof loads torch, seconds that a
second ``mnprof check`` would cost as well) and writes what ``mnprof check --format markdown`` and ``--format
github`` write for the same result, character for character; tests/test_action.py holds the two in step.

    python render.py REPORT.json --markdown SUMMARY.md [--comment BODY.md] > annotations
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# A PR comment holds at most 65,536 characters; the marker and the footer take a few hundred.
COMMENT_LIMIT = 60_000
NOTICE = ("shrank", "added", "removed")


def _number(value: Any, sign: bool = False) -> str:
    return "" if value is None else format(value, ("+" if sign else "") + ",")


def _describe(f: dict[str, Any]) -> str:
    entry, counter, metric, status = f["entry"], f["counter"], f["metric"], f["status"]
    baseline, now, percent = f["baseline"], f["now"], f["percent"]
    if counter == "":
        return f"{entry}: configuration {status}"
    if status == "uncounted":
        return (
            f"{entry} fvcore could not count operator {metric} ({now} call(s)); "
            "its MACs are missing from fvcore's total"
        )
    head = f"{entry} {counter} {metric}"
    if status == "slower" and baseline is not None and now is not None:
        return (
            f"{entry} latency relative to the control: {baseline:.3f} -> {now:.3f} "
            f"({percent:+.1f}%, beyond the tolerance and both runs' 95% intervals)"
        )
    if status == "added" and baseline is None:
        return f"{head}: {now:,} (not in the baseline: recorded from the next mnprof baseline on)"
    if baseline is None or now is None:
        return f"{head}: {status} ({baseline} -> {now})"
    pct = f", {percent:+.2f}%" if percent is not None else ""
    return f"{head}: {baseline:,} -> {now:,} ({f['delta']:+,}{pct})"


def summary(report: dict[str, Any]) -> str:
    counts = dict.fromkeys(("grew", "shrank", "added", "removed", "uncounted", "slower"), 0)
    for finding in report["findings"]:
        counts[finding["status"]] = counts.get(finding["status"], 0) + 1
    verdict = "passed" if report["passed"] else "FAILED"
    instructions = report.get("instructions_tolerance_pct")
    return (
        f"mnprof check {verdict}: {report['compared']} configurations compared, tolerance {report['tolerance_pct']:g}%"
        + (f", instructions tolerance {instructions:g}%" if instructions is not None else "")
        + (", strict" if report["strict"] else "")
        + f"; {counts['grew']} grew, {counts['shrank']} shrank, {counts['added']} added, {counts['removed']} removed, "
        f"{counts['uncounted']} newly uncounted" + (f", {counts['slower']} slower" if counts["slower"] else "")
    )


def _advice(report: dict[str, Any]) -> str | None:
    if any(f["status"] in NOTICE for f in report["findings"]):
        return (
            f"counts changed on purpose? update the baseline and commit it: mnprof baseline --out {report['baseline']}"
        )
    return None


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotations(report: dict[str, Any]) -> str:
    """``mnprof check --format github``: one workflow command per finding, the summary line last."""
    lines = [f"::warning title=mnprof check::{_escape_data(warning)}" for warning in report.get("warnings", ())]
    for f in report["findings"]:
        level = "error" if f["fails"] else "notice" if f["status"] in NOTICE else "warning"
        title = f"mnprof: {f['entry']} {f['status']}"
        lines.append(f"::{level} title={_escape_property(title)}::{_escape_data(_describe(f))}")
    advice = _advice(report)
    if advice:
        lines.append(f"::notice title=mnprof baseline::{_escape_data(advice)}")
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any]) -> str:
    """``mnprof check --format markdown``: the verdict as a heading, then a table of the findings."""
    icon = ":white_check_mark:" if report["passed"] else ":x:"
    lines = [f"### {icon} {summary(report)}", ""]
    lines += [f"> **Warning:** {warning}\n" for warning in report.get("warnings", ())]
    if report["findings"]:
        lines += [
            "| | configuration | counter | metric | baseline | now | delta | % |",
            "|---|---|---|---|---:|---:|---:|---:|",
        ]
        for f in report["findings"]:
            mark = "FAIL" if f["fails"] else f["status"]
            pct = f"{f['percent']:+.2f}" if f["percent"] is not None else ""
            lines.append(
                f"| {mark} | `{f['entry']}` | {f['counter']} | `{f['metric']}` | {_number(f['baseline'])} | "
                f"{_number(f['now'])} | {_number(f['delta'], sign=True)} | {pct} |"
            )
        lines.append("")
    advice = _advice(report)
    if advice:
        lines.append(f"> {advice}")
    return "\n".join(lines) + "\n"


def shortened(text: str, limit: int = COMMENT_LIMIT) -> str:
    """``text`` whole when it fits in ``limit`` characters, else its first lines and one saying how many were left
    out (the job summary has them all)."""
    if len(text) <= limit:
        return text
    lines = text.splitlines(keepends=True)
    kept, size = [], 0
    for line in lines:
        if size + len(line) > limit - 200:
            break
        kept.append(line)
        size += len(line)
    return "".join(kept) + f"\n... {len(lines) - len(kept)} more lines: see the job summary of this run\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="mnprof check --format json's output")
    parser.add_argument("--markdown", type=Path, required=True, help="write the job summary here")
    parser.add_argument("--comment", type=Path, help="write the summary, shortened to fit a PR comment, here")
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text(encoding="utf-8"))
    if report.get("kind") != "mnprof.check" or report.get("schema_version") != 1:
        print(f"{args.report}: not a report of mnprof check --format json (schema version 1)", file=sys.stderr)
        return 2
    text = markdown(report)
    args.markdown.write_text(text, encoding="utf-8")
    if args.comment is not None:
        args.comment.write_text(shortened(text), encoding="utf-8")
    sys.stdout.write(annotations(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
