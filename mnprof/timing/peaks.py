"""The host's two roofs: peak float32 compute (a GEMM, see :func:`mnprof.timing.sweep.measure_gemm_peak`) and
memory bandwidth (a large tensor copy), both timed with the same engine as the models."""

from __future__ import annotations

from typing import Any

__all__ = ["BANDWIDTH_MIB", "measure_bandwidth", "roofs"]

# Well beyond any last-level cache, so the copy streams from and to DRAM.
BANDWIDTH_MIB = 256


def measure_bandwidth(threads: int, mib: int = BANDWIDTH_MIB) -> dict[str, Any]:
    """Memory bandwidth in GB/s: ``2 x bytes / median time`` of ``dst.copy_(src)`` (one read, one write)."""
    import time

    import torch

    from mnprof.timing.backends import torch_threads
    from mnprof.timing.engine import Task, interleave
    from mnprof.timing.sweep import GEMM_RULE

    elements = mib * 2**20 // 4
    source = torch.rand(elements)
    target = torch.empty_like(source)

    def sample() -> float:
        start = time.perf_counter()
        target.copy_(source)
        return time.perf_counter() - start

    with torch_threads(threads):
        (measurement,) = interleave([Task("copy", sample, f"copy {mib} MiB")], GEMM_RULE)
    moved = 2 * elements * 4
    return {
        "threads": threads,
        "bytes_per_copy": moved,
        "gb_per_s": moved / measurement.stats.median / 1e9,
        "samples": measurement.stats.n,
    }


def roofs(peak_gflops: float, bandwidth_gbs: float, intensities: list[float]) -> tuple[list[float], list[float]]:
    """Points of the roofline ``min(peak, bandwidth x intensity)`` across the intensity range, with the ridge."""
    low, high = min(intensities) / 2, max(intensities) * 2
    ridge = peak_gflops / bandwidth_gbs
    xs = sorted({low, high, min(max(ridge, low), high)})
    return xs, [min(peak_gflops, bandwidth_gbs * x) for x in xs]
