"""Fidelity and cost of mnprof's timings, against the targets of the timing issue.

    python benchmarks/bench_timing.py [--targets 1,2,3,4] [--workdir DIR] [--device cpu|cuda]

1. Reproducibility: two back-to-back default ``mnprof table`` runs (16 configurations, eager, batch 1):
   median |difference| of the latency medians (target <= 3%) and Spearman's rank correlation
   (target >= 0.98, or the identical ranking). Each run's host drift (every configuration slowing down
   or speeding up together, mnprof.timing.engine.host_drift) is printed beside it: it bounds what any method
   inside one run can promise about the next.
2. Agreement with ``torch.utils.benchmark.Timer(...).blocked_autorange()`` on the same model, input and
   threads in the same process (Timer just before and just after mnprof, per configuration): every
   configuration's medians within 5%.
3. Cost: wall time of the default 16-configuration eager sweep (target <= 60 s); from target 1's runs.
4. Runtimes on 1.0-224, batch 1, one run: each backend's speedup over eager and its fraction of the
   GEMM peak measured in the same run (targets: fastest >= 3x with onnxruntime, fastest PyTorch-native
   >= 1.4x).

The host's load average is printed before and after each target: on a shared machine, rerun a target
whose load was well above the core count. ``--device cuda`` runs the same targets on a GPU (target 4 then
compares the PyTorch runtimes only: onnxruntime runs on the CPU provider).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.utils.benchmark as benchmark

from mnprof.model.config import default_grid
from mnprof.model.seeded import calibrated_model, fixed_input
from mnprof.timing.host import available_cores, host_environment
from mnprof.timing.records import TimingRecord
from mnprof.timing.store import ResultsStore, read_results, results_records
from mnprof.timing.sweep import TimingSettings, run_sweep, sweep_drift

MNPROF = [sys.executable, "-m", "mnprof"]
DEVICE = "cpu"  # set by --device


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def mnprof_table(workdir: Path, name: str, *args: str) -> tuple[float, list[TimingRecord]]:
    """Run ``mnprof table`` in a new process; return its wall time and the results file's measurements."""
    results = workdir / f"{name}.json"
    command = [*MNPROF, "table", "--quiet", "--format", "json", "--device", DEVICE, "--results", str(results), *args]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
    for line in done.stderr.splitlines():
        print(f"    {line}")
    return wall, results_records([read_results(results)])


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho: Pearson's correlation of the ranks (ties get their mean rank)."""
    return float(pd.Series(a).rank().corr(pd.Series(b).rank()))


def target_reproducibility(workdir: Path) -> None:
    print(f"== targets 1 and 3: two back-to-back default runs ({load()})")
    walls, runs = [], []
    for name in ("run-a", "run-b"):
        wall, records = mnprof_table(workdir, name)
        walls.append(wall)
        runs.append({record.config.id: record.to_row() for record in records})
        noisy = sum(bool(record.quality and record.quality.noisy) for record in records)
        drift = sweep_drift(records)
        factors = " ".join(f"{factor:.2f}" for factor in drift.factors)
        print(
            f"  {name}: wall {wall:.1f} s for 16 configurations (counting included), {noisy} flagged noisy; "
            f"host speed drift {drift.spread:.1%} (factor per {drift.window_s:g} s window: {factors})"
        )
    a, b = runs
    ids = [config.id for config in default_grid()]
    diffs = [abs(b[i]["latency_ms_median"] / a[i]["latency_ms_median"] - 1) * 100 for i in ids]
    print(f"  {'config':9} {'run-a ms':>9} {'run-b ms':>9} {'diff %':>7} {'CI a %':>7} {'CI b %':>7} samples")
    for i, diff in zip(ids, diffs, strict=True):
        print(
            f"  {i:9} {a[i]['latency_ms_median']:9.3f} {b[i]['latency_ms_median']:9.3f} {diff:7.2f} "
            f"{a[i]['ci_halfwidth_pct'] or float('inf'):7.2f} {b[i]['ci_halfwidth_pct'] or float('inf'):7.2f} "
            f"{a[i]['samples']}/{b[i]['samples']}"
        )
    rank_a = sorted(ids, key=lambda i: a[i]["latency_ms_median"])
    rank_b = sorted(ids, key=lambda i: b[i]["latency_ms_median"])
    rho = spearman([a[i]["latency_ms_median"] for i in ids], [b[i]["latency_ms_median"] for i in ids])
    print(
        f"  target 1: median |diff| {statistics.median(diffs):.2f}% (max {max(diffs):.2f}%; target <= 3%), "
        f"Spearman {rho:.4f}, ranking {'identical' if rank_a == rank_b else 'differs'} (target >= 0.98 or identical)"
    )
    print(f"  target 3: wall {walls[0]:.1f} s and {walls[1]:.1f} s (target <= 60 s)")
    print(f"  ({load()})")


