"""Each contact rule in the agent channel's decision too (agent_decide.sql calls the same macros of
_contactable.sql as the daily cycle): frequency caps, the same-campaign gap, the refusal block and
products already held, on SQLite and PostgreSQL.

The day's target list is built on a history-free data mart (so the customer has a current offer),
then the history each test needs is recorded, and a top-up at 10:00 is decided by the real
ingest → claim → decide path. Every test has a customer without that history whose top-up is
recommended, so each can fail.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qz_outbound import campaigns, clock, db, schema, segmentation, targeting  # noqa: E402
from qz_outbound.agent import recommend  # noqa: E402
from qz_outbound.datamart import schema as dm_schema  # noqa: E402
from test_contact_policy import D, Mart, campaign  # noqa: E402

AT = dt.datetime.combine(D, dt.time(10))     # within the sending window
AGENT_CODE, OTHER_CODE = "1141-001", "1141-002"
PRODUCT = "DATA10G"


def agent_library() -> list:
    """One agent campaign (current offers and, through agent_rules, customers without one); its SMS
    templates are those of the shipped library's agent campaign, picked by attribute."""
    shipped = next(c for c in campaigns.load_library() if "agent" in c.channels)
    types = ["0", "1", "21", "22", "23", "3", "41", "42", "43", "5"]
    return [campaign(AGENT_CODE, PRODUCT, priority=10, types=types, channels=("sms", "agent"),
                     agent_sms=shipped.agent_sms, agent_pitch=shipped.agent_pitch,
                     agent_customer_sms=shipped.customer_agent_template,
                     agent_rules={"stability_types": types})]


@pytest.fixture(params=["sqlite", "postgresql"])
def mart(request, tmp_path):
    if request.param == "sqlite":
        dm = db.make_engine(f"sqlite:///{tmp_path / 'dm.db'}")
        mk = db.make_engine(f"sqlite:///{tmp_path / 'mk.db'}")
    else:
        factory = request.getfixturevalue("pg_database_factory")
        dm = db.make_engine(factory("qz_apol_dm"))
        mk = db.make_engine(factory("qz_apol_mk"))
    m = Mart(dm, mk)
    with dm.begin() as conn:
        conn.execute(dm_schema.agent.insert(), [{
            "agent_id": "AG0001", "agent_msisdn": "13800000001", "county_code": "350582", "outlet_name": "测试营业点",
            "outlet_type": "shop", "floor_area_m2": None, "monthly_customers": None}])
    yield m
    clock.set_now(None)
    dm.dispose()
    mk.dispose()


def target(mart: Mart, library) -> dict[str, str]:
    """The day's target list (not published: the day has no daily contacts); offers by number."""
    segmentation.segment_customers(mart.dm, mart.mk, D)
    targeting.stage_extracts(mart.dm, mart.mk, D)
    targeting.build_target_list(mart.mk, D, library)
    return mart.offers()


def contact(mart: Mart, msisdn: str, days_ago: int, campaign_code: str, *, status: str = "delivered",
            response: str | None = None, channel: str = "sms") -> None:
    cycle = D - dt.timedelta(days=days_ago)
    with mart.mk.begin() as conn:
        conn.execute(schema.mkt_contact.insert(), [{
            "contact_id": f"H{cycle:%Y%m%d}-{msisdn}-{campaign_code}", "cycle_date": cycle, "msisdn": msisdn,
            "county_code": "350582", "campaign_code": campaign_code, "product_code": "X", "variant": None,
            "channel": channel, "segment_code": "1-P09V05D05T07", "status": status,
            "created_at": dt.datetime.combine(cycle, dt.time(9)), "response": response,
            "responded_at": dt.datetime.combine(cycle, dt.time(12)) if response else None}])


def decide(mart: Mart, library, numbers: list[str]) -> dict[str, str]:
    """A top-up by each number at 09:50, decided at 10:00; the outcome per number."""
    with mart.dm.begin() as conn:
        conn.execute(dm_schema.recharge_event.insert(), [
            {"event_id": f"E{k:03d}", "msisdn": m, "agent_id": "AG0001", "amount_yuan": 50,
             "event_time": AT - dt.timedelta(minutes=10)} for k, m in enumerate(numbers)])
    clock.set_now(AT)
    recommend.ingest_events(mart.dm, mart.mk)
    recommend.recommend_pending(mart.mk, library)
    with mart.mk.connect() as conn:
        return dict(conn.execute(sa.text("select msisdn, outcome from mkt_agent_event")).all())


def test_capped_in_the_agent_path_counts_the_window_the_month_and_todays_contacts(mart):
    library = agent_library()
    free, window, month, today, today_skipped = (mart.customer() for _ in range(5))
    assert target(mart, library) == {m: AGENT_CODE for m in (free, window, month, today, today_skipped)}
    contact(mart, window, 3, "9999-999")                          # 1 per 7 days
    for days_ago in (20, 16, 12, 8):                              # 4 this month, none in the last 7 days
        contact(mart, month, days_ago, f"9999-9{days_ago:02d}")
    contact(mart, today, 0, "9999-999", channel="call")           # today's daily call counts too
    contact(mart, today_skipped, 0, "9999-999", status="skipped")  # one that never left does not
    assert decide(mart, library, [free, window, month, today, today_skipped]) == {
        free: "recommended", window: "capped", month: "capped", today: "capped", today_skipped: "recommended"}


def test_campaign_blocked_in_the_agent_path_by_the_gap_and_by_a_refusal(mart):
    library = agent_library()
    free, within_gap, past_gap, refused, refused_long_ago, refused_other = (mart.customer() for _ in range(6))
    assert set(target(mart, library).values()) == {AGENT_CODE}
    contact(mart, within_gap, 20, AGENT_CODE)                      # the same campaign within 30 days
    contact(mart, past_gap, 31, AGENT_CODE)
    contact(mart, refused, 60, AGENT_CODE, response="refused")     # refused within 90 days
    contact(mart, refused_long_ago, 100, AGENT_CODE, response="refused_do_not_call")
    contact(mart, refused_other, 60, OTHER_CODE, response="refused")
    assert decide(mart, library, [free, within_gap, past_gap, refused, refused_long_ago, refused_other]) == {
        free: "recommended", within_gap: "campaign_blocked", past_gap: "recommended", refused: "campaign_blocked",
        refused_long_ago: "recommended", refused_other: "recommended"}


def test_holds_product_in_the_agent_path_as_in_the_daily_list(mart):
    """The daily list does not offer a held product; the agent campaign's rules would pick the
    customer without a current offer, and the decision refuses it for the same rule."""
    library = agent_library()
    free, holder, holds_other = mart.customer(), mart.customer(products=[PRODUCT]), mart.customer(products=["X1"])
    assert target(mart, library) == {free: AGENT_CODE, holds_other: AGENT_CODE}
    assert decide(mart, library, [free, holder, holds_other]) == {
        free: "recommended", holder: "holds_product", holds_other: "recommended"}
