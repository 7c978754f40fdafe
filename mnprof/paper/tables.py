"""The paper's tables, computed: every number as published | computed | delta, with verdicts derived from the numbers.

Each ``table<N>()`` function returns a :class:`PaperTable`: a flat DataFrame (exact integers in
``macs`` / ``params`` columns, units in the other names) and notes. Every verdict in a note
("reproduced", "differs", "confirmed") is derived here by comparing numbers at the precision
the paper printed them with (:func:`verdict`); the notes' fixed text only explains.

Conventions: Mult-Adds are the analytic conv + FC multiply-accumulates of one image (the
paper's); params are conv and FC weights and biases (the paper's Tables 4 to 9) unless a column
says otherwise; channels are ``int(channels x alpha)``, 1000 classes. Only counts are computed
(no model is run), so the whole set takes well under a second after import.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from mnprof.counting.analytic import (
    AnalyticCount,
    ParamConvention,
    analytic_count,
    conv_macs,
    conv_params,
    depthwise_separable_macs,
    linear_macs,
)
from mnprof.errors import MnprofError
from mnprof.model.arch import LayerKind, LayerSpec, conv_output_size, layer_plan, scale_channels
from mnprof.model.config import ModelConfig, Variant
from mnprof.model.reference import (
    PAPER,
    PAPER_SOURCE,
    TABLE1,
    TABLE2,
    TABLE3,
    TFSLIM,
    TFSLIM_SOURCE,
    Published,
    decimals,
)

if TYPE_CHECKING:
    from mnprof.counting.count import CountReport

__all__ = [
    "TABLE_KEYS",
    "PaperTable",
    "Verdict",
    "paper_tables",
    "parse_tables",
    "render_paper",
    "spec_for",
    "table1",
    "table2",
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "table8",
    "table9",
    "verdict",
]

MILLION = 1e6
TABLE_KEYS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8", "9")
REFERENCE = ModelConfig(1.0, 224)  # Tables 1 to 3 describe 1.0 MobileNet-224


class Verdict(StrEnum):
    """How a computed number compares with a published one, at the precision it was printed with."""

    REPRODUCED = "reproduced"  # rounded half up to the printed decimals, it is the published number
    TRUNCATED = "truncated"  # only cut (not rounded) to the printed decimals does it give the published number
    DIFFERS = "differs"


MARKS = {Verdict.REPRODUCED: "✓", Verdict.TRUNCATED: "cut", Verdict.DIFFERS: "✗"}
LEGEND = (
    "✓: the computed number, rounded to the decimals the paper printed, is the published one; "
    "cut: only truncating it gives the published one; ✗: neither."
)


def _quantize(value: float, places: int, rounding: str) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places), rounding=rounding)


def verdict(computed: float, published: float) -> Verdict:
    """Compare ``computed`` with ``published`` at the decimals ``published`` was printed with (569 -> 0, 4.2 -> 1)."""
    places = decimals(published)
    target = _quantize(published, places, ROUND_HALF_UP)
    if _quantize(computed, places, ROUND_HALF_UP) == target:
        return Verdict.REPRODUCED
    if _quantize(computed, places, ROUND_DOWN) == target:
        return Verdict.TRUNCATED
    return Verdict.DIFFERS


def _rounded(value: float, like: float) -> str:
    """``value`` rounded half up to the decimals ``like`` was printed with."""
    return str(_quantize(value, decimals(like), ROUND_HALF_UP))


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's tables, computed: ``frame`` holds one row per printed row, ``notes`` the findings."""

    key: str  # "1" to "9"
    title: str
    frame: pd.DataFrame
    notes: tuple[str, ...]


# ---------------------------------------------------------------------------- Table 1


def _hw(size: int, channels: int) -> str:
    return f"{size}x{size}x{channels}"


def _layer_strings(spec: LayerSpec) -> tuple[str, str, str]:
    """A planned layer in Table 1's vocabulary: type / stride, filter shape, input size."""
    size, channels, k = spec.in_size, spec.in_channels, spec.kernel
    if spec.kind is LayerKind.DEPTHWISE:
        return f"Conv dw / s{spec.stride}", f"{k}x{k}x{channels} dw", _hw(size, channels)
    if spec.kind in (LayerKind.CONV, LayerKind.POINTWISE):
        return f"Conv / s{spec.stride}", f"{k}x{k}x{channels}x{spec.out_channels}", _hw(size, channels)
    if spec.kind is LayerKind.POOL:
        return "Avg Pool / s1", f"Pool {k}x{k}", _hw(size, channels)
    return "FC / s1", f"{spec.in_channels}x{spec.out_channels}", _hw(1, spec.in_channels)


def _expand_printed() -> list[int]:
    """Indices into TABLE1, one per layer: the "5x" pair repeats five times, dw then pw."""
    order: list[int] = []
    index = 0
    while index < len(TABLE1):
        repeat = TABLE1[index].repeat
        group = [index]
        while group[-1] + 1 < len(TABLE1) and TABLE1[group[-1] + 1].repeat == repeat and repeat > 1:
            group.append(group[-1] + 1)
        order.extend(group * repeat)
        index = group[-1] + 1
    return order


def _printed_stride(type_stride: str) -> int | None:
    text = type_stride.rpartition("/ s")[2]
    return int(text) if text.isdigit() else None


