"""The measurement engine: what a task is, when it has been timed enough (the stop rule), and what its raw
samples make (the headline, its intervals, the host-adjusted median).

Pure Python, no torch: :mod:`mnprof.runtimes.backends` makes the samplers (one call -> its duration in seconds),
:func:`mnprof.timing.timer.time_tasks` runs every timing of mnprof through here, the loop itself is
:mod:`mnprof.timing.round_robin`, host drift :mod:`mnprof.timing.drift`, and the order statistics are
:mod:`mnprof.timing.stats`. Every duration is in seconds. The method (warm-up, round-robin passes, contention,
the 5th-percentile headline and why, both intervals, the stop rule, drift) is in docs/timing.md, "Method".
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from mnprof.errors import MnprofError
from mnprof.timing.records import Stop
from mnprof.timing.stats import Headline, SampleStats, median_ci, quantile_ci

__all__ = [
    "MAX_BUDGET_S",
    "MIN_TARGET_CI_PCT",
    "Measurement",
    "Stop",
    "StopRule",
    "Task",
    "adjusted_turns",
    "budget_in_range",
    "gc_paused",
    "paired_ratios",
    "target_in_range",
]

# Bounds of --budget and --target-ci: an hour of timing per task is far beyond what any configuration needs to
# settle, and below 0.1% the CI of a 5th percentile is not reached on any host (the sweep would only ever stop
# on the budget), so neither can make a run that never ends.
MAX_BUDGET_S = 3600.0
MIN_TARGET_CI_PCT = 0.1


def target_in_range(target_rel_ci: float) -> bool:
    """Whether a CI target (a fraction: 0.05 = 5%) is one timing can reach: in [0.1%, 100%)."""
    return MIN_TARGET_CI_PCT / 100 <= target_rel_ci < 1


def budget_in_range(budget_s: float) -> bool:
    """Whether a time budget per task (seconds) is one a sweep takes: in (0, :data:`MAX_BUDGET_S`]."""
    return 0 < budget_s <= MAX_BUDGET_S


@dataclass(frozen=True)
class StopRule:
    """When warm-up ends and when a task has been timed enough.

    Args:
        target_rel_ci: stop once the headline's 95% CI is within this fraction of it (0.02 = 2%).
        budget_s: seconds of timing per task (warm-up excluded) after which it stops anyway, flagged noisy.
        min_samples: fewer clean calls than this and the set-aside ones are used too (flagged contended).
        min_turns: never stop on the CI with fewer clean turns (the CI needs 6).
        block_s: length of one task's turn in a round-robin pass, in seconds (shorter for short budgets,
            so that ``2 * min_turns`` turns fit in ``budget_s``).
        warmup_window: calls per warm-up window.
        warmup_tolerance: warm-up ends when two consecutive window medians differ by at most this fraction.
        warmup_max_s: warm-up ends after this many seconds, settled or not.
        rewarm: discard one call at the start of each turn (caches refilled after other tasks ran).
        contention_ratio: with a CPU clock, a turn whose CPU share is below this fraction of the task's best
            turn was contended (another process ran on this one's cores): its samples are set aside.
        contended_share: a task whose best turn's CPU share is below this never had the CPU to itself.
        max_spent_factor: set-aside turns do not count toward ``budget_s``, but a task stops after this
            many budgets of timing in all.
    """

    target_rel_ci: float = 0.05
    budget_s: float = 2.5
    min_samples: int = 10
    min_turns: int = 6
    block_s: float = 0.15
    warmup_window: int = 3
    warmup_tolerance: float = 0.05
    warmup_max_s: float = 1.0
    rewarm: bool = True
    contention_ratio: float = 0.9
    contended_share: float = 0.8
    max_spent_factor: float = 2.0

    def __post_init__(self) -> None:
        if not target_in_range(self.target_rel_ci):
            raise MnprofError(
                f"CI target {self.target_rel_ci:g} is out of range; "
                f"accepted: a fraction in [{MIN_TARGET_CI_PCT / 100:g}, 1)"
            )
        if not budget_in_range(self.budget_s):
            raise MnprofError(f"time budget {self.budget_s:g} s is invalid; accepted: seconds in (0, {MAX_BUDGET_S:g}]")
        if self.min_samples < 1:
            raise MnprofError(f"min_samples {self.min_samples} is too small; accepted: >= 1")
        if self.min_turns < 6:
            raise MnprofError(f"min_turns {self.min_turns} is too small; accepted: >= 6 (a 95% CI needs 6)")
        if self.block_s <= 0 or self.warmup_window < 1 or self.warmup_tolerance <= 0 or self.warmup_max_s < 0:
            raise MnprofError("block_s, warmup_window, warmup_tolerance must be > 0 and warmup_max_s >= 0")
        if not 0 < self.contention_ratio <= 1 or not 0 <= self.contended_share <= 1 or self.max_spent_factor < 1:
            raise MnprofError("contention_ratio must be in (0, 1], contended_share in [0, 1], max_spent_factor >= 1")

    def converged(self, turns: Sequence[Sequence[float]], relative: float | None = None) -> bool:
        """Enough clean turns, and the headline's 95% CI within the target: ``relative``, the wider side of its
        interval relative to the run (:func:`mnprof.timing.stats.relative_quantile_ci`), where the run has one;
        else the interval of the calls' 5th percentile itself."""
        turns = [turn for turn in turns if turn]
        if len(turns) < self.min_turns:
            return False
        width = quantile_ci(turns, min_turns=self.min_turns).halfwidth if relative is None else relative
        return width <= self.target_rel_ci


@dataclass(frozen=True)
class Task:
    """One thing to time: ``sample()`` runs one call and returns its duration in seconds."""

    key: Hashable
    sample: Callable[[], float]
    label: str = ""
    pool: str = ""  # the thread pool the calls run on (torch's OpenMP, onnxruntime's): see interleave's settle
    # Tasks whose headlines are compared with each other (a runtime at a batch size): the stop rule's interval is
    # of a headline relative to its group's geometric mean, as the table's rel is.
    group: Hashable = None


@dataclass(frozen=True)
class Measurement:
    """A task's raw timed samples (seconds) and how timing ended; statistics are derived, never stored.

    ``samples`` are the calls of clean turns; ``discarded`` those of turns during which other processes
    took the CPU (see :func:`mnprof.timing.round_robin.interleave`), kept for the record. ``turn_factors`` is the
    host's speed factor of the pass each turn of ``samples`` ran in (see :func:`mnprof.timing.stats.pass_factors`).
    """

    key: Hashable
    samples: tuple[float, ...]
    warmup: tuple[float, ...]
    warmup_settled: bool
    stop: Stop
    spent_s: float
    target_rel_ci: float
    turn_sizes: tuple[int, ...] = ()  # calls per turn of ``samples``, in order; () = every call its own turn
    discarded: tuple[float, ...] = ()  # samples of turns set aside as contended (kept, not used)
    cpu_shares: tuple[float, ...] = ()  # CPU share of every turn, in order
    contended: bool = False  # never had the CPU to itself, or too few clean samples (then all are used)
    turn_starts: tuple[float, ...] = ()  # clock reading at the start of each turn of ``samples``, in order
    turn_factors: tuple[float, ...] = ()  # host factor of each turn's pass, in order; () = all 1.0
    turn_passes: tuple[int, ...] = ()  # the round-robin pass of each turn, in order
    min_turns: int = 6  # the stop rule's: no interval (so noisy) with fewer turns
    # The wider side of the headline's 95% CI relative to the run's geometric mean of headlines (inf: none);
    # None when fewer than three tasks were timed together (nothing to be relative to).
    relative_halfwidth: float | None = None

    @cached_property
    def stats(self) -> SampleStats:
        """Order statistics of the samples pooled (median, IQR, p90, min ...): the typical call."""
        return SampleStats.of(self.samples)

    @cached_property
    def turns(self) -> tuple[tuple[float, ...], ...]:
        if not self.turn_sizes:
            return tuple((sample,) for sample in self.samples)
        turns, start = [], 0
        for size in self.turn_sizes:
            turns.append(self.samples[start : start + size])
            start += size
        return tuple(turns)

    @cached_property
    def adjusted(self) -> tuple[float, ...]:
        """Every turn's median divided by its pass's host factor."""
        return adjusted_turns(self.turns, self.turn_factors)

    @cached_property
    def headline(self) -> Headline:
        """``(value, low, high, relative half-width)``: the calls' 5th percentile with its 95% CI over turns."""
        return quantile_ci(self.turns, min_turns=self.min_turns)

    @cached_property
    def adjusted_median(self) -> float:
        """The typical figure: the median over turns of each turn's median over its pass's host factor."""
        return median_ci(self.adjusted)[0]

    @property
    def ci(self) -> tuple[float | None, float | None, float]:
        """``(low, high, relative half-width)`` of the headline's 95% CI (of the absolute figure)."""
        return self.headline.low, self.headline.high, self.headline.halfwidth

    @property
    def settling_halfwidth(self) -> float:
        """The half-width the stop rule judges: the interval relative to the run where there is one, else the
        absolute one (see :meth:`StopRule.converged`)."""
        return self.ci[2] if self.relative_halfwidth is None else self.relative_halfwidth

    def meets_target(self) -> bool:
        """Whether the headline's 95% CI (relative to the run, where there is one) is within the target."""
        return self.settling_halfwidth <= self.target_rel_ci

    @property
    def noisy(self) -> bool:
        return not self.meets_target()


def paired_ratios(measurement: Measurement, control: Measurement) -> tuple[float, ...]:
    """``measurement``'s turn median over ``control``'s in every pass both were timed in (same interleave).

    Adjacent in time, the two turns saw the same host: the ratio cancels what the host did to both.
    """
    pairs = zip(control.turn_passes, control.turns, strict=True)
    controls = {index: SampleStats.of(turn).median for index, turn in pairs}
    return tuple(
        SampleStats.of(turn).median / controls[index]
        for index, turn in zip(measurement.turn_passes, measurement.turns, strict=True)
        if index in controls and controls[index] > 0
    )


def adjusted_turns(turns: Sequence[Sequence[float]], factors: Sequence[float] = ()) -> tuple[float, ...]:
    """Each turn's median divided by its pass's host factor (1.0 where ``factors`` is empty)."""
    factors = factors or [1.0] * len(turns)
    return tuple(SampleStats.of(turn).median / factor for turn, factor in zip(turns, factors, strict=True) if turn)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while timing (as ``timeit`` does), restored after.

    A collection that happens to start inside a timed call would add its pause to that call.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
