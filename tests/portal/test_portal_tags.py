"""The HQ trajectory lookup shows the customer's tags (Chinese names from config/tags.yaml, since
when, the evidence); county users still cannot open it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from qz_outbound import db, schema, tags


def test_the_trajectory_lookup_shows_the_customers_tags_to_hq_only(portal):
    engine = db.make_engine(portal.marketing_url)
    with engine.connect() as conn:
        msisdn, other = conn.execute(sa.text(
            "select msisdn from mkt_contact where channel = 'sms' order by contact_id limit 2")).scalars().all()
    # one customer tagged by the shipped history-derived refresh (a refused call before the cycle)
    d = dt.date(2026, 11, 23)
    with engine.begin() as conn:
        conn.execute(schema.mkt_contact.insert(), [{
            "contact_id": "TAGTEST1", "cycle_date": d - dt.timedelta(days=30), "msisdn": msisdn,
            "county_code": "350582", "campaign_code": "1331-099", "product_code": None, "variant": None,
            "channel": "call", "segment_code": None, "status": "called",
            "created_at": dt.datetime(2026, 10, 24, 9), "response": "refused",
            "responded_at": dt.datetime(2026, 10, 24, 10)}])
    try:
        tags.refresh_customer_tags(engine, d)
        status, body, _ = portal.request(f"/hq/trajectory?msisdn={msisdn}", "hq")
        page = body.decode()
        assert status == 200 and 'id="tags"' in page and 'id="trajectory"' in page
        table = page[page.index('id="tags"'):page.index("</table>", page.index('id="tags"'))]
        assert "拒接外呼" in table and "2026-11-23" in table and "2026-10-24" in table
        assert "响应流量优惠" not in table
        # a customer without tags: said so
        status, body, _ = portal.request(f"/hq/trajectory?msisdn={other}", "hq")
        assert status == 200 and 'id="no-tags"' in body.decode() and "拒接外呼" not in body.decode()
        # county users cannot open the lookup, tags or not
        assert portal.request(f"/hq/trajectory?msisdn={msisdn}", "county_350582")[0] == 403
        assert portal.request(f"/hq/trajectory?msisdn={msisdn}", "county_350583")[0] == 403
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("delete from mkt_contact where contact_id = 'TAGTEST1'")
            conn.exec_driver_sql("delete from mkt_customer_tag")
        engine.dispose()
