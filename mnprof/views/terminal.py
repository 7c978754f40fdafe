"""``mnprof table``'s default on a terminal: the trade-off in a table that fits the terminal people have.

One row per configuration (and timing): params, MACs, the published top-1, the computed MACs' delta to
the published Mult-Adds, and, when timed, the headline latency (the 5th percentile of the calls), the latency
relative to the reference configuration's, the median of every call with its spread, and the throughput.
Cells never wrap: where the terminal is narrower than the table, columns are left out in a stated order
(``Column.drop``: typical median, speed-up, delta, throughput, top-1, params, relative latency) and a note
names them. Every other
column is one option away (``--wide``, ``--view counts``, ``--view reconcile``), and files (Markdown,
CSV, JSON) always carry everything.
"""

from __future__ import annotations

import pandas as pd

from mnprof.timing.records import processor_of
from mnprof.views.instructions import instruction_columns
from mnprof.views.latency import latency_cell, latency_notes, relative_cell, typical_cell
from mnprof.views.predict import fit_summary, latency_fits
from mnprof.views.render import Column, Rendered, families_title, is_missing, number

__all__ = ["compact_grid_spec"]

MILLION = 1e6


def _top1(row: pd.Series) -> str:
    """TF-slim's published top-1 (it has all 16 configurations), else the paper's."""
    for column in ("published_top1_tfslim", "published_top1_paper"):
        if not is_missing(row.get(column)):
            return number(row[column], 1)
    return "-"


def _macs_delta(row: pd.Series) -> str:
    """Computed MACs vs the paper's Mult-Adds, or (marked †) TF-slim's where the paper prints none."""
    if not is_missing(row.get("delta_macs_pct_paper")):
        return f"{row['delta_macs_pct_paper']:+.2f}%"
    if not is_missing(row.get("delta_macs_pct_tfslim")):
        return f"{row['delta_macs_pct_tfslim']:+.2f}%†"
    return "-"


def _host(row: pd.Series) -> str:
    """The processor and the host fingerprint's first characters: what tells two hosts' rows apart."""
    return f"{processor_of(row['device'], row.get('gpu'), row.get('cpu_model'))} {str(row['host'])[:8]}"


def _distinct(frame: pd.DataFrame, column: str) -> list[object]:
    return list(frame[column].dropna().unique()) if column in frame.columns else []


def compact_grid_spec(frame: pd.DataFrame, *, flops: bool = False) -> Rendered:
    """The compact grid of ``frame`` (rows of :func:`mnprof.views.grid.grid_frame`, timed or not)."""
    timed = "latency_ms" in frame.columns and frame["latency_ms"].notna().any()
    scale, work = (2, "MFLOPs") if flops else (1, "MMACs")
    columns = [
        Column("config", lambda r: str(r["id"]), "left"),
        Column("params M", lambda r: number(r["params"] / MILLION, 3), drop=5),
        Column(work, lambda r: number(scale * r["macs_analytic"] / MILLION, 1)),
        Column("top-1*", _top1, drop=4),
        Column(f"{work[1:]} Δ*", _macs_delta, drop=2),
    ]
    notes = [f"* published: top-1 TF-slim (else paper); Δ: vs the paper's {work[1:]} († TF-slim's)"]
    if timed:
        backends, batches, hosts = (_distinct(frame, c) for c in ("backend", "batch_size", "host"))
        if len(hosts) > 1:
            columns.insert(1, Column("host", _host, "left"))
        if len(backends) > 1:
            columns.append(Column("backend", lambda r: "-" if is_missing(r["backend"]) else str(r["backend"]), "left"))
        if len(batches) > 1:
            columns.append(Column("batch", lambda r: "-" if is_missing(r["batch_size"]) else f"{int(r['batch_size'])}"))
        columns += [
            Column("ms", latency_cell),
            Column("rel", relative_cell, drop=6),
            Column("median (IQR)", typical_cell, drop=0),
            Column("img/s", lambda r: number(r.get("throughput_ips"), 1), drop=3),
        ]
        if len(backends) > 1:
            columns.append(Column("x eager", lambda r: number(r.get("speedup_vs_eager"), 2), drop=1))
        measured = frame[frame["latency_ms"].notna()]
        first = measured.iloc[0]
        where = (
            f"{processor_of(first['device'], first.get('gpu'), first.get('cpu_model'))}"
            if len(hosts) <= 1
            else f"{len(hosts)} hosts"
        )
        threads = ", ".join(str(int(t)) for t in measured["threads"].unique())
        same = ", ".join(
            part
            for part, shown in ((f"{backends[0]}", len(backends) > 1), (f"batch {batches[0]}", len(batches) > 1))
            if not shown
        )
        notes.append(f"timed on {where}, {threads} thread(s)" + (f", {same}" if same else ""))
        notes += latency_notes(frame)
        summary = fit_summary(latency_fits(frame, ["backend", "batch_size", "threads", "device", "host", "run_id"]))
        notes += [summary] if summary else []
        failed = int(frame["error"].notna().sum()) if "error" in frame.columns else 0
        if failed:
            notes.append(f"error: {failed} measurement(s) posted no time; --wide shows why")
    counted_columns, counted_notes = instruction_columns(frame, compact=True)
    columns += counted_columns
    notes += counted_notes
    notes.append("more: --wide, --view counts|paper|reconcile; conventions: --help")
    title = f"{families_title(frame)}: params, MACs, top-1" + (", latency" if timed else "")
    title += ", instructions" if counted_columns else ""
    return Rendered(title, tuple(columns), tuple(notes), fit=True, left_out_hint="--wide shows them")
