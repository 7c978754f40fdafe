"""The host's drift: within a sweep, read from every task's turns (``host_drift``, ``sweep_drift``) and warned
about; between runs, headlines that differ overall told apart (``run_shifts``)."""

from __future__ import annotations

import random

import pytest
from cli_run import run
from factories import drifting_records, results_file, timing_record

from mnprof.timing import sweep as latency
from mnprof.timing.drift import Drift, host_drift
from mnprof.timing.plan import SweepOutcome
from mnprof.timing.records import TimingRecord


def test_sweep_drift_reads_the_turns_of_every_record():
    assert latency.sweep_drift(drifting_records(0.2)).spread == pytest.approx(0.2)
    assert latency.sweep_drift(drifting_records(0.0)).spread == 0.0
    assert latency.sweep_drift([timing_record(error="failed")]).factors == ()


def test_a_drifting_host_is_warned_about(capsys):
    from mnprof.cli.work import report_drift

    assert report_drift(SweepOutcome(tuple(drifting_records(0.02)), measured=True)) == pytest.approx(0.02)
    assert capsys.readouterr().err == ""
    assert report_drift(SweepOutcome(tuple(drifting_records(0.25)), measured=True)) == pytest.approx(0.25)
    err = capsys.readouterr().err
    assert err.startswith("mnprof: warning: the host's speed changed by 25% during this sweep") and err.count("\n") == 1


def _run_of(run_id: str, when: str, latencies: dict[str, float]) -> list[TimingRecord]:
    """Records of one run: each configuration's headline as given, one run id and start time."""
    import dataclasses

    return [
        dataclasses.replace(
            record := timing_record(config, headline_ms=ms, threads=1),
            provenance=dataclasses.replace(record.provenance, run_id=run_id, measured_at=when),
        )
        for config, ms in latencies.items()
    ]


def test_runs_whose_headlines_differ_overall_are_told_apart():
    import dataclasses

    from mnprof.timing.plan import RUNS_APART, run_shifts

    base = {"1.0-224": 12.0, "0.5-160": 5.0, "0.25-128": 2.5}
    first = _run_of("aaaa", "2026-01-01T10:00:00+00:00", base)
    ratios = {"1.0-224": 1.21, "0.5-160": 1.10, "0.25-128": 1.0}  # geometric mean 1.10 (arithmetic 1.103)
    slower = _run_of("bbbb", "2026-01-01T10:05:00+00:00", {c: ms * ratios[c] for c, ms in base.items()})
    close = _run_of("cccc", "2026-01-01T10:10:00+00:00", {c: ms * 1.02 for c, ms in base.items()})
    shifts = {(s.first[:4], s.second[:4]): s for s in run_shifts(first + slower + close)}
    assert set(shifts) == {("aaaa", "bbbb"), ("aaaa", "cccc"), ("bbbb", "cccc")}  # in the order they ran
    assert shifts["aaaa", "bbbb"].shift == pytest.approx(0.10) and shifts["aaaa", "bbbb"].apart
    assert shifts["aaaa", "cccc"].shift == pytest.approx(0.02) and not shifts["aaaa", "cccc"].apart
    assert shifts["bbbb", "cccc"].shift == pytest.approx(1.02 / 1.10 - 1) and shifts["bbbb", "cccc"].apart
    assert shifts["aaaa", "bbbb"].configurations == 3 and RUNS_APART == 0.04
    # 4% apart either way alike: 1/1.0416 is 4% faster, as 1.0416 is 4% slower (and 0.9615 is not apart)
    for factor, apart in ((1.0416, True), (1 / 1.0416, True), (1.039, False), (1 / 1.039, False)):
        later = _run_of("eeee", "2026-01-01T12:00:00+00:00", {c: ms * factor for c, ms in base.items()})
        (shift,) = run_shifts(first + later)
        assert shift.apart is apart, factor
    other = [dataclasses.replace(r, key=dataclasses.replace(r.key, batch_size=8)) for r in slower]
    assert len(run_shifts(first + other)) == 0  # another batch size is another series: never compared
    two = _run_of("dddd", "2026-01-01T11:00:00+00:00", {"1.0-224": 24.0, "0.5-160": 10.0})
    assert not [s for s in run_shifts(first + two) if "dddd" in s.second]  # two configurations in common: too few
    unlabelled = [timing_record(c, headline_ms=ms * 2, threads=1) for c, ms in base.items()]  # files without run ids
    assert len(run_shifts(first + unlabelled)) == 0


def test_table_from_results_warns_when_the_runs_saw_the_host_in_different_states(capsys, tmp_path):
    base = {"1.0-224": 12.0, "0.5-160": 5.0, "0.25-128": 2.5}
    paths = []
    for name, run_id, factor in (("a", "aaaa", 1.0), ("b", "bbbb", 1.3)):
        rows = [r.to_row() for r in _run_of(run_id, f"2026-01-01T10:0{len(paths)}:00+00:00",
                                            {c: ms * factor for c, ms in base.items()})]  # fmt: skip
        paths.append(results_file(tmp_path / f"{name}.json", rows))
    code, out, err = run(capsys, "table", "-q", "--from-results", str(paths[0]), "--from-results", str(paths[1]),
                         "--alpha", "1.0,0.5,0.25", "--resolution", "224,160,128")  # fmt: skip
    assert code == 0, err
    assert "run bbbb (2026-01-01T10:01) measured +30.0% vs run aaaa (2026-01-01T10:00) over the 3 configurations" in err
    assert "compare rel within a run, or rerun" in err and "rel" in out


def turns(starts, level, noise=0.0, seed=0):
    """``(start, median)`` turns of a task whose speed is ``level(start)`` times its own, with noise."""
    rng = random.Random(seed)
    return [(t, level(t) * (1 + rng.uniform(-noise, noise))) for t in starts]


def test_host_drift_sees_every_task_slow_down_together():
    starts = [0.5 * i for i in range(60)]  # 30 s of turns
    step = lambda t: 1.0 if t < 15 else 1.2  # noqa: E731 - the host 20% slower after 15 s
    tasks = [[(t, base * f) for t, f in turns(starts, step, 0.01, seed)] for seed, base in enumerate((1, 3, 9))]
    drift = host_drift(tasks, window_s=3.0)
    assert len(drift.factors) == 10  # 30 s in windows of 3 s
    assert drift.spread == pytest.approx(0.2, abs=0.03)
    assert max(drift.factors[:5]) < min(drift.factors[5:])  # the step is where it happened


def test_host_drift_ignores_what_only_one_task_does():
    starts = [0.5 * i for i in range(60)]
    steady = lambda t: 1.0  # noqa: E731
    odd_one = lambda t: 1.0 if t < 15 else 1.5  # noqa: E731 - only this task slows down
    tasks = [turns(starts, steady, 0.01, 1), turns(starts, steady, 0.01, 2), turns(starts, odd_one, 0.01, 3)]
    assert host_drift(tasks).spread < 0.03


def test_host_drift_leaves_out_windows_with_too_few_turns_and_needs_two_to_spread():
    assert host_drift([]) == Drift(3.0, ()) and host_drift([]).spread == 0.0
    assert host_drift([[(0.0, 1.0), (10.0, 2.0)]], min_turns=2).factors == ()  # one turn per window
    one_window = host_drift([[(0.0, 1.0), (1.0, 1.1), (2.0, 1.2), (2.5, 1.3)]])
    assert len(one_window.factors) == 1 and one_window.spread == 0.0
