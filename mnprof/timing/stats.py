"""Order statistics of timing samples: quantiles, their confidence intervals, host factors.

Pure Python, no torch. Every duration is in seconds (or whatever unit the samples are in: these
functions only compare and interpolate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import NamedTuple

__all__ = [
    "CONFIDENCE",
    "EXACT_CI_LIMIT",
    "HEADLINE_QUANTILE",
    "MIN_PEERS",
    "Headline",
    "SampleStats",
    "median_ci",
    "median_ci_ranks",
    "pass_factors",
    "quantile",
    "quantile_ci",
    "relative_quantile_ci",
    "student_t_quantile",
]

CONFIDENCE = 0.95
# A pass's host factor needs at least this many tasks timed in it (a median of fewer says nothing common).
MIN_PEERS = 3
# The headline latency is this quantile of the clean calls: one call in twenty was at least this fast (see
# :func:`quantile_ci` and docs/timing.md).
HEADLINE_QUANTILE = 0.05
# Above this many samples the binomial is replaced by its normal approximation (exact sums get slow).
EXACT_CI_LIMIT = 1000


class Headline(NamedTuple):
    """A quantile of the calls with its 95% CI: ``low``/``high`` ``None`` and ``halfwidth`` ``inf`` where the
    calls cannot bound it (see :func:`quantile_ci`)."""

    value: float
    low: float | None
    high: float | None
    halfwidth: float  # the wider side of the interval, a fraction of ``value``


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of already sorted values, linearly interpolated (numpy's default method)."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@lru_cache(maxsize=8192)
def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """0-based indices ``(lo, hi)`` of the sorted samples that bound a distribution-free CI of the median.

    The interval ``[x_(k), x_(n+1-k)]`` (1-based order statistics) covers the median with probability
    ``1 - 2 P(B <= k-1)``, ``B ~ Binomial(n, 1/2)``; ``k`` is the largest rank keeping that at least
    ``confidence``. Exact for ``n <= 1000``, normal approximation with continuity correction above.
    ``None`` when even ``[min, max]`` falls short (``n <= 5`` at 95%).
    """
    tail = (1 - confidence) / 2
    if n > EXACT_CI_LIMIT:
        z = NormalDist().inv_cdf(1 - tail)
        k = math.floor(n / 2 - z * math.sqrt(n) / 2 + 0.5)
    else:
        total = 2**n
        cumulative = 0  # number of outcomes with B <= k-1, exact integers
        k = 0
        while True:
            cumulative += math.comb(n, k)
            if cumulative / total > tail:
                break
            k += 1
    if k < 1:
        return None
    return k - 1, n - k


@dataclass(frozen=True)
class SampleStats:
    """Order statistics of a sample list (seconds). ``ci_low``/``ci_high`` are ``None`` below 6 samples."""

    n: int
    median: float
    q25: float
    q75: float
    p90: float
    minimum: float
    maximum: float
    mean: float
    ci_low: float | None
    ci_high: float | None

    @classmethod
    def of(cls, samples: Sequence[float]) -> SampleStats:
        """Statistics of ``samples`` (at least one)."""
        ordered = sorted(samples)
        if not ordered:
            raise ValueError("statistics of no samples")
        ranks = median_ci_ranks(len(ordered))
        return cls(
            n=len(ordered),
            median=quantile(ordered, 0.5),
            q25=quantile(ordered, 0.25),
            q75=quantile(ordered, 0.75),
            p90=quantile(ordered, 0.9),
            minimum=ordered[0],
            maximum=ordered[-1],
            mean=math.fsum(ordered) / len(ordered),
            ci_low=ordered[ranks[0]] if ranks else None,
            ci_high=ordered[ranks[1]] if ranks else None,
        )

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25

    @property
    def ci_rel_halfwidth(self) -> float:
        """The wider side of the median's CI, relative to the median (``inf`` without a CI)."""
        if self.ci_low is None or self.ci_high is None or self.median <= 0:
            return math.inf
        return max(self.median - self.ci_low, self.ci_high - self.median) / self.median


