"""The host's roofs: peak float32 compute (the best of a few GEMM libraries) and memory bandwidth (a large
copy), timed with the same engine and rules as the models (:func:`mnprof.timing.timer.time_tasks`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from mnprof.runtimes.gemm import gemm_sampler, kernel_available
from mnprof.timing.engine import StopRule, Task
from mnprof.timing.records import Device, GemmPeak
from mnprof.timing.timer import pool_of, time_tasks

__all__ = ["BANDWIDTH_MIB", "GEMM_KERNELS", "GEMM_RULE", "INTEGER_KERNELS", "measure_bandwidth", "measure_gemm_peak"]

# Float32 matrix products of 2 n^3 FLOPs whose best rate is the measured peak: (kernel, n).
GEMM_KERNELS = {Device.CPU: (("mm", 2048), ("conv1x1", 1024)), Device.CUDA: (("mm", 8192), ("conv1x1", 4096))}
# Integer matrix products of 2 n^3 operations, the int8 roof: PyTorch's and onnxruntime's (where installed).
INTEGER_KERNELS = ("torch_int8", "onnxruntime_int8")
GEMM_RULE = StopRule(target_rel_ci=0.02, budget_s=0.5, block_s=0.04, warmup_max_s=0.3)
# Well beyond any last-level cache, so the copy streams from and to DRAM.
BANDWIDTH_MIB = 256


def measure_gemm_peak(
    device: Device,
    threads: int,
    *,
    kernels: Sequence[tuple[str, int]] | None = None,
    with_onnxruntime: bool = False,
    with_int8: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> GemmPeak:
    """The best float32 GEMM rate (GFLOP/s) of this host with ``threads`` threads, as a record.

    Each kernel (see :func:`mnprof.runtimes.backends.gemm_sampler`) is timed with the same engine as the
    models and summarised by the same headline statistic, the 5th percentile of the calls (with the few
    calls a large GEMM gets within its budget, about its fastest call: a peak rate); the peak is the best
    rate, ``2 n^3 / headline``.
    ``with_onnxruntime`` adds onnxruntime's own GEMM (when its backend is timed, its fraction of the peak
    stays meaningful).
    ``with_int8`` also times the integer GEMMs (PyTorch's ``torch._int_mm``, int8 x int8, and where the
    ``[onnx]`` extra is installed onnxruntime's MatMulInteger, uint8 x int8), the best recorded apart as
    ``int8_gops`` (giga integer operations per second): the roof the int8 runtimes' rows are a fraction of.
    """
    kernels = tuple(kernels or GEMM_KERNELS[device])
    if with_onnxruntime and device is Device.CPU:
        kernels += (("onnxruntime", 1024),)
    if with_int8 and device is Device.CPU:
        kernels += tuple((kernel, 1024) for kernel in INTEGER_KERNELS if kernel_available(kernel))
    tasks = [
        Task(
            kernel,
            gemm_sampler(*kernel, device, threads),
            f"GEMM {kernel[0]} {kernel[1]}",
            pool=pool_of(kernel[0], f"GEMM {kernel[0]} {kernel[1]}"),
        )
        for kernel in kernels
    ]
    measurements = time_tasks(tasks, GEMM_RULE, device=device, threads=threads, clock=clock)
    kernel_of = dict(zip((task.key for task in tasks), kernels, strict=True))
    rates: dict[tuple[str, int], float] = {}
    for m in measurements:
        kernel, size = kernel_of[m.key]
        rates[kernel, size] = 2 * size**3 / m.headline.value / 1e9
    integer = {key: rate for key, rate in rates.items() if key[0] in INTEGER_KERNELS}
    floats = {key: rate for key, rate in rates.items() if key not in integer}
    best = max(floats, key=floats.__getitem__)
    int8 = max(integer, key=integer.__getitem__) if integer else None
    return GemmPeak(
        device=device,
        threads=threads,
        kernel=f"{best[0]} n={best[1]}",
        gflops=floats[best],
        gflops_by_kernel={f"{kernel} n={size}": rate for (kernel, size), rate in floats.items()},
        int8_kernel=None if int8 is None else f"{int8[0]} n={int8[1]}",
        int8_gops=None if int8 is None else integer[int8],
    )


def measure_bandwidth(threads: int, mib: int = BANDWIDTH_MIB) -> dict[str, Any]:
    """Memory bandwidth in GB/s: ``2 x bytes / headline time`` of ``dst.copy_(src)`` (one read, one write; the
    headline as for the models, the 5th percentile of the calls)."""
    elements = mib * 2**20 // 4
    source = torch.rand(elements)
    target = torch.empty_like(source)

    def sample() -> float:
        start = time.perf_counter()
        target.copy_(source)
        return time.perf_counter() - start

    (measurement,) = time_tasks(
        [Task("copy", sample, f"copy {mib} MiB")], GEMM_RULE, device=Device.CPU, threads=threads
    )
    moved = 2 * elements * 4
    return {
        "threads": threads,
        "bytes_per_copy": moved,
        "gb_per_s": moved / measurement.headline.value / 1e9,
        "samples": measurement.stats.n,
    }
