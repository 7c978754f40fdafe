"""The measurement engine on synthetic samples and a fake clock: measurements, stopping, warm-up, round-robin
interleaving, contention and interrupts."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from mnprof.errors import MnprofError
from mnprof.timing.engine import Measurement, Stop, StopRule, Task
from mnprof.timing.round_robin import interleave, warm_up
from mnprof.timing.stats import (
    quantile_ci,
    relative_quantile_ci,
)


class FakeClock:
    """A clock that only moves when a fake sampler says a call took some time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sampler(clock: FakeClock, durations, log: list | None = None, name: str = ""):
    """A sampler returning ``durations`` one by one (cycling), advancing ``clock`` by each."""
    source = itertools.cycle(durations)

    def sample() -> float:
        duration = next(source)
        clock.now += duration
        if log is not None:
            log.append(name)
        return duration

    return sample


def test_measurement_keeps_raw_samples_and_derives_statistics():
    samples = tuple(0.0100 + 1e-6 * i for i in range(100))  # every call its own turn
    measurement = Measurement("k", samples, (0.02,), True, Stop.CONVERGED, 0.4, 0.02)
    assert measurement.samples == samples
    assert measurement.stats.median == pytest.approx(0.0100495)
    assert measurement.meets_target() and not measurement.noisy
    assert measurement.headline[0] == pytest.approx(0.01000495)  # the 5th percentile (position 4.95 of 100)
    spread = tuple(1 + i / 19 for i in range(20))  # every call its own turn, 1.0 to 2.0 evenly
    wide = Measurement("k", spread, (), True, Stop.BUDGET, 2.0, 0.02)
    assert wide.headline[0] == pytest.approx(1.05) and wide.noisy  # 20 calls cannot bound a 5th percentile


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_rel_ci": 0}, "CI target 0 is out of range"),
        ({"target_rel_ci": 1.5}, "CI target 1.5 is out of range"),
        ({"budget_s": 0}, "time budget 0 s is invalid"),
        ({"budget_s": math.inf}, "time budget inf s is invalid"),
        ({"min_turns": 3}, "min_turns 3 is too small"),
        ({"min_samples": 0}, "min_samples 0 is too small"),
    ],
)
def test_stop_rule_rejects_bad_settings(kwargs, message):
    with pytest.raises(MnprofError, match=message):
        StopRule(**kwargs)


def test_stop_rule_needs_min_turns_and_a_narrow_ci_of_the_headline():
    rule = StopRule(target_rel_ci=0.02, min_turns=6)

    def turn(level: float, index: int) -> list[float]:  # 20 calls, all different (timers rarely tie)
        return [level + 0.001 * i + 0.0001 * index for i in range(20)]

    assert not rule.converged([turn(1.0, k) for k in range(5)])  # narrow, too few turns
    assert rule.converged([turn(1.0, k) for k in range(6)])
    assert not rule.converged([turn(1.0, k)[:10] for k in range(6)])  # 60 calls cannot bound a 5th percentile
    assert rule.converged([turn(1.0, k)[:4] + turn(1.5, k)[:16] for k in range(6)])  # calls spread, low ends agree
    half = [turn(1.0 if k % 2 else 1.1, k) for k in range(6)]  # 10% faster in half the turns: the low end is that
    assert rule.converged(half)
    once = [turn(1.0 if k == 0 else 1.1, k) for k in range(6)]  # in one turn of six: which turns catch it decides
    assert not rule.converged(once)
    assert not rule.converged([turn(1.0, k) for k in range(5)] + [[]] * 3)  # empty turns do not count
    strict = StopRule(target_rel_ci=0.02, min_turns=8)
    assert not strict.converged([turn(1.0, k) for k in range(7)] + [[]])  # 7 turns with calls of the 8 asked
    assert strict.converged([turn(1.0, k) for k in range(8)])


