"""DataFrames -> plotly figures and one self-contained HTML page (plotly.js embedded, works from file://).

Figures:
1. published top-1 vs MACs (log x), lines joining equal alpha and equal resolution (paper Figure 4);
2. published top-1 vs params (paper Figure 5);
3. measured latency vs MACs per series (host, runtime, batch size), least-squares line and R^2;
4. published top-1 vs measured latency, Pareto-optimal configurations highlighted and listed
(the roofline of mnprof layers is in :mod:`mnprof.views.roofline`).

Every string that comes from outside (model ids, host names, runtime names) is HTML-escaped
before it reaches the page or plotly's text renderer, so it shows as text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from mnprof.errors import MnprofError
from mnprof.timing.records import STATISTIC_LABEL, Statistic
from mnprof.views.predict import fit_notes, latency_fits
from mnprof.views.render import FAMILY_NAMES

__all__ = [
    "ACCURACY_SOURCES",
    "LATENCY_COLUMNS",
    "Figure",
    "accuracy_frame",
    "figure_layout",
    "fit_line",
    "html_text",
    "pareto_front",
    "build_figures",
    "page_html",
    "static_image",
]

# Published top-1 columns joined into the count rows by tables.grid_frame, and how they are labelled.
ACCURACY_SOURCES = {
    "published_top1_tfslim": "TF-slim top-1 (published)",
    "published_top1_paper": "paper top-1 (published)",
}
SOURCE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
# Columns a latency frame must have: one row per configuration and series.
LATENCY_COLUMNS = ("id", "alpha", "resolution", "series", "latency_ms", "latency_ms_median", "latency_ms_iqr")


@dataclass(frozen=True)
class Figure:
    """A plotly figure with the caption printed under it."""

    key: str
    figure: Any  # plotly.graph_objects.Figure
    caption: str


def html_text(value: object) -> str:
    """Text from outside (an id, a host, a runtime), escaped for the page and plotly's text renderer."""
    return html.escape(str(value), quote=True)


def accuracy_frame(grid: pd.DataFrame) -> pd.DataFrame:
    """Long form: one row per configuration and accuracy source that has a published top-1 (sources are
    told apart by family when ``grid`` holds several)."""
    several = "family" in grid.columns and grid["family"].nunique() > 1
    frames = []
    for column, label in ACCURACY_SOURCES.items():
        part = grid[grid[column].notna()].copy()
        part["top1"] = part[column]
        part["top1_column"] = column
        if several:  # each family its own series: lines join configurations of one family only
            part["top1_source"] = [f"{FAMILY_NAMES.get(f, f)}: {label}" for f in part["family"]]
        else:
            part["top1_source"] = label
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares ``y = slope * x + intercept`` and its R^2 (NaN with fewer than 2 distinct x)."""
    n = len(x)
    if n < 2:
        return math.nan, math.nan, math.nan
    mean_x, mean_y = sum(x) / n, sum(y) / n
    sxx = sum((xi - mean_x) ** 2 for xi in x)
    if sxx == 0:
        return math.nan, math.nan, math.nan
    slope = sum((xi - mean_x) * (yi - mean_y) for xi, yi in zip(x, y, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    ss_res = sum((yi - (slope * xi + intercept)) ** 2 for xi, yi in zip(x, y, strict=True))
    ss_tot = sum((yi - mean_y) ** 2 for yi in y)
    r2 = 1 - ss_res / ss_tot if ss_tot else math.nan
    return slope, intercept, r2


def pareto_front(latency: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of Pareto-optimal points: no other point is at least as fast and as accurate, and better in one."""
    front = []
    for i, (lat_i, acc_i) in enumerate(zip(latency, accuracy, strict=True)):
        dominated = any(
            lat_j <= lat_i and acc_j >= acc_i and (lat_j < lat_i or acc_j > acc_i)
            for j, (lat_j, acc_j) in enumerate(zip(latency, accuracy, strict=True))
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: latency[i])


