"""Benchmark: segmentation of a full city (6.4 million subscribers, 3 months of usage).

Measures, on one database kind at a time:

* generating the demo data mart (bulk load; COPY on PostgreSQL);
* the floor: a bare aggregation scan of ``usage_monthly`` over the three months,
  grouped by customer, in the same database (the result is counted inside the
  database, so no rows travel);
* segmentation as the DAG runs it (``segment_customers``), landing 6.4 million
  rows in ``mkt_segment_snapshot``: on PostgreSQL both with marketing_db in
  the same database (one ``insert ... select``) and in a separate database
  (streamed with COPY); on SQLite with two files (ATTACH, one statement);
  where one statement reads both databases, three ways: the usage grouped in
  the statement (``reuse_usage_pivot: false``), the month's first cycle (the
  usage pivot built), and a later cycle of the month (the pivot reused);
* wall time, and peak memory of this process and (PostgreSQL) of the server's
  processes, sampled every 0.2 s.

Run (PostgreSQL is started by scripts/services/postgres.sh):

    .venv/bin/python benchmarks/bench_segmentation.py --db postgresql --subscribers 6400000
    .venv/bin/python benchmarks/bench_segmentation.py --db sqlite --subscribers 6400000

Results are appended to benchmarks/results/segmentation.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qz_outbound import db, migrations, schema, segmentation  # noqa: E402
from qz_outbound.dev.demo_datamart import generate  # noqa: E402

D = dt.date(2026, 11, 23)


class PeakMemory:
    """Samples RSS of this process and of the PostgreSQL server processes."""

    def __init__(self, with_postgres: bool):
        self.with_postgres = with_postgres
        self.peak_self = 0
        self.peak_server = 0
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak_self = max(self.peak_self, me.memory_info().rss)
            if self.with_postgres:
                total = 0
                for p in psutil.process_iter(["name", "memory_info"]):
                    if p.info["name"] and p.info["name"].startswith("postgres") and p.info["memory_info"]:
                        # RSS counts shared buffers once per process; USS would be exact but is slow
                        total += p.info["memory_info"].rss
                self.peak_server = max(self.peak_server, total)
            time.sleep(0.2)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(label, fn, with_postgres):
    with PeakMemory(with_postgres) as mem:
        t = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t
    print(f"{label:<48}{seconds:9.1f} s   peak client RSS {mem.peak_self / 2**20:7.0f} MB"
          + (f"   server RSS (sum) {mem.peak_server / 2**20:7.0f} MB" if with_postgres else ""), flush=True)
    return seconds, result, mem


def bare_scan(engine) -> int:
    m0, _, m2 = segmentation.cycle_months(D)
    dp = (lambda n: f"cast(:{n} as date)") if engine.dialect.name == "postgresql" else (lambda n: f":{n}")
    sql = f"""
        select count(*), sum(s) from (
            select msisdn, sum(spend_yuan) as s, sum(voice_minutes) as v, sum(data_mb) as d
            from usage_monthly
            where month >= {dp('m2')} and month <= {dp('m0')}
            group by msisdn
        ) as per_customer"""
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), {"m0": m0.isoformat(), "m2": m2.isoformat()}).one()[0]


def forget_cycle(mk) -> None:
    """Remove cycle D's snapshot rows (untimed): on SQLite a re-run deletes the cycle's 6.4 M rows first,
    which the day's first run never does."""
    with mk.begin() as conn:
        if mk.dialect.name == "postgresql":
            conn.exec_driver_sql(f"drop table if exists {db.partition_name('mkt_segment_snapshot', D)}")
        else:
            conn.execute(sa.text("delete from mkt_segment_snapshot where cycle_date = :d"), {"d": D.isoformat()})
    settle(mk)


