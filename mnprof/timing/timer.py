"""The one way mnprof times anything: tasks through the engine, with threads fixed, GC paused, pools settled.

Models in the sweep, the GEMM peak, the copy bandwidth and ``mnprof check --latency`` all come here, so
every timing shares the same rules: torch's intra-op threads fixed for the run (and restored), Python's
garbage collector paused (as ``timeit`` does), idle runtime threads let settle before a turn on another
thread pool, on the CPU glibc's allocator kept steady (:func:`steady_allocator`: freed memory stays in the
process, so a forward pass takes no page faults), and on the CPU, turns during which other processes took
this one's cores set aside (the engine's CPU-share rule, see :func:`mnprof.timing.round_robin.interleave`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from mnprof.runtimes.backends import torch_threads
from mnprof.runtimes.registry import ONNXRUNTIME_POOL, Backend
from mnprof.timing.engine import Measurement, StopRule, Task, gc_paused
from mnprof.timing.records import Device
from mnprof.timing.round_robin import interleave

__all__ = ["TORCH_POOL", "cpu_clock", "pool_of", "settle_threads", "steady_allocator", "time_tasks"]

TORCH_POOL = "torch"


def pool_of(runtime: str, session: str = "") -> str:
    """The thread pool a runtime's calls run on (the engine settles between pools).

    torch's OpenMP pool is one per process; every onnxruntime session has its own intra-op pool, whose
    workers spin after its calls whichever session runs next, so each session (``session``: what tells it
    apart, a task's label) is a pool of its own. Measured here: onnxruntime's integer GEMM ran at 307
    GOPS right after a float onnxruntime session's turn, 800 GOPS alone.
    """
    if runtime in {b.value for b in ONNXRUNTIME_POOL} or runtime.startswith(Backend.ONNXRUNTIME.value):
        return f"{Backend.ONNXRUNTIME.value}:{session}"
    return TORCH_POOL


def cpu_clock(device: Device, threads: int) -> Callable[[], float] | None:
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
    calls this between turns on different thread pools (see :func:`pool_of`: every onnxruntime session
    is one); :func:`time_tasks` puts torch's tasks first, so that a pass leaves torch's pool once.
    """
    deadline = time.perf_counter() + limit_s
    time.sleep(minimum_s)
    while time.perf_counter() < deadline:
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(window_s)
        if (time.process_time() - cpu) / (time.perf_counter() - wall) < idle_share:
            return


def time_tasks(
    tasks: Sequence[Task],
    rule: StopRule,
    *,
    device: Device,
    threads: int,
    clock: Callable[[], float] = time.perf_counter,
    on_finish: Callable[[Measurement], None] | None = None,
    on_progress: Callable[[str, float, float], None] | None = None,
) -> list[Measurement]:
    """Time ``tasks`` with the engine under mnprof's rules (see the module docstring).

    Tasks on torch's pool run first, then the others, each group in the given order, so that a pass
    switches pools at most twice. Returns the measurements in that order; ``on_finish`` and
    ``on_progress`` are passed to :func:`mnprof.timing.round_robin.interleave`.
    """
    ordered = sorted(tasks, key=lambda task: task.pool not in ("", TORCH_POOL))  # stable
    with torch_threads(threads), gc_paused(), steady_allocator(device is Device.CPU):
        return interleave(
            ordered,
            rule,
            clock=clock,
            cpu_clock=cpu_clock(device, threads),
            settle=settle_threads,
            on_finish=on_finish,
            on_progress=on_progress,
        )


# glibc's mallopt parameters and defaults (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024
_STEADY_THRESHOLD = 32 * 1024 * 1024  # glibc's largest accepted mmap threshold on 64-bit systems


@contextmanager
def steady_allocator(enabled: bool = True) -> Iterator[bool]:
    """On glibc, keep freed memory in the process while the block runs; yields whether that took effect.

    Why: by default glibc serves each block above a (dynamic) threshold with a fresh ``mmap`` and
    returns freed memory to the system, so a forward pass can take thousands of page faults, and
    their cost (up to a millisecond) lands on whichever layer happened to allocate, differently from
    one run to the next. Inference runtimes plan an arena once; with M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD raised to 32 MiB, steady-state passes take (almost) no page faults and each
    layer's time is its own. After the block both are set back to glibc's documented default
    (128 KiB); glibc offers no way to read the previous values, so a threshold that glibc had
    raised dynamically is reset to the default (malloc's behaviour, not correctness, changes).
    """
    mallopt = None
    if enabled:
        try:
            import ctypes  # lazily: only the steady setting reaches into the C library

            mallopt = ctypes.CDLL(None).mallopt
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
        except (OSError, AttributeError):
            mallopt = None
    if mallopt is None:
        yield False
        return
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _STEADY_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _STEADY_THRESHOLD)
    )
    try:
        yield applied
    finally:
        mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
