"""Order statistics and intervals on synthetic samples (mnprof.timing.stats): quantiles, the median's and the
headline's intervals, Student's t, the relative interval and pass factors."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mnprof.timing.stats import (
    EXACT_CI_LIMIT,
    SampleStats,
    median_ci,
    median_ci_ranks,
    pass_factors,
    quantile,
    quantile_ci,
    relative_quantile_ci,
    student_t_quantile,
)


@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])
@pytest.mark.parametrize("n", [1, 2, 7, 10, 101])
def test_quantile_matches_numpys_linear_method(q, n):
    values = sorted(random.Random(n).uniform(0, 10) for _ in range(n))
    assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def _exact_k(n: int, confidence: float = 0.95) -> int:
    """Independent arithmetic: the largest k with 2 * P(Binomial(n, 1/2) <= k - 1) <= 1 - confidence."""
    k, below = 0, math.comb(n, 0)
    while 2 * below / 2**n <= 1 - confidence:
        k += 1
        below += math.comb(n, k)
    return k


@pytest.mark.parametrize(
    ("n", "ranks"),
    [
        (5, None),  # even [min, max] covers the median with only 1 - 2/32 = 93.75%
        (6, (0, 5)),  # 1 - 2/64 = 96.9%
        (10, (1, 8)),  # x(2)..x(9), the textbook interval
        (20, (5, 14)),  # x(6)..x(15)
        (100, (39, 60)),  # x(40)..x(61)
    ],
)
def test_median_ci_ranks_exact_on_known_sizes(n, ranks):
    assert median_ci_ranks(n) == ranks


@pytest.mark.parametrize("n", [7, 31, 250, 999, EXACT_CI_LIMIT])
def test_median_ci_ranks_agree_with_independent_binomial_sums(n):
    k = _exact_k(n)
    assert median_ci_ranks(n) == (k - 1, n - k)


@pytest.mark.parametrize("n", [EXACT_CI_LIMIT + 1, 2001, 5000])
def test_normal_approximation_is_within_one_rank_of_exact(n):
    lo, hi = median_ci_ranks(n)
    k = _exact_k(n)
    assert abs(lo - (k - 1)) <= 1 and hi == n - 1 - lo


def test_sample_stats_exact_on_one_to_ten():
    stats = SampleStats.of([float(v) for v in (7, 3, 10, 1, 5, 2, 9, 4, 8, 6)])
    assert stats.n == 10
    assert stats.median == 5.5
    assert (stats.q25, stats.q75, stats.iqr) == (3.25, 7.75, 4.5)
    assert stats.p90 == pytest.approx(9.1)
    assert (stats.minimum, stats.maximum, stats.mean) == (1.0, 10.0, 5.5)
    assert (stats.ci_low, stats.ci_high) == (2.0, 9.0)
    assert stats.ci_rel_halfwidth == pytest.approx(3.5 / 5.5)


def test_too_few_samples_have_no_ci():
    stats = SampleStats.of([1.0, 2.0, 3.0])
    assert stats.ci_low is None and stats.ci_rel_halfwidth == math.inf
    with pytest.raises(ValueError):
        SampleStats.of([])


def test_quantile_ci_is_woodruffs_interval_with_turns_as_clusters():
    # (the 10th percentile here, for round numbers; the headline is the 5th: HEADLINE_QUANTILE)
    # Six identical turns of 1..10: the 10th percentile of the 60 calls is 1.9 (position 5.9, between the
    # sixth 1 and the first 2). Every turn has one call at or below it, so the share varies not at all from
    # turn to turn and the binomial floor holds: SE = sqrt(0.1 x 0.9 / 60) = 0.03873, and the interval is
    # the pooled quantiles at 0.1 -/+ 1.96 x 0.03873 = 0.0241 and 0.1759: positions 1.42 and 10.38 (1 and 2).
    value, low, high, half = quantile_ci([[float(v) for v in range(1, 11)]] * 6, 0.1)
    assert (value, low, high) == (pytest.approx(1.9), 1.0, 2.0)
    assert half == pytest.approx(0.9 / 1.9)
    # Three turns at 1.0 and three at 2.0: the share at or below 1.0 is 1 in three turns and 0 in the others,
    # variance 6/5 x 6 x (10 - 5)^2 / 60^2 = 0.05, SE 0.2236: the interval reaches the 54th percentile (2.0).
    # That reaches below 0: the calls cannot bound the low end. No interval.
    assert quantile_ci([[1.0] * 10] * 3 + [[2.0] * 10] * 3, 0.1) == (1.0, None, None, math.inf)
    # Independent calls (every call its own turn): 6 of 120 at or below the estimate, so the share varies as
    # a binomial's (with the T/(T-1) factor); 0.05 - 1.96 x SE stays above 0 from about 75 calls; not with 60.
    calls = [1.0 + i / 1000 for i in range(120)]
    value, low, high, half = quantile_ci([[c] for c in calls])
    margin = 1.959964 * math.sqrt(120 / 119 * 0.05 * 0.95 / 120)
    assert value == pytest.approx(1.00595) and low == pytest.approx(quantile(calls, 0.05 - margin))
    assert high == pytest.approx(quantile(calls, 0.05 + margin))
    assert quantile_ci([[c] for c in calls[:60]])[1:] == (None, None, math.inf)
    # Calls that cluster by turn widen it even where the pooled calls look tight.
    value, low, high, half = quantile_ci([[1.0, 1.0], [1.1, 1.1]] * 3, 0.1)
    assert (value, low, high) == (1.0, None, None)  # 12 calls: no interval
    assert quantile_ci([[1.0]] * 5) == (1.0, None, None, math.inf)  # fewer than six turns: no interval
    with pytest.raises(ValueError):
        quantile_ci([[], []])


@pytest.mark.parametrize(("df", "exact"), [(4, 2.77645), (5, 2.57058), (10, 2.22814), (30, 2.04227), (120, 1.97993)])
def test_student_t_quantile_matches_the_tables(df, exact):
    assert student_t_quantile(0.975, df) == pytest.approx(exact, abs=1e-3)


def test_student_t_quantile_refuses_too_few_degrees_of_freedom():
    with pytest.raises(ValueError, match="df >= 4"):
        student_t_quantile(0.975, 3)


def _run(levels, host, calls=40, shape=lambda k: 0.05 * k / 40, seed=0):
    """Round-robin calls: ``tasks[task][pass]``, each call level x the pass's host speed x (1 + its own noise)."""
    rng = random.Random(seed)
    return [
        [[level * speed * (1 + shape(rng.randrange(calls))) for _ in range(calls)] for speed in host]
        for level in levels
    ]


