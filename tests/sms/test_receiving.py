"""Receipts and replies: stored before acknowledged, matched in every form, nothing lost."""

from __future__ import annotations

import os
import signal

import pytest
import sqlalchemy as sa

from qz_outbound.schema import mkt_contact, mkt_opt_out
from qz_outbound.sms import send_batch
from qz_outbound.dev.smsc import Behaviour, DevSmsc
from qz_outbound.sms.schema import sms_inbound, sms_part

from sms_support import (
    COUNTY, CYCLE, account, cli, db_url, make_contacts, msisdn, part_states, receiver, settings, states,
    wait_until,
)

LONG = dict(county_name="晋江市", product_name="千兆融合套餐", speed_mbps=1000, months_free=3, hall_name="晋江青阳营业厅")


@pytest.mark.parametrize("id_format, receipt_form", [("hex", "decimal"), ("decimal", "hex"), ("hex", "same")])
def test_receipts_with_hex_and_decimal_ids_all_match(engine, id_format, receipt_form):
    """Show: the SMSC quotes ids in the other base in its receipts; every part of every message matches."""
    with DevSmsc(behaviour=Behaviour(id_format=id_format, receipt_id_form=receipt_form)) as server:
        conn = account(server)
        make_contacts(engine, 20, template="demo_broadband_bundle", context=LONG)   # two parts each
        make_contacts(engine, 20, start=100)                                       # one part each
        with receiver(engine, conn):
            send_batch(engine, CYCLE, COUNTY, settings(conn))
            assert wait_until(lambda: states(engine).get("delivered", 0) == 40), states(engine)
        accepted = server.accepted()
    assert len(accepted) == 60
    if id_format == "decimal":
        assert all(s.message_id.isdigit() for s in accepted)
    else:
        assert any(not s.message_id.isdigit() for s in accepted)   # real hex ids, letters included
    assert part_states(engine) == {"delivered": 60}
    with engine.connect() as c:
        outcomes = dict(c.execute(sa.select(sms_inbound.c.outcome, sa.func.count()).group_by(sms_inbound.c.outcome)).all())
        quoted = set(c.scalars(sa.select(sms_inbound.c.receipted_id)))
        ours = set(c.scalars(sa.select(sms_part.c.message_id)))
        delivered_at = c.scalar(sa.select(sa.func.count()).select_from(mkt_contact)
                                .where(mkt_contact.c.status == "delivered", mkt_contact.c.delivered_at.is_not(None)))
    assert outcomes == {"matched": 60}
    assert delivered_at == 40
    if receipt_form != "same":
        assert quoted.isdisjoint(ours)       # the receipts really quoted the ids in the other form


def test_undelivered_receipts_are_final_states(sqlite_engine):
    with DevSmsc(behaviour=Behaviour(delivery_rate=0.0, fail_states=("EXPIRED",))) as server:
        conn = account(server)
        make_contacts(sqlite_engine, 5)
        with receiver(sqlite_engine, conn):
            send_batch(sqlite_engine, CYCLE, COUNTY, settings(conn))
            assert wait_until(lambda: states(sqlite_engine).get("undelivered", 0) == 5)
    with sqlite_engine.connect() as c:
        assert set(c.scalars(sa.select(sms_part.c.receipt_stat))) == {"EXPIRED"}


def test_restart_the_receiver_while_receipts_flow_none_lost(engine):
    """Show: kill -9 the receiver mid-stream and start it again: every receipt arrives and matches."""
    n = 400
    with DevSmsc(behaviour=Behaviour(receipt_delay=0.3)) as server:
        conn = account(server, rate=400, window=20)
        make_contacts(engine, n)
        recv = cli("receive", "--db", db_url(engine), "--smsc", __import__("json").dumps(conn),
                   "--in-doubt-grace", "0.3")
        assert recv.stdout.readline().strip() == "receiver bound"
        send_batch(engine, CYCLE, COUNTY, settings(conn))
        assert server.wait_for(lambda s: s.stats()["receipts_acked"] >= 60, 30)
        os.kill(recv.pid, signal.SIGKILL)
        recv.wait(10)
        at_kill = server.stats()["receipts_acked"]
        assert at_kill < n, "receipts must still be flowing when the receiver dies"
        recv = cli("receive", "--db", db_url(engine), "--smsc", __import__("json").dumps(conn))
        assert recv.stdout.readline().strip() == "receiver bound"
        try:
            assert server.wait_for(lambda s: s.stats()["receipts_acked"] >= n, 60)
            assert wait_until(lambda: states(engine).get("delivered", 0) == n, 30), states(engine)
        finally:
            recv.send_signal(signal.SIGTERM)
            recv.wait(20)
    with engine.connect() as c:
        stored = c.scalar(sa.select(sa.func.count(sa.distinct(sms_inbound.c.receipted_id))))
    assert stored == n