HOVER_FIELDS = (
    ("id", "config", "{}"),
    ("alpha", "alpha", "{}"),
    ("resolution", "resolution", "{}"),
    ("params", "params", "{:,}"),
    ("macs_analytic", "MACs analytic", "{:,}"),
    ("macs_fvcore", "MACs fvcore", "{:,}"),
    ("macs_thop", "MACs thop", "{:,}"),
    ("latency_ms", "latency (ms)", "{:.2f}"),
    ("latency_relative", "latency relative to the reference", "{:.3f}"),
    ("reference_id", "reference", "{}"),
    ("latency_ms_median", "median of every call (ms)", "{:.2f}"),
    ("latency_ms_iqr", "IQR of every call (ms)", "{:.2f}"),
    ("throughput_ips", "throughput (images/s)", "{:.1f}"),
    ("series", "measured", "{}"),
    ("top1", "top-1 %", "{}"),
    ("top1_source", "top-1 source", "{}"),
)


def _statistic_name(frame: pd.DataFrame) -> str:
    statistic = frame["statistic"].iloc[0] if "statistic" in frame.columns and len(frame) else "p5"
    return STATISTIC_LABEL[Statistic(statistic)]


def _bars_name(frame: pd.DataFrame) -> str:
    return "95% CI" if _headline(frame) else "IQR"


def _headline(frame: pd.DataFrame) -> bool:
    return "statistic" not in frame.columns or (frame["statistic"] == Statistic.P5.value).all()


def _interval(part: pd.DataFrame) -> dict[str, Any]:
    """Error bars: the headline's 95% CI where the headline is shown, else the IQR of every call."""
    if _headline(part) and {"latency_ms_ci_low", "latency_ms_ci_high"} <= set(part.columns):
        high = (part["latency_ms_ci_high"] - part["latency_ms"]).fillna(0)
        low = (part["latency_ms"] - part["latency_ms_ci_low"]).fillna(0)
        return {"type": "data", "symmetric": False, "array": high, "arrayminus": low, "visible": True}
    return {"type": "data", "array": part["latency_ms_iqr"] / 2, "visible": True}


def figure_layout(figure: Any, title: str, x_title: str, y_title: str) -> None:
    """The layout every figure shares: titles, white template, legend under the plot."""
    figure.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, template="plotly_white", height=520,
                         legend={"orientation": "h", "y": -0.2})  # fmt: skip


def _hover(row: pd.Series) -> str:
    lines = []
    for key, label, fmt in HOVER_FIELDS:
        if key in row and row[key] is not None and not (isinstance(row[key], float) and math.isnan(row[key])):
            lines.append(f"{label}: {html_text(fmt.format(row[key]))}")
    return "<br>".join(lines)


def _accuracy_figure(acc: pd.DataFrame, x: str, title: str, x_title: str, log_x: bool) -> Any:
    figure = go.Figure()
    sources = acc.groupby("top1_source", sort=False)
    for color, (source, part) in zip(SOURCE_COLORS * len(sources), sources, strict=False):
        for group_key, label in (("alpha", "alpha {}"), ("resolution", "resolution {}")):
            for value, line in part.groupby(group_key, sort=False):
                line = line.sort_values(x)
                figure.add_trace(
                    go.Scatter(
                        x=line[x],
                        y=line["top1"],
                        mode="lines",
                        name=html_text(f"{source}: {label.format(value)}"),
                        line={"width": 1, "color": color, "dash": "solid" if group_key == "alpha" else "dot"},
                        hoverinfo="skip",
                        legendgroup=html_text(source),
                        showlegend=False,
                    )
                )
        figure.add_trace(
            go.Scatter(
                x=part[x],
                y=part["top1"],
                mode="markers+text",
                name=html_text(source),
                text=[html_text(i) for i in part["id"]],
                textposition="top center",
                textfont={"size": 9},
                marker={"size": 9},
                hovertext=[_hover(row) for _, row in part.iterrows()],
                hoverinfo="text",
                legendgroup=html_text(source),
                meta="points",
            )
        )
    figure_layout(figure, title, x_title, "ImageNet top-1 accuracy (%), published")
    if log_x:
        figure.update_xaxes(type="log")
    return figure


# Latency figures: the measured latency against each count that might predict it (key, x column, axis, title).
LATENCY_AXES = (
    ("latency-macs", "macs_analytic", "Mult-Adds (MACs, analytic count)", "Measured latency vs Mult-Adds", "MACs"),
    ("latency-activations", "activations", "activations (conv and linear output elements, one image)",
     "Measured latency vs activations", "activations"),
    ("latency-memory", "memory_bytes", "analytic memory: float32 weights + peak activation working set (bytes)",
     "Measured latency vs memory", "bytes"),
    ("latency-instructions", "instructions", "instructions per forward pass of one image (Valgrind's Callgrind)",
     "Measured latency vs instructions", "instructions"),
)  # fmt: skip


