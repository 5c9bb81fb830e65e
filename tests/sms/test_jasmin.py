"""Interoperability with an SMPP server the project did not write: Jasmin 0.11.0.

Our sender and receiver bind to Jasmin on 127.0.0.1; Jasmin routes to the
development SMSC as its upstream connector and brings receipts and replies back.
"""

from __future__ import annotations

import sqlalchemy as sa

from qz_outbound.schema import mkt_contact, mkt_opt_out
from qz_outbound.sms import send_batch
from qz_outbound.dev.smsc import Behaviour, DevSmsc
from qz_outbound.dev.jasmin import provision, remove_connectors

from sms_support import COUNTY, CYCLE, make_contacts, msisdn, per_number, receiver, settings, states, wait_until

LONG = dict(county_name="晋江市", product_name="千兆融合套餐", speed_mbps=1000, months_free=3, hall_name="晋江青阳营业厅")


def test_submit_receipt_and_reply_through_jasmin(engine, jasmin, request):
    # receipts a moment after the accept, as a real network gives them (Jasmin files
    # its receipt lookup only after the upstream's submit_sm_resp)
    with DevSmsc(behaviour=Behaviour(receipt_delay=0.2)) as upstream:
        provision(jasmin, upstream_host="127.0.0.1", upstream_port=upstream.port)
        request.addfinalizer(lambda: remove_connectors(jasmin))
        conn = dict(host="127.0.0.1", port=jasmin.smpp, login="qzsms", password="qzpw",
                    extra=dict(source_addr="10658", rate=100, window=10, response_timeout=10))
        make_contacts(engine, 10)
        make_contacts(engine, 5, start=100, template="demo_broadband_bundle", context=LONG)
        with receiver(engine, conn):
            result = send_batch(engine, CYCLE, COUNTY, settings(conn))
            assert result.submitted == 15
            # submit: Jasmin forwards every part upstream, the long ones reassemble
            assert upstream.wait_for(lambda s: len(s.accepted()) == 20, 60)
            msgs = upstream.handset_messages()
            assert len(msgs) == 15 and all(m["complete"] for m in msgs)
            assert set(per_number(upstream).values()) == {1}
            # receipts come back through Jasmin (with Jasmin's own message ids) and match
            assert wait_until(lambda: states(engine).get("delivered", 0) == 15, 60), states(engine)
            # a reply goes customer -> upstream SMSC -> Jasmin MO route -> our receiver
            upstream.inject_mo(msisdn(3), "TD", system_id="jasmin").result(60)
            upstream.inject_mo(msisdn(4), "1", system_id="jasmin").result(60)
            assert wait_until(lambda: _opted(engine) == [msisdn(3)], 20)
    with engine.connect() as c:
        responses = dict(c.execute(sa.select(mkt_contact.c.msisdn, mkt_contact.c.response)
                                   .where(mkt_contact.c.response.is_not(None))).all())
        jasmin_ids = c.scalars(sa.text("select message_id from sms_part")).all()
    assert responses == {msisdn(3): "opt_out", msisdn(4): "accept"}
    assert all(len(i) == 36 for i in jasmin_ids)    # Jasmin's UUIDs, not the upstream's ids


def _opted(engine):
    with engine.connect() as c:
        return list(c.scalars(sa.select(mkt_opt_out.c.msisdn)))
