"""Timing records for tests, built through the same typed record the sweep writes (no hand-made rows)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from mnprof.counting.traced import plan_count
from mnprof.model.config import ModelConfig
from mnprof.timing.engine import StopRule
from mnprof.timing.records import (
    Backend,
    Device,
    LatencyStats,
    Provenance,
    Quality,
    Rates,
    RawSamples,
    TimingKey,
    TimingRecord,
)
from mnprof.timing.store import RESULTS_KIND, RESULTS_SCHEMA_VERSION

TINY = ModelConfig(0.25, 32)  # the configuration the timing tests run: the smallest of the grid
FAST = StopRule(budget_s=0.1, block_s=0.01, warmup_max_s=0.02)  # the timing tests' stop rule: a 0.1 s budget a task


def timing_record(
    config: ModelConfig | str = "0.25-32",
    backend: str = "eager",
    batch: int = 1,
    *,
    threads: int = 2,
    device: str = "cpu",
    host: str = "abc123",
    cpu_model: str | None = "Test CPU",
    gpu: str | None = None,
    samples_ms: Sequence[float] = (1.0, 1.1),
    turn_sizes: Sequence[int] = (),
    turn_started_unix: Sequence[float] = (),
    error: str | None = None,
    noisy: bool = False,
    contended: bool = False,
    load_avg_1min: float | None = None,
    headline_ms: float | None = None,
    turn_host_factors: Sequence[float] = (),
) -> TimingRecord:
    """A record of ``config`` (an id such as ``"0.25-32"`` or a :class:`ModelConfig`) with the given samples;
    the headline (and the typical figure) is ``headline_ms``, else the samples' median."""
    if isinstance(config, str):
        alpha, resolution = config.split("-")[:2]
        config = ModelConfig(float(alpha), int(resolution))
    key = TimingKey(config, Backend(backend), batch, threads, Device(device))
    provenance = Provenance("2.13.0", host, cpu_model, gpu if device == "cuda" else None, "2026-01-01T00:00:00+00:00",
                            load_avg_1min)  # fmt: skip
    if error is not None:
        return TimingRecord(key, provenance, None, None, error=error)
    ordered = sorted(samples_ms)
    median = ordered[len(ordered) // 2]
    headline = median if headline_ms is None else headline_ms
    latency = LatencyStats(headline, headline, median, 0.1, ordered[0], ordered[-1], ordered[-1], ordered[0],
                           ordered[-1], sum(ordered) / len(ordered), None, None)  # fmt: skip
    quality = Quality(None if noisy else 1.0, None if noisy else 0.5, 2.0, noisy, "budget" if noisy else "converged",
                      len(ordered), len(turn_sizes) or len(ordered), 3, 0, 0.99, contended, True, 2.0, 1.0)  # fmt: skip
    macs = plan_count(config).macs if config.builtin else 1_000_000  # the model's own: mnprof checks it on reading
    rates = Rates(batch / headline * 1e3, macs, 1.0, 100.0, 0.01, None, None)
    sizes = tuple(turn_sizes) or ((len(samples_ms),) if samples_ms else ())  # mnprof always writes the turns
    raw = RawSamples(tuple(samples_ms), sizes, tuple(turn_started_unix), (), tuple(turn_host_factors))
    return TimingRecord(key, provenance, 0.0, 1e-3, latency=latency, quality=quality, rates=rates, raw=raw)


def drifting_records(spread: float, configs: Sequence[str] = ("1.0-224", "0.5-160", "0.25-128")) -> list[TimingRecord]:
    """Three configurations timed together for 30 s, the whole host ``spread`` slower after 15 s."""
    starts = [1_800_000_000 + 0.5 * i for i in range(60)]
    return [
        timing_record(
            config,
            samples_ms=[base * (1 if i < 30 else 1 + spread) for i in range(60)],
            turn_sizes=[1] * 60,
            turn_started_unix=starts,
        )  # fmt: skip
        for config, base in zip(configs, (1.0, 2.0, 4.0), strict=True)
    ]


def results_file(
    path: Path, rows: list[dict], version: int = RESULTS_SCHEMA_VERSION, environment: dict | None = None
) -> Path:
    """A results file of ``rows`` (the keys a sweep writes) at ``path``, measured in ``environment``."""
    document = {"schema_version": version, "kind": RESULTS_KIND, "environment": environment or {}, "gemm_peaks": [],
                "measurements": rows}  # fmt: skip
    path.write_text(json.dumps(document))
    return path


def edited(source: Path, target: Path, edit: Callable[[dict], object]) -> Path:
    """``source``'s JSON document, changed in place by ``edit``, written to ``target``: a file one change away."""
    document = json.loads(source.read_text(encoding="utf-8"))
    edit(document)
    target.write_text(json.dumps(document), encoding="utf-8")
    return target
