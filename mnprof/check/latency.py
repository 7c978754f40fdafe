"""Latency for the regression gate, only on request (``--latency`` and ``--latency-tolerance``).

A shared machine's speed moves by tens of percent within a minute and between runs, so a gate on
absolute times either sleeps through regressions or fails on the weather. :func:`measure_latency`
therefore times every entry round-robin with a *control*: mnprof's own MobileNetV1 at the entry's
resolution and the width whose MACs are closest to the entry's (code that does not change with the
user's, and of a similar size: the host's slow phases slow large networks more than small ones, so a
control of another size would move against the entry from one run to the next). Controls are timed in
the same passes (eager, batch 1, the seeded input every timing uses, through
:func:`mnprof.timing.timer.time_tasks`). Each entry's figure is its latency relative to its control: the
median over passes of its turn median over the control's turn median in the same pass, with the
distribution-free 95% CI of that median.

:func:`compare_latency` fails an entry when its relative latency grew by more than the tolerance *and*
the growth is significant given both runs' spread: larger than 1.96 standard errors of the difference,
each run's standard error read from its 95% interval. Baselines are compared only on the same host
fingerprint and thread count, and with the same control.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnprof.check.baseline import entry_key, iter_modules
from mnprof.check.findings import Finding
from mnprof.check.sections import refuse_other_method
from mnprof.check.settings import CheckSettings
from mnprof.counting.analytic import analytic_count
from mnprof.errors import MnprofError
from mnprof.host import host_environment
from mnprof.model.config import DEFAULT_ALPHAS, ModelConfig
from mnprof.model.seeded import calibrated_model, seeded_images
from mnprof.runtimes.backends import Backend, Device, prepare, sampler
from mnprof.timing.engine import StopRule, Task, paired_ratios
from mnprof.timing.stats import median_ci
from mnprof.timing.timer import time_tasks

__all__ = [
    "DEFAULT_LATENCY_TOLERANCE_PCT",
    "LATENCY_METHOD",
    "compare_latency",
    "control_for",
    "measure_latency",
    "usable_baseline",
]

# What the baseline's latency section holds; a baseline recorded another way is refused with the command
# that records it again.
LATENCY_METHOD = "relative-to-matched-control"
# Wide enough that an unchanged model does not fail on a shared host, narrow enough to catch a 15% slowdown
# (benchmarks/bench_gate.py; its runs are in benchmarks/RESULTS.md).
DEFAULT_LATENCY_TOLERANCE_PCT = 10.0
Z95 = 1.959964


def control_for(resolution: int, macs: int | None) -> ModelConfig:
    """mnprof's MobileNetV1 at ``resolution`` whose analytic MACs are closest (in ratio) to ``macs``."""
    candidates = [ModelConfig(alpha, resolution) for alpha in DEFAULT_ALPHAS]
    if not macs or macs <= 0:
        return candidates[0]
    return min(candidates, key=lambda config: abs(math.log(analytic_count(config).macs / macs)))


def _control_key(config: ModelConfig) -> str:
    return f"control@mobilenetv1-{config.id}"


def measure_latency(settings: CheckSettings, threads: int, macs: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Every entry's latency relative to its control (eager, batch 1, ``threads`` threads), and the host.

    ``macs``: each entry's MACs (from its counts), which choose its control.
    """
    macs = macs or {}
    modules = [(entry_key(model, alpha, resolution), resolution, module)
               for model, alpha, resolution, module in iter_modules(settings)]  # fmt: skip
    controls = {key: control_for(resolution, macs.get(key)) for key, resolution, _ in modules}
    tasks = []
    for config in {config.id: config for config in controls.values()}.values():
        runner = prepare(Backend.EAGER, calibrated_model(config), seeded_images(config.resolution, 1), threads=threads)
        tasks.append(Task(_control_key(config), sampler(runner, Device.CPU), _control_key(config)))
    for key, resolution, module in modules:
        runner = prepare(Backend.EAGER, module, seeded_images(resolution, batch_size=1), threads=threads)
        tasks.append(Task(key, sampler(runner, Device.CPU), key))
    measured = {m.key: m for m in time_tasks(tasks, StopRule(), device=Device.CPU, threads=threads)}
    entries = {}
    for key, _, _ in modules:
        m, control = measured[key], measured[_control_key(controls[key])]
        ratios = paired_ratios(m, control) or (m.headline[0] / control.headline[0],)
        relative, low, high, _ = median_ci(ratios)
        entries[key] = {
            "control": _control_key(controls[key]),
            "latency_ms": m.headline[0] * 1e3,
            "control_latency_ms": control.headline[0] * 1e3,
            "relative": relative,
            "relative_ci_low": low,
            "relative_ci_high": high,
            "passes": len(ratios),
        }
    return {
        "method": LATENCY_METHOD,
        "host_fingerprint": host_environment()["host_fingerprint"],
        "threads": threads,
        "backend": "eager",
        "batch_size": 1,
        "entries": entries,
    }


def _standard_error(entry: Mapping[str, Any]) -> float | None:
    low, high = entry.get("relative_ci_low"), entry.get("relative_ci_high")
    if low is None or high is None:
        return None
    return (high - low) / (2 * Z95)


def latency_comparison(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """One entry's relative latency then and now: change in percent and the change in standard errors."""
    change = after["relative"] / before["relative"] - 1
    errors = [_standard_error(before), _standard_error(after)]
    combined = math.sqrt(sum(e * e for e in errors)) if None not in errors else None  # type: ignore[operator]
    z = (after["relative"] - before["relative"]) / combined if combined else None
    return {"before": before["relative"], "now": after["relative"], "change_pct": 100 * change, "z": z}


def usable_baseline(baseline: Mapping[str, Any] | None, host_fingerprint: str, path: Path) -> None:
    """Refuse, before anything is timed, a latency baseline this gate cannot compare with (one line)."""
    regenerate = refuse_other_method(
        baseline,
        path,
        what="latency",
        method=LATENCY_METHOD,
        recorded="was recorded by an older mnprof",
        this="this one",
    )
    assert baseline is not None  # refused above
    if baseline.get("host_fingerprint") != host_fingerprint:
        raise MnprofError(
            f"baseline {path} latency was measured on another host (fingerprint {baseline.get('host_fingerprint')}, "
            f"here {host_fingerprint}): latencies compare only on the same host; {regenerate}"
        )


def compare_latency(
    baseline: Mapping[str, Any] | None, now: Mapping[str, Any], tolerance_pct: float, path: Path
) -> tuple[list[Finding], dict[str, dict[str, Any]]]:
    """Findings for entries whose relative latency grew beyond ``tolerance_pct`` and significantly (both runs'
    spread), and every compared entry's :func:`latency_comparison` (for the report)."""
    usable_baseline(baseline, now["host_fingerprint"], path)
    findings, compared = [], {}
    for key, entry in sorted(now["entries"].items()):
        old = baseline.get("entries", {}).get(key)  # type: ignore[union-attr]
        if old is None or old.get("control") != entry["control"]:
            continue  # added entries are reported by the counts comparison; another control compares nothing
        compared[key] = row = latency_comparison(old, entry)
        significant = row["z"] is None or row["z"] > Z95
        if row["change_pct"] > tolerance_pct and significant:
            findings.append(Finding("slower", key, "latency", "latency_relative", old["relative"], entry["relative"]))
    return findings, compared
