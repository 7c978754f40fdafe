"""Wall time of two mnprof command lines, run alternately from a cold start, so that both see the same host.

    python benchmarks/alternate.py --runs 9 --a-path OLD_TREE --b-path . -- \
        check --quiet --baseline $PWD/reports/baseline.json

Each run is ``python -S -m mnprof ARGS`` with ``PYTHONPATH`` naming the source tree first and this environment's
site-packages after it (``-S``: an editable install's finder would otherwise import the installed tree for both),
in the temporary directory (paths in ARGS must be absolute). Prints each pair, then each side's median, min and
IQR and the median of the paired differences (B - A). Only figures from the same run mean anything on a shared
machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time


def _run(tree: str, args: list[str]) -> float:
    path = os.pathsep.join([os.path.abspath(tree), sysconfig.get_paths()["purelib"]])
    environment = {**os.environ, "PYTHONPATH": path}
    start = time.perf_counter()
    command = [sys.executable, "-S", "-m", "mnprof", *args]  # from elsewhere: -m would put the working directory first
    done = subprocess.run(command, env=environment, capture_output=True, cwd=tempfile.gettempdir())
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"{tree}: exit {done.returncode}: {done.stderr.decode()[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--a-path", required=True, help="source tree A (e.g. a git worktree of the old commit)")
    parser.add_argument("--b-path", required=True, help="source tree B")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    a, b = [], []
    for run in range(options.runs):
        first, second = (options.a_path, options.b_path) if run % 2 == 0 else (options.b_path, options.a_path)
        times = {first: _run(first, args), second: _run(second, args)}
        a.append(times[options.a_path])
        b.append(times[options.b_path])
        print(f"run {run + 1}: A {a[-1]:.2f} s, B {b[-1]:.2f} s")
    for name, times in (("A", a), ("B", b)):
        q = statistics.quantiles(times, n=4)
        print(f"{name}: median {statistics.median(times):.2f} s, min {min(times):.2f} s, IQR {q[2] - q[0]:.2f} s")
    differences = [y - x for x, y in zip(a, b, strict=True)]
    print(f"B - A: median {statistics.median(differences):+.2f} s over {options.runs} pairs ({' '.join(args)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
