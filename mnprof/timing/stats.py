"""Order statistics of timing samples: quantiles, the distribution-free CI of the median, per-turn CIs.

Pure Python, no torch. Every duration is in seconds (or whatever unit the samples are in: these
functions only compare and interpolate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

__all__ = ["CONFIDENCE", "EXACT_CI_LIMIT", "SampleStats", "median_ci_ranks", "quantile", "turn_ci"]

CONFIDENCE = 0.95
# Above this many samples the binomial is replaced by its normal approximation (exact sums get slow).
EXACT_CI_LIMIT = 1000


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


def turn_ci(turns: Sequence[Sequence[float]], median: float) -> tuple[float | None, float | None, float]:
    """The 95% CI of the median from per-turn medians: ``(low, high, wider side / median)``.

    ``(None, None, inf)`` with fewer than 6 turns. Each turn is one observation of the machine's speed,
    so the interval widens when the speed drifts between turns, as it should.
    """
    medians = [SampleStats.of(turn).median for turn in turns if turn]
    stats = SampleStats.of(medians) if medians else None
    if stats is None or stats.ci_low is None or stats.ci_high is None or median <= 0:
        return None, None, math.inf
    return stats.ci_low, stats.ci_high, max(median - stats.ci_low, stats.ci_high - median, 0.0) / median
