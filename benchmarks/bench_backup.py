"""Benchmark (not a test): backup and restore of marketing_db after a full cycle of the city.

The database is filled in SQL (generate_series / a recursive CTE) with what one daily cycle of
``--subscribers`` customers leaves in marketing_db, in the proportions the demo cycle shows
(README: 97 % segmented, 65 % targeted, 59 % sent an SMS; one part per SMS), plus the permanent
tables at a year's size for that many customers (opt-outs 0.8 %, commission ledger 0.2 %):

    mkt_segment_snapshot (one cycle partition)  = subscribers
    mkt_target (one cycle partition)            = 0.65 x subscribers
    mkt_contact                                 = 0.65 x subscribers
    sms_outbox, sms_part                        = 0.59 x subscribers each
    mkt_opt_out                                 = 0.008 x subscribers
    mkt_agent_commission                        = 0.002 x subscribers

Then ``qz-outbound db backup`` and ``db restore`` (the same functions: pg_dump custom format and
pg_restore on PostgreSQL, the online backup API on SQLite) are timed, the restored row counts are
compared, and ``db check`` must be clean. Run:

    .venv/bin/python benchmarks/bench_backup.py --db postgresql --subscribers 640000 [--jobs 2]
    .venv/bin/python benchmarks/bench_backup.py --db sqlite --subscribers 640000

(PostgreSQL: QZ_BENCH_PG_URL, default the test cluster started by scripts/services/postgres.sh.)
Results are appended to benchmarks/results/backup.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qz_outbound import backup, db, migrations  # noqa: E402

CYCLE = dt.date(2026, 11, 23)
TABLES = ["mkt_segment_snapshot", "mkt_target", "mkt_contact", "sms_outbox", "sms_part", "mkt_opt_out",
          "mkt_agent_commission"]


def _series(dialect: str, n: int) -> str:
    """A relation `s(i)` of 0..n-1."""
    if dialect == "postgresql":
        return f"generate_series(0, {n - 1}) as s(i)"
    return f"(with recursive c(i) as (select 0 union all select i + 1 from c where i < {n - 1}) select i from c) s"


def fill(engine, subscribers: int) -> dict[str, int]:
    d = engine.dialect.name
    day = f"'{CYCLE.isoformat()}'" + ("::date" if d == "postgresql" else "")
    ts = "'2026-11-23 09:00:00+08'" + ("::timestamptz" if d == "postgresql" else "")
    msisdn = "'139' || substr('00000000' || i, -8, 8)" if d == "sqlite" else "'139' || lpad(i::text, 8, '0')"
    county = "(case i % 11 when 0 then '350502' when 1 then '350503' when 2 then '350504' when 3 then '350505' " \
             "when 4 then '350581' when 5 then '350582' when 6 then '350583' when 7 then '350521' " \
             "when 8 then '350524' when 9 then '350525' else '350526' end)"
    cid = "'c' || i" if d == "sqlite" else "md5(i::text)"
    targeted, sms = int(subscribers * 0.65), int(subscribers * 0.59)
    opt_outs, ledger = int(subscribers * 0.008), int(subscribers * 0.002)
    with engine.begin() as conn:
        class c:   # psycopg reads % as a placeholder in driver SQL
            exec_driver_sql = staticmethod(lambda sql: conn.exec_driver_sql(sql.replace("%", "%%") if d == "postgresql"
                                                                            else sql))
        if d == "postgresql":
            for table in ("mkt_segment_snapshot", "mkt_target"):
                c.exec_driver_sql(f"create table {db.partition_name(table, CYCLE)} partition of {table} "
                                  f"for values in ('{CYCLE.isoformat()}')")
        c.exec_driver_sql(f"""
            insert into mkt_segment_snapshot
            select {day}, {msisdn}, {county}, '21', i % 5, i % 4, i % 4, i % 6, 'M' || (i % 7), '21-' || (i % 5),
                   'active', 1 + i % 240, 10 + i % 300, 50 + i % 900, 1.5 + i % 40, null,
                   {day}, null
            from {_series(d, subscribers)}""")
        c.exec_driver_sql(f"""
            insert into mkt_target
            select {day}, {msisdn}, {county}, '2241-005', 'P' || (i % 40), 1 + i % 15, '21', i % 5, '21-' || (i % 5),
                   case when i % 20 = 0 then 1 else 0 end, 'A', i % 2, 1
            from {_series(d, targeted)}""")
        c.exec_driver_sql(f"""
            insert into mkt_contact (contact_id, cycle_date, msisdn, county_code, campaign_code, product_code,
                                     variant, channel, segment_code, status, created_at, sent_at, delivered_at)
            select {cid}, {day}, {msisdn}, {county}, '2241-005', 'P' || (i % 40), 'A',
                   case when i < {sms} then 'sms' when i % 3 = 0 then 'control' else 'call' end, '21-' || (i % 5),
                   case when i < {sms} then 'delivered' else 'planned' end, {ts},
                   case when i < {sms} then {ts} end, case when i < {sms} then {ts} end
            from {_series(d, targeted)}""")
        text = "'【泉州移动】尊敬的客户，您好！5G畅享流量包每月30元含20GB，回复1办理，回复TD退订。'"
        c.exec_driver_sql(f"""
            insert into sms_outbox (contact_id, cycle_date, county_code, msisdn, campaign_code, template, text, parts,
                                    state, queued_at, submitted_at, done_at)
            select {cid}, {day}, {county}, {msisdn}, '2241-005', 'demo_flow_pack', {text}, 1, 'delivered',
                   {ts}, {ts}, {ts}
            from {_series(d, sms)}""")
        payload = "randomblob(120)" if d == "sqlite" else "decode(repeat(md5(i::text), 4), 'hex')"
        c.exec_driver_sql(f"""
            insert into sms_part (contact_id, part_no, esm_class, data_coding, payload, state, message_id,
                                  attempts, submitted_at, accepted_at, receipt_at, receipt_stat)
            select {cid}, 1, 0, 8, {payload}, 'delivered', 'm' || i, 1, {ts}, {ts}, {ts}, 'DELIVRD'
            from {_series(d, sms)}""")
        c.exec_driver_sql(f"""
            insert into mkt_opt_out (msisdn, opted_out_at, source)
            select {msisdn}, {ts}, 'sms_reply' from {_series(d, opt_outs)}""")
        c.exec_driver_sql(f"""
            insert into mkt_agent_commission (order_id, contact_id, month, agent_id, county_code, msisdn,
                campaign_code, product_code, recommended_at, order_time, commission_yuan)
            select 'o' || i, 'a' || i, {day}, 'A' || (i % 900), {county}, {msisdn}, '2434-011', 'P1', {ts},
                   '2026-11-20 10:00:00', 12.50
            from {_series(d, ledger)}""")
    if d == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("vacuum analyze")
    return counts(engine)


def counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t: c.exec_driver_sql(f"select count(*) from {t}").scalar() for t in TABLES}


def size_bytes(engine) -> int:
    with engine.connect() as c:
        if engine.dialect.name == "postgresql":
            return c.exec_driver_sql("select pg_database_size(current_database())").scalar()
    return Path(engine.url.database).stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["postgresql", "sqlite"], required=True)
    ap.add_argument("--subscribers", type=int, default=6_400_000)
    ap.add_argument("--jobs", type=int, default=1, help="pg_restore --jobs")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="qz-bench-backup-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.db == "postgresql":
        base = os.environ.get("QZ_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5433/qz_test")
        name = f"qz_bench_backup_{args.subscribers}"
        admin = sa.create_engine(sa.make_url(base).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'drop database if exists "{name}" with (force)')
            c.exec_driver_sql(f'create database "{name}"')
        url = sa.make_url(base).set(database=name).render_as_string(hide_password=False)
        out = work / "marketing.dump"
    else:
        admin = None
        url = f"sqlite:///{work / 'marketing.db'}"
        Path(work / "marketing.db").unlink(missing_ok=True)
        out = work / "marketing.backup.sqlite"
    engine = db.make_engine(url)
    migrations.upgrade(engine)
    t0 = time.monotonic()
    rows = fill(engine, args.subscribers)
    fill_s = time.monotonic() - t0
    db_bytes = size_bytes(engine)
    print(f"filled in {fill_s:,.0f} s: {rows}; database {db_bytes / 1e6:,.0f} MB", flush=True)

    made = backup.backup(engine, out)
    print(f"backup {made.bytes / 1e6:,.0f} MB in {made.seconds:,.1f} s", flush=True)

    # the loss, then the restore into a database that is gone
    engine.dispose()
    if admin is not None:
        with admin.connect() as c:
            c.exec_driver_sql(f'drop database "{sa.make_url(url).database}" with (force)')
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work / 'marketing.db'}{suffix}").unlink(missing_ok=True)
    engine = db.make_engine(url)
    back = backup.restore(engine, out, jobs=args.jobs)
    print(f"restore in {back.seconds:,.1f} s", flush=True)
    restored = counts(engine)
    problems = migrations.check(engine)
    assert restored == rows, (restored, rows)
    assert problems == [], problems

    line = (f"| {dt.date.today()} | {args.db} | {args.subscribers:,} | {sum(rows.values()):,} | "
            f"{db_bytes / 1e6:,.0f} MB | {made.bytes / 1e6:,.0f} MB | {made.seconds:,.1f} s | "
            f"{back.seconds:,.1f} s{f' (jobs {args.jobs})' if args.jobs > 1 else ''} | "
            f"{os.cpu_count()} cores, {platform.python_version()} |")
    results = ROOT / "benchmarks" / "results" / "backup.md"
    if not results.exists():
        results.write_text("# Backup and restore of marketing_db (benchmarks/bench_backup.py)\n\n"
                           "| date | db | subscribers | rows | database | backup file | backup | restore | machine |\n"
                           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
    with results.open("a") as f:
        f.write(line + "\n")
    print(line)
    engine.dispose()
    if admin is not None:
        with admin.connect() as c:
            c.exec_driver_sql(f'drop database if exists "{sa.make_url(url).database}" with (force)')
        admin.dispose()
    out.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
