"""mnprof's pytest plugin: assert a model's params, MACs and activations inside a project's own test suite.

Installed with mnprof (the ``pytest11`` entry point ``mnprof``), it gives every test the ``mnprof_budget`` fixture,
a :class:`Budget`:

- ``mnprof_budget.assert_at_most(model, alphas, resolutions, macs=..., params=..., activations=...)`` counts the
  configurations (:func:`mnprof.api.count`) and fails the test when a metric is beyond its limit;
- ``mnprof_budget.assert_baseline()`` recounts and compares with the committed baseline as ``mnprof check`` does
  (:func:`mnprof.api.check`: ``[tool.mnprof]`` settings, reports/baseline.json by default), and fails the test on a
  regression;
- ``mnprof_budget.count(...)`` returns the :class:`~mnprof.counting.count.CountReport` records themselves.

A failure names configuration, metric, expected, got and delta: ``net@1.0-64 macs: expected at most 600,000, got
642,304 (+42,304, +7.05%)``. A wrong call (an unknown metric, a limit that is not a count, a model that cannot be
imported, a missing baseline) is a :class:`pytest.UsageError` with mnprof's one-line message. Paths, ``pyproject.toml``
and the factories' modules are found from pytest's rootdir, as the command line finds them from the directory it
runs in.

Loading the plugin imports neither torch nor mnprof's counting code: every pytest run of a project with mnprof
installed loads it, and only a test that asks for the fixture pays for torch.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mnprof.api import CheckResult, CountReport, Finding

__all__ = ["Budget", "mnprof_budget"]


class Budget:
    """What the ``mnprof_budget`` fixture gives a test: counts of its models, limits asserted on them."""

    def __init__(self, rootpath: Path) -> None:
        self.rootpath = rootpath

    def count(
        self,
        models: str | list[str] = "mobilenetv1",
        alphas: Any = None,
        resolutions: Any = None,
        *,
        num_classes: int = 1000,
        every_counter: bool = False,
    ) -> list[CountReport]:
        """:func:`mnprof.api.count`: one CountReport per configuration (default: the family's published grid)."""
        __tracebackhide__ = True
        api = _api()
        try:
            with _in_project(self.rootpath):
                return api.count(models, alphas, resolutions, num_classes=num_classes, every_counter=every_counter)  # type: ignore[no-any-return]
        except api.MnprofError as error:
            raise pytest.UsageError(f"mnprof_budget: {error}") from None

    def assert_at_most(
        self,
        models: str | list[str],
        alphas: Any = None,
        resolutions: Any = None,
        *,
        num_classes: int = 1000,
        params: float | None = None,
        macs: float | None = None,
        activations: float | None = None,
        **unknown: Any,
    ) -> list[CountReport]:
        """Fail the test when any configuration's ``params``, ``macs`` (conv and linear multiply-accumulates, the
        table's MMACs) or ``activations`` (conv and linear output elements) is above the limit given; each limit is
        a non-negative integer (``6e8`` too). Returns the CountReports counted."""
        __tracebackhide__ = True
        limits = {"params": params, "macs": macs, "activations": activations, **unknown}
        api = _api()
        try:
            api.limits_of(limits)  # a wrong limit is a usage error before anything is counted
            with _in_project(self.rootpath):
                reports = api.count(models, alphas, resolutions, num_classes=num_classes)
            overruns = api.over_budget(reports, limits)
        except api.MnprofError as error:
            raise pytest.UsageError(f"mnprof_budget: {error}") from None
        if overruns:
            raise AssertionError("\n".join([*map(str, overruns), _budget_summary(len(reports), len(overruns))]))
        return reports  # type: ignore[no-any-return]

    def assert_baseline(
        self,
        models: str | list[str] | None = None,
        alphas: Any = None,
        resolutions: Any = None,
        *,
        num_classes: int | None = None,
        baseline: str | Path | None = None,
        tolerance: float | str | None = None,
        strict: bool = False,
    ) -> CheckResult:
        """Fail the test as ``mnprof check`` would exit 1: a count grew beyond the tolerance (or, ``strict``,
        changed at all), or fvcore newly cannot count an operator. Arguments not given come from ``[tool.mnprof]``
        in the rootdir's pyproject.toml; the baseline defaults to reports/baseline.json. Returns the CheckResult."""
        __tracebackhide__ = True
        api = _api()
        try:
            with _in_project(self.rootpath):
                path = api.settings(baseline=baseline).baseline
                result = api.check(
                    models,
                    alphas,
                    resolutions,
                    num_classes=num_classes,
                    baseline=baseline,
                    tolerance=tolerance,
                    strict=strict,
                )
        except api.MnprofError as error:
            raise pytest.UsageError(f"mnprof_budget: {error}") from None
        if result.failed:
            lines = [_describe(finding, result) for finding in result.failures]
            lines.append(
                f"mnprof baseline check FAILED: {result.compared} configurations compared with {path}, tolerance "
                f"{result.tolerance_pct:g}%{', strict' if result.strict else ''}; {len(result.failures)} failed "
                f"(changed on purpose? record it: mnprof baseline --out {path})"
            )
            raise AssertionError("\n".join(lines))
        return result


def _api() -> Any:
    """mnprof's API, imported when a test first uses the fixture: loading the plugin imports no torch."""
    from mnprof import api

    return api


@contextlib.contextmanager
def _in_project(rootpath: Path) -> Iterator[None]:
    """Run mnprof from the rootdir, as the command line runs from the project's root: ``pyproject.toml``, the
    baseline and the factories' modules are found there. The deprecation notices torch.jit gives while mnprof's
    counters load (fvcore scripts functions as it is imported) are not the project's: they are not shown, nor
    turned into errors by ``-W error``."""
    with contextlib.chdir(rootpath), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        yield


def _budget_summary(configurations: int, overruns: int) -> str:
    return f"mnprof budget exceeded: {overruns} limit(s) broken in {configurations} configuration(s) counted"


def _describe(finding: Finding, result: CheckResult) -> str:
    """A failing finding: configuration, metric, expected, got and delta."""
    if finding.counter == "":
        return f"{finding.entry}: configuration {finding.status} (strict fails every change)"
    if finding.status == "uncounted":
        return (
            f"{finding.entry} fvcore could not count operator {finding.metric} ({finding.now} call(s)); its MACs "
            "are missing from fvcore's total"
        )
    what = f"{finding.entry} {finding.counter} {finding.metric}"
    if finding.baseline is None or finding.now is None:
        return f"{what}: {finding.status} (expected {finding.baseline}, got {finding.now}; strict fails every change)"
    bound = "expected" if result.strict else "expected at most"
    percent = f", {finding.percent:+.2f}%" if finding.percent is not None else ""
    return f"{what}: {bound} {finding.baseline:,}, got {finding.now:,} ({finding.delta:+,}{percent})"


@pytest.fixture
def mnprof_budget(request: pytest.FixtureRequest) -> Budget:
    """Assert params, MACs and activations of models: against numbers (``assert_at_most``) or the committed
    baseline (``assert_baseline``); see :class:`Budget`."""
    return Budget(request.config.rootpath)
