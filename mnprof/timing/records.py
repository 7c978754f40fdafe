"""Typed records of timings: what one measurement is, kept apart from how it was measured and how it is shown.

The sweep turns each engine :class:`~mnprof.timing.engine.Measurement` into a frozen :class:`TimingRecord`
(:mod:`mnprof.timing.measured`); the results file (:mod:`mnprof.timing.store`) flattens it with
:meth:`TimingRecord.to_row` and reads it back with :meth:`TimingRecord.from_row` (each field checked in
:mod:`mnprof.timing.row_parsing`); tables and plots take
records and flatten them only where they become a table. Statistics are in milliseconds here (the unit
of the file and of every view); the engine's raw seconds stay in the engine.

No torch and no measuring code here: views import this module freely.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig
from mnprof.runtimes.registry import INT8, LOSSY, Backend, Device
from mnprof.timing.row_parsing import (
    check_fields,
    gemm_peak_fields,
    key_fields,
    output_checks,
    provenance_fields,
    raw_fields,
    timed,
)

__all__ = [
    "RAW_SAMPLE_KEYS",
    "Backend",
    "Device",
    "GemmPeak",
    "LatencyStats",
    "MeasurementKey",
    "Provenance",
    "Quality",
    "RawSamples",
    "STATISTIC_LABEL",
    "STATISTIC_MEANING",
    "Statistic",
    "Stop",
    "GEOMETRIC_MEAN",
    "TimingKey",
    "TimingRecord",
    "finite",
    "processor_of",
    "rows_of",
]


class Stop(StrEnum):
    """Why timing a task ended (the results file's ``stop``)."""

    CONVERGED = "converged"  # the headline's CI reached the target
    BUDGET = "budget"  # the time budget ran out first: the task stayed noisy


class Statistic(StrEnum):
    """What a latency column shows (``--statistic``); every one is kept, the choice is only the view's."""

    P5 = "p5"  # the headline: the 5th percentile of the clean calls (one call in twenty was at least this fast)
    ADJUSTED = "adjusted"  # the typical call: the median of the turn medians, each over its pass's host factor
    MEDIAN = "median"  # the median of every timed call as it came, host drift included
    MIN = "min"  # the fastest timed call


STATISTIC_MEANING = {
    Statistic.P5: "5th percentile of the timed calls: one call in twenty was at least this fast, the latency this "
    "host reaches when nothing else interferes (what reproduces from run to run on a shared machine)",
    Statistic.ADJUSTED: "host-adjusted median: each turn's median over its pass's host factor, the median of those "
    "(the typical call at the run's median host speed)",
    Statistic.MEDIAN: "median of every timed call, host drift included",
    Statistic.MIN: "fastest timed call",
}

STATISTIC_LABEL = {
    Statistic.P5: "5th percentile",
    Statistic.ADJUSTED: "host-adjusted median",
    Statistic.MEDIAN: "median",
    Statistic.MIN: "fastest call",
}

# What relative latency divides by unless --reference names a configuration: the geometric mean of the
# configurations timed together. One configuration's own run-to-run wobble would enter every ratio; a
# geometric mean over the grid averages it out (docs/timing.md).
GEOMETRIC_MEAN = "geometric mean"


# Keys of a row that hold every timed call; dropped where only the statistics are wanted.
RAW_SAMPLE_KEYS = (
    "latency_ms_samples",
    "latency_ms_discarded",
    "turn_sizes",
    "turn_started_unix",
    "turn_host_factors",
    "turn_passes",
)

MeasurementKey = tuple[str, str, int, int, str]


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
        """What identifies a measurement within one host (the results file's key)."""
        return (self.config.id, self.backend.value, self.batch_size, self.threads, self.device.value)


@dataclass(frozen=True)
class Provenance:
    """Where and when a measurement ran: runtime version, host fingerprint, processor, time, load."""

    runtime_version: str | None
    host: str | None  # the host fingerprint (mnprof.host.host_fingerprint)
    cpu_model: str | None
    gpu: str | None  # the GPU's name where the device is cuda
    measured_at: str | None
    # Runnable threads averaged over the last minute, the sweep's own included (about ``threads``):
    # well above the core count means other work competed for the CPU while this was timed.
    load_avg_1min: float | None
    # The sweep (one round-robin interleave) that measured it: relative latency compares within one run only.
    run_id: str | None = None

    @classmethod
    def now(
        cls, key: TimingKey, runtime_version: str | None, environment: Mapping[str, Any], run_id: str | None = None
    ) -> Provenance:
        return cls(
            runtime_version=runtime_version,
            host=environment.get("host_fingerprint"),
            cpu_model=environment.get("cpu_model"),
            gpu=environment.get("gpu") if key.device is Device.CUDA else None,
            measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
            load_avg_1min=_load_average(),
            run_id=run_id,
        )


@dataclass(frozen=True)
class LatencyStats:
    """The headline and the order statistics of the clean calls, in milliseconds per call.

    ``p5`` is the headline: the 5th percentile of the clean calls (see :mod:`mnprof.timing.engine`);
    ``ci_low`` and ``ci_high`` bound it (95%, each turn a cluster of calls). ``adjusted`` is the typical
    call at the run's median host speed: the median over turns of each turn's median divided by the host
    factor of its pass. ``median`` and the quartiles describe every timed call as it came, host drift
    included.
    """

    p5: float
    adjusted: float
    median: float
    iqr: float
    q25: float
    q75: float
    p90: float
    min: float
    max: float
    mean: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Quality:
    """How timing went: the CI reached, how it stopped, what was set aside, how long it took."""

    ci_halfwidth_pct: float | None  # the wider side of the headline's 95% CI, percent of the headline
    # The wider side of the 95% CI of the headline relative to its run (its ratio to the geometric mean of the
    # headlines timed together), percent: what ``noisy`` judges; None with fewer than three tasks timed together
    # (then ``noisy`` judges ci_halfwidth_pct).
    rel_ci_halfwidth_pct: float | None
    target_ci_pct: float
    noisy: bool  # the headline's CI (relative to its run) was still wider than the target when timing stopped
    stop: Stop  # written as its value, "converged" or "budget"
    samples: int
    turns: int
    warmup_samples: int
    samples_discarded: int  # calls of turns set aside as contended
    cpu_share_best: float | None
    contended: bool  # never had the CPU to itself
    warmup_settled: bool
    budget_s: float
    timing_s: float

    def __post_init__(self) -> None:
        if self.stop is not None and not isinstance(self.stop, Stop):  # read back from a row: its text
            object.__setattr__(self, "stop", _stop(self.stop))

    def columns(self) -> dict[str, Any]:
        """Its columns of a results-file row, ``stop`` as its text."""
        return {**vars(self), "stop": None if self.stop is None else self.stop.value}


@dataclass(frozen=True)
class Rates:
    """Throughput and achieved arithmetic rate, beside the peaks they are a fraction of."""

    throughput_ips: float  # images per second
    macs_analytic: int  # for one image
    gflops_achieved: float  # 2 x MACs x batch size / headline latency (the 5th percentile)
    gemm_peak_gflops: float
    peak_fraction: float
    theoretical_peak_gflops: float | None
    theoretical_peak_fraction: float | None


@dataclass(frozen=True)
class RawSamples:
    """Every timed call the statistics come from (ms), the calls per turn, each turn's start (Unix seconds),
    the host factor of each turn's pass, and the calls set aside as contended (ms)."""

    latency_ms: tuple[float, ...]
    turn_sizes: tuple[int, ...]
    turn_started_unix: tuple[float, ...]
    discarded_ms: tuple[float, ...]
    turn_host_factors: tuple[float, ...] = ()
    turn_passes: tuple[int, ...] = ()  # the round-robin pass of each turn (a turn set aside leaves a gap)

    def turns(self) -> list[tuple[float, tuple[float, ...]]]:
        """``(start, calls)`` of every turn; empty when the sizes and starts do not line up (older files)."""
        if not self.latency_ms or not self.turn_sizes or len(self.turn_sizes) != len(self.turn_started_unix):
            return []
        turns, first = [], 0
        for size, start in zip(self.turn_sizes, self.turn_started_unix, strict=True):
            turns.append((start, self.latency_ms[first : first + size]))
            first += size
        return turns


@dataclass(frozen=True)
class GemmPeak:
    """The best GEMM rates of a host with ``threads`` threads (:func:`mnprof.timing.peaks.measure_gemm_peak`):
    the float32 peak (GFLOP/s) and its kernel, every float32 kernel's rate, and where an integer GEMM was timed
    the int8 roof (giga integer operations per second) and its kernel. A row of the results file's
    ``gemm_peaks``: :meth:`to_row` and :meth:`from_row`."""

    device: Device
    threads: int
    kernel: str  # "mm n=2048": the kernel and size of ``gflops``
    gflops: float
    gflops_by_kernel: Mapping[str, float]
    int8_kernel: str | None = None
    int8_gops: float | None = None

    def roof(self, backend: Backend) -> float:
        """What ``backend``'s rows are a fraction of: int8 runtimes the integer GEMM's peak (the float32 one where
        no integer GEMM could be timed: a torch without torch._int_mm and no onnxruntime), every other runtime
        the float32 one."""
        if backend in INT8 and self.int8_gops is not None:
            return self.int8_gops
        return self.gflops

    def to_row(self) -> dict[str, Any]:
        """The results file's ``gemm_peaks`` entry (the int8 keys only where an integer GEMM was timed)."""
        row: dict[str, Any] = {
            "device": self.device.value,
            "threads": self.threads,
            "kernel": self.kernel,
            "gflops": self.gflops,
            "gflops_by_kernel": dict(self.gflops_by_kernel),
        }
        if self.int8_gops is not None:
            row.update(int8_kernel=self.int8_kernel, int8_gops=self.int8_gops)
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> GemmPeak:
        """A ``gemm_peaks`` entry read back; raises :class:`MnprofError` (one line) where it lacks a key."""
        return cls(**gemm_peak_fields(row))


@dataclass(frozen=True)
class TimingRecord:
    """One timing of one configuration x backend x batch size x threads x device.

    A record either has ``latency`` (with ``quality``, ``rates`` and ``raw``) or an ``error``: a runtime
    that failed, or whose output differed from eager PyTorch's, posts no time.
    """

    key: TimingKey
    provenance: Provenance
    output_max_abs_error: float | None
    output_tolerance: float | None
    latency: LatencyStats | None = None
    quality: Quality | None = None
    rates: Rates | None = None
    raw: RawSamples | None = None
    error: str | None = None
    output_cosine: float | None = None  # lossy runtimes: cosine similarity of the logits to eager float32's
    output_top1_agreement: float | None = None  # lossy runtimes: share of seeded images with eager's top-1
    quantization: Mapping[str, Any] | None = None  # how an int8 runtime was quantised (QuantSettings)
    model_bytes: int | None = None  # what the runtime holds as its model (mnprof.runtimes.backends.Runner)

    @property
    def config(self) -> ModelConfig:
        return self.key.config

    @property
    def processor(self) -> str:
        """What ran the measurement, for people: the GPU's name on a GPU, the CPU model otherwise."""
        return processor_of(self.key.device.value, self.provenance.gpu, self.provenance.cpu_model)

    @property
    def timed(self) -> bool:
        return self.latency is not None and self.error is None

    # --------------------------------------------------------------------- the results file's row

    def to_row(self, *, with_samples: bool = True) -> dict[str, Any]:
        """The flat row of the results file (schema 4): statistics in ms, rates per second, raw samples."""
        row: dict[str, Any] = {**self.config.columns(), **self._base_columns(), "model_bytes": self.model_bytes}
        if self.key.backend in LOSSY:
            row.update(
                output_cosine=self.output_cosine,
                output_top1_agreement=self.output_top1_agreement,
                quantization=dict(self.quantization) if self.quantization else None,
            )
        if self.latency is None or self.quality is None or self.rates is None:
            row.update(
                latency_ms_p5=None,
                latency_ms_adjusted=None,
                latency_ms_median=None,
                latency_ms_iqr=None,
                throughput_ips=None,
                output_max_abs_error=self.output_max_abs_error,
                output_tolerance=self.output_tolerance,
                error=self.error,
            )
            return row
        for name, value in vars(self.latency).items():
            row[f"latency_ms_{name}"] = value
        row.update(self.quality.columns())
        row.update(vars(self.rates))
        row.update(output_max_abs_error=self.output_max_abs_error, output_tolerance=self.output_tolerance, error=None)
        if with_samples and self.raw is not None:
            row.update(
                latency_ms_samples=list(self.raw.latency_ms),
                turn_sizes=list(self.raw.turn_sizes),  # calls per turn of latency_ms_samples, in order
                turn_started_unix=list(self.raw.turn_started_unix),
                latency_ms_discarded=list(self.raw.discarded_ms),
                turn_host_factors=list(self.raw.turn_host_factors),  # host factor of each turn's pass, in order
                turn_passes=list(self.raw.turn_passes),  # the round-robin pass of each turn, in order
            )
        return row

    def _base_columns(self) -> dict[str, Any]:
        key, where = self.key, self.provenance
        return {
            "backend": key.backend.value,
            "runtime_version": where.runtime_version,
            "device": key.device.value,
            "batch_size": key.batch_size,
            "threads": key.threads,
            "host": where.host,
            "cpu_model": where.cpu_model,
            "gpu": where.gpu,
            "measured_at": where.measured_at,
            "load_avg_1min": where.load_avg_1min,
            "run_id": where.run_id,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any], environment: Mapping[str, Any] | None = None) -> TimingRecord:
        """Read a results-file row back; ``environment`` fills in the processor where an older row lacks it.

        Raises :class:`MnprofError` (one line) when the row does not describe a measurement; each field is
        checked in :mod:`mnprof.timing.row_parsing`.
        """
        key = TimingKey(*key_fields(row))
        provenance = Provenance(**provenance_fields(row, key.device, environment or {}))
        checks = output_checks(row)
        if not timed(row):
            return cls(key, provenance, **checks, error=row.get("error"))
        latency = LatencyStats(**{name: row.get(f"latency_ms_{name}") for name in LatencyStats.__dataclass_fields__})
        quality = Quality(**{name: row.get(name) for name in Quality.__dataclass_fields__})
        rates = Rates(**{name: row.get(name) for name in Rates.__dataclass_fields__})
        check_fields(latency, "latency_ms_")
        check_fields(quality)
        check_fields(rates)
        raw = RawSamples(*raw_fields(row))
        return cls(key, provenance, **checks, latency=latency, quality=quality, rates=rates, raw=raw)


def rows_of(records: Sequence[TimingRecord], *, with_samples: bool = False) -> list[dict[str, Any]]:
    """Records flattened for a table: one row each, raw samples left out unless asked for."""
    return [record.to_row(with_samples=with_samples) for record in records]


def processor_of(device: str, gpu: Any, cpu_model: Any) -> str:
    """What ran a measurement: the GPU's name for ``device`` cuda, the CPU model otherwise."""
    if device == Device.CUDA.value:
        return str(gpu or "an unidentified GPU")
    return str(cpu_model or "an unidentified CPU")


def _stop(value: Any) -> Stop:
    """How timing stopped, read back: one of :class:`Stop`'s values."""
    if not isinstance(value, str):
        raise MnprofError(f"stop is {value!r}; accepted: a str")
    try:
        return Stop(value)
    except ValueError:
        raise MnprofError(f"stop is {value!r}; accepted: {' or '.join(stop.value for stop in Stop)}") from None


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on this OS
        return None


def finite(value: float | None) -> float | None:
    """``value`` where it is a finite number, else ``None`` (JSON has no infinity)."""
    return value if value is not None and math.isfinite(value) else None
