"""The timing options, declared once in four groups (what to time, when to stop, what to show, where results go)
and gathered into one :class:`~mnprof.timing.plan.TimingRequest`, which :func:`mnprof.timing.plan.plan` validates
before any work."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mnprof.cli.options import reference_option, statistic_option
from mnprof.cli.output import OutputPath, PlainFloat, PlainInt
from mnprof.runtimes.registry import REGISTRY, listing
from mnprof.timing.engine import MAX_BUDGET_S, MIN_TARGET_CI_PCT, StopRule
from mnprof.timing.plan import TimingRequest

__all__ = ["BACKEND_HELP", "timing_options"]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _backend_help() -> str:
    """``--backend``'s help, from the registry: every runtime with its description, and which are checked by
    agreement."""
    runtimes = ", ".join(
        f"{backend.value} ({info.description}"
        + (f"; needs pip install 'mnprof[{info.extra}]'" if info.extra else "")
        + ")"
        for backend, info in REGISTRY.items()
    )
    lossy = listing([backend for backend, info in REGISTRY.items() if info.lossy], " and ")
    return (
        f"Runtimes to time, comma-separated: {runtimes}. Each runtime's output is checked against eager PyTorch "
        f"before it may post a time: equal within 1e-3 of the output's scale, or for {lossy}, agreeing over 32 seeded "
        "images (mean cosine similarity of the logits >= 0.999 and the same top-1 class for >= 90%); a runtime that "
        "does not gets an error row with what it measured."
    )


BACKEND_HELP = _backend_help()


def _what_to_time() -> list[Decorator]:
    """--no-timing, --backend, --batch-size, --threads, --device: what is timed, and where."""
    return [
        click.option("--no-timing", is_flag=True, help="Counts only: measure nothing (what CI uses)."),
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
            type=PlainInt(),
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
    ]


def _when_to_stop() -> list[Decorator]:
    """--target-ci and --budget: the stopping rule."""
    return [
        click.option(
            "--target-ci",
            "target_ci_pct",
            type=PlainFloat(),
            default=StopRule().target_rel_ci * 100,
            show_default=True,
            metavar="PCT",
            help="Stop timing once the 95% confidence interval of every configuration's headline latency (the "
            "5th percentile of its calls, see --statistic) relative to the run (its ratio to the geometric mean "
            "of the configurations timed together on its runtime and batch size, what the host's speed does not "
            f"move; the absolute figure's with fewer than three) is within this percentage of it (at least "
            f"{MIN_TARGET_CI_PCT:g})...",
        ),
        click.option(
            "--budget",
            "budget_s",
            type=PlainFloat(),
            default=StopRule().budget_s,
            show_default=True,
            metavar="SECONDS",
            help=f"...or once this many seconds of timing are spent on each, at most {MAX_BUDGET_S:g} (those that "
            "did not reach the target are flagged noisy).",
        ),
    ]


def _what_to_show() -> list[Decorator]:
    """--statistic and --reference: which latency is shown, and what rel divides by."""
    return [
        statistic_option(
            "The latency shown, and what throughput, GFLOP/s, x eager, rel and the plots use: p5 = the "
            "headline, the 5th percentile of the timed calls (one call in twenty was at least this fast: the "
            "latency this host reaches when nothing else interferes; noise on a shared machine only slows "
            "calls down, so the low end is what reproduces from run to run); adjusted = the typical call, "
            "the median of each turn's median divided by the host's speed factor in its round-robin pass (the "
            "latency at the run's median host speed); median = every timed call as it came; min = the "
            "fastest call. Every call is kept in --results, so any statistic can be shown later."
        ),
        reference_option(
            "The configuration rel (relative latency) divides by, timed in the same run on the same runtime, "
            "batch, threads and host. [default: the geometric mean of the configurations timed together, "
            "which moved least between runs]"
        ),
    ]


def _where_results_go() -> list[Decorator]:
    """--results, --resume, --from-results: the results file written, kept, or read instead of measuring."""
    return [
        click.option(
            "--results",
            type=OutputPath(),
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


# The request's fields that the options give as they are (--no-timing gives ``enabled``, negated).
REQUEST_FIELDS = (
    "backends",
    "batch_sizes",
    "threads",
    "device",
    "target_ci_pct",
    "budget_s",
    "results",
    "resume",
    "from_results",
    "statistic",
    "reference",
)


def timing_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the timing options to a command; they reach it as one ``timing_request: TimingRequest`` argument."""

    @functools.wraps(function)
    def wrapper(*args: Any, no_timing: bool, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in REQUEST_FIELDS}
        return function(*args, timing_request=TimingRequest(enabled=not no_timing, **given), **kwargs)

    command: Callable[..., Any] = wrapper
    for option in reversed(_what_to_time() + _when_to_stop() + _what_to_show() + _where_results_go()):
        command = option(command)
    return command