def _latency_figure(merged: pd.DataFrame, x: str, x_title: str, title: str, unit: str) -> tuple[Any, str] | None:
    """Latency against ``x``, a least-squares line per series; None where no row has ``x`` (a user family's
    memory)."""
    rows = merged[merged[x].notna()]
    if rows.empty:
        return None
    scatter = go.Figure()
    fits = []
    for series, part in rows.groupby("series", sort=False):
        part = part.sort_values(x)
        xs = [float(value) for value in part[x]]
        scatter.add_trace(
            go.Scatter(
                x=xs,
                y=part["latency_ms"],
                mode="markers",
                name=html_text(series),
                error_y=_interval(part),
                hovertext=[_hover(row) for _, row in part.iterrows()],
                hoverinfo="text",
                meta="points",
            )
        )
        slope, intercept, r2 = fit_line(xs, list(part["latency_ms"]))
        if not math.isnan(slope):
            ends = [min(xs), max(xs)]
            scatter.add_trace(
                go.Scatter(
                    x=ends,
                    y=[slope * v + intercept for v in ends],
                    mode="lines",
                    name=html_text(f"{series}: fit, R²={r2:.3f}"),
                    line={"dash": "dash"},
                    hoverinfo="skip",
                )
            )
            fits.append(f"{series}: {slope * 1e6:.3f} ms per million {unit}, R² = {r2:.3f}")
    figure_layout(scatter, title, x_title, f"latency per batch (ms), {_statistic_name(rows)}; bars: {_bars_name(rows)}")
    both = fit_notes(latency_fits(rows.assign(backend=rows["series"]), ["backend"]))
    caption = (
        f"How well {x_title.split(' (')[0]} predicts latency on this host: a least-squares line per series. "
        + "; ".join(fits)
        + ". Where R² falls below 1, the count stops predicting speed. "
        + " ".join(both)
    )
    return scatter, caption


def build_figures(grid: pd.DataFrame, latency: pd.DataFrame | None) -> list[Figure]:
    """All figures. ``grid``: tables.grid_frame rows. ``latency``: rows with LATENCY_COLUMNS (or None)."""
    acc = accuracy_frame(grid)
    figures = _accuracy_figures(acc)
    if latency is None or latency.empty:
        return figures
    merged = _latency_rows(grid, latency)
    return [*figures, *_latency_figures(merged), _pareto_figure(merged, acc)]


def _accuracy_figures(acc: pd.DataFrame) -> list[Figure]:
    """Published top-1 against MACs and params (paper Figures 4 and 5), and against a training step's MACs where
    they were counted (--pass training)."""
    figures = [
        Figure(
            "accuracy-macs",
            _accuracy_figure(
                acc,
                "macs_analytic",
                "Accuracy vs Mult-Adds (paper Figure 4)",
                "Mult-Adds (MACs, analytic count, log scale)",
                True,
            ),
            f"{acc['id'].nunique()} configurations; x is mnprof's analytic MAC count, y the published top-1 "
            "(TF-slim and the paper, labelled). Solid lines join equal alpha, dotted lines equal resolution.",
        ),
        Figure(
            "accuracy-params",
            _accuracy_figure(
                acc, "params", "Accuracy vs parameters (paper Figure 5)", "parameters (PyTorch count)", False
            ),
            "x is the PyTorch parameter count (BatchNorm gamma and beta included); y the published top-1. "
            "Resolution does not change the parameters, so each width is one column of points.",
        ),
    ]
    if "macs_training" in acc.columns and acc["macs_training"].notna().any():  # --pass training
        figures.append(
            Figure(
                "accuracy-training-macs",
                _accuracy_figure(
                    acc,
                    "macs_training",
                    "Accuracy vs the MACs of a training step",
                    "MACs of one training step of one image (forward and backward, analytic, log scale)",
                    True,
                ),
                "x is one training step's analytic MACs (each conv and linear layer's forward, weight gradient and "
                "input gradient; the first layer's input, the image, needs none: docs/counting.md), y the published "
                "top-1. About 3x the forward's at every configuration, so the trade-off keeps its shape.",
            )
        )
    return figures


