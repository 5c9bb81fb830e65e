"""SMPP sending benchmark (not a test): one run, this machine, results printed as text.

1. windowed: ``send_batch`` (window 50, TCP_NODELAY, outbox + journal, rate limit
   set far above reach) sends N messages to the development SMSC with receipts on;
   the receiver service runs in its own process and must match every receipt;
2. plain: a naive synchronous smpplib loop (one submit_sm, wait for its
   submit_sm_resp, next; Nagle left on, as smpplib does by default) against the
   same SMSC with receipts on, receipts acknowledged as they come;
3. contracted: ``send_batch`` at rate 200/s for 30 s; the SMSC's arrival times
   give the measured rate and the busiest one-second window.

The SMSC and the receiver run as separate processes (``python -m
qz_outbound.dev.smsc serve`` / ``receive``), as they would be deployed.

    .venv/bin/python benchmarks/bench_smpp.py [--messages 20000] [--db URL] [--out FILE]
"""

from __future__ import annotations

from qz_outbound.sms.limiter import max_in_any_second
import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from qz_outbound import clock  # noqa: E402
from qz_outbound.db import make_engine  # noqa: E402
from qz_outbound.schema import ensure_schema, metadata, mkt_contact  # noqa: E402
from qz_outbound.sms import SmsToQueue, queue_messages, send_batch, settings_from_connection  # noqa: E402
from qz_outbound.sms.schema import sms_outbox  # noqa: E402

