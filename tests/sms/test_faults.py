"""The link under faults: drops, slow answers, silence, an SMSC that is not there yet."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from smpplib import client as smpp_client
from smpplib import smpp

from qz_outbound.sms import send_batch
from qz_outbound.dev.smsc import Behaviour, DevSmsc
from qz_outbound.sms.link import LinkDown, SmppLink

from sms_support import COUNTY, CYCLE, account, make_contacts, per_number, receiver, settings, states, wait_until


def test_dropped_connection_reconnects_and_never_resends(engine):
    """The SMSC cuts the TCP connection mid-batch: the sender reconnects; what was in flight is
    in doubt, never resent, and settled by its receipt if the SMSC had taken it."""
    with DevSmsc(behaviour=Behaviour(drop_after=120)) as server:
        conn = account(server, window=10)
        make_contacts(engine, 300)
        with receiver(engine, conn):
            result = send_batch(engine, CYCLE, COUNTY, settings(conn))
            assert result.reconnects >= 1
            counts = per_number(server)
            assert set(counts.values()) == {1}                  # nobody twice
            took = len(server.accepted())
            # every message the SMSC took ends delivered once its receipt is in
            assert wait_until(lambda: states(engine).get("delivered", 0) == took, 20), states(engine)
        final = states(engine)
    assert final.get("in_doubt", 0) == 300 - took <= 10       # at most one window was in the air
    assert result.in_doubt >= 1
    assert len(server.binds) >= 3                              # sender twice, receiver once


def test_slow_answers_never_exceed_the_window(sqlite_engine):
    with DevSmsc(behaviour=Behaviour(response_delay=0.05)) as server:
        conn = account(server, window=8)
        make_contacts(sqlite_engine, 80)
        t0 = time.monotonic()
        result = send_batch(sqlite_engine, CYCLE, COUNTY, settings(conn))
        elapsed = time.monotonic() - t0
        assert result.submitted == 80
        assert server.stats()["max_unanswered"] == 8         # used the window, never more
        assert elapsed >= 80 / 8 * 0.05 * 0.9                # so the delay really held it back


def test_enquire_link_keeps_a_quiet_bind_alive(smsc):
    link = SmppLink(settings(account(smsc, enquire_link_interval=0.2)))
    link.connect()
    try:
        deadline = time.monotonic() + 1.5
        sent = 0
        while time.monotonic() < deadline:
            before = link.last_sent
            link.keep_alive()
            sent += link.last_sent != before
            for pdu in link.read(timeout=0.05):
                assert link.handle_control(pdu)          # only enquire_link_resp comes back
        assert sent >= 3 and link.connected              # each one answered, so the next one went
    finally:
        link.close(unbind=True)


def test_an_unanswered_enquire_link_drops_the_bind():
    """A peer that binds and then goes silent is noticed (and the sender would reconnect)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def silent_peer():
        conn, _ = srv.accept()
        data = conn.recv(1024)
        seq = int.from_bytes(data[12:16], "big")
        resp = smpp.make_pdu("bind_transmitter_resp", client=smpp_client.Client("127.0.0.1", 1), system_id="X")
        resp.sequence = seq
        conn.sendall(resp.generate())
        time.sleep(3)
        conn.close()

    t = threading.Thread(target=silent_peer, daemon=True)
    t.start()
    conn = dict(host="127.0.0.1", port=port, login="qz", password="pw",
                extra=dict(source_addr="10658", rate=10, enquire_link_interval=0.1, response_timeout=0.3))
    link = SmppLink(settings(conn))
    link.connect()
    with pytest.raises(LinkDown, match="enquire_link unanswered"):
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            link.keep_alive()
            list(link.read(timeout=0.05))
    srv.close()


def test_reconnect_with_backoff_until_the_smsc_is_up():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = dict(host="127.0.0.1", port=port, login="qz", password="pw",
                extra=dict(source_addr="10658", rate=10, reconnect_initial=0.1, reconnect_max=0.4))
    link = SmppLink(settings(conn))
    with pytest.raises(LinkDown, match="could not bind"):
        link.connect_with_backoff(give_up=0.5)
    server = DevSmsc(port=port, fault_relay=False)
    starter = threading.Timer(0.6, server.start)
    starter.start()
    try:
        t0 = time.monotonic()
        link.connect_with_backoff(give_up=10)
        assert link.connected and time.monotonic() - t0 >= 0.5
        link.close(unbind=True)
    finally:
        starter.join()
        server.stop()