def test_measurement_typical_figure_is_the_median_of_adjusted_turns():
    samples = (1.0, 1.0, 1.3, 1.3, 1.0, 1.0, 1.2, 1.2, 1.0, 1.0, 1.0, 1.0)
    factors = (1.0, 1.3, 1.0, 1.2, 1.0, 1.0)
    m = Measurement("k", samples, (), True, Stop.CONVERGED, 1.0, 0.02, turn_sizes=(2,) * 6, turn_factors=factors)
    assert m.adjusted == pytest.approx((1.0,) * 6) and m.adjusted_median == pytest.approx(1.0)
    assert m.stats.median == 1.0 and m.stats.maximum == 1.3  # the typical statistics are of the raw calls
    unadjusted = Measurement("k", samples, (), True, Stop.BUDGET, 1.0, 0.02, turn_sizes=(2,) * 6)
    assert unadjusted.adjusted_median == pytest.approx(1.0)  # without factors: the median of the turn medians
    assert unadjusted.adjusted == (1.0, 1.3, 1.0, 1.2, 1.0, 1.0)
    # The headline needs no host factors: 8 of the 12 calls took 1.0, so the low end is 1.0 with or without them.
    assert m.headline == unadjusted.headline and m.headline[0] == 1.0


def test_measurement_ci_comes_from_its_turns():
    turns = [[(1.0 if k % 2 == 0 else 1.1) + 0.001 * i + 0.0001 * k for i in range(20)] for k in range(6)]
    samples = tuple(c for turn in turns for c in turn)
    steady = Measurement("k", samples, (), True, Stop.CONVERGED, 1.0, 0.02, turn_sizes=(20,) * 6)
    assert [list(turn) for turn in steady.turns] == turns
    calls = Measurement("k", samples, (), True, Stop.CONVERGED, 1.0, 0.02)  # every call its own turn
    assert steady.headline[0] == calls.headline[0] == pytest.approx(1.00197)
    # The share of calls at or below the estimate is 2 in every fast turn and 0 in every slow one: the turns
    # disagree, so the clustered interval is wider than that of the same calls taken as independent.
    assert steady.ci[1] - steady.ci[0] > calls.ci[1] - calls.ci[0]
    assert steady.ci[2] == pytest.approx(quantile_ci(turns)[3]) and steady.meets_target()
    short = Measurement("k", samples[:60], (), True, Stop.BUDGET, 1.0, 0.02, turn_sizes=(10,) * 6)
    assert short.ci == (None, None, math.inf) and short.noisy  # 60 calls: no interval


def test_warm_up_stops_when_two_windows_agree():
    clock = FakeClock()
    times, settled = warm_up(sampler(clock, [0.10, 0.08, 0.06, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]), StopRule(), clock)
    # windows: [.10 .08 .06] -> [.05 .05 .05] differ; -> [.05 .05 .05] agree after 9 calls
    assert settled and times == [0.10, 0.08, 0.06, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]


def test_warm_up_gives_up_after_its_time_limit():
    clock = FakeClock()
    slowing = [0.01 * 1.1**i for i in range(100)]  # never settles
    times, settled = warm_up(sampler(clock, slowing), StopRule(warmup_max_s=0.5), clock)
    assert not settled
    assert times == slowing[: len(times)]
    assert sum(times[:-1]) < 0.5 <= sum(times)


def turn_by_turn(clock: FakeClock, log: list, name: str):
    """A sampler whose calls take 10 ms in every sixth turn and 20 ms in the others (the host's speed by turns)."""
    turns, speed = itertools.count(), [0.02]

    def sample() -> float:
        if not log or log[-1] != name:  # the first call of a turn
            speed[0] = 0.01 if next(turns) % 6 == 0 else 0.02
        clock.now += speed[0]
        log.append(name)
        return speed[0]

    return sample


def test_round_robin_visits_every_task_in_every_pass_until_all_have_stopped():
    clock, log = FakeClock(), []
    rule = StopRule(budget_s=0.6, block_s=0.05, warmup_max_s=0, rewarm=False)
    tasks = [
        Task("a", sampler(clock, [0.001, 0.0011, 0.0012], log, "a"), "a"),  # steady: converges after min_turns
        Task("b", turn_by_turn(clock, log, "b"), "b"),  # one turn in six 2x faster: the low end never settles
        Task("c", sampler(clock, [0.001, 0.003, 0.0011, 0.0031], log, "c"), "c"),  # half its calls 3x slower
    ]
    finished = []
    measurements = interleave(tasks, rule, clock=clock, on_finish=lambda m: finished.append(m.key))
    blocks = [name for name, _ in itertools.groupby(log)]
    assert blocks[:3] == ["a", "b", "c"]  # warm-up, one call each (warmup_max_s=0)
    passes = len(blocks[3:]) // 3
    assert blocks[3:] == ["a", "b", "c"] * passes  # whole passes: a keeps running while b and c do
    assert finished == ["a", "b", "c"]  # saved when timing ends, in task order
    assert [m.key for m in measurements] == ["a", "b", "c"]
    a, b, c = measurements
    assert a.stop is Stop.CONVERGED and len(a.turn_sizes) == passes
    assert b.stop is Stop.BUDGET and b.noisy and b.spent_s >= 0.6
    assert c.stop is Stop.CONVERGED and 0.001 <= c.headline[0] < 0.0011  # calls of 1 and 3 ms: the low end


