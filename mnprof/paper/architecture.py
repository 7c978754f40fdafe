"""The paper's Tables 1 to 3, computed: the layer plan, the share of each layer type, one 14x14x512 layer.

Tables 1 to 3 describe 1.0 MobileNet-224 (:data:`REFERENCE`). Table 1's cells are compared as text,
Tables 2 and 3's numbers with :func:`mnprof.paper.verdict.verdict`. :func:`macs_with` re-walks a
plan with some strides or widths changed; the notes of Tables 1, 4 and 6 test conventions with it.

Conventions: Mult-Adds are the analytic conv + FC multiply-accumulates of one image (the paper's);
channels are ``int(channels x alpha)``, 1000 classes. Only counts are computed (no model is run).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

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
from mnprof.model.arch import LayerKind, LayerSpec, conv_output_size, layer_plan, scale_channels
from mnprof.model.config import ModelConfig, Variant
from mnprof.model.reference import MILLION, PAPER, TABLE1, TABLE2, TABLE3, Table3Row, delta_pct
from mnprof.paper.verdict import PaperTable, Verdict, rounded, verdict

__all__ = [
    "REFERENCE",
    "macs_with",
    "table1",
    "table2",
    "table3",
]

REFERENCE = ModelConfig(1.0, 224)  # Tables 1 to 3 describe 1.0 MobileNet-224


def macs_with(
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
        as_printed = macs_with(REFERENCE, strides={layer.name: stride}) / MILLION
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
        computed = rounded(row["macs_pct"], row["published_macs_pct"])
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


# Table 3's layer: 14x14x512 with a 3x3 kernel; the paper's rho = 0.714 is 160 / 224, the input sizes of Table 7
_KERNEL, _SIDE, _CHANNELS, _RHO_RESOLUTION = 3, 14, 512, 160

Case = tuple[int, int, int, int, int, ModelConfig]  # (macs, params, N, M, side, the model whose block 7 is this layer)


def table3() -> PaperTable:
    """Table 3: one 14x14x512 layer with a 3x3x512x512 kernel, standard and depthwise separable, thinned, shrunk."""
    thin = scale_channels(_CHANNELS, 0.75)
    small_side = _block7(ModelConfig(0.75, _RHO_RESOLUTION))[2]
    standard_macs = conv_macs(_SIDE, _SIDE, _KERNEL, _CHANNELS, _CHANNELS)
    cases = _table3_cases(thin, small_side, standard_macs)
    frame = pd.DataFrame([_table3_row(entry, case, standard_macs) for entry, case in zip(TABLE3, cases, strict=True)])
    title = "Table 3: resource use of modifications to standard convolution (one 14x14x512 layer)"
    return PaperTable("3", title, frame, _table3_notes(frame, standard_macs, thin, small_side))


def _table3_cases(thin: int, small_side: int, standard_macs: int) -> tuple[Case, ...]:
    """The layer standard, depthwise separable, thinned to alpha 0.75, and at resolution 160."""

    def separable_case(size: int, width: int, config: ModelConfig) -> Case:
        macs = depthwise_separable_macs(size, size, _KERNEL, width, width)
        params = conv_params(_KERNEL, width, width, groups=width) + conv_params(1, width, width)
        return macs, params, width, width, size, config

    standard_params = conv_params(_KERNEL, _CHANNELS, _CHANNELS)
    return (
        (standard_macs, standard_params, _CHANNELS, _CHANNELS, _SIDE, ModelConfig(1.0, 224, variant=Variant.FULL)),
        separable_case(_SIDE, _CHANNELS, ModelConfig(1.0, 224)),
        separable_case(_SIDE, thin, ModelConfig(0.75, 224)),
        separable_case(small_side, thin, ModelConfig(0.75, _RHO_RESOLUTION)),
    )


def _table3_row(entry: Table3Row, case: Case, standard_macs: int) -> dict[str, Any]:
    """One row: the computed layer against the published one, and against the model's block 7."""
    macs, params, n, m, size, config = case
    kernel = _KERNEL
    plan_macs, plan_params, plan_side = _block7(config)
    separable = config.variant is not Variant.FULL
    return {
        "layer": entry.layer,
        "input": f"{size}x{size}x{n}",
        "kernel": f"{kernel}x{kernel}x{n}x{m}",
        "published_macs_m": entry.macs_m,
        "macs": macs,
        "macs_m": macs / MILLION,
        "delta_macs_pct": delta_pct(macs / MILLION, entry.macs_m),
        "macs_verdict": verdict(macs / MILLION, entry.macs_m).value,
        "published_params_m": entry.params_m,
        "params": params,
        "params_m": params / MILLION,
        "delta_params_pct": delta_pct(params / MILLION, entry.params_m),
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


def _table3_notes(frame: pd.DataFrame, standard_macs: int, thin: int, small_side: int) -> tuple[str, ...]:
    """What reproduced, the separable ratio against the seed's 1/M + 1/F^2, and what alpha and rho do."""
    macs_good = _reproduced(frame, "macs_verdict", "layer")
    params_good = _reproduced(frame, "params_verdict", "layer")
    separable = frame.iloc[1]
    channels, kernel, rho_resolution = _CHANNELS, _KERNEL, _RHO_RESOLUTION
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
    return tuple(notes)
