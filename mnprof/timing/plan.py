"""From timing options to timed records: validate everything before any work, measure or read, summarise.

The command line collects its timing options into a :class:`TimingRequest`; :func:`plan` validates
every one of them (backends, optional runtimes, batch sizes, threads, device, CI target, budget, the
results file) before anything is measured, so bad input costs nothing and never touches a results
file. :func:`measure` then reads ``--from-results`` files or runs the sweep, and returns a
:class:`SweepOutcome`: the records and what happened (noisy, contended and failed measurements, a
busy host, the host's drift). Wording it for people is the command line's job.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnprof.errors import MnprofError
from mnprof.host import available_cores, host_environment
from mnprof.model.config import ModelConfig
from mnprof.parsing import parse_choice
from mnprof.runtimes.backends import parse_backends
from mnprof.timing.drift import Drift
from mnprof.timing.engine import MAX_BUDGET_S, MIN_TARGET_CI_PCT, StopRule, budget_in_range, target_in_range
from mnprof.timing.records import Device, Statistic, TimingRecord
from mnprof.timing.store import ResultsStore, read_results, refuse_copies, results_records
from mnprof.timing.sweep import TimingSettings, check_threads, parse_batch_sizes, run_sweep, sweep_drift

__all__ = [
    "DRIFT_WARNING",
    "RUNS_APART",
    "RunShift",
    "SweepOutcome",
    "TimingPlan",
    "TimingRequest",
    "check_reference",
    "default_plan",
    "measure",
    "measure_into",
    "plan",
    "run_shifts",
]

# Above this spread of the host's speed during one sweep (see mnprof.timing.drift.host_drift), say so.
DRIFT_WARNING = 0.10

# Two runs whose headlines differ by more than this overall saw the host in different states: rel reproduced
# between runs within it and mostly did not between runs beyond it (docs/timing.md; the runs are in
# benchmarks/RESULTS.md).
RUNS_APART = 0.04

Progress = Callable[[str, str, float, float], None]  # (phase, label, done, total)


@dataclass(frozen=True)
class TimingRequest:
    """The timing options as given (validated by :func:`plan`)."""

    enabled: bool
    backends: str
    batch_sizes: str
    threads: int | None
    device: str
    target_ci_pct: float
    budget_s: float
    results: Path
    resume: bool
    from_results: tuple[Path, ...]
    statistic: str = Statistic.P5.value
    reference: str | None = None


@dataclass(frozen=True)
class TimingPlan:
    """What to do: read ``documents`` (``--from-results``) or measure with ``settings`` into ``store``; show
    ``statistic`` as the latency, relative to ``reference`` (None: the geometric mean, see
    :func:`mnprof.views.grid_timings.add_relative`)."""

    settings: TimingSettings | None = None
    store: ResultsStore | None = None
    documents: tuple[dict[str, Any], ...] = ()
    statistic: Statistic = Statistic.P5
    reference: str | None = None


def check_reference(reference: str | None, ids: Sequence[str]) -> None:
    """Refuse a ``--reference`` that names no configuration of the grid, before any work."""
    if reference is not None and reference not in ids:
        raise MnprofError(
            f"--reference {reference!r} is not a configuration of this grid; accepted: one of {', '.join(ids)}"
        )


def plan(request: TimingRequest) -> TimingPlan | None:
    """Validate the request before any work: ``None`` when timing is off; bad input raises :class:`MnprofError`.

    With ``--from-results`` nothing is measured, but the timing options are validated all the same (a
    ``--budget -5`` is wrong whatever is read); only whether this host could run them (a runtime not installed,
    no GPU) is left unchecked, since reading another host's results needs neither."""
    if not request.enabled:
        return None
    statistic = parse_choice(request.statistic, Statistic, "--statistic")
    shown = {"statistic": statistic, "reference": request.reference}
    if not target_in_range(request.target_ci_pct / 100):
        raise MnprofError(
            f"--target-ci {request.target_ci_pct:g} is out of range; "
            f"accepted: a percentage in [{MIN_TARGET_CI_PCT:g}, 100)"
        )
    if not budget_in_range(request.budget_s):
        raise MnprofError(f"--budget {request.budget_s:g} is invalid; accepted: seconds in (0, {MAX_BUDGET_S:g}]")
    threads = available_cores() if request.threads is None else request.threads
    check_threads(threads, "--threads")
    backends = parse_backends(request.backends)
    batch_sizes = parse_batch_sizes(request.batch_sizes)
    device = parse_choice(request.device, Device, "--device")
    if request.from_results:
        files = [Path(path).resolve() for path in request.from_results]
        twice = next((path for index, path in enumerate(files) if path in files[:index]), None)
        if twice is not None:
            raise MnprofError(f"--from-results {twice} is given twice; accepted: each results file once")
        documents = tuple(read_results(path) for path in request.from_results)
        refuse_copies(request.from_results, documents)
        return TimingPlan(documents=documents, **shown)
    settings = TimingSettings(
        backends=backends,
        batch_sizes=batch_sizes,
        threads=threads,
        device=device,  # type: ignore[arg-type]
        rule=StopRule(target_rel_ci=request.target_ci_pct / 100, budget_s=request.budget_s),
    )
    store = ResultsStore.open(request.results, host_environment(), resume=request.resume)
    return TimingPlan(settings=settings, store=store, **shown)


