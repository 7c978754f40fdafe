"""Per-layer view: counts, bytes moved, arithmetic intensity and (when given) measured time of every layer.

One row per planned layer (the stem conv, each depthwise and pointwise conv, the pool, the FC)
with its shapes, params, MACs (analytic, and fvcore's count of the same module), what a standard
convolution would cost in place of each separable block, bytes moved, arithmetic intensity,
measured time, share of MACs beside share of time, and achieved GFLOP/s.

Conventions:

- params and MACs: the paper's (a layer's own weights and biases; conv and FC multiply-accumulates).
- bytes moved: float32 (4 bytes), the layer's weights once + its input activations once + its
  output activations once. BatchNorm and ReLU are taken as folded into the convolution, as
  inference runtimes deploy them, so neither their parameters nor their own passes over the
  activations are counted (nor the M-float bias that folding BatchNorm adds). This is the
  minimum traffic of a layer without caching across layers: a lower bound, not a measurement.
- arithmetic intensity: FLOPs per byte = 2 x MACs / bytes moved.

Times come from :func:`mnprof.timing.layers.time_layers` (methods, allocator and memory are described
there); this module only reads the :class:`~mnprof.timing.layers.LayerTimes` it is given and never
imports the measuring code. To count and time::

    times = time_layers(config, LayerTimingSettings())  # mnprof.timing.layers
    print(render_layers(layer_report(config, times), Format.MARKDOWN))

Rendering: CSV and JSON carry the per-layer rows only (sum them for totals); the rich table and
Markdown add a total row and the notes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from mnprof.counting.analytic import AnalyticCount, ParamConvention
from mnprof.counting.fvcore_counter import count_fvcore
from mnprof.counting.shapes import plan_count
from mnprof.counting.training import training_count
from mnprof.model.arch import CONV_KINDS, LayerKind
from mnprof.model.config import ModelConfig
from mnprof.model.networks import build_model, module_paths
from mnprof.user_code import user_code
from mnprof.views.render import Column, Format, Rendered, number, render_with

if TYPE_CHECKING:
    from mnprof.timing.layers import LayerTimes

__all__ = [
    "BYTES_PER_ELEMENT",
    "LayerReport",
    "layer_counts",
    "layer_report",
    "layers_spec",
    "render_layers",
]

BYTES_PER_ELEMENT = 4  # float32


def _shape(channels: int, height: int, width: int | None = None) -> str:
    return f"{height}x{width or height}x{channels}"


def _kernel_stride(row: pd.Series) -> str:
    """``3x3 s2``; a kernel or stride that is not square shows both sides (``1x7 s1``, ``3x3 s2x1``)."""
    kernel, stride = row["kernel"], row["stride"]
    kernel_width = row.get("kernel_width", kernel)
    stride_width = row.get("stride_width", stride)
    strides = f"{stride}" if stride_width == stride else f"{stride}x{stride_width}"
    return f"{kernel}x{kernel_width} s{strides}"


def _bytes_moved(layer_params: int, in_elements: int, out_elements: int) -> int:
    return BYTES_PER_ELEMENT * (layer_params + in_elements + out_elements)


def layer_counts(config: ModelConfig, fvcore_by_module: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per layer: shapes, params, MACs, the standard conv each separable block replaces, bytes, intensity.

    ``fvcore_by_module``: fvcore's per-module counts of the built model (``FvcoreCount.by_module``);
    when given, ``macs_fvcore`` (the layer's own module) and ``macs_fvcore_unit`` (with its
    BatchNorm and ReLU) are filled in.
    """
    count = plan_count(config)
    total_macs = count.macs
    rows = []
    layers = count.layers
    # fvcore counts a module's calls together: a module that runs more than once (shared) has no per-call figure
    calls = Counter(module_paths(layer.spec)[0] for layer in layers)
    for index, layer in enumerate(layers):
        spec = layer.spec
        op_path, unit_path = module_paths(spec)
        block = int(spec.name.split(".")[1]) if spec.name.startswith("blocks.") else None
        bytes_moved = _bytes_moved(layer.params, layer.in_elements, layer.out_elements)
        # a product of two tensors (a user's attention) runs in a forward, no module of its own: fvcore has no
        # per-module figure for it
        fvcore = fvcore_by_module is not None and spec.kind not in (LayerKind.MATMUL, LayerKind.SOFTMAX)
        row: dict[str, Any] = {
            "id": config.id,
            "layer": spec.name,
            "kind": spec.kind.value,
            "block": block,
            "in_shape": _shape(spec.in_channels, spec.in_size, spec.in_width),
            "out_shape": _shape(spec.out_channels, spec.out_size, spec.out_width),
            "kernel": spec.kernel,
            "kernel_width": spec.kernel_width or spec.kernel,
            "stride": spec.stride,
            "stride_width": spec.stride_width or spec.stride,
            "groups": spec.groups,
            "params": layer.params,
            "macs_analytic": layer.macs,
            "macs_fvcore": fvcore_by_module.get(op_path, 0) if fvcore and calls[op_path] == 1 else pd.NA,
            "macs_fvcore_unit": fvcore_by_module.get(unit_path, 0) if fvcore and calls[op_path] == 1 else pd.NA,
            "macs_share": layer.macs / total_macs,
            "bytes_moved": bytes_moved,
            "activations": layer.out_elements if spec.kind in (*CONV_KINDS, LayerKind.FC) else 0,
            "arithmetic_intensity_flops_per_byte": 2 * layer.macs / bytes_moved,
        }
        row.update(_standard_in_place(layers, index))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["block"] = frame["block"].astype("Int64")
    for column in ("macs_fvcore", "macs_fvcore_unit", "macs_standard", "params_standard"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _standard_in_place(layers: tuple[Any, ...], index: int) -> dict[str, Any]:
    """On a block's pointwise row: the standard 3x3 conv the depthwise + pointwise pair stands in for (MobileNetV3:
    with its squeeze-and-excite between them, whose small MACs are not part of the pair).

    Separable/standard is computed from the two counts, and the seed note's 1/M + 1/F^2 beside it;
    the two are equal exactly (as fractions) for every block, since both sides share Ho * Wo * N.
    """
    empty = {
        "macs_standard": pd.NA,
        "params_standard": pd.NA,
        "separable_to_standard": float("nan"),
        "seed_formula_ratio": float("nan"),
    }
    spec = layers[index].spec
    previous = index - 1
    if previous > 0 and layers[previous].spec.kind is LayerKind.SCALE:  # MobileNetV3: the SE between dw and project
        while previous > 0 and layers[previous].spec.kind is not LayerKind.POOL:
            previous -= 1
        previous -= 1
    if spec.kind is not LayerKind.POINTWISE or index == 0 or layers[previous].spec.kind is not LayerKind.DEPTHWISE:
        return empty
    depthwise = layers[previous]
    channels_in, channels_out = spec.in_channels, spec.out_channels
    # a traced layer may not be square: F^2 is the kernel's height x width, Ho x Wo the output's
    kernel_area = depthwise.spec.kernel * (depthwise.spec.kernel_width or depthwise.spec.kernel)
    positions = spec.out_size * (spec.out_width or spec.out_size)
    params_standard = kernel_area * channels_in * channels_out
    standard = positions * params_standard
    separable = depthwise.macs + layers[index].macs
    return {
        "macs_standard": standard,
        "params_standard": params_standard,
        "separable_to_standard": float(Fraction(separable, standard)),
        "seed_formula_ratio": float(Fraction(1, channels_out) + Fraction(1, kernel_area)),
    }


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


def _with_training(frame: pd.DataFrame, config: ModelConfig, count: AnalyticCount) -> pd.DataFrame:
    """``frame`` with each layer's backward (``--pass training``): its weight and input gradients' MACs and the
    layer's training MACs (forward + backward), by :mod:`mnprof.counting.training`'s rule."""
    training = training_count(count, None if count.planned else build_model(config))
    by_name = {gradients.layer.spec.name: gradients for gradients in training.layers}
    frame = frame.copy()
    frame["macs_weight_grad"] = [by_name[n].weight_grad_macs if n in by_name else 0 for n in frame["layer"]]
    frame["macs_input_grad"] = [by_name[n].input_grad_macs if n in by_name else 0 for n in frame["layer"]]
    frame["macs_training"] = frame["macs_analytic"] + frame["macs_weight_grad"] + frame["macs_input_grad"]
    return frame


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
        with user_code(f"model {config.family} at {config.id}: forward failed:"):
            counted = count_fvcore(build_model(config), torch.zeros(1, 3, config.resolution, config.resolution))
        fvcore_by_module, fvcore_total = counted.by_module, counted.total
    count = plan_count(config)
    frame = _with_times(layer_counts(config, fvcore_by_module), times, units=count.planned)
    if training:
        frame = _with_training(frame, config, count)
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
    frame, totals = report.frame, report.totals
    equal = totals["macs_analytic"] == totals["macs_model"] and totals["params"] == totals["params_model_paper"]
    line = (
        f"Totals: MACs {totals['macs_analytic']:,} and params {totals['params']:,} "
        + ("equal" if equal else "DO NOT equal")
        + f" the whole model's analytic counts ({totals['macs_model']:,}, {totals['params_model_paper']:,}; "
        "params: conv and FC weights and biases)."
    )
    if report.fvcore_total is not None:
        fvcore_equal = totals["macs_fvcore_unit"] == totals["macs_fvcore_model"]
        convs = frame[~frame["kind"].isin([LayerKind.POOL.value, LayerKind.ADD.value])]
        shared = int(convs["macs_fvcore"].isna().sum())
        convs = convs.dropna(subset=["macs_fvcore"])
        same = int((convs["macs_fvcore"] == convs["macs_analytic"]).sum())
        line += f" fvcore, per module: conv and FC equal the analytic count in {same} of {len(convs)} layers"
        if shared:
            line += f" ({shared} calls of shared modules left out: fvcore counts a module's calls together)"
        line += "; "
        if not report.analytic.planned:  # a user's model: its layers have no units to hold their BatchNorm
            line += (
                f"its whole-model {totals['macs_fvcore_model']:,} adds what it charges outside these modules "
                "(BatchNorm, pooling: mnprof table --view reconcile explains it operator by operator)."
            )
        else:
            line += (
                f"with the BatchNorm of each unit the modules sum to {totals['macs_fvcore_unit']:,}, "
                + ("equal to" if fvcore_equal else "NOT equal to")
                + f" fvcore's whole-model {totals['macs_fvcore_model']:,} (the pool row shows fvcore's 1 add per "
                "input element; BatchNorm is in the fvcore total, not in the MMACs fvcore column)."
            )
    notes = [line]
    separable = frame.dropna(subset=["separable_to_standard"])
    if len(separable):
        exact = bool((separable["separable_to_standard"] == separable["seed_formula_ratio"]).all())
        notes.append(
            "std conv: the 3x3 standard convolution that each depthwise + pointwise pair replaces (shown on the "
            f"pointwise row); sep/std is (dw + pw) / std, {'equal to' if exact else 'NOT equal to'} the seed note's "
            f"1/M + 1/F² in every block. The {len(separable)} blocks together: "
            f"{int(separable['macs_standard'].sum()) / 1e6:,.1f} MMACs as standard convolutions, "
            f"{sum(_pair_macs(frame, index) for index in separable.index) / 1e6:,.1f} as built."
        )
    notes.append(
        "MB moved: float32, the layer's weights + input activations + output activations once each; BatchNorm "
        "and ReLU taken as folded into the conv (not counted). FLOP/B = 2 x MACs / bytes moved. activations: the "
        "layer's output elements (conv and FC only, fvcore's ActivationCountAnalysis definition)."
    )
    shares = []
    for kind in (LayerKind.POINTWISE, LayerKind.DEPTHWISE, LayerKind.CONV, LayerKind.FC, LayerKind.POOL):
        if (frame["kind"] == kind.value).any():
            text = f"{kind.value} {100 * _kind_share(frame, kind.value, 'macs_share'):.1f}% of MACs"
            if report.times is not None:
                text += f", {100 * _kind_share(frame, kind.value, 'time_share'):.1f}% of time"
            shares.append(text)
    notes.append("By kind: " + "; ".join(shares) + ".")
    if report.times is not None:
        times = report.times
        notes.extend(_onnx_notes(times, totals) if times.runtime is not None else _torch_notes(report, totals))
        noisy = frame[frame["time_ms_iqr"] > 0.2 * frame["time_ms"]]
        if len(noisy):
            notes.append(
                f"Noisy (IQR above 20% of the median): {', '.join(noisy['layer'])}; rerun with more --repeats or "
                "on a quieter machine."
            )
    else:
        notes.append("time: not measured (--no-timing).")
    if "macs_training" in totals:
        notes.append(
            f"Training step (--pass training): {totals['macs_training']:,} MACs = forward + weight gradients "
            f"{totals['macs_weight_grad']:,} + input gradients {totals['macs_input_grad']:,} (each gradient costs the "
            "layer's forward MACs; the first layer's input, the image, needs none; docs/counting.md)."
        )
    return tuple(notes)


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
