"""Rendering shared by every view: output formats, one number formatter, and the table writers.

A view is a :class:`Rendered` spec (title, columns, notes) plus a DataFrame. CSV and JSON carry the
frame's raw columns (files are for machines and reviews); Markdown and the rich terminal table carry
the spec's formatted columns and its notes. Numbers are rounded here and nowhere else.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from mnprof.files.documents import dumps
from mnprof.views.table_document import table_document

__all__ = [
    "Column",
    "Format",
    "Rendered",
    "families_title",
    "is_missing",
    "number",
    "render_with",
]


class Format(StrEnum):
    TABLE = "table"  # rich table on the terminal
    MARKDOWN = "markdown"
    CSV = "csv"
    JSON = "json"


@dataclass(frozen=True)
class Column:
    """One column of a view: its header, how a row becomes its cell, and, for views that fit the terminal,
    when it is left out (``drop``: lower goes first; ``None``: never)."""

    header: str
    cell: Callable[[pd.Series], str]
    justify: str = "right"
    drop: int | None = None


@dataclass(frozen=True)
class Rendered:
    """A rendered view: a title, columns, and notes printed under the table.

    ``fit``: on a terminal, cells never wrap; columns are left out (by ``Column.drop``) until the table
    fits the width, and a note says which and how to see them.
    """

    title: str
    columns: tuple[Column, ...]
    notes: tuple[str, ...]
    fit: bool = False
    left_out_hint: str = "a wider terminal shows them"


def is_missing(value: Any) -> bool:
    """``None``, pandas' ``NA`` or a float NaN: a cell with nothing to show."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def number(value: Any, digits: int | None = None, *, scale: float = 1.0, sign: bool = False, missing: str = "-") -> str:
    """``value x scale`` with thousands separators: ``digits`` decimals (``None``: as Python prints it),
    a ``+`` for positive numbers with ``sign``; ``missing`` for None, NA and NaN."""
    if is_missing(value):
        return missing
    spec = ("+" if sign else "") + "," + (f".{digits}f" if digits is not None else "")
    return format(value * scale if scale != 1 else value, spec)


FAMILY_NAMES = {
    "mobilenetv1": "MobileNetV1",
    "mobilenetv2": "MobileNetV2",
    "mobilenetv3-large": "MobileNetV3-Large",
    "mobilenetv3-small": "MobileNetV3-Small",
}


def families_title(frame: pd.DataFrame) -> str:
    """``MobileNetV1``, or ``MobileNetV1 and MobileNetV2``: the families a frame's rows belong to."""
    families = list(dict.fromkeys(frame["family"])) if "family" in frame.columns else ["mobilenetv1"]
    return " and ".join(FAMILY_NAMES.get(str(family), str(family)) for family in families) or "MobileNetV1"


def render_with(
    spec: Rendered,
    frame: pd.DataFrame,
    fmt: Format,
    *,
    view: str,
    unit: str | None = "macs",
    kind: str = "mnprof.table",
    width: int | None = None,
) -> Any:
    """Render any frame with any spec: CSV and JSON carry the raw columns, Markdown and rich the spec's columns.

    JSON is the versioned document of :mod:`mnprof.views.table_document` (``kind`` names what it holds).
    ``width``: the terminal's columns, for a spec that fits itself to it (see :class:`Rendered`).
    """
    if fmt is Format.CSV:
        return frame.to_csv(index=False, lineterminator="\n")
    if fmt is Format.JSON:
        rows = [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict(orient="records")]
        return dumps(table_document(rows, view=view, unit=unit, kind=kind))
    cells = [[column.cell(row) for column in spec.columns] for _, row in frame.iterrows()]
    if fmt is Format.MARKDOWN:
        return _markdown(spec, cells)
    if spec.fit and width is not None:
        return _fitted(spec, cells, width)
    return _rich(spec, cells)


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so JSON keeps exact integers."""
    return value.item() if hasattr(value, "item") else value


def _markdown(spec: Rendered, cells: list[list[str]]) -> str:
    out = io.StringIO()
    out.write(f"### {spec.title}\n\n")
    out.write("| " + " | ".join(column.header for column in spec.columns) + " |\n")
    out.write("|" + "|".join("---:" if column.justify == "right" else "---" for column in spec.columns) + "|\n")
    for row in cells:
        out.write("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |\n")
    out.write("\n")
    for note in spec.notes:
        out.write(f"- {note}\n")
    return out.getvalue()


def _table(spec: Rendered, cells: list[list[str]], keep: list[int] | None = None, no_wrap: bool = False) -> Table:
    keep = list(range(len(spec.columns))) if keep is None else keep
    table = Table(title=spec.title, title_style="bold", header_style="bold", show_lines=False)
    for index in keep:
        column = spec.columns[index]
        table.add_column(column.header, justify=column.justify, overflow="fold", no_wrap=no_wrap)  # type: ignore[arg-type]
    for row in cells:
        table.add_row(*(row[index] for index in keep))
    return table


def _rich(spec: Rendered, cells: list[list[str]]) -> Any:
    return Group(_table(spec, cells), *(Text(f"  {note}", style="dim") for note in spec.notes))


def _fitted(spec: Rendered, cells: list[list[str]], width: int) -> Any:
    """The table with cells that never wrap, leaving out columns (lowest ``drop`` first) until it fits ``width``."""
    measure = Console(width=10**4)
    keep = list(range(len(spec.columns)))
    droppable = sorted((c.drop, i) for i, c in enumerate(spec.columns) if c.drop is not None)
    left_out: list[int] = []
    table = _table(spec, cells, keep, no_wrap=True)
    while Measurement.get(measure, measure.options, table).maximum > width and droppable:
        _, index = droppable.pop(0)
        keep.remove(index)
        left_out.append(index)
        table = _table(spec, cells, keep, no_wrap=True)
    notes = list(spec.notes)
    if left_out:
        names = ", ".join(spec.columns[index].header for index in sorted(left_out))
        notes.append(f"left out to fit {width} columns: {names} ({spec.left_out_hint})")
    return Group(table, *(Text(f"  {note}", style="dim") for note in notes))
