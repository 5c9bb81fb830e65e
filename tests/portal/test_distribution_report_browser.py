"""HQ's distribution report in a real browser (Debian's chromium through Playwright): the plan's
columns are on the page as HQ reads it — shares within the type and within the market beside the
all-customer share, hard / soft / combined bundling rates and the package-user share.

Screenshots go to ``QZ_PORTAL_SCREENSHOTS`` when set (docs/screenshots/ holds the committed
``distribution-*.png``), else to the test's temporary folder.
"""

from __future__ import annotations

import datetime as dt

import pytest
from test_portal_browser import _shots, browser, chromium  # noqa: F401  (fixtures)

from qz_outbound import db, reports, schema, segmentation
from qz_outbound.dev.demo_datamart import generate

D = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    engine = db.make_engine(f"sqlite:///{base / 'one.db'}")
    generate(engine, 4000, D, progress=False)
    schema.ensure_schema(engine)
    segmentation.segment_customers(engine, engine, D)
    rep = reports.write_distribution_report(engine, D, base / "out")
    engine.dispose()
    return rep


def test_distribution_report_shows_the_plans_columns(report, browser, tmp_path):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(report.html_path.as_uri())
    shots = _shots(tmp_path)
    bundling = page.locator("table").first
    for header in ("硬捆绑率", "软捆绑率", "综合捆绑率", "套餐用户占比"):
        assert bundling.locator("th", has_text=header).count() == 1, header
    market = page.locator("h2", has_text="类型 × 细分市场")
    assert market.count() == 1
    assert page.get_by_text("细分市场内占比").count() >= 1 and page.get_by_text("类型内占比").count() >= 6
    # every type's row of the market table reads 100.00% in its total column
    totals = page.locator("h2:has-text('类型 × 细分市场') + p + table tr td:last-child b").all_inner_texts()
    assert len(totals) == 10 and set(totals) <= {"100.00%", "0.00%"} and "100.00%" in totals
    page.screenshot(path=str(shots / "distribution-bundling.png"), clip={"x": 0, "y": 0, "width": 1400,
                                                                          "height": 900})
    top = page.evaluate("el => el.getBoundingClientRect().top + window.scrollY", market.element_handle())
    table = page.locator("h2:has-text('类型 × 细分市场') + p + table")
    height = page.evaluate("el => el.getBoundingClientRect().bottom + window.scrollY", table.element_handle()) - top
    page.screenshot(path=str(shots / "distribution-market.png"), full_page=True,
                    clip={"x": 0, "y": top - 10, "width": 1400, "height": height + 30})
    page.close()