PY = sys.executable
PY_SMSC = [PY]
CYCLE = dt.date(2026, 11, 23)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str, body: dict | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def start_smsc(extra: list[str]) -> tuple[subprocess.Popen, int, int]:
    port, hport = free_port(), free_port()
    proc = subprocess.Popen([*PY_SMSC, *(["-m", "qz_outbound.dev.smsc"] if PY_SMSC == [PY] else []), "serve", "--port", str(port),
                             "--http-port", str(hport), "--no-relay", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    json.loads(proc.stdout.readline())  # ready line
    return proc, port, hport


def make_batch(engine, county: str, n: int, offset: int = 0) -> None:
    now = clock.now()
    rows = [dict(contact_id=f"b{county}{i:07d}", cycle_date=CYCLE, msisdn=f"13{offset + i:09d}", county_code=county,
                 campaign_code="DEMO", channel="sms", status="planned", created_at=now) for i in range(n)]
    with engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(mkt_contact.insert(), rows[i:i + 5000])
    queue_messages(engine, [SmsToQueue(r["contact_id"], "demo_flow_pack",
                                       dict(product_name="5G畅享流量包", price_yuan=30, data_gb=20)) for r in rows])


def windowed(engine, db_url: str, n: int, state_dir: str, window: int, receipt_delay: float,
             response_delay: float = 0.0) -> dict:
    smsc, port, hport = start_smsc(["--receipt-delay", str(receipt_delay), "--response-delay", str(response_delay)])
    conn = dict(host="127.0.0.1", port=port, login="bench", password="x",
                extra=dict(source_addr="10658", rate=100000, window=window))
    env = dict(os.environ, QZ_SMS_STATE_DIR=state_dir, QZ_FAKE_NOW="2026-11-23T10:00:00")
    recv = subprocess.Popen([PY, "-m", "qz_outbound.sms", "--log-level", "WARNING", "receive", "--db", db_url,
                             "--smsc", json.dumps(conn)], env=env, stdout=subprocess.PIPE, text=True)
    assert recv.stdout.readline().strip() == "receiver bound"
    try:
        make_batch(engine, "350582", n)
        t0 = time.perf_counter()
        result = send_batch(engine, CYCLE, "350582", settings_from_connection(conn))
        elapsed = time.perf_counter() - t0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as c:
                delivered = c.scalar(sa.select(sa.func.count()).select_from(sms_outbox)
                                     .where(sms_outbox.c.county_code == "350582", sms_outbox.c.state == "delivered"))
            if delivered >= n:
                break
            time.sleep(0.5)
        all_receipts = time.perf_counter() - t0
        stats = http(hport, "/stats")
        arrivals = sorted(http(hport, "/arrivals"))
    finally:
        recv.terminate()
        recv.wait(30)
        smsc.terminate()
        smsc.wait(30)
    flowing = [t for t in arrivals if t >= arrivals[0] + receipt_delay]
    steady = (len(flowing) - 1) / (flowing[-1] - flowing[0])
    return dict(window=window, messages=n, submitted=result.submitted, seconds=round(elapsed, 3),
                rate=round(result.submitted / elapsed, 1), rate_while_receipts_flow=round(steady, 1),
                receipts_matched=delivered,
                seconds_until_all_receipts_matched=round(all_receipts, 3),
                smsc_receipts_acked=stats["receipts_acked"])


def plain_loop(n: int, seconds: float, receipt_delay: float, response_delay: float = 0.0) -> dict:
    import smpplib.client

    smsc, port, hport = start_smsc(["--receipt-delay", str(receipt_delay), "--response-delay", str(response_delay)])
    client = smpplib.client.Client("127.0.0.1", port, allow_unknown_opt_params=True)
    acks = {"n": 0}
    first_receipt = {}
    client.set_message_sent_handler(lambda pdu: acks.__setitem__("n", acks["n"] + 1))
    def on_receipt(pdu):   # smpplib acknowledges after this returns (None = ESME_ROK)
        first_receipt.setdefault("at", (time.perf_counter(), acks["n"]))

    client.set_message_received_handler(on_receipt)
    try:
        client.connect()   # Nagle left on: the naive loop
        client.bind_transceiver(system_id="plain", password="x")
        text = "【泉州移动】尊敬的客户，5G畅享流量包每月仅需30元，含20GB国内通用流量，回复1立即办理。回复TD退订"
        payload = text.encode("utf-16-be")
        sent = 0
        t0 = time.perf_counter()
        while sent < n and time.perf_counter() - t0 < seconds:
            client.send_message(source_addr="10658", destination_addr=f"13{sent:09d}", short_message=payload,
                                data_coding=8, registered_delivery=1)
            sent += 1
            while acks["n"] < sent:   # synchronous: wait for this submit's response
                client.read_once()
        elapsed = time.perf_counter() - t0
        end = time.perf_counter()
    finally:
        try:
            client.disconnect()
        except Exception:
            pass
        smsc.terminate()
        smsc.wait(30)
    t_first, n_first = first_receipt.get("at", (end, sent))
    steady = (sent - n_first) / (end - t_first) if end > t_first + 1 else None
    return dict(messages=sent, seconds=round(elapsed, 3), rate=round(sent / elapsed, 1),
                rate_while_receipts_flow=round(steady, 1) if steady else None)


def contracted(engine, rate: float, seconds: float, state_dir: str) -> dict:
    # no throttling at the SMSC: this measures our pacing, as the SMSC sees it and as we wrote it
    smsc, port, hport = start_smsc([])
    conn = dict(host="127.0.0.1", port=port, login="contract", password="x",
                extra=dict(source_addr="10658", rate=rate, window=50))
    n = int(rate * seconds) + int(rate * 2)
    make_batch(engine, "350583", n, offset=500_000_000)
    capture = wire_capture(port)
    t0 = time.perf_counter()
    # what it sends in the measured 30 s: the SMSC stamps arrivals (monotonic), the sender its writes
    writes: list[float] = []
    result = send_batch(engine, CYCLE, "350583", settings_from_connection(conn),
                        on_burst=lambda k: writes.extend([time.monotonic()] * k))
    elapsed = time.perf_counter() - t0
    try:
        stats = http(hport, "/stats")
        times = http(hport, "/arrivals")
    finally:
        smsc.terminate()
        smsc.wait(30)
    on_wire = wire_times(capture)
    times.sort()
    start = times[0]
    in_window = sum(1 for t in times if t < start + seconds)
    measured = in_window / seconds
    return dict(contracted_rate=rate, measured_over_s=seconds, arrived_in_measured_seconds=in_window,
                measured_rate=round(measured, 2), below_contract_pct=round(100 * (rate - measured) / rate, 2),
                max_in_any_1s_window_at_smsc=max_per_second(times),
                max_in_any_1s_window_as_written=max_per_second(writes),
                max_in_any_1s_window_on_the_wire=max_per_second(on_wire) if on_wire else "tshark not installed",
                submit_sm_captured_on_the_wire=len(on_wire) if on_wire else None,
                total_seconds=round(elapsed, 1), submitted=result.submitted, smsc_accepted=stats["accepted"])


def wire_capture(port: int):
    """tshark on loopback, SMPP on `port`: one line per frame carrying submit_sm (kernel timestamps)."""
    import shutil

    if not shutil.which("tshark"):
        return None
    proc = subprocess.Popen(["tshark", "-i", "lo", "-l", "-f", f"tcp dst port {port}", "-d", f"tcp.port=={port},smpp",
                             "-Y", "smpp.command_id == 0x00000004", "-T", "fields", "-E", "occurrence=a",
                             "-e", "frame.time_epoch", "-e", "smpp.command_id"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # tshark says "Capturing on 'Loopback: lo'" on stderr once it listens
    while "Capturing on" not in (proc.stderr.readline() or "Capturing on"):
        pass
    time.sleep(0.5)
    return proc


def wire_times(proc) -> list[float]:
    if proc is None:
        return []
    time.sleep(1.0)
    proc.terminate()
    out, _ = proc.communicate(timeout=60)
    times = []
    for line in out.splitlines():
        stamp, _, commands = line.partition("\t")
        times += [float(stamp)] * sum(1 for c in commands.split(",") if int(c, 0) == 4)
    return times


max_per_second = max_in_any_second  # one definition: qz_outbound.sms.limiter


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--receipt-delay", type=float, default=0.5,
                    help="seconds from accept to receipt at the SMSC, for both runs (handsets take time)")
    ap.add_argument("--response-delay", type=float, default=0.0,
                    help="seconds the SMSC takes to answer each submit_sm, for the windowed and plain runs "
                         "(0: loopback; an operator's SMSC over its link answers in about 10-50 ms)")
    ap.add_argument("--plain-messages", type=int, default=100000)
    ap.add_argument("--plain-seconds", type=float, default=15)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--rate-seconds", type=float, default=30)
    ap.add_argument("--db", help="SQLAlchemy URL of an empty marketing_db (default: a new SQLite file)")
    ap.add_argument("--out", help="also write the results here")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qz_bench_")
    db_url = args.db or f"sqlite:///{tmp}/marketing.db"
    engine = make_engine(db_url)
    metadata.drop_all(engine)
    with engine.begin() as conn:   # and the migration state, so the upgrade creates the tables again
        conn.exec_driver_sql("drop table if exists alembic_version")
    ensure_schema(engine)
    clock.set_now(dt.datetime(2026, 11, 23, 10, 0))
    state_dir = f"{tmp}/state"
    os.environ["QZ_SMS_STATE_DIR"] = state_dir

    res = {"database": engine.dialect.name, "machine": f"{os.cpu_count()} cores"}
    res["receipts"] = f"on: one per part, {args.receipt_delay} s after acceptance, acknowledged by the ESME"
    res["smsc_response_delay_s"] = args.response_delay
    res["windowed"] = windowed(engine, db_url, args.messages, state_dir, args.window, args.receipt_delay,
                               args.response_delay)
    res["plain_sync_smpplib"] = plain_loop(args.plain_messages, args.plain_seconds, args.receipt_delay,
                                           args.response_delay)
    res["speedup_while_receipts_flow"] = round(res["windowed"]["rate_while_receipts_flow"]
                                               / res["plain_sync_smpplib"]["rate_while_receipts_flow"], 1)
    res["contracted"] = contracted(engine, args.rate, args.rate_seconds, state_dir)
    res["command"] = " ".join([".venv/bin/python", "benchmarks/bench_smpp.py", *sys.argv[1:]])
    text = json.dumps(res, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
