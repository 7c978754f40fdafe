"""The count-only files of a report (the table, the paper's tables, the layer tables, the baseline): rendered
before any is written, then written all or none."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from mnprof.check import ModelSpec, baseline_document, builtin_entries
from mnprof.counting.count import CountReport, count_many
from mnprof.files.documents import dumps
from mnprof.files.write import atomic_write_all
from mnprof.model.config import grid
from mnprof.paper.mobilenetv2 import tfslim_v2_table
from mnprof.paper.models import paper_tables
from mnprof.reports.catalogue import DEFAULT_FAMILIES, Families, configs_of, layers_config, layers_name
from mnprof.views import grid as tables
from mnprof.views.layers import layer_report, render_layers
from mnprof.views.paper import render_paper
from mnprof.views.render import Format

__all__ = ["render_counts", "write_counts"]


def _counts(families: Families = DEFAULT_FAMILIES) -> dict[str, Callable[[], str]]:
    @cache
    def reports() -> list[CountReport]:  # counted once: the table and the baseline share them
        return count_many(configs_of(families))

    @cache
    def frame() -> pd.DataFrame:
        return tables.grid_frame(reports())

    def table(fmt: Format) -> Callable[[], str]:
        return lambda: str(tables.render(frame(), tables.View.GRID, fmt))

    def baseline() -> str:  # what mnprof baseline --model ... writes: every family on the gate's default grid
        counted = {report.config: report for report in reports()}
        entries: dict[str, Any] = {}
        for family in families:
            configs = grid(family=family)
            counted.update((r.config, r) for r in count_many([c for c in configs if c not in counted]))
            model = ModelSpec(str(family), getattr(family, "target", str(family)))
            entries.update(builtin_entries([counted[config] for config in configs], model))
        return dumps(baseline_document(entries))

    files: dict[str, Callable[[], str]] = {
        "table.md": table(Format.MARKDOWN),
        "table.csv": table(Format.CSV),
        "table.json": table(Format.JSON),
        "paper.md": lambda: str(render_paper(paper_tables(), Format.MARKDOWN)),
        "paper-mobilenetv2.md": lambda: str(render_paper([tfslim_v2_table()], Format.MARKDOWN)),
    }
    for family in families:
        config = layers_config(family)
        files[layers_name(family, timed=False)] = lambda config=config: str(
            render_layers(layer_report(config, None), Format.MARKDOWN)
        )
    files["baseline.json"] = baseline
    return files


def render_counts(families: Families = DEFAULT_FAMILIES) -> dict[str, str]:
    """Every count-only file of ``families``, by name, computed before any is written: a model that fails
    leaves the report directory as it was."""
    return {name: make() for name, make in _counts(families).items()}


def write_counts(
    out: Path,
    on_file: Callable[[str], None] | None = None,
    families: Families = DEFAULT_FAMILIES,
    texts: dict[str, str] | None = None,
) -> list[str]:
    """Write the count-only files of ``families`` (``texts`` if already rendered) into ``out``, atomically each;
    returns their names."""
    texts = texts if texts is not None else render_counts(families)
    atomic_write_all({out / name: text for name, text in texts.items()})  # all or none
    for name in texts:
        if on_file is not None:
            on_file(name)
    return list(texts)
