"""The agent channel recommends several products (issue 17 item 4; docs/agent-channel.md "Several
products"), on SQLite and PostgreSQL, through the real ingest -> claim -> decide path:

* up to ``max_products`` of the agent campaigns the customer is eligible for, the current offer
  first, then by expected value (mkt_offer_value of the latest cycle <= today), then priority;
* a candidate failing a per-campaign rule is left out (held product, refusal block, same-campaign
  gap, paused, month budget used up), the others still listed;
* one recommendation is one contact for the frequency caps, whatever it lists;
* the customer's SMS carries the first product; the shop owner's lists them in order;
* commission pays an order of the second listed product, once;
* the outlet grade steers how many and which products a shop is given; config mistakes named.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qz_outbound import campaigns, clock, config, schema  # noqa: E402
from qz_outbound.agent import commission, recommend  # noqa: E402
from qz_outbound.agent.schema import mkt_agent_grade  # noqa: E402
from qz_outbound.agent.settings import GradeSteer, GradeSteering, load_agent_config  # noqa: E402
from qz_outbound.budgets import BudgetConfig, CampaignBudget  # noqa: E402
from qz_outbound.datamart import schema as dm_schema  # noqa: E402
from test_agent_policy import AT, contact, mart, target  # noqa: E402,F401  (mart: the fixture)
from test_contact_policy import D, campaign  # noqa: E402

DAILY = "1141-001"                       # the daily cycle's campaign: everyone's current offer
A1, A2, A3, A4 = "1141-011", "1141-012", "1141-013", "1141-014"
PRODUCT = {DAILY: "SMSPACK", A1: "PA", A2: "PB", A3: "PC", A4: "PD"}
TYPES = ["0", "1", "21", "22", "23", "3", "41", "42", "43", "5"]


def library(daily_agent: bool = False) -> list:
    """Four agent-only campaigns whose rules select everyone (priorities 10..40) and the daily cycle's
    campaign (priority 1: everyone's current offer), with or without the agent channel."""
    shipped = next(c for c in campaigns.load_library() if "agent" in c.channels)
    agent = dict(agent_sms=shipped.agent_sms, agent_customer_sms=shipped.customer_agent_template)
    out = [campaign(DAILY, PRODUCT[DAILY], priority=1, types=TYPES, offer="日常优惠",
                    channels=("sms", "agent") if daily_agent else ("sms",),
                    **(dict(agent, agent_pitch="日常推荐") if daily_agent else {}))]
    for k, code in enumerate((A1, A2, A3, A4), start=1):
        out.append(campaign(code, PRODUCT[code], priority=10 * k, types=TYPES, channels=("agent",),
                            offer=f"优惠{code[-1]}", agent_pitch=f"卖点{code[-1]}",
                            agent_rules={"stability_types": TYPES}, **agent))
    return out


def agent_cfg(max_products: int = 3, steering: GradeSteering | None = None):
    cfg = load_agent_config()
    rec = cfg.recommendation.model_copy(update={"max_products": max_products,
                                                "grade_steering": steering or GradeSteering()})
    return cfg.model_copy(update={"recommendation": rec})


def no_budgets() -> BudgetConfig:
    return BudgetConfig()


def offer_value(mart, cycle: dt.date, values: dict[str, float]) -> None:
    """Expected values for every customer's cell (the snapshot's cells of D) for ``cycle``."""
    with mart.mk.connect() as conn:
        cells = conn.execute(sa.text("select distinct stability_type, spend_tier, market_segment "
                                     "from mkt_segment_snapshot")).all()
    rows = [dict(cycle_date=cycle, campaign_code=code, stability_type=t, spend_tier=tier,
                 market_segment=market or "(none)", contacted=100, control=10, conv_contacted=5, conv_control=0,
                 uplift_raw=0.05, uplift=0.05, uplift_sd=0.01, value_per_conversion=ev * 20, expected_cost=0.0,
                 expected_value=ev)
            for code, ev in values.items() for t, tier, market in cells]
    with mart.mk.begin() as conn:
        conn.execute(schema.mkt_offer_value.insert(), rows)


def add_shop(mart, agent_id: str, msisdn: str) -> None:
    with mart.dm.begin() as conn:
        conn.execute(dm_schema.agent.insert(), [{
            "agent_id": agent_id, "agent_msisdn": msisdn, "county_code": "350582", "outlet_name": f"网点{agent_id}",
            "outlet_type": "shop", "floor_area_m2": None, "monthly_customers": None}])


def decide(mart, lib, numbers: list[str], *, at: dt.datetime = AT, shop: str = "AG0001", prefix: str = "E",
           cfg=None, budget_cfg=None, shops: dict[str, str] | None = None) -> dict[str, str]:
    """A top-up by each number ten minutes before ``at``, decided at ``at``; outcome per number."""
    with mart.dm.begin() as conn:
        conn.execute(dm_schema.recharge_event.insert(), [
            {"event_id": f"{prefix}{k:03d}", "msisdn": m, "agent_id": (shops or {}).get(m, shop), "amount_yuan": 50,
             "event_time": at - dt.timedelta(minutes=10)} for k, m in enumerate(numbers)])
    clock.set_now(at)
    cfg = cfg or agent_cfg()
    recommend.ingest_events(mart.dm, mart.mk, cfg)
    recommend.recommend_pending(mart.mk, lib, cfg=cfg, budget_cfg=budget_cfg or no_budgets())
    with mart.mk.connect() as conn:
        return dict(conn.execute(sa.text("select msisdn, outcome from mkt_agent_event where event_id like :p"),
                                 {"p": f"{prefix}%"}).all())


def listed(mart, msisdn: str) -> list[str]:
    """The campaigns the customer's (latest) recommendation listed, in order."""
    with mart.mk.connect() as conn:
        return list(conn.execute(sa.text(
            "select o.campaign_code from mkt_agent_offer as o join mkt_contact as c on c.contact_id = o.contact_id "
            "where c.msisdn = :m and c.channel = 'agent' and c.cycle_date = (select max(cycle_date) from mkt_contact "
            "where msisdn = :m and channel = 'agent') order by o.product_rank"), {"m": msisdn}).scalars())


def texts_of(mart, msisdn: str) -> tuple[str, str]:
    """The customer's and the shop owner's SMS of the customer's agent recommendation."""
    with mart.mk.connect() as conn:
        cid = conn.execute(sa.text("select contact_id from mkt_contact where channel = 'agent' and msisdn = :m"),
                           {"m": msisdn}).scalar_one()
        texts = dict(conn.execute(sa.text("select contact_id, text from sms_outbox where contact_id in (:c, :s)"),
                                  {"c": cid, "s": recommend.shop_message_id(cid)}).all())
    return texts[cid], texts[recommend.shop_message_id(cid)]


def test_up_to_n_products_in_expected_value_order_the_customer_sms_carries_the_first(mart):
    lib = library()
    buyer, lone = mart.customer(), mart.customer()
    assert target(mart, lib) == {buyer: DAILY, lone: DAILY}       # a current offer without the agent channel
    offer_value(mart, D - dt.timedelta(days=1), {A3: 5.0, A2: 2.0})            # the latest cycle <= today
    offer_value(mart, D - dt.timedelta(days=8), {A1: 9.0, A4: 8.0})            # an older one: not read
    offer_value(mart, D + dt.timedelta(days=1), {A4: 50.0})                    # a future one: not read
    assert decide(mart, lib, [buyer]) == {buyer: "recommended"}
    # measured values first (5 > 2), then the unmeasured by priority (A1 10 before A4 40); three at most
    assert listed(mart, buyer) == [A3, A2, A1]
    with mart.mk.connect() as conn:
        contacts = conn.execute(sa.text("select campaign_code, product_code from mkt_contact "
                                        "where channel = 'agent' and msisdn = :m"), {"m": buyer}).all()
        event = conn.execute(sa.text("select campaign_code, product_code from mkt_agent_event "
                                     "where msisdn = :m"), {"m": buyer}).one()
        values = conn.execute(sa.text("select product_rank, expected_value from mkt_agent_offer "
                                      "order by product_rank")).all()
    assert [tuple(c) for c in contacts] == [(A3, PRODUCT[A3])]          # one contact, the first product
    assert tuple(event) == (A3, PRODUCT[A3])
    assert [tuple(v) for v in values] == [(1, 5.0), (2, 2.0), (3, None)]
    customer_text, shop_text = texts_of(mart, buyer)
    assert "优惠3" in customer_text and "优惠2" not in customer_text      # the customer's SMS: the first
    assert shop_text.index("1.【测试活动1141-013】卖点3；") < shop_text.index("2.【测试活动1141-012】卖点2；") \
        < shop_text.index("3.【测试活动1141-011】卖点1。")
    assert "1141-014" not in shop_text and "4." not in shop_text

    # one product at most: the single product's own shop text, as before several products
    assert decide(mart, lib, [lone], prefix="L", cfg=agent_cfg(max_products=1)) == {lone: "recommended"}
    assert listed(mart, lone) == [A3]
    _, shop_text = texts_of(mart, lone)
    assert "可推荐【测试活动1141-013】。卖点3。" in shop_text and "2." not in shop_text


def test_a_cell_without_history_reads_the_campaigns_own_value(mart):
    # offer_value.sql writes one row per campaign ('*', 0, '*'): the campaign's own figure, what a
    # cell without history reads, in the agent lane as in the daily cycle's arbitration
    lib = library()
    buyer = mart.customer()
    assert target(mart, lib) == {buyer: DAILY}
    offer_value(mart, D, {A2: 2.0})                      # A2 measured in the customer's cell
    own = dict(cycle_date=D, stability_type="*", spend_tier=0, market_segment="*", contacted=100, control=10,
               conv_contacted=5, conv_control=0, uplift_raw=0.05, uplift=0.05, uplift_sd=0.01,
               value_per_conversion=100.0, expected_cost=0.0)
    with mart.mk.begin() as conn:                        # A4 only as a campaign, better than A2
        conn.execute(schema.mkt_offer_value.insert(), [dict(own, campaign_code=A4, expected_value=4.0)])
    assert decide(mart, lib, [buyer]) == {buyer: "recommended"}
    # A4 (own row, 4.0) before A2 (its cell, 2.0), then the unmeasured by priority
    assert listed(mart, buyer) == [A4, A2, A1]


def test_the_current_offer_goes_first_when_its_campaign_has_the_agent_channel(mart):
    lib = library(daily_agent=True)
    buyer = mart.customer()
    assert target(mart, lib) == {buyer: DAILY}
    offer_value(mart, D, {A1: 1.0, A2: 3.0, DAILY: -1.0})
    assert decide(mart, lib, [buyer], cfg=agent_cfg(max_products=4)) == {buyer: "recommended"}
    assert listed(mart, buyer) == [DAILY, A2, A1, A3]
    with mart.mk.connect() as conn:
        assert conn.execute(sa.text("select text from sms_outbox where msisdn = :m"), {"m": buyer}).scalar() \
            .count("日常优惠") == 1


def test_ineligible_products_are_left_out_and_the_rest_still_listed(mart):
    lib = library()
    free, holder, refused, gap, blocked_all = (mart.customer(products=["PA"]) if k in (1, 4) else mart.customer()
                                               for k in range(5))
    assert set(target(mart, lib).values()) == {DAILY}
    offer_value(mart, D, {A3: 5.0, A2: 4.0, A1: 3.0, A4: 2.0})
    contact(mart, refused, 60, A3, response="refused")             # refusal block (90 days)
    contact(mart, gap, 20, A3)                                     # same campaign within 30 days
    contact(mart, blocked_all, 40, A3, response="refused_do_not_call")
    with mart.mk.begin() as conn:
        conn.execute(schema.mkt_campaign_pause.insert(), [{
            "campaign_code": A4, "paused_at": clock.now(), "cycle_date": D, "reason": "roi"}])
        # A2's month budget is used up by the month's cycles (100 of 100 yuan committed)
        conn.execute(schema.mkt_budget_commit.insert(), [{
            "cycle_date": D - dt.timedelta(days=2), "campaign_code": A2, "county_code": "350582", "sms_contacts": 50,
            "sms_parts": 50, "calls": 0, "expected_conversions": 1.0, "committed_yuan": 100.0, "cut_rows": 0}])
    budgets = BudgetConfig(campaigns={A2: CampaignBudget(monthly_yuan=100, conversion_prior=0.01)})
    got = decide(mart, lib, [free, holder, refused, gap, blocked_all], budget_cfg=budgets)
    assert got == {free: "recommended", holder: "recommended", refused: "recommended", gap: "recommended",
                   blocked_all: "campaign_blocked"}     # nothing left: the best candidate's reason
    assert listed(mart, free) == [A3, A1]              # A2 budget used up, A4 paused
    assert listed(mart, holder) == [A3]                # holds PA
    assert listed(mart, refused) == [A1]
    assert listed(mart, gap) == [A1]
    # the budget not yet used up: A2 comes back
    more = mart.customer()
    target(mart, lib)
    budgets = BudgetConfig(campaigns={A2: CampaignBudget(monthly_yuan=101, conversion_prior=0.01)})
    assert decide(mart, lib, [more], prefix="M", budget_cfg=budgets) == {more: "recommended"}
    assert listed(mart, more) == [A3, A2, A1]


def test_a_county_budget_used_up_leaves_the_campaign_out_in_that_county_only(mart):
    lib = library()
    here, there = mart.customer(county="350582"), mart.customer(county="350503")
    target(mart, lib)
    offer_value(mart, D, {A3: 5.0, A2: 4.0, A1: 3.0})
    with mart.mk.begin() as conn:     # the latest cycle cut A3's customers for county 350503's budget
        conn.execute(schema.mkt_budget_cut.insert(), [{
            "cycle_date": D, "msisdn": "13900009999", "campaign_code": A3, "county_code": "350503",
            "is_control": 0, "by_county": 1}])
    budgets = BudgetConfig(campaigns={A3: CampaignBudget(monthly_yuan=1e6, counties={"350503": 10},
                                                         conversion_prior=0.01)})
    assert decide(mart, lib, [here, there], budget_cfg=budgets) == {here: "recommended", there: "recommended"}
    assert listed(mart, here) == [A3, A2, A1]
    assert listed(mart, there) == [A2, A1, A4]


def test_one_recommendation_is_one_contact_for_the_frequency_caps(mart):
    lib = library()
    buyer = mart.customer()
    target(mart, lib)
    assert decide(mart, lib, [buyer]) == {buyer: "recommended"}
    assert len(listed(mart, buyer)) == 3
    with mart.mk.connect() as conn:
        assert conn.execute(sa.text("select count(*) from mkt_contact where msisdn = :m"), {"m": buyer}).scalar() == 1
    # the next day: 1 contact per 7 days is used by that one recommendation
    nxt = AT + dt.timedelta(days=1)
    assert decide(mart, lib, [buyer], at=nxt, prefix="N") == {buyer: "capped"}


def test_commission_on_the_second_listed_product_paid_once(mart, tmp_path):
    lib = library()
    buyer = mart.customer()
    target(mart, lib)
    offer_value(mart, D, {A3: 5.0, A1: 3.0})
    assert decide(mart, lib, [buyer]) == {buyer: "recommended"}
    assert listed(mart, buyer)[:2] == [A3, A1]
    with mart.dm.begin() as conn:
        conn.execute(dm_schema.order_event.insert(), [
            {"order_id": "O1", "msisdn": buyer, "product_code": PRODUCT[A1], "order_time": AT + dt.timedelta(days=2),
             "channel": "hall", "agent_id": None},                                   # the second listed: paid
            {"order_id": "O2", "msisdn": buyer, "product_code": PRODUCT[A3], "order_time": AT + dt.timedelta(days=3),
             "channel": "hall", "agent_id": None},                                   # the first, later: not again
            {"order_id": "O3", "msisdn": buyer, "product_code": PRODUCT[A4], "order_time": AT + dt.timedelta(days=1),
             "channel": "hall", "agent_id": None}])                                  # not listed: nothing
    cfg = load_agent_config()
    for _ in range(2):     # a re-run writes the same
        result = commission.settle_month(mart.dm, mart.mk, D.replace(day=1), lib, cfg=cfg, out_dir=tmp_path)
        assert result["conversions"] == 1
        with mart.mk.connect() as conn:
            paid = conn.execute(sa.text("select order_id, campaign_code, product_code, agent_id "
                                        "from mkt_agent_commission")).all()
        assert [tuple(r) for r in paid] == [("O1", A1, PRODUCT[A1], "AG0001")]


def test_outlet_grade_steers_how_many_and_which_products(mart):
    lib = library()
    add_shop(mart, "AG0002", "13800000002")
    add_shop(mart, "AG0003", "13800000003")
    at_c, at_b, ungraded = mart.customer(), mart.customer(), mart.customer()
    target(mart, lib)
    offer_value(mart, D, {A3: 5.0, A2: 4.0, A1: 3.0})
    with mart.mk.begin() as conn:
        conn.execute(mkt_agent_grade.insert(), [
            {"month": D.replace(day=1) - dt.timedelta(days=31), "agent_id": "AG0001", "county_code": "350582",
             "outlet_type": "grocery", "customers_served": 1, "floor_area_m2": None, "conversions": 0,
             "score": 90, "grade": "A"},                       # an older month: the latest one counts
            {"month": D.replace(day=1), "agent_id": "AG0001", "county_code": "350582", "outlet_type": "grocery",
             "customers_served": 1, "floor_area_m2": None, "conversions": 0, "score": 40, "grade": "C"},
            {"month": D.replace(day=1), "agent_id": "AG0002", "county_code": "350582", "outlet_type": "grocery",
             "customers_served": 1, "floor_area_m2": None, "conversions": 0, "score": 60, "grade": "B"}])
    steering = GradeSteering(A=GradeSteer(max_products=3), B=GradeSteer(campaigns=[A1, A4]),
                             C=GradeSteer(max_products=1))
    got = decide(mart, lib, [at_c, at_b, ungraded], cfg=agent_cfg(steering=steering),
                 shops={at_c: "AG0001", at_b: "AG0002", ungraded: "AG0003"})
    assert got == {at_c: "recommended", at_b: "recommended", ungraded: "recommended"}
    assert listed(mart, at_c) == [A3]
    assert listed(mart, at_b) == [A1, A4]
    assert listed(mart, ungraded) == [A3, A2, A1]


def test_grade_steering_mistakes_are_named_with_file_line_and_field(tmp_path):
    lib = library()
    base = Path(config.config_path("agent_channel.yaml")).read_text(encoding="utf-8")
    bad = base.replace("  grade_steering:\n    C: {max_products: 2}\n    D: {max_products: 1}\n",
                       "  grade_steering:\n    C: {max_products: 9}\n    E: {max_products: 1}\n"
                       "    B:\n      campaigns: [\"1141-011\", \"9999-999\"]\n")
    assert bad != base
    path = tmp_path / "agent_channel.yaml"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(config.ConfigError) as err:
        load_agent_config(path, library=lib)
    text = str(err.value)
    lines = bad.splitlines()
    line_c = lines.index("    C: {max_products: 9}") + 1
    line_e = lines.index("    E: {max_products: 1}") + 1
    assert f"{path}:{line_c}: recommendation.grade_steering.C.max_products:" in text
    assert f"{path}:{line_e}: recommendation.grade_steering.E:" in text
    # the schema is right, a campaign code is not an agent campaign
    path.write_text(bad.replace("    C: {max_products: 9}\n    E: {max_products: 1}\n", ""), encoding="utf-8")
    with pytest.raises(config.ConfigError) as err:
        load_agent_config(path, library=lib)
    assert "recommendation.grade_steering.B.campaigns.1: '9999-999' is not an agent-channel campaign" in str(err.value)
    assert f"{path}:" in str(err.value)
    path.write_text(base.replace("max_products: 3", "max_products: 0"), encoding="utf-8")
    with pytest.raises(config.ConfigError, match="recommendation.max_products"):
        load_agent_config(path, library=lib)
    path.write_text(base.replace("shop_list_template: agent-shop-list", "shop_list_template: agent-shop-lst"),
                    encoding="utf-8")
    line = base.splitlines().index("  shop_list_template: agent-shop-list") + 1
    with pytest.raises(config.ConfigError, match=f":{line}: recommendation.shop_list_template: no template"):
        load_agent_config(path, library=lib)


@pytest.fixture(params=["sqlite", "postgresql"])
def marketing_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'marketing.db'}"
    return request.getfixturevalue("pg_database_factory")("qz_agent_mig")


