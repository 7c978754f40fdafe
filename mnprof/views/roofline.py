"""The roofline figure of mnprof layers: every timed layer's arithmetic intensity against its achieved GFLOP/s,
under the GEMM peak and copy bandwidth measured in the same run, with what the shares say about depthwise layers."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from mnprof.views.plots import Figure, figure_layout, html_text

__all__ = ["KIND_COLORS", "roofline_figure", "roofs"]


def roofs(peak_gflops: float, bandwidth_gbs: float, intensities: list[float]) -> tuple[list[float], list[float]]:
    """Points of the roofline ``min(peak, bandwidth x intensity)`` across the intensity range, with the ridge."""
    low, high = min(intensities) / 2, max(intensities) * 2
    ridge = peak_gflops / bandwidth_gbs
    xs = sorted({low, high, min(max(ridge, low), high)})
    return xs, [min(peak_gflops, bandwidth_gbs * x) for x in xs]


KIND_COLORS = {"conv": "#7f7f7f", "depthwise": "#d62728", "pointwise": "#1f77b4", "pool": "#2ca02c", "fc": "#9467bd"}


def roofline_figure(layers: pd.DataFrame, *, peak_gflops: float, bandwidth_gbs: float, label: str) -> Figure:
    """Every timed layer on arithmetic intensity vs achieved GFLOP/s, under the compute and memory roofs.

    ``layers``: :class:`mnprof.views.layers.LayerReport` frame rows (``arithmetic_intensity_flops_per_byte``,
    ``gflops_per_s``, ``kind``, ``layer``).
    """
    timed = layers[layers["gflops_per_s"].notna() & (layers["gflops_per_s"] > 0)]
    figure = go.Figure()
    xs, ys = roofs(peak_gflops, bandwidth_gbs, list(timed["arithmetic_intensity_flops_per_byte"]))
    roof = f"roofline: {peak_gflops:.0f} GFLOP/s GEMM peak, {bandwidth_gbs:.1f} GB/s copy"
    figure.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines", name=html_text(roof), line={"color": "black"}, hoverinfo="skip")
    )
    for kind, part in timed.groupby("kind", sort=False):
        figure.add_trace(
            go.Scatter(
                x=part["arithmetic_intensity_flops_per_byte"],
                y=part["gflops_per_s"],
                mode="markers",
                name=html_text(kind),
                marker={"size": 10, "color": KIND_COLORS.get(str(kind), "#333")},
                meta="points",
                hovertext=[_hover(row, kind) for _, row in part.iterrows()],
                hoverinfo="text",
            )
        )
    figure_layout(
        figure,
        f"Roofline: every layer of {html_text(label)}",
        "arithmetic intensity (FLOP per byte moved)",
        "achieved GFLOP/s (2 x MACs / layer time)",
    )
    figure.update_xaxes(type="log")
    figure.update_yaxes(type="log")
    share = timed.groupby("kind")[["macs_share", "time_share"]].sum()
    parts = [f"{kind}: {row.macs_share:.1%} of MACs, {row.time_share:.1%} of time" for kind, row in share.iterrows()]
    caption = (
        f"Each point is one layer of {label}, timed on this host; the black line is the roofline, "
        f"min({peak_gflops:.0f} GFLOP/s, {bandwidth_gbs:.1f} GB/s x intensity), both roofs measured in the same run "
        "(a float32 GEMM and a 256 MiB copy). " + "; ".join(parts) + "." + _depthwise_finding(share)
    )
    return Figure("roofline", figure, caption)


def _hover(row: pd.Series, kind: object) -> str:
    """One layer's point: its name and kind, intensity, achieved GFLOP/s and time."""
    return (
        f"{html_text(row['layer'])} ({html_text(kind)})<br>{row['arithmetic_intensity_flops_per_byte']:.1f} FLOP/B"
        f"<br>{row['gflops_per_s']:.1f} GFLOP/s<br>{row['time_ms']:.3f} ms"
    )


def _depthwise_finding(share: pd.DataFrame) -> str:
    """What the measured shares say about the depthwise layers (derived, not assumed)."""
    if "depthwise" not in share.index:
        return ""
    macs, time = share.loc["depthwise", "macs_share"], share.loc["depthwise", "time_share"]
    if time > macs:
        return (
            f" Depthwise layers hold {macs:.1%} of the MACs but take {time:.1%} of the time here: with few FLOPs "
            "per byte they sit under the memory roof, far from the compute peak."
        )
    return f" Here depthwise layers take no more of the time ({time:.1%}) than of the MACs ({macs:.1%})."