def settle(mk) -> None:
    """Untimed, before each timed run (PostgreSQL): vacuum what the previous run wrote, as autovacuum
    would have done by the next day (back to back, its workers otherwise vacuum the last run's 6.4 M
    rows on the same two cores during the next run)."""
    if mk.dialect.name == "postgresql":
        with mk.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("vacuum mkt_segment_snapshot, mkt_usage_pivot")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["postgresql", "sqlite"], required=True)
    ap.add_argument("--subscribers", type=int, default=6_400_000)
    ap.add_argument("--reuse", action="store_true", help="reuse an existing data mart of the same size")
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench"))
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    pg = args.db == "postgresql"
    lines = [f"\n## {args.db}, {args.subscribers:,} subscribers — {dt.datetime.now():%Y-%m-%d %H:%M}",
             f"machine: {platform.machine()}, {os.cpu_count()} cores, "
             f"{psutil.virtual_memory().total / 2**30:.0f} GiB; Python {platform.python_version()}"]

    if pg:
        url = subprocess.run([str(ROOT / "scripts/services/postgres.sh")], check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
        admin = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            version = conn.exec_driver_sql("show server_version").scalar()
            for name in ("qz_bench_dm", "qz_bench_mk"):
                exists = conn.exec_driver_sql(f"select 1 from pg_database where datname = '{name}'").scalar()
                if not exists:
                    conn.exec_driver_sql(f"create database {name}")
        dm = db.make_engine(sa.make_url(url).set(database="qz_bench_dm"))
        mk_other = db.make_engine(sa.make_url(url).set(database="qz_bench_mk"))
        lines.append(f"PostgreSQL {version} (settings: scripts/services/postgres.sh)")
    else:
        dm = db.make_engine(f"sqlite:///{work / 'bench_dm.db'}")
        mk_other = db.make_engine(f"sqlite:///{work / 'bench_mk.db'}")
        import sqlite3

        lines.append(f"SQLite {sqlite3.sqlite_version}")

    existing = 0
    if args.reuse:
        try:
            with dm.connect() as conn:
                existing = conn.execute(sa.text("select count(*) from subscriber")).scalar()
        except sa.exc.DBAPIError:
            existing = 0
    if existing != args.subscribers:
        secs, counts, mem = timed("generate data mart", lambda: generate(dm, args.subscribers, D, progress=True),
                                  pg)
        rows = sum(counts.values())
        lines.append(f"| generate data mart ({rows:,} rows in all tables) | {secs:.1f} s | "
                     f"{rows / secs:,.0f} rows/s | client {mem.peak_self / 2**20:.0f} MB |")
    with dm.connect() as conn:
        usage_rows = conn.execute(sa.text("select count(*) from usage_monthly")).scalar()
    lines.append(f"usage_monthly: {usage_rows:,} rows")
    lines.append("| stage | wall time | ratio to bare scan | peak client RSS | peak server RSS (sum of processes) |")
    lines.append("| --- | --- | --- | --- | --- |")

    bare_scan(dm)  # warm the cache once, so both measurements read from memory alike
    secs_scan, n, mem = timed("bare aggregation scan of usage_monthly", lambda: bare_scan(dm), pg)
    lines.append(f"| bare aggregation scan ({n:,} customers) | {secs_scan:.1f} s | 1.00× | "
                 f"{mem.peak_self / 2**20:.0f} MB | {mem.peak_server / 2**20:.0f} MB |")

    routes = [("segmentation, marketing_db in a separate database" if pg else
               "segmentation, marketing_db a separate file (ATTACH)", mk_other)]
    if pg:
        routes.insert(0, ("segmentation, marketing_db in the same database", dm))
    cfg = segmentation.load_config()
    inline = cfg.model_copy(update={"reuse_usage_pivot": False})
    for label, mk in routes:
        migrations.upgrade(mk)   # what the init job does: tasks never create tables
        segmentation.segment_customers(dm, mk, D - dt.timedelta(days=1), inline)  # a previous cycle present
        runs = [("usage grouped in the statement", inline)]
        if segmentation.pivot_reachable(dm, mk):
            runs += [("month's first cycle: usage pivot built", cfg), ("later cycle: usage pivot reused", cfg)]
        for how, run_cfg in runs:
            forget_cycle(mk)   # each timed run is the day's first run of D, as in the daily cycle, not a re-run
            if "built" in how:
                with mk.begin() as conn:
                    conn.execute(schema.mkt_usage_pivot_source.delete())
            secs, n, mem = timed(f"{label}, {how}", lambda: segmentation.segment_customers(dm, mk, D, run_cfg), pg)
            lines.append(f"| {label}, {how} ({n:,} customers) | {secs:.1f} s | {secs / secs_scan:.2f}× | "
                         f"{mem.peak_self / 2**20:.0f} MB | {mem.peak_server / 2**20:.0f} MB |")
    lines.append(f"peak RSS of this process over the whole run: "
                 f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    out = ROOT / "benchmarks" / "results" / "segmentation.md"
    out.parent.mkdir(exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
