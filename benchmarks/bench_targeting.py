"""Benchmark: targeting + arbitration + validation + per-county split for a full city on PostgreSQL.

Needs the 6.4-million-subscriber data mart of bench_segmentation.py (run it first). marketing_db
is the same database as the data mart here (production may separate them). Measures, per stage,
wall time and peak memory of this process and of the PostgreSQL server processes (sum of RSS,
which counts shared buffers once per process, so it over-states).

    .venv/bin/python benchmarks/bench_targeting.py

Results are appended to benchmarks/results/targeting.md.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_segmentation import D, timed  # noqa: E402

from qz_outbound import campaigns, counties, db, migrations, publish, segmentation, targeting  # noqa: E402


PARALLEL = 2


def main() -> None:
    url = subprocess.run([str(ROOT / "scripts/services/postgres.sh")], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    engine = db.make_engine(sa.make_url(url).set(database="qz_bench_dm"))
    with engine.connect() as conn:
        n = conn.execute(sa.text("select count(*) from subscriber")).scalar()
    migrations.upgrade(engine)   # what the init job does: tasks never create tables
    library = campaigns.load_library()
    lines = [f"\n## targeting on PostgreSQL, {n:,} subscribers, {len(library)} campaigns — {dt.datetime.now():%Y-%m-%d %H:%M}",
             "| stage | wall time | rows | peak client RSS | peak server RSS (sum) |", "| --- | --- | --- | --- | --- |"]

    def stage(label, fn):
        secs, result, mem = timed(label, fn, True)
        rows = result if isinstance(result, int) else sum(v for v in result.values() if isinstance(v, int)) \
            if isinstance(result, dict) else ""
        lines.append(f"| {label} | {secs:.1f} s | {rows:,} | {mem.peak_self / 2**20:.0f} MB | "
                     f"{mem.peak_server / 2**20:.0f} MB |" if rows != "" else
                     f"| {label} | {secs:.1f} s | | {mem.peak_self / 2**20:.0f} MB | {mem.peak_server / 2**20:.0f} MB |")
        return secs, result

    total = 0.0
    with engine.connect() as conn:
        have = conn.execute(sa.text("select count(*) from mkt_segment_snapshot where cycle_date = :d"),
                            {"d": D}).scalar() if db.is_partitioned(engine, "mkt_segment_snapshot") else 0
    if not have:
        stage("segmentation (precondition, not counted)", lambda: segmentation.segment_customers(engine, engine, D))
    for label, fn in [
        ("stage extracts (DND, complaints, holdings, bundle ends)", lambda: targeting.stage_extracts(engine, engine, D)),
        ("target list: targeting + arbitration + control/A-B", lambda: targeting.build_target_list(engine, D, library)),
        ("coverage report", lambda: (targeting.write_coverage_report(engine, D, ROOT / "var" / "bench"), 0)[1]),
    ]:
        secs, _ = stage(label, fn)
        total += secs
    try:
        from qz_outbound import validation
    except ImportError:
        validation = None
    if validation is not None:
        secs, _ = stage("validation (Great Expectations)", lambda: (validation.require_valid(
            validation.audit_target_list(engine, D, library, ROOT / "var" / "bench")), 0)[1])
        total += secs
    with engine.begin() as conn:
        conn.execute(sa.text("delete from sms_part where contact_id in "
                             "(select contact_id from sms_outbox where cycle_date = :d)"), {"d": D})
        conn.execute(sa.text("delete from sms_outbox where cycle_date = :d"), {"d": D})
        conn.execute(sa.text("delete from mkt_contact where cycle_date = :d"), {"d": D})
    # As the DAG runs them: one task per county, two at a time (2 cores; the biggest counties first)
    from concurrent.futures import ThreadPoolExecutor

    order = sorted(counties.county_names(), key=lambda c: -by_county.get(c, 0)) if (by_county := dict(
        engine.connect().execute(sa.text("select county_code, count(*) from mkt_target where cycle_date = :d "
                                         "group by county_code"), {"d": D}).all())) else list(counties.county_names())

    def in_parallel(fn):
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            return list(pool.map(fn, order))

    secs, _ = stage(f"split per county into mkt_contact (11 counties, {PARALLEL} at a time)", lambda: sum(
        sum(v for k, v in r.items() if k in ("sms", "call", "control")) for r in in_parallel(
            lambda c: publish.publish_county(engine, D, c, library, queue_sms=False))))
    total += secs
    secs_q, _ = stage(f"SMS rendered into the outbox (11 counties, {PARALLEL} at a time; not in the goal's total)",
                      lambda: sum(r.get("queued", 0) for r in in_parallel(
                          lambda c: publish.queue_county_sms(engine, D, c, library))))
    lines.append(f"| **total** | **{total:.1f} s** | | | |")
    out = ROOT / "benchmarks" / "results" / "targeting.md"
    out.parent.mkdir(exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
