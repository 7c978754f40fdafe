"""``mnprof report``: regenerate everything in ``reports/`` from one command.

Count-only files are deterministic (the same code and versions give the same bytes, and a test
holds the committed ones to that); timing files say which host measured them and when.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from mnprof.check import baseline_document, builtin_entries
from mnprof.counting.count import CountReport, count_many
from mnprof.errors import MnprofError
from mnprof.files import atomic_write, atomic_write_text, dumps
from mnprof.model.config import ModelConfig, default_grid
from mnprof.paper.mobilenetv2 import tfslim_v2_table
from mnprof.paper.models import paper_tables
from mnprof.timing.host import available_cores
from mnprof.timing.layers import LayerTimingSettings, time_layers
from mnprof.timing.peaks import measure_bandwidth, measure_gemm_peak
from mnprof.timing.plan import SweepOutcome, measure_into
from mnprof.timing.records import Device
from mnprof.timing.store import read_results, results_records
from mnprof.timing.sweep import sweep_drift
from mnprof.views import grid as tables
from mnprof.views.layers import LayerReport, layer_report, render_layers
from mnprof.views.paper import render_paper
from mnprof.views.plot_inputs import plot_inputs
from mnprof.views.plots import Figure, build_figures, page_html, roofline_figure, static_image
from mnprof.views.render import Format

__all__ = ["COUNT_FILES", "TIMING_FILES", "ReportFile", "index_markdown", "write_counts"]

LAYERS_CONFIG = (1.0, 224)


@dataclass(frozen=True)
class ReportFile:
    name: str
    what: str
    regenerate: str


COUNT_FILES = (
    ReportFile("table.md", "params and MACs of the 16 configurations, three counters, published values and deltas",
               "mnprof table --no-timing --format markdown"),
    ReportFile("table.csv", "the same rows as CSV (exact integers)", "mnprof table --no-timing --format csv"),
    ReportFile("table.json", "the same rows as versioned JSON (schema_version 1)",
               "mnprof table --no-timing --format json"),
    ReportFile("paper.md", "every computable table of the paper (published, computed, delta) with findings",
               "mnprof paper --format markdown"),
    ReportFile("paper-mobilenetv2.md", "TF-slim's 22 MobileNetV2 checkpoints (published, computed, delta) and the "
               "conventions that reproduce them", "mnprof paper --model mobilenetv2 --format markdown"),
    ReportFile("layers-1.0-224-counts.md", "1.0-224 layer by layer: shapes, params, MACs, bytes, intensity",
               "mnprof layers --alpha 1.0 --resolution 224 --no-timing --format markdown"),
    ReportFile("baseline.json", "the regression baseline that mnprof check (and this repository's CI) compares with",
               "mnprof baseline --out reports/baseline.json"),
)  # fmt: skip
TIMING_FILES = (
    ReportFile("results.json", "every latency measurement with its host provenance (mnprof.results, schema 1)",
               "mnprof table --backend eager,fused --results reports/results.json"),
    ReportFile("layers-1.0-224.md", "1.0-224 layer by layer, timed: share of MACs vs share of time, GFLOP/s",
               "mnprof layers --alpha 1.0 --resolution 224 --format markdown"),
    ReportFile("figures.html", "the figures: accuracy vs MACs and params, latency vs MACs, Pareto front, roofline",
               "mnprof plot --results reports/results.json (the roofline comes from mnprof report)"),
    ReportFile("pareto.png", "the main figure as a picture (accuracy vs measured latency, Pareto front)",
               "mnprof plot --results reports/results.json --out pareto.png"),
    ReportFile("roofline.json", "the host's measured GEMM peak and copy bandwidth, and the timed layer points",
               "mnprof report"),
)  # fmt: skip


def _counts() -> dict[str, Callable[[], str]]:
    @cache
    def reports() -> list[CountReport]:  # counted once: the table and the baseline share them
        return count_many(default_grid())

    @cache
    def frame() -> pd.DataFrame:
        return tables.grid_frame(reports())

    def table(fmt: Format) -> Callable[[], str]:
        return lambda: str(tables.render(frame(), tables.View.GRID, fmt))

    return {
        "table.md": table(Format.MARKDOWN),
        "table.csv": table(Format.CSV),
        "table.json": table(Format.JSON),
        "paper.md": lambda: str(render_paper(paper_tables(), Format.MARKDOWN)),
        "paper-mobilenetv2.md": lambda: str(render_paper([tfslim_v2_table()], Format.MARKDOWN)),
        "layers-1.0-224-counts.md": lambda: str(
            render_layers(layer_report(ModelConfig(*LAYERS_CONFIG), None), Format.MARKDOWN)
        ),
        "baseline.json": lambda: dumps(baseline_document(builtin_entries(reports()))),
    }


def write_counts(out: Path, on_file: Callable[[str], None] | None = None) -> list[str]:
    """Write the count-only files into ``out`` (atomically each); returns their names."""
    written = []
    for name, make in _counts().items():
        atomic_write_text(out / name, make())
        written.append(name)
        if on_file is not None:
            on_file(name)
    return written


def timing_provenance(out: Path) -> str | None:
    """'CPU, N cores, date' and the host's drift from ``out/results.json``, if it is there and readable."""
    try:
        document = read_results(out / "results.json")
    except MnprofError:
        return None
    environment = document["environment"]
    drift = sweep_drift(results_records([document]))
    varied = f"; the host's speed varied by {drift.spread:.0%} during the sweep" if len(drift.factors) > 1 else ""
    return (
        f"{environment.get('cpu_model') or 'an unidentified CPU'}, {environment.get('available_cores')} cores "
        f"available, {environment.get('os')}, torch {environment.get('torch')}, measured {environment.get('date')} "
        f"(host fingerprint {environment.get('host_fingerprint')}){varied}"
    )