def test_a_host_slowdown_in_some_passes_leaves_the_headline_and_the_typical_figure_alone():
    clock, log = FakeClock(), []
    passes_slow = {2, 3, 7}  # every task 40% slower in these passes

    def task(name: str, level: float):
        calls, turns = itertools.count(), [-2]  # the warm-up call is turn -1, then pass 0, 1, ...

        def sample() -> float:
            if not log or log[-1] != name:  # the first call of a turn
                turns[0] += 1
            duration = level * (1.4 if turns[0] in passes_slow else 1.0) * (1 + 0.0005 * (next(calls) % 11))
            clock.now += duration
            log.append(name)
            return duration

        return sample

    rule = StopRule(target_rel_ci=0.01, budget_s=1.0, block_s=0.05, warmup_max_s=0)
    levels = (0.001, 0.001, 0.002, 0.001)  # four tasks: each one's factors are fitted from the three others
    tasks = [Task(str(i), task(str(i), level), str(i)) for i, level in enumerate(levels)]
    measurements = interleave(tasks, rule, clock=clock)
    for level, m in zip(levels, measurements, strict=True):
        assert m.stop is Stop.CONVERGED  # the slow passes never reach the low end
        assert m.headline[0] == pytest.approx(level, rel=1e-3)  # the 5th percentile: a fast pass's fast calls
        assert m.adjusted_median == pytest.approx(level, rel=5e-3)  # the slow passes' factors divided out
        assert m.stats.median == pytest.approx(level, rel=5e-3) and m.stats.maximum > 1.39 * level
        assert {round(factor, 2) for factor in m.turn_factors} == {1.0, 1.4}
    # What the stop rule judged: each headline relative to the run, from every task's calls by pass.
    by_pass = [[list(turn) for turn in m.turns] for m in measurements]
    assert all(m.turn_passes == tuple(range(len(m.turns))) for m in measurements)
    assert [m.relative_halfwidth for m in measurements] == relative_quantile_ci(by_pass)
    assert all(m.relative_halfwidth <= rule.target_rel_ci and not m.noisy for m in measurements)


def test_the_relative_interval_is_taken_within_each_group_as_the_table_compares():
    clock = FakeClock()
    rule = StopRule(target_rel_ci=0.02, budget_s=0.6, block_s=0.05, warmup_max_s=0)
    levels = {"a1": 0.001, "a2": 0.002, "a3": 0.003, "b1": 0.001, "b2": 0.002}
    tasks = [
        Task(name, sampler(clock, [level * (1 + 0.0003 * i) for i in range(10)]), name, group=name[0])
        for name, level in levels.items()
    ]
    measurements = interleave(tasks, rule, clock=clock)
    in_a = [[list(turn) for turn in m.turns] for m in measurements[:3]]
    assert [m.relative_halfwidth for m in measurements[:3]] == relative_quantile_ci(in_a)
    assert [m.relative_halfwidth for m in measurements[3:]] == [None, None]  # two in group b: the absolute decides


def test_with_two_tasks_the_stop_rule_judges_the_absolute_interval():
    clock = FakeClock()
    rule = StopRule(target_rel_ci=0.02, budget_s=1.2, block_s=0.1, warmup_max_s=0)
    steady = [0.010 * (1 + 0.0001 * i) for i in range(10)]  # ten calls a turn, alike in every turn
    tasks = [Task(name, sampler(clock, steady), name) for name in "ab"]
    for m in interleave(tasks, rule, clock=clock):
        assert m.relative_halfwidth is None and m.settling_halfwidth == m.ci[2] <= 0.02 and m.stop is Stop.CONVERGED


