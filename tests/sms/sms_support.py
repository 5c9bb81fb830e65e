"""Helpers for the SMS tests (fixtures are in conftest.py)."""

from __future__ import annotations

from qz_outbound.sms.limiter import max_in_any_second
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from qz_outbound import clock
from qz_outbound.schema import mkt_contact
from qz_outbound.sms import SmsToQueue, queue_messages, run_receiver, settings_from_connection
from qz_outbound.dev.smsc import DevSmsc
from qz_outbound.sms.schema import sms_outbox, sms_part

ROOT = Path(__file__).resolve().parents[2]
CYCLE = dt.date(2026, 11, 23)
COUNTY = "350582"
FLOW_PACK = dict(product_name="5G畅享流量包", price_yuan=30, data_gb=20)


def account(smsc: DevSmsc, system_id: str = "qz", **extra) -> dict:
    """The ``smsc`` connection (Airflow JSON form) for a development SMSC."""
    values = dict(source_addr="10658", rate=1000, window=20, response_timeout=5, reconnect_initial=0.1,
                  reconnect_max=0.5, reconnect_give_up=10)
    values.update(extra)
    return dict(host="127.0.0.1", port=smsc.port, login=system_id, password="pw", extra=values)


def settings(conn: dict, **overrides):
    return settings_from_connection(conn, **overrides)


def msisdn(i: int) -> str:
    return f"139{i:08d}"


def make_contacts(engine, n: int, *, county: str = COUNTY, start: int = 0, template: str = "demo_flow_pack",
                  context: dict | None = None, cycle: dt.date = CYCLE, queue: bool = True) -> list[str]:
    """n SMS contacts (mkt_contact rows, channel sms) queued in the outbox; returns their ids."""
    now = clock.now()
    rows = [dict(contact_id=f"c{county}{start + i:06d}", cycle_date=cycle, msisdn=msisdn(start + i),
                 county_code=county, campaign_code="DEMO", channel="sms", status="planned", created_at=now)
            for i in range(n)]
    with engine.begin() as conn:
        conn.execute(mkt_contact.insert(), rows)
    if queue:
        queue_messages(engine, [SmsToQueue(r["contact_id"], template, context or FLOW_PACK) for r in rows])
    return [r["contact_id"] for r in rows]


def states(engine, county: str | None = None) -> dict[str, int]:
    q = sa.select(sms_outbox.c.state, sa.func.count()).group_by(sms_outbox.c.state)
    if county:
        q = q.where(sms_outbox.c.county_code == county)
    with engine.connect() as conn:
        return dict(conn.execute(q).all())


def part_states(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(sms_part.c.state, sa.func.count()).group_by(sms_part.c.state)).all())


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    """For database state, which has no event to wait on: poll, bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def per_number(smsc: DevSmsc) -> dict[str, int]:
    """Messages each number received, as its handset shows them (parts joined)."""
    counts: dict[str, int] = {}
    for m in smsc.handset_messages():
        counts[m["msisdn"]] = counts.get(m["msisdn"], 0) + 1
    return counts


@contextlib.contextmanager
def receiver(engine, conn: dict, in_doubt_grace: float = 0.3):
    """The receiver service in a thread, bound before the block runs."""
    stop = threading.Event()
    bound = threading.Event()
    t = threading.Thread(target=run_receiver, args=(engine, settings(conn)),
                         kwargs=dict(stop=stop, on_bound=bound.set, in_doubt_grace=in_doubt_grace), daemon=True)
    t.start()
    assert bound.wait(15), "receiver did not bind"
    try:
        yield
    finally:
        stop.set()
        t.join(15)


def db_url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """``python -m qz_outbound.sms ...`` as a child process."""
    return subprocess.Popen([sys.executable, "-m", "qz_outbound.sms", "--log-level", "WARNING", *args],
                            cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def sender_process(engine, conn: dict, county: str = COUNTY, **env) -> subprocess.Popen:
    return cli("send", "--db", db_url(engine), "--smsc", json.dumps(conn), "--cycle-date", CYCLE.isoformat(),
               "--county", county, env=env)


def finished(proc: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


class WireCapture:
    """submit_sm PDUs as they cross loopback to ``port``, with kernel timestamps (tshark)."""

    def __init__(self, port: int):
        self.proc = subprocess.Popen(
            ["tshark", "-i", "lo", "-l", "-f", f"tcp dst port {port}", "-d", f"tcp.port=={port},smpp",
             "-Y", "smpp.command_id == 0x00000004", "-T", "fields", "-E", "occurrence=a",
             "-e", "frame.time_epoch", "-e", "smpp.command_id"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while True:   # tshark says so on stderr once it listens
            line = self.proc.stderr.readline()
            if not line or "Capturing on" in line:
                break
        time.sleep(0.3)

    def stop(self) -> list[float]:
        time.sleep(0.5)
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=60)
        times: list[float] = []
        for line in out.splitlines():
            stamp, _, commands = line.partition("\t")
            times += [float(stamp)] * sum(1 for c in commands.split(",") if c and int(c, 0) == 4)
        return times


max_per_second = max_in_any_second  # one definition: qz_outbound.sms.limiter
