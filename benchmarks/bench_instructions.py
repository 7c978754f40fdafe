"""Instructions per forward pass under Valgrind for a grid, with the time it takes (``benchmarks/RESULTS.md``).

    python benchmarks/bench_instructions.py OUT.json [IDS|all] [PASSES] [--warmup N] [--warm-first]
        [--processes N] [--model mobilenetv1|mobilenetv2|...]

counts the configurations of the family's default grid (``all``) or the comma-separated ids given, as ``mnprof
table --instructions`` does (:func:`mnprof.timing.instructions.count_instructions`, with the levers given: counted
passes, warm-up passes, warm-ups run uninstrumented before instrumentation is switched on, Valgrind processes
sharing the grid), and writes every pass's count, the wall time and when each event came (``built``, ``warmed
ID``, ``instrumented``, ``counted ID``: where the time goes) to OUT.json. Run it twice and compare the files to
see how far two processes agree.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from mnprof.model.config import Family, ModelConfig, default_grid
from mnprof.timing.instructions import PASSES, PROCESSES, WARM_FIRST, WARMUP, count_instructions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("ids", nargs="?", default="all")
    parser.add_argument("passes", nargs="?", type=int, default=PASSES)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--warm-first", action=argparse.BooleanOptionalAction, default=WARM_FIRST)
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--model", default="mobilenetv1")
    args = parser.parse_args()
    family = Family(args.model)
    grid = [ModelConfig(c.alpha, c.resolution, family=family) for c in default_grid()]
    configs = [config for config in grid if args.ids == "all" or config.id in set(args.ids.split(","))]
    started = time.monotonic()
    events: list[tuple[float, str]] = []

    def heard(event: str) -> None:
        events.append((round(time.monotonic() - started, 1), event))
        print(f"{events[-1][0]:7.1f} s {event}", flush=True)

    run = count_instructions(
        configs,
        passes=args.passes,
        warmup=args.warmup,
        warm_first=args.warm_first,
        processes=args.processes,
        on_event=heard,
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    document = {
        "seconds": time.monotonic() - started,
        # CPU time of the Valgrind processes (and callgrind_control): the work, whatever else the machine ran
        "valgrind_cpu_seconds": children.ru_utime + children.ru_stime,
        "valgrind": run.valgrind,
        "torch": run.torch,
        "levers": {
            "passes": run.passes,
            "warmup": run.warmup,
            "warm_first": run.warm_first,
            "processes": run.processes,
        },  # fmt: skip
        "events": events,
        "counts": {count.id: list(count.passes) for count in run.counts},
    }
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=1)
    print(json.dumps({key: document[key] for key in ("seconds", "valgrind_cpu_seconds", "levers", "counts")}, indent=1))


if __name__ == "__main__":
    main()
