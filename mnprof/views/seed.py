"""The seed note's table (the note this project started from): each number it prints, the conventions tried,
and which of them reproduce it when rounded as printed."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mnprof.counting.analytic import ParamConvention
from mnprof.counting.count import CountReport
from mnprof.model.config import ModelConfig
from mnprof.model.reference import MILLION, SEED, SEED_SOURCE
from mnprof.views.predict import seed_gflops_finding
from mnprof.views.render import Column, Rendered, number

__all__ = ["seed_configs", "seed_frame", "seed_spec"]


def seed_configs() -> list[ModelConfig]:
    """The configurations of the seed note's table, and the 1.25-width models its GFLOPS are compared with."""
    configs = [ModelConfig(entry.alpha, entry.resolution) for entry in SEED]
    return configs + [ModelConfig(entry.alpha * 1.25, entry.resolution) for entry in SEED]


def _decimals(printed: str) -> int:
    return len(printed.partition(".")[2])


def _matches(candidates: dict[str, float], published: float, decimals: int) -> list[str]:
    return [name for name, value in candidates.items() if round(value, decimals) == round(published, decimals)]


def seed_frame(reports: Sequence[CountReport]) -> pd.DataFrame:
    """The seed note's table: each number, the conventions tried, and which (if any) reproduce it when rounded."""
    by_id = {report.config.id: report for report in reports}
    rows = []
    for entry in SEED:
        report = by_id[ModelConfig(entry.alpha, entry.resolution).id]
        wider = by_id[ModelConfig(entry.alpha * 1.25, entry.resolution).id]
        params = {convention.value: report.analytic.params(convention) / MILLION for convention in ParamConvention}
        gflops = {
            "MACs": report.analytic.macs / 1e9,
            "2xMACs": 2 * report.analytic.macs / 1e9,
            "2xfvcore": 2 * report.fvcore.total / 1e9,
            "2xthop": 2 * report.thop.total / 1e9,
            f"2xMACs of alpha {wider.config.alpha:g}": 2 * wider.analytic.macs / 1e9,
        }
        params_match = _matches(params, entry.params_m, 2)
        gflops_match = _matches(gflops, entry.gflops, _decimals(entry.printed))
        closest = min(gflops, key=lambda name: abs(gflops[name] - entry.gflops))
        rows.append(
            {
                "model": entry.model,
                "id": report.config.id,
                "published_params_m": entry.params_m,
                "params_m_tfslim": params["tfslim"],
                "params_m_pytorch": params["pytorch"],
                "params_reproduced_by": ", ".join(params_match),
                "published_gflops": entry.gflops,
                "gflops_2x_macs": gflops["2xMACs"],
                "gflops_reproduced_by": ", ".join(gflops_match),
                "gflops_closest": f"{closest} = {gflops[closest]:.3f}",
                "macs_analytic": report.analytic.macs,
                "activations": report.analytic.activations,
            }
        )
    return pd.DataFrame(rows)


def seed_spec(frame: pd.DataFrame | None = None) -> Rendered:
    columns = (
        Column("Model", lambda r: str(r["model"]), "left"),
        Column("Params M (seed)*", lambda r: f"{r['published_params_m']:.2f}"),
        Column("computed, TF-slim conv.", lambda r: number(r["params_m_tfslim"], 4)),
        Column("params reproduced by", lambda r: r["params_reproduced_by"] or "no convention tried", "left"),
        Column("GFLOPS (seed)*", lambda r: f"{r['published_gflops']:.2f}"),
        Column("computed 2xMACs", lambda r: number(r["gflops_2x_macs"], 3)),
        Column("GFLOPS reproduced by", lambda r: r["gflops_reproduced_by"] or "no convention tried", "left"),
        Column("closest tried", lambda r: str(r["gflops_closest"]), "left"),
    )
    notes = (
        f"* as printed in the {SEED_SOURCE}. 'reproduced by' lists every convention whose value, rounded to the "
        "printed precision, equals the printed number. Params conventions tried: pytorch, paper, tfslim. "
        "GFLOPS conventions tried: MACs, 2xMACs, 2x fvcore total, 2x thop total (same model), and 2xMACs of the "
        "model 1.25 times wider.",
        *(
            [
                seed_gflops_finding(
                    list(frame["macs_analytic"] / 1e9),
                    list(frame["activations"] / 1e9),
                    list(frame["published_gflops"]),
                )
            ]  # fmt: skip
            if frame is not None and "activations" in frame.columns
            else []
        ),
    )
    return Rendered("The seed note's table: what mnprof reproduces, and under which convention", columns, notes)