def test_revision_0011_gives_existing_recommendations_their_product_as_rank_one(marketing_url):
    """Commission reads mkt_agent_offer now: a recommendation made before the revision keeps being paid."""
    from qz_outbound import db, migrations

    engine = db.make_engine(marketing_url)
    migrations.upgrade(engine, "0008_offer_value")
    row = dict(cycle_date=D, county_code="350582", variant=None, segment_code="1-P09V05D05T07", status="delivered",
               created_at=dt.datetime(2026, 11, 23, 10), agent_id="AG0001")
    with engine.begin() as conn:
        conn.execute(schema.mkt_contact.insert(), [
            dict(row, contact_id="AGold", msisdn="13900000001", campaign_code=A1, product_code="PA", channel="agent"),
            dict(row, contact_id="SMSold", msisdn="13900000002", campaign_code=A2, product_code="PB", channel="sms")])
    migrations.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select contact_id, product_rank, campaign_code, product_code, expected_value "
                                    "from mkt_agent_offer")).all()
    assert [tuple(r) for r in rows] == [("AGold", 1, A1, "PA", None)]
    assert migrations.check(engine) == []
    engine.dispose()


def test_a_shop_list_too_long_for_the_allowed_parts_drops_its_last_products():
    from qz_outbound.sms.settings import load_sms_config

    long = [c.model_copy(update={"agent_pitch": f"卖点{c.code[-1]}" + "很划算" * 12}) for c in library()[1:4]]
    cfg, message = agent_cfg(), load_sms_config().message
    template, sms, kept = recommend.render_shop_sms(cfg, long, "139****0001", "网点", message)
    assert [c.code for c in kept] == [A1, A2, A3] and template == "agent-shop-list"
    assert 3 < len(sms.parts) <= message.max_parts
    template, sms, kept = recommend.render_shop_sms(cfg, long, "139****0001", "网点",
                                                    message.model_copy(update={"max_parts": 3}))
    assert [c.code for c in kept] == [A1, A2] and len(sms.parts) <= 3
    assert "1.【测试活动1141-011】" in sms.text and "2.【测试活动1141-012】" in sms.text and "3." not in sms.text
    template, sms, kept = recommend.render_shop_sms(cfg, long, "139****0001", "网点",
                                                    message.model_copy(update={"max_parts": 2}))
    assert [c.code for c in kept] == [A1] and template == long[0].agent_sms     # the single product's own text
