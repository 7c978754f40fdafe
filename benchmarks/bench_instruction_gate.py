"""The instructions gate against its targets: no false alarm on unchanged code; a model doing about 15% more
elementwise work at the same MACs, and one doing about 2% more, caught at the default tolerance.

    python benchmarks/bench_instruction_gate.py [--runs 10] [--alpha 0.35] [--resolution 96] [--workdir DIR]
        [--small-blocks 0] [--latency-rounds N | --latency-only] [--no-effect-sizes]

``benchmarks/gate_models.py:mobilenet`` (mnprof's MobileNetV2, seeded) at one small configuration: first, in one
Valgrind process, how many more instructions each changed model executes than the unchanged one (``MNPROF_GATE_EXTRA``
extra ``relu(x) - relu(-x)`` after the blocks ``MNPROF_GATE_BLOCKS`` names); then one baseline (``mnprof baseline
--instructions``) of the unchanged model, and ``--runs`` rounds of ``mnprof check --instructions`` (the default
tolerance), each round checking the unchanged model, the ~15% one and the ~2% one, every check a new process (its
own Valgrind process: a new torch import, new heap, new PIDs). Instructions are deterministic for the same software
and grid, so "10 of 10" says that 10 independent processes counted alike, not that 10 draws of a noisy figure fell
on the right side. Only the instruction findings are read (fvcore also reports the new elementwise operators as
uncounted, a separate finding).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gate=gate_models:mobilenet"
# name -> (MNPROF_GATE_EXTRA, MNPROF_GATE_BLOCKS): the extra passes and the blocks they follow
VARIANTS = {"unchanged": ("0", "all"), "about 15%": ("3", "all"), "about 2%": ("1", "0")}


def environment(extra: str, blocks: str) -> dict[str, str]:
    env = dict(os.environ, MNPROF_GATE_EXTRA=extra, MNPROF_GATE_BLOCKS=blocks)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def mnprof(*args: str, variant: str = "unchanged") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mnprof", *args], capture_output=True, text=True,
                          env=environment(*VARIANTS[variant]))  # fmt: skip


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def effect_sizes(alpha: float, resolution: int) -> None:
    """Each variant's instructions beside the unchanged model's, counted in one Valgrind process."""
    code = f"""
import os
import gate_models
import mnprof.timing.instructions as callgrind
from mnprof.model.config import ModelConfig, UserFamily
built, configs = {{}}, []
for index, (name, (extra, blocks)) in enumerate({VARIANTS!r}.items()):
    os.environ["MNPROF_GATE_BLOCKS"] = blocks  # read when the model is built
    config = ModelConfig({alpha}, {resolution}, family=UserFamily(f"variant{{index}}", "gate_models:mobilenet"))
    built[config.id] = gate_models._mobilenet({alpha}, 1000, int(extra))
    configs.append(config)
callgrind.calibrated_model = lambda config: built[config.id]  # each variant as built above, in one process
run = callgrind.count_instructions(configs, passes=1, processes=1)
plain = run.counts[0].instructions
for name, count in zip({list(VARIANTS)!r}, run.counts):
    print(f"  {{name}}: {{count.instructions:,}} instructions ({{(count.instructions / plain - 1) * 100:+.2f}}%)")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment("0", "all"))  # fmt: skip
    print(done.stdout + done.stderr[-2000:], end="", flush=True)


