"""Top-ups into recommendations, end to end through the real development SMSC (docs/agent-channel.md)."""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa

from qz_outbound import clock, schema
from qz_outbound.agent import recommend
from qz_outbound.agent.settings import load_agent_config
from qz_outbound.phone import mask

from conftest import DAY, smsc_settings

NIGHT_OFFER_HOURS = 10


def agent_config(validity_hours: float = NIGHT_OFFER_HOURS, batch_size: int = 2000):
    cfg = load_agent_config()
    return cfg.model_copy(update={"recommendation": cfg.recommendation.model_copy(
        update={"offer_validity_hours": validity_hours, "batch_size": batch_size})})


def offered(engine, campaign: str, n: int) -> list[str]:
    """Customers whose current offer is the campaign (not in its control group)."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "select t.msisdn from mkt_target as t where t.cycle_date = :d and t.campaign_code = :c "
            "and t.is_control = 0 and t.msisdn not in (select msisdn from dnd_list) order by t.msisdn limit :n"),
            {"d": DAY.isoformat() if engine.dialect.name == "sqlite" else DAY, "c": campaign, "n": n}).scalars())


def shops(engine, n: int) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "select agent_id, agent_msisdn, outlet_name from agent order by agent_id limit :n"), {"n": n}).mappings()]


def topup(engine, event_id: str, msisdn: str, agent_id: str, when: dt.datetime, amount: float = 50) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("insert into recharge_event (event_id, msisdn, agent_id, amount_yuan, event_time) "
                             "values (:e, :m, :a, :y, :t)"),
                     {"e": event_id, "m": msisdn, "a": agent_id, "y": amount, "t": when.strftime("%Y-%m-%d %H:%M:%S")})


def outcomes(engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        return {r.event_id: (r.state, r.outcome) for r in conn.execute(sa.text(
            "select event_id, state, outcome from mkt_agent_event"))}


def serve_once(engine, library, smsc, cfg):
    return recommend.serve(engine, engine, library, smsc_settings(smsc), seconds=0, cfg=cfg)


def test_stream_of_topups(targeted, smsc):
    """Duplicates, an unknown shop, DND and opted-out customers, night top-ups: who got which SMS."""
    engine, library = targeted
    cfg = agent_config()
    with engine.begin() as conn:
        conn.exec_driver_sql("delete from recharge_event")     # only this test's stream
    buyer, twice, dnd, opted, unknown_shop_customer, late_night, evening = offered(engine, "1114-007", 7)
    shop, other_shop = shops(engine, 2)
    with engine.begin() as conn:
        # DND from today on: the daily cycle staged its list at 05:00 without it; the event's read sees it
        conn.execute(sa.text("insert into dnd_list (msisdn, added_at, source) values (:m, :t, 'customer_request')"),
                     {"m": dnd, "t": "2026-11-23 06:00:00"})
        conn.execute(sa.text("insert into mkt_opt_out (msisdn, opted_out_at, source) values (:m, :t, 'sms_reply')"),
                     {"m": opted, "t": clock.now()})

    # 19:00: a burst of top-ups
    clock.set_now(dt.datetime(2026, 11, 23, 19, 0))
    at = dt.datetime(2026, 11, 23, 18, 58)
    topup(engine, "E1", buyer, shop["agent_id"], at)
    topup(engine, "E2", buyer, shop["agent_id"], at)                       # the same top-up delivered twice
    topup(engine, "E3", twice, other_shop["agent_id"], at)
    topup(engine, "E4", twice, other_shop["agent_id"], at + dt.timedelta(minutes=1), amount=30)   # tops up again
    topup(engine, "E5", dnd, shop["agent_id"], at)
    topup(engine, "E6", opted, shop["agent_id"], at)
    topup(engine, "E7", unknown_shop_customer, "AGNOSUCH", at)
    counts = serve_once(engine, library, smsc, cfg)
    assert counts["sms_submitted"] == 4, counts
    got = outcomes(engine)
    assert got == {"E1": ("done", "recommended"), "E2": ("done", "duplicate_topup"),
                   "E3": ("done", "recommended"), "E4": ("done", "duplicate_customer"),
                   "E5": ("done", "dnd"), "E6": ("done", "opt_out"), "E7": ("done", "unknown_agent")}

    handset = smsc.handset_messages()
    by_number = {}
    for m in handset:
        by_number.setdefault(m["msisdn"], []).append(m["text"])
    assert set(by_number) == {buyer, twice, shop["agent_msisdn"], other_shop["agent_msisdn"]}
    assert all(len(texts) == 1 for texts in by_number.values())
    shop_text = by_number[shop["agent_msisdn"]][0]
    # several products (docs/agent-channel.md "Several products"): the current offer first, then the agent
    # campaign whose rules select the buyer too (the personal-import campaign has no import: not listed)
    assert shop_text == (f"【泉州移动】{shop['outlet_name']}店主您好：刚充值的客户{mask(buyer)}可依次推荐："
                         "1.【流量加油包升级10GB】充50得10GB，刷视频不心疼；2.【代理点充值享流量优惠】加10元多5GB，性价比高。"
                         "回复TD退订")
    assert buyer not in shop_text                                           # the shop sees a masked number only
    assert by_number[buyer][0] == (f"【泉州移动】感谢您在{shop['outlet_name']}充值！预存50元得10GB国内流量，当月有效，"
                                   "回复1立即办理，或到店咨询。回复TD退订")

    with engine.connect() as conn:
        contacts = conn.execute(sa.text(
            "select msisdn, channel, agent_id, campaign_code, status from mkt_contact where channel = 'agent' "
            "order by msisdn")).all()
    assert sorted(contacts) == sorted([(buyer, "agent", shop["agent_id"], "1114-007", "submitted"),
                                       (twice, "agent", other_shop["agent_id"], "1114-007", "submitted")])

    # 23:30: top-ups at night are read but not answered; nothing is sent at night
    clock.set_now(dt.datetime(2026, 11, 23, 23, 40))
    topup(engine, "N1", late_night, shop["agent_id"], dt.datetime(2026, 11, 23, 23, 30))   # 8.6 h before 08:05
    topup(engine, "N2", evening, shop["agent_id"], dt.datetime(2026, 11, 23, 21, 0))       # 11 h before 08:05
    counts = serve_once(engine, library, smsc, cfg)
    assert counts.get("sms_submitted", 0) == 0
    assert outcomes(engine)["N1"] == ("pending", None) and outcomes(engine)["N2"] == ("pending", None)
    assert len(smsc.handset_messages()) == 4

    # next morning: the offer of 23:30 is still valid (10 h), the one of 21:00 is not
    clock.set_now(dt.datetime(2026, 11, 24, 8, 5))
    counts = serve_once(engine, library, smsc, cfg)
    assert counts["sms_submitted"] == 2
    assert outcomes(engine)["N1"] == ("done", "recommended")
    assert outcomes(engine)["N2"] == ("done", "expired")
    numbers = [m["msisdn"] for m in smsc.handset_messages()]
    assert late_night in numbers and evening not in numbers
    assert dnd not in numbers and opted not in numbers and unknown_shop_customer not in numbers
    # a re-run of everything changes nothing: no event decided twice, no second SMS
    before = len(smsc.handset_messages())
    counts = serve_once(engine, library, smsc, cfg)
    assert counts.get("events_new", 0) == 0 and counts.get("sms_submitted", 0) == 0
    assert len(smsc.handset_messages()) == before == 6
    with engine.connect() as conn:
        night = conn.execute(sa.text("select min(p.submitted_at) from sms_part as p join sms_outbox as o "
                                     "on o.contact_id = p.contact_id where o.msisdn = :m"), {"m": late_night}).scalar()
    night = night if isinstance(night, dt.datetime) else dt.datetime.fromisoformat(night)
    assert night.astimezone(clock.SHANGHAI).hour >= 8


def test_exactly_once_when_runs_overlap(targeted, smsc):
    """Two runs at once over the same stream (small batches, so they interleave), then a re-run:
    every top-up decided once, every customer and shop message sent once."""
    engine, library = targeted
    cfg = agent_config(validity_hours=14, batch_size=7)
    clock.set_now(dt.datetime(2026, 11, 23, 12, 0))
    with engine.begin() as conn:
        conn.exec_driver_sql("delete from recharge_event")
    customers = offered(engine, "1114-007", 40)
    agents = shops(engine, 5)
    for i, number in enumerate(customers):
        topup(engine, f"X{i:03d}", number, agents[i % 5]["agent_id"], dt.datetime(2026, 11, 23, 11, 30 + i % 20))
    errors = []

    def run():
        try:
            recommend.serve(engine, engine, library, smsc_settings(smsc), seconds=1, poll_seconds=0.2, cfg=cfg)
        except Exception as exc:   # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    serve_once(engine, library, smsc, cfg)      # the re-run sends what a busy lane left, and nothing twice
    serve_once(engine, library, smsc, cfg)
    got = outcomes(engine)
    ours = {k: v for k, v in got.items() if k.startswith("X")}
    assert len(ours) == 40 and all(state == "done" for state, _ in ours.values())
    recommended = [k for k, (_, o) in ours.items() if o == "recommended"]
    assert len(recommended) == 40
    customer_msgs = [m for m in smsc.handset_messages() if m["msisdn"] in set(customers)]
    assert sorted(m["msisdn"] for m in customer_msgs) == sorted(customers)      # each exactly once
    # on the wire: no part twice, and exactly the parts of the 80 messages (40 customers, 40 to shops)
    wire = [(s.destination, s.payload) for s in smsc.accepted()]
    assert len(wire) == len(set(wire))
    assert {dest for dest, _ in wire} == set(customers) | {a["agent_msisdn"] for a in agents}
    with engine.connect() as conn:
        n_contacts = conn.execute(sa.text("select count(*) from mkt_contact where channel = 'agent'")).scalar()
        n_outbox = conn.execute(sa.text("select count(*) from sms_outbox where county_code = 'agent'")).scalar()
    assert n_contacts == len([1 for _, o in got.values() if o == "recommended"])
    assert n_outbox == 2 * n_contacts == 80
    with engine.connect() as conn:
        parts = conn.execute(sa.text("select sum(parts) from sms_outbox where county_code = 'agent' "
                                     "and state = 'submitted'")).scalar()
    assert parts == len(wire)



def listed(engine, event_id: str) -> list[str]:
    """The campaigns a recommendation listed, in order (mkt_agent_offer)."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "select o.campaign_code from mkt_agent_offer as o join mkt_agent_event as e on e.contact_id = o.contact_id "
            "where e.event_id = :e order by o.product_rank"), {"e": event_id}).scalars())