def _printed_kernel(type_stride: str, filter_shape: str) -> int | None:
    """The kernel side of a printed convolution row (``3x3x32 dw`` -> 3); None for pool, FC and softmax rows."""
    first = filter_shape.split("x")[0]
    return int(first) if type_stride.startswith("Conv") and first.isdigit() else None


def _printed_size(input_size: str) -> int:
    return int(input_size.split("x")[0])


def _macs_with(
    config: ModelConfig, strides: Mapping[str, int] | None = None, widths: Mapping[str, int] | None = None
) -> int:
    """Total Mult-Adds of ``config``'s plan with some layers' strides or output channels changed (re-walked)."""
    strides, widths = strides or {}, widths or {}
    size, channels, total = config.resolution, 3, 0
    for spec in layer_plan(config):
        if spec.kind is LayerKind.POOL:
            size = 1
            continue
        if spec.kind is LayerKind.FC:
            total += linear_macs(channels, spec.out_channels)
            continue
        stride = strides.get(spec.name, spec.stride)
        out_channels = channels if spec.kind is LayerKind.DEPTHWISE else widths.get(spec.name, spec.out_channels)
        size = conv_output_size(size, spec.kernel, stride)
        groups = channels if spec.kind is LayerKind.DEPTHWISE else 1
        total += conv_macs(size, size, spec.kernel, channels, out_channels, groups)
        channels = out_channels
    return total


def _span(names: list[str]) -> str:
    """``blocks.7.dw`` ... ``blocks.11.dw`` -> ``blocks.7-11.dw``; a single name as is."""
    if len(names) == 1:
        return names[0]
    first, last = names[0].split("."), names[-1].split(".")
    return f"{first[0]}.{first[1]}-{last[1]}.{first[2]}"


def table1() -> PaperTable:
    """Table 1, row by row as printed: type / stride, filter shape and input size, published beside computed."""
    plan = layer_plan(REFERENCE)
    computed = [_layer_strings(spec) for spec in plan]
    fc = plan[-1]
    computed.append(("Softmax / s1", "Classifier", _hw(1, fc.out_channels)))  # the FC's output; not a counted layer
    names = [spec.name for spec in plan] + ["(softmax)"]
    order = _expand_printed()
    if len(order) != len(computed):
        raise RuntimeError(f"Table 1 has {len(order)} layers, the plan {len(computed)}")
    rows = []
    for index, printed in enumerate(TABLE1):
        positions = [position for position, row in enumerate(order) if row == index]
        values = [computed[position] for position in positions]
        cells: dict[str, Any] = {"row": index + 1, "repeat": printed.repeat}
        for column, (field, published) in enumerate(
            (
                ("type_stride", printed.type_stride),
                ("filter_shape", printed.filter_shape),
                ("input_size", printed.input_size),
            )
        ):
            distinct = list(dict.fromkeys(value[column] for value in values))
            cells[f"published_{field}"] = published
            cells[field] = " / ".join(distinct)
            cells[f"{field}_match"] = distinct == [published]
        cells["layers"] = _span([names[position] for position in positions])
        rows.append(cells)
    frame = pd.DataFrame(rows)
    return PaperTable(
        "1", "Table 1: MobileNet body architecture (1.0 MobileNet-224)", frame, _table1_notes(frame, order)
    )


def _table1_notes(frame: pd.DataFrame, order: list[int]) -> tuple[str, ...]:
    fields = ("type_stride", "filter_shape", "input_size")
    headers = {"type_stride": "type / stride", "filter_shape": "filter shape", "input_size": "input size"}
    matched = int(sum(frame[f"{field}_match"].sum() for field in fields))
    notes = [
        f"{matched} of {len(frame) * len(fields)} printed cells are reproduced exactly by the layer plan mnprof "
        "builds (alpha 1.0, input 224, padding kernel // 2). The Softmax row's input is the FC's output; "
        "mnprof's model returns logits and counts no softmax."
    ]
    mismatched = frame[~(frame["type_stride_match"] & frame["filter_shape_match"] & frame["input_size_match"])]
    for _, row in mismatched.iterrows():
        cells = [
            f"{headers[field]} printed {row[f'published_{field}']!r}, built {row[field]!r}"
            for field in fields
            if not row[f"{field}_match"]
        ]
        notes.append(f"Row {row['row']} differs: " + "; ".join(cells) + ".")
    # The printed table checked against itself: each conv's printed stride must take its printed input
    # size to the next row's printed input size.
    plan = layer_plan(REFERENCE)
    for position, (index, next_index) in enumerate(zip(order, order[1:], strict=False)):
        printed, following = TABLE1[index], TABLE1[next_index]
        stride, kernel = (
            _printed_stride(printed.type_stride),
            _printed_kernel(printed.type_stride, printed.filter_shape),
        )
        if stride is None or kernel is None:
            continue
        size, wanted = _printed_size(printed.input_size), _printed_size(following.input_size)
        produced = conv_output_size(size, kernel, stride)
        if produced == wanted:
            continue
        fits = [s for s in range(1, stride + 1) if conv_output_size(size, kernel, s) == wanted]
        layer = plan[position]
        line = (
            f"Row {index + 1} ({printed.type_stride}, {printed.filter_shape}, input {printed.input_size}) "
            f"disagrees with the printed table itself: a {kernel}x{kernel} convolution with stride {stride} and "
            f"padding {kernel // 2} turns {size}x{size} into {produced}x{produced}, but row {next_index + 1} prints "
            f"input {following.input_size}"
        )
        if fits:
            line += f"; stride {fits[0]} gives {wanted}x{wanted}"
        as_printed = _macs_with(REFERENCE, strides={layer.name: stride}) / MILLION
        as_built = analytic_count(REFERENCE).macs / MILLION
        table6 = next(e for e in PAPER if e.table == "6" and e.alpha == 1.0 and e.resolution == 224)
        assert table6.macs_m is not None
        printed_verdict, built_verdict = verdict(as_printed, table6.macs_m), verdict(as_built, table6.macs_m)
        line += (
            f". With the printed stride {stride} at {layer.name}, 1.0 MobileNet-224 would have {as_printed:.2f} "
            f"million Mult-Adds ({printed_verdict.value} against Table 6's {table6.macs_m:g}); with stride "
            f"{layer.stride} (what mnprof builds, as do TF-slim and timm) {as_built:.2f} ({built_verdict.value})."
        )
        if printed_verdict is Verdict.DIFFERS and built_verdict is not Verdict.DIFFERS:
            line += f" Confirmed: the printed s{stride} is a misprint for s{layer.stride}."
        else:
            line += " Table 6 does not decide which stride is meant."
        notes.append(line)
    return tuple(notes)


