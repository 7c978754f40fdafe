"""Long work with a progress bar (counting, timing), and the words for what a timing sweep reports:
noise, contention, failures, a busy or drifting host. The library returns what happened; this says it."""

from __future__ import annotations

from collections.abc import Sequence

import click

from mnprof.cli.output import error_line, progress, warn
from mnprof.counting.count import CountReport, count_many
from mnprof.model.config import ModelConfig
from mnprof.timing.plan import DRIFT_WARNING, SweepOutcome, TimingPlan, measure
from mnprof.timing.store import RESULTS_SCHEMA_VERSION

__all__ = ["count_with_progress", "measure_with_progress", "report_drift", "report_quality"]


def count_with_progress(
    configs: Sequence[ModelConfig], quiet: bool, description: str = "counting"
) -> list[CountReport]:
    """Count ``configs`` (all three counters) with a progress bar."""
    with progress(quiet) as bar:
        task = bar.add_task(description, total=len(configs), current="")

        def done(config: ModelConfig) -> None:
            bar.update(task, advance=1, current=config.id)

        return count_many(configs, on_done=done)


def measure_with_progress(timing: TimingPlan, configs: Sequence[ModelConfig], quiet: bool) -> SweepOutcome:
    """Measure (or read) the timings of ``configs`` with a progress bar, then say what the sweep reported."""
    try:
        with progress(quiet) as bar:
            task = bar.add_task("timing", total=1.0, current="")

            def advance(phase: str, label: str, done: float, total: float) -> None:
                bar.update(task, description=phase, current=label, completed=done, total=max(total, 1e-9))

            outcome = measure(timing, configs, advance)
    except KeyboardInterrupt:
        if timing.store is not None:
            kept = len(timing.store.done())
            error_line(f"interrupted: {kept} measurements kept in {timing.store.path}; add --resume to finish the rest")
        raise
    if outcome.measured:
        report_quality(outcome)
        spread = report_drift(outcome)
        if not quiet:
            varied = f"; the host's speed varied by {spread:.0%} during the sweep" if spread is not None else ""
            click.echo(
                f"mnprof: {len(outcome.records)} measurements kept in {outcome.path} "
                f"(schema version {RESULTS_SCHEMA_VERSION}){varied}",
                err=True,
            )
    return outcome


def report_quality(outcome: SweepOutcome) -> None:
    """Warn on stderr about every measurement that stayed noisy or could not post a time, and about a busy host."""
    records = outcome.records
    if outcome.host_was_busy:
        warn(
            f"the host was busy while timing (load average up to {outcome.busiest_load:.1f} on {outcome.cores} "
            "cores, this sweep's own threads included): other processes competed for the CPU, so timings may be "
            "inflated and noisy"
        )
    contended, noisy = set(map(id, outcome.contended)), set(map(id, outcome.noisy))
    listed = []
    for record in records:
        label, quality = record.key.label, record.quality
        if record.error:
            warn(f"{label}: no time: {record.error}")
        elif quality is not None and id(record) in contended:
            warn(
                f"{label} never had the CPU to itself (best CPU share {quality.cpu_share_best or 0:.2f} of "
                f"{record.key.threads} threads): other processes ran on its cores, so its latency is inflated"
            )
        elif quality is not None and id(record) in noisy:
            half = quality.ci_halfwidth_pct
            listed.append(f"{label} ±{half:.1f}%" if half is not None else f"{label} (too few turns for a CI)")
    if listed:
        target = next(r.quality.target_ci_pct for r in records if r.quality is not None)
        warn(
            f"{len(listed)} of {len(records)} measurements stayed noisy (95% CI of the median wider than "
            f"±{target:g}% when the budget ran out; marked ! in the table): {', '.join(listed)}. "
            "Rerun on a quieter machine, or raise --budget or --target-ci"
        )


def report_drift(outcome: SweepOutcome) -> float | None:
    """Warn when the whole host's speed moved during the sweep; returns the spread (``None``: too few turns)."""
    drift = outcome.drift
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
