"""A message's state follows from its parts' states by one ordered table
(qz_outbound.sms.outbox.MESSAGE_STATE_RULES): derive_state in the sender, and the receipts' set
statement, checked here through what a receipt does to the outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import sqlalchemy as sa

from qz_outbound import clock
from qz_outbound.sms.inbound import Inbound, store_and_apply
from qz_outbound.sms.outbox import derive_state, message_id_keys
from qz_outbound.sms.schema import sms_outbox, sms_part

PART_STATES = ["pending", "accepted", "delivered", "undelivered", "rejected", "skipped", "in_doubt"]
STATS = {"ENROUTE": None, "DELIVRD": "delivered", "UNDELIV": "undelivered"}   # what a receipt makes of its part
NOW = dt.datetime(2026, 11, 23, 10, tzinfo=clock.SHANGHAI)
HANDSET = "13900000000"


def test_derive_state_in_order():
    assert derive_state([]) == "queued"
    assert derive_state(["accepted", "pending"]) == "queued"
    assert derive_state(["skipped", "skipped"]) == "skipped"
    assert derive_state(["rejected", "in_doubt"]) == "rejected"
    assert derive_state(["accepted", "in_doubt"]) == "in_doubt"
    assert derive_state(["delivered"]) == "delivered"
    assert derive_state(["undelivered", "delivered"]) == "undelivered"
    assert derive_state(["delivered", "skipped"]) == "submitted"


def test_a_receipt_leaves_the_message_in_the_state_derive_state_gives(engine):
    """Every pair of part states, and each kind of receipt on the first part: the receipt moves the
    first part (or not: ENROUTE), and the message ends in derive_state of its parts — unless that
    is queued (a part still to send): then the sender's state stays."""
    cases = list(itertools.product(PART_STATES, PART_STATES, STATS))
    with engine.begin() as conn:
        for k, (first, second, _) in enumerate(cases):
            cid, mid = f"M{k:04d}", f"R{k:04d}"
            conn.execute(sms_outbox.insert().values(
                contact_id=cid, cycle_date=NOW.date(), county_code="350582", msisdn=HANDSET, campaign_code="1141-001",
                template="t", text="x", parts=2, state="submitted", queued_at=NOW, submitted_at=NOW))
            dec, hexv = message_id_keys(mid)
            conn.execute(sms_part.insert(), [
                dict(contact_id=cid, part_no=1, esm_class=0x40, data_coding=8, payload=b"x", state=first,
                     message_id=mid, mid_dec=dec, mid_hex=hexv, attempts=1, submitted_at=NOW, accepted_at=NOW),
                dict(contact_id=cid, part_no=2, esm_class=0x40, data_coding=8, payload=b"x", state=second,
                     message_id=None, mid_dec=None, mid_hex=None, attempts=1, submitted_at=None,
                     accepted_at=None)])
    clock.set_now(NOW)
    try:
        with engine.begin() as conn:
            counts = store_and_apply(conn, [
                Inbound("receipt", HANDSET, "10658", 4, 0, f"id:R{k:04d} stat:{stat}", f"R{k:04d}", stat)
                for k, (_, _, stat) in enumerate(cases)], apply_receipts=True)
    finally:
        clock.set_now(None)
    assert counts["receipt_matched"] == len(cases)
    with engine.connect() as conn:
        got = dict(conn.execute(sa.select(sms_outbox.c.contact_id, sms_outbox.c.state)).all())
    moved = 0
    for k, (first, second, stat) in enumerate(cases):
        expected = derive_state([STATS[stat] or first, second])
        if expected == "queued":
            expected = "submitted"
        moved += expected != "submitted"
        assert got[f"M{k:04d}"] == expected, (first, second, stat)
    assert moved > len(cases) // 2          # most cases really move the message
