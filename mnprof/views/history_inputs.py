"""What ``mnprof history`` reads: results files and baselines collected per commit, each a :class:`Snapshot`.

A results file's ``environment`` says which commit measured it (``git_commit``), when (``date``) and on which host
(``host_fingerprint``); its rows hold MACs and latency. A baseline's ``provenance`` holds no commit and no date
(count-only documents stay reproducible), so a baseline's commit is read from its path (a 7-40 digit hexadecimal
name, ``baselines/3f2a1bc.json`` or ``3f2a1bc/baseline.json``) and its date from a results file of the same commit.
Files are put in date order when every one has a date, else in the order of their paths (numbers compared as
numbers: ``2.json`` before ``10.json``).

A file that is not an mnprof results file or baseline, or one that does not validate, is set aside with the reason,
for the command line to name in one warning line; the others are read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mnprof.errors import MnprofError
from mnprof.files.documents import read_json_file
from mnprof.files.schemas import schema_problem
from mnprof.model.config import format_alpha
from mnprof.timing.store import RESULTS_KIND, read_results

__all__ = ["BASELINE_KIND", "Point", "Snapshot", "collect_paths", "read_snapshot", "read_snapshots"]

# As mnprof.check.baseline's: mnprof.check would load torch and the counters, which reading a file does not need.
BASELINE_KIND = "mnprof.baseline"
BASELINE_SCHEMA_VERSION = 1
ACCEPTED = "accepted: mnprof results files (mnprof table) and baselines (mnprof baseline)"
_COMMIT = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{7,40}(?![0-9a-fA-F])")


@dataclass(frozen=True)
class Point:
    """One configuration's figures in one file. ``latency_hw_ms`` and ``rel_hw`` are the half-widths of the
    intervals the records carry (``None`` where there is none); ``how`` says how it was timed."""

    params: int | None = None
    macs: int | None = None
    latency_ms: float | None = None
    latency_hw_ms: float | None = None
    rel: float | None = None
    rel_hw: float | None = None
    host: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """One file: where it came from, and per configuration (``name@alpha-resolution``) per way of timing
    (``""`` for counts alone; ``eager b1 2t cpu``) its :class:`Point`."""

    paths: tuple[Path, ...]  # one file, or the files of one commit
    kind: str  # "results", "baseline", or "baseline+results" for the files of one commit
    commit: str | None
    date: str | None
    host: str | None
    points: dict[tuple[str, str], Point] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.paths[0]

    @property
    def label(self) -> str:
        """The commit's first 8 digits (``*`` for a dirty tree), else the file's name."""
        if self.commit:
            head, dirty = self.commit.partition("+")[::2]
            return head[:8] + ("*" if dirty else "")
        return self.path.stem


def collect_paths(arguments: Sequence[Path]) -> list[Path]:
    """Every ``*.json`` under each directory given (recursively, hidden files left out), and each file given."""
    paths: list[Path] = []
    for argument in arguments:
        if argument.is_dir():
            found = (p for p in argument.rglob("*.json") if p.is_file())
            paths.extend(p for p in found if not any(part.startswith(".") for part in p.relative_to(argument).parts))
        else:
            paths.append(argument)
    return list(dict.fromkeys(paths))


def _commit_in_path(path: Path) -> str | None:
    """A commit named by the file (``3f2a1bc.json``, ``baseline-3f2a1bc.json``) or its directory
    (``3f2a1bc/baseline.json``); directories further up are not read (``/home/cafe1234/...`` names no commit)."""
    for part in (path.stem, path.parent.name):
        for match in _COMMIT.finditer(part.lower()):
            if not match.group().isdigit():  # a date such as 20261207 is not a commit
                return match.group()
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _half_width(low: Any, high: Any) -> float | None:
    low, high = _number(low), _number(high)
    return (high - low) / 2 if low is not None and high is not None else None


def _series(family: str, alpha: float, resolution: int) -> str:
    return f"{family}@{format_alpha(alpha)}-{resolution}"


def _from_results(path: Path, document: Mapping[str, Any]) -> Snapshot:
    environment = document["environment"]
    points: dict[tuple[str, str], Point] = {}
    groups: dict[str, list[tuple[str, float, Mapping[str, Any]]]] = {}
    macs: dict[str, int] = {}
    for row in document["measurements"]:
        name = _series(str(row.get("family") or "mobilenetv1"), row["alpha"], row["resolution"])
        if isinstance(row.get("macs_analytic"), int):
            macs.setdefault(name, row["macs_analytic"])
        latency = _number(row.get("latency_ms_p5"))
        if row.get("error") is None and latency is not None and latency > 0:
            how = f"{row['backend']} b{row['batch_size']} {row['threads']}t {row['device']}"
            groups.setdefault(how, []).append((name, latency, row))
    for name, count in macs.items():
        points[(name, "")] = Point(macs=count)
    for how, rows in groups.items():
        # relative latency: to the geometric mean of the configurations timed the same way in this file
        mean = math.exp(sum(math.log(latency) for _, latency, _ in rows) / len(rows))
        for name, latency, row in rows:
            rel = latency / mean
            pct = _number(row.get("rel_ci_halfwidth_pct"))
            pct = pct if pct is not None else _number(row.get("ci_halfwidth_pct"))
            points[(name, how)] = Point(
                macs=macs.get(name),
                latency_ms=latency,
                latency_hw_ms=_half_width(row.get("latency_ms_ci_low"), row.get("latency_ms_ci_high")),
                rel=rel,
                rel_hw=rel * pct / 100 if pct is not None else None,
                host=str(row.get("host") or environment.get("host_fingerprint") or "") or None,
            )
    commit = environment.get("git_commit") or _commit_in_path(path)
    return Snapshot((path,), "results", commit, environment.get("date"), environment.get("host_fingerprint"), points)


def _from_baseline(path: Path, document: Mapping[str, Any]) -> Snapshot:
    points: dict[tuple[str, str], Point] = {}
    for key, entry in document["entries"].items():
        counts = entry["counts"]
        macs = counts.get("analytic", {}).get("macs")
        points[(key, "")] = Point(params=counts["pytorch"]["params"], macs=macs if isinstance(macs, int) else None)
    latency = document.get("latency")
    if isinstance(latency, Mapping):
        how = f"{latency.get('backend', 'eager')} b{latency.get('batch_size', 1)} {latency.get('threads', '?')}t cpu"
        host = latency.get("host_fingerprint")
        for key, entry in latency.get("entries", {}).items():
            points[(key, how)] = Point(
                latency_ms=_number(entry.get("latency_ms")),
                rel=_number(entry.get("relative")),
                rel_hw=_half_width(entry.get("relative_ci_low"), entry.get("relative_ci_high")),
                host=host,
            )
    provenance = document.get("provenance") or {}
    commit = provenance.get("git_commit") or _commit_in_path(path)
    return Snapshot((path,), "baseline", commit, provenance.get("date"), None, points)


def read_snapshot(path: Path) -> Snapshot:
    """One results file or baseline, validated as the commands that read them do; a :class:`MnprofError` says why
    it cannot be read."""
    document = read_json_file(path, "file", ACCEPTED)
    kind = document.get("kind") if isinstance(document, dict) else None
    if kind == RESULTS_KIND:
        return _from_results(path, read_results(path, raw=False))  # the statistics are enough here
    if kind == BASELINE_KIND:
        version = document.get("schema_version")
        if type(version) is not int or version != BASELINE_SCHEMA_VERSION:
            raise MnprofError(
                f"baseline {path} has schema version {version!r}, this mnprof reads {BASELINE_SCHEMA_VERSION}"
            )
        problem = schema_problem(document, "baseline")  # mnprof/schemas/baseline.schema.json
        if problem is not None:
            raise MnprofError(f"baseline {path} is corrupt ({problem})")
        return _from_baseline(path, document)
    shown = kind if isinstance(kind, str) else type(document).__name__
    raise MnprofError(f"{path} is not an mnprof results file or baseline (kind {shown!r})")


def _natural(path: Path) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(path)) if part]


def _dated(snapshot: Snapshot, dated: Mapping[str, Snapshot]) -> Snapshot:
    """``snapshot`` with the date and full commit of a dated file of the same commit (a commit in a file name may
    be abbreviated), if there is one."""
    short = str(snapshot.commit).partition("+")[0]
    match = next((s for commit, s in dated.items() if commit.startswith(short) or short.startswith(commit)), None)
    if match is None:
        return snapshot
    return Snapshot(snapshot.paths, snapshot.kind, match.commit, match.date, snapshot.host, snapshot.points)


def _merged(snapshots: Sequence[Snapshot]) -> Snapshot:
    """The files of one commit as one snapshot: a baseline's counts, a results file's latency."""
    first = snapshots[0]
    points: dict[tuple[str, str], Point] = {}
    for snapshot in sorted(snapshots, key=lambda s: s.kind != "baseline"):  # a baseline's counts first
        for key, point in snapshot.points.items():
            held = points.get(key)
            if held is None:
                points[key] = point
            elif not key[1]:
                params = held.params if held.params is not None else point.params
                points[key] = replace(held, params=params, macs=held.macs if held.macs is not None else point.macs)
    kinds = "+".join(sorted({s.kind for s in snapshots}))
    host = next((s.host for s in snapshots if s.host), None)
    date = next((s.date for s in snapshots if s.date), None)
    paths = tuple(path for s in snapshots for path in s.paths)
    return Snapshot(paths, kinds, first.commit, date, host, points)


def read_snapshots(paths: Iterable[Path]) -> tuple[list[Snapshot], list[tuple[Path, str]]]:
    """The files that read as snapshots, in commit order (see the module), and ``(path, reason)`` for the others."""
    snapshots: list[Snapshot] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        try:
            snapshots.append(read_snapshot(path))
        except MnprofError as error:
            skipped.append((path, str(error)))
    dated = {s.commit.partition("+")[0]: s for s in snapshots if s.commit and s.date}
    snapshots = [s if s.date or not s.commit else _dated(s, dated) for s in snapshots]
    by_commit: dict[object, list[Snapshot]] = {}
    for snapshot in snapshots:
        by_commit.setdefault(snapshot.commit or object(), []).append(snapshot)
    snapshots = [_merged(group) if len(group) > 1 else group[0] for group in by_commit.values()]
    if snapshots and all(s.date for s in snapshots):
        snapshots.sort(key=lambda s: (str(s.date), _natural(s.path)))
    else:
        snapshots.sort(key=lambda s: _natural(s.path))
    return snapshots, skipped
