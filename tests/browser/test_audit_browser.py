"""The audit in real Chromium: opened from ``file://`` with every network request refused, it
draws its charts, logs no error and runs none of the hostile strings in it. Its screenshot,
test-artifacts/audit.png, is the README's when copied to docs/audit.png (see the Makefile)."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_logs import IMG, QUOTE, SCRIPT, make_logs
from nbcost.report import load_spend

from nbcost.report.audit import AuditOptions, write_audit

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def audit_file(tmp_path) -> Path:
    home = make_logs(tmp_path)
    return write_audit(load_spend([home]), tmp_path / "audit.html", AuditOptions(sources=["team-share/spend", "team-share/notebooks"]))


def test_the_audit_opens_offline_with_its_charts_and_no_errors(page, audit_file):
    requested, refused, console_errors, dialogs = [], [], [], []

    def only_the_file(route):
        requested.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_file)
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(audit_file.as_uri())
    charts = page.locator("div.chart")
    count = charts.count()
    assert count == 9
    page.wait_for_function(
        "n => document.querySelectorAll('div.chart svg.main-svg').length >= n", arg=count)
    for n in range(count):  # every chart drew bars, lines or markers into its SVG
        chart = charts.nth(n)
        assert chart.locator("svg.main-svg").count() >= 1
        assert chart.locator("g.trace, g.barlayer .point, path.js-line").count() >= 1, \
            chart.get_attribute("id")

    assert refused == [], refused
    assert all(url.startswith("file://") for url in requested)
    assert console_errors == [] and page.page_errors == [] and dialogs == []
    assert page.evaluate("typeof window.Plotly") == "object"
    for hostile in (IMG, SCRIPT, QUOTE):  # shown as text in the tables, never run
        assert page.get_by_text(hostile, exact=False).count() >= 1, hostile
    assert page.locator("img, iframe, svg[onload]").count() == 0

    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.evaluate("window.dispatchEvent(new Event('resize'))")
    page.wait_for_timeout(300)  # let plotly redraw at the new width before the picture
    page.screenshot(path=str(ARTIFACTS / "audit-full.png"), full_page=True)
    page.screenshot(path=str(ARTIFACTS / "audit.png"))