def test_replies_are_recorded_and_an_opt_out_is_for_good(sqlite_engine, smsc):
    conn = account(smsc)
    make_contacts(sqlite_engine, 4)
    with receiver(sqlite_engine, conn):
        send_batch(sqlite_engine, CYCLE, COUNTY, settings(conn))
        for number, text in ((msisdn(0), "1"), (msisdn(1), "ＴＤ"), (msisdn(2), "什么活动？"), ("13700000000", "好"),
                             (msisdn(3), "回复TD退订"), ("13700000001", "T D")):
            smsc.inject_mo(number, text, system_id="qz").result(20)
    with sqlite_engine.connect() as c:
        responses = dict(c.execute(sa.select(mkt_contact.c.msisdn, mkt_contact.c.response)
                                   .where(mkt_contact.c.response.is_not(None))).all())
        opted = list(c.scalars(sa.select(mkt_opt_out.c.msisdn)))
        inbound = c.execute(sa.select(sms_inbound.c.source_addr, sms_inbound.c.outcome, sms_inbound.c.body)
                            .where(sms_inbound.c.kind == "reply").order_by(sms_inbound.c.inbound_id)).all()
    assert responses == {msisdn(0): "accept", msisdn(1): "opt_out", msisdn(2): "unrecognised", msisdn(3): "opt_out"}
    assert sorted(opted) == sorted([msisdn(1), msisdn(3), "13700000001"])   # a stranger's opt-out counts too
    assert [(r.source_addr, r.outcome) for r in inbound] == [
        (msisdn(0), "accept"), (msisdn(1), "opt_out"), (msisdn(2), "unrecognised"), ("13700000000", "unmatched"),
        (msisdn(3), "opt_out"), ("13700000001", "opt_out")]
    assert inbound[2].body == "什么活动？"       # kept for a person to read


def test_nothing_is_acknowledged_that_was_not_stored(sqlite_engine, smsc):
    """With the inbound table gone the receiver refuses to ack; the SMSC keeps offering; nothing is lost."""
    conn = account(smsc)
    with receiver(sqlite_engine, conn):
        with sqlite_engine.begin() as c:
            c.execute(sa.text("drop table sms_inbound"))
        fut = smsc.inject_mo(msisdn(9), "TD", system_id="qz")
        assert smsc.wait_for(lambda s: s.binds and len(s.binds) >= 3, 20)   # bind dropped, re-bound, ...
        assert not fut.done()
        sms_inbound.create(sqlite_engine)   # the table back (the database stays at its revision)
        fut.result(20)
    with sqlite_engine.connect() as c:
        assert list(c.scalars(sa.select(mkt_opt_out.c.msisdn))) == [msisdn(9)]


