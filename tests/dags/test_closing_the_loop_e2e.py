"""Closing the loop over several simulated days, as Airflow runs it (dag.test), with the development
SMSC (a real SMPP server) and the SMS receiver service running beside it:

* day 1 (Mon 16 Nov): outbound_daily contacts customers; receipts come back through the receiver
  (ids quoted in the other base), customers reply (opt-out, accept, something else), a stranger
  writes; a county uploads its call outcomes (twice, with a row that matches nothing);
* days 2 and 3: BOSS orders arrive — some late and out of order, some twice, some matching nothing;
  outcomes_loop runs each evening;
* the report's conversion, control conversion and uplift equal the effects planted in the orders
  (one campaign with an effect, one without);
* day 9 (Tue 24 Nov, past the 7-day window): the next cycle respects every opt-out, refusal, new DND entry and frequency rule.
"""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest
import sqlalchemy as sa

from dag_support import run_dag
from qz_outbound import db, schema
from qz_outbound.dev.demo_datamart import generate
from qz_outbound.datamart.schema import dnd_list, order_event

D1 = dt.date(2026, 11, 16)
D9 = D1 + dt.timedelta(days=8)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from qz_outbound.dev.smsc import Behaviour, DevSmsc
    from qz_outbound.sms.receiver import run_receiver
    from qz_outbound.sms.settings import SmscSettings

    base = tmp_path_factory.mktemp("loop")
    generate(db.make_engine(f"sqlite:///{base / 'datamart.db'}"), 4000, D1, progress=False)
    marketing = db.make_engine(f"sqlite:///{base / 'marketing.db'}")
    schema.ensure_schema(marketing)
    # 10% of the SMS fail on the handset; receipts quote the ids in decimal, submit_sm_resp gives hex
    smsc = DevSmsc(behaviour=Behaviour(id_format="hex", receipt_id_form="decimal", delivery_rate=0.9),
                   seed=5).start()
    stop, bound = threading.Event(), threading.Event()
    settings = SmscSettings.from_config(host="127.0.0.1", port=smsc.port, system_id=smsc.system_id,
                                        password="dev", source_addr="10658", rate=400)
    receiver = threading.Thread(target=run_receiver, args=(marketing, settings),
                                kwargs=dict(stop=stop, on_bound=bound.set, in_doubt_grace=1.0), daemon=True)
    receiver.start()
    assert bound.wait(30), "the receiver did not bind"
    yield base, marketing, smsc
    stop.set()
    receiver.join(30)
    smsc.stop()


