"""Instructions against latency over a grid (``benchmarks/RESULTS.md``, docs/instructions.md).

    python benchmarks/instructions_vs_latency.py COUNTS.json [RESULTS.json] [--statistic latency_ms_median]

COUNTS.json is what ``benchmarks/bench_instructions.py`` writes (each configuration's counted passes; the median
pass is taken, as the table does); RESULTS.json a results file of a timed run (default ``reports/results.json``),
of which the eager, batch-1 rows of MobileNetV1 are read. Prints Spearman's rank correlation between instructions
and the latency statistic, the same for MACs, between instructions per MAC and latency per MAC, and per
configuration its MACs, instructions, instructions per MAC, latency and instructions per ns of latency.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("counts", type=Path)
    parser.add_argument("results", type=Path, nargs="?", default=ROOT / "reports" / "results.json")
    parser.add_argument("--statistic", default="latency_ms_median")
    args = parser.parse_args()
    counted = json.loads(args.counts.read_text())["counts"]
    rows = [
        row
        for row in json.loads(args.results.read_text())["measurements"]
        if row["backend"] == "eager" and row["batch_size"] == 1 and row["family"] == "mobilenetv1"
        and row["id"] in counted and row.get("error") is None
    ]  # fmt: skip
    frame = pd.DataFrame(
        {
            "id": [row["id"] for row in rows],
            "macs": [row["macs_analytic"] for row in rows],
            "instructions": [statistics.median_low(counted[row["id"]]) for row in rows],
            "latency_ms": [row[args.statistic] for row in rows],
            "threads": [row["threads"] for row in rows],
        }
    )
    frame["instr_per_mac"] = frame["instructions"] / frame["macs"]
    frame["latency_per_mac"] = frame["latency_ms"] / frame["macs"]
    frame["instr_per_ns"] = frame["instructions"] / (frame["latency_ms"] * 1e6)
    spearman = frame[["instructions", "macs", "latency_ms", "instr_per_mac", "latency_per_mac"]].corr("spearman")
    print(f"{len(frame)} configurations, {args.statistic} of {args.results} (threads {sorted(set(frame['threads']))})")
    print(f"Spearman(instructions, latency) = {spearman.loc['instructions', 'latency_ms']:.3f}")
    print(f"Spearman(MACs, latency) = {spearman.loc['macs', 'latency_ms']:.3f}")
    print(f"Spearman(instructions per MAC, latency per MAC) = {spearman.loc['instr_per_mac', 'latency_per_mac']:.3f}")
    print(frame.drop(columns=["latency_per_mac"]).to_string(index=False, float_format=lambda value: f"{value:.3f}"))


if __name__ == "__main__":
    main()
