"""Per-layer view: the counts of every layer (:mod:`mnprof.counting.layers`: shapes, params, MACs, the standard
convolution each separable block replaces, bytes moved, arithmetic intensity) with, when given, its measured time,
its share of the time beside its share of the MACs, and achieved GFLOP/s. Rendering only: it neither builds nor runs
a model.

Times come from :func:`mnprof.timing.layers.time_layers` (methods, allocator and memory are described
there); this module only reads the :class:`~mnprof.timing.layers.LayerTimes` it is given and never
imports the measuring code. To count and time::

    times = time_layers(config, LayerTimingSettings())  # mnprof.timing.layers
    print(render_layers(layer_report(config, times), Format.MARKDOWN))

Rendering: CSV and JSON carry the per-layer rows only (sum them for totals); the rich table and
Markdown add a total row and the notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from mnprof.counting.analytic import AnalyticCount, ParamConvention
from mnprof.counting.layers import layer_counts, layer_fvcore, layer_training
from mnprof.counting.traced import plan_count
from mnprof.model.arch import LayerKind
from mnprof.model.config import ModelConfig
from mnprof.views.render import Column, Format, Rendered, number, render_with

if TYPE_CHECKING:
    from mnprof.timing.layers import LayerTimes

__all__ = [
    "LayerReport",
    "layer_report",
    "layers_spec",
    "render_layers",
]


def _kernel_stride(row: pd.Series) -> str:
    """``3x3 s2``; a kernel or stride that is not square shows both sides (``1x7 s1``, ``3x3 s2x1``)."""
    kernel, stride = row["kernel"], row["stride"]
    kernel_width = row.get("kernel_width", kernel)
    stride_width = row.get("stride_width", stride)
    strides = f"{stride}" if stride_width == stride else f"{stride}x{stride_width}"
    return f"{kernel}x{kernel_width} s{strides}"


def _with_times(frame: pd.DataFrame, times: LayerTimes | None, units: bool = True) -> pd.DataFrame:
    frame = frame.copy()
    nan = float("nan")
    if times is None:
        for column in ("time_ms", "time_ms_iqr", "time_unit_ms", "time_share", "gflops_per_s"):
            frame[column] = nan
        return frame
    frame["time_ms"] = [times.op_ms(name) for name in frame["layer"]]
    frame["time_ms_iqr"] = [times.op_iqr_ms(name) for name in frame["layer"]]
    # A user's model has no conv + BatchNorm + activation units to time: only each module on its own.
    frame["time_unit_ms"] = [times.unit_ms(name) if units else nan for name in frame["layer"]]
    frame["time_share"] = frame["time_ms"] / frame["time_ms"].sum()
    frame["gflops_per_s"] = [
        2 * macs / (ms / 1e3) / 1e9 if macs else nan
        for macs, ms in zip(frame["macs_analytic"], frame["time_ms"], strict=True)
    ]
    return frame


@dataclass(frozen=True)
class LayerReport:
    """The per-layer table of one configuration, the whole-model counts it must add up to, and the raw timings."""

    config: ModelConfig
    frame: pd.DataFrame
    analytic: AnalyticCount
    fvcore_total: int | None
    times: LayerTimes | None

    @property
    def totals(self) -> dict[str, Any]:
        """Column sums next to the whole-model counts they must equal."""
        frame = self.frame
        totals: dict[str, Any] = {
            "params": int(frame["params"].sum()),
            "params_model_paper": self.analytic.params(ParamConvention.PAPER),
            "macs_analytic": int(frame["macs_analytic"].sum()),
            "macs_model": self.analytic.macs,
            "bytes_moved": int(frame["bytes_moved"].sum()),
        }
        if "macs_training" in frame.columns:
            for column in ("macs_weight_grad", "macs_input_grad", "macs_training"):
                totals[column] = int(frame[column].sum())
        if self.fvcore_total is not None:
            totals["macs_fvcore_unit"] = int(frame["macs_fvcore_unit"].sum())
            totals["macs_fvcore_model"] = self.fvcore_total
        if self.times is not None:
            totals["time_ms"] = float(frame["time_ms"].sum())
            totals["time_unit_ms"] = float(frame["time_unit_ms"].sum())
            totals["forward_ms"] = self.times.forward_ms
        return totals


def layer_report(
    config: ModelConfig, times: LayerTimes | None = None, *, fvcore: bool = True, training: bool = False
) -> LayerReport:
    """Count every layer of ``config``, and set ``times`` beside the counts.

    Args:
        config: the model configuration.
        times: per-layer timings of ``config`` (:func:`mnprof.timing.layers.time_layers`); None for
            counts only (the time columns are then NaN).
        fvcore: also trace the model with fvcore for its per-module counts (about a second at 1.0-224).
        training: also each layer's backward in a training step (``--pass training``).
    """
    fvcore_by_module = fvcore_total = None
    if fvcore:
        counted = layer_fvcore(config)
        fvcore_by_module, fvcore_total = counted.by_module, counted.total
    count = plan_count(config)
    frame = _with_times(layer_counts(config, fvcore_by_module), times, units=count.planned)
    if training:
        frame = layer_training(frame, config, count)
    return LayerReport(config, frame, count, fvcore_total, times)


# ---------------------------------------------------------------------------- rendering


def _kind_share(frame: pd.DataFrame, kind: str, column: str) -> float:
    return float(frame.loc[frame["kind"] == kind, column].sum())


def layers_spec(report: LayerReport) -> Rendered:
    """The :class:`mnprof.views.render.Rendered` spec of a per-layer report: columns and notes derived from it."""
    timed = report.times is not None
    columns = [
        Column("layer", lambda r: str(r["layer"]), "left"),
        Column("kind", lambda r: str(r["kind"]), "left"),
        Column("input", lambda r: str(r["in_shape"])),
        Column("output", lambda r: str(r["out_shape"])),
        Column("kernel / stride", lambda r: "" if r["layer"] == "total" else _kernel_stride(r)),
        Column("params", lambda r: number(r["params"], 0)),
        Column("MMACs", lambda r: number(r["macs_analytic"], 3, scale=1e-6)),
        Column("MMACs fvcore", lambda r: number(r["macs_fvcore"], 3, scale=1e-6)),
        Column("std conv MMACs", lambda r: number(r["macs_standard"], 2, scale=1e-6)),
        Column("sep/std", lambda r: number(r["separable_to_standard"], 4)),
        Column("1/M+1/F²", lambda r: number(r["seed_formula_ratio"], 4)),
        Column("MB moved", lambda r: number(r["bytes_moved"], 3, scale=1e-6)),
        Column("activations", lambda r: number(r["activations"])),
        Column("FLOP/B", lambda r: number(r["arithmetic_intensity_flops_per_byte"], 1)),
        Column("MAC share %", lambda r: number(r["macs_share"], 2, scale=100)),
    ]
    if "macs_training" in report.frame.columns:  # --pass training
        columns += [
            Column("weight grad MMACs", lambda r: number(r["macs_weight_grad"], 3, scale=1e-6)),
            Column("input grad MMACs", lambda r: number(r["macs_input_grad"], 3, scale=1e-6)),
            Column("training MMACs", lambda r: number(r["macs_training"], 3, scale=1e-6)),
        ]
    if timed:
        columns += [
            Column("time ms", lambda r: number(r["time_ms"], 3)),
            Column("time share %", lambda r: number(r["time_share"], 2, scale=100)),
            # what a layer's unit adds to its op: PyTorch's BatchNorm + ReLU modules, onnxruntime's glue nodes
            Column(
                "+BN+ReLU ms" if report.times is None or report.times.runtime is None else "+Q/DQ, layout ms",
                lambda r: number(r["time_unit_ms"] - r["time_ms"], 3),
            ),
            Column("GFLOP/s", lambda r: number(r["gflops_per_s"], 1)),
        ]
    return Rendered(
        f"{report.config.id}: per layer, counted" + (" and timed" if timed else ""),
        tuple(columns),
        _notes(report),
    )


def _pair_macs(frame: pd.DataFrame, index: Any) -> int:
    """MACs of the depthwise + pointwise pair whose pointwise row is ``index`` (the row before it is the dw)."""
    position = frame.index.get_loc(index)
    return int(frame["macs_analytic"].iloc[position]) + int(frame["macs_analytic"].iloc[position - 1])


def _notes(report: LayerReport) -> tuple[str, ...]:
    """The notes under the table: totals against the whole model, the separable blocks, bytes moved, shares by
    kind, how the layers were timed, and a training step's MACs."""
    frame, totals = report.frame, report.totals
    notes = [_totals_note(report), *_separable_notes(frame)]
    notes.append(
        "MB moved: float32, the layer's weights + input activations + output activations once each; BatchNorm "
        "and ReLU taken as folded into the conv (not counted). FLOP/B = 2 x MACs / bytes moved. activations: the "
        "layer's output elements (conv and FC only, fvcore's ActivationCountAnalysis definition)."
    )
    notes.append(_kinds_note(report))
    notes.extend(_time_notes(report))
    if "macs_training" in totals:
        notes.append(
            f"Training step (--pass training): {totals['macs_training']:,} MACs = forward + weight gradients "
            f"{totals['macs_weight_grad']:,} + input gradients {totals['macs_input_grad']:,} (each gradient costs the "
            "layer's forward MACs; the first layer's input, the image, needs none; docs/counting.md)."
        )
    return tuple(notes)


