"""The sender against the development SMSC: the hard rules and the issue's "Show" list."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading

import pytest
import sqlalchemy as sa

from qz_outbound import clock
from qz_outbound.schema import mkt_contact, mkt_opt_out
from qz_outbound.sms import SenderBusy, queue_messages, send_batch
from qz_outbound.dev.smsc import Behaviour, DevSmsc
from qz_outbound.sms.schema import sms_outbox, sms_part, sms_sender_run

from sms_support import (
    COUNTY, CYCLE, FLOW_PACK, SmsToQueue, WireCapture, account, finished, make_contacts, max_per_second, msisdn,
    per_number, receiver, sender_process, settings, states, wait_until,
)


def opt_out(engine, number: str) -> None:
    with engine.begin() as conn:
        conn.execute(mkt_opt_out.insert().values(msisdn=number, opted_out_at=clock.now(), source="call_outcome",
                                                 detail="test"))


# ---------------------------------------------------------------- the hard rules

def test_opt_out_never_contacted(engine, smsc):
    """Opted out before queueing, between queueing and sending: never a submit_sm to them."""
    opt_out(engine, msisdn(3))
    ids = make_contacts(engine, 30)
    opt_out(engine, msisdn(17))             # after queueing, before the batch
    result = send_batch(engine, CYCLE, COUNTY, settings(account(smsc)))
    got = per_number(smsc)
    assert msisdn(3) not in got and msisdn(17) not in got
    assert len(got) == 28 and set(got.values()) == {1}
    assert result.submitted == 28
    with engine.connect() as conn:
        st = dict(conn.execute(sa.select(mkt_contact.c.contact_id, mkt_contact.c.status)
                               .where(mkt_contact.c.contact_id.in_([ids[3], ids[17]]))).all())
        reasons = set(conn.scalars(sa.select(sms_outbox.c.reason).where(sms_outbox.c.state == "skipped")))
    assert st == {ids[3]: "skipped", ids[17]: "skipped"}
    assert reasons == {"opt_out"}


def test_opt_out_never_contacted_reply_mid_batch(engine, smsc):
    """Show: a TD reply arrives while the batch runs; that number gets nothing afterwards."""
    conn = account(smsc, rate=100, window=5)
    make_contacts(engine, 200)
    target = msisdn(180)                   # late in the batch (contacts go in id order)
    early = msisdn(2)                      # already sent when it replies: stays at one message
    acked_at = {}

    def inject_when_sending():
        assert smsc.wait_for(lambda s: len(s.accepted()) >= 40, 30)
        fut_target = smsc.inject_mo(target, "TD", system_id="qz")
        fut_early = smsc.inject_mo(early, "退订", system_id="qz")
        fut_target.result(20)              # acknowledged = stored and in force
        fut_early.result(20)
        acked_at["accepted"] = len(smsc.accepted())

    with receiver(engine, conn):
        t = threading.Thread(target=inject_when_sending)
        t.start()
        result = send_batch(engine, CYCLE, COUNTY, settings(conn))
        t.join()
    got = per_number(smsc)
    assert acked_at["accepted"] < 180, "the opt-out must land while the batch is under way"
    assert target not in got
    assert got[early] == 1
    assert result.skipped_opt_out == 1 and result.submitted == 199
    with engine.connect() as c:
        rows = dict(c.execute(sa.select(mkt_opt_out.c.msisdn, mkt_opt_out.c.source)).all())
        responses = dict(c.execute(sa.select(mkt_contact.c.msisdn, mkt_contact.c.response)
                                   .where(mkt_contact.c.response.is_not(None))).all())
    assert rows == {target: "sms_reply", early: "sms_reply"}
    assert responses == {early: "opt_out"}   # the target was never sent an SMS: no contact to answer


def test_no_double_send_on_retry_or_rerun(engine, smsc):
    """A re-run (queue and send again) and a retry after a failure never submit anything twice."""
    conn = account(smsc, window=10)
    ids = make_contacts(engine, 60)
    calls = {"n": 0}

    def fail_midway(_n):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the task died mid-batch")

    with pytest.raises(RuntimeError):
        send_batch(engine, CYCLE, COUNTY, settings(conn), on_burst=fail_midway)
    partial = len(smsc.accepted())
    assert 0 < partial < 60
    # the Airflow retry, then a whole DAG re-run: queue again and send again
    send_batch(engine, CYCLE, COUNTY, settings(conn))
    again = queue_messages(engine, [SmsToQueue(i, "demo_flow_pack", FLOW_PACK) for i in ids])
    assert again.already == 60 and again.queued == 0
    rerun = send_batch(engine, CYCLE, COUNTY, settings(conn))
    assert rerun.parts_written == 0
    counts = per_number(smsc)
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert len(smsc.accepted()) == 60
    s = states(engine)
    assert s.get("submitted", 0) + s.get("in_doubt", 0) == 60


def test_no_double_send_on_retry_or_rerun_after_kill_9(engine, smsc):
    """Show: kill -9 the sender mid-batch, restart, finish: every customer exactly one SMS."""
    conn = account(smsc, rate=500, window=20)
    n = 1500
    make_contacts(engine, n)
    with receiver(engine, conn):
        first = sender_process(engine, conn)
        assert smsc.wait_for(lambda s: len(s.submits) >= 300, 60), "the first sender never got going"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        sent_before = len(smsc.submits)
        assert sent_before < n
        second = finished(sender_process(engine, conn))
        assert second["parts_written"] > 0 and second["settled_dead_runs"] == 1
        # in-flight parts at the kill are settled by their receipts, not resent
        assert wait_until(lambda: states(engine).get("delivered", 0) == n, 60), states(engine)
    counts = per_number(smsc)
    assert len(counts) == n and set(counts.values()) == {1}
    assert len(smsc.submits) == n
    with engine.connect() as c:
        outcomes = list(c.scalars(sa.select(sms_sender_run.c.outcome).order_by(sms_sender_run.c.started_at)))
    assert outcomes[0].startswith("died; settled (journal)")
    assert outcomes[1] == "done"


def test_no_sms_outside_sending_hours(sqlite_engine, smsc):
    make_contacts(sqlite_engine, 10)
    for at in ("2026-11-23T07:59:59", "2026-11-23T20:00:00", "2026-11-23T23:30:00", "2026-11-24T03:00:00"):
        clock.set_now(dt.datetime.fromisoformat(at))
        result = send_batch(sqlite_engine, CYCLE, COUNTY, settings(account(smsc)))
        assert result.window_closed and result.remaining == 10 and result.parts_written == 0
        assert result.next_window_at.endswith("08:00:00+08:00")
    assert smsc.submits == [] and smsc.binds == []   # not even a bind at night
    clock.set_now(dt.datetime(2026, 11, 24, 8, 0, 0))
    result = send_batch(sqlite_engine, CYCLE, COUNTY, settings(account(smsc)))
    assert result.submitted == 10 and not result.window_closed


def test_no_sms_outside_sending_hours_window_closes_at_2000(engine, smsc):
    """Show: the clock passes 20:00 mid-batch; the rest waits, neither dropped nor sent at night."""
    conn = account(smsc, rate=200, window=10)
    n = 400
    make_contacts(engine, n)
    start = dt.datetime(2026, 11, 23, 19, 59, 59, 300000, tzinfo=clock.SHANGHAI)
    stop = threading.Event()
    stamps = []                                # the SMSC's view of the project clock at each submit

    def ticker():                              # the project clock runs in real time from 19:59:59.3
        t0 = clock.dt.datetime.now()
        while not stop.is_set():
            clock.set_now(start + (clock.dt.datetime.now() - t0))
            stop.wait(0.002)

    clock.set_now(start)
    t = threading.Thread(target=ticker)
    t.start()
    original = smsc._on_submit

    def stamped(ev):
        stamps.append(clock.now())
        original(ev)

    smsc._on_submit = stamped
    try:
        result = send_batch(engine, CYCLE, COUNTY, settings(conn))
    finally:
        stop.set()
        t.join()
    sent = len(smsc.accepted())
    assert result.window_closed and 0 < sent < n
    assert result.remaining == n - sent
    # the SMSC's own view (its event loop may run a little late on a busy machine): nothing
    # arrived long after 20:00, whereas ignoring the window would run on to ~20:00:01.3
    assert max(stamps) < dt.datetime(2026, 11, 23, 20, 0, 0, 800000, tzinfo=clock.SHANGHAI)
    with engine.connect() as c:
        last = c.scalar(sa.select(sa.func.max(sms_part.c.submitted_at)))
    last = last if last.tzinfo else last.replace(tzinfo=clock.SHANGHAI)
    assert last < dt.datetime(2026, 11, 23, 20, 0, tzinfo=clock.SHANGHAI)   # checked at submit time
    assert states(engine).get("queued") == n - sent
    # next morning the rest goes, each exactly once
    clock.set_now(dt.datetime(2026, 11, 24, 8, 0, 0))
    result = send_batch(engine, dt.date(2026, 11, 24), COUNTY, settings(conn))
    assert result.submitted == n - sent
    counts = per_number(smsc)
    assert len(counts) == n and set(counts.values()) == {1}


def test_smsc_rate_never_exceeded(sqlite_engine, tshark):
    """Two county tasks in parallel processes share the account's rate: on the wire to the SMSC
    (kernel timestamps, counted by tshark) no second ever holds more submit_sm than the contract."""
    rate = 80
    with DevSmsc(fault_relay=False) as server:
        conn = account(server, rate=rate, window=20)
        make_contacts(sqlite_engine, 180, county="350582")
        make_contacts(sqlite_engine, 180, county="350583", start=1000)
        wire = WireCapture(server.port)
        procs = [sender_process(sqlite_engine, conn, county=c) for c in ("350582", "350583")]
        results = [finished(p) for p in procs]
        on_wire = wire.stop()
        assert [r["submitted"] for r in results] == [180, 180]
        assert len(on_wire) == 360                       # the capture saw every submit
        assert max_per_second(on_wire) <= rate
        assert max_per_second(on_wire) >= rate * 0.9     # and the two shared it at full speed
        # both ran at once (neither went first and alone)
        firsts = [min(s.at for s in server.submits if s.destination in nums)
                  for nums in ({msisdn(i) for i in range(180)}, {msisdn(1000 + i) for i in range(180)})]
        assert abs(firsts[0] - firsts[1]) < 2.0


def test_throttling_peer_rate_held_nothing_lost(sqlite_engine):
    """Show: an SMSC that throttles below the contract: the sender slows down, resends, loses nothing."""
    with DevSmsc(behaviour=Behaviour(throttle_rate=40)) as server:
        conn = account(server, rate=200, window=20)
        make_contacts(sqlite_engine, 200)
        result = send_batch(sqlite_engine, CYCLE, COUNTY, settings(conn))
        stats = server.stats()
    assert result.submitted == 200 and result.rejected == 0 and result.in_doubt == 0
    assert stats["accepted"] == 200
    assert 0 < stats["throttled"] == result.throttled
    # it slowed down instead of hammering: fewer refusals than messages
    assert stats["throttled"] < 200
    counts = per_number(server)
    assert len(counts) == 200 and set(counts.values()) == {1}


def test_long_chinese_text_arrives_as_one_concatenated_message(engine, smsc):
    """Show: a 150-character Chinese SMS reaches the handset as one message of three parts."""
    from qz_outbound.sms.render import render_sms
    from qz_outbound.sms.settings import load_sms_config

    context = dict(county_name="晋江市", product_name="", speed_mbps=1000, months_free=3, hall_name="晋江青阳营业厅")
    base = len(render_sms("demo_broadband_bundle", context, load_sms_config().message).text)
    context["product_name"] = "全家享融合套餐" + "含" * (150 - base - 7)
    expected = render_sms("demo_broadband_bundle", context, load_sms_config().message)
    assert len(expected.text) == 150
    make_contacts(engine, 3, template="demo_broadband_bundle", context=context)
    conn = account(smsc)
    with receiver(engine, conn):
        send_batch(engine, CYCLE, COUNTY, settings(conn))
        assert wait_until(lambda: states(engine).get("delivered", 0) == 3)
    msgs = smsc.handset_messages()
    assert len(msgs) == 3
    for m in msgs:
        assert m["complete"] and m["parts"] == 3 and m["duplicates"] == 0
        assert m["text"] == expected.text
    assert len(smsc.accepted()) == 9


def test_render_error_stops_that_customer_only(sqlite_engine, smsc):
    ids = make_contacts(sqlite_engine, 5, queue=False)
    result = queue_messages(sqlite_engine, [SmsToQueue(i, "demo_flow_pack", FLOW_PACK) for i in ids[:4]]
                            + [SmsToQueue(ids[4], "demo_flow_pack", {"product_name": "流量包"})])
    assert (result.queued, result.failed) == (4, 1)
    send_batch(sqlite_engine, CYCLE, COUNTY, settings(account(smsc)))
    assert msisdn(4) not in per_number(smsc) and len(per_number(smsc)) == 4
    with sqlite_engine.connect() as c:
        row = c.execute(sa.select(sms_outbox.c.state, sms_outbox.c.reason, sms_outbox.c.text)
                        .where(sms_outbox.c.contact_id == ids[4])).one()
    assert row.state == "failed" and row.text is None
    assert "render_error" in row.reason and "price_yuan" in row.reason


def test_one_sender_per_county(sqlite_engine, smsc):
    from qz_outbound.sms import runs

    make_contacts(sqlite_engine, 5)
    held = runs.start_run(sqlite_engine, COUNTY, CYCLE, settings(account(smsc)).state_path())
    with pytest.raises(SenderBusy):
        send_batch(sqlite_engine, CYCLE, COUNTY, settings(account(smsc)))
    runs.finish_run(sqlite_engine, held, "done")
    assert send_batch(sqlite_engine, CYCLE, COUNTY, settings(account(smsc))).submitted == 5


def test_no_customer_numbers_or_texts_in_logs(sqlite_engine, smsc, caplog):
    conn = account(smsc, window=5)
    make_contacts(sqlite_engine, 20)
    smsc.configure(reject_numbers=[msisdn(4)], drop_after=10)
    opt_out(sqlite_engine, msisdn(7))
    with caplog.at_level("DEBUG"):
        with receiver(sqlite_engine, conn):
            send_batch(sqlite_engine, CYCLE, COUNTY, settings(conn))
            smsc.inject_mo(msisdn(1), "好", system_id="qz").result(20)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "****" in text or "in doubt" in text          # the run did log something useful
    for i in range(20):
        assert msisdn(i) not in text
    assert "泉州移动" not in text and "流量" not in text
