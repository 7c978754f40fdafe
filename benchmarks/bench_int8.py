"""The int8 runtime against the targets of the quantised-runtime issue (14), in one run.

    python benchmarks/bench_int8.py [--workdir DIR] [--alpha LIST] [--resolution LIST]

One ``mnprof table --backend eager,onnxruntime,onnxruntime_int8`` run (batch 1, every available core;
quantisation included in its wall time) over the default 16 configurations, in a new process. Prints, per
configuration, each runtime's headline latency, int8's agreement with eager float32 (mean cosine similarity
of the logits, top-1 agreement over 32 seeded images) and whether it posted a time, then the targets:
fastest runtime vs eager float32 on 1.0-224 (>= 3x), int8 vs float32 onnxruntime on 1.0-224 (>= 1.5x),
cosine >= 0.999 for every configuration, the whole sweep within 4 minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnprof.timing.store import read_results, results_records

BACKENDS = ("eager", "onnxruntime", "onnxruntime_int8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--alpha", default=None)
    parser.add_argument("--resolution", default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mnprof-int8-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = workdir / "int8.json"
    grid = [
        *(["--alpha", args.alpha] if args.alpha else []),
        *(["--resolution", args.resolution] if args.resolution else []),
    ]
    command = [sys.executable, "-m", "mnprof", "table", "-q", "--format", "json", "--results", str(results),
               "--backend", ",".join(BACKENDS), *grid]  # fmt: skip
    print(f"$ {' '.join(command[1:])}  (load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {done.stderr}")
    rows: dict[str, dict[str, dict]] = {}
    for record in results_records([read_results(results)]):
        rows.setdefault(record.config.id, {})[record.key.backend.value] = record.to_row(with_samples=False)
    print(f"{'config':9} {'eager ms':>9} {'ort ms':>7} {'int8 ms':>8} {'int8/ort':>8} {'cosine':>8} {'top-1':>6}  int8")
    cosines = []
    for config_id, by_backend in rows.items():
        eager, ort, int8 = (by_backend.get(b, {}) for b in BACKENDS)
        cosines.append(int8.get("output_cosine"))

        def ms(row: dict) -> str:
            value = row.get("latency_ms_p5")
            return f"{value:.2f}" if value else "-"

        ratio = ort["latency_ms_p5"] / int8["latency_ms_p5"] if int8.get("latency_ms_p5") else None
        cosine, top1 = int8.get("output_cosine"), int8.get("output_top1_agreement")
        print(
            f"{config_id:9} {ms(eager):>9} {ms(ort):>7} {ms(int8):>8} {f'{ratio:.2f}x' if ratio else '-':>8} "
            f"{f'{cosine:.5f}' if cosine is not None else '-':>8} {f'{top1:.0%}' if top1 is not None else '-':>6}  "
            f"{'timed' if not int8.get('error') else 'error: ' + int8['error'][:60]}"
        )
    if "1.0-224" in rows:
        eager, ort, int8 = (rows["1.0-224"].get(b, {}) for b in BACKENDS)
        timed = {b: rows["1.0-224"][b]["latency_ms_p5"] for b in BACKENDS if rows["1.0-224"].get(b, {}).get(
            "latency_ms_p5")}  # fmt: skip
        fastest = min(timed, key=timed.get)
        print(f"1.0-224: fastest {fastest} {timed['eager'] / timed[fastest]:.2f}x eager float32 (target >= 3x)")
        if "onnxruntime_int8" in timed:
            print(f"1.0-224: int8 {timed['onnxruntime'] / timed['onnxruntime_int8']:.2f}x float32 onnxruntime "
                  "(target >= 1.5x)")  # fmt: skip
    agreeing = sum(c is not None and c >= 0.999 for c in cosines)
    print(f"agreement: cosine >= 0.999 for {agreeing} of {len(cosines)} configurations (target: all)")
    print(f"wall {wall:.0f} s for {len(rows)} configurations x {len(BACKENDS)} runtimes, quantisation included "
          f"(target <= 240 s); load {os.getloadavg()[0]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
