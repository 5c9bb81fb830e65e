"""Benchmark (not a test): loading 1 million delivery receipts into the contact history on PostgreSQL.

Sets up a database of its own (``qz_bench_rcpt`` on the cluster of scripts/services/postgres.sh)
with N submitted SMS (mkt_contact, sms_outbox, sms_part with SMSC message ids), stores N receipts
in ``sms_inbound`` the way the receiver does (half of them quoting the id in the other base), then
times the receiver's apply step (``qz_outbound.sms.inbound.process_pending``, batches of
``--batch``) until every receipt is applied, and checks that every contact is delivered.

    .venv/bin/python benchmarks/bench_receipts.py [--receipts 1000000] [--batch 20000] [--steps]

Results are appended to benchmarks/results/receipts.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import logging  # noqa: E402

from qz_outbound import clock, db, schema  # noqa: E402
from qz_outbound.sms.inbound import pending_count, process_pending  # noqa: E402
from qz_outbound.sms.outbox import message_id_keys  # noqa: E402

D = dt.date(2026, 11, 23)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--receipts", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2, help="concurrent apply transactions (the receiver's "
                                                               "receiver.apply_workers)")
    ap.add_argument("--steps", action="store_true", help="log each SQL step's time (receipt_apply.sql)")
    args = ap.parse_args()
    if args.steps:
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger("qz_outbound.sms.inbound").setLevel(logging.DEBUG)
    n = args.receipts
    url = subprocess.run([str(ROOT / "scripts/services/postgres.sh")], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    admin = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("drop database if exists qz_bench_rcpt with (force)")
        conn.exec_driver_sql("create database qz_bench_rcpt")
    engine = db.make_engine(sa.make_url(url).set(database="qz_bench_rcpt"))
    schema.ensure_schema(engine)
    clock.set_now(dt.datetime(2026, 11, 23, 12, 0))
    now = clock.now()

    t0 = time.monotonic()
    i = pd.RangeIndex(n)
    msisdn = (13900000000 + i * 7).astype(str)
    cid = "C20261123-" + pd.Series(i).astype(str).str.zfill(11)
    mid = pd.Series(i + 10_000_000).map(lambda v: f"{v:x}")          # the SMSC's ids, hexadecimal
    keys = mid.map(message_id_keys)
    with engine.begin() as conn:
        db.bulk_insert(conn, "mkt_contact", ["contact_id", "cycle_date", "msisdn", "county_code", "campaign_code",
                                             "channel", "status", "created_at", "sent_at"],
                       pd.DataFrame({"contact_id": cid, "cycle_date": D, "msisdn": msisdn, "county_code": "350582",
                                     "campaign_code": "1114-007", "channel": "sms", "status": "submitted",
                                     "created_at": now, "sent_at": now}))
        db.bulk_insert(conn, "sms_outbox", ["contact_id", "cycle_date", "county_code", "msisdn", "campaign_code",
                                            "template", "text", "parts", "state", "queued_at", "submitted_at"],
                       pd.DataFrame({"contact_id": cid, "cycle_date": D, "county_code": "350582", "msisdn": msisdn,
                                     "campaign_code": "1114-007", "template": "1114-007-a", "text": "x", "parts": 1,
                                     "state": "submitted", "queued_at": now, "submitted_at": now}))
        db.bulk_insert(conn, "sms_part", ["contact_id", "part_no", "esm_class", "data_coding", "payload", "state",
                                          "message_id", "mid_dec", "mid_hex", "attempts", "submitted_at",
                                          "accepted_at"],
                       pd.DataFrame({"contact_id": cid, "part_no": 1, "esm_class": 0, "data_coding": 8,
                                     "payload": "\\x00", "state": "accepted", "message_id": mid,
                                     "mid_dec": keys.str[0], "mid_hex": keys.str[1], "attempts": 1,
                                     "submitted_at": now, "accepted_at": now}))
        # the receipts as the receiver stores them; every other one quotes the id in decimal
        quoted = pd.Series([str(int(m, 16)) if k % 2 else m for k, m in enumerate(mid)])
        body = "id:" + quoted + " sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:DELIVRD err:000"
        db.bulk_insert(conn, "sms_inbound", ["received_at", "kind", "source_addr", "dest_addr", "esm_class",
                                             "data_coding", "receipted_id", "receipt_stat", "body"],
                       pd.DataFrame({"received_at": now, "kind": "receipt", "source_addr": msisdn,
                                     "dest_addr": "10658", "esm_class": 4, "data_coding": 0, "receipted_id": quoted,
                                     "receipt_stat": "DELIVRD", "body": body}))
    with engine.begin() as conn:
        conn.exec_driver_sql("analyze")
    setup = time.monotonic() - t0
    print(f"set up {n:,} submitted SMS and {n:,} stored receipts in {setup:.0f} s", flush=True)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    after, matched = 0, 0
    while True:
        counts, after, _still = process_pending(engine, after_id=after, limit=args.batch,
                                                workers=args.workers)
        if not counts:
            break
        matched += counts.get("receipt_matched", 0)
    seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with engine.connect() as conn:
        delivered = conn.scalar(sa.text("select count(*) from mkt_contact where status = 'delivered' "
                                        "and delivered_at is not null"))
    left = pending_count(engine)
    line = (f"| {dt.datetime.now():%Y-%m-%d %H:%M} | {n:,} | {args.batch:,} × {args.workers} | {seconds:.1f} s | "
            f"{n / seconds:,.0f}/s | {matched:,} | {delivered:,} | {left} | {peak / 1024:.0f} MB "
            f"(before: {rss0 / 1024:.0f} MB) |")
    out = ROOT / "benchmarks" / "results" / "receipts.md"
    if not out.exists():
        out.write_text("# Loading delivery receipts into the contact history (PostgreSQL)\n\n"
                       "`.venv/bin/python benchmarks/bench_receipts.py` — receipts already stored by the receiver, "
                       "applied by `process_pending` (match by id in either base, part → message → mkt_contact).\n\n"
                       "| when | receipts | batch | apply time | rate | matched | contacts delivered | left | "
                       "peak RSS |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n", encoding="utf-8")
    with out.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    print(line)
    with admin.connect() as conn:
        engine.dispose()
        conn.exec_driver_sql("drop database if exists qz_bench_rcpt with (force)")
    return 0 if matched == n == delivered and not left else 1


if __name__ == "__main__":
    sys.exit(main())
