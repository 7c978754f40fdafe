"""Instruction counts in the grid view: joined to the count rows, and their columns and note.

The counts come as plain rows (``mnprof.timing.instructions.InstructionRun.rows``): rendering never imports
measuring code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from mnprof.views.render import Column, number

__all__ = ["instruction_columns", "with_instructions"]

MILLION = 1e6


def with_instructions(frame: pd.DataFrame, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Join instruction counts (``mnprof.timing.instructions.InstructionRun.rows``) to ``frame`` by ``id``, with
    ``instructions_per_mac``: instructions per forward pass of one image over its analytic MACs."""
    counted = pd.DataFrame(list(rows))
    if counted.empty:
        return frame
    merged = frame.merge(counted, on="id", how="left")
    merged["instructions"] = merged["instructions"].astype("Int64")
    merged["instructions_per_mac"] = merged["instructions"].astype(float) / merged["macs_analytic"].astype(float)
    return merged


def instruction_columns(frame: pd.DataFrame, *, compact: bool = False) -> tuple[tuple[Column, ...], tuple[str, ...]]:
    """The instruction columns and their note, when ``frame`` has instruction counts (else nothing)."""
    if "instructions" not in frame.columns or not frame["instructions"].notna().any():
        return (), ()
    columns = [
        Column("M instr", lambda r: number(r["instructions"], 1, scale=1 / MILLION)),
        Column("instr/MAC", lambda r: number(r["instructions_per_mac"], 3)),
    ]
    if not compact:
        columns.append(Column("instr spread %", lambda r: number(r["instructions_spread_pct"], 3)))
    first = frame[frame["instructions"].notna()].iloc[0]
    passes = int(first["instructions_passes"])
    counted = "one counted pass after a warm-up" if passes == 1 else f"median of {passes} passes"
    note = (
        f"M instr: instructions executed by one forward pass of one image ({counted}), counted under Valgrind "
        f"{first['valgrind']}'s Callgrind with torch {first['torch_instructions']}, "
        "1 thread; instr/MAC: over the analytic MACs. The code path under Valgrind's CPU model (no AVX-512), "
        "which oneDNN may choose differently from this host's (docs/instructions.md)."
    )
    return tuple(columns), (note,)