def _totals_note(report: LayerReport) -> str:
    """Whether the layers add up to the whole model's analytic counts, and to fvcore's where it was traced."""
    totals = report.totals
    equal = totals["macs_analytic"] == totals["macs_model"] and totals["params"] == totals["params_model_paper"]
    line = (
        f"Totals: MACs {totals['macs_analytic']:,} and params {totals['params']:,} "
        + ("equal" if equal else "DO NOT equal")
        + f" the whole model's analytic counts ({totals['macs_model']:,}, {totals['params_model_paper']:,}; "
        "params: conv and FC weights and biases)."
    )
    return line if report.fvcore_total is None else line + _fvcore_note(report, totals)


def _fvcore_note(report: LayerReport, totals: dict[str, Any]) -> str:
    """fvcore's per-module counts against the analytic ones, and its modules' sum against its whole-model count."""
    convs = report.frame[~report.frame["kind"].isin([LayerKind.POOL.value, LayerKind.ADD.value])]
    shared = int(convs["macs_fvcore"].isna().sum())
    convs = convs.dropna(subset=["macs_fvcore"])
    same = int((convs["macs_fvcore"] == convs["macs_analytic"]).sum())
    line = f" fvcore, per module: conv and FC equal the analytic count in {same} of {len(convs)} layers"
    if shared:
        line += f" ({shared} calls of shared modules left out: fvcore counts a module's calls together)"
    line += "; "
    if not report.analytic.planned:  # a user's model: its layers have no units to hold their BatchNorm
        return line + (
            f"its whole-model {totals['macs_fvcore_model']:,} adds what it charges outside these modules "
            "(BatchNorm, pooling: mnprof table --view reconcile explains it operator by operator)."
        )
    fvcore_equal = totals["macs_fvcore_unit"] == totals["macs_fvcore_model"]
    return line + (
        f"with the BatchNorm of each unit the modules sum to {totals['macs_fvcore_unit']:,}, "
        + ("equal to" if fvcore_equal else "NOT equal to")
        + f" fvcore's whole-model {totals['macs_fvcore_model']:,} (the pool row shows fvcore's 1 add per "
        "input element; BatchNorm is in the fvcore total, not in the MMACs fvcore column)."
    )


