"""Dump what consecutive daily cycles (and the agent channel between them) write, to compare two trees.

A refactoring that must not change behaviour (issue 19: one place per rule) is checked by running
this on the tree before and after and comparing the dumps: segment snapshot, target list, target
audit rows, coverage, contacts, SMS outbox and parts, agent decisions. Several days, so the
frequency rules, the same-campaign gap and the refusal block meet a real history; refusals are
recorded for a fixed share of each day's contacts, and the generated top-ups are decided by the
agent channel at 19:00 (queued, not sent: no SMSC needed). The clock is fixed, so timestamps match.

    .venv/bin/python scripts/dev/cycle_snapshot.py dump var/snapshot/before [--url URL] [--subscribers 20000] [--days 3] [--loose]
    .venv/bin/python scripts/dev/cycle_snapshot.py compare var/snapshot/before var/snapshot/after

Without --url the data mart and marketing_db are two SQLite files in the output directory; with a
PostgreSQL URL both live in that (empty) database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from qz_outbound import campaigns, clock, counties, db, publish, schema, segmentation, targeting  # noqa: E402
from qz_outbound.agent import recommend  # noqa: E402
from qz_outbound.dev.demo_datamart import generate  # noqa: E402

# Columns that differ between identical runs by design (random claim tokens), left out of the dump.
VOLATILE = {"claim_token"}
TABLES = ["mkt_segment_snapshot", "mkt_target", "mkt_target_hold", "mkt_contact", "sms_outbox", "sms_part",
          "mkt_agent_event"]


def _frame(conn, sql: str, params: dict | None = None) -> pd.DataFrame:
    frame = pd.read_sql(sa.text(sql), conn, params=params or {})
    frame = frame.drop(columns=[c for c in frame.columns if c in VOLATILE])
    # one text form for both databases' types (dates, timestamps, decimals, bytes)
    frame = frame.map(lambda v: v.hex() if isinstance(v, (bytes, memoryview)) else v)
    frame = frame.astype(str)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def topups(mart, marketing, day: dt.date) -> None:
    """Top-ups at 18:50 by about 1% of the customers (numbers ending in 11), at the first shop."""
    with marketing.connect() as conn:
        numbers = list(conn.execute(sa.text(
            "select msisdn from mkt_segment_snapshot where cycle_date = :d and msisdn like '%11' order by msisdn"),
            {"d": day.isoformat() if marketing.dialect.name == "sqlite" else day}).scalars())
    with mart.begin() as conn:
        shop = conn.execute(sa.text("select min(agent_id) from agent")).scalar()
        conn.execute(sa.text("insert into recharge_event (event_id, msisdn, agent_id, amount_yuan, event_time) "
                             "values (:e, :m, :a, 50, :t)"),
                     [{"e": f"T{day:%Y%m%d}-{m}", "m": m, "a": shop, "t": f"{day} 18:50:00"} for m in numbers])


def dump(out: Path, url: str | None, subscribers: int, days: int, first: dt.date, loose: bool) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if url:
        mart = marketing = db.make_engine(url)
    else:
        mart = db.make_engine(f"sqlite:///{out / 'datamart.db'}")
        marketing = db.make_engine(f"sqlite:///{out / 'marketing.db'}")
    clock.set_now(dt.datetime.combine(first, dt.time(4)))
    generate(mart, subscribers, first, progress=False)
    schema.ensure_schema(marketing)
    library = campaigns.load_library()
    policy = targeting.load_policy()
    if loose:   # more than one contact a week: the gap and the refusal block decide more offers
        policy = policy.model_copy(update={"contacts_per_window": 3, "contacts_per_month": 8})
    dialect = marketing.dialect.name
    for k in range(days):
        day = first + dt.timedelta(days=k)
        clock.set_now(dt.datetime.combine(day, dt.time(5)))
        segmentation.segment_customers(mart, marketing, day)
        targeting.stage_extracts(mart, marketing, day)
        targeting.build_target_list(marketing, day, library, policy=policy)
        _write(targeting.coverage(marketing, day, policy).astype(str), out / f"coverage_{day}.csv")
        with marketing.connect() as conn:
            _write(_frame(conn, db.render_sql("target_audit.sql", dialect, query="rows", opt_out_cutoff=False),
                          {"d": day.isoformat()}), out / f"target_audit_{day}.csv")
        for county in counties.county_names():
            publish.publish_county(marketing, day, county, library, queue_sms=True)
        with marketing.begin() as conn:
            # a fixed share of the day's contacts refuse: the refusal block has something to do
            conn.execute(sa.text(
                "update mkt_contact set response = 'refused', responded_at = :at "
                "where cycle_date = :d and channel in ('sms', 'call') and msisdn like '%37'"),
                {"d": day.isoformat() if dialect == "sqlite" else day,
                 "at": dt.datetime.combine(day, dt.time(12))})
        clock.set_now(dt.datetime.combine(day, dt.time(19)))
        topups(mart, marketing, day)
        recommend.ingest_events(mart, marketing, policy=policy)
        outcomes = recommend.recommend_pending(marketing, library, policy=policy)
        print(f"{day}: agent decisions {outcomes}")
    with marketing.connect() as conn:
        for table in TABLES:
            _write(_frame(conn, f"select * from {table}"), out / f"{table}.csv")
    clock.set_now(None)
    for path in sorted(out.glob("*.csv")):
        print(f"  {path.name:<36} {sum(1 for _ in path.open(encoding='utf-8')) - 1:>9,} rows")


def compare(a: Path, b: Path) -> int:
    names = sorted({p.name for p in a.glob("*.csv")} | {p.name for p in b.glob("*.csv")})
    differing = 0
    for name in names:
        pa, pb = a / name, b / name
        if not (pa.exists() and pb.exists()):
            print(f"  {name:<36} only in {'the first' if pa.exists() else 'the second'}")
            differing += 1
            continue
        same = filecmp.cmp(pa, pb, shallow=False)
        rows = sum(1 for _ in pa.open(encoding="utf-8")) - 1
        print(f"  {name:<36} {rows:>9,} rows  {'identical' if same else 'DIFFERENT'}")
        differing += not same
    print("identical" if not differing else f"{differing} file(s) differ")
    return 1 if differing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--url", help="an empty PostgreSQL database (default: SQLite files in OUT)")
    d.add_argument("--subscribers", type=int, default=20_000)
    d.add_argument("--days", type=int, default=3)
    d.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2026, 11, 23))
    d.add_argument("--loose", action="store_true",
                   help="3 contacts a week, 8 a month instead of config/contact_policy.yaml's caps")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.out, args.url, args.subscribers, args.days, args.first, args.loose)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