# ---------------------------------------------------------------------------- Table 2


def _digits(text: str) -> list[str]:
    return sorted(character for character in text if character.isdigit())


def table2() -> PaperTable:
    """Table 2: each layer type's share of 1.0 MobileNet-224's Mult-Adds and parameters, in percent."""
    count = analytic_count(REFERENCE)
    total_macs = count.macs
    total_params = count.params(ParamConvention.PAPER)
    fc_bias = count.fc.bias_params
    rows = []
    for entry in TABLE2:
        kind = LayerKind(entry.kind)
        macs = count.macs_of([kind])
        params = count.params_of([kind])
        weights = params - (fc_bias if kind is LayerKind.FC else 0)  # the convolutions carry no bias
        row: dict[str, Any] = {"layer_type": entry.layer_type, "kind": entry.kind}
        for name, value, total, published in (
            ("macs", macs, total_macs, entry.macs_pct),
            ("params", params, total_params, entry.params_pct),
            ("weights", weights, total_params - fc_bias, entry.params_pct),
        ):
            pct = 100 * value / total
            row[name] = value
            row[f"published_{name}_pct"] = published
            row[f"{name}_pct"] = pct
            row[f"delta_{name}_pp"] = pct - published
            row[f"{name}_verdict"] = verdict(pct, published).value
        rows.append(row)
    frame = pd.DataFrame(rows)
    notes = _table2_notes(frame, count)
    return PaperTable("2", "Table 2: resource per layer type (1.0 MobileNet-224)", frame, notes)


def _reproduced(frame: pd.DataFrame, column: str, name: str = "layer_type") -> list[str]:
    return [str(row[name]) for _, row in frame.iterrows() if row[column] == Verdict.REPRODUCED]


def _table2_notes(frame: pd.DataFrame, count: AnalyticCount) -> tuple[str, ...]:
    published_sum = float(sum(Decimal(str(v)) for v in frame["published_macs_pct"]))  # exact decimal sum
    computed_sum = float(frame["macs_pct"].sum())
    good = _reproduced(frame, "macs_verdict")
    notes = [
        f"Mult-Adds: {len(good)} of {len(frame)} rows reproduced at the printed precision ({', '.join(good)}). "
        f"The printed column sums to {published_sum:.2f}%; the computed shares sum to {computed_sum:.2f}% "
        f"(average pooling has no Mult-Adds, so these four types are all of the {count.macs:,})."
    ]
    for _, row in frame[frame["macs_verdict"] != Verdict.REPRODUCED].iterrows():
        computed = _rounded(row["macs_pct"], row["published_macs_pct"])
        published = f"{row['published_macs_pct']:g}"
        line = f"{row['layer_type']}: printed {published}%, computed {row['macs_pct']:.3f}% ({computed}%)."
        if _digits(published) == _digits(computed):
            fixed = float(
                sum(Decimal(str(v)) for v in frame["published_macs_pct"]) - Decimal(published) + Decimal(computed)
            )
            line += (
                f" The printed {published} has the digits of the computed {computed} in another order (a "
                f"transposition); with {computed} the printed column would sum to {fixed:.2f}%."
            )
        notes.append(line)
    with_bias, weights_only = _reproduced(frame, "params_verdict"), _reproduced(frame, "weights_verdict")
    notes.append(
        f"Parameters: counting conv and FC weights and biases ({count.params(ParamConvention.PAPER):,}, the "
        f"convention of Tables 4 to 9), {len(with_bias)} of {len(frame)} rows are reproduced; counting weights "
        f"only (without the FC's {count.fc.bias_params:,} biases), {len(weights_only)} of {len(frame)}."
        + (
            " Table 2's parameter shares are therefore shares of the weights alone."
            if len(weights_only) == len(frame) and len(with_bias) < len(frame)
            else ""
        )
    )
    return tuple(notes)


# ---------------------------------------------------------------------------- Table 3


def _block7(config: ModelConfig) -> tuple[int, int, int]:
    """Mult-Adds, params and input side of block 7 (the first 14x14x512 block at 1.0-224) of ``config``'s plan."""
    count = analytic_count(config)
    layers = [layer for layer in count.layers if layer.spec.name.startswith("blocks.7.")]
    return sum(layer.macs for layer in layers), sum(layer.params for layer in layers), layers[0].spec.in_size


