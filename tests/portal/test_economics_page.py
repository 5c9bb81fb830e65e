"""HQ's economics page (营销效益) on the real Airflow API server, over the planted-effects data of
tests/test_economics.py measured by the real economics step: HQ sees each campaign's funnel, interval,
revenue, cost and ROI with "无可测效果" where the interval spans zero; a county office gets 403; the
table downloads as CSV and XLSX; a real browser renders the page (screenshots for docs/)."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest

from qz_outbound import clock, db, economics
from qz_outbound.datamart import schema as dm
from test_economics import COSTS, GAIN, LIBRARY, LOSS, NONE, plant
from test_portal_browser import _shots, _sign_in, browser, chromium  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def planted(portal):
    engine = db.make_engine(portal.marketing_url)
    dm.create_tables(engine)
    clock.set_now(dt.datetime(2026, 8, 10, 6, 0))
    try:
        data = plant(engine)
        economics.write_economics(engine, engine, dt.date(2026, 8, 10), LIBRARY, COSTS)
        with engine.begin() as conn:
            conn.execute(dm.usage_monthly.insert(), data["after"])
        clock.set_now(dt.datetime(2026, 12, 5, 4, 30))
        economics.write_economics(engine, engine, dt.date(2026, 12, 5), LIBRARY, COSTS)
    finally:
        clock.set_now(None)
        engine.dispose()
    return portal


def test_hq_reads_the_economics_and_a_county_may_not(planted):
    status, body, _ = planted.request("/hq/economics?period=2026-08-10", "hq")
    assert status == 200
    html = body.decode()
    for code in (GAIN, NONE, LOSS):
        assert f'data-code="{code}"' in html
    assert f'data-code="{NONE}" data-status="no_effect"' in html and "无可测效果" in html
    assert f'data-code="{GAIN}" data-status="measured"' in html
    assert 'id="interval-plot"' in html and "预算使用" in html
    assert planted.request("/hq/economics", "county_350582")[0] == 403
    assert planted.request("/hq/economics.csv", "county_350582")[0] == 403
    # a slice and the month
    status, body, _ = planted.request("/hq/economics?period=2026-08&slice=county:350582", "hq")
    assert status == 200 and f'data-code="{GAIN}"' in body.decode()
    assert planted.request("/hq/economics?period=2026-13-01", "hq")[0] == 400
    assert planted.request("/hq/economics?slice=county:%27;drop", "hq")[0] == 400


def test_economics_table_downloads_as_csv_and_xlsx(planted):
    status, body, headers = planted.request("/hq/economics.csv?period=2026-08-10&slice=all", "hq")
    assert status == 200
    frame = pd.read_csv(io.BytesIO(body), encoding="utf-8-sig", dtype={"活动编码": str})
    assert set(frame["活动编码"]) >= {GAIN, NONE, LOSS, "*"}
    row = frame[frame["活动编码"] == NONE].iloc[0]
    assert row["效果"] == "无可测效果" and pd.isna(row["ROI"])
    assert frame[frame["活动编码"] == LOSS].iloc[0]["ROI"] < 0
    status, body, _ = planted.request("/hq/economics.xlsx?period=2026-08-10&slice=all", "hq")
    assert status == 200 and body[:2] == b"PK"
    xlsx = pd.read_excel(io.BytesIO(body), dtype={"活动编码": str})
    assert list(xlsx.columns) == list(frame.columns) and len(xlsx) == len(frame)


def test_economics_page_in_a_browser(planted, browser, tmp_path):  # noqa: F811
    shots = _shots(tmp_path)
    page = browser.new_page(viewport={"width": 1500, "height": 900}, locale="zh-CN")
    _sign_in(page, planted.base, "hq", planted.passwords["hq"])
    page.goto(f"{planted.base}/county-portal/")
    page.click("#economics-link")
    page.select_option("select[name=period]", "2026-08-10")
    page.click("#selector button[type=submit]")
    page.wait_for_selector("#economics")
    assert "无可测效果" in page.text_content("#economics")
    assert len(page.query_selector_all("#interval-plot line")) >= 4
    page.screenshot(path=str(shots / "economics-hq.png"), full_page=True)
    page.select_option("select[name=slice]", "county:350582")
    page.click("#selector button[type=submit]")
    page.wait_for_selector("#economics")
    assert "slice=county%3A350582" in page.url
    page.screenshot(path=str(shots / "economics-hq-county-slice.png"), full_page=True)
