"""After an SMSC crash mid-send, HQ sees how many messages are in doubt (never re-sent).

The development SMSC cuts the link in the middle of a county's send; the parts in flight are in
doubt. The county's send step reports the count, the alert names it (no customer numbers), the
portal's HQ progress table (served over HTTP on 127.0.0.1) shows it for the county, and the cycle
summary prints it. Nobody got an SMS twice.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request

import uvicorn

from qz_outbound import clock, counties, summary
from qz_outbound.sms import send_step
from qz_outbound.portal.web import create_app
from qz_outbound.dev.smsc import Behaviour, DevSmsc
from qz_outbound.sms.outbox import outbox_counts_by_county

from sms_support import COUNTY, CYCLE, account, make_contacts, per_number, receiver, settings, states, wait_until


class _Hq:
    role = None

    def get_name(self) -> str:
        return "hq"


def _serve(app) -> tuple[uvicorn.Server, threading.Thread, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "portal did not start"
    return server, t, port


def test_an_smsc_crash_mid_send_shows_hq_the_in_doubt_count(engine, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(tmp_path / "out"))
    other = next(c for c in counties.county_names() if c != COUNTY)
    make_contacts(engine, 20, county=other, start=1000)          # a county that sends cleanly
    with DevSmsc(behaviour=Behaviour()) as server:
        clean = send_step.send_county(engine, CYCLE, other, settings(account(server)))
    assert clean.done and clean.counts["in_doubt_messages"] == 0
    assert send_step.in_doubt_alert(CYCLE, other, 0) is None

    with DevSmsc(behaviour=Behaviour(drop_after=120)) as server:     # the SMSC crashes mid-send
        conn = account(server, window=10)
        make_contacts(engine, 300)
        with receiver(engine, conn):
            step = send_step.send_county(engine, CYCLE, COUNTY, settings(conn))
            took = len(server.accepted())
            assert wait_until(lambda: states(engine, COUNTY).get("delivered", 0) == took, 20), states(engine)
        assert set(per_number(server).values()) == {1}               # nobody twice
    in_doubt = states(engine, COUNTY).get("in_doubt", 0)
    assert step.done and step.counts["reconnects"] >= 1
    # at the end of the send, every message in the air when the link dropped was in doubt (at most one
    # window); those the SMSC had taken were settled since by their handsets' receipts; the rest never
    # reached it and stay in doubt, never re-sent
    assert 1 <= in_doubt == 300 - took <= step.counts["in_doubt_messages"] <= 10

    # the alert (what send_sms raises with the step's count): the count, the county, the cycle; no number
    n = step.counts["in_doubt_messages"]
    alert = send_step.in_doubt_alert(CYCLE, COUNTY, n, run_id="r1", map_index=0)
    assert alert.kind == "sms_in_doubt"
    assert f"SMS in doubt: {n} messages of {counties.label(COUNTY)}, cycle {CYCLE}" in alert.text()
    assert "不会重发" in alert.summary and not re.search(r"1[3-9]\d{9}", alert.text())

    # the portal's HQ progress table, over HTTP
    assert outbox_counts_by_county(engine, CYCLE)[COUNTY]["in_doubt"] == in_doubt
    server, thread, port = _serve(create_app(lambda: _Hq(), lambda: engine))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?cycle={CYCLE}", timeout=30) as resp:
            page = resp.read().decode()
    finally:
        server.should_exit = True
        thread.join(10)
    rows = {m.group(1): m.group(2) for m in re.finditer(r"<tr><td>(\d{6}) [^<]*</td>(.*?)</tr>", page, re.S)}
    sms = {county: re.findall(r"<td class=\"num[^\"]*\"[^>]*>([^<]*)</td>", row)[-3:] for county, row in rows.items()}
    assert len(rows) == len(counties.county_names())
    assert sms[COUNTY] == [str(took), str(took), str(in_doubt)]      # sent, delivered, in doubt
    assert sms[other] == ["20", "0", "0"]                            # sent (no receiver ran there), none in doubt
    assert f'data-in-doubt="{in_doubt}"' in rows[COUNTY]
    assert f"短信状态不明 {in_doubt} 条" in page and "不会重发" in page

    # the cycle summary
    _print_outbox_summary(engine)
    out = capsys.readouterr().out
    assert f"SMS in doubt: {in_doubt} messages" in out


def _print_outbox_summary(engine) -> None:
    from qz_outbound import schema

    with engine.begin() as conn:      # print_summary speaks of a recorded cycle: record a stage
        conn.execute(schema.mkt_cycle_stage.insert().values(
            cycle_date=CYCLE, stage="publish:" + COUNTY, rows=300, seconds=0.1,
            finished_at=clock.now()))
    summary.print_summary(engine, CYCLE)
