"""Latency for the regression gate, only on request (``--latency`` and ``--latency-tolerance``).

A shared machine's speed moves by 20-60% within a minute and by ~30% between runs, so a gate on
absolute times either sleeps through regressions or fails on the weather. :func:`measure_latency`
therefore times every entry round-robin with a *control*: mnprof's own MobileNetV1 1.0-224, whose code
does not change with the user's, timed in the same passes (eager, batch 1, the seeded input every
timing uses, through :func:`mnprof.timing.timer.time_tasks`). Each entry's figure is its latency
relative to the control: the median over passes of its turn median over the control's turn median in
the same pass, with the distribution-free 95% CI of that median.

:func:`compare_latency` fails an entry when its relative latency grew by more than the tolerance *and*
its interval now lies wholly above the baseline's: both runs' spread is accounted for, so an entry
whose intervals overlap is not called slower, however its point estimate moved. Baselines are
compared only on the same host fingerprint and thread count.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnprof.check.baseline import entry_key, iter_modules
from mnprof.check.findings import Finding
from mnprof.check.settings import CheckSettings
from mnprof.errors import MnprofError
from mnprof.model.config import ModelConfig
from mnprof.model.seeded import calibrated_model, seeded_images
from mnprof.timing.backends import Backend, Device, prepare, sampler
from mnprof.timing.engine import StopRule, Task, paired_ratios
from mnprof.timing.host import host_environment
from mnprof.timing.stats import median_ci
from mnprof.timing.timer import time_tasks

__all__ = [
    "CONTROL",
    "DEFAULT_LATENCY_TOLERANCE_PCT",
    "LATENCY_METHOD",
    "compare_latency",
    "measure_latency",
    "usable_baseline",
]

CONTROL = ModelConfig(1.0, 224)  # mnprof's own MobileNetV1, timed beside the entries as the control
CONTROL_KEY = "control@mobilenetv1-1.0-224"
# What the baseline's latency section holds; a baseline recorded another way is refused with the command
# that records it again.
LATENCY_METHOD = "relative-to-control"
# Recommended for --latency: above the ~3% (worst ~12%) that relative latency moves between runs here.
DEFAULT_LATENCY_TOLERANCE_PCT = 10.0


def measure_latency(settings: CheckSettings, threads: int) -> dict[str, Any]:
    """Every entry's latency relative to the control (eager, batch 1, ``threads`` threads), and the host."""
    control = calibrated_model(CONTROL)
    tasks = [
        Task(CONTROL_KEY, sampler(prepare(Backend.EAGER, control, seeded_images(224, 1), threads=threads), Device.CPU))
    ]
    for model, alpha, resolution, module in iter_modules(settings):
        key = entry_key(model, alpha, resolution)
        runner = prepare(Backend.EAGER, module, seeded_images(resolution, batch_size=1), threads=threads)
        tasks.append(Task(key, sampler(runner, Device.CPU), key))
    control_m, *measurements = time_tasks(tasks, StopRule(), device=Device.CPU, threads=threads)
    entries = {}
    for m in measurements:
        relative, low, high, _ = median_ci(paired_ratios(m, control_m) or (m.headline[0] / control_m.headline[0],))
        entries[str(m.key)] = {
            "latency_ms": m.headline[0] * 1e3,
            "relative": relative,
            "relative_ci_low": low,
            "relative_ci_high": high,
            "noisy": m.noisy,
        }
    return {
        "method": LATENCY_METHOD,
        "control": CONTROL_KEY,
        "control_latency_ms": control_m.headline[0] * 1e3,
        "host_fingerprint": host_environment()["host_fingerprint"],
        "threads": threads,
        "backend": "eager",
        "batch_size": 1,
        "entries": entries,
    }


def usable_baseline(baseline: Mapping[str, Any] | None, host_fingerprint: str, path: Path) -> None:
    """Refuse, before anything is timed, a latency baseline this gate cannot compare with (one line)."""
    regenerate = f"record one here with: mnprof baseline --latency --out {path}"
    if not baseline:
        raise MnprofError(f"baseline {path} has no latency; {regenerate}")
    if baseline.get("method") != LATENCY_METHOD:
        raise MnprofError(
            f"baseline {path} latency was recorded by an older mnprof (absolute medians, no control), which this "
            f"gate does not compare; {regenerate}"
        )
    if baseline.get("host_fingerprint") != host_fingerprint:
        raise MnprofError(
            f"baseline {path} latency was measured on another host (fingerprint {baseline.get('host_fingerprint')}, "
            f"here {host_fingerprint}): latencies compare only on the same host; {regenerate}"
        )


def compare_latency(
    baseline: Mapping[str, Any] | None, now: Mapping[str, Any], tolerance_pct: float, path: Path
) -> list[Finding]:
    """Findings for entries whose relative latency grew beyond ``tolerance_pct`` and past both runs' spread."""
    usable_baseline(baseline, now["host_fingerprint"], path)
    findings = []
    for key, entry in sorted(now["entries"].items()):
        old = baseline.get("entries", {}).get(key)
        if old is None:
            continue  # the counts comparison already reports entries added
        before, after = old["relative"], entry["relative"]
        grew = after > before * (1 + tolerance_pct / 100)
        # Both intervals: the entry is slower only where now's lies wholly above the baseline's.
        low_now = entry["relative_ci_low"] if entry["relative_ci_low"] is not None else after
        high_before = old["relative_ci_high"] if old["relative_ci_high"] is not None else before
        if grew and low_now > high_before:
            findings.append(Finding("slower", key, "latency", "latency_relative", before, after))
    return findings
