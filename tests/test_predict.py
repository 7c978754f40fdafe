"""What predicts latency: the least-squares fits, and the seed note's GFLOPS finding with its evidence."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mnprof.counting.count import count_many
from mnprof.model.config import ModelConfig
from mnprof.model.reference import SEED
from mnprof.views.predict import Fit, fit_notes, fit_summary, latency_fits, least_squares, seed_gflops_finding


def test_least_squares_recovers_an_exact_plane():
    x1, x2 = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 0.0, 3.0, 7.0]
    coefficients, r2 = least_squares([x1, x2], [2 * a + 3 * b + 1 for a, b in zip(x1, x2, strict=True)])
    assert coefficients == pytest.approx([2.0, 3.0, 1.0]) and r2 == pytest.approx(1.0)


def rows(latency) -> pd.DataFrame:
    configs = [(1e9, 5e6), (5e8, 4e6), (2e8, 1e6), (1e8, 3e6), (5e7, 2e5)]
    return pd.DataFrame(
        [
            {"id": f"c{i}", "backend": "eager", "batch_size": 1, "threads": 2, "macs_analytic": macs,
             "activations": acts, "latency_ms": latency(macs / 1e9, acts / 1e6)}
            for i, (macs, acts) in enumerate(configs)
        ]
    )  # fmt: skip


def test_the_model_that_made_the_latencies_fits_them_exactly_and_the_other_does_not():
    fits = {
        fit.model: fit for fit in latency_fits(rows(lambda g, m: 4 * g + 0.5), ["backend", "batch_size", "threads"])
    }
    assert fits["MACs"].r2 == pytest.approx(1.0) and fits["MACs"].coefficients["gmacs"] == pytest.approx(4.0)
    assert fits["activations"].r2 < 0.9
    both = {fit.model: fit for fit in latency_fits(rows(lambda g, m: 4 * g + 0.25 * m + 0.5), ["backend"])}
    assert both["MACs + activations"].coefficients == pytest.approx(
        {"gmacs": 4.0, "mactivations": 0.25, "intercept": 0.5}
    )
    assert both["MACs + activations"].formula() == "ms = 4 x GMACs + 0.25 x M activations + 0.5"
    assert "eager, batch 1, 2 threads: MACs 1.00" in fit_summary(list(fits.values()))
    assert fit_notes(list(both.values()))[0].endswith("best: ms = 4 x GMACs + 0.25 x M activations + 0.5")


def test_too_few_configurations_get_no_fit():
    assert latency_fits(rows(lambda g, m: g).head(3), ["backend"]) == []


def test_adjusted_r2_charges_for_the_extra_predictor():
    fit = Fit("s", "MACs + activations", {"gmacs": 1.0, "mactivations": 1.0, "intercept": 0.0}, 0.9, 10)
    assert fit.adjusted_r2 == pytest.approx(1 - 0.1 * 9 / 7)
    assert math.isnan(Fit("s", "MACs", {"gmacs": 1.0, "intercept": 0.0}, 1.0, 2).adjusted_r2)


def test_the_seed_gflops_finding_states_its_evidence():
    reports = {r.config.id: r for r in count_many([ModelConfig(e.alpha, e.resolution) for e in SEED])}
    counts = [reports[ModelConfig(e.alpha, e.resolution).id].analytic for e in SEED]
    finding = seed_gflops_finding([c.macs / 1e9 for c in counts], [c.activations / 1e9 for c in counts],
                                  [e.gflops for e in SEED])  # fmt: skip
    assert finding.startswith("Finding, not a convention: GFLOPS = 2.98 x GMACs + 13.7 x G activations")
    assert "gives 7 of 7 to the printed 2 decimals" in finding
    assert "each value predicted from a fit to the other 6: 5 of 7 (a fitted factor on MACs alone: 3 of 7)" in finding
    assert "the column stays unexplained" in finding
