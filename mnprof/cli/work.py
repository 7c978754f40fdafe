"""Long work with a progress bar (counting, timing), and the words for what a timing sweep reports:
noise, contention, failures, a busy or drifting host. The library returns what happened; this says it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from mnprof import api
from mnprof.cli.output import Interrupted, progress, warn
from mnprof.counting.count import CountReport
from mnprof.model.config import ModelConfig
from mnprof.timing import instructions as callgrind
from mnprof.timing.plan import DRIFT_WARNING, RUNS_APART, SweepOutcome, TimingPlan, measure, run_shifts
from mnprof.timing.records import TimingRecord
from mnprof.timing.store import RESULTS_SCHEMA_VERSION

__all__ = [
    "count_instructions_with_progress",
    "count_with_progress",
    "measure_with_progress",
    "report_drift",
    "report_quality",
    "report_runs_apart",
]


def count_with_progress(
    configs: Sequence[ModelConfig],
    quiet: bool,
    description: str = "counting",
    *,
    every_counter: bool = False,
    training: bool = False,
) -> list[CountReport]:
    """Count ``configs`` with a progress bar, through the public API (:func:`mnprof.api.count_configs`;
    ``every_counter``: torch's and the shape counter too; ``training``: a training step's forward and backward too)."""
    with progress(quiet) as bar:
        task = bar.add_task(description, total=len(configs), current="")

        def done(config: ModelConfig) -> None:
            bar.update(task, advance=1, current=config.id)

        return api.count_configs(configs, every_counter=every_counter, training=training, on_done=done)


def count_instructions_with_progress(configs: Sequence[ModelConfig], quiet: bool) -> list[dict[str, Any]]:
    """Count ``configs``' instructions under Valgrind (one process) with a progress bar; their rows for the table."""
    with progress(quiet) as bar:
        task = bar.add_task("instructions: starting Valgrind", total=len(configs), current="")

        def heard(event: str) -> None:
            if event == "built":
                bar.update(task, description="instructions")
            elif event.startswith("counted "):
                bar.update(task, advance=1, current=event.removeprefix("counted "))

        run = callgrind.count_instructions(configs, on_event=heard)
    if not quiet:
        click.echo(
            f"mnprof: instructions of {len(run.counts)} configurations counted under Valgrind {run.valgrind} "
            f"in {run.seconds:.0f} s",
            err=True,
        )
    return run.rows()


def measure_with_progress(
    timing: TimingPlan, configs: Sequence[ModelConfig], quiet: bool, verbose: bool = False
) -> SweepOutcome:
    """Measure (or read) the timings of ``configs`` with a progress bar, then say what the sweep reported
    (in at most two short lines per kind of problem; ``verbose`` lists every measurement concerned)."""
    try:
        with progress(quiet) as bar:
            task = bar.add_task("timing", total=1.0, current="")

            def advance(phase: str, label: str, done: float, total: float) -> None:
                bar.update(task, description=phase, current=label, completed=done, total=max(total, 1e-9))

            outcome = measure(timing, configs, advance)
    except KeyboardInterrupt:
        if timing.store is None:
            raise
        kept = len(timing.store.done())
        if not kept:
            raise Interrupted("interrupted before any measurement was kept") from None
        raise Interrupted(
            f"interrupted: {kept} measurements kept in {timing.store.path}; add --resume to finish the rest"
        ) from None
    if outcome.measured:
        report_quality(outcome, verbose)
        spread = report_drift(outcome)
        if not quiet:
            varied = f"; the host's speed varied by {spread:.0%} during the sweep" if spread is not None else ""
            click.echo(
                f"mnprof: {len(outcome.records)} measurements kept in {outcome.path} "
                f"(schema version {RESULTS_SCHEMA_VERSION}){varied}",
                err=True,
            )
    return outcome


