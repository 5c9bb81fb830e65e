"""Benchmark: the campaign economics step (qz_outbound.economics.write_economics) for one city day
with three after-months of bills, on PostgreSQL (and SQLite).

Builds the inputs directly in one database (data mart and marketing_db the same, as in
bench_targeting.py), in SQL: ``subscriber`` (N customers), ``usage_monthly`` for the three
before-months, the cycle's month and the three after-months (7 × N rows, 2% of them missing), a
cycle's contact history on 2026-08-10 (two thirds of the customers offered, 15 campaigns of the
shipped library, 5% held out, 1 in 50 called) with the SMS outbox and conversions. Then measures, as
the DAG runs it on 2026-12-05: staging the bills (stg_bill), staging the subscriber snapshot, and the
whole step (per cycle and per month, every slice, written to mkt_campaign_economics). Wall time and
peak memory (this process; and the PostgreSQL server processes' RSS summed, which over-states).

    QZ_PG_PORT=5443 .venv/bin/python benchmarks/bench_economics.py --db postgresql --subscribers 800000
    .venv/bin/python benchmarks/bench_economics.py --db sqlite --subscribers 800000

Results are appended to benchmarks/results/economics.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_segmentation import timed  # noqa: E402

from qz_outbound import campaigns, clock, db, economics, migrations  # noqa: E402
from qz_outbound.datamart import schema as dm  # noqa: E402

D = dt.date(2026, 8, 10)
RUN = dt.date(2026, 12, 5)
MONTHS = ["2026-05-01", "2026-06-01", "2026-07-01", "2026-08-01", "2026-09-01", "2026-10-01", "2026-11-01"]
COUNTIES = ["350502", "350503", "350504", "350505", "350581", "350582", "350583", "350521", "350524", "350525",
            "350526"]


def _numbers(pg: bool, n: int) -> str:
    if pg:
        return f"select g as i from generate_series(1, {n}) as g"
    return f"with recursive s(i) as (select 1 union all select i + 1 from s where i < {n}) select i from s"


def generate(engine, n: int, codes: list[str]) -> None:
    pg = engine.dialect.name == "postgresql"
    nums = _numbers(pg, n)
    msisdn = "'139' || lpad(cast(i as text), 8, '0')" if pg else "'139' || substr('00000000' || i, -8)"
    county = "case " + " ".join(f"when i % 11 = {k} then '{c}'" for k, c in enumerate(COUNTIES)) + " end"
    code = "case " + " ".join(f"when i % {len(codes)} = {k} then '{c}'" for k, c in enumerate(codes)) + " end"
    rnd = "random()" if pg else "(abs(random()) / 9223372036854775807.0)"
    ts = "timestamp '2026-08-10 09:00:00+08'" if pg else "'2026-08-10 09:00:00.000000+08:00'"
    conv = "timestamp '2026-08-12 10:00:00+08'" if pg else "'2026-08-12 10:00:00.000000+08:00'"
    date = (lambda s: f"date '{s}'") if pg else (lambda s: f"'{s}'")
    stmts = [
        f"""insert into subscriber (msisdn, customer_name, county_code, open_date, status, market_segment,
                terminal_type, home_agent_id)
            select {msisdn}, null, {county}, {date('2020-01-01')},
                   case when i % 17 = 0 then 'cancelled' when i % 29 = 0 then 'pre_cancel' else 'active' end,
                   case when i % 5 = 0 then 'campus' when i % 7 = 0 then 'migrant' end, '5G', null
            from ({nums}) as n""",
        f"""insert into mkt_contact (contact_id, cycle_date, msisdn, county_code, campaign_code, product_code, variant,
                channel, segment_code, status, created_at, sent_at, delivered_at, response, converted_at)
            select 'B' || cast(i as text), {date(D.isoformat())}, {msisdn}, {county}, {code}, 'P',
                   case when h % 20 = 0 or h % 50 = 1 then null when h % 2 = 0 then 'A' else 'B' end,
                   case when h % 20 = 0 then 'control' when h % 50 = 1 then 'call' else 'sms' end,
                   case when h % 10 < 5 then '41' else '21' end || '-P' ||
                       {"lpad(cast(h % 11 + 1 as text), 2, '0')" if pg else "substr('0' || (h % 11 + 1), -2)"}
                       || 'V05D07T06',
                   case when h % 20 = 0 then 'held_out' else 'delivered' end, {ts},
                   case when h % 20 = 0 then null else {ts} end, case when h % 20 = 0 then null else {ts} end,
                   case when h % 50 = 1 then 'accepted' end,
                   case when h % 23 = 0 then {conv} end
            from (select i, (i * 2654435761) % 1000003 as h from ({nums}) as n0) as n where i % 3 <> 0""",
        f"""insert into sms_outbox (contact_id, cycle_date, county_code, msisdn, campaign_code, template, text, parts,
                state, queued_at, submitted_at, done_at)
            select contact_id, cycle_date, county_code, msisdn, campaign_code, 't', null,
                   case when length(contact_id) % 7 = 0 then 2 else 1 end, 'delivered', created_at, sent_at, sent_at
            from mkt_contact where channel = 'sms'""",
    ]
    for k, month in enumerate(MONTHS):
        after = k >= 4
        stmts.append(f"""insert into usage_monthly (msisdn, month, spend_yuan, voice_minutes, data_mb, sms_count)
            select {msisdn}, {date(month)},
                   round({'cast(' if pg else ''}30 + (i % 120) + 10 * {rnd}
                         + case when {str(after).lower() if pg else int(after)} and i % 3 <> 0 and (i * 2654435761) % 1000003 % 20 <> 0
                                then 4 else 0 end{' as numeric)' if pg else ''}, 2), 0, 0, 0
            from ({nums}) as n where i % 50 <> {k}""")
    with engine.begin() as conn:
        for s in stmts:
            conn.exec_driver_sql(s.replace("%", "%%") if pg else s)   # psycopg: % is its placeholder
    if pg:
        with engine.connect() as conn:
            conn.exec_driver_sql("analyze")
            conn.commit()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["postgresql", "sqlite"], required=True)
    ap.add_argument("--subscribers", type=int, default=6_400_000)
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench"))
    args = ap.parse_args()
    pg = args.db == "postgresql"
    n = args.subscribers
    if pg:
        url = subprocess.run([str(ROOT / "scripts/services/postgres.sh")], check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
        admin = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        name = f"qz_bench_econ_{n}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'drop database if exists "{name}" with (force)')
            conn.exec_driver_sql(f'create database "{name}"')
        engine = db.make_engine(sa.make_url(url).set(database=name))
    else:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"economics_{n}.db"
        path.unlink(missing_ok=True)
        engine = db.make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    dm.create_tables(engine)
    library = campaigns.load_library()
    lines = [f"\n## {args.db}, {n:,} subscribers, three after-months — {dt.datetime.now():%Y-%m-%d %H:%M}",
             f"machine: {platform.machine()}, {os.cpu_count()} cores (shared with other jobs), "
             f"{psutil.virtual_memory().total / 2**30:.0f} GiB; command: `benchmarks/bench_economics.py --db {args.db} "
             f"--subscribers {n}`", "",
             "| stage | wall time | rows | peak client RSS | peak server RSS (sum) |", "| --- | --- | --- | --- | --- |"]

    def stage(label, fn, counted=True):
        secs, result, mem = timed(label, fn, pg)
        rows = result if isinstance(result, int) else result.get("rows", "") if isinstance(result, dict) else ""
        server = f"{mem.peak_server / 2**20:.0f} MB" if pg else "—"
        lines.append(f"| {label} | {secs:.1f} s | {rows:,} | {mem.peak_self / 2**20:.0f} MB | {server} |"
                     if rows != "" else f"| {label} | {secs:.1f} s | | {mem.peak_self / 2**20:.0f} MB | {server} |")
        return result

    stage("generate inputs (not counted)", lambda: generate(engine, n, [c.code for c in library]))
    with engine.connect() as conn:
        contacts = conn.execute(sa.text("select count(*) from mkt_contact")).scalar()
        bills = conn.execute(sa.text("select count(*) from usage_monthly")).scalar()
    lines.insert(3, f"inputs: {contacts:,} contacts of one cycle (2026-08-10), {bills:,} bill rows (7 months)")
    clock.set_now(dt.datetime(2026, 12, 5, 4, 30))
    cfg = economics.load_economics_config()
    stage("stage bills (6 closed months → stg_bill)", lambda: economics.stage_bills(engine, engine, RUN, cfg))
    stage("stage subscriber snapshot → stg_subscriber", lambda: economics.stage_subscribers(engine, engine))
    result = stage("economics step as the DAG runs it (staging again + measure + write)",
                   lambda: economics.write_economics(engine, engine, RUN, library))
    lines.append(f"\n{result['rows']:,} rows of mkt_campaign_economics (per cycle and per month, every slice).")
    out = ROOT / "benchmarks" / "results" / "economics.md"
    if not out.exists():
        out.write_text("# Campaign economics benchmark\n\nProduced by `benchmarks/bench_economics.py`.\n",
                       encoding="utf-8")
    with out.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    if pg:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'drop database if exists "{name}" with (force)')


if __name__ == "__main__":
    main()