def latency_effect(alpha: float, resolution: int, rounds: int) -> None:
    """How much slower each variant runs natively (eager, 1 thread, batch 1): ``rounds`` rounds, each timing 50
    calls of every model in turn; per round each variant's median call over the unchanged model's; the median and
    quartiles of that ratio over the rounds. On a loaded machine a round's ratio moves by several percent."""
    code = f"""
import os, statistics, time, torch
import gate_models
torch.set_num_threads(1)
models = {{}}
for name, (extra, blocks) in {VARIANTS!r}.items():
    os.environ["MNPROF_GATE_EXTRA"], os.environ["MNPROF_GATE_BLOCKS"] = extra, blocks
    models[name] = gate_models.mobilenet({alpha}, 1000)
images = torch.randn(1, 3, {resolution}, {resolution}, generator=torch.Generator().manual_seed(0))
ratios = {{name: [] for name in models}}
with torch.inference_mode():
    for model in models.values():
        for _ in range(20):
            model(images)
    for _ in range({rounds}):
        medians = {{}}
        for name, model in models.items():
            calls = []
            for _ in range(50):
                start = time.perf_counter()
                model(images)
                calls.append(time.perf_counter() - start)
            medians[name] = statistics.median(calls)
        for name in models:
            ratios[name].append(medians[name] / medians["unchanged"])
for name, values in ratios.items():
    q1, q2, q3 = statistics.quantiles(values, n=4)
    print(f"  {{name}}: median call {{(q2 - 1) * 100:+.1f}}% vs unchanged (quartiles {{(q1 - 1) * 100:+.1f}}%, "
          f"{{(q3 - 1) * 100:+.1f}}%, {rounds} rounds)")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment("0", "all"))  # fmt: skip
    print(done.stdout + done.stderr[-2000:], end="", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="rounds of checks [default: 10]")
    parser.add_argument("--alpha", default="0.35")
    parser.add_argument("--resolution", default="96")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-effect-sizes", action="store_true", help="skip counting the variants first")
    parser.add_argument("--latency-rounds", type=int, default=0,
                        help="first time the variants natively in this many rounds (0: not) [default: 0]")  # fmt: skip
    parser.add_argument("--latency-only", action="store_true", help="only time the variants, no Valgrind")
    parser.add_argument("--small-blocks", default=VARIANTS["about 2%"][1],
                        help="MNPROF_GATE_BLOCKS of the 'about 2%%' model [default: %(default)s]")  # fmt: skip
    args = parser.parse_args()
    VARIANTS["about 2%"] = (VARIANTS["about 2%"][0], args.small_blocks)
    grid = ["--alpha", args.alpha, "--resolution", args.resolution]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mnprof-instruction-gate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.latency_rounds or args.latency_only:
        rounds = args.latency_rounds or 30
        print(f"== latency of each variant at {args.alpha}-{args.resolution}, eager, 1 thread ({load()})")
        latency_effect(float(args.alpha), int(args.resolution), rounds)
        if args.latency_only:
            return 0
    if not args.no_effect_sizes:
        print(f"== instructions of each variant at {args.alpha}-{args.resolution}, one Valgrind process ({load()})")
        effect_sizes(float(args.alpha), int(args.resolution))
    baseline = workdir / "baseline.json"
    start = time.perf_counter()
    done = mnprof("baseline", "-q", "--model", MODEL, *grid, "--instructions", "--out", str(baseline))
    if done.returncode:
        raise SystemExit(f"baseline failed: {done.stderr}")
    section = json.loads(baseline.read_text())["instructions"]
    counted = ", ".join(f"{key} {entry['instructions']:,}" for key, entry in section["entries"].items())
    print(f"== baseline {baseline} in {time.perf_counter() - start:.0f} s ({load()}): {counted}", flush=True)
    verdicts: dict[str, list[bool]] = {name: [] for name in VARIANTS}
    for index in range(args.runs):
        for name in VARIANTS:
            start = time.perf_counter()
            done = mnprof("check", "-q", "--model", MODEL, *grid, "--baseline", str(baseline), "--instructions",
                          "--format", "json", variant=name)  # fmt: skip
            wall = time.perf_counter() - start
            if done.returncode not in (0, 1):
                raise SystemExit(f"check failed ({done.returncode}): {done.stderr}")
            report = json.loads(done.stdout)
            found = [f for f in report["findings"] if f["counter"] == "callgrind"]
            verdicts[name].append(any(f["fails"] for f in found))
            detail = ", ".join(f"{f['entry']} {f['status']} {f['percent']:+.3f}%{' FAIL' if f['fails'] else ''}"
                               for f in found) or "instructions unchanged"  # fmt: skip
            print(f"  {datetime.now(UTC):%H:%M:%S} round {index + 1} {name:9} exit {done.returncode} in {wall:4.0f} s "
                  f"({load()}): {detail}", flush=True)  # fmt: skip
    print(f"unchanged: failed {sum(verdicts['unchanged'])} of {args.runs} (target 0); about 15%: caught "
          f"{sum(verdicts['about 15%'])} of {args.runs} (target 10); about 2%: caught {sum(verdicts['about 2%'])} "
          f"of {args.runs}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