def _separable_notes(frame: pd.DataFrame) -> list[str]:
    """The standard convolution each separable block replaces, against the seed note's ratio (none without
    separable blocks)."""
    separable = frame.dropna(subset=["separable_to_standard"])
    if not len(separable):
        return []
    exact = bool((separable["separable_to_standard"] == separable["seed_formula_ratio"]).all())
    return [
        "std conv: the 3x3 standard convolution that each depthwise + pointwise pair replaces (shown on the "
        f"pointwise row); sep/std is (dw + pw) / std, {'equal to' if exact else 'NOT equal to'} the seed note's "
        f"1/M + 1/F² in every block. The {len(separable)} blocks together: "
        f"{int(separable['macs_standard'].sum()) / 1e6:,.1f} MMACs as standard convolutions, "
        f"{sum(_pair_macs(frame, index) for index in separable.index) / 1e6:,.1f} as built."
    ]


def _kinds_note(report: LayerReport) -> str:
    """Each kind of layer's share of the MACs, and of the time where timed."""
    frame, shares = report.frame, []
    for kind in (LayerKind.POINTWISE, LayerKind.DEPTHWISE, LayerKind.CONV, LayerKind.FC, LayerKind.POOL):
        if (frame["kind"] == kind.value).any():
            text = f"{kind.value} {100 * _kind_share(frame, kind.value, 'macs_share'):.1f}% of MACs"
            if report.times is not None:
                text += f", {100 * _kind_share(frame, kind.value, 'time_share'):.1f}% of time"
            shares.append(text)
    return "By kind: " + "; ".join(shares) + "."


def _time_notes(report: LayerReport) -> list[str]:
    """How the layers were timed (by the runtime's own notes), and which times were noisy."""
    if report.times is None:
        return ["time: not measured (--no-timing)."]
    times, totals, frame = report.times, report.totals, report.frame
    notes = _onnx_notes(times, totals) if times.runtime is not None else _torch_notes(report, totals)
    noisy = frame[frame["time_ms_iqr"] > 0.2 * frame["time_ms"]]
    if len(noisy):
        notes.append(
            f"Noisy (IQR above 20% of the median): {', '.join(noisy['layer'])}; rerun with more --repeats or "
            "on a quieter machine."
        )
    return notes


