"""The county KPI pages (考核完成情况) on the real API server with the portal plugin: a county user sees
its own completion only (page, CSV and XLSX), never another county's, and not HQ's page; HQ sees
every county. Then both pages in a real browser (screenshots to ``QZ_PORTAL_SCREENSHOTS`` when set;
docs/screenshots/ holds the committed ones).

Incremental revenue and customers kept come from ``mkt_campaign_economics`` (the economics step
writes it); here the test writes measured rows for some counties, so the pages show both a measured
figure and "尚不可测".
"""

from __future__ import annotations

import datetime as dt
import io
import re

import pandas as pd
import sqlalchemy as sa

from qz_outbound import db
from test_kpi import ECONOMICS
from test_portal_browser import _shots, _sign_in, browser, chromium  # noqa: F401  (fixtures)

MONTH = "2026-11"
OWN, OTHER = "350582", "350583"


def _economics(portal) -> None:
    engine = db.make_engine(portal.marketing_url)
    ECONOMICS.create(engine, checkfirst=True)
    rows = [{"cycle_date": dt.date(2026, 11, 23), "campaign_code": "1114-007", "slice": f"county:{county}",
             "after_months": 1, "contacted": 400, "control": 20, "conversion_uplift": 0.01, "incremental_arpu": 3.0,
             "arpu_ci_low": 1.0, "arpu_ci_high": 5.0, "incremental_revenue": revenue, "customers_kept": kept,
             "cost": 500.0, "roi": 1.0}
            for county, revenue, kept in ((OWN, 52000.0, 70.0), (OTHER, 61000.0, 95.0), ("350502", 12000.0, 8.0))]
    with engine.begin() as conn:
        conn.execute(ECONOMICS.delete())
        conn.execute(ECONOMICS.insert(), rows)
    engine.dispose()


def _counties_on(html: str) -> set[str]:
    return set(re.findall(r'data-county="(\d{6})"', html))


def test_a_county_sees_only_its_own_kpi_and_hq_sees_every_county(portal):
    _economics(portal)
    status, body, _ = portal.request(f"/kpi?month={MONTH}", "county_350582")
    html = body.decode()
    assert status == 200 and "晋江市 考核完成情况" in html
    assert _counties_on(html) == {OWN} and "南安市" not in html
    assert "52,000" in html and "61,000" not in html                       # its revenue, not the neighbour's

    assert portal.request(f"/kpi?month={MONTH}&county={OTHER}", "county_350582")[0] == 403
    assert portal.request(f"/hq/kpi?month={MONTH}", "county_350582")[0] == 403
    assert portal.request(f"/kpi/download.csv?month={MONTH}&county={OTHER}", "county_350582")[0] == 403
    assert portal.request(f"/kpi?month={MONTH}", "stranger")[0] == 403
    assert portal.request(f"/kpi?month={MONTH}")[0] == 401

    status, body, headers = portal.request(f"/kpi/download.csv?month={MONTH}", "county_350582")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.BytesIO(body), encoding="utf-8-sig", dtype=str)
    assert list(table.columns) == ["区县代码", "区县", "指标", "目标", "完成值", "完成率"]
    assert set(table["区县代码"]) == {OWN} and len(table) == 5
    status, body, _ = portal.request(f"/kpi/download.xlsx?month={MONTH}", "county_350582")
    sheet = pd.read_excel(io.BytesIO(body), dtype=str)
    assert status == 200 and set(sheet["区县代码"]) == {OWN}

    status, body, _ = portal.request(f"/hq/kpi?month={MONTH}", "hq")
    html = body.decode()
    assert status == 200 and len(_counties_on(html)) == 11 and html.count("<tr data-county=") == 55
    assert "尚不可测" in html                                                # counties without economics rows
    status, body, _ = portal.request(f"/kpi/download.csv?month={MONTH}", "hq")
    assert status == 200 and len(pd.read_csv(io.BytesIO(body), encoding="utf-8-sig", dtype=str)) == 55
    assert portal.request(f"/kpi?month={MONTH}&county={OTHER}", "hq")[0] == 200

    with db.make_engine(portal.marketing_url).connect() as conn:
        denied = conn.execute(sa.text("select count(*) from portal_audit where user_name = 'county_350582' "
                                      "and action = 'denied' and object like 'kpi%'")).scalar()
    assert denied >= 3                                                     # every refusal audited


def test_the_kpi_pages_in_a_browser(portal, browser, tmp_path):  # noqa: F811
    _economics(portal)
    shots = _shots(tmp_path)
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    _sign_in(page, portal.base, "county_350582", portal.passwords["county_350582"])
    page.goto(f"{portal.base}/county-portal/kpi?month={MONTH}")
    assert "晋江市 考核完成情况" in page.text_content("h1")
    assert {r.get_attribute("data-county") for r in page.query_selector_all("#kpi tr[data-county]")} == {OWN}
    assert len(page.query_selector_all("svg[data-kpi]")) == 5
    page.screenshot(path=str(shots / "kpi-county.png"), full_page=True)

    hq = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    _sign_in(hq, portal.base, "hq", portal.passwords["hq"])
    hq.goto(f"{portal.base}/county-portal/kpi?month={MONTH}")             # HQ's entry shows every county
    assert "各区县考核完成情况" in hq.text_content("h1")
    assert len(hq.query_selector_all("#kpi tr[data-county]")) == 55
    hq.screenshot(path=str(shots / "kpi-hq.png"), full_page=True)
