from __future__ import annotations

import math

import pandas as pd
import pytest

from mnprof.counting.count import count_many
from mnprof.model.config import default_grid
from mnprof.views.grid import grid_frame
from mnprof.views.plots import accuracy_frame, build_figures, fit_line, page_html, pareto_front

GRID = grid_frame(count_many(default_grid()))
HOSTILE = "</script><script>alert(1)</script>"


def latency_frame(series: str = "eager b1", ms_per_mmac: float = 0.06) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": GRID["id"],
            "alpha": GRID["alpha"],
            "resolution": GRID["resolution"],
            "series": series,
            "latency_ms": GRID["macs_analytic"] / 1e6 * ms_per_mmac + 1.0,
            "latency_ms_median": GRID["macs_analytic"] / 1e6 * ms_per_mmac + 1.1,
            "latency_ms_iqr": 0.2,
            "throughput_ips": 1000 / (GRID["macs_analytic"] / 1e6 * ms_per_mmac + 1.0),
        }
    )


def test_fit_line_recovers_an_exact_line_and_scores_noise_lower():
    slope, intercept, r2 = fit_line([1, 2, 3, 4], [3, 5, 7, 9])
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0))
    assert fit_line([1, 2, 3, 4], [1, 3, 2, 4])[2] == pytest.approx(0.64)
    assert all(math.isnan(v) for v in fit_line([1, 1], [2, 3]))


def test_pareto_front_keeps_only_undominated_points_sorted_by_latency():
    latency = [10, 5, 7, 20, 5]
    accuracy = [70, 60, 58, 71, 55]
    # 7 ms/58% is dominated by 5 ms/60%; 5 ms/55% too; 10/70 and 20/71 and 5/60 remain
    assert pareto_front(latency, accuracy) == [1, 0, 3]
    assert pareto_front([1, 1], [50, 50]) == [0, 1]  # ties dominate neither


def test_accuracy_frame_labels_every_published_source():
    acc = accuracy_frame(GRID)
    assert set(acc["top1_source"]) == {"TF-slim top-1 (published)", "paper top-1 (published)"}
    assert (acc["top1_source"] == "TF-slim top-1 (published)").sum() == 16


def test_without_latency_only_the_accuracy_figures_are_built():
    assert [f.key for f in build_figures(GRID, None)] == ["accuracy-macs", "accuracy-params"]


def test_latency_figures_report_fit_and_pareto_in_captions():
    figures = {f.key: f for f in build_figures(GRID, latency_frame())}
    assert "R² = 1.000" in figures["latency-macs"].caption  # latency built exactly linear in MACs
    assert "0.060 ms per million MACs" in figures["latency-macs"].caption
    assert "Pareto-optimal" in figures["pareto"].caption and "1.0-224" in figures["pareto"].caption
    assert "MACs 1.000; activations" in figures["latency-activations"].caption  # every fit, in every latency caption
    assert {"latency-activations", "latency-memory"} <= set(figures)


def test_outside_text_is_escaped_in_the_page():
    figures = build_figures(GRID, latency_frame(series=HOSTILE))
    page = page_html(figures, title=f"mnprof {HOSTILE}", provenance=[f"host {HOSTILE}"])
    assert HOSTILE not in page
    assert page.count("<script") == page.count("</script>")
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page


def test_roofline_caption_is_derived_from_the_measured_shares():
    from mnprof.views.roofline import roofline_figure, roofs

    def layers(time_share: float) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"layer": "blocks.1.dw", "kind": "depthwise", "arithmetic_intensity_flops_per_byte": 2.0,
                 "gflops_per_s": 10.0, "time_ms": 1.0, "macs_share": 0.03, "time_share": time_share},
                {"layer": "blocks.1.pw", "kind": "pointwise", "arithmetic_intensity_flops_per_byte": 50.0,
                 "gflops_per_s": 300.0, "time_ms": 1.0, "macs_share": 0.97, "time_share": 1 - time_share},
            ]
        )  # fmt: skip

    slow = roofline_figure(layers(0.25), peak_gflops=400, bandwidth_gbs=40, label="1.0-224")
    assert "hold 3.0% of the MACs but take 25.0% of the time" in slow.caption
    fast = roofline_figure(layers(0.02), peak_gflops=400, bandwidth_gbs=40, label="1.0-224")
    assert "take no more of the time (2.0%) than of the MACs (3.0%)" in fast.caption
    xs, ys = roofs(400, 40, [2.0, 50.0])
    assert xs == [1.0, 10.0, 100.0] and ys == [40.0, 400.0, 400.0]  # ridge at 400 / 40 = 10 FLOP/B


def test_latency_against_instructions_is_drawn_only_where_they_were_counted(capsys, tmp_path):
    """mnprof plot --instructions: the counts join the grid by id (as the table's do) and give one more latency
    figure whose points are the counted instructions; without them there is no such figure."""
    from cli_run import refused

    from mnprof.views.instructions import with_instructions

    counted = [{"id": config_id, "instructions": 3 * int(macs) // 10 + 1000}
               for config_id, macs in zip(GRID["id"], GRID["macs_analytic"], strict=True)]  # fmt: skip
    figures = {figure.key: figure for figure in build_figures(with_instructions(GRID, counted), latency_frame())}
    points = [trace for trace in figures["latency-instructions"].figure.data if trace.meta == "points"]
    assert sorted(x for trace in points for x in trace.x) == sorted(row["instructions"] for row in counted)
    assert "latency-instructions" not in {figure.key for figure in build_figures(GRID, latency_frame())}
    says = refused(capsys, "plot", "--figure", "latency-instructions", "--out", str(tmp_path / "x.svg"))
    assert "accepted: with --instructions" in says
