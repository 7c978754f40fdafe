"""Which statistic of the raw samples makes relative latency reproduce between back-to-back runs?

    python benchmarks/rel_statistics.py DIR [DIR ...]

Reads the pairs of results files ``pairN-a.json`` / ``pairN-b.json`` that ``benchmarks/bench_timing.py
--targets 1 --workdir DIR`` leaves (every timed call is in them), recomputes each configuration's latency
with each candidate statistic, divides by the run's geometric mean over the configurations (rel), and
prints, per statistic, run a vs run b: the median and the largest |difference| of rel in each pair, in
how many pairs both are within the latency issue's target 1 (2.5% and 8%), and the median |difference| of
the absolute figure in each pair; then, for a few quantiles, how many configurations of each run would end
noisy by the absolute interval (their quantile's CI wider than the default --target-ci) on the calls
the run kept, and how many by the interval relative to the run (what ``noisy`` judges from results schema
4). No timing happens here.

Candidates: the headline as mnprof computes it (the 5th percentile of all calls, through
:func:`mnprof.timing.stats.quantile_ci`), the host-adjusted median (the headline of results schema 2, the
typical figure since), the median, minimum, 10th and 20th percentile of all calls, the median over turns of
each turn's 10th percentile over its pass's host factor, the minimum and 25th percentile of the turn
medians, rel computed pass by pass (each turn over its pass's geometric mean) and then combined, and a
sensitivity model (log time = a_c + b_c x the pass's host state, so that large configurations may slow
down more than small ones), evaluated at the mean and at the fast end of the host states. Results files
of schema 2 (before the headline became the 5th percentile) are read too: both keep every call.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnprof.timing.records import RawSamples
from mnprof.timing.stats import quantile, quantile_ci, relative_quantile_ci
from mnprof.timing.store import RESULTS_KIND


@dataclass(frozen=True)
class Row:
    """What this analysis needs of a timed row: every call by turn, and the host-adjusted median the run computed."""

    raw: RawSamples
    adjusted: float


Run = dict[str, Row]
NOISY_PCT = 5.0  # mnprof's default --target-ci
Statistic = Callable[[Run], dict[str, float]]


def load(path: Path) -> Run:
    """The timed rows of a results file of schema 2 (host-adjusted headline) or 3: both keep every call."""
    document = json.loads(path.read_text())
    if document.get("kind") != RESULTS_KIND or document.get("schema_version") not in (2, 3, 4):
        raise SystemExit(f"{path}: not a mnprof results file of schema version 2, 3 or 4")
    return {
        row["id"]: Row(
            RawSamples(
                tuple(row["latency_ms_samples"]),
                tuple(row["turn_sizes"]),
                tuple(row["turn_started_unix"]),
                tuple(row.get("latency_ms_discarded") or ()),
                tuple(row.get("turn_host_factors") or ()),
                tuple(row.get("turn_passes") or ()),
            ),
            row["latency_ms_adjusted"],
        )
        for row in document["measurements"]
        if not row.get("error") and row.get("latency_ms_samples")
    }


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def turns(record: Row) -> list[np.ndarray]:
    return [np.array(calls) for _, calls in record.raw.turns()]


def host_adjusted_turns(turn_statistic: Callable[[list[float]], float]) -> Statistic:
    """The median over turns of each turn's statistic over its pass's host factor (the run's own factors)."""

    def statistic(record: Row) -> float:
        factors = record.raw.turn_host_factors or (1.0,) * len(record.raw.turn_sizes)
        calls = [sorted(c) for _, c in record.raw.turns()]
        return float(np.median([turn_statistic(c) / f for c, f in zip(calls, factors, strict=True)]))

    return per_config(statistic)


def per_config(statistic: Callable[[Row], float]) -> Statistic:
    return lambda run: {config: statistic(record) for config, record in run.items()}


def pass_by_pass(turn_statistic: Callable[[np.ndarray], float], combine: Callable[[list[float]], float]) -> Statistic:
    """Each turn over the geometric mean of its pass's turns, then combined over the passes."""

    def statistic(run: Run) -> dict[str, float]:
        by_turn = {config: [turn_statistic(t) for t in turns(record)] for config, record in run.items()}
        passes = min(len(values) for values in by_turn.values())
        relative: dict[str, list[float]] = {config: [] for config in run}
        for index in range(passes):
            mean = geometric_mean([values[index] for values in by_turn.values()])
            for config, values in by_turn.items():
                relative[config].append(values[index] / mean)
        return {config: float(combine(values)) for config, values in relative.items()}

    return statistic


def sensitivity(turn_statistic: Callable[[np.ndarray], float], percentile: float | None) -> Statistic:
    """log t[c, p] = a_c + b_c h_p (h_p: the pass's mean log time, centred), evaluated at h = 0 (``None``) or
    at the given percentile of the passes' h (the fast end of the host's states)."""

    def statistic(run: Run) -> dict[str, float]:
        configs = list(run)
        by_turn = [[turn_statistic(t) for t in turns(run[config])] for config in configs]
        passes = min(len(values) for values in by_turn)
        logs = np.log(np.array([values[:passes] for values in by_turn]))
        host = logs.mean(axis=0) - logs.mean()
        at = 0.0 if percentile is None else float(np.percentile(host, percentile))
        out = {}
        for row, config in zip(logs, configs, strict=True):
            slope = float(np.polyfit(host, row, 1)[0]) if host.std() > 0 else 1.0
            out[config] = math.exp(float(np.median(row - slope * host)) + slope * at)
        return out

    return statistic


STATISTICS: dict[str, Statistic] = {
    "headline: 5th percentile of all calls": per_config(lambda r: quantile_ci([c for _, c in r.raw.turns()])[0]),
    "host-adjusted median (schema 2 headline)": per_config(lambda r: r.adjusted),
    "median of all calls": per_config(lambda r: float(np.median(r.raw.latency_ms))),
    "minimum of all calls": per_config(lambda r: min(r.raw.latency_ms)),
    "10th percentile of all calls": per_config(lambda r: float(np.percentile(r.raw.latency_ms, 10))),
    "20th percentile of all calls": per_config(lambda r: float(np.percentile(r.raw.latency_ms, 20))),
    "host-adjusted turn p10s, median": host_adjusted_turns(lambda calls: quantile(calls, 0.1)),
    "minimum of turn medians": per_config(lambda r: min(float(np.median(t)) for t in turns(r))),
    "25th percentile of turn medians": per_config(lambda r: float(np.percentile([np.median(t) for t in turns(r)], 25))),
    "pass by pass: turn median, median": pass_by_pass(np.median, np.median),
    "pass by pass: turn minimum, median": pass_by_pass(np.min, np.median),
    "pass by pass: turn median, mean": pass_by_pass(np.median, np.mean),
    "sensitivity model, mean host state": sensitivity(np.median, None),
    "sensitivity model, fast host (p10)": sensitivity(np.median, 10),
    "sensitivity model on turn minima, p10": sensitivity(np.min, 10),
}


def relative(values: dict[str, float]) -> dict[str, float]:
    mean = geometric_mean(list(values.values()))
    return {config: value / mean for config, value in values.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="folders holding pairN-a.json and pairN-b.json")
    args = parser.parse_args()
    pairs = [
        (load(a), load(a.with_name(a.name.replace("-a.json", "-b.json"))))
        for folder in args.dirs
        for a in sorted(folder.glob("pair*-a.json"))
        if a.with_name(a.name.replace("-a.json", "-b.json")).exists()
    ]
    if not pairs:
        parser.error("no pairN-a.json / pairN-b.json in the folders given")
    print(
        f"{len(pairs)} pairs; per pair: median |diff| of rel (%), then max |diff| (%), then median |diff| of the "
        "absolute figure (%)"
    )
    for name, statistic in STATISTICS.items():
        medians, maxima, absolute = [], [], []
        for run_a, run_b in pairs:
            common = sorted(set(run_a) & set(run_b))
            values_a, values_b = statistic(run_a), statistic(run_b)
            a = relative({c: v for c, v in values_a.items() if c in common})
            b = relative({c: v for c, v in values_b.items() if c in common})
            differences = [abs(b[c] / a[c] - 1) * 100 for c in common]
            medians.append(statistics.median(differences))
            maxima.append(max(differences))
            absolute.append(statistics.median(abs(values_b[c] / values_a[c] - 1) * 100 for c in common))
        met = sum(1 for m, x in zip(medians, maxima, strict=True) if m <= 2.5 and x <= 8)
        print(
            f"{name:40s} target met in {met}/{len(pairs)}; median "
            + " ".join(f"{m:4.1f}" for m in medians)
            + "; max "
            + " ".join(f"{x:4.1f}" for x in maxima)
            + "; absolute "
            + " ".join(f"{x:4.1f}" for x in absolute)
        )
    runs = [run for pair in pairs for run in pair]
    print(
        f"\nunsettled low ends: per run, configurations whose quantile's 95% CI (turns as clusters, "
        f"mnprof.timing.stats.quantile_ci) is wider than ±{NOISY_PCT:g}% over the calls kept"
    )
    for q in (0.02, 0.05, 0.1, 0.2):
        counts = [sum(quantile_ci([c for _, c in r.raw.turns()], q)[3] * 100 > NOISY_PCT for r in run.values())
                  for run in runs]  # fmt: skip
        print(
            f"quantile {q:<4g} runs with at most 2 unsettled: {sum(c <= 2 for c in counts)}/{len(runs)}; "
            + " ".join(f"{c:2d}" for c in counts)
        )
    counts = [sum(width * 100 > NOISY_PCT for width in relative_quantile_ci(by_pass(run))) for run in runs]
    print(
        "relative to the run (mnprof.timing.stats.relative_quantile_ci, what noisy judges from schema 4), "
        f"runs with at most 2 unsettled: {sum(c <= 2 for c in counts)}/{len(runs)}; "
        + " ".join(f"{c:2d}" for c in counts)
    )
    return 0


def by_pass(run: Run) -> list[list[list[float]]]:
    """Every configuration's calls by round-robin pass: from ``turn_passes`` (schema 4), else each turn is
    taken to be its pass (earlier files: true where no turn was set aside as contended)."""
    tasks = []
    for record in run.values():
        passes = record.raw.turn_passes or tuple(range(len(record.raw.turn_sizes)))
        calls: list[list[float]] = [[] for _ in range(max(passes, default=-1) + 1)]
        for index, (_, turn) in zip(passes, record.raw.turns(), strict=True):
            calls[index] = list(turn)
        tasks.append(calls)
    return tasks


if __name__ == "__main__":
    raise SystemExit(main())
