"""The shape counter against fvcore on the 16 default MobileNetV1 configurations, in one process.

    python benchmarks/bench_counting.py [--rounds 5]

Per round: the shape counter (every width built once on the meta device, each configuration counted from
shapes alone), then fvcore alone (every width built once on the CPU, each configuration traced). Both count
the same configurations and must agree on conv + linear MACs. Prints every round's times and the ratio of
the medians: only that ratio means anything on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mnprof.counting.fvcore_counter import count_fvcore
from mnprof.counting.shapes import count_config_shapes
from mnprof.model.config import default_grid
from mnprof.model.networks import build_model


def fvcore_counts(configs: list) -> list[int]:
    models: dict = {}
    counts = []
    for config in configs:
        model = models.setdefault(config.width_key, build_model(config))
        counted = count_fvcore(model, torch.zeros(1, 3, config.resolution, config.resolution))
        counts.append(counted.by_operator["conv"] + counted.by_operator["linear"])
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configs = default_grid()
    shapes_s, fvcore_s = [], []
    for round_ in range(args.rounds):
        start = time.perf_counter()
        shapes = [counted.macs for counted in count_config_shapes(configs)]
        shapes_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        traced = fvcore_counts(configs)
        fvcore_s.append(time.perf_counter() - start)
        if shapes != traced:
            raise SystemExit("the shape counter and fvcore disagree on conv + linear MACs")
        print(f"round {round_ + 1}: shapes {shapes_s[-1] * 1e3:.0f} ms, fvcore {fvcore_s[-1] * 1e3:.0f} ms")
    ratio = statistics.median(fvcore_s) / statistics.median(shapes_s)
    print(
        f"16 configurations: shapes median {statistics.median(shapes_s) * 1e3:.0f} ms, fvcore median "
        f"{statistics.median(fvcore_s) * 1e3:.0f} ms: the shape counter is {ratio:.1f}x faster (target >= 5x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
