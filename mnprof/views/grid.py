"""Pure transforms from count reports to DataFrames, and from DataFrames to rich / Markdown / CSV / JSON.

Published values are joined in as separate ``published_*`` columns and rendered with a ``*``
marker and their source; they are never mixed into computed columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import pandas as pd

from mnprof.counting.count import CountReport
from mnprof.model.config import DIVISIBLE_FAMILIES, Family, ModelConfig
from mnprof.model.reference import (
    MILLION,
    PAPER,
    PAPER_SOURCE,
    TFSLIM_SOURCE,
    delta_pct,
    paper_entry,
    tfslim_entry,
)
from mnprof.paper import models as paper_models
from mnprof.timing.records import Statistic, TimingRecord
from mnprof.views.grid_timings import timing_columns, with_timings
from mnprof.views.instructions import instruction_columns, with_instructions
from mnprof.views.render import Column, Format, Rendered, families_title, number, render_with
from mnprof.views.seed import seed_configs, seed_frame, seed_spec
from mnprof.views.terminal import compact_grid_spec
from mnprof.views.training import training_columns

__all__ = [
    "Unit",
    "View",
    "grid_frame",
    "with_instructions",
    "paper_configs",
    "paper_frame",
    "reconcile_frame",
    "render",
    "seed_configs",
    "seed_frame",
]


class Unit(StrEnum):
    MACS = "macs"
    FLOPS = "flops"  # FLOPs = 2 x MACs


class View(StrEnum):
    # every configuration: on a terminal the compact trade-off (params, MACs, top-1, latency), with --wide and
    # in files the three counters, published values and deltas
    GRID = "grid"
    COUNTS = "counts"  # every configuration counted three ways, and what the other two counters add
    PAPER = "paper"  # the paper's Tables 6 and 7, laid out as the paper lays them out
    SEED = "seed"  # the seed note's table: which numbers are reproduced, under which convention
    RECONCILE = "reconcile"  # fvcore and thop, operator by operator, against the analytic count


def _published_columns(row: dict[str, Any]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    own_rounding = "div8" if row["family"] in DIVISIBLE_FAMILIES else "floor"
    builtin = row["family"] in set(Family)  # a user family has no published numbers
    describes = builtin and (row["variant"], row["rounding"], row["num_classes"]) == ("standard", own_rounding, 1000)
    for suffix, lookup, params_key in (
        ("paper", paper_entry, "params_paper"),
        ("tfslim", tfslim_entry, "params_tfslim"),
    ):
        entry = lookup(row["alpha"], row["resolution"], row["family"]) if describes else None
        macs_m = entry.macs_m if entry else None
        params_m = entry.params_m if entry else None
        columns[f"published_macs_m_{suffix}"] = macs_m if macs_m is not None else math.nan
        columns[f"delta_macs_pct_{suffix}"] = delta_pct(row["macs_analytic"] / MILLION, macs_m)
        columns[f"published_params_m_{suffix}"] = params_m if params_m is not None else math.nan
        params = row[params_key]
        columns[f"delta_params_pct_{suffix}"] = delta_pct(params / MILLION, params_m) if params is not None else None
        columns[f"published_top1_{suffix}"] = entry.top1 if entry and entry.top1 is not None else math.nan
    return columns


def grid_frame(
    reports: Sequence[CountReport],
    timings: Sequence[TimingRecord] | None = None,
    *,
    statistic: Statistic = Statistic.P5,
    reference: str | None = None,
) -> pd.DataFrame:
    """One row per configuration: exact counts, then the published columns and deltas.

    With ``timings`` (records of a sweep or of results files), see :func:`mnprof.views.grid_timings.with_timings`.
    """
    rows = []
    for report in reports:
        row = report.row()
        row.update(_published_columns(row))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in frame.columns:  # a count that is null in some rows (a user family's) stays an exact integer
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(type(value) is int for value in values) and frame[column].dtype.kind == "f":
            frame[column] = frame[column].astype("Int64")
    return frame if timings is None else with_timings(frame, timings, statistic=statistic, reference=reference)


def reconcile_frame(reports: Sequence[CountReport]) -> pd.DataFrame:
    """One row per configuration, counter and operator: counted, predicted by convention, unexplained."""
    rows = []
    for report in reports:
        labelled = [(reconciliation.counter, reconciliation) for reconciliation in report.reconciliations]
        if report.torch_training_reconciliation is not None:  # --pass training: FlopCounterMode's training step
            labelled.append(("torch training", report.torch_training_reconciliation))
        for counter, reconciliation in labelled:
            for attribution in reconciliation.attributions:
                rows.append(
                    {
                        "id": report.config.id,
                        "counter": counter,
                        "operator": attribution.operator,
                        "in_analytic": attribution.in_analytic,
                        "macs_counted": attribution.counted,
                        "macs_expected": attribution.expected,
                        "macs_unexplained": attribution.unexplained,
                        "rule": attribution.rule,
                    }
                )
    return pd.DataFrame(rows)


def paper_configs() -> list[ModelConfig]:
    """The configurations of the paper's Tables 6 and 7."""
    return [ModelConfig(e.alpha, e.resolution) for e in PAPER if e.table in ("6", "7") and e.alpha and e.resolution]


