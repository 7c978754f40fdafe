"""Time a grid of configurations on this host: settings, models, output checks, GEMM peak, result rows.

This is the Python API behind ``mnprof table``'s timing columns::

    from mnprof.model.config import grid
    from mnprof.timing.sweep import TimingSettings, run_sweep
    from mnprof.timing.store import ResultsStore
    from mnprof.timing.host import host_environment

    settings = TimingSettings(backends=("eager", "fused"), batch_sizes=(1, 8), threads=2)
    store = ResultsStore.open(Path("results.json"), host_environment(), resume=False)
    rows = run_sweep(grid([1.0, 0.5], [224]), settings, store)  # flat dicts, also in results.json
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig, parse_choice
from mnprof.model.seeded import calibrated_model, fixed_input
from mnprof.timing.backends import Backend, Device, check_available, check_device
from mnprof.timing.engine import Drift, Measurement, StopRule, Task, gc_paused, interleave
from mnprof.timing.host import available_cores, theoretical_peak_gflops
from mnprof.timing.store import MeasurementKey, ResultsStore

__all__ = [
    "GEMM_KERNELS",
    "TimingKey",
    "TimingSettings",
    "measure_gemm_peak",
    "parse_batch_sizes",
    "run_sweep",
    "settle_threads",
    "sweep_drift",
]

# Float32 matrix products of 2 n^3 FLOPs whose best rate is the measured peak: (kernel, n).
GEMM_KERNELS = {Device.CPU: (("mm", 2048), ("conv1x1", 1024)), Device.CUDA: (("mm", 8192), ("conv1x1", 4096))}
GEMM_RULE = StopRule(target_rel_ci=0.02, budget_s=0.5, block_s=0.04, warmup_max_s=0.3)

Progress = Callable[[str, str, float, float], None]  # (phase, label, done, total)


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """Parse ``"1,8"`` into batch sizes, each an integer >= 1."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise MnprofError(f"batch size list {text!r} is empty or has an empty item; accepted: integers >= 1")
    sizes = []
    for item in items:
        try:
            size = int(item)
        except ValueError:
            raise MnprofError(f"batch size {item!r} is not an integer; accepted: integers >= 1") from None
        if size < 1:
            raise MnprofError(f"batch size {size} is invalid; accepted: integers >= 1")
        sizes.append(size)
    return tuple(dict.fromkeys(sizes))


@dataclass(frozen=True)
class TimingSettings:
    """How to time: validated on construction (a missing runtime or GPU is an error here, before any work).

    Args:
        backends: runtimes to time, see :class:`mnprof.timing.backends.Backend`.
        batch_sizes: images per call; latency is per call, throughput images per second.
        threads: intra-op threads (torch and onnxruntime); default: the cores this process may use.
        device: ``cpu`` or ``cuda``.
        rule: warm-up and stopping, see :class:`mnprof.timing.engine.StopRule` (2% CI target, 2 s budget).
    """

    backends: tuple[Backend, ...] = (Backend.EAGER,)
    batch_sizes: tuple[int, ...] = (1,)
    threads: int = field(default_factory=available_cores)
    device: Device = Device.CPU
    rule: StopRule = StopRule()

    def __post_init__(self) -> None:
        backends = tuple(parse_choice(b, Backend, "backend") for b in self.backends)
        device = parse_choice(self.device, Device, "device")
        if not backends:
            raise MnprofError("no backend given; accepted: " + ", ".join(b.value for b in Backend))
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise MnprofError(f"threads {self.threads!r} is invalid; accepted: an integer >= 1")
        if not self.batch_sizes or any(
            isinstance(size, bool) or not isinstance(size, int) or size < 1 for size in self.batch_sizes
        ):
            raise MnprofError(f"batch sizes {self.batch_sizes!r} are invalid; accepted: integers >= 1")
        object.__setattr__(self, "backends", tuple(dict.fromkeys(backends)))
        object.__setattr__(self, "device", device)
        check_device(device)  # type: ignore[arg-type]
        for backend in self.backends:
            check_available(backend, device)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TimingKey:
    """One measurement's identity: configuration, backend, batch size, threads, device."""

    config: ModelConfig
    backend: Backend
    batch_size: int
    threads: int
    device: Device

    @property
    def label(self) -> str:
        return f"{self.config.id} {self.backend.value} batch {self.batch_size}"

    def ident(self) -> MeasurementKey:
        return (self.config.id, self.backend.value, self.batch_size, self.threads, self.device.value)


