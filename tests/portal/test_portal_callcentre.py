"""The county portal's 外呼日报 (qz_outbound/portal/callcentre.py): a county's day of calls —
dialled, connected, accepted, connect rate, per campaign and agent — read over HTTP and in a real
browser (the screenshot in docs/screenshots/ comes from here with ``QZ_PORTAL_SCREENSHOTS`` set);
a county sees only its own county, HQ any."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from qz_outbound import db
from test_portal_browser import _shots, _sign_in, browser, chromium  # noqa: F401  (fixtures)

D = dt.date(2026, 11, 23)
JJ, NA = "350582", "350583"


def _counts(portal, user: str, county: str = "") -> tuple[int, int, int]:
    status, body, _ = portal.request(f"/callcentre?day={D.isoformat()}" + (f"&county={county}" if county else ""),
                                     user)
    assert status == 200, body[:300]
    html = body.decode()
    return tuple(int(re.search(rf'id="cc-{k}">(\d+)<', html).group(1)) for k in ("dialled", "connected", "accepted"))


def test_county_page_shows_the_days_dialled_connected_and_accepted(portal, browser, tmp_path):  # noqa: F811
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        # 南安's calls (the shared fixture's other tests take 晋江's by offset, and 南安's first and last)
        ids = conn.execute(sa.text("select contact_id from mkt_contact where channel = 'call' and county_code = :c "
                                   "order by contact_id"), {"c": NA}).scalars().all()
    engine.dispose()
    pick = ids[len(ids) // 2:len(ids) // 2 + 8]
    assert len(pick) == 8, "the published cycle should give this county 8 calls"
    before = _counts(portal, "county_350583")
    rows = [("accepted", "A01", 9, ""), ("no_answer", "A01", 9, ""), ("busy", "A02", 10, ""),
            ("wrong_number", "A02", 10, ""), ("callback", "A03", 11, (D + dt.timedelta(days=2)).isoformat()),
            ("refused", "A03", 14, ""), ("接受", "A03", 15, ""), ("无人接听", "A01", 16, "")]
    csv = "联系编号（回填用）,外呼结果,外呼时间,坐席工号,回拨日期\n" + "".join(
        f"{cid},{outcome},{D.isoformat()} {hour:02d}:20,{agent},{callback}\n"
        for cid, (outcome, agent, hour, callback) in zip(pick, rows))
    status, body, _ = portal.upload(NA, "county_350583", "外呼日报.csv", csv.encode("utf-8-sig"))
    assert status == 200 and b'"rows_accepted":8' in body.replace(b" ", b"")
    after = _counts(portal, "county_350583")
    # 8 calls dialled; accepted ×2, callback, refused connected; no_answer ×2, busy, wrong number not
    assert tuple(a - b for a, b in zip(after, before)) == (8, 4, 2)

    # a county sees only its own; HQ any county
    assert portal.request(f"/callcentre?day={D.isoformat()}&county={NA}", "county_350582")[0] == 403
    assert portal.request(f"/callcentre?day={D.isoformat()}&county={JJ}", "county_350583")[0] == 403
    assert _counts(portal, "hq", NA) == after
    assert portal.request(f"/callcentre?day={D.isoformat()}&county={JJ}", "hq")[0] == 200

    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    _sign_in(page, portal.base, "county_350583", portal.passwords["county_350583"])
    page.goto(f"{portal.base}/county-portal/")
    page.click("#callcentre-link")
    page.goto(f"{portal.base}/county-portal/callcentre?day={D.isoformat()}")
    assert "南安市 外呼日报" in page.text_content("h1")
    assert page.text_content("#cc-dialled").strip() == str(after[0])
    agents = page.text_content("#callcentre-agents")
    assert "A01" in agents and "A02" in agents and "A03" in agents and "接通率" in agents
    page.screenshot(path=str(_shots(tmp_path) / "portal-callcentre.png"), full_page=True)