def paper_frame(reports: Sequence[CountReport]) -> pd.DataFrame:
    """Tables 6 and 7 as the paper lays them out: published | computed | delta for Mult-Adds and params.

    The rows are :func:`mnprof.paper.models.computed_rows`' (as ``mnprof paper``'s Tables 6 and 7), from the
    analytic counts of ``reports``, which must hold every configuration of :func:`paper_configs`.
    """
    by_id = {report.config.id: report.analytic for report in reports}
    return paper_models.computed_rows(("6", "7"), count=lambda config: by_id[config.id])


# ---------------------------------------------------------------------------- rendering


def _published(value: Any, delta: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}* ({delta:+.2f}%)"


def _printed(value: float) -> str:
    return f"{value:g}"


def _count_columns(unit: Unit) -> list[Column]:
    """config, params and the three counters' MACs: the columns the wide grid and the counts view share."""
    scale = 2 if unit is Unit.FLOPS else 1
    work = "MFLOPs (2xMACs)" if unit is Unit.FLOPS else "MMACs"
    return [
        Column("config", lambda r: str(r["id"]), "left"),
        Column("params (M)", lambda r: number(r["params"] / MILLION, 3)),
        Column(f"{work} analytic", lambda r: number(scale * r["macs_analytic"] / MILLION, 1)),
        Column(f"{work} fvcore", lambda r: number(scale * r["macs_fvcore"] / MILLION, 1)),
        Column(f"{work} thop", lambda r: number(scale * r["macs_thop"] / MILLION, 1)),
    ]


def _count_notes(frame: pd.DataFrame, unit: Unit) -> list[str]:
    """What params and MACs mean, and how the counters' totals are explained (derived from ``frame``)."""
    work = "MFLOPs (2xMACs)" if unit is Unit.FLOPS else "MMACs"
    unexplained = int(
        (
            (frame["macs_fvcore_unexplained"] != 0)
            | (frame["macs_thop_unexplained"] != 0)
            | (frame["macs_torch_unexplained"].fillna(0) != 0 if "macs_torch_unexplained" in frame else False)
        ).sum()
    )
    conv_linear_equal = bool(
        (
            (frame["macs_fvcore_conv_linear"] == frame["macs_analytic"])
            & (frame["macs_thop_conv_linear"] == frame["macs_analytic"])
        ).all()
    )
    return [
        "params: PyTorch's count (BatchNorm gamma and beta included). Paper params are compared with conv+FC "
        "weights and biases only; TF-slim params with its convention (1001 classes, BN beta and moving statistics).",
        f"{work}: one image; analytic = conv and FC multiply-accumulates (the paper's Mult-Adds)."
        + (" FLOPs = 2 x MACs, published Mult-Adds doubled alike." if unit is Unit.FLOPS else ""),
        "fvcore and thop also count BatchNorm and pooling: fvcore = analytic + batch_norm + adaptive_avg_pool2d, "
        "thop = analytic + BatchNorm2d + AdaptiveAvgPool2d (mnprof table --view reconcile). "
        + (
            "Their conv+linear counts equal the analytic count exactly; "
            if conv_linear_equal
            else "Their conv+linear counts DIFFER from the analytic count; "
        )
        + f"{unexplained} of {len(frame)} configurations leave anything unexplained.",
        *_traced_note(frame),
    ]