def test_budget_bounds_a_noisy_task_and_the_ci_target_ends_a_quiet_one_early():
    clock = FakeClock()
    rng = random.Random(0)
    quiet = [0.010 * (1 + rng.uniform(-0.001, 0.001)) for _ in range(997)]
    rule = StopRule(target_rel_ci=0.02, budget_s=1.2, block_s=0.1)
    (quiet_m,) = interleave([Task("quiet", sampler(clock, quiet), "quiet")], rule, clock=clock)
    # ten calls a turn: the 5th percentile needs about 80 independent calls to be bounded, so eight turns
    assert quiet_m.stop is Stop.CONVERGED and quiet_m.turn_sizes == (10,) * 8
    assert quiet_m.spent_s == pytest.approx(8 * 11 * 0.010, rel=0.01)  # each with one re-warm call
    assert quiet_m.stats.median == pytest.approx(0.010, rel=1e-3)
    clock = FakeClock()
    noisy = [rng.uniform(0.005, 0.015) if i % 40 < 20 else 0.02 for i in range(997)]
    (noisy_m,) = interleave([Task("noisy", sampler(clock, noisy), "noisy")], rule, clock=clock)
    assert noisy_m.stop is Stop.BUDGET and 1.2 <= noisy_m.spent_s <= 1.2 + 0.15  # at most one turn past


def test_rewarm_call_is_timed_into_the_budget_but_not_into_the_samples():
    clock = FakeClock()
    calls = []
    rule = StopRule(budget_s=0.6, block_s=0.05, warmup_max_s=0)
    (measurement,) = interleave([Task("x", sampler(clock, [0.01, 0.02], calls, "x"), "x")], rule, clock=clock)
    # warm-up: one call (0.01); then turns of round(0.05 / 0.01) = 5 timed calls after one discarded call
    assert len(measurement.warmup) == 1 and set(measurement.turn_sizes) == {5}
    assert len(calls) == 1 + len(measurement.turn_sizes) * (1 + 5)
    assert measurement.spent_s == pytest.approx(clock.now - 0.01)  # the discarded calls count


def test_turn_start_times_are_the_clock_at_each_turn():
    clock = FakeClock()
    rule = StopRule(budget_s=0.6, block_s=0.05, warmup_max_s=0)
    (measurement,) = interleave([Task("x", sampler(clock, [0.01]), "x")], rule, clock=clock)
    assert len(measurement.turn_starts) == len(measurement.turn_sizes)
    # one warm-up call, then turns of one re-warm call and 5 timed calls, 0.01 s each, back to back
    assert measurement.turn_starts == pytest.approx([0.01 + 0.06 * i for i in range(len(measurement.turn_sizes))])


def test_progress_reaches_the_total():
    clock, seen = FakeClock(), []
    rule = StopRule(budget_s=0.2, block_s=0.05, warmup_max_s=0)
    interleave(
        [Task(i, sampler(clock, [0.01, 0.02]), str(i)) for i in range(3)],
        rule,
        clock=clock,
        on_progress=lambda label, done, total: seen.append((label, done, total)),
    )
    assert seen[-1][1] == pytest.approx(seen[-1][2]) == pytest.approx(0.6)
    assert all(later[1] >= earlier[1] for earlier, later in itertools.pairwise(seen))


