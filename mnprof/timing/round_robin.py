"""The engine's loop: every task warmed up, then timed in whole round-robin passes until each has stopped.

One turn per task per pass (see :mod:`mnprof.timing.engine` for the method), so a drift of the host's speed hits
every task alike; turns whose CPU share shows another process on this one's cores are set aside.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from mnprof.timing.engine import Measurement, StopRule, Task
from mnprof.timing.records import Stop
from mnprof.timing.stats import MIN_PEERS, SampleStats, pass_factors, relative_quantile_ci

__all__ = ["interleave", "warm_up"]


def warm_up(sample: Callable[[], float], rule: StopRule, clock: Callable[[], float]) -> tuple[list[float], bool]:
    """Call ``sample`` until two consecutive window medians agree within the tolerance; returns (times, settled)."""
    times: list[float] = []
    start = clock()
    window = rule.warmup_window
    while True:
        times.append(sample())
        if len(times) >= 2 * window and len(times) % window == 0:
            last = SampleStats.of(times[-window:]).median
            before = SampleStats.of(times[-2 * window : -window]).median
            if abs(last - before) <= rule.warmup_tolerance * last:
                return times, True
        if clock() - start >= rule.warmup_max_s:
            return times, False


@dataclass
class _Block:
    samples: list[float]
    seconds: float  # wall time of the turn, the discarded re-warm call included
    cpu_share: float | None  # CPU time / (wall time x threads) over the turn; None without a CPU clock
    started: float = 0.0  # clock reading at the start of the turn
    pass_index: int = 0  # the round-robin pass the turn belongs to


@dataclass
class _Running:
    task: Task
    warmup: list[float]
    settled: bool
    blocks: list[_Block] = field(default_factory=list)

    @property
    def spent_s(self) -> float:
        return sum(block.seconds for block in self.blocks)

    def clean(self, rule: StopRule) -> list[_Block]:
        """Blocks during which this task had (nearly) as much CPU as it ever had: the others were contended."""
        shares = [block.cpu_share for block in self.blocks if block.cpu_share is not None]
        floor = rule.contention_ratio * max(shares) if shares else 0.0
        return [block for block in self.blocks if block.cpu_share is None or block.cpu_share >= floor]

    def calls_per_block(self, rule: StopRule) -> int:
        recent = [sample for block in self.clean(rule)[-5:] for sample in block.samples][-50:]
        recent = recent or self.warmup[-rule.warmup_window :]
        # Short budgets get shorter turns, so that about twice the minimum number of turns fit.
        block_s = min(rule.block_s, rule.budget_s / (2 * rule.min_turns))
        estimate = SampleStats.of(recent).median if recent else block_s
        return max(1, min(10_000, round(block_s / max(estimate, 1e-9))))

    def calls_by_pass(self, rule: StopRule, passes: int) -> list[list[float]]:
        """This task's clean calls by pass (empty where a pass's turn was set aside)."""
        calls: list[list[float]] = [[] for _ in range(passes)]
        for block in self.clean(rule):
            calls[block.pass_index] = block.samples
        return calls

    def turn_values(self, rule: StopRule, passes: int) -> list[float | None]:
        """This task's clean turn medians by pass (``None`` where a pass's turn was set aside)."""
        values: list[float | None] = [None] * passes
        for block in self.clean(rule):
            values[block.pass_index] = SampleStats.of(block.samples).median
        return values

    def verdict(self, rule: StopRule, relative: float | None) -> Stop | None:
        clean = self.clean(rule)
        if rule.converged([block.samples for block in clean], relative):
            return Stop.CONVERGED
        clean_s = sum(block.seconds for block in clean)
        if clean_s >= rule.budget_s or self.spent_s >= rule.max_spent_factor * rule.budget_s:
            return Stop.BUDGET
        return None

    def measurement(self, rule: StopRule, stop: Stop, factors: Sequence[float], relative: float | None) -> Measurement:
        clean = self.clean(rule)
        kept = [sample for block in clean for sample in block.samples]
        clean_ids = {id(block) for block in clean}
        dropped = [sample for block in self.blocks if id(block) not in clean_ids for sample in block.samples]
        shares = [block.cpu_share for block in self.blocks if block.cpu_share is not None]
        fell_back = bool(len(kept) < rule.min_samples and dropped)
        used = self.blocks if fell_back else clean
        return Measurement(
            key=self.task.key,
            samples=tuple(sample for block in used for sample in block.samples),
            warmup=tuple(self.warmup),
            warmup_settled=self.settled,
            stop=stop,
            spent_s=self.spent_s,
            target_rel_ci=rule.target_rel_ci,
            min_turns=rule.min_turns,
            turn_sizes=tuple(len(block.samples) for block in used),
            turn_starts=tuple(block.started for block in used),
            discarded=() if fell_back else tuple(dropped),
            cpu_shares=tuple(shares),
            contended=fell_back or bool(shares and max(shares) < rule.contended_share),
            turn_factors=tuple(factors[block.pass_index] for block in used),
            turn_passes=tuple(block.pass_index for block in used),
            relative_halfwidth=relative,
        )


def interleave(
    tasks: Sequence[Task],
    rule: StopRule,
    *,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] | None = None,
    settle: Callable[[], None] | None = None,
    on_finish: Callable[[Measurement], None] | None = None,
    on_progress: Callable[[str, float, float], None] | None = None,
) -> list[Measurement]:
    """Warm up every task, then time them in whole round-robin passes until every one has stopped.

    Args:
        tasks: what to time, in the order each pass visits them.
        rule: warm-up, block length, stopping, contention; see :class:`StopRule`.
        clock: wall clock in seconds (injectable for tests).
        cpu_clock: this process's CPU time divided by the threads it should keep busy (``time.process_time()
            / threads``). With it, each turn's CPU share is measured, and turns during which other processes
            took the CPU from this one (share below ``contention_ratio`` of the task's best) are set aside.
        settle: called (untimed) before a turn whose task runs on another thread pool than the turn before:
            a runtime's idle workers keep spinning for tens of milliseconds after its last call, and would
            slow the other runtime's calls (see :func:`mnprof.timing.timer.settle_threads`).
        on_finish: called with each :class:`Measurement` when timing ends (to save it at once).
        on_progress: called as ``(label, budget_seconds_done, budget_seconds_total)`` after each turn.

    Every pass visits every task, so each pass's host factor (:func:`mnprof.timing.stats.pass_factors`, for
    the typical figure) is estimated from the same tasks; after each pass every task's verdict is taken on
    its clean turns so far, and timing ends when every task has one (its headline's CI within the target,
    or its budget spent).

    Returns:
        The measurements in the order of ``tasks``.
    """
    total = rule.budget_s * len(tasks)
    switch_to = _PoolSwitch(settle)
    running = _warm_all(tasks, rule, clock, switch_to, on_progress, total)
    passes, factors, relative, verdicts = 0, [[] for _ in running], _relative(running, rule, 0), [None] * len(running)
    try:
        while running and not all(verdicts):
            passes, factors, relative, verdicts = _pass(
                running, rule, passes, clock, cpu_clock, switch_to, on_progress, total
            )
    except BaseException:  # an interrupt or a failing call: keep what had stopped by the last whole pass
        _finish_interrupted(running, rule, passes, verdicts, factors, relative, on_finish)
        raise
    measurements = [
        run.measurement(rule, verdict, own, width)
        for run, verdict, own, width in zip(running, verdicts, factors, relative, strict=True)
        if verdict
    ]
    if on_progress is not None:
        on_progress("done", total, total)
    for measurement in measurements:
        if on_finish is not None:
            on_finish(measurement)
    return measurements


@dataclass
class _PoolSwitch:
    """Called before each turn with its task: ``settle`` first where the task runs on another thread pool than
    the turn before."""

    settle: Callable[[], None] | None
    pool: str | None = None  # the thread pool of the last turn

    def __call__(self, task: Task) -> None:
        if self.settle is not None and self.pool is not None and task.pool != self.pool:
            self.settle()
        self.pool = task.pool


def _warm_all(
    tasks: Sequence[Task],
    rule: StopRule,
    clock: Callable[[], float],
    switch_to: Callable[[Task], None],
    on_progress: Callable[[str, float, float], None] | None,
    total: float,
) -> list[_Running]:
    """Warm up every task in turn (see :func:`warm_up`), before any is timed."""
    running = []
    for task in tasks:
        if on_progress is not None:
            on_progress(f"warming up {task.label}", 0.0, total)
        switch_to(task)
        warmup, settled = warm_up(task.sample, rule, clock)
        running.append(_Running(task, warmup, settled))
    return running


def _finish_interrupted(
    running: Sequence[_Running],
    rule: StopRule,
    passes: int,
    verdicts: Sequence[Stop | None],
    factors: Sequence[Sequence[float]],
    relative: Sequence[float | None],
    on_finish: Callable[[Measurement], None] | None,
) -> None:
    """Timing was interrupted in pass ``passes``: drop that pass's turns, and hand on the measurements of the
    tasks that had stopped by the last whole pass."""
    for run in running:
        run.blocks = [block for block in run.blocks if block.pass_index < passes]
    for run, verdict, own, width in zip(running, verdicts, factors, relative, strict=True):
        if verdict is not None and on_finish is not None:
            on_finish(run.measurement(rule, verdict, own, width))


def _pass(
    running: list[_Running],
    rule: StopRule,
    passes: int,
    clock: Callable[[], float],
    cpu_clock: Callable[[], float] | None,
    switch_to: Callable[[Task], None],
    on_progress: Callable[[str, float, float], None] | None,
    total: float,
) -> tuple[int, list[list[float]], list[float | None], list[Stop | None]]:
    """One round-robin pass: a turn for every task; returns the passes done, each task's host factors (fitted
    from the other tasks: a task's own turns must not help fit the factors divided out of its typical figure),
    each task's headline interval relative to the run (see :func:`_relative`), and the verdicts."""
    for run in running:
        calls = run.calls_per_block(rule)
        switch_to(run.task)
        cpu_start = cpu_clock() if cpu_clock is not None else 0.0
        start = clock()
        if rule.rewarm:
            run.task.sample()
        samples = [run.task.sample() for _ in range(calls)]
        seconds = clock() - start
        share = (cpu_clock() - cpu_start) / seconds if cpu_clock is not None and seconds > 0 else None
        run.blocks.append(_Block(samples, seconds, share, start, passes))
        if on_progress is not None:
            done = sum(min(other.spent_s, rule.budget_s) for other in running)
            on_progress(run.task.label, min(done, total), total)
    passes += 1
    table = [run.turn_values(rule, passes) for run in running]
    factors = [pass_factors(table[:index] + table[index + 1 :], passes) for index in range(len(running))]
    relative = _relative(running, rule, passes)
    return passes, factors, relative, [run.verdict(rule, width) for run, width in zip(running, relative, strict=True)]


def _relative(running: Sequence[_Running], rule: StopRule, passes: int) -> list[float | None]:
    """Each task's headline interval relative to the geometric mean of its group's headlines (tasks with the same
    ``Task.group``), from their clean calls by pass (:func:`mnprof.timing.stats.relative_quantile_ci`); ``None``
    in a group of fewer than three tasks (the stop rule then judges the absolute interval)."""
    widths: list[float | None] = [None] * len(running)
    members: dict[Hashable, list[int]] = {}
    for index, run in enumerate(running):
        members.setdefault(run.task.group, []).append(index)
    for indices in members.values():
        if len(indices) < MIN_PEERS:
            continue
        if passes == 0:
            found = [math.inf] * len(indices)
        else:
            calls = [running[index].calls_by_pass(rule, passes) for index in indices]
            found = relative_quantile_ci(calls, min_turns=rule.min_turns)
        for index, width in zip(indices, found, strict=True):
            widths[index] = width
    return widths
