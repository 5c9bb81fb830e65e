"""Closing the loop: call outcomes and orders into the contact history; conversion and uplift equal
the effects planted in the data (one campaign with an effect, one without)."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
import sqlalchemy as sa

from cycle_support import engine_for_param, published_cycle
from qz_outbound import clock, outcomes
from qz_outbound.datamart.schema import order_event
from qz_outbound.portal import uploads

D = dt.date(2026, 11, 23)


@pytest.fixture(params=["sqlite", "postgresql"])
def cycle(request, tmp_path, monkeypatch):
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "out"))
    engine = engine_for_param(request, tmp_path, "qz_loop")
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    library = published_cycle(engine, D, 8000)
    yield engine, library
    clock.set_now(None)
    engine.dispose()


def _contacts(engine, campaign, channel_sql):
    with engine.connect() as conn:
        return conn.execute(sa.text(
            f"select contact_id, msisdn, product_code from mkt_contact where campaign_code = :k and {channel_sql} "
            "order by contact_id"), {"k": campaign}).all()


def test_conversion_and_uplift_equal_the_planted_effects(cycle):
    engine, library = cycle
    with engine.connect() as conn:
        sizes = conn.execute(sa.text(
            "select campaign_code, sum(case when channel = 'control' then 1 else 0 end) as c, count(*) as n "
            "from mkt_contact group by campaign_code order by c desc")).all()
    effect, none_ = sizes[0].campaign_code, sizes[1].campaign_code
    planted = {effect: (0.30, 0.10), none_: (0.10, 0.10)}
    orders, expected, n = [], {}, 0
    for code, (p_t, p_c) in planted.items():
        treated = _contacts(engine, code, "channel in ('sms', 'call')")
        control = _contacts(engine, code, "channel = 'control'")
        k_t, k_c = round(p_t * len(treated)), round(p_c * len(control))
        expected[code] = (k_t / len(treated), k_c / len(control), len(treated), len(control))
        for group, k in ((treated, k_t), (control, k_c)):
            for cid, msisdn, product in group[:k]:
                n += 1
                orders.append(dict(order_id=f"O{n:08d}", msisdn=msisdn, product_code=product,
                                   order_time=dt.datetime(2026, 11, 26, 10), channel="hall", agent_id=None))
        # noise that must not count: an order after the window, another product, a stranger
        cid, msisdn, product = treated[-1]
        orders += [dict(order_id="LATE0001", msisdn=msisdn, product_code=product,
                        order_time=dt.datetime(2026, 12, 9, 10), channel="app", agent_id=None),
                   dict(order_id=f"OTHER{code[:4]}", msisdn=msisdn, product_code="NOT-THIS-ONE",
                        order_time=dt.datetime(2026, 11, 25, 10), channel="app", agent_id=None)]
    orders.append(dict(order_id="STRANGER1", msisdn="19900000000", product_code="X",
                       order_time=dt.datetime(2026, 11, 25, 9), channel="hall", agent_id=None))
    orders = [o for i, o in enumerate(orders) if o["order_id"] not in {p["order_id"] for p in orders[:i]}]
    with engine.begin() as conn:
        conn.execute(order_event.delete())          # only the planted orders: the effect is known exactly
        conn.execute(order_event.insert(), orders)

    until = dt.datetime(2026, 12, 14, tzinfo=clock.SHANGHAI)
    assert outcomes.stage_orders(engine, engine, until, 30) == len(orders)
    first = outcomes.attribute_orders(engine, 14)
    # the same orders arriving again, and a second load: nothing changes
    assert outcomes.stage_orders(engine, engine, until, 30) == 0
    assert outcomes.attribute_orders(engine, 14) == 0
    assert first == sum(round(p_t * e[2]) + round(p_c * e[3]) for (p_t, p_c), e in
                        zip(planted.values(), expected.values()))

    report = outcomes.outcome_report(engine, D, library)
    rows = report[report["dimension"] == "campaign"].set_index("campaign_code")
    for code, (rate_t, rate_c, n_t, n_c) in expected.items():
        r = rows.loc[code]
        assert (r.contacts, r.control_contacts) == (n_t, n_c)
        assert math.isclose(r.conversion_rate, rate_t) and math.isclose(r.control_rate, rate_c)
        assert math.isclose(r.uplift, rate_t - rate_c, abs_tol=1e-12)
        assert r.uplift_low <= r.uplift <= r.uplift_high
    assert rows.loc[effect].uplift_low > 0                     # a real effect is significant
    assert abs(rows.loc[none_].uplift) < 0.02                  # none planted (only rounding of 10% of n)
    assert rows.loc[none_].uplift_low < 0 < rows.loc[none_].uplift_high
    with engine.connect() as conn:
        unmatched = dict(conn.execute(sa.text("select order_id, contact_id from stg_order "
                                              "where order_id in ('LATE0001', 'STRANGER1')")).all())
    assert unmatched == {"LATE0001": None, "STRANGER1": None}   # kept, not credited

    written = outcomes.write_outcome_report(engine, D, library)
    html = open(written["html"], encoding="utf-8").read()
    assert "营销效果日报" in html and effect in html and "<svg" in html


def test_call_outcomes_reach_the_contact_history_latest_first_and_idempotent(cycle, tmp_path):
    engine, _ = cycle
    with engine.connect() as conn:
        county, cid = conn.execute(sa.text("select county_code, contact_id from mkt_contact where channel = 'call' "
                                           "order by contact_id limit 1")).one()
    clock.set_now(dt.datetime(2026, 11, 23, 18, 0))
    # out of order: the later outcome (accepted at 16:00) arrives first, the callback (11:00) later
    uploads.process_upload(engine, county, "u", "a.csv",
                           f"联系编号（回填用）,外呼结果,外呼时间\n{cid},accepted,2026-11-23 16:00\n".encode("utf-8-sig"))
    uploads.process_upload(engine, county, "u", "b.csv",
                           f"联系编号（回填用）,外呼结果,外呼时间\n{cid},callback,2026-11-23 11:00\n".encode("utf-8-sig"))
    assert outcomes.apply_call_outcomes(engine) == 1
    assert outcomes.apply_call_outcomes(engine) == 0            # nothing new: nothing touched
    with engine.connect() as conn:
        row = conn.execute(sa.text("select response, status from mkt_contact where contact_id = :c"),
                           {"c": cid}).one()
    assert tuple(row) == ("accepted", "called")


def test_trajectory_names_offer_uptake_and_the_bills_before_and_after(cycle):
    """营销轨迹: the credited order's channel, and the bills of the three months before the contact's
    month and of the months after it, once those are in the data mart (a missing bill row is zero)."""
    from qz_outbound.datamart.schema import usage_monthly

    engine, library = cycle
    with engine.connect() as conn:
        cid, msisdn, product = conn.execute(sa.text(
            "select contact_id, msisdn, product_code from mkt_contact where channel = 'sms' "
            "order by contact_id limit 1")).one()
        before = conn.execute(sa.text(
            "select coalesce(sum(spend_yuan), 0) from usage_monthly where msisdn = :m "
            "and month >= :a and month < :b"), {"m": msisdn, "a": dt.date(2026, 8, 1), "b": dt.date(2026, 11, 1)}
        ).scalar()
        conn.execute(order_event.delete())
        conn.commit()
    with engine.begin() as conn:
        conn.execute(order_event.insert(), [dict(order_id="T0000001", msisdn=msisdn, product_code=product,
                                                 order_time=dt.datetime(2026, 11, 25, 10), channel="app",
                                                 agent_id=None)])
    outcomes.stage_orders(engine, engine, dt.datetime(2026, 12, 1, tzinfo=clock.SHANGHAI), 30)
    assert outcomes.attribute_orders(engine, 14) == 1

    # in November the months before are closed, none after: the bill after is not known yet
    outcomes.stage_bills(engine, engine, D)
    t = outcomes.trajectory(engine, D, D, msisdn=msisdn).set_index("contact_id").loc[cid]
    assert t.order_channel == "app" and t.product_code == product and t.converted_at is not None
    assert math.isclose(t.bill_before, float(before) / 3, abs_tol=0.005)
    assert pd.isna(t.bill_after) and pd.isna(t.bill_change)

    # December's bills land in the data mart; staged in January, the change shows
    with engine.begin() as conn:
        conn.execute(usage_monthly.delete().where(usage_monthly.c.month == dt.date(2026, 12, 1)))
        conn.execute(usage_monthly.insert(), [dict(msisdn=msisdn, month=dt.date(2026, 12, 1), spend_yuan=88,
                                                   voice_minutes=0, data_mb=0, sms_count=0)])
    assert outcomes.stage_bills(engine, engine, dt.date(2027, 1, 5)) >= 1
    assert outcomes.stage_bills(engine, engine, dt.date(2027, 1, 5)) == 0     # a month is staged once
    t = outcomes.trajectory(engine, D, D, converted_only=True).set_index("contact_id").loc[cid]
    assert (t.after_months, t.bill_after) == (1, 88.0)
    assert math.isclose(t.bill_change, 88.0 - float(before) / 3, abs_tol=0.005)
    # a customer with no December row is at zero after (a missing row is zero), not unknown
    others = outcomes.trajectory(engine, D, D)
    assert (others.loc[others["msisdn"] != msisdn, "bill_after"] == 0).all()


def test_ranking_trend_and_automatic_pause_of_a_campaign_that_does_harm(cycle):
    engine, library = cycle
    with engine.connect() as conn:
        harmful = conn.execute(sa.text(
            "select campaign_code from mkt_contact group by campaign_code "
            "order by sum(case when channel = 'control' then 1 else 0 end) desc limit 1")).scalar()
    control = _contacts(engine, harmful, "channel = 'control'")
    with engine.begin() as conn:      # the control group buys, the contacted customers do not
        conn.execute(order_event.delete())
        conn.execute(order_event.insert(), [
            dict(order_id=f"H{i:07d}", msisdn=m, product_code=p, order_time=dt.datetime(2026, 11, 24, 10),
                 channel="hall", agent_id=None) for i, (_, m, p) in enumerate(control)])
    outcomes.stage_orders(engine, engine, dt.datetime(2026, 12, 1, tzinfo=clock.SHANGHAI), 30)
    outcomes.attribute_orders(engine, 14)

    cfg = outcomes.load_outcome_config()
    report = outcomes.outcome_report(engine, D, library, cfg)
    camp = report[report["dimension"] == "campaign"].set_index("campaign_code")
    assert camp.loc[harmful, "uplift_high"] < 0 and "uplift_significantly_negative" in camp.loc[harmful, "flags"]
    assert camp.loc[harmful, "rank"] == camp["rank"].max()           # ranked last
    for dim, rows in report.groupby("dimension"):
        assert sorted(rows["rank"]) == list(range(1, len(rows) + 1))
    assert {"all_county", "all_channel", "script"} <= set(report["dimension"])
    assert set(report.loc[report["dimension"] == "script", "value"]) <= {c.call_script for c in library}

    # off by default: flagged, not paused (writing the report never pauses: auto_pause is its own task)
    assert outcomes.auto_pause_campaigns(engine, D, library, cfg) == []
    on = cfg.model_copy(update={"auto_pause": outcomes.AutoPause(enabled=True, min_contacts=1)})
    outcomes.write_outcome_report(engine, D, library, on)
    assert outcomes.paused_campaigns(engine) == set()
    assert harmful in outcomes.auto_pause_campaigns(engine, D, library, on)
    assert outcomes.auto_pause_campaigns(engine, D, library, on) == []   # once
    assert outcomes.paused_in_cycle(engine, D) == outcomes.paused_campaigns(engine) >= {harmful}
    written = outcomes.write_outcome_report(engine, D, library, on)   # the next run's page shows it
    html = open(written["html"], encoding="utf-8").read()
    assert "已自动暂停" in html and "本周期暂停" in html and "优化排名" in html and "按周期趋势" in html
    trend = outcomes.outcome_trend(engine, D, cfg)
    assert list(trend["cycle_date"]) == [D.isoformat()]
    assert trend.loc[0, "control_converted"] == len(control)

    # the next target list leaves the paused campaign out
    from qz_outbound import targeting

    targeting.build_target_list(engine, D, library)
    with engine.connect() as conn:
        left = conn.execute(sa.text("select count(*) from mkt_target where cycle_date = :d and campaign_code = :k"),
                            {"d": D.isoformat() if engine.dialect.name == "sqlite" else D, "k": harmful}).scalar()
    assert left == 0