def test_no_recommendation_for_a_campaign_validation_held_back(targeted, smsc):
    """A campaign held back by the day's validation (mkt_target_hold) is not offered at the shop either:
    alone it leaves nothing to recommend; beside another agent campaign, only the other is listed."""
    engine, library = targeted
    only_held = [c for c in library if c.code not in ("1214-014", "3141-015")]
    with engine.begin() as conn:
        conn.exec_driver_sql("delete from recharge_event")
    buyer, second, other = offered(engine, "1114-007", 3)
    shop, = shops(engine, 1)
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.mkt_target_hold), [{
            "cycle_date": DAY, "campaign_code": "1114-007", "rows": 100, "reason": "control_share:1114-007: 35.8%",
            "held_at": clock.now()}])
    clock.set_now(dt.datetime(2026, 11, 23, 19, 0))
    topup(engine, "H1", buyer, shop["agent_id"], dt.datetime(2026, 11, 23, 18, 58))
    counts = serve_once(engine, only_held, smsc, agent_config())
    assert outcomes(engine) == {"H1": ("done", "campaign_held")}
    assert counts.get("sms_submitted", 0) == 0 and not smsc.handset_messages()
    topup(engine, "H3", second, shop["agent_id"], dt.datetime(2026, 11, 23, 18, 58))
    serve_once(engine, library, smsc, agent_config())
    assert outcomes(engine)["H3"] == ("done", "recommended") and listed(engine, "H3") == ["1214-014"]
    with engine.begin() as conn:   # the hold lifted (a passing re-audit): the next top-up is recommended
        conn.exec_driver_sql("delete from mkt_target_hold")
    topup(engine, "H2", other, shop["agent_id"], dt.datetime(2026, 11, 23, 18, 59))
    serve_once(engine, library, smsc, agent_config())
    assert outcomes(engine)["H2"] == ("done", "recommended")
    assert listed(engine, "H2") == ["1114-007", "1214-014"]     # the current offer first