def test_receipt_matching_prefers_the_same_text_then_the_same_base_then_the_handset(engine):
    """The matching rules, on rows made by hand: "10" is part A's id as given, and part B's id "A"
    read as a hexadecimal number; "0A" only reads as hexadecimal 10. Two parts with the same id
    "77" (two SMSC id spaces): the handset decides; a receipt from neither handset is ambiguous and
    kept for a person, as is one that matches nothing (after the give-up time)."""
    import datetime as dt

    from qz_outbound import clock
    from qz_outbound.sms.inbound import Inbound, process_pending, store_and_apply
    from qz_outbound.sms.outbox import message_id_keys
    from qz_outbound.sms.schema import sms_outbox

    now = dt.datetime(2026, 11, 23, 10, tzinfo=clock.SHANGHAI)
    parts = {"A": ("10", "13900000001"), "B": ("A", "13900000002"), "C": ("77", "13900000003"),
             "D": ("77", "13900000004")}
    with engine.begin() as conn:
        for cid, (mid, number) in parts.items():
            conn.execute(mkt_contact.insert().values(
                contact_id=cid, cycle_date=CYCLE, msisdn=number, county_code=COUNTY, campaign_code="1114-007",
                channel="sms", status="submitted", created_at=now, sent_at=now))
            conn.execute(sms_outbox.insert().values(
                contact_id=cid, cycle_date=CYCLE, county_code=COUNTY, msisdn=number, campaign_code="1114-007",
                template="t", text="x", parts=1, state="submitted", queued_at=now, submitted_at=now))
            dec, hexv = message_id_keys(mid)
            conn.execute(sms_part.insert().values(
                contact_id=cid, part_no=1, esm_class=0, data_coding=8, payload=b"x", state="accepted",
                message_id=mid, mid_dec=dec, mid_hex=hexv, attempts=1, submitted_at=now, accepted_at=now))

    def receipt(ident, handset, stat="DELIVRD"):
        return Inbound("receipt", handset, "10658", 4, 0, f"id:{ident} stat:{stat}", ident, stat)

    clock.set_now(now)
    try:
        with engine.begin() as conn:
            store_and_apply(conn, [receipt("10", "13999999999"), receipt("0A", "13999999999", "UNDELIV"),
                                   receipt("77", "13900000004"), receipt("77", "13911111111"),
                                   receipt("FFFF", "13900000001")])
        clock.set_now(now + dt.timedelta(hours=80))      # past the give-up time for the stranger id
        process_pending(engine, give_up_hours=72)
    finally:
        clock.set_now(None)
    with engine.connect() as conn:
        got = conn.execute(sa.select(sms_inbound.c.receipted_id, sms_inbound.c.source_addr, sms_inbound.c.outcome,
                                     sms_inbound.c.contact_id).order_by(sms_inbound.c.inbound_id)).all()
        states_ = dict(conn.execute(sa.select(sms_outbox.c.contact_id, sms_outbox.c.state)).all())
    assert [tuple(r) for r in got] == [
        ("10", "13999999999", "matched", "A"),      # the same text beats B's hexadecimal reading
        ("0A", "13999999999", "matched", "B"),      # only a hexadecimal number: B's id in the same base
        ("77", "13900000004", "matched", "D"),      # two parts with the id: the handset's own
        ("77", "13911111111", "ambiguous", None),   # neither handset: kept for a person
        ("FFFF", "13900000001", "unmatched", None),  # nothing has that id: kept, after the give-up time
    ]
    assert states_ == {"A": "delivered", "B": "undelivered", "C": "submitted", "D": "delivered"}


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_backlog_of_receipts_is_applied_by_two_transactions_split_by_handset(engine):
    """12,000 two-part messages, each part reported twice (ENROUTE, then the final state) and half of
    them quoting the id in the other base: applied by two concurrent shares, every report lands on
    its part in order (the final state wins, never the intermediate one), nothing is left."""
    import datetime as dt

    import pandas as pd

    from qz_outbound import clock, db
    from qz_outbound.sms.inbound import process_pending
    from qz_outbound.sms.outbox import message_id_keys
    from qz_outbound.sms.schema import sms_outbox

    n = 12_000
    now = dt.datetime(2026, 11, 23, 10, tzinfo=clock.SHANGHAI)
    i = pd.RangeIndex(n)
    number = (13700000000 + i * 13).astype(str)
    cid = "K" + pd.Series(i).astype(str).str.zfill(9)
    with engine.begin() as conn:
        db.bulk_insert(conn, "mkt_contact", ["contact_id", "cycle_date", "msisdn", "county_code", "campaign_code",
                                             "channel", "status", "created_at", "sent_at"],
                       pd.DataFrame({"contact_id": cid, "cycle_date": CYCLE, "msisdn": number, "county_code": COUNTY,
                                     "campaign_code": "1114-007", "channel": "sms", "status": "submitted",
                                     "created_at": now, "sent_at": now}))
        db.bulk_insert(conn, "sms_outbox", ["contact_id", "cycle_date", "county_code", "msisdn", "campaign_code",
                                            "template", "text", "parts", "state", "queued_at", "submitted_at"],
                       pd.DataFrame({"contact_id": cid, "cycle_date": CYCLE, "county_code": COUNTY, "msisdn": number,
                                     "campaign_code": "1114-007", "template": "t", "text": "x", "parts": 2,
                                     "state": "submitted", "queued_at": now, "submitted_at": now}))
        parts, inbound = [], []
        for k in range(n):
            for part in (1, 2):
                mid = format(5_000_000 + 2 * k + part, "x")
                dec, hexv = message_id_keys(mid)
                parts.append((cid[k], part, 0x40, 8, "\\x00", "accepted", mid, dec, hexv, 1, now, now))
                quoted = str(int(mid, 16)) if k % 2 else mid
                final = "UNDELIV" if k % 10 == 0 else "DELIVRD"
                for stat in ("ENROUTE", final):
                    inbound.append((now, "receipt", number[k], "10658", 4, 0, quoted, stat, f"id:{quoted} stat:{stat}"))
        db.bulk_insert(conn, "sms_part", ["contact_id", "part_no", "esm_class", "data_coding", "payload", "state",
                                          "message_id", "mid_dec", "mid_hex", "attempts", "submitted_at",
                                          "accepted_at"], parts)
        db.bulk_insert(conn, "sms_inbound", ["received_at", "kind", "source_addr", "dest_addr", "esm_class",
                                             "data_coding", "receipted_id", "receipt_stat", "body"], inbound)
    clock.set_now(now + dt.timedelta(minutes=5))
    try:
        counts, _, still = process_pending(engine, limit=len(inbound), workers=2)
    finally:
        clock.set_now(None)
    assert counts["receipt_matched"] == len(inbound) and still == []
    with engine.connect() as conn:
        got = dict(conn.execute(sa.select(sms_outbox.c.state, sa.func.count()).group_by(sms_outbox.c.state)).all())
        pending = conn.scalar(sa.select(sa.func.count()).select_from(sms_inbound)
                              .where(sms_inbound.c.processed_at.is_(None)))
    assert got == {"delivered": n - n // 10, "undelivered": n // 10} and pending == 0