def table3() -> PaperTable:
    """Table 3: one 14x14x512 layer with a 3x3x512x512 kernel, standard and depthwise separable, thinned, shrunk."""
    kernel, side, channels = 3, 14, 512
    rho_resolution = 160  # the paper's rho = 0.714 is 160 / 224, the input sizes of Table 7
    thin = scale_channels(channels, 0.75)
    small_side = _block7(ModelConfig(0.75, rho_resolution))[2]
    standard_macs = conv_macs(side, side, kernel, channels, channels)

    def separable_case(size: int, width: int, config: ModelConfig) -> tuple[int, int, int, int, int, ModelConfig]:
        macs = depthwise_separable_macs(size, size, kernel, width, width)
        params = conv_params(kernel, width, width, groups=width) + conv_params(1, width, width)
        return macs, params, width, width, size, config

    # (macs, params, N, M, side, the model whose block 7 is this layer)
    cases = (
        (
            standard_macs,
            conv_params(kernel, channels, channels),
            channels,
            channels,
            side,
            ModelConfig(1.0, 224, variant=Variant.FULL),
        ),
        separable_case(side, channels, ModelConfig(1.0, 224)),
        separable_case(side, thin, ModelConfig(0.75, 224)),
        separable_case(small_side, thin, ModelConfig(0.75, rho_resolution)),
    )
    rows = []
    for entry, (macs, params, n, m, size, config) in zip(TABLE3, cases, strict=True):
        plan_macs, plan_params, plan_side = _block7(config)
        separable = config.variant is not Variant.FULL
        rows.append(
            {
                "layer": entry.layer,
                "input": f"{size}x{size}x{n}",
                "kernel": f"{kernel}x{kernel}x{n}x{m}",
                "published_macs_m": entry.macs_m,
                "macs": macs,
                "macs_m": macs / MILLION,
                "delta_macs_pct": _delta_pct(macs / MILLION, entry.macs_m),
                "macs_verdict": verdict(macs / MILLION, entry.macs_m).value,
                "published_params_m": entry.params_m,
                "params": params,
                "params_m": params / MILLION,
                "delta_params_pct": _delta_pct(params / MILLION, entry.params_m),
                "params_verdict": verdict(params / MILLION, entry.params_m).value,
                "ratio_to_convolution": float(Fraction(macs, standard_macs)),
                "ratio_to_same_shape_standard": float(Fraction(macs, conv_macs(size, size, kernel, n, m))),
                "seed_formula_ratio": float(Fraction(1, m) + Fraction(1, kernel**2)) if separable else math.nan,
                "seed_formula_holds": (
                    Fraction(macs, conv_macs(size, size, kernel, n, m)) == Fraction(1, m) + Fraction(1, kernel**2)
                    if separable
                    else None
                ),
                "model_layer": f"{config.id} blocks.7",
                "equals_model_layer": (plan_macs, plan_params, plan_side) == (macs, params, size),
            }
        )
    frame = pd.DataFrame(rows)
    macs_good = _reproduced(frame, "macs_verdict", "layer")
    params_good = _reproduced(frame, "params_verdict", "layer")
    separable = frame.iloc[1]
    notes = [
        f"Mult-Adds: {len(macs_good)} of {len(frame)} rows reproduced at the printed precision; params: "
        f"{len(params_good)} of {len(frame)}.",
        f"Separable / standard = {separable['macs']:,} / {standard_macs:,} = {separable['ratio_to_convolution']:.4f}"
        f" ({1 / separable['ratio_to_convolution']:.2f}x fewer Mult-Adds); the seed note's 1/M + 1/F^2 = 1/{channels} "
        f"+ 1/{kernel**2} = {separable['seed_formula_ratio']:.4f}. Against a standard conv of the same shape, the "
        "separable rows' ratio equals 1/M + 1/F^2 exactly (as fractions): "
        + ", ".join(
            f"{row['layer']} {'yes' if row['seed_formula_holds'] else 'NO'}"
            for _, row in frame.iterrows()
            if row["seed_formula_holds"] is not None
        )
        + ".",
        f"alpha = 0.75 makes 512 channels int(512 x 0.75) = {thin}; rho = 0.714 is {rho_resolution}/224 = "
        f"{rho_resolution / 224:.3f}: at input {rho_resolution} the 14x14 layer is {small_side}x{small_side}.",
        (
            "Each row equals block 7 (dw + pw; a full 3x3 conv in the full-convolution variant) of the model mnprof "
            "builds for the configuration in 'model layer'."
            if bool(frame["equals_model_layer"].all())
            else "Rows that do NOT equal the model's block 7: "
            + ", ".join(frame.loc[~frame["equals_model_layer"], "layer"])
        ),
    ]
    title = "Table 3: resource use of modifications to standard convolution (one 14x14x512 layer)"
    return PaperTable("3", title, frame, tuple(notes))


# ---------------------------------------------------------------------------- Tables 4 to 9


def _delta_pct(computed: float, published: float | None) -> float:
    if published is None or published == 0:
        return math.nan
    return (computed - published) / published * 100


def _config(entry: Published) -> ModelConfig | None:
    if entry.alpha is None or entry.resolution is None:
        return None
    return ModelConfig(entry.alpha, entry.resolution, variant=Variant(entry.variant))