def test_relative_interval_divides_out_what_the_host_does_to_every_task():
    # The host's speed moves from pass to pass (up to 30% slower): the absolute 5th percentile depends on
    # which passes caught the fastest state (no interval: the turns disagree), but every task moves alike,
    # so its ratio to the run settles.
    host = [1.0, 1.12, 0.95, 1.3, 1.05, 0.9, 1.2, 1.0, 1.15, 0.93]
    tasks = _run([1.0, 2.0, 4.0, 0.5], host)
    absolute = [quantile_ci(task)[3] for task in tasks]
    relative = relative_quantile_ci(tasks)
    assert all(width == math.inf for width in absolute)
    assert all(width < 0.015 for width in relative)
    # One task whose own low end moves (20% faster in two passes only): its ratio does not settle; the others
    # move a little with the geometric mean it is part of.
    own = [[call * (0.8 if p in (0, 6) else 1.0) for call in turn] for p, turn in enumerate(tasks[1])]
    moved = relative_quantile_ci([tasks[0], own, tasks[2], tasks[3]])
    assert moved[1] > 0.05 and all(width < moved[1] for width in moved[:1] + moved[2:])


def test_relative_interval_covers_the_true_ratio():
    # Tasks that differ only in scale: the true 5th percentile over the geometric mean is level / gm(levels)
    # whatever the host does. Over 200 simulated runs (host lognormal per pass, exponential call noise), the
    # 95% interval covers it in at least 90% of cases per task; the absolute interval is mostly not even there.
    levels = [1.0, 2.0, 3.0, 6.0]
    truth = np.log(levels) - np.log(levels).mean()
    rng = np.random.default_rng(7)
    covered, runs, spans = np.zeros(len(levels)), 200, []
    for _ in range(runs):
        host = np.exp(rng.normal(0, 0.2, 8))
        tasks = [[list(level * h * (1 + rng.exponential(0.05, 25))) for h in host] for level in levels]
        estimate = np.log([quantile(sorted(c for t in task for c in t), 0.05) for task in tasks])
        estimate -= estimate.mean()
        widths = np.log1p(relative_quantile_ci(tasks))
        covered += np.abs(estimate - truth) <= widths
        spans.append(widths)
    assert np.all(covered / runs >= 0.9), covered / runs
    assert np.median(np.expm1(spans)) < 0.05  # and not by being wide: about 3% here


