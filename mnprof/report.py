"""``mnprof report``: regenerate everything in ``reports/`` from one command.

Count-only files are deterministic (the same code and versions give the same bytes, and a test
holds the committed ones to that); timing files say which host measured them and when.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from mnprof.check import ModelSpec, baseline_document, builtin_entries
from mnprof.counting.count import CountReport, count_many
from mnprof.errors import MnprofError
from mnprof.files import TABLE_SCHEMA_VERSION, atomic_write, atomic_write_all, atomic_write_text, dumps
from mnprof.host import available_cores
from mnprof.memory.measure import measure_memory
from mnprof.model.config import Family, ModelConfig, UserFamily, family_grid, grid
from mnprof.paper.mobilenetv2 import tfslim_v2_table
from mnprof.paper.models import paper_tables
from mnprof.timing.layers import LayerTimingSettings, time_layers
from mnprof.timing.peaks import measure_bandwidth, measure_gemm_peak
from mnprof.timing.plan import SweepOutcome, measure_into
from mnprof.timing.records import Backend, Device
from mnprof.timing.store import read_results, results_records
from mnprof.timing.sweep import sweep_drift
from mnprof.views import grid as tables
from mnprof.views.layers import LayerReport, layer_report, render_layers
from mnprof.views.memory import MemoryView, render_memory
from mnprof.views.paper import render_paper
from mnprof.views.plot_inputs import plot_inputs
from mnprof.views.plots import Figure, build_figures, page_html, roofline_figure, static_image
from mnprof.views.render import Format, families_title

__all__ = [
    "COUNT_FILES",
    "TIMING_FILES",
    "ReportFile",
    "count_files",
    "index_markdown",
    "layers_name",
    "refuse_shared_files",
    "render_counts",
    "timing_files",
    "write_counts",
    "write_timing",
]

LAYERS_CONFIG = (1.0, 224)
Families = Sequence[Family | UserFamily]
DEFAULT_FAMILIES: tuple[Family | UserFamily, ...] = (Family.MOBILENETV1,)


@dataclass(frozen=True)
class ReportFile:
    name: str
    what: str
    regenerate: str


def _model_args(families: Families) -> str:
    """The ``--model`` options that name ``families`` (none for the default, MobileNetV1 alone)."""
    if tuple(families) == DEFAULT_FAMILIES:
        return ""
    specs = (f"{family}={family.target}" if isinstance(family, UserFamily) else family.value for family in families)
    return "".join(f" --model {spec}" for spec in specs)


def _layers_config(family: Family | UserFamily) -> ModelConfig:
    return ModelConfig(*LAYERS_CONFIG, family=family)


def layers_name(family: Family | UserFamily, timed: bool) -> str:
    """``layers-1.0-224-counts.md`` (MobileNetV1), ``layers-v2-1.0-224.md``: one file per family, named by its
    configuration's id (``:`` of a factory name written ``_``, which file systems accept)."""
    return f"layers-{_layers_config(family).id.replace(':', '_')}{'' if timed else '-counts'}.md"


def _configs(families: Families) -> list[ModelConfig]:
    return [config for family in families for config in family_grid(family)]


def families_title_of(families: Families) -> str:
    return families_title(pd.DataFrame({"family": [str(family) for family in families]}))


def refuse_shared_files(families: Families) -> None:
    """Refuse two families whose layer tables would be one file (``a:b`` and ``a_b``: ``:`` is written ``_``)."""
    named: dict[str, Family | UserFamily] = {}
    for family in families:
        name = layers_name(family, timed=False)
        other = named.setdefault(name, family)
        if other != family:
            raise MnprofError(
                f"models {other} and {family} would share the layer table {name} (a ':' in a name is written '_' "
                "in file names); accepted: model names that differ in more than ':' and '_'"
            )


def _layers_files(families: Families, *, timed: bool) -> tuple[ReportFile, ...]:
    """One layer table per family, of its 1.0-224: counted, or timed."""
    refuse_shared_files(families)
    what = (
        "layer by layer, timed: share of MACs vs share of time, GFLOP/s"
        if timed
        else "layer by layer: shapes, params, MACs, bytes, intensity"
    )
    return tuple(
        ReportFile(
            layers_name(family, timed=timed),
            f"{_layers_config(family).id} {what}",
            f"mnprof layers{_model_args([family])} --alpha 1.0 --resolution 224"
            + ("" if timed else " --no-timing")
            + " --format markdown",
        )
        for family in families
    )


