"""Time a grid of configurations on this host: settings, prepared runtimes, output checks, typed records.

This is the Python API behind ``mnprof table``'s timing columns::

    from mnprof.model.config import grid
    from mnprof.host import host_environment
    from mnprof.timing.store import ResultsStore
    from mnprof.timing.sweep import TimingSettings, run_sweep

    settings = TimingSettings(backends=("eager", "fused"), batch_sizes=(1, 8), threads=2)
    store = ResultsStore.open(Path("results.json"), host_environment(), resume=False)
    records = run_sweep(grid([1.0, 0.5], [224]), settings, store)  # TimingRecords, also in results.json
"""

from __future__ import annotations

import copy
import math
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from mnprof.counting.traced import plan_count
from mnprof.errors import MnprofError
from mnprof.host import available_cores, available_memory, theoretical_peak_gflops
from mnprof.model.config import ModelConfig
from mnprof.model.seeded import calibrated_model, fixed_input
from mnprof.parsing import parse_choice, parse_list
from mnprof.runtimes import backends, quantized
from mnprof.runtimes.registry import INT8, LOSSY, ONNXRUNTIME_POOL
from mnprof.timing.drift import Drift, host_drift
from mnprof.timing.engine import Measurement, StopRule, Task
from mnprof.timing.measured import Check, OutputAgreement, measured_record
from mnprof.timing.peaks import measure_gemm_peak
from mnprof.timing.records import Backend, Device, GemmPeak, Provenance, TimingKey, TimingRecord, finite
from mnprof.timing.stats import SampleStats
from mnprof.timing.store import ResultsStore
from mnprof.timing.timer import pool_of, time_tasks
from mnprof.user_code import held_warnings, torch_state_kept, torch_state_kept_each_call, user_code

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_THREADS",
    "TimingSettings",
    "check_memory",
    "check_threads",
    "memory_estimate",
    "parse_batch_sizes",
    "run_sweep",
    "sweep_drift",
    "valid_batch_size",
]

Progress = Callable[[str, str, float, float], None]  # (phase, label, done, total)

MAX_BATCH_SIZE = 1024  # images per call: more than any latency or throughput figure of a mobile network needs
MAX_THREADS = 1024


def valid_batch_size(size: object) -> bool:
    """Whether ``size`` is a batch size mnprof times: an integer in [1, :data:`MAX_BATCH_SIZE`]."""
    return not isinstance(size, bool) and isinstance(size, int) and 1 <= size <= MAX_BATCH_SIZE


