"""mnprof history's page in a real headless Chromium, network off: one chart per metric, one trace per configuration,
the steps marked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cli_run import run

from tests.test_history import CONFIGS, baseline_document, history_dir, write

# As tests/test_browser.py's (importing it would count its models first: it draws the paper's figures).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip

if os.environ.get("CI") != "true":  # CI installs both; elsewhere the test is skipped when they are missing
    pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

pytestmark = pytest.mark.slow


def open_history(path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
            requests: list[str] = []

            def refuse(route):
                requests.append(route.request.url)
                route.abort()

            context.route("http*://**/*", refuse)
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{path.stem}.png"), full_page=True)
            charts = page.evaluate(
                """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => ({
                    id: d.id,
                    traces: d._fullData.length,
                    names: d._fullData.map(t => t.name),
                    points: d._fullData.reduce((a, t) => a + t._length, 0),
                    svgTraces: d.querySelectorAll('.scatterlayer .trace').length,
                    steps: d._fullData.reduce((a, t) => a + [].concat(t.marker.symbol).filter(
                        s => s === 'diamond-open').length, 0),
                }))"""
            )
        finally:
            browser.close()
    return {"errors": errors, "requests": requests, "charts": charts}


def test_history_page_offline_one_trace_per_configuration_per_chart(capsys, tmp_path):
    directory = history_dir(tmp_path, commits=50, grow_at=20, slow_at=35)
    page = tmp_path / "history.html"
    code, _, err = run(capsys, "history", str(directory), "--html", str(page), "--format", "csv")
    assert code == 0, err
    result = open_history(page)
    assert result["errors"] == [] and result["requests"] == []
    charts = {chart["id"]: chart for chart in result["charts"]}
    assert list(charts) == ["figure-history-params", "figure-history-macs", "figure-history-latency_ms",
                            "figure-history-rel"]  # fmt: skip
    for chart in charts.values():
        assert chart["traces"] == chart["svgTraces"] == len(CONFIGS), chart
        assert chart["points"] == 50 * len(CONFIGS)
    assert charts["figure-history-macs"]["steps"] == len(CONFIGS)  # the commit that grew, in every configuration
    assert charts["figure-history-params"]["steps"] == 0
    assert charts["figure-history-latency_ms"]["steps"] == len(CONFIGS)  # 30% slower, beyond the 1% intervals


def test_counts_only_page(capsys, tmp_path):
    for index in range(5):
        write(tmp_path / "b" / f"{index}-{index:02d}abcdef1.json", baseline_document(params_growth=index // 3))
    page = tmp_path / "counts.html"
    code, _, err = run(capsys, "history", str(tmp_path / "b"), "--out", str(page))
    assert code == 0, err
    result = open_history_counts(page)
    assert [chart["traces"] for chart in result] == [len(CONFIGS), len(CONFIGS)]


def open_history_counts(path):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(offline=True).new_page()
            page.goto(path.as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2")
            return page.evaluate(
                "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                ".map(d => ({traces: d._fullData.length}))"
            )
        finally:
            browser.close()
