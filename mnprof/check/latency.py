"""Latency for the regression gate, only on request (``--latency`` and ``--latency-tolerance``).

:func:`measure_latency` times every configuration (eager, batch 1, the seeded input every timing
uses) through :func:`mnprof.timing.timer.time_tasks`, the timing path every mnprof timing shares, and
records the host fingerprint; :func:`compare_latency` finds medians that grew beyond a tolerance,
refusing a baseline measured on another host.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnprof.check.baseline import entry_key, iter_modules
from mnprof.check.findings import Finding
from mnprof.check.settings import CheckSettings
from mnprof.errors import MnprofError
from mnprof.model.seeded import seeded_images
from mnprof.timing.backends import Backend, Device, prepare, sampler
from mnprof.timing.engine import StopRule, Task
from mnprof.timing.host import host_environment
from mnprof.timing.timer import time_tasks

__all__ = ["compare_latency", "measure_latency"]


def measure_latency(settings: CheckSettings, threads: int) -> dict[str, Any]:
    """Eager latency (batch 1, ``threads`` threads) of every entry, timed as the sweep times, and the host.

    Only for ``--latency-tolerance``: latency is compared against a baseline from the same host fingerprint.
    """
    tasks = []
    for model, alpha, resolution, module in iter_modules(settings):
        key = entry_key(model, alpha, resolution)
        runner = prepare(Backend.EAGER, module, seeded_images(resolution, batch_size=1), threads=threads)
        tasks.append(Task(key, sampler(runner, Device.CPU), key))
    measurements = time_tasks(tasks, StopRule(), device=Device.CPU, threads=threads)
    return {
        "host_fingerprint": host_environment()["host_fingerprint"],
        "threads": threads,
        "backend": "eager",
        "batch_size": 1,
        "entries": {
            str(m.key): {"latency_ms_median": m.stats.median * 1e3, "latency_ms_iqr": m.stats.iqr * 1e3,
                         "samples": m.stats.n}
            for m in measurements
        },
    }  # fmt: skip


def compare_latency(
    baseline: Mapping[str, Any] | None, now: Mapping[str, Any], tolerance_pct: float, path: Path
) -> list[Finding]:
    """Findings for latency medians that grew beyond ``tolerance_pct``; the same host is required."""
    regenerate = f"record one here with: mnprof baseline --latency --out {path}"
    if not baseline:
        raise MnprofError(f"baseline {path} has no latency; {regenerate}")
    if baseline.get("host_fingerprint") != now["host_fingerprint"]:
        raise MnprofError(
            f"baseline {path} latency was measured on another host (fingerprint {baseline.get('host_fingerprint')}, "
            f"here {now['host_fingerprint']}): latencies compare only on the same host; {regenerate}"
        )
    findings = []
    for key, entry in sorted(now["entries"].items()):
        old = baseline.get("entries", {}).get(key)
        if old is None:
            continue  # the counts comparison already reports entries added
        before, after = old["latency_ms_median"], entry["latency_ms_median"]
        if after > before * (1 + tolerance_pct / 100):
            findings.append(Finding("slower", key, "latency", "latency_ms_median", before, after))
    return findings