def median_ci(values: Sequence[float]) -> tuple[float, float | None, float | None, float]:
    """``(median, low, high, wider side / median)`` of ``values`` with the distribution-free 95% CI.

    ``low``/``high`` are ``None`` and the half-width ``inf`` with fewer than 6 values.
    """
    stats = SampleStats.of(values)
    if stats.ci_low is None or stats.ci_high is None or stats.median <= 0:
        return stats.median, None, None, math.inf
    half = max(stats.median - stats.ci_low, stats.ci_high - stats.median, 0.0) / stats.median
    return stats.median, stats.ci_low, stats.ci_high, half


def quantile_ci(
    turns: Sequence[Sequence[float]], q: float = HEADLINE_QUANTILE, confidence: float = CONFIDENCE, min_turns: int = 6
) -> Headline:
    """``(value, low, high, wider side / value)``: the ``q`` quantile of every call, with a 95% CI over turns.

    The calls of one turn are not independent (they share the host's state while the turn ran), so the
    interval treats each turn as a cluster: Woodruff's method (Woodruff 1952, the standard interval for a
    quantile under cluster sampling). The share of calls at or below the estimate (q, or more where calls
    tie) has a standard error from how that share varies from turn to turn (the cluster-robust variance of
    a ratio, never below the binomial one of independent calls), and the interval is the pooled quantiles
    at ``q -/+ z x that error``. A host that was faster in a few turns only widens it: the low end then
    depends on which turns caught the faster moments. ``low``/``high`` are ``None`` and the half-width
    ``inf`` with fewer than ``min_turns`` non-empty turns, and where ``q - z x that error`` falls below 0:
    the calls cannot bound the low end then (they are worth fewer than about 73 independent calls for the
    5th percentile, ``q (1 - q) / variance``: fewer when turns disagree; and the fastest of n independent
    calls lies above the 5th percentile with probability 0.95^n, over 2.5% below 72), and an interval that
    stopped at the fastest call would cover far less than 95%. Calls of exactly equal duration (which
    timing hardly ever gives) raise the share at the estimate and so the error.
    """
    turns = [turn for turn in turns if turn]
    pooled = sorted(value for turn in turns for value in turn)
    if not pooled:
        raise ValueError("quantile of no calls")
    value = quantile(pooled, q)
    count = len(pooled)
    if len(turns) < max(min_turns, 2) or value <= 0:
        return Headline(value, None, None, math.inf)
    at_or_below = [sum(1 for v in turn if v <= value) for turn in turns]
    share = sum(at_or_below) / count
    spread = sum((hits - share * len(turn)) ** 2 for hits, turn in zip(at_or_below, turns, strict=True))
    variance = max(len(turns) / (len(turns) - 1) * spread / count**2, q * (1 - q) / count)
    margin = NormalDist().inv_cdf(1 - (1 - confidence) / 2) * math.sqrt(variance)
    if q - margin < 0:  # too few calls, or turns that disagree too much, to bound the low end
        return Headline(value, None, None, math.inf)
    low, high = quantile(pooled, q - margin), quantile(pooled, min(1.0, q + margin))
    return Headline(value, low, high, max(value - low, high - value) / value)


def student_t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, by the Cornish-Fisher expansion in the
    normal quantile (Abramowitz and Stegun 26.7.5): within 0.001 of the exact value at the 97.5% point from
    ``df = 4`` on (2.5703 for 5, exact 2.5706), which is all mnprof needs (six passes at least); at ``df = 3``
    it is 0.004 short, so fewer are refused."""
    if df < 4:
        raise ValueError(f"Student's t quantile needs df >= 4 here, got {df}")
    z = NormalDist().inv_cdf(p)
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(term / df ** (power + 1) for power, term in enumerate(terms))


def _sparsity_bandwidth(n: int, q: float, confidence: float) -> float:
    """Hall and Sheather's (1988) bandwidth, in probability, for the difference quotient of the quantile
    function at ``q`` from ``n`` calls (the rule quantile regression uses to estimate the same slope)."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    x = NormalDist().inv_cdf(q)
    return n ** (-1 / 3) * z ** (2 / 3) * (1.5 * NormalDist().pdf(x) ** 2 / (2 * x**2 + 1)) ** (1 / 3)


