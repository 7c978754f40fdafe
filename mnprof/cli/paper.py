"""``mnprof paper``: every table of the paper that can be computed, as published | computed | delta."""

from __future__ import annotations

from pathlib import Path

import click

from mnprof.cli.options import Command, family_from, model_option, output_options, resolve_output
from mnprof.cli.output import emit
from mnprof.errors import MnprofError
from mnprof.model.config import Family, UserFamily
from mnprof.paper.mobilenetv2 import tfslim_v2_table
from mnprof.paper.mobilenetv3 import V3_FAMILIES, v3_table
from mnprof.paper.models import paper_tables, parse_tables
from mnprof.views.paper import render_paper
from mnprof.views.render import Format


@click.command(cls=Command)
@click.option(
    "--table",
    "table_keys",
    default="all",
    show_default=True,
    metavar="LIST",
    help="Comma-separated table numbers, 1 to 9, or all (MobileNetV1's paper).",
)
@model_option(
    "mobilenetv1: the paper's Tables 1 to 9; mobilenetv2: TF-slim's 22 published checkpoints, with the "
    "conventions that reproduce them; mobilenetv3-large, mobilenetv3-small: the MobileNetV3 paper's Table 3 and "
    "TF-slim's checkpoints, and where they disagree."
)
@output_options(
    format_help="Output format; csv is one long table with a paper_table column, json also carries each table's "
    "notes. [default: from --out's suffix (.md, .csv, .json), else a table]"
)
def paper(table_keys: str, model: str, fmt: str | None, out: Path | None) -> None:
    """The paper's Tables 1 to 9, computed, each cell published | computed | delta (V2: TF-slim's 22; V3: Table 3).

    Table 1 (layer shapes), 2 (share of Mult-Adds and params per layer type), 3 (the 14x14x512
    layer), 4 (full convolutions vs separable), 5 (narrow vs shallow), 6 and 7 (width and
    resolution) and the MobileNet rows of 8 and 9. Where a computed number disagrees with the
    printed one beyond rounding, a note under the table says so and what mnprof found. Counts only:
    no model is run. Accuracy columns are published data. MobileNetV3-Large and -Small: their
    paper's Table 3 and TF-slim's checkpoints, and where the two disagree.

    \b
    Examples:
      mnprof paper
      mnprof paper --table 1,2 --format markdown
      mnprof paper --format json --out paper.json
      mnprof paper --model mobilenetv2
      mnprof paper --model mobilenetv3-small
    """
    family = family_from(model)
    if isinstance(family, UserFamily):
        raise MnprofError(
            f"--model {model}: mnprof has no published numbers for {family}; accepted: mobilenetv1, mobilenetv2, "
            "mobilenetv3-large or mobilenetv3-small (mnprof table --model counts and times any family)"
        )
    if family is Family.MOBILENETV2:
        if table_keys.strip().lower() not in ("all", "v2"):
            raise MnprofError(
                f"--table {table_keys!r}: the MobileNetV1 paper's tables; accepted with --model mobilenetv2: all "
                "(TF-slim's MobileNetV2 checkpoints, one table)"
            )
        tables = [tfslim_v2_table()]
    elif family in V3_FAMILIES:
        if table_keys.strip().lower() not in ("all", "3"):
            raise MnprofError(
                f"--table {table_keys!r}: the MobileNetV1 paper's tables; accepted with --model {family.value}: all "
                "(the MobileNetV3 paper's Table 3 and TF-slim's checkpoints, one table)"
            )
        tables = [v3_table(family)]
    else:
        tables = paper_tables(parse_tables(table_keys))
    fmt = resolve_output(fmt, out)
    emit(render_paper(tables, Format(fmt)), out)