def index_markdown(out: Path) -> str:
    """``reports/README.md``: what each file is, how to regenerate it, and where the timing parts come from."""
    lines = [
        "# mnprof reports",
        "",
        "Generated by `mnprof report`; do not edit by hand. Regenerate everything with `mnprof report`, or only the",
        "count-only files (no timing, deterministic) with `mnprof report --no-timing`.",
        "",
        "## Counts (deterministic: a test regenerates them and requires identical bytes)",
        "",
        "| file | what | regenerate one with |",
        "|---|---|---|",
    ]
    lines += [f"| [{f.name}]({f.name}) | {f.what} | `{f.regenerate}` |" for f in COUNT_FILES if (out / f.name).exists()]
    present = [f for f in TIMING_FILES if (out / f.name).exists()]
    lines += ["", "## Timings (host-specific)", ""]
    provenance = timing_provenance(out)
    if present and provenance:
        lines += [
            f"Measured on {provenance}. Latencies are medians with their spread; on another host they differ.",
            "",
            "| file | what | regenerate one with |",
            "|---|---|---|",
        ]
        lines += [f"| [{f.name}]({f.name}) | {f.what} | `{f.regenerate}` |" for f in present]
    else:
        lines.append("None yet: run `mnprof report` (it times every configuration, a few minutes).")
    if (out / "pareto.png").exists():
        lines += ["", "![accuracy vs measured latency](pareto.png)"]
    return "\n".join(lines) + "\n"


Measure = Callable[[Path, Sequence[ModelConfig]], SweepOutcome]


def write_timing(
    out: Path,
    *,
    backends: str,
    measure: Measure | None = None,
    on_step: Callable[[str], None] | None = None,
) -> None:
    """Time everything and write the host-specific files (results, timed layers, roofline, figures, picture).

    ``measure(path, configs)`` times the grid into the results file ``path``; by default
    :func:`mnprof.timing.plan.measure_into` with ``backends`` (the command line passes one with a progress
    bar that also says what the sweep reported).
    """
    step = on_step or (lambda _name: None)
    step("results.json")
    (measure or (lambda path, configs: measure_into(path, configs, backends)))(out / "results.json", default_grid())
    provenance = timing_provenance(out)

    step("layers-1.0-224.md")
    threads = available_cores()
    config = ModelConfig(*LAYERS_CONFIG)
    layers = layer_report(config, time_layers(config, LayerTimingSettings(threads=threads)))
    atomic_write_text(
        out / "layers-1.0-224.md",
        f"_Timed on {provenance}; {threads} threads._\n\n{render_layers(layers, Format.MARKDOWN)}",
    )

    step("roofline.json")
    peak = measure_gemm_peak(Device.CPU, threads)
    bandwidth = measure_bandwidth(threads)
    columns = ["layer", "kind", "arithmetic_intensity_flops_per_byte", "gflops_per_s", "time_ms", "macs_share",
               "time_share"]  # fmt: skip
    points = layers.frame[columns].astype(object).where(layers.frame[columns].notna(), None)
    roofline = {"threads": threads, "gemm_peak": peak, "bandwidth": bandwidth, "config": layers.frame["id"][0],
                "layers": points.to_dict(orient="records")}  # fmt: skip
    atomic_write_text(out / "roofline.json", dumps(roofline))

    step("figures.html")
    figures, provenance_lines = _figures(out, layers, peak["gflops"], bandwidth["gb_per_s"], threads)
    title = "mnprof report: MobileNetV1 accuracy, MACs, latency and roofline"
    atomic_write_text(out / "figures.html", page_html(figures, title=title, provenance=provenance_lines))
    step("pareto.png")
    pareto = next(figure for figure in figures if figure.key == "pareto")
    image = static_image(pareto.figure, "png")
    atomic_write(out / "pareto.png", lambda handle: handle.write(image))


def _figures(
    out: Path, layers: LayerReport, peak: float, bandwidth: float, threads: int
) -> tuple[list[Figure], list[str]]:
    inputs = plot_inputs([out / "results.json"], count_many)
    figures = build_figures(inputs.grid, inputs.latency)
    label = f"1.0-224, eager, {threads} threads"
    figures.append(roofline_figure(layers.frame, peak_gflops=peak, bandwidth_gbs=bandwidth, label=label))
    return figures, inputs.provenance
