"""mnprof's pytest plugin (mnprof/pytest_plugin.py), run by pytest itself on small projects: one that passes, one
whose model grew, one that calls it wrongly, and the installed entry point loading without torch.

The projects run in this process (``runpytest_inprocess``, torch already loaded: a fraction of a second each),
with ``-p mnprof.pytest_plugin``, which names the same plugin as the installed entry point; each imports its
factories from a module of its own name, since a process imports a factory once."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from mnprof import api

with warnings.catch_warnings():  # torch.jit's deprecation notice as fvcore loads: not this test's
    warnings.simplefilter("ignore", DeprecationWarning)
    import fvcore.nn  # noqa: F401 - loaded here, not first inside an in-process run (which unloads what it loaded)
    import thop  # noqa: F401 - as fvcore

pytest_plugins = ["pytester"]

FACTORIES = (Path(__file__).parent / "regression_models.py").read_text()


def project(pytester: pytest.Pytester, module: str, model: str, recorded: str | None = None) -> None:
    """A project guarding ``net={module}:{model}`` at 1.0 x 64 in ``[tool.mnprof]``, its factories in
    ``{module}.py``, and (``recorded``: the factory it was recorded from) its baseline in reports/."""
    pytester.makepyfile(**{module: FACTORIES})
    pytester.makefile(
        ".toml",
        pyproject=f"""
            [tool.pytest.ini_options]

            [tool.mnprof]
            models = ["net={module}:{model}"]
            alphas = [1.0]
            resolutions = [64]
        """,
    )
    if recorded is not None:
        pytester.mkdir("reports")
        api.record_baseline(f"net={module}:{recorded}", out=pytester.path / "reports" / "baseline.json")


def run(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "mnprof.pytest_plugin")


def test_a_model_within_its_budget_and_its_baseline_passes(pytester):
    project(pytester, "nets_passing", "tiny", recorded="tiny")
    pytester.makepyfile(
        test_model="""
            def test_within_budget(mnprof_budget):
                reports = mnprof_budget.assert_at_most(
                    "net=nets_passing:tiny", 1.0, 64, macs=642_304, params=34_216, activations=29_672
                )
                assert [report.config.id for report in reports] == ["net-1.0-64"]

            def test_six_e_eight_is_a_count_too(mnprof_budget):
                mnprof_budget.assert_at_most("net=nets_passing:tiny", [1.0, 0.5], 32, macs=6e8)

            def test_matches_the_committed_baseline(mnprof_budget):
                result = mnprof_budget.assert_baseline()  # [tool.mnprof], reports/baseline.json
                assert result.passed and result.compared == 1 and result.findings == ()

            def test_counts_are_there_to_assert_on(mnprof_budget):
                (report,) = mnprof_budget.count("net=nets_passing:tiny", 0.5, 32)
                # stem 3->8 at 16x16, depthwise 8 at 8x8, pointwise 8->16 at 8x8, linear 16->1000
                macs = 16 * 16 * 8 * 27 + 8 * 8 * 8 * 9 + 8 * 8 * 8 * 16 + 16 * 1000
                assert (report.config.id, report.analytic.macs) == ("net-0.5-32", macs) == ("net-0.5-32", 84096)
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.OK


