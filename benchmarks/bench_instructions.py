"""Instructions per forward pass under Valgrind for a grid, with the time it takes (``benchmarks/RESULTS.md``).

``python benchmarks/bench_instructions.py OUT.json [IDS|all] [PASSES]`` counts the configurations of MobileNetV1's
default grid (``all``) or the comma-separated ids given, in one Valgrind process, as ``mnprof table
--instructions`` does, and writes every pass's count and the wall time to OUT.json. Run it twice and compare the
files to see how far two processes agree.
"""

from __future__ import annotations

import json
import sys
import time

from mnprof.model.config import default_grid
from mnprof.timing.instructions import PASSES, count_instructions


def main(argv: list[str]) -> None:
    ids = None if len(argv) < 3 or argv[2] == "all" else set(argv[2].split(","))
    passes = int(argv[3]) if len(argv) > 3 else PASSES
    configs = [config for config in default_grid() if ids is None or config.id in ids]
    started = time.monotonic()
    run = count_instructions(
        configs, passes=passes, on_event=lambda event: print(f"{time.monotonic() - started:7.1f} s {event}", flush=True)
    )
    document = {
        "seconds": time.monotonic() - started,
        "valgrind": run.valgrind,
        "torch": run.torch,
        "counts": {count.id: list(count.passes) for count in run.counts},
    }
    with open(argv[1], "w", encoding="utf-8") as out:
        json.dump(document, out, indent=1)
    print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main(sys.argv)