def _tied_slope(pooled: Sequence[float], value: float) -> float:
    """The log quantile function's slope between the nearest calls below and above ``value`` that differ from it
    (per unit of probability), for calls tied across the usual bandwidth: the headline can jump by a whole tick.
    ``pooled`` is sorted and not all equal."""
    below = max((index for index, v in enumerate(pooled) if v < value), default=0)
    above = min((index for index, v in enumerate(pooled) if v > value), default=len(pooled) - 1)
    span = (above - below) / max(len(pooled) - 1, 1)
    return (math.log(pooled[above]) - math.log(pooled[below])) / span if pooled[below] > 0 and span > 0 else 0.0


def relative_quantile_ci(
    tasks: Sequence[Sequence[Sequence[float]]],
    q: float = HEADLINE_QUANTILE,
    confidence: float = CONFIDENCE,
    min_turns: int = 6,
) -> list[float]:
    """The wider side of the 95% CI of each task's ``q`` quantile relative to the run's geometric mean of them.

    ``tasks[task][pass]`` holds the calls a task made in a round-robin pass (empty where it made none, e.g. a
    turn set aside as contended). Each task's headline is the ``q`` quantile of its calls, as in
    :func:`quantile_ci`; what is estimated here is log(headline / geometric mean of every task's headline): the
    figure that transfers between runs. Whatever the host does to every task in a pass (the speed of a shared
    VM moves by tens of percent within a minute) moves all headlines together and cancels in it; no amount of
    repetition in one run removes it from the absolute figure, which is why the interval of the absolute
    headline (:func:`quantile_ci`) stays wide on such a host while rel reproduces.

    Method: the linearisation of a quantile (Bahadur's representation): a task's log headline moves by
    ``-s x (share of its calls at or below it - q)``, ``s`` the slope of its log quantile function at ``q``,
    estimated by a difference quotient over Hall and Sheather's bandwidth. Each pass contributes to that
    share; the task's contribution minus the mean over tasks of theirs is the pass's contribution to the
    relative figure, and passes are the clusters of a cluster-robust variance (``P/(P-1)`` x the sum of
    squares), never below the binomial variance of independent calls. The interval is Student's t with
    ``P - 1`` degrees of freedom (few passes give a rough variance) times its square root, in logarithms;
    the wider side is returned as a fraction (``expm1``). ``inf`` (no interval) for a task with fewer than
    ``min_turns`` passes with calls, or whose calls cannot bound the low end (``q - z x`` the binomial error
    below 0, as in :func:`quantile_ci`). Needs at least :data:`MIN_PEERS` tasks (a geometric mean of fewer
    says nothing common): ``ValueError`` otherwise.
    """
    if len(tasks) < MIN_PEERS:
        raise ValueError(f"a relative interval needs at least {MIN_PEERS} tasks timed together, got {len(tasks)}")
    passes = max(len(task) for task in tasks)
    used = [p for p in range(passes) if any(p < len(task) and task[p] for task in tasks)]
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    influence: list[list[float] | None] = []  # per task, per used pass: the pass's share of the log headline
    floors: list[float] = []
    for task in tasks:
        by_pass = [list(task[p]) if p < len(task) else [] for p in used]
        row, floor = _pass_influence(by_pass, q, confidence, z, min_turns)
        influence.append(row)
        floors.append(floor)
    if len(used) < max(min_turns, 4):  # every task has fewer passes than asked: no interval
        return [math.inf] * len(tasks)
    return _relative_widths(influence, floors, len(used), confidence)


