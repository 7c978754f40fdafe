"""The script that runs under ``valgrind --tool=callgrind`` (started by :mod:`mnprof.timing.instructions`).

It pays for importing torch once, loads every configuration's seeded model and input (built and calibrated by
:mod:`mnprof.model.seeded` in the mnprof process, natively: calibrating under Valgrind would take minutes),
then for each runs the warm-up passes uncollected and toggles Callgrind's collection on around
each counted forward pass and off again with a dump (``torch._C._valgrind_toggle`` and
``_valgrind_toggle_and_dump_stats``: the client requests CALLGRIND_TOGGLE_COLLECT and CALLGRIND_DUMP_STATS,
compiled into torch). Each counted pass is one dump file, numbered in the order written here.

Usage (argv): ``callgrind_driver.py SPEC`` where SPEC is ``torch.save``'s file of ``(prepared, warmup, passes,
instrument, warm_first)``, ``prepared`` a list of (configuration id, model, input); ``instrument`` says that
Valgrind started with ``--instr-atstart=no`` and instrumentation is to be switched on with ``callgrind_control -i
on`` once the models are loaded (importing torch then runs uninstrumented, several times faster);
``warm_first`` (with ``instrument``), that every configuration's warm-up passes run before that, uninstrumented
too, and the counted passes after. Progress goes to stdout, one line per event: ``built``, ``warmed ID``,
``instrumented``, ``counted ID``; errors to stderr.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import torch


def _switch_instrumentation_on() -> str | None:
    """``callgrind_control -i on`` on this process (synchronous: it returns once Valgrind has switched); the
    error, if it failed."""
    switched = subprocess.run(
        ["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True, text=True, check=False
    )
    if switched.returncode != 0 or "OK" not in switched.stdout:
        return f"callgrind_control -i on failed: {(switched.stdout + switched.stderr).strip()}"
    return None


def main(argv: list[str]) -> int:
    if not torch._C._valgrind_supported_platform():
        print("this torch build has no Valgrind client requests", file=sys.stderr)
        return 3
    torch.set_num_threads(1)  # Valgrind runs one thread at a time; a second would only add its waiting
    # the models are mnprof's own modules (or a user's, importable from PYTHONPATH), written by the mnprof process
    prepared, warmup, passes, instrument, warm_first = torch.load(argv[1], weights_only=False)
    print("built", flush=True)
    with torch.inference_mode():
        if instrument and warm_first:  # every warm-up uninstrumented, several times faster than instrumented
            for config_id, model, images in prepared:
                for _ in range(warmup):
                    model(images)
                print(f"warmed {config_id}", flush=True)
        if instrument:
            failed = _switch_instrumentation_on()
            if failed:
                print(failed, file=sys.stderr)
                return 3
            print("instrumented", flush=True)
        gc.collect()
        gc.disable()  # no collection inside a counted pass
        for config_id, model, images in prepared:
            if not (instrument and warm_first):
                for _ in range(warmup):
                    model(images)
            for _ in range(passes):
                torch._C._valgrind_toggle()
                model(images)
                torch._C._valgrind_toggle_and_dump_stats()
            print(f"counted {config_id}", flush=True)
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # no interpreter teardown: freeing torch's modules under instrumentation took 13 s of two 0.25 configurations'
    # 47 (benchmarks/RESULTS.md); Callgrind still writes its last dump, which is not read
    os._exit(code)
