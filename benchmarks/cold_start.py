"""Wall time of whole mnprof processes from a cold start (a new Python process each run).

    python benchmarks/cold_start.py [--runs 7] -- mnprof table --quiet --format json

Prints each run, then the median, min, max and IQR. Only ratios and medians from the same run
mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to time after --")
    times = []
    for run in range(args.runs):
        start = time.perf_counter()
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if result.returncode not in (0, 1):
            print(result.stderr, file=sys.stderr)
            return result.returncode
        times.append(elapsed)
        print(f"run {run + 1}: {elapsed:.2f} s (exit {result.returncode})")
    quartiles = statistics.quantiles(times, n=4)
    print(
        f"{' '.join(command)}: median {statistics.median(times):.2f} s, min {min(times):.2f} s, "
        f"max {max(times):.2f} s, IQR {quartiles[2] - quartiles[0]:.2f} s over {len(times)} runs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