def report_runs_apart(records: Sequence[TimingRecord], verbose: bool = False) -> None:
    """Warn when runs shown together measured the host in different states (their headlines differ by more than
    :data:`mnprof.timing.plan.RUNS_APART` overall): rel does not reproduce between such runs. One warning with
    the worst pair; ``verbose`` lists every one."""
    apart = sorted((shift for shift in run_shifts(records) if shift.apart), key=lambda shift: -abs(shift.shift))
    if not apart:
        return
    shown = apart if verbose else apart[:1]
    for shift in shown:
        more = f" ({len(apart) - 1} more pairs of runs; --verbose lists them)" if len(apart) > 1 and not verbose else ""
        warn(
            f"run {shift.second} measured {shift.shift:+.1%} vs run {shift.first} over the {shift.configurations} "
            f"configurations both timed ({shift.series}): the host was in another state, and rel does not carry "
            f"over between such runs (on a shared VM it reproduced within 2.5% only between runs within "
            f"{RUNS_APART:.0%} of each other); compare rel within a run, or rerun{more}"
        )


def _settling(record: TimingRecord) -> float | None:
    """The half-width ``noisy`` judged: relative to the run where there was one, else the absolute one."""
    if record.quality is None:
        return None
    relative = record.quality.rel_ci_halfwidth_pct
    return relative if relative is not None else record.quality.ci_halfwidth_pct


def _noisy_label(record: TimingRecord) -> str:
    half = _settling(record)
    if half is not None:
        return f"{record.key.label} ±{half:.1f}%"
    return f"{record.key.label} (no interval)"


def _share(record: TimingRecord) -> float:
    return (record.quality.cpu_share_best if record.quality is not None else None) or 0.0


def report_quality(outcome: SweepOutcome, verbose: bool = False) -> None:
    """Warn on stderr about a busy host and about measurements that failed, were contended or stayed noisy:
    one warning per kind, with the count and the worst case; ``verbose`` lists every one."""
    records = outcome.records

    def more(concerned: Sequence[TimingRecord]) -> str:
        return "; --verbose lists them" if len(concerned) > 1 and not verbose else ""

    if outcome.host_was_busy:
        warn(
            f"the host was busy while timing (load average up to {outcome.busiest_load:.1f} on {outcome.cores} "
            "cores, this sweep's own threads included): timings may be inflated and noisy"
        )
    failed, contended, noisy = outcome.failed, outcome.contended, outcome.noisy
    if failed:
        if verbose:
            for record in failed:
                warn(f"{record.key.label}: no time: {record.error}")
        else:
            first = f"{failed[0].key.label}: {failed[0].error or ''}"
            first = first if len(first) <= 100 else first[:99] + "…"
            warn(f"{len(failed)} of {len(records)} measurements posted no time; first: {first}{more(failed)}")
    if contended:
        threads = contended[0].key.threads
        if verbose:
            for record in contended:
                warn(
                    f"{record.key.label} never had the CPU to itself (best CPU share {_share(record):.2f} of "
                    f"{record.key.threads} threads): other processes ran on its cores, so its latency is inflated"
                )
        else:
            worst = min(contended, key=_share)
            warn(
                f"{len(contended)} of {len(records)} measurements never had the CPU to itself (latency inflated); "
                f"worst: {worst.key.label}, CPU share {_share(worst):.2f} of {threads} threads{more(contended)}"
            )
    if noisy:
        target = next(r.quality.target_ci_pct for r in records if r.quality is not None)
        if verbose:
            detail = ": " + ", ".join(_noisy_label(record) for record in noisy)
        else:
            worst = max(noisy, key=lambda r: _settling(r) or float("inf"))
            detail = f"; worst: {_noisy_label(worst)}"
        warn(
            f"{len(noisy)} of {len(records)} measurements stayed noisy (marked !: rel's 95% CI over "
            f"±{target:g}%){detail}. Raise --budget or rerun on a quieter host{more(noisy)}"
        )


def report_drift(outcome: SweepOutcome) -> float | None:
    """Warn when the whole host's speed moved during the sweep; returns the spread (``None``: too few turns)."""
    drift = outcome.drift
    if len(drift.factors) < 2:
        return None
    if drift.spread > DRIFT_WARNING:
        warn(
            f"the host's speed changed by {drift.spread:.0%} during this sweep, every configuration together (a "
            "cause outside them): the headline (5th percentile) reads the faster moments, and a run that "
            "never reaches them reads slower; compare rel (relative latency), not ms, across runs"
        )
    return drift.spread