def _counts_spec(frame: pd.DataFrame, unit: Unit) -> Rendered:
    scale = 2 if unit is Unit.FLOPS else 1
    work = "MFLOPs (2xMACs)" if unit is Unit.FLOPS else "MMACs"
    columns = (
        *_count_columns(unit),
        Column(f"{work} torch", lambda r: number(scale * r["macs_torch"] / MILLION, 1)),
        Column(f"{work} shapes", lambda r: number(scale * r["macs_shapes"] / MILLION, 1)),
        Column("M activations", lambda r: number(r["activations"] / MILLION, 3)),
        Column("fvcore", lambda r: number(r["activations_fvcore"] / MILLION, 3)),
        Column("peak act. MB", lambda r: number(r["peak_activation_bytes"], 1, scale=1 / MILLION)),
        Column("fvcore extra", lambda r: number(scale * (r["macs_fvcore"] - r["macs_analytic"]))),
        Column("thop extra", lambda r: number(scale * (r["macs_thop"] - r["macs_analytic"]))),
        Column(
            "unexplained",
            lambda r: number(
                scale * (r["macs_fvcore_unexplained"] + r["macs_thop_unexplained"] + r["macs_torch_unexplained"])
            ),
        ),
    )
    notes = (
        *_count_notes(frame, unit),
        "torch: PyTorch's FlopCounterMode, which counts 2 FLOPs per MAC, shown as FLOPs / 2; it counts only "
        "convolutions and linear layers, so it equals the analytic count. shapes: conv and linear MACs from "
        "shapes on the meta device, the layer plan's independent witness.",
        "extra: what the counter charges beyond the analytic count (exact); unexplained: what fvcore, thop and "
        "torch leave over after every operator's convention, which must be 0.",
        "activations: output elements of every conv and linear layer for one image (fvcore's definition), from "
        "the plan and from fvcore's ActivationCountAnalysis. peak act. MB: float32 elements alive at the busiest "
        "layer of one inference, BatchNorm folded, activations in place, a residual block's input kept until its "
        "add (mnprof.counting.analytic.AnalyticCount.peak_working_set); weights not included.",
    )
    trained_columns, trained_notes = training_columns(frame, flops=unit is Unit.FLOPS)
    return Rendered(
        f"{families_title(frame)}: params and MACs, every counter side by side",
        columns + trained_columns,
        notes + trained_notes,
    )


def _traced_note(frame: pd.DataFrame) -> tuple[str, ...]:
    """What "analytic" means for a user family (its rows' ``analytic_source`` is ``traced``)."""
    if "analytic_source" not in frame.columns or not (frame["analytic_source"] == "traced").any():
        return ()
    return (
        "A user family has no layer plan: its analytic count is the closed-form count of its own nn.Conv2d and "
        "nn.Linear modules, traced once on the meta device (analytic_source traced; the same count equals the "
        "layer plan's exactly for MobileNetV1 and V2). Its peak working set is not computed: traced modules do "
        "not say which tensors a model keeps alive.",
    )


def _grid_spec(frame: pd.DataFrame, unit: Unit) -> Rendered:
    scale = 2 if unit is Unit.FLOPS else 1
    work = "MFLOPs (2xMACs)" if unit is Unit.FLOPS else "MMACs"
    columns = (
        *_count_columns(unit),
        Column(
            f"paper {work}* (Δ)", lambda r: _published(scale * r["published_macs_m_paper"], r["delta_macs_pct_paper"])
        ),
        Column(
            f"TF-slim {work}* (Δ)",
            lambda r: _published(scale * r["published_macs_m_tfslim"], r["delta_macs_pct_tfslim"]),
        ),
        Column(
            "paper params M* (Δ)", lambda r: _published(r["published_params_m_paper"], r["delta_params_pct_paper"], 1)
        ),
        Column(
            "TF-slim params M* (Δ)",
            lambda r: _published(r["published_params_m_tfslim"], r["delta_params_pct_tfslim"], 2),
        ),
        Column("top-1 % paper*", lambda r: number(r["published_top1_paper"], 1)),
        Column("top-1 % TF-slim*", lambda r: number(r["published_top1_tfslim"], 1)),
    )
    notes = (
        f"* published, not computed: {PAPER_SOURCE} Tables 6, 7 and 9; {TFSLIM_SOURCE}. "
        "Δ = computed analytic vs published, in percent.",
        *_count_notes(frame, unit),
    )
    counted_columns, counted_notes = instruction_columns(frame)
    columns, notes = columns + counted_columns, notes + counted_notes
    trained_columns, trained_notes = training_columns(frame, flops=unit is Unit.FLOPS)
    columns, notes = columns + trained_columns, notes + trained_notes
    if "latency_ms" in frame.columns:
        timed_columns, timed_notes = timing_columns(frame)
        columns, notes = columns + timed_columns, notes + timed_notes
    title = f"{families_title(frame)}: params and MACs, counted three ways, beside published values"
    return Rendered(title, columns, notes)