@dataclass(frozen=True)
class SweepOutcome:
    """The records of a sweep (or of results files) and what happened while they were measured.

    ``measured`` is False for records read from ``--from-results`` files (nothing to report then).
    """

    records: tuple[TimingRecord, ...]
    measured: bool = False
    path: Path | None = None  # the results file the records were kept in
    cores: int | None = None  # logical cores of the host

    @property
    def busiest_load(self) -> float | None:
        """The highest 1-minute load average seen, this sweep's own threads included."""
        loads = [r.provenance.load_avg_1min for r in self.records if r.provenance.load_avg_1min is not None]
        return max(loads) if loads else None

    @property
    def host_was_busy(self) -> bool:
        """Other processes competed for the CPU: load above the core count (with half a thread of slack)."""
        load = self.busiest_load
        return bool(self.cores and load is not None and load > self.cores + 0.5)

    @property
    def failed(self) -> tuple[TimingRecord, ...]:
        return tuple(record for record in self.records if record.error)

    @property
    def contended(self) -> tuple[TimingRecord, ...]:
        """Measurements that never had the CPU to itself (other processes ran on their cores)."""
        return tuple(r for r in self.records if not r.error and r.quality is not None and r.quality.contended)

    @property
    def noisy(self) -> tuple[TimingRecord, ...]:
        """Measurements whose headline's 95% CI was still wider than the target when the budget ran out."""
        return tuple(
            r
            for r in self.records
            if not r.error and r.quality is not None and not r.quality.contended and r.quality.noisy
        )

    @property
    def drift(self) -> Drift:
        return sweep_drift(self.records)


def default_plan(results: Path, backends: str = "eager") -> TimingPlan:
    """The default method (batch 1, every available core, the engine's CI target and budget) into ``results``,
    validated as :func:`plan` validates options."""
    rule = StopRule()
    request = TimingRequest(
        enabled=True, backends=backends, batch_sizes="1", threads=None, device="cpu",
        target_ci_pct=rule.target_rel_ci * 100, budget_s=rule.budget_s, results=results, resume=False,
        from_results=(),
    )  # fmt: skip
    timing = plan(request)
    if timing is None:  # pragma: no cover - an enabled request always plans
        raise ValueError("timing was not planned")
    return timing


def measure(timing: TimingPlan, configs: Sequence[ModelConfig], on_progress: Progress | None = None) -> SweepOutcome:
    """The records for ``configs``: read from ``--from-results`` files, or measured now into the plan's store.

    An interrupt (KeyboardInterrupt) propagates after the store has kept every finished measurement.
    """
    if timing.documents:
        return SweepOutcome(tuple(results_records(timing.documents)))
    if timing.settings is None or timing.store is None:
        raise ValueError("a timing plan needs settings and a store, or documents")
    records = run_sweep(configs, timing.settings, timing.store, on_progress=on_progress)
    cores = timing.store.environment.get("logical_cores")
    return SweepOutcome(tuple(records), measured=True, path=timing.store.path, cores=cores)


def measure_into(
    path: Path, configs: Sequence[ModelConfig], backends: str = "eager", on_progress: Progress | None = None
) -> SweepOutcome:
    """Time ``configs`` with the default method (batch 1, all available cores) into the results file ``path``."""
    return measure(default_plan(path, backends), configs, on_progress)


@dataclass(frozen=True)
class RunShift:
    """How much slower ``second`` measured than ``first`` overall: the geometric mean over the configurations
    both timed (same runtime, batch size, threads, device and host) of the ratio of their headlines, minus one."""

    first: str  # a run: its run_id and when its first measurement was written (runs in that order)
    second: str
    series: str  # runtime, batch size, threads
    log_ratio: float  # the mean over the configurations of log(second's headline / first's)
    configurations: int

    @property
    def shift(self) -> float:
        """How much slower ``second`` measured overall (0.1 = 10% slower; -0.1 = 10% faster)."""
        return math.expm1(min(self.log_ratio, 700.0))  # a ratio beyond floating point's range reads as huge

    @property
    def apart(self) -> bool:
        """More than :data:`RUNS_APART` apart either way (in ratio: 4% faster or 4% slower alike)."""
        return abs(self.log_ratio) > math.log1p(RUNS_APART)


def run_shifts(records: Sequence[TimingRecord], minimum: int = 3) -> list[RunShift]:
    """Every pair of runs (sweeps) that timed at least ``minimum`` of the same configurations alike, with how far
    their headlines differ overall: the host's state in each run, which decides whether ``rel`` reproduces
    between them (see :data:`RUNS_APART`). Records of files without run ids are left out."""
    groups: dict[tuple[Any, ...], dict[str, dict[str, float]]] = {}
    started: dict[str, str] = {}
    for record in records:
        run = record.provenance.run_id
        if run is None or record.latency is None or record.error or not record.latency.p5:
            continue
        key = record.key
        series = (key.backend.value, key.batch_size, key.threads, key.device.value, record.provenance.host)
        groups.setdefault(series, {}).setdefault(run, {})[key.config.id] = record.latency.p5
        when = record.provenance.measured_at or "an unknown time"
        started[run] = min(started.get(run, when), when)
    shifts = []
    for (backend, batch, threads, device, _), runs in groups.items():
        ordered = sorted(runs, key=lambda run: (started[run], run))
        for first, second in itertools.combinations(ordered, 2):
            common = sorted(set(runs[first]) & set(runs[second]))
            if len(common) < minimum:
                continue
            ratios = [runs[second][c] / runs[first][c] for c in common]
            if not all(0 < ratio < math.inf for ratio in ratios):  # headlines beyond floating point's range
                continue
            logs = [math.log(ratio) for ratio in ratios]
            shifts.append(
                RunShift(
                    f"{first} ({started[first][:16]})",
                    f"{second} ({started[second][:16]})",
                    f"{backend} batch {batch}, {threads} threads, {device}",
                    math.fsum(logs) / len(logs),
                    len(common),
                )
            )
    return shifts