def _computed_row(entry: Published) -> dict[str, Any]:
    """A row like :func:`mnprof.views.grid.paper_frame`'s, for the tables it does not cover (4, 5, 8, 9)."""
    config = _config(entry)
    count = analytic_count(config) if config else None
    macs_m = count.macs / MILLION if count else math.nan
    params_m = count.params(ParamConvention.PAPER) / MILLION if count else math.nan
    return {
        "table": entry.table,
        "model": entry.model,
        "id": config.id if config else "",
        "published_top1": entry.top1,
        "published_macs_m": entry.macs_m,
        "macs_m": macs_m,
        "delta_macs_pct": _delta_pct(macs_m, entry.macs_m),
        "published_params_m": entry.params_m,
        "params_m": params_m,
        "delta_params_pct": _delta_pct(params_m, entry.params_m),
    }


@dataclass(frozen=True)
class _AnalyticReport:
    """What ``tables.paper_frame`` reads of a CountReport: the paper's tables need no fvcore or thop tracing."""

    config: ModelConfig
    analytic: AnalyticCount


def _tables_6_7() -> pd.DataFrame:
    from mnprof.views.grid import paper_configs, paper_frame

    reports = [_AnalyticReport(config, analytic_count(config)) for config in dict.fromkeys(paper_configs())]
    return paper_frame(cast("Sequence[CountReport]", reports))


def _tfslim(config_id: str) -> Published | None:
    for entry in TFSLIM:
        if entry.alpha is not None and entry.resolution is not None and _id(entry) == config_id:
            return entry
    return None


def _id(entry: Published) -> str:
    config = _config(entry)
    return config.id if config else ""


