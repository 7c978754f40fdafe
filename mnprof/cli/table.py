"""``mnprof table``: params and MACs of every configuration, three counters, published values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pandas as pd

from mnprof import api
from mnprof.check.shard import Shard
from mnprof.check.table_junit import render_table_junit
from mnprof.cli.options import (
    FORMAT_HELP,
    Command,
    configs_from,
    grid_options,
    output_options,
    pass_option,
    resolve_output,
    shard_option,
)
from mnprof.cli.output import emit, output_width, refuse_overwriting
from mnprof.cli.timing_options import timing_options
from mnprof.cli.work import (
    count_instructions_with_progress,
    count_with_progress,
    measure_with_progress,
    report_runs_apart,
)
from mnprof.errors import MnprofError
from mnprof.model.config import Family, ModelConfig
from mnprof.timing import instructions as callgrind
from mnprof.timing import plan as timing
from mnprof.timing.store import refuse_other_models
from mnprof.views import grid as tables
from mnprof.views.benchmarks import BENCHMARK_FORMATS, render_benchmarks
from mnprof.views.render import Format

SERVICE_FORMATS = (*BENCHMARK_FORMATS, "junit")  # for a service to read: the grid and counts views only

# Each view's frame of counts alone (the grid view's timed frame is made with its records).
COUNT_FRAMES = {
    tables.View.GRID: tables.grid_frame,
    tables.View.COUNTS: tables.grid_frame,
    tables.View.PAPER: tables.paper_frame,
    tables.View.SEED: tables.seed_frame,
    tables.View.RECONCILE: tables.reconcile_frame,
}


@dataclass(frozen=True)
class _Options:
    """mnprof table's options, as click passes them (the timing options as one request)."""

    models: tuple[str, ...]
    alphas: str | None
    resolutions: str | None
    num_classes: int
    variant: str
    rounding: str
    view: str
    unit: str
    wide: bool
    verbose: bool
    fmt: str | None
    out: Path | None
    quiet: bool
    instructions: bool
    shard: Shard | None
    step: str
    timing_request: timing.TimingRequest

    @property
    def chosen(self) -> tables.View:
        return tables.View(self.view)

    @property
    def published(self) -> bool:
        """The paper's or the seed note's tables: one layout of MobileNetV1's inference counts."""
        return self.chosen in (tables.View.PAPER, tables.View.SEED)

    @property
    def training(self) -> bool:
        return self.step == "training"


def _render_for_service(frame: pd.DataFrame, fmt: str, unit: str, view: str) -> str:
    """``frame`` as a benchmark-tracking service (:mod:`mnprof.views.benchmarks`) or a CI's test report
    (:mod:`mnprof.check.table_junit`) reads it."""
    if fmt == "junit":
        return render_table_junit(frame, {"view": view, "unit": unit})
    return render_benchmarks(frame, fmt, flops=unit == "flops")