def _pass_influence(
    by_pass: Sequence[Sequence[float]], q: float, confidence: float, z: float, min_turns: int
) -> tuple[list[float] | None, float]:
    """One task's share of its log ``q`` quantile from each pass (``None`` where it has none), and the variance
    floor of independent calls (``inf`` where its calls cannot bound the low end): see
    :func:`relative_quantile_ci`."""
    pooled = sorted(value for calls in by_pass for value in calls)
    count = len(pooled)
    value = quantile(pooled, q) if pooled else 0.0
    bandwidth = min(_sparsity_bandwidth(count, q, confidence), 0.9 * q, 1 - q) if count else 0.0
    low, high = (quantile(pooled, q - bandwidth), quantile(pooled, q + bandwidth)) if count else (0.0, 0.0)
    if count == 0 or value <= 0 or low <= 0:
        return None, math.inf
    slope = (math.log(high) - math.log(low)) / (2 * bandwidth)
    if slope == 0 and pooled[0] < pooled[-1]:  # calls tied across the bandwidth (a coarse clock): widen
        slope = _tied_slope(pooled, value)
    row = [-slope * (sum(1 for v in calls if v <= value) - q * len(calls)) / count for calls in by_pass]
    bounded = sum(1 for calls in by_pass if calls) >= min_turns and q - z * math.sqrt(q * (1 - q) / count) >= 0
    return row, slope**2 * q * (1 - q) / count if bounded else math.inf


def _relative_widths(
    influence: Sequence[Sequence[float] | None], floors: Sequence[float], passes: int, confidence: float
) -> list[float]:
    """Each task's wider side of its relative interval from its passes' influence (minus the mean over tasks):
    Student's t with ``passes - 1`` degrees of freedom, in logarithms; ``inf`` where a task has none."""
    known = [row for row in influence if row is not None]
    common = [math.fsum(row[index] for row in known) / len(known) for index in range(passes)] if known else []
    degrees = passes - 1
    critical = student_t_quantile(1 - (1 - confidence) / 2, degrees)
    widths = []
    for row, floor in zip(influence, floors, strict=True):
        if row is None or floor == math.inf:
            widths.append(math.inf)
            continue
        spread = math.fsum((own - mean) ** 2 for own, mean in zip(row, common, strict=True))
        variance = max(passes / degrees * spread, floor)
        widths.append(math.expm1(critical * math.sqrt(variance)))
    return widths


def pass_factors(table: Sequence[Sequence[float | None]], passes: int | None = None, sweeps: int = 10) -> list[float]:
    """The host's speed factor of every pass of a round-robin, by Tukey's median polish.

    ``table[task][pass]`` is a task's turn value (a median latency) in that pass, ``None`` where the task
    has no clean turn in it. The model is two-way and multiplicative: value = task level x pass factor x
    noise, fitted robustly in logarithms (medians of rows and columns swept out in turn, ``sweeps`` times).
    A pass's factor is 1.0 at the run's median speed, 1.2 when every task was about 20% slower in it.
    Passes with fewer than :data:`MIN_PEERS` values get 1.0: nothing separates the host from the task there.
    ``passes``: how many factors to return (default: the longest row's length).
    """
    passes = max((len(row) for row in table), default=0) if passes is None else passes
    residual = [[math.log(v) if v is not None and v > 0 else None for v in row] + [None] * (passes - len(row))
                for row in table]  # fmt: skip
    counted = [c for c in range(passes) if sum(row[c] is not None for row in residual) >= MIN_PEERS]
    effects = [0.0] * passes
    for _ in range(sweeps if counted else 0):
        _sweep_rows(residual)
        for column in counted:
            effects[column] += _sweep_column(residual, column)
    if counted:  # 1.0 = the median pass
        centre = quantile(sorted(effects[c] for c in counted), 0.5)
        effects = [effects[c] - centre if c in counted else 0.0 for c in range(passes)]
    return [math.exp(effect) for effect in effects]


def _sweep_rows(residual: list[list[float | None]]) -> None:
    """Median polish: take each row's median out of the row."""
    for row in residual:
        present = sorted(v for v in row if v is not None)
        if present:
            level = quantile(present, 0.5)
            row[:] = [None if v is None else v - level for v in row]


def _sweep_column(residual: list[list[float | None]], column: int) -> float:
    """Median polish: take ``column``'s median out of it; returns that median."""
    shift = quantile(sorted(value for row in residual if (value := row[column]) is not None), 0.5)
    for row in residual:
        value = row[column]
        if value is not None:
            row[column] = value - shift
    return shift