def test_a_model_that_grew_fails_naming_configuration_metric_expected_got_and_delta(pytester):
    project(pytester, "nets_failing", "tiny_lost_stride", recorded="tiny")
    pytester.makepyfile(
        test_model="""
            def test_within_budget(mnprof_budget):
                mnprof_budget.assert_at_most("net=nets_failing:tiny_lost_stride", 1.0, 64, macs=642_304, params=40_000)

            def test_matches_the_committed_baseline(mnprof_budget):
                mnprof_budget.assert_baseline()

            def test_within_a_wide_tolerance(mnprof_budget):
                mnprof_budget.assert_baseline(tolerance="300%")
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            ">*mnprof_budget.assert_at_most(*",
            "E       AssertionError: net@1.0-64 macs: expected at most 642,304, got 1,146,112 (+503,808, +78.44%)",
            "E       mnprof budget exceeded: 1 limit(s) broken in 1 configuration(s) counted",
            "test_model.py:2: AssertionError",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            ">*mnprof_budget.assert_baseline()",
            "E       AssertionError: net@1.0-64 analytic activations: expected at most 29,672, got 66,536 (+36,864, "
            "+124.24%)",
            "E       net@1.0-64 analytic macs: expected at most 642,304, got 1,146,112 (+503,808, +78.44%)",
            "E       net@1.0-64 fvcore macs: expected at most 707,840, got 1,309,952 (+602,112, +85.06%)",
            "*",
            "E       net@1.0-64 thop macs: expected at most 765,216, got 1,441,056 (+675,840, +88.32%)",
            "E       mnprof baseline check FAILED: 1 configurations compared with reports/baseline.json, tolerance 0%; "
            "7 failed (changed on purpose? record it: mnprof baseline --out reports/baseline.json)",
        ]
    )
    assert "pytest_plugin.py" not in result.stdout.str()  # the traceback stops at the test's own line


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("assert_at_most(MODEL, 1.0, 64, flops=1)", "unknown metric 'flops'; accepted: params, macs, activations"),
        ('assert_at_most(MODEL, 1.0, 64, macs="600M")', "macs='600M' is not a number; accepted: a non"),
        ("assert_at_most(MODEL, 1.0, 64, params=-5)", "params=-5 is negative"),
        ("assert_at_most(MODEL, 1.0, 64)", "no limit given; accepted: one or more of params=N, macs=N, activations=N"),
        ('assert_at_most("net=nets_bad:nothing", 1.0, 64, macs=1)', "nets_bad has no callable 'nothing'"),
        ("assert_at_most(MODEL, 1.0, 16, macs=1)", "resolution 16 is too small"),
        ("assert_baseline()", "baseline reports/baseline.json does not exist"),
        ('assert_baseline(tolerance="a lot")', "tolerance 'a lot' is not a number"),
    ],
)
def test_bad_use_is_a_usage_error_with_mnprofs_one_line(pytester, call, message):
    project(pytester, "nets_bad", "tiny")
    pytester.makepyfile(
        test_model=f"""
            MODEL = "net=nets_bad:tiny"

            def test_bad_use(mnprof_budget):
                mnprof_budget.{call}
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"E       pytest.UsageError: mnprof_budget: *{message}*"])
    assert "pytest_plugin.py" not in result.stdout.str()


def test_the_installed_entry_point_loads_the_plugin_without_torch(pytester):
    pytester.makepyfile(
        test_light="""
            import sys

            def test_the_fixture_is_there_and_torch_is_not(mnprof_budget):
                assert type(mnprof_budget).__module__ == "mnprof.pytest_plugin"
                assert "torch" not in sys.modules and "mnprof.api" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess()  # no -p: found through the pytest11 entry point
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_a_project_whose_warnings_are_errors_counts_in_a_fresh_process(pytester):
    """torch.jit's deprecation notice, given as mnprof's counters load, is not the project's warning."""
    project(pytester, "nets_strict", "tiny")
    pytester.makepyfile(
        test_model="""
            def test_within_budget(mnprof_budget):
                mnprof_budget.assert_at_most("net=nets_strict:tiny", 1.0, 64, macs=642_304)
        """
    )
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(passed=1)


def test_the_plugin_is_declared_as_its_module_is_named():
    """Named as its module, so that ``-p mnprof.pytest_plugin`` (or ``pytest_plugins``) beside the entry point is one
    plugin, not a second registration of the same module (which pytest refuses)."""
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '[project.entry-points.pytest11]\n"mnprof.pytest_plugin" = "mnprof.pytest_plugin"\n' in pyproject