def measure_gemm_peak(
    device: Device,
    threads: int,
    *,
    kernels: Sequence[tuple[str, int]] | None = None,
    with_onnxruntime: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """The best float32 GEMM rate (GFLOP/s) of this host with ``threads`` threads, as a record.

    Each kernel (see :func:`mnprof.timing.backends.gemm_sampler`) is timed with the same engine as the
    models; the peak is the best median rate, ``2 n^3 / median``. ``with_onnxruntime`` adds
    onnxruntime's own GEMM (when its backend is timed, its fraction of the peak stays meaningful).
    """
    from mnprof.timing.backends import gemm_sampler, torch_threads

    kernels = tuple(kernels or GEMM_KERNELS[device])
    if with_onnxruntime and device is Device.CPU:
        kernels += (("onnxruntime", 1024),)
    with torch_threads(threads):
        tasks = [
            Task(kernel, gemm_sampler(*kernel, device, threads), f"GEMM {kernel[0]} {kernel[1]}", pool=_pool(kernel[0]))
            for kernel in kernels
        ]
        tasks.sort(key=lambda task: task.pool == "onnxruntime")
        measurements = interleave(
            tasks, GEMM_RULE, clock=clock, cpu_clock=_cpu_clock(device, threads), settle=settle_threads
        )
    rates = {m.key: 2 * m.key[1] ** 3 / m.stats.median / 1e9 for m in measurements}  # type: ignore[index]
    best = max(rates, key=rates.__getitem__)
    return {
        "device": device.value,
        "threads": threads,
        "kernel": f"{best[0]} n={best[1]}",  # type: ignore[index]
        "gflops": rates[best],
        "gflops_by_kernel": {f"{kernel} n={size}": rate for (kernel, size), rate in rates.items()},  # type: ignore[misc]
    }


def _pool(runtime: str) -> str:
    """The thread pool a runtime's calls run on (the engine settles between pools)."""
    return "onnxruntime" if runtime == Backend.ONNXRUNTIME.value else "torch"


def _cpu_clock(device: Device, threads: int) -> Callable[[], float] | None:
    """This process's CPU seconds per thread it should keep busy: the engine's contention gauge (CPU only)."""
    if device is not Device.CPU:
        return None
    return lambda: time.process_time() / threads


def settle_threads(
    minimum_s: float = 0.05, idle_share: float = 0.05, window_s: float = 0.002, limit_s: float = 0.25
) -> None:
    """Wait ``minimum_s``, then until this process's threads stop using the CPU (``limit_s`` in all).

    After its last call, onnxruntime's idle workers keep a core busy for about 35 ms (torch's OpenMP
    workers about 10 ms), and wake up now and then for a while longer: torch calls made within 20 ms
    of onnxruntime's last call took 6 ms instead of 2 every other call (0.25-128 here); after 50 ms
    none did. The CPU-time check alone returned after 2 to 4 ms, hence the minimum wait. The engine
    calls this between turns on different thread pools; the sweep orders tasks by pool so that a
    pass switches pools only twice.
    """
    deadline = time.perf_counter() + limit_s
    time.sleep(minimum_s)
    while time.perf_counter() < deadline:
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(window_s)
        if (time.process_time() - cpu) / (time.perf_counter() - wall) < idle_share:
            return


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this OS
        return None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _config_columns(config: ModelConfig) -> dict[str, Any]:
    return {
        "id": config.id,
        "alpha": config.alpha,
        "resolution": config.resolution,
        "num_classes": config.num_classes,
        "variant": config.variant.value,
        "rounding": config.rounding.value,
    }


def _base_row(key: TimingKey, environment: dict[str, Any]) -> dict[str, Any]:
    from mnprof.timing.backends import runtime_version

    return {
        **_config_columns(key.config),
        "backend": key.backend.value,
        "runtime_version": runtime_version(key.backend),
        "device": key.device.value,
        "batch_size": key.batch_size,
        "threads": key.threads,
        "host": environment.get("host_fingerprint"),
        "cpu_model": environment.get("cpu_model"),
        "gpu": environment.get("gpu") if key.device is Device.CUDA else None,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # Runnable threads averaged over the last minute, this sweep's own included (about ``threads``):
        # well above the core count means other work competed for the CPU while this was timed.
        "load_avg_1min": _load_average(),
    }


def measurement_row(
    key: TimingKey,
    measurement: Measurement,
    *,
    macs: int,
    gemm_peak_gflops: float,
    theoretical_peak: float | None,
    check: tuple[float, float],
    rule: StopRule,
    environment: dict[str, Any],
    unix_offset: float = 0.0,
) -> dict[str, Any]:
    """A flat record of one measurement: statistics in milliseconds, rates per second, the raw samples.

    ``unix_offset`` turns the engine's clock readings into Unix time (``time.time() - clock()``).
    """
    stats = measurement.stats
    achieved = 2 * macs * key.batch_size / stats.median / 1e9
    milliseconds = {
        "median": stats.median,
        "iqr": stats.iqr,
        "q25": stats.q25,
        "q75": stats.q75,
        "p90": stats.p90,
        "min": stats.minimum,
        "max": stats.maximum,
        "mean": stats.mean,
        "ci_low": measurement.ci[0],
        "ci_high": measurement.ci[1],
    }
    return {
        **_base_row(key, environment),
        **{f"latency_ms_{name}": None if value is None else value * 1e3 for name, value in milliseconds.items()},
        "ci_halfwidth_pct": _finite(measurement.ci[2] * 100),
        "target_ci_pct": rule.target_rel_ci * 100,
        "noisy": measurement.noisy,
        "stop": measurement.stop.value,
        "samples": stats.n,
        "turns": len(measurement.turns),
        "warmup_samples": len(measurement.warmup),
        "samples_discarded": len(measurement.discarded),
        "cpu_share_best": max(measurement.cpu_shares, default=None),
        "contended": measurement.contended,
        "warmup_settled": measurement.warmup_settled,
        "budget_s": rule.budget_s,
        "timing_s": measurement.spent_s,
        "throughput_ips": key.batch_size / stats.median,
        "macs_analytic": macs,
        "gflops_achieved": achieved,
        "gemm_peak_gflops": gemm_peak_gflops,
        "peak_fraction": achieved / gemm_peak_gflops,
        "theoretical_peak_gflops": theoretical_peak,
        "theoretical_peak_fraction": achieved / theoretical_peak if theoretical_peak else None,
        "output_max_abs_error": check[0],
        "output_tolerance": check[1],
        "error": None,
        "latency_ms_samples": [sample * 1e3 for sample in measurement.samples],
        "turn_sizes": list(measurement.turn_sizes),  # calls per turn of latency_ms_samples, in order
        "turn_started_unix": [round(start + unix_offset, 3) for start in measurement.turn_starts],
        "latency_ms_discarded": [sample * 1e3 for sample in measurement.discarded],
    }


def error_row(key: TimingKey, error: str, environment: dict[str, Any], check: tuple[float, float] | None = None):
    """A record of a backend that could not post a time (failed, or computed something else)."""
    return {
        **_base_row(key, environment),
        "latency_ms_median": None,
        "latency_ms_iqr": None,
        "throughput_ips": None,
        "output_max_abs_error": _finite(check[0]) if check else None,
        "output_tolerance": check[1] if check else None,
        "error": error,
    }


def _keys(configs: Sequence[ModelConfig], settings: TimingSettings) -> list[TimingKey]:
    return [
        TimingKey(config, backend, batch, settings.threads, settings.device)
        for config in configs
        for backend in settings.backends
        for batch in settings.batch_sizes
    ]


def run_sweep(
    configs: Sequence[ModelConfig],
    settings: TimingSettings,
    store: ResultsStore,
    *,
    on_progress: Progress | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[dict[str, Any]]:
    """Time every configuration x backend x batch size not already in ``store``; returns all their rows.

    Each backend's output is checked against eager PyTorch on the same input first (see
    :func:`mnprof.timing.backends.tolerance`); one that fails or differs gets an error row and no time. Rows
    are written to ``store`` as each measurement finishes, so an interrupted sweep keeps them.
    """
    import torch

    from mnprof.counting.analytic import analytic_count
    from mnprof.timing.backends import output_error, prepare, sampler, torch_threads

    keys = _keys(configs, settings)
    done = store.done()
    todo = [key for key in keys if key.ident() not in done]
    environment = store.environment
    if todo:
        progress = on_progress or (lambda *_: None)
        progress("GEMM peak", "float32 matrix products", 0, 1)
        peak = measure_gemm_peak(
            settings.device, settings.threads, with_onnxruntime=Backend.ONNXRUNTIME in settings.backends, clock=clock
        )
        store.set_gemm_peak(peak)
        theoretical, _ = theoretical_peak_gflops(settings.threads) if settings.device is Device.CPU else (None, "GPU")
        tasks, checks = [], {}
        models: dict[tuple[Any, ...], Any] = {}
        with torch_threads(settings.threads):
            for index, key in enumerate(todo):
                progress("preparing", key.label, index, len(todo))
                model = models.get(key.config.width_key)
                if model is None:
                    model = models[key.config.width_key] = calibrated_model(key.config)
                inputs = fixed_input(key.config, key.batch_size)
                with torch.inference_mode():
                    reference = model(inputs)
                try:
                    placed = model if settings.device is Device.CPU else copy.deepcopy(model).to(settings.device.value)
                    runner = prepare(key.backend, placed, inputs.to(settings.device.value), threads=settings.threads)
                    error, allowed, problem = output_error(runner.output(), reference, settings.device)
                except Exception as failure:  # a runtime failing on one configuration is recorded on its row
                    error, allowed, problem = math.inf, 0.0, f"{key.backend.value} failed: {type(failure).__name__}: "
                    problem += " ".join(str(failure).split())[:300]
                if problem is not None:
                    store.add(error_row(key, problem, environment, (error, allowed)))
                    continue
                checks[key] = (error, allowed)
                tasks.append(Task(key, sampler(runner, settings.device), key.label, _pool(key.backend.value)))
            models.clear()

            def finish(measurement: Measurement) -> None:
                key: TimingKey = measurement.key  # type: ignore[assignment]
                row = measurement_row(
                    key,
                    measurement,
                    macs=analytic_count(key.config).macs,
                    gemm_peak_gflops=peak["gflops"],
                    theoretical_peak=theoretical,
                    check=checks[key],
                    rule=settings.rule,
                    environment=environment,
                    unix_offset=unix_offset,
                )
                store.add(row)

            tasks.sort(key=lambda task: task.pool != "torch")  # stable: grid order within each thread pool
            unix_offset = time.time() - clock()
            with gc_paused():
                interleave(
                    tasks,
                    settings.rule,
                    clock=clock,
                    cpu_clock=_cpu_clock(settings.device, settings.threads),
                    settle=settle_threads,
                    on_finish=finish,
                    on_progress=lambda label, done_s, total_s: progress("timing", label, done_s, total_s),
                )
    return [row for key in keys if (row := store.row(key.ident())) is not None]


def sweep_drift(rows: Sequence[dict[str, Any]], window_s: float = 3.0) -> Drift:
    """How the host's speed moved during the sweep(s) that measured ``rows`` (rows with their raw samples).

    Every turn of every row, placed by its start time (``turn_started_unix``): see
    :func:`mnprof.timing.engine.host_drift`. Rows without turn times (error rows, older files) are left out.
    """
    from mnprof.timing.engine import SampleStats, host_drift

    tasks = []
    for row in rows:
        samples, sizes, starts = row.get("latency_ms_samples"), row.get("turn_sizes"), row.get("turn_started_unix")
        if not samples or not sizes or not starts or len(sizes) != len(starts):
            continue
        turns, first = [], 0
        for size, start in zip(sizes, starts, strict=True):
            turns.append((start, SampleStats.of(samples[first : first + size]).median))
            first += size
        tasks.append(turns)
    return host_drift(tasks, window_s)
