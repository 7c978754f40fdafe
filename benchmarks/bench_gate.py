"""The latency gate against its targets: no false alarm on unchanged code, a 15% slower model caught.

    python benchmarks/bench_gate.py [--runs 10] [--gap-s 300] [--extra 2] [--workdir DIR]

Records one baseline (``mnprof baseline --latency``) of ``benchmarks/gate_models.py:mobilenet`` at alpha
1.0 and 0.5, resolution 224 and 160, then runs ``mnprof check --latency`` (the default tolerance) ``--runs``
times on the unchanged model and ``--runs`` times on the same model made slower without changing its MACs
(``MNPROF_GATE_EXTRA``: extra ReLUs after every block), alternating, ``--gap-s`` seconds apart, each in a new
process. Prints every run's verdict and each entry's relative latency (to the control) beside the
baseline's, and first, measured in one process, how much slower the slowed model is than the unchanged
one (its latency relative to the control, both timed round-robin in the same passes).

Targets (issue 10, target 5): unchanged: 0 of 10 fail; slower by about 15%: caught in at least 9 of 10;
the runs spread over at least an hour, so that the host's speed moves between them.
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
GRID = ["--alpha", "1.0,0.5", "--resolution", "224,160"]


def mnprof(*args: str, extra: int = 0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MNPROF_GATE_EXTRA=str(extra))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "mnprof", *args], capture_output=True, text=True, env=env)


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def slowdown(extra: int) -> None:
    """How much slower the slowed model is: both relative to the control, timed in the same passes."""
    code = """
from mnprof.check.latency import measure_latency
from mnprof.check.settings import CheckSettings, ModelSpec
from mnprof.host import available_cores
models = (ModelSpec("plain", "gate_models:mobilenet"), ModelSpec("slower", "gate_models:mobilenet_slower"))
entries = measure_latency(CheckSettings(models=models, alphas=(1.0, 0.5), resolutions=(224, 160)),
                          available_cores())["entries"]
for key, entry in entries.items():
    if key.startswith("plain@"):
        slower = entries[key.replace("plain@", "slower@")]
        change = (slower["relative"] / entry["relative"] - 1) * 100
        print(f"  {key[6:]}: relative {entry['relative']:.4f} -> {slower['relative']:.4f} ({change:+.1f}%)")
"""
    env = dict(os.environ, MNPROF_GATE_EXTRA="0", MNPROF_GATE_SLOWER=str(extra))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT)])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    print(done.stdout + done.stderr[-2000:], end="")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="checks of each kind [default: 10]")
    parser.add_argument("--gap-s", type=float, default=300.0, help="seconds between checks [default: 300]")
    parser.add_argument("--extra", type=int, default=2, help="extra ReLUs per block in the slowed model")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mnprof-gate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    baseline = workdir / "baseline.json"
    print(f"== slowdown of MNPROF_GATE_EXTRA={args.extra}, one process ({load()})")
    slowdown(args.extra)
    done = mnprof("baseline", "-q", "--model", MODEL, *GRID, "--latency", "--out", str(baseline))
    if done.returncode:
        raise SystemExit(f"baseline failed: {done.stderr}")
    recorded = json.loads(baseline.read_text())["latency"]
    print(f"== baseline {baseline} at {datetime.now(UTC):%H:%M:%S} ({load()})")
    for key, entry in sorted(recorded["entries"].items()):
        print(f"  {key}: relative {entry['relative']:.4f} [{entry['relative_ci_low']:.4f}, "
              f"{entry['relative_ci_high']:.4f}], {entry['latency_ms']:.2f} ms")  # fmt: skip
    verdicts: dict[str, list[bool]] = {"unchanged": [], "slower": []}
    for index in range(2 * args.runs):
        kind = ("unchanged", "slower")[index % 2]
        start = time.perf_counter()
        done = mnprof("check", "-q", "--model", MODEL, *GRID, "--baseline", str(baseline), "--latency",
                      "--format", "json", extra=args.extra if kind == "slower" else 0)  # fmt: skip
        wall = time.perf_counter() - start
        if done.returncode not in (0, 1):
            raise SystemExit(f"check failed ({done.returncode}): {done.stderr}")
        report = json.loads(done.stdout)
        slower = [f for f in report["findings"] if f["status"] == "slower"]
        verdicts[kind].append(bool(slower))
        detail = ", ".join(f"{f['entry']} {f['baseline']:.3f}->{f['now']:.3f}" for f in slower) or "none slower"
        changes = report.get("latency", {})
        if changes:  # the margin: every entry's change and its significance
            detail += "; changes " + ", ".join(
                f"{key.split('@')[1]} {row['change_pct']:+.1f}% (z {row['z']:.1f})"
                if row["z"] is not None
                else f"{key.split('@')[1]} {row['change_pct']:+.1f}%"
                for key, row in sorted(changes.items())
            )
        print(f"  {datetime.now(UTC):%H:%M:%S} {kind:9} exit {done.returncode} in {wall:4.1f} s ({load()}): {detail}")
        if index < 2 * args.runs - 1:
            time.sleep(args.gap_s)
    false_alarms, caught = sum(verdicts["unchanged"]), sum(verdicts["slower"])
    print(f"target 5: unchanged failed {false_alarms} of {args.runs} (target 0); slower caught {caught} of "
          f"{args.runs} (target >= 9)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
