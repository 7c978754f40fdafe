"""The generated page in a real headless Chromium (Debian's), with the network off."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mnprof.views.plots import build_figures, page_html
from tests.test_plots import GRID, HOSTILE, latency_frame

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts"

if os.environ.get("CI") != "true":  # CI installs both; elsewhere the test is skipped when they are missing
    pytest.importorskip("playwright.sync_api")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def open_page(path: Path):
    """Load ``path`` with every network request refused and recorded; return (result dict)."""
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
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.goto(path.as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1")
            page.wait_for_timeout(300)
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{path.stem}.png"), full_page=True)
            figures = page.evaluate(
                """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => ({
                    id: d.id,
                    rendered: d.querySelectorAll('.main-svg').length > 0,
                    points: d._fullData.filter(t => t.meta === 'points').reduce((a, t) => a + t._length, 0),
                    svgPoints: d.querySelectorAll('.scatterlayer .trace .points path').length,
                    x: d.layout.xaxis.title.text, y: d.layout.yaxis.title.text,
                }))"""
            )
            alerts = page.evaluate("window.__alerted === true")
            text = page.inner_text("body")
        finally:
            browser.close()
    return {"console": console, "requests": requests, "figures": figures, "alerted": alerts, "text": text}


def test_page_renders_offline_with_every_figure_and_point(tmp_path):
    path = tmp_path / "pareto.html"
    path.write_text(page_html(build_figures(GRID, latency_frame()), title="mnprof", provenance=["host: test"]))
    result = open_page(path)
    assert result["console"] == []
    assert result["requests"] == []
    figures = {f["id"]: f for f in result["figures"]}
    assert list(figures) == ["figure-accuracy-macs", "figure-accuracy-params", "figure-latency-macs",
                             "figure-latency-activations", "figure-latency-memory", "figure-pareto"]  # fmt: skip
    assert all(f["rendered"] for f in figures.values())
    # 16 TF-slim points + 8 configurations the paper also publishes
    assert figures["figure-accuracy-macs"]["points"] == 16 + 8
    assert figures["figure-latency-macs"]["points"] == 16
    assert figures["figure-latency-activations"]["points"] == figures["figure-latency-memory"]["points"] == 16
    assert figures["figure-pareto"]["points"] == 16
    assert figures["figure-latency-macs"]["svgPoints"] >= 16
    assert figures["figure-accuracy-macs"]["x"] == "Mult-Adds (MACs, analytic count, log scale)"
    assert figures["figure-accuracy-macs"]["y"] == "ImageNet top-1 accuracy (%), published"
    assert figures["figure-pareto"]["x"] == "latency per batch (ms), 5th percentile"


def test_hostile_names_show_as_text(tmp_path):
    path = tmp_path / "hostile.html"
    hostile_alert = HOSTILE.replace("alert(1)", "window.__alerted=true")
    figures = build_figures(GRID, latency_frame(series=hostile_alert))
    path.write_text(page_html(figures, title="mnprof", provenance=[f"host: {hostile_alert}"]))
    result = open_page(path)
    assert result["alerted"] is False
    assert result["console"] == []
    assert f"host: {hostile_alert}" in result["text"]  # shown literally, as text
