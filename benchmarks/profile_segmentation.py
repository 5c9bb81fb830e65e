"""Where segmentation's time goes, in CPU seconds of the process doing the work (not a test).

Wall time on a shared 2-core machine says more about the neighbours than about the query; the CPU
time of the one process that runs it (the PostgreSQL backend, read from /proc/<pid>/stat; SQLite runs
in this process) is steadier. Serial, one statement after the other, in one session:

* PostgreSQL: the bare scan (parallel workers off, so it is comparable), each slice's SELECT alone
  (a column of each join aggregated, so none is optimised away; nothing written), each slice's INSERT into a logged stage table shaped like
  mkt_segment_snapshot (the write the real stage pays, WAL included), the primary key built on it,
  and its ANALYZE;
* SQLite: the bare scan, the SELECT alone, then the delete of the cycle and the INSERT ... SELECT
  into mkt_segment_snapshot (marketing_db a separate file, the data mart ATTACHed), and the commit.

``--code DIR`` runs another checkout's SQL (e.g. ``git archive main qz_outbound include config | tar
-x -C /tmp/main``) on the same data. Uses the data marts the benchmarks leave behind.

    .venv/bin/python benchmarks/profile_segmentation.py --db postgresql --url postgresql+psycopg://postgres@127.0.0.1:5447/qz_bench_dm
    .venv/bin/python benchmarks/profile_segmentation.py --db sqlite --workdir var/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
D = dt.date(2026, 11, 23)
BARE = ("select count(*) from (select msisdn, sum(spend_yuan) as s, sum(voice_minutes) as v, sum(data_mb) as d "
        "from {src}usage_monthly where month >= {m2} and month <= {m0} group by msisdn) as x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["postgresql", "sqlite"], required=True)
    ap.add_argument("--url", help="PostgreSQL: the data mart (marketing_db in the same database)")
    ap.add_argument("--workdir", default=str(ROOT / "var" / "bench"), help="SQLite: bench_dm.db and bench_mk.db")
    ap.add_argument("--code", default=str(ROOT), help="checkout whose qz_outbound and include/sql to run")
    args = ap.parse_args()
    sys.path.insert(0, args.code)
    import sqlalchemy as sa

    from qz_outbound import db, segmentation

    cfg = segmentation.load_config()
    params = segmentation.query_params(D)
    cols = ", ".join(segmentation.SNAPSHOT_COLUMNS)
    print(f"code: {segmentation.__file__}")

    if args.db == "postgresql":
        engine = db.make_engine(args.url)
        n_slices = cfg.parallel_slices
        sql = db.render_sql("segment_customers.sql", "postgresql", cfg=cfg, n_slices=n_slices)
        tick = os.sysconf("SC_CLK_TCK")
        with engine.connect() as conn:
            pid = conn.exec_driver_sql("select pg_backend_pid()").scalar()

            def cpu() -> float:
                f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(f[11]) + int(f[12])) / tick

            def timed(label, stmt, p):
                t, c = time.perf_counter(), cpu()
                conn.execute(sa.text(stmt), p)
                print(f"{label:<28} cpu {cpu() - c:7.2f} s   wall {time.perf_counter() - t:7.2f} s", flush=True)

            # as _insert_slices runs each slice
            conn.exec_driver_sql("set max_parallel_workers_per_gather = 0")
            conn.exec_driver_sql("set work_mem = '1GB'")
            bare = BARE.format(src="", m2="cast(:m2 as date)", m0="cast(:m0 as date)")
            timed("bare scan (warm-up)", bare, params)
            timed("bare scan", bare, params)
            if "planner" in db.land_query.__code__.co_varnames:
                conn.exec_driver_sql("set enable_sort = off")   # what segment_customers asks for
            # a logged table as the stage is (a temporary one would skip the WAL the real write pays),
            # dropped by the rollback at the end
            conn.exec_driver_sql("create table profile_stage (like mkt_segment_snapshot including defaults)")
            for k in range(n_slices):
                timed(f"select alone, slice {k + 1}/{n_slices}", "select count(segment_code), count(bundle_kind), sum(spend_m0), sum(sms_m0), "
                      f"max(customer_name) from (\n{sql}\n) as x",
                      {**params, "slice": k})
            for k in range(n_slices):
                timed(f"insert slice {k + 1}/{n_slices}", f"insert into profile_stage ({cols})\n{sql}",
                      {**params, "slice": k})
            timed("primary key on the stage", "alter table profile_stage add primary key (cycle_date, msisdn)", {})
            timed("analyze the stage", "analyze profile_stage", {})
            conn.rollback()
        return

    import sqlite3

    work = Path(args.workdir)
    sql = db.render_sql("segment_customers.sql", "sqlite", cfg=cfg, n_slices=1, src="dm.")
    conn = sqlite3.connect(work / "bench_mk.db", isolation_level=None)
    for pragma in ("journal_mode=wal", "synchronous=normal", "temp_store=memory", "cache_size=-262144"):
        conn.execute(f"pragma {pragma}")   # as db.make_engine sets them
    conn.execute(f"attach database 'file:{work / 'bench_dm.db'}?mode=ro' as dm")

    def timed(label, stmt, p):
        t, c = time.perf_counter(), time.process_time()
        conn.execute(stmt, p).fetchall()
        print(f"{label:<28} cpu {time.process_time() - c:7.2f} s   wall {time.perf_counter() - t:7.2f} s", flush=True)

    bare = BARE.format(src="dm.", m2=":m2", m0=":m0")
    timed("bare scan (warm-up)", bare, params)
    timed("bare scan", bare, params)
    timed("select alone", f"select count(*) from ({sql})", params)
    conn.execute("begin")
    timed("delete the cycle", "delete from mkt_segment_snapshot where cycle_date = :d", params)
    timed("insert ... select", f"insert into mkt_segment_snapshot ({cols})\n{sql}", params)
    timed("commit", "commit", {})


if __name__ == "__main__":
    main()
