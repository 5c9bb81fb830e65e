"""Prototype, not the product's code: what segmentation would cost if the three-month usage pivot
were read from a table built once a month instead of being grouped every day.

On an existing PostgreSQL data mart (marketing tables in the same database), in one run: the bare
scan; the pivot built once (the template's own usage_by_month, unsliced, as a table); then today's
two slice statements and the same statements reading the pivot table, twice each, each into a
scratch table shaped like mkt_segment_snapshot, with an md5 over every row in msisdn order (the
same md5 as today's snapshot means the same rows). The swap (key, attach) is not included; it does
not change. Scratch tables are dropped at the end.

    .venv/bin/python benchmarks/prototype_usage_pivot.py postgresql+psycopg://postgres@127.0.0.1:5433/qz_full_dm
"""
import sys, time, datetime as dt
sys.path.insert(0, "/work/main")
import sqlalchemy as sa
from qz_outbound import db, segmentation
from concurrent.futures import ThreadPoolExecutor
D = dt.date(2026, 11, 23)
e = db.make_engine(sys.argv[1])
cfg = segmentation.load_config()
params = segmentation.query_params(D)
cur = db.render_sql("segment_customers.sql", "postgresql", cfg=cfg, n_slices=2)
a = cur.index("with usage_by_month as ("); b = cur.index("active_bundle as (")
usage_sql = cur[a + len("with usage_by_month as ("):b].rstrip().rstrip(",").rstrip().rstrip(")")
pre = cur[:a] + "with usage_by_month as (select * from exp_usage_pivot where " + \
      "(cast(right(msisdn, 1) as integer) % 2) = :slice),\n" + cur[b:]
cols = ", ".join(segmentation.SNAPSHOT_COLUMNS)
m0, _, m2 = segmentation.cycle_months(D)
bare = f"select count(*) from (select msisdn, sum(spend_yuan) as s, sum(voice_minutes) as v, sum(data_mb) as d from usage_monthly where month >= date '{m2}' and month <= date '{m0}' group by msisdn) x"
with e.connect() as c:
    c.exec_driver_sql(bare).all(); t = time.perf_counter(); c.exec_driver_sql(bare).all(); tb = time.perf_counter() - t
    print(f"bare {tb:.1f}s", flush=True)
    c.exec_driver_sql("drop table if exists exp_usage_pivot"); c.commit()
    one = usage_sql.replace("and (cast(right(msisdn, 1) as integer) % 2) = :slice", "")
    t = time.perf_counter()
    c.execute(sa.text(f"create table exp_usage_pivot as {one}"), params); c.commit()
    c.exec_driver_sql("analyze exp_usage_pivot"); c.commit()
    print(f"monthly pivot built once (serial CTAS + analyze): {time.perf_counter()-t:.1f}s", flush=True)
def run(sql):
    with e.connect() as c:
        c.exec_driver_sql("drop table if exists exp_out"); c.exec_driver_sql("create table exp_out (like mkt_segment_snapshot)"); c.commit()
    def one(k):
        with e.begin() as c:
            for s in ("max_parallel_workers_per_gather = 0", "work_mem = '1GB'", "enable_nestloop = off", "enable_sort = off"):
                c.exec_driver_sql(f"set local {s}")
            return c.execute(sa.text(f"insert into exp_out ({cols}) {sql}"), {**params, "slice": k}).rowcount
    t = time.perf_counter()
    with ThreadPoolExecutor(2) as p: n = sum(p.map(one, range(2)))
    w = time.perf_counter() - t
    with e.connect() as c:
        h = c.exec_driver_sql("select md5(string_agg(md5(t::text), '' order by msisdn)) from exp_out t").scalar()
    return n, w, h
for label, sql in [("today's slices", cur), ("pivot read from the monthly table", pre)] * 2:
    n, w, h = run(sql)
    print(f"{label}: {n} rows, slice statements {w:.1f}s, md5 {h}", flush=True)
with e.connect() as c:
    c.exec_driver_sql("drop table if exists exp_out, exp_usage_pivot"); c.commit()
