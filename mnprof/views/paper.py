"""Rendering of the paper's computed tables (:mod:`mnprof.paper`): one spec per table, and ``mnprof paper``'s output.

Each cell of a computed table reads published | computed | delta, then a mark for its verdict
(:data:`MARKS`); Table 1's cells read published | computed | same or different. Markdown and rich
print one table after another with its notes; CSV is one long table with a ``paper_table`` column;
JSON is one versioned document that also carries every table's title and notes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from rich.console import Group
from rich.text import Text

from mnprof.files.documents import dumps
from mnprof.model.reference import decimals
from mnprof.paper.verdict import PaperTable, Verdict
from mnprof.views.render import Column, Format, Rendered, is_missing, number, render_with
from mnprof.views.table_document import table_document

__all__ = [
    "LEGEND",
    "MARKS",
    "render_paper",
    "spec_for",
]

MARKS = {Verdict.REPRODUCED: "✓", Verdict.TRUNCATED: "cut", Verdict.DIFFERS: "✗"}
LEGEND = (
    "✓: the computed number, rounded to the decimals the paper printed, is the published one; "
    "cut: only truncating it gives the published one; ✗: neither."
)


def _cell(
    published: Any, computed: Any, delta: Any, status: Any, digits: int, delta_unit: str = "%", delta_digits: int = 2
) -> str:
    if is_missing(computed):
        return "-" if is_missing(published) else f"{published:g} | - | -"
    mark = MARKS.get(Verdict(status), "") if status in Verdict._value2member_map_ else ""
    cells = f"{published:g} | {number(computed, digits)} | {number(delta, delta_digits, sign=True)}{delta_unit}"
    return f"{cells} {mark}".rstrip()


def _text_cell(published: str, computed: str, match: bool) -> str:
    return f"{published} | {computed} | {'✓' if match else '✗'}"


def _digits_for(published: float) -> int:
    return decimals(published) + 2


PARAMS_COLUMN = Column(
    "Million Parameters",
    lambda r: _cell(
        r["published_params_m"],
        r["params_m"],
        r["delta_params_pct"],
        r["params_verdict"],
        _digits_for(r["published_params_m"]),
    ),
)


Spec = tuple[tuple[Column, ...], tuple[str, ...]]  # a table's columns, and the notes printed under it


def _architecture_spec(table: PaperTable) -> Spec:
    """Table 1, MobileNet's body: each cell a published text beside the computed one."""
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
    return columns, ("Each cell: published | computed | ✓ same or ✗ different.", *table.notes)


def _share_spec(table: PaperTable) -> Spec:
    """Table 2, the shares of Mult-Adds and parameters per layer type, in percentage points."""

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
    notes = ("Each cell: published % | computed % | delta in percentage points, then the verdict.", LEGEND)
    return columns, (*notes, *table.notes)


def _layer_spec(table: PaperTable) -> Spec:
    """Table 3, one layer standard and separable: the published counts, the exact ones, and their ratios."""
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
        PARAMS_COLUMN,
        Column("input, kernel", lambda r: f"{r['input']}, {r['kernel']}", "left"),
        Column("Mult-Adds exact", lambda r: number(r["macs"])),
        Column("params exact", lambda r: number(r["params"])),
        Column("vs Convolution row", lambda r: number(r["ratio_to_convolution"], 4)),
        Column("vs standard conv, same shape", lambda r: number(r["ratio_to_same_shape_standard"], 4)),
        Column("1/M + 1/F^2", lambda r: number(r["seed_formula_ratio"], 4)),
        Column("model layer", lambda r: str(r["model_layer"]), "left"),
    )
    return columns, ("Each cell: published | computed | delta %, then the verdict.", LEGEND, *table.notes)


def _models_spec(table: PaperTable) -> Spec:
    """Tables 4 to 9 and the checkpoint tables: one model per row, published accuracy, Mult-Adds and params (and
    the published latency where the table has it)."""
    columns = (
        *((Column("Source", lambda r: str(r["source"]), "left"),) if "source" in table.frame.columns else ()),
        Column("Model", lambda r: str(r["model"]), "left"),
        Column(
            "ImageNet Accuracy (published)*",
            lambda r: "-" if is_missing(r["published_top1"]) else f"{number(r['published_top1'], 1)}%",
        ),
        Column(
            "Million Mult-Adds",
            lambda r: _cell(r["published_macs_m"], r["macs_m"], r["delta_macs_pct"], r["macs_verdict"], 2),
        ),
        PARAMS_COLUMN,
        Column("config", lambda r: str(r["id"]) or "-", "left"),
    )
    classes = 1001 if table.key in ("v2", "mobilenetv3-large", "mobilenetv3-small") else 1000  # TF-slim's
    if "published_latency_ms" in table.frame.columns:
        columns += (Column("Pixel 1 CPU ms*", lambda r: number(r["published_latency_ms"], 1)),)
    notes = (
        "Each cell: published | computed | delta %, then the verdict. Computed: analytic conv + FC Mult-Adds, "
        f"conv + FC weights and biases, {classes} classes.",
        LEGEND,
    )
    return columns, (*notes, *table.notes)


# Each table's spec by its key; every other table lists models (_models_spec).
SPECS: dict[str, Callable[[PaperTable], Spec]] = {"1": _architecture_spec, "2": _share_spec, "3": _layer_spec}
# What a cell holds, in the title: Table 1 compares texts, the others numbers.
CELL_TITLES = {"1": "published | computed | match"}


def spec_for(table: PaperTable) -> Rendered:
    """The :class:`mnprof.views.render.Rendered` spec (title, columns, notes) of one computed table."""
    columns, notes = SPECS.get(table.key, _models_spec)(table)
    cells = CELL_TITLES.get(table.key, "published | computed | delta")
    return Rendered(f"{table.title}: {cells}", columns, notes)


def _records(frame: pd.DataFrame, key: str) -> list[dict[str, Any]]:
    rows = []
    for record in frame.to_dict(orient="records"):
        row: dict[str, Any] = {"paper_table": key}
        for name, value in record.items():
            if is_missing(value):
                value = None  # NaN too: the JSON document writes both as null
            row[name] = value.item() if hasattr(value, "item") else value
        rows.append(row)
    return rows


def _nullable_ints(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({c: "Int64" for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])})


def render_paper(tables: Sequence[PaperTable], fmt: Format) -> Any:
    """Render computed tables: Markdown and rich one table after another; CSV one long table; JSON one document.

    CSV and JSON rows carry a ``paper_table`` key; JSON also carries each table's ``title`` and ``notes``
    (CSV has no place for them).
    """
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
    spaced: list[Any] = []
    for part in parts:
        spaced.extend([part, Text("")])
    return Group(*spaced)
