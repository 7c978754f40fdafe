"""Host drift: the speed of the whole host moving while tasks are timed together, every task slowing down or
speeding up at once. This process's CPU time cannot see it and no repetition removes it: it is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mnprof.timing.stats import SampleStats

__all__ = ["Drift", "host_drift"]


@dataclass(frozen=True)
class Drift:
    """How the speed of the whole host moved while tasks were timed together (see :func:`host_drift`).

    ``factors``: one per window of ``window_s`` seconds with enough turns, in time order: the median over
    the turns started in it of (turn median / that task's median of turn medians). 1.0 = the task's usual
    speed, 1.2 = every task 20% slower than usual at that time.
    """

    window_s: float
    factors: tuple[float, ...]

    @property
    def spread(self) -> float:
        """Slowest window over fastest, minus one (0.2 = the host was 20% slower at one time than another)."""
        return max(self.factors) / min(self.factors) - 1 if len(self.factors) > 1 else 0.0


def host_drift(tasks: Sequence[Sequence[tuple[float, float]]], window_s: float = 3.0, min_turns: int = 4) -> Drift:
    """The common speed factor of tasks timed together, per window of time.

    Args:
        tasks: for each task, its turns as ``(start, median)``; starts in seconds on one clock for all tasks.
        window_s: width of a window; round-robin passes are a few seconds long, so 3 s holds about one.
        min_turns: windows with fewer turns (of all tasks together) are left out.

    A median over tasks cancels what is particular to one task; what remains moves the whole host. Each
    task is normalised by its own median, so short and long tasks count alike.
    """
    points: list[tuple[float, float]] = []
    for turns in tasks:
        medians = [median for _, median in turns if median > 0]
        if len(medians) < 2:
            continue
        usual = SampleStats.of(medians).median
        points.extend((start, median / usual) for start, median in turns if median > 0)
    if not points:
        return Drift(window_s, ())
    origin = min(start for start, _ in points)
    windows: dict[int, list[float]] = {}
    for start, ratio in points:
        windows.setdefault(int((start - origin) // window_s), []).append(ratio)
    factors = tuple(SampleStats.of(ratios).median for _, ratios in sorted(windows.items()) if len(ratios) >= min_turns)
    return Drift(window_s, factors)
