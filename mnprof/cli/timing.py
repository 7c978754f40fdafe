"""Timing options shared by commands (``mnprof table``): parse them once, measure or read, report noise.

The options are collected into one :class:`TimingRequest`; :func:`plan` validates everything (backends,
optional runtimes, batch sizes, threads, device, the results file) before any work, so bad input
costs nothing and never touches a results file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mnprof.cli.options import error_line, progress
from mnprof.errors import MnprofError

__all__ = ["TimingPlan", "TimingRequest", "measure", "plan", "timing_options"]

BACKEND_HELP = (
    "Runtimes to time, comma-separated: eager (default), channels_last, fused (BatchNorm folded into the "
    "convolutions, channels_last), compile (torch.compile; opt-in: compiling takes 5 to 40 s per "
    "configuration and batch size on a 2-core machine, before any timing), onnxruntime (needs "
    "pip install 'mnprof[onnx]'). Each runtime's output is checked against eager PyTorch before it may post a time."
)


@dataclass(frozen=True)
class TimingRequest:
    """The timing options as given on the command line (validated by :func:`plan`)."""

    enabled: bool
    backends: str
    batch_sizes: str
    threads: int | None
    device: str
    target_ci_pct: float
    budget_s: float
    results: Path
    resume: bool
    from_results: tuple[Path, ...]


@dataclass(frozen=True)
class TimingPlan:
    """What to do: read ``documents`` (``--from-results``) or measure with ``settings`` into ``store``."""

    settings: Any = None  # mnprof.timing.sweep.TimingSettings
    store: Any = None  # mnprof.timing.store.ResultsStore
    documents: tuple[dict[str, Any], ...] = ()


def timing_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the timing options to a command; they reach it as one ``timing: TimingRequest`` argument."""

    @functools.wraps(function)
    def wrapper(
        *args: Any,
        no_timing: bool,
        backends: str,
        batch_sizes: str,
        threads: int | None,
        device: str,
        target_ci_pct: float,
        budget_s: float,
        results: Path,
        resume: bool,
        from_results: tuple[Path, ...],
        **kwargs: Any,
    ) -> Any:
        request = TimingRequest(
            enabled=not no_timing,
            backends=backends,
            batch_sizes=batch_sizes,
            threads=threads,
            device=device,
            target_ci_pct=target_ci_pct,
            budget_s=budget_s,
            results=results,
            resume=resume,
            from_results=from_results,
        )
        return function(*args, timing=request, **kwargs)

    options = [
        click.option(
            "--no-timing", is_flag=True, help="Counts only: measure nothing (what CI uses; a few seconds, not ~60)."
        ),
        click.option("--backend", "backends", default="eager", show_default=True, metavar="LIST", help=BACKEND_HELP),
        click.option(
            "--batch-size",
            "batch_sizes",
            default="1",
            show_default=True,
            metavar="LIST",
            help="Comma-separated batch sizes, integers >= 1: latency is per batch, throughput in images/s.",
        ),
        click.option(
            "--threads",
            type=int,
            default=None,
            help="Intra-op threads for torch and onnxruntime, >= 1 (recorded). "
            "[default: the cores this process may use]",
        ),
        click.option(
            "--device",
            type=click.Choice(["cpu", "cuda"]),
            default="cpu",
            show_default=True,
            help="cuda times on the GPU with CUDA events (needs one; never required).",
        ),
        click.option(
            "--target-ci",
            "target_ci_pct",
            type=float,
            default=2.0,
            show_default=True,
            metavar="PCT",
            help="Stop timing a configuration once the 95% confidence interval of its median is within this "
            "percentage of the median...",
        ),
        click.option(
            "--budget",
            "budget_s",
            type=float,
            default=2.0,
            show_default=True,
            metavar="SECONDS",
            help="...or once this many seconds of timing are spent on it (then it is flagged noisy).",
        ),
        click.option(
            "--results",
            type=click.Path(dir_okay=False, path_type=Path),
            default=Path("mnprof-results.json"),
            show_default=True,
            help="Results file (versioned JSON) that keeps every measurement with its environment, written "
            "atomically after each one; a new sweep replaces it.",
        ),
        click.option(
            "--resume",
            is_flag=True,
            help="Keep the measurements already in --results (same host) and measure only the rest.",
        ),
        click.option(
            "--from-results",
            type=click.Path(dir_okay=False, path_type=Path),
            multiple=True,
            metavar="FILE",
            help="Show timings from results files (repeatable: several hosts side by side) instead of measuring.",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def plan(request: TimingRequest) -> TimingPlan | None:
    """Validate the request before any work: ``None`` for ``--no-timing``; bad input raises :class:`MnprofError`."""
    if not request.enabled:
        return None
    from mnprof.timing.store import read_results

    if request.from_results:
        return TimingPlan(documents=tuple(read_results(path) for path in request.from_results))
    from mnprof.timing.backends import Device, parse_backends
    from mnprof.timing.engine import StopRule
    from mnprof.timing.host import available_cores, host_environment
    from mnprof.timing.store import ResultsStore
    from mnprof.timing.sweep import TimingSettings, parse_batch_sizes

    if not 0 < request.target_ci_pct < 100:
        raise MnprofError(f"--target-ci {request.target_ci_pct:g} is out of range; accepted: a percentage in (0, 100)")
    if not request.budget_s > 0:
        raise MnprofError(f"--budget {request.budget_s:g} is invalid; accepted: seconds > 0")
    threads = available_cores() if request.threads is None else request.threads
    if threads < 1:
        raise MnprofError(f"--threads {threads} is invalid; accepted: an integer >= 1")
    settings = TimingSettings(
        backends=parse_backends(request.backends),
        batch_sizes=parse_batch_sizes(request.batch_sizes),
        threads=threads,
        device=Device(request.device),
        rule=StopRule(target_rel_ci=request.target_ci_pct / 100, budget_s=request.budget_s),
    )
    store = ResultsStore.open(request.results, host_environment(), resume=request.resume)
    return TimingPlan(settings=settings, store=store)


# Above this spread of the host's speed during one sweep (see mnprof.timing.engine.host_drift), a warning says so.
DRIFT_WARNING = 0.10


def warn(message: str) -> None:
    click.echo(f"mnprof: warning: {' '.join(message.split())}", err=True)


def report_quality(rows: Sequence[dict[str, Any]], cores: int | None = None) -> None:
    """Warn on stderr about every measurement that stayed noisy or could not post a time, and about a busy host."""
    loads = [row["load_avg_1min"] for row in rows if row.get("load_avg_1min") is not None]
    if cores and loads and max(loads) > cores + 0.5:
        warn(
            f"the host was busy while timing (load average up to {max(loads):.1f} on {cores} cores, this sweep's "
            "own threads included): other processes competed for the CPU, so timings may be inflated and noisy"
        )
    noisy = []
    for row in rows:
        label = f"{row['id']} {row['backend']} batch {row['batch_size']}"
        if row.get("error"):
            warn(f"{label}: no time: {row['error']}")
        elif row.get("contended"):
            warn(
                f"{label} never had the CPU to itself (best CPU share {row.get('cpu_share_best') or 0:.2f} of "
                f"{row['threads']} threads): other processes ran on its cores, so its latency is inflated"
            )
        elif row.get("noisy"):
            half = row.get("ci_halfwidth_pct")
            noisy.append(f"{label} ±{half:.1f}%" if half is not None else f"{label} (too few turns for a CI)")
    if noisy:
        target = rows[0].get("target_ci_pct")
        warn(
            f"{len(noisy)} of {len(rows)} measurements stayed noisy (95% CI of the median wider than ±{target:g}% "
            f"when the budget ran out; marked ! in the table): {', '.join(noisy)}. "
            "Rerun on a quieter machine, or raise --budget or --target-ci"
        )


def report_drift(rows: Sequence[dict[str, Any]]) -> float | None:
    """Warn when the whole host's speed moved during the sweep; returns the spread (``None``: too few turns)."""
    from mnprof.timing.sweep import sweep_drift

    drift = sweep_drift(rows)
    if len(drift.factors) < 2:
        return None
    if drift.spread > DRIFT_WARNING:
        warn(
            f"the host's speed changed by {drift.spread:.0%} during this sweep: every configuration slowed down "
            f"or sped up together (median over configurations, in windows of {drift.window_s:g} s), so the cause "
            "was outside them, such as other work on the machine's shared caches and memory. The medians mix "
            "both speeds and another run may differ by as much: compare configurations within one run"
        )
    return drift.spread


def measure(timing: TimingPlan, configs: Sequence[Any], quiet: bool) -> list[dict[str, Any]]:
    """The timing rows for ``configs``: read from ``--from-results`` files, or measured now (with progress)."""
    from mnprof.timing.store import RAW_SAMPLE_KEYS, results_rows

    if timing.documents:
        return results_rows(timing.documents)
    from mnprof.timing.sweep import run_sweep

    store = timing.store
    try:
        with progress(quiet) as bar:
            task = bar.add_task("timing", total=1.0, current="")

            def advance(phase: str, label: str, done: float, total: float) -> None:
                bar.update(task, description=phase, current=label, completed=done, total=max(total, 1e-9))

            rows = run_sweep(configs, timing.settings, store, on_progress=advance)
    except KeyboardInterrupt:
        kept = len(store.done())
        error_line(f"interrupted: {kept} measurements kept in {store.path}; add --resume to finish the rest")
        raise
    report_quality(rows, store.environment.get("logical_cores"))
    drift = report_drift(rows)
    if not quiet:
        varied = f"; the host's speed varied by {drift:.0%} during the sweep" if drift is not None else ""
        click.echo(f"mnprof: {len(rows)} measurements kept in {store.path} (schema version 1){varied}", err=True)
    return [{key: value for key, value in row.items() if key not in RAW_SAMPLE_KEYS} for row in rows]
