"""``mnprof history``: counts and latency over commits, as a trend table and as one offline page of charts.

The table is long: one row per file and configuration (and way of timing), in commit order, with what changed
since the configuration's previous file. The page has one chart per metric (params, MACs, latency, relative
latency) with one trace per configuration, and the steps marked.

A step in a count is any change. A step in latency (or relative latency) is a change beyond the in-run noise the
records carry: the two figures' 95% intervals do not overlap (the change exceeds the sum of their half-widths;
``latency_ms_ci_low``/``_high`` for the latency, ``rel_ci_halfwidth_pct`` for the relative latency of a results
file, ``relative_ci_low``/``_high`` of a latency baseline). A latency without an interval, or one measured on
another host than the figure before it, is never a step: the second is marked as a change of host.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mnprof.files.documents import dumps
from mnprof.views.history_inputs import Point, Snapshot
from mnprof.views.plots import Figure
from mnprof.views.render import Column, Format, Rendered, number, render_with

__all__ = [
    "HISTORY_KIND",
    "METRICS",
    "Step",
    "history_figures",
    "history_frame",
    "history_rows",
    "render_history",
    "steps",
]

HISTORY_KIND = "mnprof.history"
HISTORY_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    axis: str
    timed: bool  # latency metrics: one trace per configuration and way of timing; steps judged on intervals
    half_width: str | None = None


METRICS = (
    Metric("params", "Parameters", "parameters", False),
    Metric("macs", "MACs (one image)", "multiply-accumulates", False),
    Metric("latency_ms", "Latency (5th percentile of the calls)", "ms", True, "latency_hw_ms"),
    Metric("rel", "Relative latency", "latency / geometric mean of the file's configurations", True, "rel_hw"),
)
_SHORT = {"params": "params", "macs": "MACs", "latency_ms": "latency", "rel": "rel"}


@dataclass(frozen=True)
class Step:
    """A change of ``metric`` for ``series`` at file ``index`` from the previous figure; ``kind`` is ``step``
    (a count changed, or a latency beyond both intervals) or ``host`` (measured on another host)."""

    index: int
    metric: str
    series: tuple[str, str]
    before: float
    after: float
    kind: str

    def describe(self) -> str:
        name = _SHORT[self.metric]
        if self.kind == "host":
            return f"{name}: another host"
        change = self.after - self.before
        pct = 100 * change / self.before if self.before else None
        if self.metric in ("params", "macs") and (pct is None or abs(pct) < 0.1):  # a few MACs more: say how many
            return f"{name} {int(change):+,}"
        return f"{name} {_percent(pct)}" if pct is not None else f"{name} {change:+.3g}"


def _percent(value: float) -> str:
    """A change in percent, two significant digits however small (a count that grew by 10 of 4 million)."""
    if abs(value) >= 10:
        return f"{value:+.0f}%"
    if abs(value) >= 1:
        return f"{value:+.1f}%"
    return f"{value:+.2g}%"


def steps(snapshots: Sequence[Snapshot]) -> list[Step]:
    """Every step of every metric and series, in file order (see the module for what is a step)."""
    found: list[Step] = []
    series = list(dict.fromkeys(key for snapshot in snapshots for key in snapshot.points))
    for metric in METRICS:
        for key in series if metric.timed else [key for key in series if not key[1]]:
            last: tuple[float, Point] | None = None
            for index, snapshot in enumerate(snapshots):
                point = snapshot.points.get(key)
                value = getattr(point, metric.key) if point is not None else None
                if point is None or value is None:
                    continue
                if last is not None:
                    before, previous = last
                    if not metric.timed:
                        if value != before:
                            found.append(Step(index, metric.key, key, before, value, "step"))
                    elif previous.host != point.host:
                        found.append(Step(index, metric.key, key, before, value, "host"))
                    else:
                        assert metric.half_width is not None
                        now_hw, then_hw = getattr(point, metric.half_width), getattr(previous, metric.half_width)
                        if now_hw is not None and then_hw is not None and abs(value - before) > now_hw + then_hw:
                            found.append(Step(index, metric.key, key, before, value, "step"))
                last = (value, point)
    return found


def _several_ways(snapshots: Sequence[Snapshot]) -> bool:
    return len({how for snapshot in snapshots for _, how in snapshot.points if how}) > 1


def series_name(key: tuple[str, str], several: bool) -> str:
    name, how = key
    return f"{name} [{how}]" if several and how else name


def history_frame(snapshots: Sequence[Snapshot], found: Sequence[Step]) -> pd.DataFrame:
    """:func:`history_rows` as a frame, counts kept as integers where some are missing."""
    return pd.DataFrame(history_rows(snapshots, found)).astype({"params": "Int64", "macs": "Int64"})


def history_rows(snapshots: Sequence[Snapshot], found: Sequence[Step]) -> list[dict[str, Any]]:
    """One row per commit and configuration (per way of timing where several), with the changes from before."""
    by_row: dict[tuple[int, str, str], list[str]] = {}
    for step in found:
        name, how = step.series
        # a count belongs to the configuration: shown on its first row of the file
        by_row.setdefault((step.index, name, how), []).append(step.describe())
    rows = []
    for index, snapshot in enumerate(snapshots):
        names = list(dict.fromkeys(name for name, _ in snapshot.points))
        for name in names:
            counts = snapshot.points.get((name, ""), Point())
            ways = [how for n, how in snapshot.points if n == name and how] or [""]
            for position, how in enumerate(ways):
                point = snapshot.points.get((name, how), Point())
                changes = (by_row.get((index, name, ""), []) if position == 0 else []) + (
                    by_row.get((index, name, how), []) if how else []
                )
                rows.append(
                    {
                        "file_index": index,
                        "commit": snapshot.commit,
                        "date": snapshot.date,
                        "files": "; ".join(str(path) for path in snapshot.paths),
                        "file_kind": snapshot.kind,
                        "label": snapshot.label,
                        "config": name,
                        "timed_as": how or None,
                        "params": counts.params if counts.params is not None else point.params,
                        "macs": counts.macs if counts.macs is not None else point.macs,
                        "latency_ms": point.latency_ms,
                        "latency_ms_ci_halfwidth": point.latency_hw_ms,
                        "latency_relative": point.rel,
                        "latency_relative_ci_halfwidth": point.rel_hw,
                        "host": point.host or snapshot.host,
                        "changes": "; ".join(changes),
                    }
                )
    return rows


def _spec(several: bool, files: int, family: str | None, shown: set[str]) -> Rendered:
    def config(row: pd.Series) -> str:
        name = series_name((row["config"], row["timed_as"] or ""), several)
        return name.removeprefix(f"{family}@") if family else name

    def hw(value: Any, base: Any) -> str:
        return "-" if value is None or pd.isna(value) or not base else f"±{value / base:.0%}"

    columns = (
        Column("commit", lambda r: str(r["label"]), "left"),
        Column("date", lambda r: str(r["date"] or "-")[:10], "left", drop=1),
        Column("config", config, "left"),
        Column("params", lambda r: number(r["params"], 0), drop=3),
        Column("MMACs", lambda r: number(r["macs"], 1, scale=1e-6)),
        Column("ms", lambda r: number(r["latency_ms"], 2), drop=4),
        Column("±CI", lambda r: hw(r["latency_ms_ci_halfwidth"], r["latency_ms"]), drop=2),
        Column("rel", lambda r: number(r["latency_relative"], 2), drop=5),
        Column("changed", lambda r: str(r["changes"]), "left"),
    )
    # what no file holds (params where only results files were read; latency, dates where only baselines) is left out
    wanted = {
        "date": "date",
        "params": "params",
        "MMACs": "macs",
        "ms": "latency_ms",
        "±CI": "latency_ms",
        "rel": "latency_relative",
    }
    columns = tuple(c for c in columns if c.header not in wanted or wanted[c.header] in shown)
    notes = (
        f"{files} commits in order; changed: since the configuration's previous commit (counts: any change; "
        "latency: beyond both 95% intervals)",
    )
    title = f"mnprof history: {family}" if family else "mnprof history"
    return Rendered(title, columns, notes, fit=True, left_out_hint="--format csv or json has them all")


def render_history(snapshots: Sequence[Snapshot], found: Sequence[Step], fmt: Format, width: int | None) -> Any:
    """The trend table: rich (fitted to ``width``), Markdown, CSV, or the JSON document ``mnprof.history``."""
    if fmt is Format.JSON:
        files = [
            {"paths": [str(p) for p in s.paths], "kind": s.kind, "commit": s.commit, "date": s.date, "label": s.label}
            for s in snapshots
        ]
        marked = [
            {"file_index": s.index, "metric": s.metric, "config": s.series[0], "timed_as": s.series[1] or None,
             "before": s.before, "after": s.after, "kind": s.kind}
            for s in found
        ]  # fmt: skip
        rows = history_rows(snapshots, found)
        document = {"schema_version": HISTORY_SCHEMA_VERSION, "kind": HISTORY_KIND, "files": files}
        return dumps({**document, "rows": rows, "steps": marked})
    frame = history_frame(snapshots, found)
    families = {str(name).partition("@")[0] for name in frame["config"]}
    family = families.pop() if len(families) == 1 else None
    shown = {
        column for column in ("date", "params", "macs", "latency_ms", "latency_relative") if frame[column].notna().any()
    }
    spec = _spec(_several_ways(snapshots), len(snapshots), family, shown)
    return render_with(spec, frame, fmt, view="history", width=width)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def history_figures(snapshots: Sequence[Snapshot], found: Sequence[Step]) -> list[Figure]:
    """One figure per metric that any file holds: x the files in commit order, one trace per configuration (per
    way of timing for latency), a step drawn as a large open diamond, a change of host as an open circle."""
    import plotly.graph_objects as go  # only the page needs plotly: the table stays quick to print

    several = _several_ways(snapshots)
    labels = _unique_labels(snapshots)
    marks = {(s.metric, s.series, s.index): s.kind for s in found}
    figures = []
    for metric in METRICS:
        keys = [
            key
            for key in dict.fromkeys(k for s in snapshots for k in s.points)
            if any(getattr(s.points[key], metric.key) is not None for s in snapshots if key in s.points)
        ]
        if not metric.timed:  # counts: one trace per configuration (a results file's timed rows repeat its MACs)
            keys = [key for key in keys if not key[1]]
        if not keys:
            continue
        figure = go.Figure()
        for key in keys:
            figure.add_trace(go.Scatter(**_trace(metric, key, snapshots, labels, marks, several)))
        figure.update_layout(
            title=metric.title, xaxis_title="commit", yaxis_title=f"{metric.axis} (log scale)", template="plotly_white",
            height=520, legend={"orientation": "h", "y": -0.25}, xaxis={"type": "category"},
        )  # fmt: skip
        figure.update_yaxes(type="log")  # configurations a hundred times apart, each line's steps still visible
        figures.append(Figure(f"history-{metric.key}", figure, _caption(metric, len(snapshots), found)))
    return figures


def _trace(
    metric: Metric,
    key: tuple[str, str],
    snapshots: Sequence[Snapshot],
    labels: Sequence[str],
    marks: dict[tuple[str, tuple[str, str], int], str],
    several: bool,
) -> dict[str, Any]:
    """One configuration's line (one way of timing it, for latency): its points in commit order, marked where a
    step or a change of host is, with the 95% intervals as bars where the metric has them."""
    xs, ys, errors, symbols, sizes, texts = [], [], [], [], [], []
    for index, snapshot in enumerate(snapshots):
        point = snapshot.points.get(key)
        value = getattr(point, metric.key) if point is not None else None
        if point is None or value is None:
            continue
        mark = marks.get((metric.key, key, index))
        xs.append(labels[index])
        ys.append(value)
        errors.append(getattr(point, metric.half_width) if metric.half_width else None)
        symbols.append({"step": "diamond-open", "host": "circle-open"}.get(mark or "", "circle"))
        sizes.append(14 if mark else 6)
        texts.append(
            f"{_esc(series_name(key, several))}<br>{_esc(snapshot.label)} {_esc(snapshot.date or '')}"
            f"<br>{_esc(', '.join(path.name for path in snapshot.paths))}<br>{metric.key}: {value:,.6g}"
            + (f"<br><b>{_esc(mark)}</b>" if mark else "")
        )
    trace: dict[str, Any] = {
        "x": xs, "y": ys, "mode": "lines+markers", "name": _esc(series_name(key, several)),
        "marker": {"symbol": symbols, "size": sizes, "line": {"width": 2}}, "meta": "points",
        "hovertext": texts, "hoverinfo": "text",
    }  # fmt: skip
    if metric.half_width and any(e is not None for e in errors):
        trace["error_y"] = {"type": "data", "array": [e or 0 for e in errors], "visible": True}
    return trace


def _caption(metric: Metric, commits: int, found: Sequence[Step]) -> str:
    """What a metric's figure shows, what counts as a step in it, and how many steps it has."""
    count = sum(1 for s in found if s.metric == metric.key and s.kind == "step")
    rule = (
        "a step (large open diamond) is any change"
        if not metric.timed
        else "a step (large open diamond) is a change beyond both figures' 95% intervals (the bars); an open "
        "circle is a figure from another host than the one before, not compared"
    )
    caption = f"{metric.title} over {commits} commits in order, one line per configuration; {rule}. "
    return caption + f"{count} steps."


def _unique_labels(snapshots: Sequence[Snapshot]) -> list[str]:
    """Each file's x label: its commit (files of one commit share it), else its name, made unique."""
    labels: list[str] = []
    owners: dict[str, str | None] = {}
    for snapshot in snapshots:
        label = snapshot.label
        while label in owners and (snapshot.commit is None or owners[label] != snapshot.commit):
            label += "'"
        owners.setdefault(label, snapshot.commit)
        labels.append(label)
    return labels
