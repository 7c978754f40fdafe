"""``mnprof report``: regenerate everything in ``reports/`` from one command.

Count-only files are deterministic (the same code and versions give the same bytes, and a test
holds the committed ones to that); timing files say which host measured them and when.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    from mnprof.check.gate import baseline_document, builtin_entries
    from mnprof.counting.count import count_many
    from mnprof.files import dumps
    from mnprof.model.config import ModelConfig, default_grid
    from mnprof.paper.tables import paper_tables, render_paper
    from mnprof.timing.layers import layer_report, render_layers
    from mnprof.views import grid as tables

    cache: dict[str, Any] = {}

    def reports() -> Any:  # counted once: the table and the baseline share them
        if "reports" not in cache:
            cache["reports"] = count_many(default_grid())
        return cache["reports"]

    def frame() -> Any:
        if "frame" not in cache:
            cache["frame"] = tables.grid_frame(reports())
        return cache["frame"]

    def table(fmt: tables.Format) -> Callable[[], str]:
        return lambda: str(tables.render(frame(), tables.View.GRID, fmt))

    return {
        "table.md": table(tables.Format.MARKDOWN),
        "table.csv": table(tables.Format.CSV),
        "table.json": table(tables.Format.JSON),
        "paper.md": lambda: str(render_paper(paper_tables(), tables.Format.MARKDOWN)),
        "layers-1.0-224-counts.md": lambda: str(
            render_layers(layer_report(ModelConfig(*LAYERS_CONFIG), None), tables.Format.MARKDOWN)
        ),
        "baseline.json": lambda: dumps(baseline_document(builtin_entries(reports()))),
    }


def write_counts(out: Path, on_file: Callable[[str], None] | None = None) -> list[str]:
    """Write the count-only files into ``out`` (atomically each); returns their names."""
    from mnprof.files import atomic_write_text

    written = []
    for name, make in _counts().items():
        atomic_write_text(out / name, make())
        written.append(name)
        if on_file is not None:
            on_file(name)
    return written


def timing_provenance(out: Path) -> str | None:
    """'CPU, N cores, date' and the host's drift from ``out/results.json``, if it is there and readable."""
    from mnprof.timing.sweep import sweep_drift

    try:
        document = json.loads((out / "results.json").read_text(encoding="utf-8"))
        environment, rows = document["environment"], document["measurements"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    drift = sweep_drift(rows)
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


def write_timing(out: Path, *, backends: str, quiet: bool, on_step: Callable[[str], None] | None = None) -> None:
    """Time everything and write the host-specific files (results, timed layers, roofline, figures, picture)."""
    from mnprof.cli.options import measure_into
    from mnprof.files import atomic_write, atomic_write_text, dumps
    from mnprof.model.config import ModelConfig, default_grid
    from mnprof.timing.backends import Device
    from mnprof.timing.host import available_cores
    from mnprof.timing.layers import TimingSettings, layer_report, render_layers
    from mnprof.timing.peaks import measure_bandwidth
    from mnprof.timing.sweep import measure_gemm_peak
    from mnprof.views.render import Format

    step = on_step or (lambda _name: None)
    step("results.json")
    measure_into(out / "results.json", default_grid(), quiet, backends)
    provenance = timing_provenance(out)

    step("layers-1.0-224.md")
    threads = available_cores()
    layers = layer_report(ModelConfig(*LAYERS_CONFIG), TimingSettings(threads=threads))
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
    figures, provenance_lines, pareto = _figures(out, layers.frame, peak["gflops"], bandwidth["gb_per_s"], threads)
    atomic_write_text(
        out / "figures.html",
        _page(figures, provenance_lines),
    )
    step("pareto.png")
    from mnprof.cli.plot import static_image

    image = static_image(pareto.figure, "png")
    atomic_write(out / "pareto.png", lambda handle: handle.write(image))


def _figures(out: Path, layers: Any, peak: float, bandwidth: float, threads: int) -> tuple[list[Any], list[str], Any]:
    from mnprof.cli.plot import plot_inputs
    from mnprof.views.plots import build_figures, roofline_figure

    grid, latency, provenance = plot_inputs([out / "results.json"])
    figures = build_figures(grid, latency)
    label = f"1.0-224, eager, {threads} threads"
    figures.append(roofline_figure(layers, peak_gflops=peak, bandwidth_gbs=bandwidth, label=label))
    pareto = next(figure for figure in figures if figure.key == "pareto")
    return figures, provenance, pareto


def _page(figures: list[Any], provenance: list[str]) -> str:
    from mnprof.views.plots import page_html

    return page_html(figures, title="mnprof report: MobileNetV1 accuracy, MACs, latency and roofline",
                     provenance=provenance)  # fmt: skip