def target_timer_agreement(workdir: Path) -> None:
    """Per configuration: Timer, then mnprof's engine on that configuration alone, then Timer again.

    Comparing mnprof with the mean of the two Timer medians taken just before and after cancels the
    host's drift (this shared machine's speed shifts by several percent over minutes).
    """
    print(f"== target 2: against torch.utils.benchmark.Timer.blocked_autorange ({load()})")
    threads = available_cores()
    settings = TimingSettings(threads=threads, device=DEVICE)
    print(f"  {'config':9} {'mnprof ms':>10} {'Timer before':>12} {'Timer after':>11} {'diff %':>7}")
    diffs = []
    for config in default_grid():
        model, inputs = calibrated_model(config).to(DEVICE), fixed_input(config, 1).to(DEVICE)
        timer = benchmark.Timer(
            stmt="with torch.inference_mode(): model(inputs)",
            globals={"torch": torch, "model": model, "inputs": inputs},
            num_threads=threads,
        )
        before = timer.blocked_autorange(min_run_time=1.0).median * 1e3
        store = ResultsStore.open(workdir / f"timer-{config.id}.json", host_environment(), resume=False)
        (record,) = run_sweep([config], settings, store)
        after = timer.blocked_autorange(min_run_time=1.0).median * 1e3
        ours = record.to_row()["latency_ms_median"]
        diffs.append((ours / ((before + after) / 2) - 1) * 100)
        print(f"  {config.id:9} {ours:10.3f} {before:12.3f} {after:11.3f} {diffs[-1]:+7.2f}")
    worst = max(diffs, key=abs)
    within = sum(abs(diff) <= 5 for diff in diffs)
    typical = statistics.median(abs(diff) for diff in diffs)
    print(f"  target 2: {within}/16 within 5%; worst {worst:+.2f}%, median |diff| {typical:.2f}%")
    print(f"  ({load()})")


def target_runtimes(workdir: Path) -> None:
    print(f"== target 4: runtimes on 1.0-224, batch 1 ({load()})")
    backends = "eager,channels_last,fused,compile" + (",onnxruntime" if DEVICE == "cpu" else "")
    wall, records = mnprof_table(workdir, "runtimes", "--alpha", "1.0", "--resolution", "224", "--backend", backends)
    rows = [record.to_row() for record in records]
    order = backends.split(",")
    rows.sort(key=lambda row: order.index(row["backend"]))
    eager = next(row for row in rows if row["backend"] == "eager")["latency_ms_median"]
    print(f"  {'backend':14} {'median ms':>9} {'IQR ms':>7} {'x eager':>8} {'GFLOP/s':>8} {'of GEMM peak':>12}")
    for row in rows:
        if row.get("error"):
            print(f"  {row['backend']:14} error: {row['error']}")
            continue
        print(
            f"  {row['backend']:14} {row['latency_ms_median']:9.3f} {row['latency_ms_iqr']:7.3f} "
            f"{eager / row['latency_ms_median']:8.2f} {row['gflops_achieved']:8.1f} {row['peak_fraction']:12.1%}"
        )
    timed = [row for row in rows if not row.get("error")]
    fastest = min(timed, key=lambda row: row["latency_ms_median"])
    native = min((row for row in timed if row["backend"] != "onnxruntime"), key=lambda row: row["latency_ms_median"])
    peak = timed[0]["gemm_peak_gflops"]
    theoretical = timed[0]["theoretical_peak_gflops"]
    print(
        f"  GEMM peak {peak:.0f} GFLOP/s ({timed[0]['threads']} threads); theoretical "
        f"{f'{theoretical:.0f}' if theoretical else 'n/a'} GFLOP/s at the reported clock; wall {wall:.0f} s"
    )
    print(
        f"  target 4: fastest {fastest['backend']} {eager / fastest['latency_ms_median']:.2f}x eager (target >= 3x); "
        f"fastest PyTorch-native {native['backend']} {eager / native['latency_ms_median']:.2f}x (target >= 1.4x)"
    )
    print(f"  ({load()})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="1,2,4", help="comma-separated targets (3 comes with 1)")
    parser.add_argument("--workdir", type=Path, default=None, help="where results files go [default: a temp dir]")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to time [default: cpu]")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    targets = set(args.targets.split(","))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mnprof-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"results files in {workdir}")
    if targets & {"1", "3"}:
        target_reproducibility(workdir)
    if "2" in targets:
        target_timer_agreement(workdir)
    if "4" in targets:
        target_runtimes(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