def test_relative_interval_of_calls_tied_by_a_coarse_clock_is_not_zero():
    # One task's calls on a 0.1 ms clock: 1.0 or 1.1 ms, so every call within the bandwidth is 1.0 and the usual
    # difference quotient is 0; its headline can still jump by a tick, and the interval says so.
    tasks = _run([1.0, 2.0, 3.0], [1.0] * 8)
    tasks[0] = [[1.0 if k % 4 else 1.1 for k in range(40)] if p % 2 else [1.1] * 40 for p in range(8)]
    tasks[0][0][0] = 1.0  # the slow passes hold one fast call
    widths = relative_quantile_ci(tasks)
    assert widths[0] > 0.05  # a 10% tick, and passes that disagree about how often it comes
    steady = _run([1.0, 2.0, 3.0], [1.0] * 8)
    steady[0] = [[1.0] * 40 for _ in range(8)]  # truly constant: no spread at all
    assert relative_quantile_ci(steady)[0] < 0.02


def test_relative_interval_needs_peers_turns_and_enough_calls():
    host = [1.0] * 8
    with pytest.raises(ValueError, match="at least 3 tasks"):
        relative_quantile_ci(_run([1.0, 2.0], host))
    few_passes = relative_quantile_ci(_run([1.0, 2.0, 3.0], host[:5]))
    assert few_passes == [math.inf] * 3  # fewer than six passes
    short = relative_quantile_ci(_run([1.0, 2.0, 3.0], host, calls=7))  # 56 calls cannot bound a 5th percentile
    assert short == [math.inf] * 3
    gaps = _run([1.0, 2.0, 3.0], host)
    gaps[0] = gaps[0][:5] + [[], [], []]  # a task with calls in five passes of eight (turns set aside)
    widths = relative_quantile_ci(gaps)
    assert widths[0] == math.inf and all(width < 0.05 for width in widths[1:])


def test_median_ci_is_the_distribution_free_interval():
    value, low, high, half = median_ci([float(v) for v in range(1, 11)])
    assert (value, low, high) == (5.5, 2.0, 9.0)  # order statistics 2 and 9 of ten values
    assert half == pytest.approx(3.5 / 5.5)
    assert median_ci([1.0] * 5) == (1.0, None, None, math.inf)


def test_pass_factors_recover_a_host_that_slows_every_task_together():
    speeds = [1.0, 1.3, 1.0, 0.9, 1.3, 1.0, 1.0]  # the host's speed in each pass
    levels = [1.0, 3.0, 9.0, 0.5]
    rng = random.Random(1)
    table = [[level * speed * (1 + rng.uniform(-0.005, 0.005)) for speed in speeds] for level in levels]
    factors = pass_factors(table)
    assert factors == pytest.approx(speeds, rel=0.01)  # 1.0 = the median pass


def test_pass_factors_do_not_absorb_what_one_task_does_and_need_three_tasks():
    table = [[1.0] * 6, [2.0] * 6, [3.0] * 3 + [4.5] * 3, [4.0] * 6]  # only the third task slows down
    assert pass_factors(table) == pytest.approx([1.0] * 6)
    assert pass_factors([[1.0, 1.3], [2.0, 2.6]]) == [1.0, 1.0]  # two tasks: host and task inseparable
    gaps = pass_factors([[1.0, None, 1.0], [2.0, 2.6, 2.0], [3.0, 3.9, 3.0]])  # a set-aside turn
    assert gaps == pytest.approx([1.0, 1.0, 1.0])  # pass 1 has two tasks only: left at 1.0
    assert pass_factors([]) == []
