"""Consecutive daily cycles on one generated data mart (SQLite, usage unchanged), at the library level
(no Airflow, no SMS): per day the targets, control customers and the audit's verdict; then how
independent the control groups are between campaigns (issue 18).

    .venv/bin/python benchmarks/consecutive_cycles.py [--subscribers 100000] [--days 2] [--out var/bench/consecutive]

With the hash this replaced, the demo's second day (2026-11-24) failed validation: 3 of 10 checks,
1134-012 (then coded 1114-012) with 50.2% control against 5% configured, nothing published for any county.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qz_outbound import campaigns, counties, db, publish, schema, segmentation, targeting, validation  # noqa: E402
from qz_outbound.dev.demo_datamart import generate  # noqa: E402


def independence(library, day: dt.date, n: int = 200_000) -> None:
    rng = random.Random(2026)
    numbers = [f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}" for _ in range(n)]
    bp = {c.code: int(c.control_share * 10000) for c in library}

    def members(code):
        return {m for m in numbers if targeting.assignment_draw(m, code, day, "control") < bp[code]}

    given = members("1134-012")
    print(f"control groups over {n:,} random numbers, cycle {day}:")
    for other in ("1114-007", "2143-002"):
        both = len(given & members(other))
        print(f"  P(control in {other} | control in 1134-012) = {both / len(given):.3f}   (independence: "
              f"{bp[other] / 10000:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2026, 11, 23))
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "consecutive")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    mart = db.make_engine(f"sqlite:///{args.out / 'datamart.db'}")
    generate(mart, args.subscribers, args.first, progress=False)
    mk = db.make_engine(f"sqlite:///{args.out / 'marketing.db'}")
    schema.ensure_schema(mk)
    library = campaigns.load_library()
    for k in range(args.days):
        day = args.first + dt.timedelta(days=k)
        started = time.monotonic()
        segmentation.segment_customers(mart, mk, day)
        targeting.stage_extracts(mart, mk, day)
        targeting.build_target_list(mk, day, library)
        report = validation.audit_target_list(mk, day, library, args.out)
        if report.publishable:
            for county in counties.county_names():
                publish.publish_county(mk, day, county, library, queue_sms=False)
        with mk.connect() as conn:
            targets, control = conn.execute(sa.text(
                "select count(*), coalesce(sum(is_control), 0) from mkt_target where cycle_date = :d"),
                {"d": day.isoformat()}).one()
        verdict = "passed" if report.success else ("held " + ",".join(sorted(report.held)) if report.publishable
                                                   else "FAILED " + ",".join(c.check for c in report.failed))
        print(f"{day}  targets {targets:>7,}  control {control:>6,}  validation {verdict}  "
              f"{time.monotonic() - started:5.1f} s")
    independence(library, args.first + dt.timedelta(days=1))


if __name__ == "__main__":
    main()