def count_files(families: Families = DEFAULT_FAMILIES) -> tuple[ReportFile, ...]:
    """The count-only files of a report on ``families`` (MobileNetV1 by default)."""
    models = _model_args(families)
    described = f"the {len(_configs(families))} configurations of {families_title_of(families)}"
    layers = _layers_files(families, timed=False)
    return (
        ReportFile("table.md", f"params and MACs of {described}, three counters, published values and deltas",
                   f"mnprof table{models} --no-timing --format markdown"),
        ReportFile("table.csv", "the same rows as CSV (exact integers)",
                   f"mnprof table{models} --no-timing --format csv"),
        ReportFile("table.json", f"the same rows as versioned JSON (schema_version {TABLE_SCHEMA_VERSION})",
                   f"mnprof table{models} --no-timing --format json"),
        ReportFile("paper.md", "every computable table of the paper (published, computed, delta) with findings",
                   "mnprof paper --format markdown"),
        ReportFile("paper-mobilenetv2.md", "TF-slim's 22 MobileNetV2 checkpoints (published, computed, delta) and "
                   "the conventions that reproduce them", "mnprof paper --model mobilenetv2 --format markdown"),
        *layers,
        ReportFile("baseline.json", "the regression baseline that mnprof check (and this repository's CI) compares "
                   "with", f"mnprof baseline{models} --out reports/baseline.json"),
    )  # fmt: skip


def timing_files(families: Families = DEFAULT_FAMILIES) -> tuple[ReportFile, ...]:
    """The host-specific files of a report on ``families``."""
    models = _model_args(families)
    layers = _layers_files(families, timed=True)
    return (
        ReportFile("results.json", "every latency measurement with its host provenance (mnprof.results, schema 4)",
                   f"mnprof table{models} --backend eager,fused --results reports/results.json"),
        *layers,
        ReportFile("figures.html", "the figures: accuracy vs MACs and params, latency vs MACs, Pareto front, "
                   "roofline", f"mnprof plot{models} --results reports/results.json (the roofline comes from "
                   "mnprof report)"),
        ReportFile("pareto.png", "the main figure as a picture (accuracy vs measured latency, Pareto front; "
                   "latency vs MACs where no family has published accuracy)",
                   f"mnprof plot{models} --results reports/results.json --out pareto.png"),
        ReportFile("memory.md", "the peak memory of one forward pass per configuration (eager and fused, batch 1 "
                   "and 8), measured from PyTorch's allocator beside the analytic figure, every byte's cause named",
                   f"mnprof memory{models} --backend eager,fused --format markdown --out reports/memory.md"),
        ReportFile("roofline.json", "the host's measured GEMM peak and copy bandwidth, and the timed layer points "
                   f"of {_layers_config(families[0]).id}", f"mnprof report{models}"),
    )  # fmt: skip


COUNT_FILES = count_files()
TIMING_FILES = timing_files()


def _counts(families: Families = DEFAULT_FAMILIES) -> dict[str, Callable[[], str]]:
    @cache
    def reports() -> list[CountReport]:  # counted once: the table and the baseline share them
        return count_many(_configs(families))

    @cache
    def frame() -> pd.DataFrame:
        return tables.grid_frame(reports())

    def table(fmt: Format) -> Callable[[], str]:
        return lambda: str(tables.render(frame(), tables.View.GRID, fmt))

    def baseline() -> str:  # what mnprof baseline --model ... writes: every family on the gate's default grid
        counted = {report.config: report for report in reports()}
        entries: dict[str, Any] = {}
        for family in families:
            configs = grid(family=family)
            counted.update((r.config, r) for r in count_many([c for c in configs if c not in counted]))
            model = ModelSpec(str(family), getattr(family, "target", str(family)))
            entries.update(builtin_entries([counted[config] for config in configs], model))
        return dumps(baseline_document(entries))

    files: dict[str, Callable[[], str]] = {
        "table.md": table(Format.MARKDOWN),
        "table.csv": table(Format.CSV),
        "table.json": table(Format.JSON),
        "paper.md": lambda: str(render_paper(paper_tables(), Format.MARKDOWN)),
        "paper-mobilenetv2.md": lambda: str(render_paper([tfslim_v2_table()], Format.MARKDOWN)),
    }
    for family in families:
        config = _layers_config(family)
        files[layers_name(family, timed=False)] = lambda config=config: str(
            render_layers(layer_report(config, None), Format.MARKDOWN)
        )
    files["baseline.json"] = baseline
    return files


