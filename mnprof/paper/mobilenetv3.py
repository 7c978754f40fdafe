"""MobileNetV3-Large and -Small: the paper's Table 3 and TF-slim's float checkpoints, computed: published |
computed | delta for MACs and params.

The conventions that reproduce the published numbers (each verdict below is derived from the numbers, at the
precision they were printed with):

- 1001 classes (TF-slim's background class; the paper's models are those checkpoints), in the classifier's MACs
  and params;
- channels ``make_divisible(c x alpha, 8)``; a block's expanded channels its input times the table's expansion
  factor, made divisible by 8 (TF-slim's rule: at 0.75 it is what reproduces 155 million MACs and 4.0 million
  params); squeeze-and-excite ``make_divisible(expanded // 4, 8)``; the layer after the pool 1280 (Large) or
  1024 (Small), not narrowed below alpha 1 (:func:`mnprof.model.arch.v3_last_channels`);
- params: conv and FC weights and biases (the squeeze-and-excite convs and both FC layers carry biases), no
  BatchNorm (:attr:`ParamConvention.PAPER`);
- MACs: conv and FC multiply-accumulates (the paper's MAdds; hard-swish, the gates and the pools cost none).
"""

from __future__ import annotations

import pandas as pd

from mnprof.counting.analytic import ParamConvention, analytic_count
from mnprof.model.arch import V3_LAST_CHANNELS, LayerKind
from mnprof.model.config import Family, ModelConfig
from mnprof.model.reference import (
    MILLION,
    V3_EARLY_SOURCE,
    V3_PAPER_SOURCE,
    V3_PUBLISHED,
    V3_TFSLIM_SOURCE,
    Published,
)
from mnprof.paper.verdict import PaperTable, Verdict, counted_beside_published, verdict

__all__ = ["V3_CLASSES", "V3_FAMILIES", "v3_table"]

V3_CLASSES = 1001
V3_FAMILIES = (Family.MOBILENETV3_LARGE, Family.MOBILENETV3_SMALL)
SOURCE_NAMES = {V3_PAPER_SOURCE: "paper", V3_EARLY_SOURCE: "paper (early)", V3_TFSLIM_SOURCE: "TF-slim"}


def _row(entry: Published, family: Family) -> dict[str, object]:
    assert entry.alpha is not None and entry.resolution is not None  # every MobileNetV3 row has both
    count = analytic_count(ModelConfig(entry.alpha, entry.resolution, V3_CLASSES, family=family))
    params = count.params(ParamConvention.PAPER)
    return {
        "table": family.value,
        "source": SOURCE_NAMES[entry.source],
        "model": entry.model,
        "id": ModelConfig(entry.alpha, entry.resolution, family=family).id,
        **counted_beside_published(entry, count.macs, params),
    }


def v3_table(family: Family) -> PaperTable:
    """``family``'s published rows (the paper's Table 3, its early version where that differs, TF-slim's float
    checkpoints), each with its computed MACs and params and the verdicts."""
    if family not in V3_FAMILIES:
        raise ValueError(f"{family} is not a MobileNetV3 family")
    frame = pd.DataFrame([_row(entry, family) for entry in V3_PUBLISHED if entry.family == family.value])
    size = "Large" if family is Family.MOBILENETV3_LARGE else "Small"
    title = f"MobileNetV3-{size}: the paper's Table 3 and TF-slim's checkpoints"
    return PaperTable(family.value, title, frame, _notes(frame, family))


def _verdicts(frame: pd.DataFrame, column: str) -> str:
    parts = []
    for source, rows in frame.groupby("source", sort=False):
        counts = rows[column].value_counts().to_dict()
        parts.append(
            f"{source} {counts.get(Verdict.REPRODUCED.value, 0)} reproduced, "
            f"{counts.get(Verdict.TRUNCATED.value, 0)} cut, {counts.get(Verdict.DIFFERS.value, 0)} differ"
        )
    return "; ".join(parts)


def _notes(frame: pd.DataFrame, family: Family) -> tuple[str, ...]:
    pytorch = analytic_count(ModelConfig(1.0, 224, family=family)).params()
    notes = [
        f"Million Mult-Adds: {_verdicts(frame, 'macs_verdict')}. Million params: {_verdicts(frame, 'params_verdict')}.",
        "Computed under TF-slim's conventions: 1001 classes; channels make_divisible(c x alpha, 8), a block's "
        "expanded channels its input x the table's expansion factor, made divisible by 8; squeeze-and-excite "
        "make_divisible(expanded // 4, 8) with biases; the layer after the pool kept at "
        f"{V3_LAST_CHANNELS[family.value]} below alpha 1; params = conv and FC weights and biases, no BatchNorm. "
        f"With 1000 classes and PyTorch's count (BatchNorm gamma and beta), 1.0-224 has {pytorch:,} params (what "
        "mnprof table shows).",
    ]
    if family is Family.MOBILENETV3_SMALL:
        notes.append(_small_disagreement(frame))
    else:
        notes.append(_large_disagreement(frame))
    notes.append(
        "ImageNet accuracy and Pixel 1 latency: published (paper Table 3, TF-slim's README), not measured by mnprof; "
        "phone latencies are context for the trade-off's shape, not numbers this host should match."
    )
    return tuple(notes)