def check_threads(threads: object, name: str = "threads") -> None:
    """Refuse a thread count outside [1, :data:`MAX_THREADS`] (or not an integer), as ``name``."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise MnprofError(f"{name} {threads!r} is invalid; accepted: an integer in [1, {MAX_THREADS}]")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """Parse ``"1,8"`` into batch sizes, each an integer in [1, 1024]."""
    sizes = []
    accepted = f"integers in [1, {MAX_BATCH_SIZE}]"
    for item in parse_list(text, "batch size", accepted, numbers=True):
        try:
            size = int(item)
        except ValueError:
            raise MnprofError(f"batch size {item!r} is not an integer; accepted: {accepted}") from None
        if not valid_batch_size(size):
            raise MnprofError(f"batch size {size} is invalid; accepted: {accepted}")
        sizes.append(size)
    return tuple(dict.fromkeys(sizes))


@dataclass(frozen=True)
class TimingSettings:
    """How to time: validated on construction (a missing runtime or GPU is an error here, before any work).

    Args:
        backends: runtimes to time, see :class:`mnprof.timing.records.Backend`.
        batch_sizes: images per call; latency is per call, throughput images per second.
        threads: intra-op threads (torch and onnxruntime); default: the cores this process may use.
        device: ``cpu`` or ``cuda``.
        rule: warm-up and stopping, see :class:`mnprof.timing.engine.StopRule` (5% CI target, 2.5 s budget).
    """

    backends: tuple[Backend, ...] = (Backend.EAGER,)
    batch_sizes: tuple[int, ...] = (1,)
    threads: int = field(default_factory=available_cores)
    device: Device = Device.CPU
    rule: StopRule = StopRule()

    def __post_init__(self) -> None:
        chosen = tuple(parse_choice(b, Backend, "backend") for b in self.backends)
        device = parse_choice(self.device, Device, "device")
        if not chosen:
            raise MnprofError("no backend given; accepted: " + ", ".join(b.value for b in Backend))
        check_threads(self.threads)
        if not self.batch_sizes or not all(valid_batch_size(size) for size in self.batch_sizes):
            raise MnprofError(
                f"batch sizes {self.batch_sizes!r} are invalid; accepted: integers in [1, {MAX_BATCH_SIZE}]"
            )
        object.__setattr__(self, "backends", tuple(dict.fromkeys(chosen)))
        object.__setattr__(self, "device", device)
        backends.check_device(device)  # type: ignore[arg-type]
        for backend in self.backends:
            backends.check_available(backend, device)  # type: ignore[arg-type]

    def keys(self, configs: Sequence[ModelConfig]) -> list[TimingKey]:
        """Every configuration x backend x batch size, in that order."""
        return [
            TimingKey(config, backend, batch, self.threads, self.device)
            for config in configs
            for backend in self.backends
            for batch in self.batch_sizes
        ]


def _failed_record(
    key: TimingKey,
    error: str,
    environment: dict[str, Any],
    check: Check,
    agreement: OutputAgreement | None = None,
) -> TimingRecord:
    """The record of a backend that could not post a time (failed, computed something else, or did not agree)."""
    provenance = Provenance.now(key, backends.runtime_version(key.backend), environment)
    fields = agreement.record_fields() if agreement is not None else {}
    return TimingRecord(key, provenance, finite(check[0]), check[1], error=error, **fields)


def _check_output(
    key: TimingKey, runner: backends.Runner, model: Any, reference: Any, device: Device
) -> tuple[Check, str | None, OutputAgreement | None]:
    """``((max |error|, tolerance), problem, agreement)``: equality for exact runtimes, agreement for lossy ones."""
    if key.backend not in LOSSY:
        error, allowed, problem = backends.output_error(runner.output(), reference, device)
        return (error, allowed), problem, None
    agreed = quantized.agreement(
        runner.infer,
        model,
        runner.output(),
        reference,
        key.batch_size,
        key.config.resolution,  # type: ignore[arg-type]
    )
    details = OutputAgreement(agreed.cosine, agreed.top1, runner.quantization)
    return (agreed.max_abs_error, None), agreed.problem, details


def _refuse_other_models(store: ResultsStore, kept: Sequence[TimingKey]) -> None:
    """Refuse to resume timings measured on another model: a kept record's MACs differ from those of the
    configuration's model now (its factory changed), so its time would stand beside another model's counts."""
    macs_now: dict[ModelConfig, int] = {}
    for key in kept:
        record = store.record(key.ident())
        then = record.rates.macs_analytic if record is not None and record.rates is not None else None
        if then is None:
            continue
        now = macs_now.get(key.config)
        if now is None:
            now = macs_now[key.config] = plan_count(key.config).macs
        if then != now:
            raise MnprofError(
                f"--resume: {store.path} holds timings of {key.config.id} measured on a model of {then:,} MACs, "
                f"and its model now has {now:,} (its code changed); accepted: a new --results file, or the same "
                "one without --resume (measured again)"
            )


def run_sweep(
    configs: Sequence[ModelConfig],
    settings: TimingSettings,
    store: ResultsStore,
    *,
    on_progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[TimingRecord]:
    """:func:`_run_sweep` with standard output sent to standard error throughout: a model (a user's) that prints
    while it is prepared, checked or timed never reaches mnprof's machine-readable output."""
    with redirect_stdout(sys.stderr):
        return _run_sweep(configs, settings, store, on_progress=on_progress, clock=clock)


def _run_sweep(
    configs: Sequence[ModelConfig],
    settings: TimingSettings,
    store: ResultsStore,
    *,
    on_progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[TimingRecord]:
    """Time every configuration x backend x batch size not already in ``store``; returns all their records.

    Each backend's output is checked against eager PyTorch on the same input first (see
    :func:`mnprof.runtimes.backends.tolerance`); one that fails or differs gets an error record and no time.
    Records are written to ``store`` as each measurement finishes, so an interrupted sweep keeps them.
    """
    keys = settings.keys(configs)
    done = store.done()
    _refuse_other_models(store, [key for key in keys if key.ident() in done])
    todo = [key for key in keys if key.ident() not in done]
    check_memory(todo)
    if todo:
        progress = on_progress or (lambda *_: None)
        peak = _gemm_peak(settings, store, progress, clock)
        theoretical, _ = theoretical_peak_gflops(settings.threads) if settings.device is Device.CPU else (None, "GPU")
        prepared = _prepare(todo, settings, store, progress)
        _time_prepared(configs, prepared, settings, store, peak, theoretical, progress, clock)
    return [record for key in keys if (record := store.record(key.ident())) is not None]


def _gemm_peak(
    settings: TimingSettings, store: ResultsStore, progress: Progress, clock: Callable[[], float]
) -> GemmPeak:
    """The host's GEMM peaks for the runtimes of ``settings``, kept in ``store`` (the results file)."""
    progress("GEMM peak", "float32 matrix products", 0, 1)
    peak = measure_gemm_peak(
        settings.device,
        settings.threads,
        with_onnxruntime=bool(ONNXRUNTIME_POOL & set(settings.backends)),
        with_int8=bool(INT8 & set(settings.backends)),
        clock=clock,
    )
    store.set_gemm_peak(peak.to_row())
    return peak


@dataclass
class _Prepared:
    """The tasks that passed their output check, with each one's check and agreement."""

    tasks: list[Task] = field(default_factory=list)
    checks: dict[TimingKey, Check] = field(default_factory=dict)
    agreements: dict[TimingKey, OutputAgreement | None] = field(default_factory=dict)


def _prepare(todo: Sequence[TimingKey], settings: TimingSettings, store: ResultsStore, progress: Progress) -> _Prepared:
    """Prepare every runtime and check its output; one that fails or differs gets its error record in ``store``."""
    prepared = _Prepared()
    models: dict[ModelConfig, Any] = {}
    with backends.torch_threads(settings.threads):
        for index, key in enumerate(todo):
            progress("preparing", key.label, index, len(todo))
            # One model per configuration, shared by its runtimes and batch sizes only: the seeded model's
            # BatchNorm is calibrated at the configuration's resolution, so another resolution's is another model.
            model = models.get(key.config)
            if model is None:  # keys come configuration by configuration: the previous one is done with
                models.clear()
                model = models[key.config] = calibrated_model(key.config)
            _prepare_one(key, model, settings, store, prepared)
        models.clear()
    return prepared


def _prepare_one(key: TimingKey, model: Any, settings: TimingSettings, store: ResultsStore, into: _Prepared) -> None:
    """Prepare ``key``'s runtime on ``model`` and check its output: its task goes ``into`` the prepared ones, or
    its error record into ``store``."""
    inputs = fixed_input(key.config, key.batch_size)
    who = f"model {key.config.family} at {key.config.id}"  # torch's settings it changes: one line
    fence = nullcontext() if key.config.builtin else user_code(f"model {key.label}: forward failed:", who=who)
    with torch.inference_mode(), fence:
        reference = model(inputs)
    runner, check, problem, agreed = _prepared_runner(key, model, inputs, reference, settings, who)
    if problem is not None or runner is None:
        store.add(_failed_record(key, str(problem), store.environment, check, agreed))
        return
    into.checks[key], into.agreements[key] = check, agreed
    pool = pool_of(key.backend.value, key.label)
    group = (key.backend, key.batch_size)  # what the table's rel compares within
    sample = backends.sampler(runner, settings.device)
    if not key.config.builtin:  # the calls of every model interleave: each runs under mnprof's settings
        sample = torch_state_kept_each_call(sample, who)
    into.tasks.append(Task(key, sample, key.label, pool, group))


def _prepared_runner(
    key: TimingKey, model: Any, inputs: Any, reference: Any, settings: TimingSettings, who: str
) -> tuple[backends.Runner | None, Check, str | None, OutputAgreement | None]:
    """``(runner, check, problem, agreement)``: ``key``'s runtime prepared and its output checked; ``problem``
    says why it posts no time (a runtime failing on one configuration is recorded on its row)."""
    runner, agreed = None, None
    # A user's model is traced, compiled or exported here: torch's warnings about it are held too, and
    # torch's settings it changes are set back.
    held = nullcontext() if key.config.builtin else held_warnings()
    kept = nullcontext() if key.config.builtin else torch_state_kept(who)
    try:
        with held, kept:
            placed = model if settings.device is Device.CPU else copy.deepcopy(model).to(settings.device.value)
            runner = backends.prepare(key.backend, placed, inputs.to(settings.device.value), threads=settings.threads)
            check, problem, agreed = _check_output(key, runner, model, reference, settings.device)
            agreed = replace(agreed or OutputAgreement(), model_bytes=runner.model_bytes)
    except Exception as failure:  # a runtime failing on one configuration is recorded on its row
        check, problem = (math.inf, 0.0), f"{key.backend.value} failed: {type(failure).__name__}: "
        problem += " ".join(str(failure).split())[:300]
    return runner, check, problem, agreed


def _time_prepared(
    configs: Sequence[ModelConfig],
    prepared: _Prepared,
    settings: TimingSettings,
    store: ResultsStore,
    peak: GemmPeak,
    theoretical: float | None,
    progress: Progress,
    clock: Callable[[], float],
) -> None:
    """Time the prepared tasks together, each record written to ``store`` as its measurement finishes."""
    environment = store.environment

    def finish(measurement: Measurement) -> None:
        key: TimingKey = measurement.key  # type: ignore[assignment]
        record = measured_record(
            key,
            measurement,
            macs=plan_count(key.config).macs,
            gemm_peak_gflops=peak.roof(key.backend),
            theoretical_peak=theoretical,
            check=prepared.checks[key],
            rule=settings.rule,
            environment=environment,
            unix_offset=unix_offset,
            agreement=prepared.agreements.get(key),
            run_id=run_id,
        )
        store.add(record)

    unix_offset = time.time() - clock()
    run_id = uuid.uuid4().hex[:12]
    users = sorted({str(config.family) for config in configs if not config.builtin})
    # A user's model runs unguarded in the timing passes: what it raises is one line, what it prints stays
    # off stdout (the engine keeps every measurement that finished before).
    fence = user_code(f"model {', '.join(users)}: failed while timed:", limited=False) if users else nullcontext()
    with fence:
        time_tasks(
            prepared.tasks,
            settings.rule,
            device=settings.device,
            threads=settings.threads,
            clock=clock,
            on_finish=finish,
            on_progress=lambda label, done_s, total_s: progress("timing", label, done_s, total_s),
        )


def memory_estimate(key: TimingKey, activation_copies: int = 1) -> int:
    """Bytes one timed call of ``key`` needs at least, float32: the weights (twice: the model and the runtime's
    copy), the input batch, and ``activation_copies`` times the largest input + output pair of any layer for
    the whole batch (eager PyTorch holds about twice that pair at its peak: see ``mnprof memory``)."""
    count = plan_count(key.config)
    peak = max(layer.in_elements + layer.out_elements for layer in count.layers)
    images = key.batch_size * 3 * key.config.resolution**2
    return 4 * (2 * count.params() + images + activation_copies * key.batch_size * peak)


def check_memory(keys: Sequence[TimingKey], activation_copies: int = 1) -> None:
    """Refuse, before anything is allocated, a measurement that cannot fit in the memory available now."""
    available = available_memory()
    if available is None or not keys:
        return
    worst = max(keys, key=lambda key: memory_estimate(key, activation_copies))
    needed = memory_estimate(worst, activation_copies)
    if needed > available:
        raise MnprofError(
            f"{worst.label} needs at least {needed / 2**30:.1f} GiB (weights, input and the largest layer's "
            f"activations, float32) and {available / 2**30:.1f} GiB are available; accepted: a smaller batch size "
            "or resolution"
        )


def sweep_drift(records: Sequence[TimingRecord], window_s: float = 3.0) -> Drift:
    """How the host's speed moved during the sweep(s) that measured ``records`` (with their raw samples).

    Every turn of every record, placed by its start time: see :func:`mnprof.timing.drift.host_drift`.
    Records without turn times (error records, older files) are left out.
    """
    tasks = []
    for record in records:
        turns = record.raw.turns() if record.raw is not None else []
        if turns:
            tasks.append([(start, SampleStats.of(calls).median) for start, calls in turns])
    return host_drift(tasks, window_s)
