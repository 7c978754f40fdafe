"""What the figures are drawn from: results files read as records, counted configurations, series labels,
and the provenance lines printed above the figures."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mnprof.counting.count import CountReport
from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig, default_grid
from mnprof.timing.records import Device, Statistic, TimingRecord
from mnprof.timing.store import read_results, refuse_copies, refuse_other_models, results_records
from mnprof.views.grid import grid_frame
from mnprof.views.grid_timings import TIMING_SERIES, add_relative
from mnprof.views.render import FAMILY_NAMES

__all__ = ["PlotInputs", "plot_inputs", "provenance_lines", "series_label"]

ACCURACY_PROVENANCE = (
    "Accuracy is published data (TF-slim's mobilenet_v1.md and the paper), never measured by mnprof; "
    "MACs and params are mnprof's exact counts."
)


def series_label(record: TimingRecord, documents: int, families: int = 1) -> str:
    """How a series is told apart in the legend: runtime and batch, plus host and threads when overlaying, and
    the family first when several are plotted (each family its own series)."""
    key = record.key
    where = "GPU" if key.device is Device.CUDA else f"{key.threads} threads"
    label = f"{key.backend.value}, batch {key.batch_size}, {where}"
    if documents > 1:
        label = f"{record.processor} ({(record.provenance.host or '')[:6]}): {label}"
    if families > 1:
        label = f"{FAMILY_NAMES.get(key.config.family.value, key.config.family.value)}: {label}"
    return label


def provenance_lines(documents: Sequence[dict[str, Any]], paths: Sequence[Path]) -> list[str]:
    """One line per results file (where, when, what was measured), then where the accuracy comes from."""
    lines = []
    for path, document in zip(paths, documents, strict=True):
        for name, env, timed in _measured_where(path, document):
            lines.append(_provenance_line(name, env, timed))
    lines.append(ACCURACY_PROVENANCE)
    return lines


def _measured_where(path: Path, document: dict[str, Any]) -> list[tuple[str, dict[str, Any], list[TimingRecord]]]:
    """(name, environment, timed records) of a results file, or of each file a merged one joined (``sources``: a
    record is its run's source, or without a run id its host's)."""
    timed = [record for record in results_records([document]) if not record.error]
    if "sources" not in document:
        return [(path.name, document["environment"], timed)]

    def of(record: TimingRecord, source: dict[str, Any]) -> bool:
        run = record.provenance.run_id
        return (
            run in source["runs"]
            if run is not None
            else record.provenance.host == source["environment"].get("host_fingerprint")
        )

    return [
        (
            f"{Path(source['file']).name} (in {path.name})",
            source["environment"],
            [record for record in timed if of(record, source)],
        )
        for source in document["sources"]
    ]


def _provenance_line(name: str, env: dict[str, Any], timed: list[TimingRecord]) -> str:
    """Where, when and what was measured, in one line."""
    backends = sorted({record.key.backend.value for record in timed})
    threads = sorted({record.key.threads for record in timed})
    on_gpu = any(record.key.device is Device.CUDA for record in timed)
    gpu = f" and {env['gpu']}" if env.get("gpu") and on_gpu else ""
    return (
        f"{name}: measured {env.get('date', '?')} on {env.get('cpu_model') or 'an unidentified CPU'}{gpu} "
        f"({env.get('available_cores', '?')} cores available, host fingerprint {env.get('host_fingerprint')}), "
        f"threads {', '.join(map(str, threads)) or '-'}, runtimes {', '.join(backends) or '-'}, "
        f"torch {env.get('torch')}, mnprof {env.get('mnprof')}; {len(timed)} measurements."
    )


@dataclass(frozen=True)
class PlotInputs:
    """The grid (counts and published values), the timed rows with a ``series`` label (None when nothing was
    timed), the provenance lines, and the records read."""

    grid: pd.DataFrame
    latency: pd.DataFrame | None
    provenance: list[str]
    records: tuple[TimingRecord, ...] = ()


def plot_inputs(
    paths: Sequence[Path],
    count: Callable[[Sequence[ModelConfig]], list[CountReport]],
    grid_configs: Sequence[ModelConfig] = (),
    *,
    statistic: Statistic = Statistic.P5,
    reference: str | None = None,
) -> PlotInputs:
    """Read results files and count with ``count``: the grid holds ``grid_configs`` (the paper's 16 when
    empty) and every configuration measured in the files. The timed rows' ``latency_ms`` is ``statistic``;
    ``latency_relative`` divides it by ``reference``'s (see :func:`mnprof.views.grid_timings.add_relative`)."""
    documents = [read_results(path) for path in paths]
    refuse_copies(paths, documents)
    records = results_records(documents)
    families = len({record.config.family for record in records})
    timed = [
        dict(record.to_row(with_samples=False), series=series_label(record, len(documents), families))
        for record in records
        if record.latency is not None and record.latency.p5
    ]
    # A user family read back from a file is known by name only: the --model that names it says how to build it.
    given = {str(config.family): config.family for config in grid_configs}
    measured = [
        dataclasses.replace(record.config, family=given.get(str(record.config.family), record.config.family))
        for record in records
    ]
    ids = list(dict.fromkeys(config.id for config in measured))
    if reference is not None and reference not in ids:
        raise MnprofError(
            f"--reference {reference!r} was not measured in {', '.join(map(str, paths))}; accepted: one of "
            + (", ".join(ids) or "the configurations measured there")
        )
    configs = list({config.id: config for config in [*(grid_configs or default_grid()), *measured]}.values())
    reports = count(configs)
    macs = {report.config.id: report.analytic.macs for report in reports}
    for path, document in zip(paths, documents, strict=True):  # each file's timings are of the models counted
        refuse_other_models(results_records([document]), macs, str(path))
    grid = grid_frame(reports)
    latency = None
    if timed:
        latency = pd.DataFrame(timed)
        latency["statistic"] = statistic.value
        latency["latency_ms"] = latency[f"latency_ms_{statistic.value}"]
        latency = latency[latency["latency_ms"].notna()].copy()  # rows without this statistic are not drawn
    if latency is not None and len(latency):
        latency["throughput_ips"] = latency["batch_size"] / (latency["latency_ms"] / 1e3)  # follows the statistic
        latency = add_relative(latency, ["backend", *TIMING_SERIES], reference)
    else:
        latency = None
    return PlotInputs(grid, latency, provenance_lines(documents, paths), tuple(records))