def _with_verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Add exact counts, verdicts and TF-slim's published numbers to rows shaped like ``paper_frame``'s."""
    frame = frame.copy()
    macs, params, macs_verdicts, params_verdicts, tfslim_macs = [], [], [], [], []
    for _, row in frame.iterrows():
        computed = bool(row["id"])
        count = analytic_count(_config_of(row)) if computed else None
        macs.append(count.macs if count else pd.NA)
        params.append(count.params(ParamConvention.PAPER) if count else pd.NA)
        macs_verdicts.append(verdict(row["macs_m"], row["published_macs_m"]).value if computed else "not computed")
        params_verdicts.append(
            verdict(row["params_m"], row["published_params_m"]).value if computed else "not computed"
        )
        entry = _tfslim(str(row["id"])) if computed else None
        tfslim_macs.append(entry.macs_m if entry else math.nan)
    frame.insert(frame.columns.get_loc("macs_m"), "macs", pd.array(macs, dtype="Int64"))
    frame.insert(frame.columns.get_loc("delta_macs_pct") + 1, "macs_verdict", macs_verdicts)
    frame.insert(frame.columns.get_loc("params_m"), "params", pd.array(params, dtype="Int64"))
    frame.insert(frame.columns.get_loc("delta_params_pct") + 1, "params_verdict", params_verdicts)
    frame["published_macs_m_tfslim"] = tfslim_macs
    return frame


def _config_of(row: pd.Series) -> ModelConfig:
    entry = next(e for e in PAPER if e.table == row["table"] and e.model == row["model"])
    config = _config(entry)
    assert config is not None  # rows with an id have a configuration
    return config


# Conventions tried when a computed number differs from the published one. Each maps a
# configuration to a count; a note lists those that reproduce the printed number.
def _last_block_stride_2(config: ModelConfig) -> int:
    last = next(spec for spec in reversed(layer_plan(config)) if spec.name.startswith("blocks."))
    first_of_block = next(spec for spec in layer_plan(config) if spec.name.startswith(last.name.rsplit(".", 1)[0]))
    return _macs_with(config, strides={first_of_block.name: 2})


MACS_CANDIDATES: dict[str, Callable[[ModelConfig], int]] = {
    "without the FC layer": lambda c: (a := analytic_count(c)).macs - a.fc.macs,
    "FC with 1001 classes (TF-slim)": lambda c: (a := analytic_count(c)).macs + a.fc.spec.in_channels,
    "last block's 3x3 conv with stride 2 (as Table 1 prints it)": _last_block_stride_2,
}
PARAMS_CANDIDATES: dict[str, Callable[[ModelConfig], int]] = {
    "weights only (no FC bias)": lambda c: (a := analytic_count(c)).params(ParamConvention.PAPER) - a.fc.bias_params,
    "PyTorch's (BatchNorm gamma and beta too)": lambda c: analytic_count(c).params(ParamConvention.PYTORCH),
    "TF-slim's (1001 classes, BatchNorm beta and moving statistics)": lambda c: analytic_count(c).params(
        ParamConvention.TFSLIM
    ),
}


def _explain(frame: pd.DataFrame, what: str) -> list[str]:
    """Notes for every computed cell of column ``what`` ("macs" or "params") that is not reproduced."""
    candidates = MACS_CANDIDATES if what == "macs" else PARAMS_CANDIDATES
    label = "Mult-Adds" if what == "macs" else "params"
    computed_rows = frame[frame["id"] != ""]
    notes = []
    for _, row in computed_rows.iterrows():
        published, value, status = row[f"published_{what}_m"], row[f"{what}_m"], row[f"{what}_verdict"]
        if status == Verdict.REPRODUCED:
            continue
        line = f"{row['model']} {label}: printed {published:g}, computed {value:.2f}"
        if status == Verdict.TRUNCATED:
            line += f", which rounds to {_rounded(value, published)}: the paper cut it rather than rounded it"
            tfslim = row.get("published_macs_m_tfslim") if what == "macs" else None
            if tfslim is not None and not math.isnan(tfslim):
                line += f" ({TFSLIM_SOURCE} prints {tfslim:g}, {verdict(value, tfslim).value})"
            notes.append(line + ".")
            continue
        line += f" ({_rounded(value, published)}, {row[f'delta_{what}_pct']:+.2f}%). Conventions tried: "
        tried = []
        fitting = []
        for name, candidate in candidates.items():
            candidate_m = candidate(_config_of(row)) / MILLION
            result = verdict(candidate_m, published)
            tried.append(f"{name} {candidate_m:.2f} ({result.value})")
            if result is Verdict.REPRODUCED:
                fitting.append(name)
        line += "; ".join(tried) + "."
        for name in fitting:
            others = [
                (other["model"], candidates[name](_config_of(other)) / MILLION, other[f"published_{what}_m"])
                for _, other in computed_rows.iterrows()
                if other["model"] != row["model"]
            ]
            broken = [
                (model, value, printed)
                for model, value, printed in others
                if verdict(value, printed) is Verdict.DIFFERS
            ]
            if broken:
                line += (
                    f" '{name}' reproduces it but not "
                    + ", ".join(
                        f"{model} ({value:.2f} -> {_rounded(value, printed)} vs {printed:g})"
                        for model, value, printed in broken
                    )
                    + ": no single convention tried reproduces the whole table."
                )
            else:
                line += f" '{name}' reproduces it and every other computed row of the table."
        if not fitting:
            line += " None of them reproduces the printed number; mnprof leaves the difference unexplained."
        notes.append(line)
    return notes


def _summary(frame: pd.DataFrame) -> str:
    computed = frame[frame["id"] != ""]
    cells = len(computed) * 2
    good = int(
        (computed["macs_verdict"] == Verdict.REPRODUCED).sum()
        + (computed["params_verdict"] == Verdict.REPRODUCED).sum()
    )
    text = f"{good} of {cells} computed cells reproduced at the printed precision."
    uncomputed = frame.loc[frame["id"] == "", "model"].tolist()
    if uncomputed:
        text += f" {', '.join(uncomputed)}: published only (mnprof builds MobileNets only)."
    return text


ACCURACY_NOTE = f"ImageNet accuracy: published in {PAPER_SOURCE}, not measured by mnprof."


def _models_table(key: str, title: str, frame: pd.DataFrame, extra: Iterable[str] = ()) -> PaperTable:
    frame = _with_verdicts(frame)
    notes = (_summary(frame), *_explain(frame, "macs"), *_explain(frame, "params"), *extra, ACCURACY_NOTE)
    return PaperTable(key, title, frame.reset_index(drop=True), notes)


def _published_rows(key: str) -> pd.DataFrame:
    return pd.DataFrame([_computed_row(entry) for entry in PAPER if entry.table == key])


def table4() -> PaperTable:
    """Table 4: MobileNet with full 3x3 convolutions instead of depthwise separable ones (variant ``full``)."""
    return _models_table("4", "Table 4: depthwise separable vs full convolution MobileNet", _published_rows("4"))


def table5() -> PaperTable:
    """Table 5: a thinner MobileNet (alpha 0.75) vs a shallower one (the five 14x14x512 blocks removed)."""
    return _models_table("5", "Table 5: narrow vs shallow MobileNet", _published_rows("5"))


def _tfslim_notes() -> list[str]:
    """TF-slim's published MACs against the computed counts and the paper, and what fits its 0.75 rows."""
    differ = []
    for entry in TFSLIM:
        config = _config(entry)
        assert config is not None and entry.macs_m is not None
        value = analytic_count(config).macs / MILLION
        if verdict(value, entry.macs_m) is not Verdict.REPRODUCED:
            differ.append((config, value, entry.macs_m))
    notes = [
        f"{TFSLIM_SOURCE} ({len(TFSLIM)} configurations): the computed Mult-Adds, rounded, reproduce "
        f"{len(TFSLIM) - len(differ)}; they differ for "
        + ", ".join(f"{c.id} (TF-slim {m:g}, computed {v:.3f})" for c, v, m in differ)
        + "."
    ]
    # Configurations that both the paper (Tables 5 to 9) and TF-slim print, where the two disagree.
    paper_by_id = {_id(e): e for e in PAPER if e.table in ("5", "6", "7", "8", "9") and _id(e)}
    parts = []
    for config_id, paper_entry in paper_by_id.items():
        tfslim_entry = _tfslim(config_id)
        if tfslim_entry is None or tfslim_entry.macs_m == paper_entry.macs_m:
            continue
        assert paper_entry.macs_m is not None and tfslim_entry.macs_m is not None
        value = analytic_count(_config(paper_entry) or REFERENCE).macs / MILLION
        parts.append(
            f"{config_id}: paper {paper_entry.macs_m:g} ({verdict(value, paper_entry.macs_m).value}), "
            f"TF-slim {tfslim_entry.macs_m:g} ({verdict(value, tfslim_entry.macs_m).value}), computed {value:.3f}"
        )
    if parts:
        notes.append("Where the paper and TF-slim print different Mult-Adds: " + "; ".join(parts) + ".")
    thin = [(c, v, m) for c, v, m in differ if c.alpha == 0.75]
    if thin:
        # A search, not a cause: the first layer's width over multiples of 8, everything else as built.
        fits = []
        for width in (8, 16, 24, 32):
            values = [_macs_with(c, widths={"stem": width}) / MILLION for c, _, _ in thin]
            if all(verdict(value, m) is Verdict.REPRODUCED for value, (_, _, m) in zip(values, thin, strict=True)):
                fits.append((width, values))
        stem = scale_channels(32, 0.75)
        below = [(v - m) / v * 100 for _, v, m in thin]
        line = (
            f"TF-slim's {len(thin)} alpha 0.75 rows are {min(below):.2f} to {max(below):.2f}% below the computed "
            f"count. Tried: first-layer widths 8, 16, 24, 32 (int(32 x 0.75) = {stem} as built), all else unchanged: "
        )
        if fits:
            line += "; ".join(
                f"{width} channels give " + ", ".join(f"{value:.2f}" for value in values) for width, values in fits
            )
            line += (
                ", which round to all of TF-slim's 0.75 numbers. A fit, not a documented cause: TF-slim's own "
                f"depth rule max(int(d x alpha), 8) gives {stem}, and {stem} reproduces the paper's 0.75-224 number."
            )
        else:
            line += "none reproduces them all."
        notes.append(line)
    return notes