class ContendedHost:
    """Calls take 10 to 10.18 ms with the CPU to ourselves; every other turn of 10 calls another process takes
    40% of it: those calls take 30 ms and this process gets 60% of the CPU time. Clean turns alternate between
    two host speeds 3% apart, so the low end never settles within 0.1%."""

    def __init__(self, every_other: bool = True) -> None:
        self.clock, self.cpu, self.calls, self.every_other = FakeClock(), 0.0, 0, every_other

    def contended(self) -> bool:
        block = (self.calls - 1) // 10  # call 0 is the warm-up
        return not self.every_other or (self.calls >= 1 and block % 2 == 1)

    def sample(self) -> float:
        busy = self.contended()
        drift = 1 + 0.03 * (((self.calls - 1) // 20) % 2)  # clean turns alternate between two speeds
        duration = (0.030 if busy else 0.010) * drift * (1 + 0.002 * (self.calls % 10))
        self.calls += 1
        self.clock.now += duration
        self.cpu += duration * (0.6 if busy else 1.0)
        return duration


def test_contended_turns_are_set_aside_and_do_not_count_toward_the_budget():
    host = ContendedHost()
    rule = StopRule(target_rel_ci=0.001, budget_s=1.2, block_s=0.1, warmup_max_s=0, rewarm=False, max_spent_factor=4)
    (measurement,) = interleave([Task("x", host.sample)], rule, clock=host.clock, cpu_clock=lambda: host.cpu)
    assert measurement.stop is Stop.BUDGET
    assert len(measurement.cpu_shares) == 23  # 12 clean turns of 0.1 s reach the budget; 11 contended between
    assert measurement.cpu_shares[0] == pytest.approx(1.0) and measurement.cpu_shares[1] == pytest.approx(0.6)
    assert len(measurement.samples) == 120 and max(measurement.samples) < 0.011
    assert len(measurement.discarded) == 110 and min(measurement.discarded) >= 0.030
    assert 0.0100 <= measurement.stats.median <= 0.0106
    assert not measurement.contended


def test_a_task_that_never_had_the_cpu_is_flagged_and_bounded():
    host = ContendedHost(every_other=False)
    rule = StopRule(target_rel_ci=0.001, budget_s=0.5, block_s=0.1, warmup_max_s=0, rewarm=False)
    (measurement,) = interleave([Task("x", host.sample)], rule, clock=host.clock, cpu_clock=lambda: host.cpu)
    assert measurement.contended and measurement.discarded == ()  # all alike: nothing to set aside
    assert max(measurement.cpu_shares) == pytest.approx(0.6)
    assert measurement.spent_s < 0.5 + 0.1 + 0.031  # budget plus at most one turn


def test_the_spending_cap_ends_a_task_whose_turns_are_mostly_contended():
    host = ContendedHost()
    rule = StopRule(target_rel_ci=0.001, budget_s=1.2, block_s=0.1, warmup_max_s=0, rewarm=False)
    (measurement,) = interleave([Task("x", host.sample)], rule, clock=host.clock, cpu_clock=lambda: host.cpu)
    assert measurement.spent_s < 2 * 1.2 + 0.31  # max_spent_factor 2, plus at most one contended turn
    assert len(measurement.samples) < 120 and len(measurement.discarded) > 0


def test_settle_runs_only_between_turns_on_different_thread_pools():
    clock, log = FakeClock(), []
    rule = StopRule(budget_s=0.6, block_s=0.05, warmup_max_s=0, rewarm=False)
    tasks = [
        Task("a", sampler(clock, [0.01], log, "a"), "a", pool="torch"),
        Task("b", sampler(clock, [0.01], log, "b"), "b", pool="torch"),
        Task("c", sampler(clock, [0.01], log, "c"), "c", pool="onnxruntime"),
    ]
    interleave(tasks, rule, clock=clock, settle=lambda: log.append("settle"))
    turns = [name for name, _ in itertools.groupby(log)]
    for before, after in itertools.pairwise(turns):
        if "settle" not in (before, after):
            assert {before, after} <= {"a", "b"}  # same pool: no settling
    assert turns[:7] == ["a", "b", "settle", "c", "settle", "a", "b"]


def test_an_interrupt_keeps_what_had_stopped_and_drops_the_unfinished_pass():
    clock, finished = FakeClock(), []
    rule = StopRule(budget_s=10.0, block_s=0.05, warmup_max_s=0, rewarm=False)
    calls, rng = itertools.count(), random.Random(3)

    def interrupting() -> float:  # calls of 5 to 50 ms at random: never settles; interrupted after 100 calls
        if next(calls) > 100:
            raise KeyboardInterrupt
        duration = rng.uniform(0.005, 0.05)
        clock.now += duration
        return duration

    log: list[str] = []
    tasks = [Task("steady", sampler(clock, [0.01], log, "steady"), "steady"), Task("never", interrupting, "never")]
    with pytest.raises(KeyboardInterrupt):
        interleave(tasks, rule, clock=clock, on_finish=finished.append)
    (steady,) = finished  # saved before the interrupt went through; the unfinished task is not
    assert steady.key == "steady" and steady.stop is Stop.CONVERGED
    assert len(steady.turn_sizes) == len(steady.turn_factors) == len(steady.turn_passes)
    # the interrupt came in "never"'s turn, after "steady" had had its turn in that pass: that turn is left out
    whole_passes = len(steady.turn_passes)
    assert steady.turn_passes == tuple(range(whole_passes))
    assert log.count("steady") == len(steady.warmup) + len(steady.samples) + 5  # one turn of 5 calls dropped
