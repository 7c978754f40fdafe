"""Timings joined to the grid's rows (latency as the statistic chosen, throughput, achieved GFLOP/s, speed-up over
eager, latency relative to a reference) and the grid view's latency columns with the notes that explain them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from mnprof.model.reference import MILLION
from mnprof.runtimes.registry import INT8
from mnprof.timing.records import GEOMETRIC_MEAN, Backend, Statistic, TimingRecord, processor_of, rows_of
from mnprof.views.latency import latency_cell, latency_notes, relative_cell, typical_cell
from mnprof.views.predict import fit_notes, latency_fits
from mnprof.views.render import Column, is_missing, number

__all__ = ["TIMING_SERIES", "add_relative", "timing_columns", "with_timings"]


# What tells two timings of one configuration apart; speedups compare rows equal in all but the backend.
TIMING_SERIES = ("batch_size", "threads", "device", "host", "run_id")


def with_timings(
    frame: pd.DataFrame,
    timings: Sequence[TimingRecord],
    *,
    statistic: Statistic = Statistic.P5,
    reference: str | None = None,
) -> pd.DataFrame:
    """Join timing rows to count rows by ``id``: one row per configuration and timing (counts repeated).

    A configuration without timings keeps one row with empty timing columns. ``latency_ms`` is the
    ``statistic`` chosen (the headline by default); ``throughput_ips``, ``gflops_achieved`` and the peak
    fractions follow it. ``speedup_vs_eager`` is eager's ``latency_ms`` over this row's, for the same
    configuration, batch size, threads, device, host. ``latency_relative`` is this row's ``latency_ms`` over
    the reference's (``reference_id``: the geometric mean of the configurations timed with the same backend,
    batch size, threads, device and host, or the configuration ``reference``): measured in the same run, it
    is the figure that transfers across runs and hosts.
    """
    timing = pd.DataFrame(rows_of(timings))
    if timing.empty:
        return frame
    timing = timing.drop(columns=[c for c in timing.columns if c in frame.columns and c != "id"])
    # Backends in the order Backend lists them, whatever order the measurements finished in.
    ranks = {backend.value: rank for rank, backend in enumerate(Backend)}
    timing["_rank"] = timing["backend"].map(lambda name: ranks.get(name, len(ranks)))
    series = [column for column in TIMING_SERIES if column in timing.columns]
    timing = timing.sort_values(["_rank", *series], kind="stable").drop(columns=["_rank"])
    merged = frame.merge(timing, on="id", how="left")
    for column in (f"latency_ms_{statistic.value}", "batch_size", "gemm_peak_gflops", "theoretical_peak_gflops"):
        if column not in merged.columns:  # every row an error: no timed column came with them
            merged[column] = math.nan
    merged["statistic"] = statistic.value
    merged["latency_ms"] = merged[f"latency_ms_{statistic.value}"]
    seconds = merged["latency_ms"] / 1e3
    merged["throughput_ips"] = merged["batch_size"] / seconds
    merged["gflops_achieved"] = 2 * merged["macs_analytic"] * merged["batch_size"] / seconds / 1e9
    merged["peak_fraction"] = merged["gflops_achieved"] / merged["gemm_peak_gflops"]
    merged["theoretical_peak_fraction"] = merged["gflops_achieved"] / merged["theoretical_peak_gflops"]
    eager = merged.loc[merged["backend"] == "eager", ["id", *series, "latency_ms"]]
    eager = eager.rename(columns={"latency_ms": "eager_latency_ms"})
    merged = merged.merge(eager, on=["id", *series], how="left")
    merged["speedup_vs_eager"] = merged["eager_latency_ms"] / merged["latency_ms"]
    return add_relative(merged.drop(columns=["eager_latency_ms"]), ["backend", *series], reference)


def add_relative(frame: pd.DataFrame, group: Sequence[str], requested: str | None) -> pd.DataFrame:
    """``latency_relative``: ``latency_ms`` over the reference's within each ``group`` (one run's configurations on
    one runtime, batch size, threads, device and host), and ``reference_id`` naming it. Group columns a frame
    lacks are left out (rows of older files have no ``run_id``).

    The reference is the configuration ``requested``, else the geometric mean of the group's latencies.
    """
    frame["reference_id"] = None
    frame["latency_relative"] = math.nan
    timed = frame[frame["latency_ms"].notna() & (frame["latency_ms"] > 0)]
    present = [column for column in group if column in timed.columns]
    for _, part in timed.groupby(present, dropna=False, sort=False):
        if requested is None:
            if len(part) < 2:
                continue  # one configuration over itself says nothing
            base = math.exp(sum(math.log(v) for v in part["latency_ms"]) / len(part))
            label = GEOMETRIC_MEAN
        elif requested in set(part["id"]):
            base, label = part.loc[part["id"] == requested, "latency_ms"].iloc[0], requested
        else:
            continue
        frame.loc[part.index, "reference_id"] = label
        frame.loc[part.index, "latency_relative"] = part["latency_ms"] / base
    return frame


def _processor(row: pd.Series) -> str:
    return processor_of(row["device"], row.get("gpu"), row.get("cpu_model"))


def timing_columns(frame: pd.DataFrame) -> tuple[tuple[Column, ...], tuple[str, ...]]:
    """Latency, throughput and achieved GFLOP/s columns for the grid view, and the notes that explain them."""
    measured = frame[frame["latency_ms"].notna()]
    hosts = frame["host"].dropna().unique() if "host" in frame.columns else []
    notes = _timing_notes(frame)
    if not measured.empty:
        notes.append(_timed_on(measured, hosts))
    errors = frame[frame["error"].notna()] if "error" in frame.columns else frame.iloc[0:0]
    for _, row in errors.iterrows():
        notes.append(f"error: {row['id']} {row['backend']} batch {int(row['batch_size'])}: {row['error']}")
    return tuple(_columns(frame, several_hosts=len(hosts) > 1)), tuple(notes)


def _columns(frame: pd.DataFrame, *, several_hosts: bool) -> list[Column]:
    """The timing columns: x eager with more than one runtime, model MB where measured, host with several."""
    columns = [
        Column("backend", lambda r: "-" if is_missing(r["backend"]) else str(r["backend"]), "left"),
        Column("batch", lambda r: "-" if is_missing(r["batch_size"]) else f"{int(r['batch_size'])}"),
        Column("latency ms", latency_cell),
        Column("rel", relative_cell),
        Column("median ms (IQR)", typical_cell),
        Column("img/s", lambda r: number(r["throughput_ips"], 1)),
        Column(
            "GFLOP/s (% peak)",
            lambda r: (
                "-"
                if is_missing(r.get("gflops_achieved"))
                else f"{r['gflops_achieved']:.1f} ({100 * r['peak_fraction']:.0f}%)"
            ),
        ),
    ]
    if frame["backend"].nunique() > 1:
        columns.append(Column("x eager", lambda r: number(r["speedup_vs_eager"], 2)))
    if "model_bytes" in frame.columns and frame["model_bytes"].notna().any():
        columns.append(Column("model MB", lambda r: number(r.get("model_bytes"), 2, scale=1 / MILLION)))
    if several_hosts:
        columns.insert(0, Column("host", lambda r: f"{_processor(r)} {str(r['host'])[:8]}", "left"))
    return columns


def _timing_notes(frame: pd.DataFrame) -> list[str]:
    """What the latency, rel, model MB, img/s and GFLOP/s columns mean, and how well the counts predict latency."""
    return [
        *latency_notes(frame, detailed=True),
        *fit_notes(latency_fits(frame, ["backend", *TIMING_SERIES])),
        "model MB: what the runtime holds as its model, measured: every parameter and buffer of the PyTorch model "
        "as it runs (fused: BatchNorm folded away; bfloat16, float16: 2 bytes each), or the serialized ONNX model "
        "(onnxruntime_int8: int8 weights with their scales and zero points), or torch_int8's serialized state "
        "(int8 weights packed for its engine); compile: not known.",
        "img/s = batch size / latency; GFLOP/s = 2 x analytic MACs x batch size / latency; % peak = of the float32 "
        "GEMM peak measured in the same run (mnprof.timing.peaks.measure_gemm_peak), which bfloat16 and float16 rows "
        "may exceed; int8 rows: of the integer GEMM's, in integer operations (GOPS)"
        + (
            "; on a GPU under PyTorch's default math, which lets cuDNN convolutions use TF32."
            if "device" in frame.columns and (frame["device"] == "cuda").any()
            else "."
        ),
    ]


def _timed_on(measured: pd.DataFrame, hosts: Sequence[object]) -> str:
    """Where the rows were timed: processor, hosts, threads, device, and the GEMM peaks measured with them."""
    first = measured.iloc[0]
    integer = measured["backend"].isin([backend.value for backend in INT8])

    def peaks(rows: pd.DataFrame) -> str:
        return ", ".join(f"{peak:.0f}" for peak in rows["gemm_peak_gflops"].dropna().unique())

    roofs = "; ".join(
        text
        for text in (
            f"GEMM peak {peaks(measured[~integer])} GFLOP/s" if (~integer).any() else "",
            f"int8 GEMM peak {peaks(measured[integer])} GOPS" if integer.any() else "",
        )
        if text
    )
    return (
        f"timed on {_processor(first)} ({', '.join(str(h)[:8] for h in hosts)}), "
        f"{', '.join(str(int(t)) for t in measured['threads'].unique())} threads, device "
        f"{', '.join(measured['device'].unique())}; {roofs}; every runtime's output matched "
        "eager PyTorch's on the same input before it could post a time."
    )
