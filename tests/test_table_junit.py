"""``mnprof table --format junit``, read by junitparser as a CI reads it: per configuration, a test case per counter
that fails where the counter's MACs differ from the analytic count by more than its conventions explain, and per
timing one that fails where it posted no time."""

from __future__ import annotations

import pandas as pd
import pytest
from cli_run import ROOT, TINY_GRID, refused, run
from factories import results_file, timing_record
from junitparser import Failure, JUnitXml, Skipped

from mnprof.check.table_junit import render_table_junit
from mnprof.model.config import ModelConfig, UserFamily


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # factories are imported relative to the working directory


def _junit(capsys, *args: str) -> JUnitXml:
    code, out, err = run(capsys, "table", "-q", *args, "--format", "junit")
    assert code == 0, err  # a report, not a gate: failing cases do not fail the command
    return JUnitXml.fromstring(out)


def _cases(xml: JUnitXml) -> dict[tuple[str, str], object]:
    return {(case.classname, case.name): case for suite in xml for case in suite}


def test_a_counter_the_reconciliation_cannot_explain_is_a_failing_case(capsys):
    xml = _junit(capsys, "--no-timing", "--view", "counts", "--model", "net=tests.regression_models:tiny", "--model",
                 "up=tests.regression_models:tiny_upsampled", "--alpha", "1.0", "--resolution", "32")  # fmt: skip
    cases = _cases(xml)
    names = ["fvcore macs", "thop macs", "torch macs", "shapes macs"]
    assert list(cases) == [(config, name) for config in ("net-1.0-32", "up-1.0-32") for name in names]
    assert [suite.name for suite in xml] == ["mnprof table: net", "mnprof table: up"]
    failed = {key: case for key, case in cases.items() if not case.is_passed}
    assert sorted(failed) == [("up-1.0-32", "fvcore macs"), ("up-1.0-32", "thop macs")]  # the upsample, uncharted
    assert xml.tests == 8 and xml.failures == 2 and xml.skipped == 0
    (failure,) = failed[("up-1.0-32", "fvcore macs")].result
    assert isinstance(failure, Failure) and failure.type == "unexplained"
    assert failure.message.startswith("up-1.0-32 fvcore macs: counted 756,992, analytic 642,304; +49,152 MACs")
    assert "upsample_bilinear2d 49,152" in failure.message
    passed = cases[("net-1.0-32", "fvcore macs")]
    assert passed.system_out.startswith("fvcore = analytic + batch_norm")  # the reconciliation, said


def test_each_timing_is_a_case_that_fails_where_it_posted_no_time(capsys, tmp_path):
    net = ModelConfig(1.0, 32, family=UserFamily("net", "tests.regression_models:tiny"))  # quick to count
    rows = [
        dict(timing_record(net, host="aaaa").to_row(), run_id="run-a"),
        dict(timing_record(net, host="bbbb", samples_ms=(2.0, 2.2), noisy=True).to_row(), run_id="run-b"),
        dict(timing_record(net, "fused", host="aaaa", error="fusion failed").to_row(), run_id="run-a"),
    ]
    for row in rows:
        row["macs_analytic"] = 184_576  # the model's own: a timing is shown only beside the counts of what it timed
    results = results_file(tmp_path / "r.json", rows[:1] + rows[2:])
    other = results_file(tmp_path / "other.json", rows[1:2])
    xml = _junit(capsys, "--model", "net=tests.regression_models:tiny", "--alpha", "1.0,0.5", "--resolution", "32",
                 "--from-results", str(results), "--from-results", str(other))  # fmt: skip
    cases = _cases(xml)
    timed = sorted(name for config, name in cases if config == "net-1.0-32" and name.startswith("latency"))
    assert timed == [
        "latency (eager, batch 1, 2 threads, cpu, host aaaa, run run-a)",  # two hosts timed it alike: told apart
        "latency (eager, batch 1, 2 threads, cpu, host bbbb, run run-b)",
        "latency (fused, batch 1, 2 threads, cpu)",
    ]
    (failure,) = cases[("net-1.0-32", "latency (fused, batch 1, 2 threads, cpu)")].result
    assert isinstance(failure, Failure) and failure.type == "error" and "no time: fusion failed" in failure.message
    host_b = cases[("net-1.0-32", "latency (eager, batch 1, 2 threads, cpu, host bbbb, run run-b)")]
    assert host_b.is_passed and "2.2 ms (p5), noisy; host bbbb" in host_b.system_out  # said, not failed
    (skipped,) = cases[("net-0.5-32", "latency")].result  # nothing read for it
    assert isinstance(skipped, Skipped) and "not timed" in skipped.message
    assert xml.failures == 1 and xml.skipped == 1 and xml.tests == 2 * 2 + 3 + 1


def test_a_shape_count_that_differs_from_the_analytic_one_fails():
    row = {"id": "x-1.0-32", "family": "x", "macs_analytic": 100, "macs_shapes": 90, "macs_fvcore": 100,
           "macs_fvcore_unexplained": 0, "fvcore_explained": "fvcore = analytic"}  # fmt: skip
    frame = pd.DataFrame([row])
    xml = JUnitXml.fromstring(render_table_junit(frame))
    cases = _cases(xml)
    assert list(cases) == [("x-1.0-32", "fvcore macs"), ("x-1.0-32", "shapes macs")]
    (failure,) = cases[("x-1.0-32", "shapes macs")].result
    assert "counted 90, the analytic plan 100 (-10)" in failure.message and xml.failures == 1


def test_junit_with_another_view_is_one_line_and_nothing_is_written(capsys, tmp_path):
    out = tmp_path / "t.xml"
    assert "accepted with it: --view grid or counts" in refused(
        capsys, "table", "--no-timing", *TINY_GRID, "--view", "reconcile", "--format", "junit", "--out", str(out)
    )
    assert not out.exists()