def table6() -> PaperTable:
    """Table 6: the width multiplier at input 224 (rows from :func:`mnprof.views.grid.paper_frame`)."""
    frame = _tables_6_7()
    return _models_table("6", "Table 6: MobileNet width multiplier", frame[frame["table"] == "6"], _tfslim_notes())


def table7() -> PaperTable:
    """Table 7: the input resolution at alpha 1.0 (rows from :func:`mnprof.views.grid.paper_frame`)."""
    frame = _tables_6_7()
    return _models_table("7", "Table 7: MobileNet resolution", frame[frame["table"] == "7"])


def table8() -> PaperTable:
    """Table 8: MobileNet beside popular models (only MobileNet's row is computed)."""
    return _models_table("8", "Table 8: MobileNet comparison to popular models", _published_rows("8"))


def table9() -> PaperTable:
    """Table 9: a smaller MobileNet beside popular models (only MobileNet's row is computed)."""
    return _models_table("9", "Table 9: smaller MobileNet comparison to popular models", _published_rows("9"))


TABLES: dict[str, Callable[[], PaperTable]] = {
    "1": table1,
    "2": table2,
    "3": table3,
    "4": table4,
    "5": table5,
    "6": table6,
    "7": table7,
    "8": table8,
    "9": table9,
}


def parse_tables(text: str | None) -> tuple[str, ...]:
    """``"1,3"`` -> ("1", "3"); ``None``, ``""`` or ``"all"`` -> every table. Unknown numbers raise MnprofError."""
    if text is None or text.strip().lower() in ("", "all"):
        return TABLE_KEYS
    keys = [item.strip() for item in text.split(",")]
    for key in keys:
        if key not in TABLES:
            raise MnprofError(f"unknown table {key!r}; accepted: {', '.join(TABLE_KEYS)} or all (comma-separated)")
    return tuple(dict.fromkeys(keys))


def paper_tables(keys: Iterable[str] = TABLE_KEYS) -> list[PaperTable]:
    """The paper's tables ``keys`` ("1" to "9"), computed."""
    return [TABLES[key]() for key in keys]


# ---------------------------------------------------------------------------- rendering


def _cell(
    published: Any, computed: Any, delta: Any, status: Any, digits: int, delta_unit: str = "%", delta_digits: int = 2
) -> str:
    if computed is None or (isinstance(computed, float) and math.isnan(computed)):
        return f"{published:g} | - | -" if published is not None and not _nan(published) else "-"
    mark = MARKS.get(Verdict(status), "") if status in Verdict._value2member_map_ else ""
    return f"{published:g} | {computed:,.{digits}f} | {delta:+.{delta_digits}f}{delta_unit} {mark}".rstrip()


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _text_cell(published: str, computed: str, match: bool) -> str:
    return f"{published} | {computed} | {'✓' if match else '✗'}"


def _digits_for(published: float) -> int:
    return decimals(published) + 2


