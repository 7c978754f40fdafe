"""The host-specific files of a report: the results file (every configuration timed), each family's 1.0-224 timed
layer by layer, the measured memory, the roofline, then the figures (:mod:`mnprof.reports.figures`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mnprof.files.documents import dumps
from mnprof.files.write import atomic_write_text
from mnprof.host import available_cores
from mnprof.memory.measure import measure_memory
from mnprof.model.config import ModelConfig
from mnprof.reports.catalogue import DEFAULT_FAMILIES, Families, configs_of, layers_config, layers_name
from mnprof.reports.figures import write_figures
from mnprof.reports.index import timing_provenance
from mnprof.timing.layers import LayerTimingSettings, time_layers
from mnprof.timing.peaks import measure_bandwidth, measure_gemm_peak
from mnprof.timing.plan import SweepOutcome, measure_into
from mnprof.timing.records import Backend, Device, GemmPeak
from mnprof.views.layers import LayerReport, layer_report, render_layers
from mnprof.views.memory import MemoryView, render_memory
from mnprof.views.render import Format

__all__ = ["Measure", "write_timing"]

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
    configs = configs_of(families)
    (measure or (lambda path, configs: measure_into(path, configs, backends)))(out / "results.json", configs)
    provenance = timing_provenance(out)

    threads = available_cores()
    layers = _write_timed_layers(out, families, provenance, threads, step)
    step("memory.md")
    _write_memory(out, configs, provenance)
    step("roofline.json")
    peak, bandwidth = _write_roofline(out, layers, threads)
    write_figures(out, layers, peak.gflops, bandwidth["gb_per_s"], threads, configs, families, step)


def _write_timed_layers(
    out: Path, families: Families, provenance: str | None, threads: int, step: Callable[[str], None]
) -> LayerReport:
    """Each family's 1.0-224 timed layer by layer into its layer table; returns the first family's."""
    timed_layers = []
    for family in families:
        name = layers_name(family, timed=True)
        step(name)
        config = layers_config(family)
        layers = layer_report(config, time_layers(config, LayerTimingSettings(threads=threads)))
        atomic_write_text(
            out / name, f"_Timed on {provenance}; {threads} threads._\n\n{render_layers(layers, Format.MARKDOWN)}"
        )
        timed_layers.append(layers)
    return timed_layers[0]


def _write_memory(out: Path, configs: Sequence[ModelConfig], provenance: str | None) -> None:
    """``memory.md``: the measured peak of every configuration, eager and fused, batch 1 and 8."""
    measured = [
        measure_memory(config, batch, backend)
        for config in configs
        for backend in (Backend.EAGER, Backend.FUSED)
        for batch in (1, 8)
    ]
    memory = render_memory(measured, MemoryView.PEAKS, Format.MARKDOWN, width=None)
    atomic_write_text(out / "memory.md", f"_Measured on {provenance}._\n\n{memory}")


def _write_roofline(out: Path, layers: LayerReport, threads: int) -> tuple[GemmPeak, dict[str, Any]]:
    """``roofline.json``: the host's GEMM peak and copy bandwidth, measured, and ``layers``' timed points; returns
    the peak and the bandwidth (the roofline figure draws them)."""
    peak = measure_gemm_peak(Device.CPU, threads)
    bandwidth = measure_bandwidth(threads)
    columns = ["layer", "kind", "arithmetic_intensity_flops_per_byte", "gflops_per_s", "time_ms", "macs_share",
               "time_share"]  # fmt: skip
    points = layers.frame[columns].astype(object).where(layers.frame[columns].notna(), None)
    roofline = {"threads": threads, "gemm_peak": peak.to_row(), "bandwidth": bandwidth, "config": layers.frame["id"][0],
                "layers": points.to_dict(orient="records")}  # fmt: skip
    atomic_write_text(out / "roofline.json", dumps(roofline))
    return peak, bandwidth