def render_counts(families: Families = DEFAULT_FAMILIES) -> dict[str, str]:
    """Every count-only file of ``families``, by name, computed before any is written: a model that fails
    leaves the report directory as it was."""
    return {name: make() for name, make in _counts(families).items()}


def write_counts(
    out: Path,
    on_file: Callable[[str], None] | None = None,
    families: Families = DEFAULT_FAMILIES,
    texts: dict[str, str] | None = None,
) -> list[str]:
    """Write the count-only files of ``families`` (``texts`` if already rendered) into ``out``, atomically each;
    returns their names."""
    texts = texts if texts is not None else render_counts(families)
    atomic_write_all({out / name: text for name, text in texts.items()})  # all or none
    for name in texts:
        if on_file is not None:
            on_file(name)
    return list(texts)


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


def index_markdown(out: Path, families: Families = DEFAULT_FAMILIES) -> str:
    """``reports/README.md``: what each file is, how to regenerate it, and where the timing parts come from."""
    count_list, timing_list = count_files(families), timing_files(families)
    lines = [
        "# mnprof reports",
        "",
        f"Generated by `mnprof report{_model_args(families)}`; do not edit by hand. Regenerate everything with "
        f"`mnprof report{_model_args(families)}`, or only the",
        f"count-only files (no timing, deterministic) with `mnprof report{_model_args(families)} --no-timing`.",
        "",
        "## Counts (deterministic: a test regenerates them and requires identical bytes)",
        "",
        "| file | what | regenerate one with |",
        "|---|---|---|",
    ]
    lines += [f"| [{f.name}]({f.name}) | {f.what} | `{f.regenerate}` |" for f in count_list if (out / f.name).exists()]
    present = [f for f in timing_list if (out / f.name).exists()]
    lines += ["", "## Timings (host-specific)", ""]
    provenance = timing_provenance(out)
    if present and provenance:
        lines += [
            f"Measured on {provenance}. Latencies are the 5th percentile of the timed calls, with the median "
            "and its spread beside; on another host they differ.",
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
    families: Families = DEFAULT_FAMILIES,
) -> None:
    """Time everything and write the host-specific files (results, timed layers, measured memory, roofline,
    figures, picture).

    ``measure(path, configs)`` times the grid into the results file ``path``; by default
    :func:`mnprof.timing.plan.measure_into` with ``backends`` (the command line passes one with a progress
    bar that also says what the sweep reported). Each family's 1.0-224 is timed layer by layer; the roofline
    shows the first family's.
    """
    step = on_step or (lambda _name: None)
    step("results.json")
    configs = _configs(families)
    (measure or (lambda path, configs: measure_into(path, configs, backends)))(out / "results.json", configs)
    provenance = timing_provenance(out)

    threads = available_cores()
    timed_layers = []
    for family in families:
        name = layers_name(family, timed=True)
        step(name)
        config = _layers_config(family)
        layers = layer_report(config, time_layers(config, LayerTimingSettings(threads=threads)))
        atomic_write_text(
            out / name, f"_Timed on {provenance}; {threads} threads._\n\n{render_layers(layers, Format.MARKDOWN)}"
        )
        timed_layers.append(layers)
    layers = timed_layers[0]

    step("memory.md")
    measured = [
        measure_memory(config, batch, backend)
        for config in configs
        for backend in (Backend.EAGER, Backend.FUSED)
        for batch in (1, 8)
    ]
    memory = render_memory(measured, MemoryView.PEAKS, Format.MARKDOWN, width=None)
    atomic_write_text(out / "memory.md", f"_Measured on {provenance}._\n\n{memory}")

    step("roofline.json")
    peak = measure_gemm_peak(Device.CPU, threads)
    bandwidth = measure_bandwidth(threads)
    columns = ["layer", "kind", "arithmetic_intensity_flops_per_byte", "gflops_per_s", "time_ms", "macs_share",
               "time_share"]  # fmt: skip
    points = layers.frame[columns].astype(object).where(layers.frame[columns].notna(), None)
    roofline = {"threads": threads, "gemm_peak": peak.to_row(), "bandwidth": bandwidth, "config": layers.frame["id"][0],
                "layers": points.to_dict(orient="records")}  # fmt: skip
    atomic_write_text(out / "roofline.json", dumps(roofline))

    step("figures.html")
    figures, provenance_lines = _figures(out, layers, peak.gflops, bandwidth["gb_per_s"], threads, configs)
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