@click.command(cls=Command)
@grid_options
@click.option(
    "--view",
    type=click.Choice([view.value for view in tables.View]),
    default="grid",
    show_default=True,
    help="grid: every configuration's params, MACs, published top-1 and (timed) latency and throughput, fitted "
    "to the terminal (--wide, and every file format, add the three counters and every published value with "
    "its delta); counts: the three counters side by side; paper: the paper's Tables 6 and 7 as it lays them "
    "out; seed: the seed note's table, what is reproduced and how; reconcile: fvcore and thop operator by "
    "operator against the analytic count.",
)
@click.option(
    "--wide",
    is_flag=True,
    help="On a terminal, every column of the grid view (the three counters, every published value and delta, "
    "GFLOP/s), however wide; files always have them.",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="After a sweep, list every noisy, contended or failed measurement, not only their count and the worst.",
)
@click.option(
    "--unit",
    type=click.Choice(["macs", "flops"]),
    default="macs",
    show_default=True,
    help="macs: multiply-accumulates (the paper's Mult-Adds); flops: 2 x MACs, said so in the headers.",
)
@output_options(
    format_help=FORMAT_HELP.replace(
        "Output format.",
        "Output format: table, markdown, csv, json; benchmark-action "
        "(github-action-benchmark's customSmallerIsBetter JSON) or bencher (Bencher Metric Format JSON): params, MACs "
        "and, where timed, latency of each configuration, for a benchmark-tracking service (grid and counts views); "
        "junit (JUnit XML): per configuration, a test case per counter that fails where its MACs differ from the "
        "analytic count by more than its conventions explain, and one per timing that fails where it posted no time.",
    ),
    extra_formats=(*BENCHMARK_FORMATS, "junit"),
)
@timing_options
@click.option(
    "--instructions",
    is_flag=True,
    help="Also count each configuration's instructions per forward pass of one image under Valgrind's Callgrind "
    "(two Valgrind processes share the grid; minutes, not seconds), and instructions per MAC: a cost that does "
    "not move from run to run. With --no-timing, counts and instructions only. Needs Valgrind and --device cpu.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@shard_option("Only shard I of N of the configurations (sorted by id, dealt round-robin), for a CI matrix.")
@pass_option(
    "forward: one inference; training: also one training step of one image (forward and backward), analytic and "
    "by torch's FlopCounterMode, reconciled operator by operator (fvcore and thop count the forward only). "
    "Counts only: with --no-timing, or --view counts or reconcile."
)
def table(**given: Any) -> None:
    """Params and MACs of every configuration, counted three ways, beside the published numbers, and
    (grid view) each configuration's latency, throughput and achieved GFLOP/s timed on this host.

    On a terminal the grid view fits its width: cells never wrap; columns that do not fit are left out
    (median (IQR), speed-up, delta, throughput, top-1, params, rel, in that order) and named under the
    table. --wide shows
    every column; Markdown, CSV and JSON always carry every column.

    Timing: warm-up until timings settle, then round-robin passes over the grid. The headline latency
    (ms) is the 5th percentile of each configuration's calls: one call in twenty was at least this fast,
    the latency this host reaches when nothing else interferes. A shared machine's speed moves within a
    minute and other processes only ever slow a call down, so the low end is what reproduces
    from run to run. rel divides by the geometric mean of the headlines timed together (or
    --reference's): the figure that transfers to another run or host. Timing stops when every rel's 95%
    CI (each pass a cluster of calls) is within --target-ci or --budget runs out (then the row is noisy,
    marked !); for the default grid, typically under a minute.
    median (IQR) describes every call as it came; --statistic adjusted shows the typical call at the
    run's median host speed. Every call is kept in --results; --no-timing gives
    counts only. Other views do not time.

    \b
    Examples:
      mnprof table
      mnprof table --alpha 1.0,0.6 --resolution 224,96
      mnprof table --view paper --format markdown --out tables.md
      mnprof table --format json --out table.json
      mnprof table --no-timing
      mnprof table --no-timing --wide
      mnprof table --no-timing --instructions
      mnprof table --no-timing --pass training
      mnprof table --view counts
      mnprof table --model mobilenetv1 --model mobilenetv2 --no-timing
      mnprof table --backend eager,fused,onnxruntime --batch-size 1,8 --threads 2
      mnprof table --backend eager,onnxruntime,onnxruntime_int8 --alpha 1.0 --resolution 224
      mnprof table --from-results host-a.json --from-results host-b.json
      mnprof table --from-results results.json --statistic median --reference 0.5-160
    """
    options = _Options(**given)
    configs, fmt = _configs(options)
    timing_plan = _timing_plan(options, configs)  # every option validated before any work
    every_counter = options.chosen in (tables.View.COUNTS, tables.View.RECONCILE)
    reports = count_with_progress(configs, options.quiet, every_counter=every_counter, training=options.training)
    counted = count_instructions_with_progress(configs, options.quiet) if options.instructions else []
    if timing_plan is None:
        _emit(options, fmt, tables.with_instructions(COUNT_FRAMES[options.chosen](reports), counted))
        return
    records = measure_with_progress(timing_plan, configs, options.quiet, options.verbose).records
    macs = {report.config.id: report.analytic.macs for report in reports}
    request = options.timing_request
    refuse_other_models(records, macs, ", ".join(map(str, request.from_results)) or str(request.results))
    frame = tables.grid_frame(reports, records, statistic=timing_plan.statistic, reference=timing_plan.reference)
    _emit(options, fmt, tables.with_instructions(frame, counted))
    report_runs_apart(records, options.verbose)  # after the output: a failing command's one line stays alone


def _configs(options: _Options) -> tuple[list[ModelConfig], str]:
    """The configurations the options choose (the view's own for paper and seed, the --shard part through the
    API) and the output format; what cannot be shown is refused, in the order the options are read."""
    configs = configs_from(
        options.alphas, options.resolutions, options.num_classes, options.variant, options.rounding, options.models
    )
    fmt = resolve_output(options.fmt, options.out)
    if options.out is not None:  # the table would replace the measurements it was made from
        kept = [options.timing_request.results, *options.timing_request.from_results]
        refuse_overwriting(options.out, {path: "the results file the measurements are kept in" for path in kept})
    view = options.view
    if options.published and any(c.family is not Family.MOBILENETV1 for c in configs):
        raise MnprofError(
            f"--view {view} shows MobileNetV1's published tables; accepted with --model mobilenetv2 or mobilenetv3: "
            "--view grid, counts or reconcile (their published numbers: mnprof paper --model NAME)"
        )
    if options.chosen is tables.View.PAPER:
        configs = tables.paper_configs()
    elif options.chosen is tables.View.SEED:
        configs = tables.seed_configs()
    if fmt in SERVICE_FORMATS and options.chosen not in (tables.View.GRID, tables.View.COUNTS):
        raise MnprofError(
            f"--format {fmt} reports the grid's counts and latency; accepted with it: --view grid or counts"
        )
    if options.shard is not None:  # one part of the configurations, the same part whatever the machine or order
        if options.published:
            raise MnprofError(f"--shard with --view {view}: the paper's tables are one layout; accepted: --view grid, "
                              "counts or reconcile")  # fmt: skip
        configs = api.shard_configs(configs, options.shard)
    return configs, fmt


def _timing_plan(options: _Options, configs: list[ModelConfig]) -> timing.TimingPlan | None:
    """The timing plan (``None``: counts only), validated with what cannot go with it, before any work."""
    view, request = options.view, options.timing_request
    if options.training and options.published:
        raise MnprofError(f"--pass training with --view {view}: the published tables are inference counts; accepted: "
                          "--view grid, counts or reconcile")  # fmt: skip
    if options.training and options.chosen is tables.View.GRID and (request.enabled or request.from_results):
        raise MnprofError(
            "--pass training counts a training step; timing one (and its runtimes) is not built yet; accepted: "
            "--pass training with --no-timing, or --view counts or reconcile"
        )
    if options.training and options.instructions:
        raise MnprofError("--instructions counts forward passes; accepted: --instructions with --pass forward")
    timing_plan = timing.plan(request) if options.chosen is tables.View.GRID else None
    if timing_plan is not None:
        timing.check_reference(timing_plan.reference, [config.id for config in configs])
    if options.instructions:  # refused before any work: another view, a GPU, no Valgrind
        if options.chosen is not tables.View.GRID:
            raise MnprofError(
                f"--instructions adds columns to the grid view; accepted with it: --view grid, not {view}"
            )
        callgrind.check_available(request.device)
    return timing_plan


def _emit(options: _Options, fmt: str, frame: pd.DataFrame) -> None:
    """The table printed or written: for a service to read, or as a view renders it."""
    if fmt in SERVICE_FORMATS:
        emit(_render_for_service(frame, fmt, options.unit, options.view), options.out)
        return
    unit, width = tables.Unit(options.unit), output_width(options.out)
    emit(tables.render(frame, options.chosen, Format(fmt), unit, wide=options.wide, width=width), options.out)
