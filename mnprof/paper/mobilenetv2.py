"""TF-slim's 22 MobileNetV2 checkpoints, computed: published | computed | delta for MACs and params.

The conventions that reproduce TF-slim's numbers (each verdict below is derived from the numbers, at
the precision TF-slim printed them):

- 1001 classes (TF-slim's background class), in the classifier's MACs and params;
- channels ``make_divisible(c x alpha, 8)`` (TensorFlow's rule), the last 1x1 conv kept at 1280 below
  alpha 1 and widened above it (1664 at 1.3, 1792 at 1.4): :func:`mnprof.model.arch.v2_head_channels`;
- params: conv and FC weights and the FC bias, no BatchNorm (:attr:`ParamConvention.TFSLIM`);
- MACs: conv and FC multiply-accumulates, printed in whole millions by cutting the fraction off, not
  rounding it (300.78 is printed 300, 11.94 as 11).
"""

from __future__ import annotations

import pandas as pd

from mnprof.counting.analytic import ParamConvention, analytic_count
from mnprof.model.config import Family, ModelConfig
from mnprof.model.reference import TFSLIM_V2, TFSLIM_V2_SOURCE
from mnprof.paper.verdict import PaperTable, Verdict, counted_beside_published

__all__ = ["TFSLIM_CLASSES", "tfslim_v2_configs", "tfslim_v2_table"]

TFSLIM_CLASSES = 1001


def tfslim_v2_configs() -> list[ModelConfig]:
    """The 22 configurations TF-slim published (1000 classes, as mnprof builds them by default)."""
    return [ModelConfig(e.alpha, e.resolution, family=Family.MOBILENETV2) for e in TFSLIM_V2]  # type: ignore[arg-type]


def tfslim_v2_table() -> PaperTable:
    """The 22 checkpoints as TF-slim lists them, each with its computed MACs and params and the verdicts."""
    rows = []
    for entry in TFSLIM_V2:
        assert entry.alpha is not None and entry.resolution is not None  # every TF-slim row is a MobileNetV2
        config = ModelConfig(entry.alpha, entry.resolution, TFSLIM_CLASSES, family=Family.MOBILENETV2)  # type: ignore[arg-type]
        count = analytic_count(config)
        params = count.params(ParamConvention.PAPER)
        rows.append(
            {
                "table": "v2",
                "model": entry.model,
                "id": ModelConfig(entry.alpha, entry.resolution, family=Family.MOBILENETV2).id,  # type: ignore[arg-type]
                **counted_beside_published(entry, count.macs, params),
            }
        )
    frame = pd.DataFrame(rows)
    return PaperTable("v2", "TF-slim's MobileNetV2 checkpoints", frame, _notes(frame))


def _notes(frame: pd.DataFrame) -> tuple[str, ...]:
    count = len(frame)
    macs = frame["macs_verdict"].value_counts().to_dict()
    params = frame["params_verdict"].value_counts().to_dict()
    cut = int(sum(int(m) == p for m, p in zip(frame["macs_m"], frame["published_macs_m"], strict=True)))
    notes = [
        f"Million Mult-Adds: cutting the computed count to whole millions gives the printed number for {cut} of "
        f"{count} checkpoints (TF-slim cuts: 300.78 is printed 300); rounding gives it for "
        f"{macs.get(Verdict.REPRODUCED.value, 0)}. Million params: {params.get(Verdict.REPRODUCED.value, 0)} of "
        f"{count} reproduced, {params.get(Verdict.DIFFERS.value, 0)} differ.",
        "Computed under TF-slim's conventions: 1001 classes; channels make_divisible(c x alpha, 8); the last "
        "1x1 conv 1280 wide below alpha 1 and widened above (1.3: 1664, 1.4: 1792); params = conv and FC "
        "weights + FC bias, no BatchNorm. With 1000 classes and PyTorch's count (BatchNorm gamma and beta), "
        f"1.0-224 has {analytic_count(ModelConfig(1.0, 224, family=Family.MOBILENETV2)).params():,} params "  # type: ignore[arg-type]
        "(what mnprof table shows).",
        f"ImageNet accuracy and Pixel 1 CPU latency: published in {TFSLIM_V2_SOURCE}, not measured by mnprof; the "
        "phone latencies are context for the trade-off's shape, not numbers this host should match.",
    ]
    return tuple(notes)