def _latency_rows(grid: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    """The timed rows with their configuration's counts and published values from the grid, and the analytic
    memory (float32 weights + peak activation working set) the memory figure is drawn against."""
    own = ["id", *(column for column in latency.columns if column not in grid.columns)]
    merged = latency[own].merge(grid, on="id", how="left")
    merged["memory_bytes"] = merged["weights_bytes"] + merged["peak_activation_bytes"].astype("Float64")
    return merged


def _latency_figures(merged: pd.DataFrame) -> list[Figure]:
    """Latency against each count of LATENCY_AXES that the rows have."""
    figures = []
    for key, x, x_title, title, unit in LATENCY_AXES:
        if x not in merged.columns:  # instructions: only where counted (mnprof plot --instructions)
            continue
        figure = _latency_figure(merged, x, x_title, title, unit)
        if figure is not None:
            figures.append(Figure(key, *figure))
    return figures


def _pareto_figure(merged: pd.DataFrame, acc: pd.DataFrame) -> Figure:
    """TF-slim's published top-1 against the measured latency, each series' Pareto front drawn and listed."""
    acc_lat = merged.merge(acc[["id", "top1", "top1_column"]], on="id", how="inner")
    acc_lat = acc_lat[acc_lat["top1_column"] == "published_top1_tfslim"]
    pareto = go.Figure()
    listed = []
    for series, part in acc_lat.groupby("series", sort=False):
        part = part.reset_index(drop=True)
        front = pareto_front(list(part["latency_ms"]), list(part["top1"]))
        pareto.add_trace(
            go.Scatter(
                x=part["latency_ms"],
                y=part["top1"],
                mode="markers",
                name=html_text(series),
                hovertext=[_hover(row) for _, row in part.iterrows()],
                hoverinfo="text",
                meta="points",
                marker={"size": 8, "opacity": 0.6},
            )
        )
        best = part.loc[front]
        pareto.add_trace(
            go.Scatter(
                x=best["latency_ms"],
                y=best["top1"],
                mode="lines+markers+text",
                name=html_text(f"{series}: Pareto front"),
                text=[html_text(i) for i in best["id"]],
                textposition="top left",
                marker={"size": 12, "symbol": "star"},
                hoverinfo="skip",
            )
        )
        listed.append((series, [(row["id"], row["latency_ms"], row["top1"]) for _, row in best.iterrows()]))
    figure_layout(
        pareto,
        "Accuracy vs measured latency, Pareto front",
        f"latency per batch (ms), {_statistic_name(merged)}",
        "ImageNet top-1 accuracy (%), published (TF-slim)",
    )
    caption = (
        "Pareto-optimal configurations (no other configuration is both faster and more accurate), per series: "
        + "; ".join(
            f"{series}: " + ", ".join(f"{i} ({lat:.1f} ms, {top:.1f}%)" for i, lat, top in points)
            for series, points in listed
        )
        + ". Accuracy is TF-slim's published top-1; latency was measured by mnprof."
    )
    return Figure("pareto", pareto, caption)


def page_html(figures: Sequence[Figure], *, title: str, provenance: Sequence[str]) -> str:
    """One self-contained page: plotly.js embedded once, a caption under each figure, provenance at the top."""
    parts = []
    for index, item in enumerate(figures):
        div = item.figure.to_html(
            full_html=False, include_plotlyjs=index == 0, div_id=f"figure-{item.key}", config={"displaylogo": False}
        )
        parts.append(
            f'<section class="figure" data-key="{html_text(item.key)}">{div}'
            f'<p class="caption">{html_text(item.caption)}</p></section>'
        )
    notes = "".join(f"<li>{html_text(line)}</li>" for line in provenance)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html_text(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        ".caption{color:#444;font-size:0.92em;margin:0.2em 1em 2.5em}</style></head><body>"
        f'<h1>{html_text(title)}</h1><ul class="provenance">{notes}</ul>{"".join(parts)}</body></html>\n'
    )


def static_image(figure: Any, fmt: str) -> bytes:
    """One figure as a .png or .svg picture: plotly's own export (kaleido), which drives a local Chrome/Chromium."""
    try:
        return figure.to_image(format=fmt, width=1100, height=620, scale=1)  # type: ignore[no-any-return]
    except Exception as error:  # kaleido missing, or no browser for it to drive
        raise MnprofError(
            f"static {fmt} export failed ({type(error).__name__}: {error}); it needs kaleido and Chrome or Chromium "
            "(apt-get install chromium); accepted instead: --out FILE.html"
        ) from None