def _paper_spec(unit: Unit) -> Rendered:
    scale = 2 if unit is Unit.FLOPS else 1
    work = "Million FLOPs (2xMult-Adds)" if unit is Unit.FLOPS else "Million Mult-Adds"
    columns = (
        Column("Table", lambda r: str(r["table"]), "left"),
        Column("Model", lambda r: str(r["model"]), "left"),
        Column("ImageNet top-1 %*", lambda r: number(r["published_top1"], 1)),
        Column(f"{work}*", lambda r: _printed(scale * r["published_macs_m"])),
        Column(f"{work} computed", lambda r: number(scale * r["macs_m"], 2)),
        Column("Δ %", lambda r: f"{r['delta_macs_pct']:+.2f}"),
        Column("Million params*", lambda r: _printed(r["published_params_m"])),
        Column("Million params computed", lambda r: number(r["params_m"], 3)),
        Column("Δ %", lambda r: f"{r['delta_params_pct']:+.2f}"),
    )
    notes = (
        f"* published in {PAPER_SOURCE}; accuracy is published data, not measured by mnprof.",
        "computed: analytic conv+FC Mult-Adds and conv+FC weights and biases (the paper's convention), "
        "1000 classes, int(channels x alpha).",
        "Δ is mostly the paper's rounding to 2-3 significant digits (Table 7 prints 290 for 290.68).",
    )
    return Rendered("The paper's Tables 6 and 7: published | computed | delta", columns, notes)


def _reconcile_spec() -> Rendered:
    columns = (
        Column("config", lambda r: str(r["id"]), "left"),
        Column("counter", lambda r: str(r["counter"]), "left"),
        Column("operator", lambda r: str(r["operator"]), "left"),
        Column("in paper Mult-Adds", lambda r: "yes" if r["in_analytic"] else "no", "left"),
        Column("counted", lambda r: f"{r['macs_counted']:,}"),
        Column("predicted by convention", lambda r: f"{r['macs_expected']:,}"),
        Column("unexplained", lambda r: f"{r['macs_unexplained']:,}"),
        Column("convention", lambda r: str(r["rule"]), "left"),
    )
    notes = (
        "predicted: what the counter's documented convention gives for this operator, from the analytic "
        "layer plan (a user family's: its traced layers). A counter's total = sum of its operators; unexplained "
        "must be 0 for mnprof's own families, and shows whatever a user's model does that no rule covers.",
    )
    return Rendered(
        "How fvcore, thop and torch's FlopCounterMode differ from the analytic count, operator by operator",
        columns,
        notes,
    )


def spec_for(view: View, frame: pd.DataFrame, unit: Unit) -> Rendered:
    if view is View.GRID:
        return _grid_spec(frame, unit)
    if view is View.COUNTS:
        return _counts_spec(frame, unit)
    if view is View.PAPER:
        return _paper_spec(unit)
    if view is View.SEED:
        return seed_spec(frame)
    return _reconcile_spec()


def _with_flops(frame: pd.DataFrame, unit: Unit) -> pd.DataFrame:
    if unit is not Unit.FLOPS:
        return frame
    frame = frame.copy()
    for column in [c for c in frame.columns if c.startswith("macs_") and pd.api.types.is_integer_dtype(frame[c])]:
        frame["flops_" + column.removeprefix("macs_")] = 2 * frame[column]
    return frame


def render(
    frame: pd.DataFrame,
    view: View,
    fmt: Format,
    unit: Unit = Unit.MACS,
    *,
    wide: bool = False,
    width: int | None = None,
) -> Any:
    """Render ``frame`` (from the view's ``*_frame`` function) as text, or as a rich renderable for ``TABLE``.

    On a terminal (``TABLE``) the grid view is the compact one of :mod:`mnprof.views.terminal`, fitted to
    ``width`` columns; ``wide`` gives every column instead, as files always have.
    """
    if view is View.GRID and fmt is Format.TABLE and not wide:
        spec = compact_grid_spec(frame, flops=unit is Unit.FLOPS)
    else:
        spec = spec_for(view, frame, unit)
    return render_with(spec, _with_flops(frame, unit), fmt, view=view.value, unit=unit.value, width=width)
