"""A finished measurement as its :class:`~mnprof.timing.records.TimingRecord`: statistics in milliseconds,
rates per second beside the peaks, the raw samples, and what the output check found.

Apart from :mod:`mnprof.timing.sweep`, which decides what to time: this is what one timing becomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mnprof.runtimes import backends
from mnprof.timing.engine import Measurement, StopRule
from mnprof.timing.records import LatencyStats, Provenance, Quality, Rates, RawSamples, TimingKey, TimingRecord, finite

__all__ = ["Check", "OutputAgreement", "measured_record"]

Check = tuple[float, float | None]  # (max |error| of the output against eager PyTorch's, its tolerance)


@dataclass(frozen=True)
class OutputAgreement:
    """What the output check found beside the error: a lossy runtime's agreement with eager float32 (cosine of
    the logits, share of images with the same top-1, how it was quantised), and what every runtime holds as its
    model. The fields of the same names of :class:`~mnprof.timing.records.TimingRecord`."""

    output_cosine: float | None = None
    output_top1_agreement: float | None = None
    quantization: Mapping[str, Any] | None = None
    model_bytes: int | None = None

    def record_fields(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~mnprof.timing.records.TimingRecord`."""
        return {
            "output_cosine": self.output_cosine,
            "output_top1_agreement": self.output_top1_agreement,
            "quantization": self.quantization,
            "model_bytes": self.model_bytes,
        }


def measured_record(
    key: TimingKey,
    measurement: Measurement,
    *,
    macs: int,
    gemm_peak_gflops: float,
    theoretical_peak: float | None,
    check: Check,
    rule: StopRule,
    environment: dict[str, Any],
    unix_offset: float = 0.0,
    agreement: OutputAgreement | None = None,
    run_id: str | None = None,
) -> TimingRecord:
    """The record of one finished measurement: statistics in milliseconds, rates per second, the raw samples.

    ``unix_offset`` turns the engine's clock readings into Unix time (``time.time() - clock()``);
    ``agreement``: a lossy runtime's cosine, top-1 agreement and quantisation, and every runtime's model bytes.
    """
    return TimingRecord(
        key=key,
        provenance=Provenance.now(key, backends.runtime_version(key.backend), environment, run_id),
        output_max_abs_error=check[0],
        output_tolerance=check[1],
        latency=_latency_of(measurement),
        quality=_quality_of(measurement, rule),
        rates=_rates_of(key, measurement.headline.value, macs, gemm_peak_gflops, theoretical_peak),
        raw=_raw_of(measurement, unix_offset),
        **(agreement.record_fields() if agreement is not None else {}),
    )


def _latency_of(measurement: Measurement) -> LatencyStats:
    """The headline, its interval and the order statistics of a measurement, in milliseconds."""
    stats, headline = measurement.stats, measurement.headline
    seconds = {
        "p5": headline.value,
        "adjusted": measurement.adjusted_median,
        "median": stats.median,
        "iqr": stats.iqr,
        "q25": stats.q25,
        "q75": stats.q75,
        "p90": stats.p90,
        "min": stats.minimum,
        "max": stats.maximum,
        "mean": stats.mean,
        "ci_low": headline.low,
        "ci_high": headline.high,
    }
    return LatencyStats(**{name: None if v is None else v * 1e3 for name, v in seconds.items()})


def _quality_of(measurement: Measurement, rule: StopRule) -> Quality:
    """How timing a measurement went: the interval reached, why it stopped, what was set aside."""
    relative = measurement.relative_halfwidth
    return Quality(
        ci_halfwidth_pct=finite(measurement.headline.halfwidth * 100),
        rel_ci_halfwidth_pct=None if relative is None else finite(relative * 100),
        target_ci_pct=rule.target_rel_ci * 100,
        noisy=measurement.noisy,
        stop=measurement.stop,
        samples=measurement.stats.n,
        turns=len(measurement.turns),
        warmup_samples=len(measurement.warmup),
        samples_discarded=len(measurement.discarded),
        cpu_share_best=max(measurement.cpu_shares, default=None),
        contended=measurement.contended,
        warmup_settled=measurement.warmup_settled,
        budget_s=rule.budget_s,
        timing_s=measurement.spent_s,
    )


def _rates_of(
    key: TimingKey, headline_s: float, macs: int, gemm_peak_gflops: float, theoretical_peak: float | None
) -> Rates:
    """Throughput and the arithmetic rate at the headline latency, beside the peaks."""
    achieved = 2 * macs * key.batch_size / headline_s / 1e9
    return Rates(
        throughput_ips=key.batch_size / headline_s,
        macs_analytic=macs,
        gflops_achieved=achieved,
        gemm_peak_gflops=gemm_peak_gflops,
        peak_fraction=achieved / gemm_peak_gflops,
        theoretical_peak_gflops=theoretical_peak,
        theoretical_peak_fraction=achieved / theoretical_peak if theoretical_peak else None,
    )


def _raw_of(measurement: Measurement, unix_offset: float) -> RawSamples:
    """Every timed call (ms) and turn of a measurement, turn starts in Unix time."""
    return RawSamples(
        latency_ms=tuple(sample * 1e3 for sample in measurement.samples),
        turn_sizes=measurement.turn_sizes,
        turn_started_unix=tuple(round(start + unix_offset, 3) for start in measurement.turn_starts),
        discarded_ms=tuple(sample * 1e3 for sample in measurement.discarded),
        turn_host_factors=tuple(round(factor, 6) for factor in measurement.turn_factors),
        turn_passes=measurement.turn_passes,
    )
