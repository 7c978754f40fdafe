"""All three counters on real models: conv+linear agree exactly, and every difference is attributed."""

from __future__ import annotations

import pytest

from mnprof.counting.count import count, count_many, sweep
from mnprof.counting.reconcile import FVCORE_RULES, reconcile
from mnprof.model.config import ModelConfig, default_grid

GRID_REPORTS = {report.config.id: report for report in count_many(default_grid())}


@pytest.mark.parametrize("config_id", list(GRID_REPORTS))
def test_default_grid_is_fully_explained(config_id):
    report = GRID_REPORTS[config_id]
    analytic = report.analytic.macs
    assert report.fvcore_reconciliation.in_analytic_counted == analytic
    assert report.thop_reconciliation.in_analytic_counted == analytic
    assert report.fvcore.by_operator["conv"] + report.fvcore.by_operator["linear"] == analytic
    assert report.fvcore_reconciliation.unexplained == 0
    assert report.thop_reconciliation.unexplained == 0
    for reconciliation in (report.fvcore_reconciliation, report.thop_reconciliation):
        assert all(a.unexplained == 0 for a in reconciliation.attributions)
    assert report.fvcore.unsupported_ops == {}
    assert report.params_model == report.thop.params == report.row()["params"]


def test_one_point_oh_224_totals_are_the_conventions_applied_by_hand():
    report = GRID_REPORTS["1.0-224"]
    # BatchNorm sees every conv output once: stem + 13 x (depthwise + pointwise) outputs.
    bn_elements = 32 * 112 * 112 + sum(
        n * s * s + m * s * s
        for s, n, m in [
            (112, 32, 64),
            (56, 64, 128),
            (56, 128, 128),
            (28, 128, 256),
            (28, 256, 256),
            (14, 256, 512),
            *[(14, 512, 512)] * 5,
            (7, 512, 1024),
            (7, 1024, 1024),
        ]
    )
    pool_inputs = 1024 * 7 * 7
    assert report.fvcore.total == 568_740_352 + 2 * bn_elements + pool_inputs == 578_875_904
    assert report.thop.total == 568_740_352 + 4 * bn_elements + pool_inputs + 1024 == 588_962_304
    assert report.fvcore_reconciliation.explain() == (
        "fvcore = analytic + batch_norm 10,085,376 + adaptive_avg_pool2d 50,176"
    )


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(1.0, 64, variant="full"),
        ModelConfig(1.0, 96, variant="shallow"),
        ModelConfig(0.5, 97, variant="seed"),
        ModelConfig(0.6, 96, rounding="div8", num_classes=10),
        ModelConfig(1.3, 33),
    ],
    ids=str,
)
def test_variants_are_fully_explained(config):
    report = count(config)
    assert report.fvcore_reconciliation.in_analytic_counted == report.analytic.macs
    assert report.fvcore_reconciliation.unexplained == 0
    assert report.thop_reconciliation.unexplained == 0


def test_an_operator_without_a_rule_is_left_unexplained_not_hidden():
    report = GRID_REPORTS["0.25-128"]
    breakdown = dict(report.fvcore.by_operator, upsample_nearest2d=7)
    reconciliation = reconcile("fvcore", report.fvcore.total + 7, breakdown, report.analytic, FVCORE_RULES)
    assert reconciliation.unexplained == 7
    assert "unexplained +7" in reconciliation.explain()


def test_a_wrong_conv_count_is_caught():
    report = GRID_REPORTS["0.25-128"]
    breakdown = dict(report.fvcore.by_operator)
    breakdown["conv"] += 100
    reconciliation = reconcile("fvcore", report.fvcore.total + 100, breakdown, report.analytic, FVCORE_RULES)
    assert reconciliation.unexplained == 100
    assert reconciliation.in_analytic_counted == report.analytic.macs + 100
    assert "differ from analytic by +100" in reconciliation.explain()


def test_work_outside_the_breakdown_is_reported():
    report = GRID_REPORTS["0.25-128"]
    reconciliation = reconcile(
        "fvcore", report.fvcore.total + 3, report.fvcore.by_operator, report.analytic, FVCORE_RULES
    )
    assert reconciliation.unexplained == 3


def test_sweep_returns_one_exact_integer_row_per_configuration():
    frame = sweep([ModelConfig(0.25, 128), ModelConfig(0.25, 160)])
    assert list(frame["id"]) == ["0.25-128", "0.25-160"]
    assert frame["macs_analytic"].tolist() == [13_570_048, GRID_REPORTS["0.25-160"].analytic.macs]
    assert str(frame["macs_fvcore"].dtype) == "int64"