def _torch_notes(report: LayerReport, totals: dict[str, Any]) -> list[str]:
    """How PyTorch backends' layers were timed, and what the layers' times leave out."""
    times = report.times
    assert times is not None
    settings = times.settings
    notes: list[str] = []
    notes.append(
        f"time: median of {times.repeats} forward passes after {settings.warmup} warm-up passes, one image, "
        f"CPU, {settings.threads} thread(s), backend {settings.backend.value}, torch {times.torch_version}; "
        f"method: {times.method}; conv, pool and FC timed apart from BatchNorm and ReLU "
        + ("" if report.analytic.planned else "(a user's model: BatchNorm and activations only in the whole pass) ")
        + "(see mnprof.timing.layers). "
        "time share is of the sum of these times; GFLOP/s = 2 x MACs / time."
    )
    allocator = (
        "steady allocator (glibc keeps freed memory)"
        if times.allocator_steady
        else "allocator as is" + (" (steady was asked for; no glibc mallopt here)" if times.steady_requested else "")
    )
    faults = (
        f"{times.page_faults_per_pass:,.0f} minor page faults per timed pass"
        if times.page_faults_per_pass is not None
        else "page faults not measurable here"
    )
    notes.append(f"Memory: {allocator}; {faults}.")
    unit_extra = totals["time_unit_ms"] - totals["time_ms"]
    with_units = (
        f"with the unfused BatchNorm + ReLU after each conv ({unit_extra:.3f} ms) {totals['time_unit_ms']:.3f} ms; "
        if report.analytic.planned
        else ""
    )
    notes.append(
        f"The layers' own times sum to {totals['time_ms']:.3f} ms; {with_units}a whole forward pass with neither "
        f"hooks nor profiler takes {totals['forward_ms']:.3f} ms (median)."
    )
    return notes


def _onnx_notes(times: LayerTimes, totals: dict[str, Any]) -> list[str]:
    """What the per-layer times of an onnxruntime backend are, and what they leave out."""
    settings = times.settings
    notes = [
        f"time: median of {times.repeats} runs after {settings.warmup} warm-up runs, one image, CPU, "
        f"{settings.threads} thread(s), backend {settings.backend.value}; method: {times.method}. A layer's time "
        "is its compute nodes (convolution, pool, Gemm or add, with what onnxruntime fused into them); "
        "time share is of the sum of these times; GFLOP/s = 2 x MACs / time."
    ]
    notes.append(
        f"The layers' own times sum to {totals['time_ms']:.3f} ms; with their quantise, dequantise, layout and "
        f"activation nodes {totals['time_unit_ms']:.3f} ms; nodes no layer owns (the input's quantisation, "
        f"layout changes, flatten) {times.unattributed_ms or 0:.3f} ms; a whole run without the profiler "
        f"takes {totals['forward_ms']:.3f} ms (median)."
    )
    if times.output_cosine is not None:
        notes.append(
            f"int8 agreement with eager float32 (32 seeded images): mean cosine similarity of the logits "
            f"{times.output_cosine:.5f}, top-1 agreement {times.output_top1_agreement:.0%}."
        )
    return notes


def _total_row(report: LayerReport) -> dict[str, Any]:
    frame, totals = report.frame, report.totals
    nan = float("nan")
    row: dict[str, Any] = {column: nan for column in frame.columns}
    row.update(
        {
            "layer": "total",
            "kind": "",
            "in_shape": "",
            "out_shape": "",
            "params": totals["params"],
            "macs_analytic": totals["macs_analytic"],
            "macs_fvcore": frame["macs_fvcore"].sum() if report.fvcore_total is not None else nan,
            "macs_standard": nan,
            "bytes_moved": totals["bytes_moved"],
            "activations": int(frame["activations"].sum()),
            "arithmetic_intensity_flops_per_byte": 2 * totals["macs_analytic"] / totals["bytes_moved"],
            "macs_share": frame["macs_share"].sum(),
        }
    )
    row.update({column: totals[column] for column in ("macs_weight_grad", "macs_input_grad", "macs_training")
                if column in totals})  # fmt: skip
    if report.times is not None:
        row.update(
            {
                "time_ms": totals["time_ms"],
                "time_share": frame["time_share"].sum(),
                "time_unit_ms": totals["time_unit_ms"],
                "gflops_per_s": 2 * totals["macs_analytic"] / (totals["time_ms"] / 1e3) / 1e9,
            }
        )
    return row


def render_layers(report: LayerReport, fmt: Format) -> Any:
    """Render a per-layer report in ``fmt`` (:class:`mnprof.views.render.Format`).

    CSV and JSON carry the per-layer rows only (sum them for totals); the rich table and Markdown
    add a total row and the notes.
    """
    spec = layers_spec(report)
    frame = report.frame
    if fmt in (Format.TABLE, Format.MARKDOWN):
        frame = pd.concat([frame.astype(object), pd.DataFrame([_total_row(report)]).astype(object)], ignore_index=True)
    elif fmt is Format.JSON:
        frame = frame.astype(object).where(frame.notna(), None)  # pandas' NA is not JSON; null is
    return render_with(spec, frame, fmt, view="layers", unit="macs", kind="mnprof.layers")