def _q(engine, sql, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def _wait(predicate, what, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_several_days_outcomes_attribution_uplift_and_the_next_cycle(airflow_db, world, monkeypatch):
    from qz_outbound.portal import uploads

    base, marketing, smsc = world
    dm = db.make_engine(f"sqlite:///{base / 'datamart.db'}")

    # ---- day 1: the cycle contacts customers; receipts come back through the receiver
    run_dag("outbound_daily", base, monkeypatch, D1, smsc)
    with dm.begin() as conn:
        conn.execute(order_event.delete())   # from now on only planted orders: the effects are known exactly
    sms = _q(marketing, "select contact_id, msisdn from mkt_contact where channel = 'sms' order by contact_id")
    parts = len(smsc.accepted())
    assert sms and parts >= len(sms)
    _wait(lambda: _q(marketing, "select count(*) from sms_inbound where kind = 'receipt' "
                                "and processed_at is not null")[0][0] == parts, "every receipt applied", 120)
    states = dict(_q(marketing, "select state, count(*) from sms_outbox where cycle_date = :d group by state",
                     d=D1.isoformat()))
    assert states.get("delivered", 0) + states.get("undelivered", 0) == len(sms)
    assert 0 < states.get("undelivered", 0) < len(sms) * 0.25          # about 10% planted
    # every receipt found its message although it quotes the id in the other base
    by_stat = dict(_q(marketing, "select receipt_stat, count(*) from sms_inbound where kind = 'receipt' "
                                 "and outcome = 'matched' group by receipt_stat"))
    assert sum(by_stat.values()) == parts
    single_part = _q(marketing, "select count(*) from sms_outbox where cycle_date = :d and parts = 1",
                     d=D1.isoformat())[0][0]
    if single_part == len(sms):
        assert by_stat.get("DELIVRD", 0) == states["delivered"]
    delivered = _q(marketing, "select count(*) from mkt_contact where channel = 'sms' "
                              "and status = 'delivered' and delivered_at is not null")[0][0]
    assert delivered == states["delivered"]

    # replies: an opt-out, an accept, something unrecognised, and a stranger
    opt_out, accept, other = sms[0].msisdn, sms[1].msisdn, sms[2].msisdn
    for number, text in ((opt_out, "TD"), (accept, "1"), (other, "多少钱？"), ("19912345678", "你好")):
        smsc.inject_mo(number, text).result(30)
    _wait(lambda: _q(marketing, "select count(*) from sms_inbound where kind = 'reply' "
                                "and processed_at is not null")[0][0] == 4, "the replies applied")
    responses = dict(_q(marketing, "select msisdn, response from mkt_contact where msisdn in (:a, :b, :c) "
                                   "and channel = 'sms'", a=opt_out, b=accept, c=other))
    assert responses == {opt_out: "opt_out", accept: "accept", other: "unrecognised"}
    assert _q(marketing, "select outcome from sms_inbound where source_addr = '19912345678'") == [("unmatched",)]

    # a county uploads its call outcomes (the same file twice; one row matches no contact)
    county, *_ = _q(marketing, "select county_code, count(*) from mkt_contact where channel = 'call' "
                               "group by county_code order by count(*) desc limit 1")[0]
    calls = _q(marketing, "select contact_id, msisdn, campaign_code from mkt_contact where channel = 'call' "
                          "and county_code = :c order by contact_id", c=county)
    assert len(calls) >= 3
    refused, do_not_call, accepted_call = calls[0], calls[1], calls[2]
    body = ("联系编号（回填用）,外呼结果,外呼时间\n"
            f"{refused.contact_id},refused,2026-11-16 15:00\n"
            f"{do_not_call.contact_id},refused_do_not_call,2026-11-16 15:10\n"
            f"{accepted_call.contact_id},accepted,2026-11-16 15:20\n"
            "C99999999999999,accepted,2026-11-16 15:30\n").encode("utf-8-sig")
    # uploaded that evening (a call time after the upload is refused as being in the future)
    monkeypatch.setenv("QZ_FAKE_NOW", f"{D1.isoformat()}T20:00:00+08:00")
    first = uploads.process_upload(marketing, county, f"county_{county}", "outcomes.csv", body)
    again = uploads.process_upload(marketing, county, f"county_{county}", "outcomes.csv", body)
    assert again.duplicate_file and again.upload_id == first.upload_id
    reasons = _q(marketing, "select reason from portal_upload_reject where upload_id = :u", u=first.upload_id)
    assert len(reasons) == 1 and reasons[0][0]          # kept with its reason, for a person
    run_dag("outcomes_loop", base, monkeypatch, D1, smsc, at="21:00")
    assert dict(_q(marketing, "select contact_id, response from mkt_contact where contact_id in (:a, :b, :c)",
                   a=refused.contact_id, b=do_not_call.contact_id, c=accepted_call.contact_id)) == {
        refused.contact_id: "refused", do_not_call.contact_id: "refused_do_not_call",
        accepted_call.contact_id: "accepted"}

    # ---- days 2 and 3: orders arrive. One campaign works (treated 1 in 3 buy, control 1 in 10),
    # one does not (1 in 10 both); late, out of order, twice, and some that match nothing.
    sizes = _q(marketing, "select campaign_code, sum(case when channel = 'control' then 1 else 0 end) as c "
                          "from mkt_contact where cycle_date = :d group by campaign_code order by c desc, "
                          "campaign_code", d=D1.isoformat())
    effect, none_ = sizes[0].campaign_code, sizes[1].campaign_code
    assert sizes[1].c >= 5, "the test data needs control groups"
    planted, expected, orders = {effect: (3, 10), none_: (10, 10)}, {}, []
    for code, (every_t, every_c) in planted.items():
        treated = _q(marketing, "select contact_id, msisdn, product_code from mkt_contact where campaign_code = :k "
                                "and channel in ('sms', 'call') and cycle_date = :d order by contact_id",
                     k=code, d=D1.isoformat())
        control = _q(marketing, "select contact_id, msisdn, product_code from mkt_contact where campaign_code = :k "
                                "and channel = 'control' and cycle_date = :d order by contact_id",
                     k=code, d=D1.isoformat())
        buy_t, buy_c = treated[::every_t], control[::every_c]
        expected[code] = (len(treated), len(buy_t), len(control), len(buy_c))
        for i, (_cid, msisdn, product) in enumerate(buy_t + buy_c):
            orders.append(dict(order_id=f"{code[:4]}{code[5:]}{i:06d}", msisdn=msisdn, product_code=product,
                               order_time=dt.datetime(2026, 11, 17, 8) + dt.timedelta(minutes=7 * i),
                               channel="hall", agent_id=None))
    noise = [dict(order_id="STRANGER01", msisdn="19900000001", product_code="P-X",
                  order_time=dt.datetime(2026, 11, 17, 9), channel="app", agent_id=None),
             dict(order_id="OTHERPROD1", msisdn=sms[5].msisdn, product_code="NOT-OFFERED",
                  order_time=dt.datetime(2026, 11, 17, 9), channel="app", agent_id=None)]
    with dm.begin() as conn:
        conn.execute(order_event.insert(), orders[::2] + noise)              # day 2: every other order
    run_dag("outcomes_loop", base, monkeypatch, D1 + dt.timedelta(days=1), smsc, at="21:00")
    with dm.begin() as conn:
        # day 3: the rest arrive late, with earlier order times than some loaded on day 2 (out of
        # order); day 2's orders are read again (the load looks 30 days back: each order arrives twice)
        conn.execute(order_event.insert(), orders[1::2])
    run_dag("outcomes_loop", base, monkeypatch, D1 + dt.timedelta(days=2), smsc, at="21:00")

    staged = dict(_q(marketing, "select order_id, contact_id from stg_order"))
    assert len(staged) == len(orders) + len(noise)                      # each order once
    assert staged["STRANGER01"] is None and staged["OTHERPROD1"] is None  # kept, credited to nobody
    report = pd.read_csv(base / "output" / "reports" / (D1 + dt.timedelta(days=2)).isoformat() / "outcomes.csv",
                         dtype={"value": str})
    rows = report[report["dimension"] == "campaign"].set_index("campaign_code")
    for code, (n_t, k_t, n_c, k_c) in expected.items():
        r = rows.loc[code]
        assert (r.contacts, r.converted, r.control_contacts, r.control_converted) == (n_t, k_t, n_c, k_c)
        assert r.conversion_rate == pytest.approx(k_t / n_t) and r.control_rate == pytest.approx(k_c / n_c)
        assert r.uplift == pytest.approx(k_t / n_t - k_c / n_c)
        assert r.uplift_low <= r.uplift <= r.uplift_high
    assert rows.loc[effect].uplift > 0.15 and abs(rows.loc[none_].uplift) < 0.12
    sms_rows = report[(report["dimension"] == "channel") & (report["value"] == "sms")]
    assert sms_rows["delivered"].sum() == states["delivered"]      # receipts reached the report
    page = (base / "output" / "reports" / (D1 + dt.timedelta(days=2)).isoformat() / "outcomes.html").read_text(
        encoding="utf-8")
    assert "优化排名" in page and page.count("<svg") >= 5
    trajectory = pd.read_csv(base / "output" / "reports" / (D1 + dt.timedelta(days=2)).isoformat()
                             / "trajectory_converted.csv", dtype={"msisdn": str})
    assert len(trajectory) == sum(k_t + k_c for _, k_t, _, k_c in expected.values())
    assert set(trajectory["order_channel"]) == {"hall"} and trajectory["bill_before"].notna().all()

    # ---- day 9 (past the 7-day window): a DND entry arrives for a customer contacted on day 1
    dnd_new = sms[10].msisdn
    with dm.begin() as conn:
        conn.execute(dnd_list.insert().values(msisdn=dnd_new, added_at=dt.datetime(2026, 11, 23, 12),
                                              source="customer_request"))
    submits_before = len(smsc.submits)
    run_dag("outbound_daily", base, monkeypatch, D9, smsc)
    second = {r.msisdn: r for r in _q(marketing, "select msisdn, campaign_code, channel from mkt_contact "
                                                 "where cycle_date = :d and channel in ('sms', 'call')",
                                      d=D9.isoformat())}
    assert second, "the second cycle contacted nobody: the test proves nothing"
    opted_out = {r[0] for r in _q(marketing, "select msisdn from mkt_opt_out")}
    assert {opt_out, do_not_call.msisdn} <= opted_out
    assert not (opted_out & second.keys()) and dnd_new not in second
    assert refused.msisdn not in second or second[refused.msisdn].campaign_code != refused.campaign_code
    first_cycle = dict(_q(marketing, "select msisdn, campaign_code from mkt_contact where cycle_date = :d "
                                     "and channel in ('sms', 'call')", d=D1.isoformat()))
    again_same = [m for m, r in second.items() if first_cycle.get(m) == r.campaign_code]
    assert again_same == []                                     # same campaign within 30 days: never
    assert len(set(first_cycle) & set(second)) > 0              # the 7-day window passed: others may return
    texted = {s.destination for s in smsc.submits[submits_before:]}
    assert not (texted & (opted_out | {dnd_new}))