def _cell(frame: pd.DataFrame, source: str, model_start: str, column: str) -> float:
    rows = frame[(frame["source"] == source) & frame["model"].str.startswith(model_start)]
    return float(rows.iloc[0][column])


def _large_disagreement(frame: pd.DataFrame) -> str:
    computed = _cell(frame, "paper", "V3-Large 1.0", "macs_m")
    params_m = _cell(frame, "paper", "V3-Large 1.0", "params_m")
    paper = _cell(frame, "paper", "V3-Large 1.0", "published_macs_m")
    tfslim = _cell(frame, "TF-slim", "Large dm=1", "published_macs_m")
    printed = _cell(frame, "TF-slim", "Large dm=1", "published_params_m")
    return (
        f"Large 1.0: the paper prints {paper:g} million MAdds and TF-slim {tfslim:g}; the layers of Table 1 give "
        f"{computed:.2f} ({verdict(computed, tfslim).value} against TF-slim's, {verdict(computed, paper).value} "
        f"against the paper's). Both print {printed:g} million params; the count is {params_m:.3f} "
        f"({verdict(params_m, printed).value})."
    )


def _small_disagreement(frame: pd.DataFrame) -> str:
    """Why TF-slim's Small rows and the paper's final Small row differ, derived from the counts."""
    count = analytic_count(ModelConfig(1.0, 224, V3_CLASSES, family=Family.MOBILENETV3_SMALL))
    fc1, fc = (layer.spec for layer in count.layers if layer.spec.kind is LayerKind.FC)
    wider = V3_LARGE_LAST - fc1.out_channels
    extra_params = wider * (fc1.in_channels + 1 + fc.out_channels)  # fc1's weights and biases, fc's weights
    extra_macs = wider * (fc1.in_channels + fc.out_channels)
    macs_m, params_m = count.macs / MILLION, count.params(ParamConvention.PAPER) / MILLION
    early = frame[frame["source"] == "paper (early)"]
    tfslim = frame[frame["source"] == "TF-slim"]
    columns = ["id", "published_macs_m", "published_params_m"]
    same = early[columns].to_numpy().tolist() == tfslim[columns].to_numpy().tolist()
    pairs = "; ".join(f"{r.published_macs_m:g} and {r.published_params_m:g} at {r.id}" for r in tfslim.itertuples())
    final_macs = _cell(frame, "paper", "V3-Small 1.0", "published_macs_m")
    final_params = _cell(frame, "paper", "V3-Small 1.0", "published_params_m")
    tf_macs = _cell(frame, "TF-slim", "Small dm=1", "published_macs_m")
    tf_params = _cell(frame, "TF-slim", "Small dm=1", "published_params_m")
    head = next(layer.spec for layer in count.layers if layer.spec.name == "head")
    squeezed = head.out_channels // 4
    se_params = 2 * head.out_channels * squeezed + head.out_channels + squeezed
    return (
        f"Small: TF-slim's rows ({pairs}) {'are' if same else 'are not'} the paper's early version's Table 3; its "
        f"final version prints {final_macs:g} and {final_params:g} at 1.0, and the layers of Table 2 give "
        f"{macs_m:.2f} ({verdict(macs_m, final_macs).value}) and {params_m:.3f} "
        f"({verdict(params_m, final_params).value}). No single layer explains TF-slim's rows: its {tf_params:g} "
        f"million params are {tf_params - params_m:.2f} million above the count, about what widening the layer "
        f"after the pool from {fc1.out_channels} to {V3_LARGE_LAST} would add ({extra_params:,}), but that adds "
        f"{extra_macs:,} MACs, not the {tf_macs - macs_m:.2f} million between its {tf_macs:g} and the count. "
        f"Table 2 marks squeeze-and-excite on the last 1x1 conv ({head.out_channels} channels), which TF-slim's "
        f"and PyTorch's reference builds leave out, and so does mnprof: with it the params would be "
        f"{se_params:,} more ({params_m + se_params / MILLION:.3f} million, "
        f"{verdict(params_m + se_params / MILLION, final_params).value} against the final version's)."
    )


V3_LARGE_LAST = V3_LAST_CHANNELS[Family.MOBILENETV3_LARGE.value]
