"""Customer tags refresh (docs/learning.md "Customer tags"): time to compute the shipped tags of
config/tags.yaml over a synthetic contact history and bring mkt_customer_tag to them, first run
and a re-run of the same cycle (which must change nothing).

    .venv/bin/python benchmarks/bench_customer_tags.py --customers 100000 --contacts 6
    .venv/bin/python benchmarks/bench_customer_tags.py --db postgresql+psycopg://...   # an empty database
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CODES = ["1114-007", "1134-012", "1214-014", "1233-008", "2122-003", "2143-002", "3311-001"]
RESPONSES = [None, None, None, None, "accept", "unrecognised", "refused", "no_answer", "busy", "accepted"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--contacts", type=int, default=6, help="contacts per customer over the last year")
    ap.add_argument("--db", default=None, help="SQLAlchemy URL of an empty database (default: a new SQLite file)")
    args = ap.parse_args()

    from qz_outbound import db, schema, tags

    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp(prefix='qz-tags-bench-')) / 'marketing.db'}"
    engine = db.make_engine(url)
    schema.ensure_schema(engine)
    d = dt.date(2026, 11, 23)
    rng = np.random.default_rng(7)
    n = args.customers * args.contacts
    cust = np.repeat(np.arange(args.customers), args.contacts)
    # one contact per customer per slot of the year (the daily channels allow one row per cycle and customer)
    slot = 364 // args.contacts
    days = 1 + np.tile(np.arange(args.contacts), args.customers) * slot + rng.integers(0, slot, n)
    code = rng.integers(0, len(CODES), n)
    chan = rng.choice(np.array(["sms", "call", "agent", "control"]), n, p=[0.6, 0.25, 0.1, 0.05])
    resp = rng.integers(0, len(RESPONSES), n)
    conv = rng.random(n) < 0.05
    started = time.monotonic()
    rows = []
    for i in range(n):
        cycle = d - dt.timedelta(days=int(days[i]))
        at = dt.datetime.combine(cycle, dt.time(9))
        ch = str(chan[i])
        r = RESPONSES[resp[i]] if ch in ("sms", "call") else None
        rows.append({"contact_id": f"B{i:09d}", "cycle_date": cycle, "msisdn": f"139{cust[i]:08d}",
                     "county_code": "350582", "campaign_code": CODES[code[i]], "channel": ch, "status": "delivered",
                     "created_at": at, "delivered_at": at if ch in ("sms", "agent") else None, "response": r,
                     "responded_at": at if r else None, "converted_at": at if conv[i] and ch != "control" else None})
        if len(rows) == 50_000 or i == n - 1:
            with engine.begin() as conn:
                conn.execute(schema.mkt_contact.insert(), rows)
            rows = []
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("analyze mkt_contact")
    print(f"history: {n} contacts of {args.customers} customers loaded in {time.monotonic() - started:.1f}s "
          f"({engine.dialect.name})")
    for label in ("first refresh", "re-run"):
        t0 = time.monotonic()
        counts = tags.refresh_customer_tags(engine, d)
        print(f"{label}: {time.monotonic() - t0:.2f}s  rows {counts['rows']}  added {counts['added']}  "
              f"kept {counts['kept']}  removed {counts['removed']}  per tag {counts['per_tag']}")
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