def spec_for(table: PaperTable) -> Any:
    """The :class:`mnprof.views.grid.Rendered` spec (title, columns, notes) of one computed table."""
    from mnprof.views.render import Column, Rendered

    notes: tuple[str, ...]
    if table.key == "1":
        columns = (
            Column("Row", lambda r: str(r["row"])),
            Column(
                "Type / stride",
                lambda r: (
                    ("5x " if r["repeat"] > 1 else "")
                    + _text_cell(r["published_type_stride"], r["type_stride"], r["type_stride_match"])
                ),
                "left",
            ),
            Column(
                "Filter shape",
                lambda r: _text_cell(r["published_filter_shape"], r["filter_shape"], r["filter_shape_match"]),
                "left",
            ),
            Column(
                "Input size",
                lambda r: _text_cell(r["published_input_size"], r["input_size"], r["input_size_match"]),
                "left",
            ),
            Column("mnprof layers", lambda r: str(r["layers"]), "left"),
        )
        notes = ("Each cell: published | computed | ✓ same or ✗ different.", *table.notes)
    elif table.key == "2":

        def share(name: str) -> Callable[[pd.Series], str]:
            return lambda r: _cell(
                r[f"published_{name}_pct"], r[f"{name}_pct"], r[f"delta_{name}_pp"], r[f"{name}_verdict"], 3, " pp", 3
            )

        columns = (
            Column("Type", lambda r: str(r["layer_type"]), "left"),
            Column("Mult-Adds %", share("macs")),
            Column("Parameters % (weights + biases)", share("params")),
            Column("Parameters % (weights only)", share("weights")),
        )
        notes = (
            "Each cell: published % | computed % | delta in percentage points, then the verdict.",
            LEGEND,
            *table.notes,
        )
    elif table.key == "3":
        columns = (
            Column("Layer/Modification", lambda r: str(r["layer"]), "left"),
            Column(
                "Million Mult-Adds",
                lambda r: _cell(
                    r["published_macs_m"],
                    r["macs_m"],
                    r["delta_macs_pct"],
                    r["macs_verdict"],
                    _digits_for(r["published_macs_m"]),
                ),
            ),
            Column(
                "Million Parameters",
                lambda r: _cell(
                    r["published_params_m"],
                    r["params_m"],
                    r["delta_params_pct"],
                    r["params_verdict"],
                    _digits_for(r["published_params_m"]),
                ),
            ),
            Column("input, kernel", lambda r: f"{r['input']}, {r['kernel']}", "left"),
            Column("Mult-Adds exact", lambda r: f"{r['macs']:,}"),
            Column("params exact", lambda r: f"{r['params']:,}"),
            Column("vs Convolution row", lambda r: f"{r['ratio_to_convolution']:.4f}"),
            Column("vs standard conv, same shape", lambda r: f"{r['ratio_to_same_shape_standard']:.4f}"),
            Column("1/M + 1/F^2", lambda r: "-" if _nan(r["seed_formula_ratio"]) else f"{r['seed_formula_ratio']:.4f}"),
            Column("model layer", lambda r: str(r["model_layer"]), "left"),
        )
        notes = ("Each cell: published | computed | delta %, then the verdict.", LEGEND, *table.notes)
    else:
        columns = (
            Column("Model", lambda r: str(r["model"]), "left"),
            Column(
                "ImageNet Accuracy (published)*",
                lambda r: "-" if _nan(r["published_top1"]) else f"{r['published_top1']:.1f}%",
            ),
            Column(
                "Million Mult-Adds",
                lambda r: _cell(r["published_macs_m"], r["macs_m"], r["delta_macs_pct"], r["macs_verdict"], 2),
            ),
            Column(
                "Million Parameters",
                lambda r: _cell(
                    r["published_params_m"],
                    r["params_m"],
                    r["delta_params_pct"],
                    r["params_verdict"],
                    _digits_for(r["published_params_m"]),
                ),
            ),
            Column("config", lambda r: str(r["id"]) or "-", "left"),
        )
        notes = (
            "Each cell: published | computed | delta %, then the verdict. Computed: analytic conv + FC Mult-Adds, "
            "conv + FC weights and biases, 1000 classes.",
            LEGEND,
            *table.notes,
        )
    suffix = "published | computed | match" if table.key == "1" else "published | computed | delta"
    return Rendered(f"{table.title}: {suffix}", columns, notes)


def _records(frame: pd.DataFrame, key: str) -> list[dict[str, Any]]:
    rows = []
    for record in frame.to_dict(orient="records"):
        row: dict[str, Any] = {"paper_table": key}
        for name, value in record.items():
            if value is pd.NA:
                value = None
            row[name] = value.item() if hasattr(value, "item") else value
        rows.append(row)
    return rows


def _nullable_ints(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({c: "Int64" for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])})


def render_paper(tables: Sequence[PaperTable], fmt: Any) -> Any:
    """Render computed tables: Markdown and rich one table after another; CSV one long table; JSON one document.

    ``fmt`` is a :class:`mnprof.views.grid.Format`. CSV and JSON rows carry a ``paper_table`` key; JSON also
    carries each table's ``title`` and ``notes`` (CSV has no place for them).
    """
    from mnprof.files import dumps, table_document
    from mnprof.views.render import Format, render_with

    if fmt is Format.CSV:
        # Nullable integers, so that exact counts stay integers where another table has no such column.
        frames = [_nullable_ints(table.frame.assign(paper_table=table.key)) for table in tables]
        combined = pd.concat(frames, ignore_index=True)
        combined = combined[["paper_table", *[c for c in combined.columns if c != "paper_table"]]]
        return combined.to_csv(index=False, lineterminator="\n")
    if fmt is Format.JSON:
        rows = [row for table in tables for row in _records(table.frame, table.key)]
        document = table_document(rows, view="paper", unit="macs", kind="mnprof.paper")
        document["tables"] = {table.key: {"title": table.title, "notes": list(table.notes)} for table in tables}
        return dumps(document)
    parts = [render_with(spec_for(table), table.frame, fmt, view="paper", kind="mnprof.paper") for table in tables]
    if fmt is Format.MARKDOWN:
        return "\n".join(parts)
    from rich.console import Group
    from rich.text import Text

    spaced: list[Any] = []
    for part in parts:
        spaced.extend([part, Text("")])
    return Group(*spaced)
