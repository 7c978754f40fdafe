"""The figures of a report: ``figures.html`` (accuracy vs MACs and params, latency vs MACs, the Pareto front, the
roofline of the timed layers) and ``pareto.png``, the main figure as a picture."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mnprof.counting.count import count_many
from mnprof.files.write import atomic_write, atomic_write_text
from mnprof.model.config import ModelConfig
from mnprof.reports.catalogue import Families, families_title_of
from mnprof.views.layers import LayerReport
from mnprof.views.plot_inputs import plot_inputs
from mnprof.views.plots import Figure, build_figures, page_html, static_image
from mnprof.views.roofline import roofline_figure

__all__ = ["write_figures"]


def write_figures(
    out: Path,
    layers: LayerReport,
    peak: float,
    bandwidth: float,
    threads: int,
    configs: Sequence[ModelConfig],
    families: Families,
    step: Callable[[str], None],
) -> None:
    """``figures.html`` from ``out/results.json`` and the roofline of ``layers`` (``peak`` GFLOP/s, ``bandwidth``
    GB/s), then ``pareto.png``: the Pareto front, or latency vs MACs where no family has published accuracy."""
    step("figures.html")
    figures, provenance_lines = _figures(out, layers, peak, bandwidth, threads, configs)
    figures = [figure for figure in figures if figure.figure.data]  # no published accuracy: nothing to draw
    title = f"mnprof report: {families_title_of(families)} accuracy, MACs, latency and roofline"
    atomic_write_text(out / "figures.html", page_html(figures, title=title, provenance=provenance_lines))
    step("pareto.png")
    main = next((figure for figure in figures if figure.key == "pareto"), None)
    main = main or next(figure for figure in figures if figure.key == "latency-macs")
    image = static_image(main.figure, "png")
    atomic_write(out / "pareto.png", lambda handle: handle.write(image))


def _figures(
    out: Path, layers: LayerReport, peak: float, bandwidth: float, threads: int, configs: Sequence[ModelConfig]
) -> tuple[list[Figure], list[str]]:
    inputs = plot_inputs([out / "results.json"], count_many, configs)
    figures = build_figures(inputs.grid, inputs.latency)
    label = f"{layers.config.id}, eager, {threads} threads"
    figures.append(roofline_figure(layers.frame, peak_gflops=peak, bandwidth_gbs=bandwidth, label=label))
    return figures, inputs.provenance
