"""Memory view: the measured peak of one forward pass beside the analytic figure, the difference named by cause.

Rows are :meth:`mnprof.timing.records.MemoryMeasurement.row` (one per configuration, runtime and batch
size) or, for ``--view tensors``, :meth:`~mnprof.timing.records.MemoryMeasurement.tensor_rows` (one per
tensor alive at each peak). How the bytes are measured and how each tensor is named:
:mod:`mnprof.memory.measure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import pandas as pd

from mnprof.memory.records import ANALYTIC_CAUSES, Cause, MemoryMeasurement
from mnprof.model.reference import MILLION
from mnprof.views.render import Column, Format, Rendered, is_missing, number, render_with

__all__ = ["MemoryView", "memory_frame", "render_memory"]


class MemoryView(StrEnum):
    PEAKS = "peaks"  # a row per configuration x runtime x batch size
    TENSORS = "tensors"  # a row per tensor alive at each peak


def memory_frame(measurements: Sequence[MemoryMeasurement], view: MemoryView) -> pd.DataFrame:
    if view is MemoryView.TENSORS:
        return pd.DataFrame([row for m in measurements for row in m.tensor_rows()])
    frame = pd.DataFrame([m.row() for m in measurements])
    modelled = [sum(m.bytes_of(cause) for cause in ANALYTIC_CAUSES) if m.live else None for m in measurements]
    frame["modelled_tensors_bytes"] = pd.array(modelled, dtype="Int64")
    return frame


def _mb(key: str) -> Any:
    return lambda r: number(r[key], 2, scale=1 / MILLION)


def _ratio(row: pd.Series) -> str:
    if is_missing(row["analytic_bytes"]) or not row["analytic_bytes"]:
        return "-"
    return f"{row['measured_bytes'] / row['analytic_bytes']:.2f}"


def _signed_mb(key: str) -> Any:
    return lambda r: number(r[key], 2, scale=1 / MILLION, sign=True)


PEAK_NOTES = (
    "measured MB: weights as the runtime holds them + the input batch + the forward pass's own allocations at "
    "their peak, from PyTorch's CPU allocator as torch.profiler reports it (profile_memory=True), after one "
    "warm-up pass; exact and the same on every run. It does not see memory outside PyTorch's allocator "
    "(oneDNN's primitive cache, glibc's bookkeeping) nor the allocator's 64-byte alignment.",
    "analytic MB: parameters (PyTorch's count) at the runtime's element size + the peak working set of the "
    "model of execution an inference runtime follows: one layer at a time, its input and output alive together, "
    "BatchNorm folded and activations in place, a residual block's input kept until its add "
    "(AnalyticCount.working_sets); 'analytic peak at' is its busiest layer.",
    "The difference, by cause, at the moment of the measured peak ('peak at': the layer running then): "
    "layer in+out = the tensors the model counts at that layer (its input, its output, a kept residual input); "
    "BN unfolded = the convolution's output, kept while an unfolded BatchNorm writes its own; held by calls = "
    "tensors an enclosing module call still holds as its argument (nn.Module.__call__ keeps its input until it "
    "returns: the stem's output lives through every block); input batch = the caller's input, once the stem is "
    "done with it; workspace = buffers the running operator allocated and frees before it returns (oneDNN's "
    "copies in its blocked layout, weight reorders, BatchNorm's saved statistics); weights +/- = weights held "
    "minus parameters (BatchNorm's running statistics; folded away in fused); other = what none of these names "
    "(0 for the built-in families).",
    "measured MB = weights held + the sum of the cause columns, exactly; analytic MB differs from it by "
    "those columns and by the layer the peak falls at (analytic at peak layer vs analytic peak).",
)


USER_FAMILY_NOTE = (
    "A user family's analytic columns are empty: its traced layers do not say which tensors stay alive, so "
    "there is no working set to compare with; its tensors are named relative to the module running at the peak."
)


def peaks_spec(user_family: bool = False) -> Rendered:
    columns = (
        Column("model", lambda r: str(r["id"]), justify="left"),
        Column("backend", lambda r: str(r["backend"]), justify="left"),
        Column("batch", lambda r: number(r["batch_size"])),
        Column("measured MB", _mb("measured_bytes")),
        Column("analytic MB", _mb("analytic_bytes")),
        Column("x analytic", _ratio),
        Column("peak at", lambda r: str(r["peak_layer"]) if not is_missing(r["peak_layer"]) else "-", justify="left"),
        Column("layer in+out", _mb("modelled_tensors_bytes"), drop=8),
        Column("BN unfolded", _mb(Cause.UNFOLDED_BATCHNORM.key), drop=7),
        Column("held by calls", _mb(Cause.HELD_BY_CALLER.key), drop=6),
        Column("input batch", _mb(Cause.INPUT_BATCH.key), drop=5),
        Column("workspace", _mb(Cause.WORKSPACE.key), drop=4),
        Column("weights +/-", _signed_mb("weights_beyond_params_bytes"), drop=3),
        Column("other", _mb(Cause.OTHER.key), drop=9),
        Column("analytic peak at", lambda r: str(r["analytic_working_set_layer"] or "-"), justify="left", drop=1),
        Column("analytic at peak layer", _mb("analytic_at_peak_layer_bytes"), drop=2),
    )
    return Rendered(
        "Peak memory of one forward pass: measured and analytic (MB = 10^6 bytes)",
        columns,
        PEAK_NOTES + ((USER_FAMILY_NOTE,) if user_family else ()),
        fit=True,
        left_out_hint="--wide shows them",
    )


def tensors_spec() -> Rendered:
    columns = (
        Column("model", lambda r: str(r["id"]), justify="left"),
        Column("backend", lambda r: str(r["backend"]), justify="left"),
        Column("batch", lambda r: number(r["batch_size"])),
        Column("peak at", lambda r: str(r["peak_layer"] or "-"), justify="left"),
        Column("allocated by", lambda r: str(r["module"]) or "(forward)", justify="left"),
        Column("operator", lambda r: str(r["op"]) or "-", justify="left"),
        Column("bytes", lambda r: number(r["bytes"])),
        Column("why alive", lambda r: str(r["cause"]), justify="left"),
    )
    notes = (
        "Every tensor alive at the moment of each measured peak: the module call and aten operator that "
        "allocated it ('(caller)': the input batch, allocated before the call), its size, and why it is alive "
        "(see mnprof memory --help).",
    )
    return Rendered("Tensors alive at the peak of one forward pass", columns, notes)


def render_memory(
    measurements: Sequence[MemoryMeasurement], view: MemoryView, fmt: Format, *, width: int | None
) -> Any:
    frame = memory_frame(measurements, view)
    user_family = any(m.analytic_peak_bytes is None for m in measurements)
    spec = tensors_spec() if view is MemoryView.TENSORS else peaks_spec(user_family)
    if fmt is Format.JSON:
        frame = frame.astype(object).where(frame.notna(), None)
    return render_with(spec, frame, fmt, view=view.value, unit=None, kind="mnprof.memory", width=width)
