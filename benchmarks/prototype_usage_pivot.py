"""Prototype, not the product's code: what segmentation would cost if the three-month usage pivot
were read from a table built once a month instead of being grouped every day.

On an existing PostgreSQL data mart (marketing tables in the same database), in one run: the bare
scan (as bench_segmentation.py defines it); the pivot built once (the template's own
``usage_by_month``, unsliced, as a table); then today's two slice statements and the same
statements reading the pivot table, twice each, each into a scratch table shaped like
mkt_segment_snapshot, with its fingerprint (segmentation_phases.fingerprint: the same as today's
snapshot means the same rows). The swap (key, attach) is not included; it does not change.
Scratch tables are dropped at the end.

    .venv/bin/python benchmarks/prototype_usage_pivot.py postgresql+psycopg://postgres@127.0.0.1:5433/qz_full_dm
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor

from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from segmentation_phases import D, fingerprint, timed_scan  # noqa: E402

from qz_outbound import db, segmentation  # noqa: E402

PIVOT, OUT = "exp_usage_pivot", "exp_segment_out"
SLICES = 2


def statements() -> tuple[str, str, str]:
    """(today's slice statement, the same reading the pivot table, the pivot's own SELECT)."""
    cfg = segmentation.load_config()
    today = db.render_sql("segment_customers.sql", "postgresql", cfg=cfg, n_slices=SLICES)
    unsliced = db.render_sql("segment_customers.sql", "postgresql", cfg=cfg, n_slices=1)
    head, tail = "with usage_by_month as (", "active_bundle as ("
    assert head in today and tail in today, "segment_customers.sql changed shape; adapt the prototype"

    def usage_cte(sql: str) -> str:
        return sql[sql.index(head) + len(head):sql.index(tail)].rstrip().rstrip(",").rstrip()[:-1]

    slice_of = f"(cast(right(msisdn, 1) as integer) % {SLICES}) = :slice"
    assert slice_of in usage_cte(today), "the slice predicate changed; adapt the prototype"
    from_pivot = (today[:today.index(head)] + f"with usage_by_month as (select * from {PIVOT} where {slice_of}),\n"
                  + today[today.index(tail):])
    return today, from_pivot, usage_cte(unsliced)


def run_slices(engine, sql: str, params: dict) -> float:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"drop table if exists {OUT}")
        conn.exec_driver_sql(f"create table {OUT} (like mkt_segment_snapshot)")
    cols = ", ".join(segmentation.SNAPSHOT_COLUMNS)

    def one(k: int) -> int:
        with engine.begin() as conn:   # the settings db._insert_slices and segmentation use
            for setting in ("max_parallel_workers_per_gather = 0", "work_mem = '1GB'", "enable_nestloop = off",
                            "enable_sort = off"):
                conn.exec_driver_sql(f"set local {setting}")
            return conn.execute(sa.text(f"insert into {OUT} ({cols}) {sql}"), {**params, "slice": k}).rowcount

    started = time.perf_counter()
    with ThreadPoolExecutor(SLICES) as pool:
        sum(pool.map(one, range(SLICES)))
    return time.perf_counter() - started


def main() -> None:
    engine = db.make_engine(sys.argv[1])
    params = segmentation.query_params(D)
    today, from_pivot, pivot = statements()
    print(f"bare aggregation scan: {timed_scan(engine):.1f} s", flush=True)
    try:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"drop table if exists {PIVOT}")
            conn.execute(sa.text(f"create table {PIVOT} as {pivot}"), params)
        with engine.connect() as conn:
            conn.exec_driver_sql(f"analyze {PIVOT}")
            conn.commit()
        print(f"pivot built once (serial CTAS and ANALYZE): {time.perf_counter() - started:.1f} s", flush=True)
        for label, sql in [("today's slice statements", today), ("reading the pivot table", from_pivot)] * 2:
            seconds = run_slices(engine, sql, params)
            print(f"{label}: {seconds:.1f} s, fingerprint {fingerprint(engine, OUT)}", flush=True)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"drop table if exists {OUT}, {PIVOT}")


if __name__ == "__main__":
    main()
