"""What the coverage gap list costs beside the target list and the coverage report (issue 16).

The gap list renders the target list once more without the campaign blocks (who would be offered
something were no campaign blocked), so its cost follows the target list's. One generated data
mart, marketing_db in the same database, on SQLite (a file) and on PostgreSQL (``--pg URL``).

    .venv/bin/python benchmarks/bench_coverage_gaps.py [--subscribers 100000] [--pg postgresql+psycopg://...]

Results are appended to benchmarks/results/coverage_gaps.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qz_outbound import campaigns, coverage, db, schema, segmentation, targeting  # noqa: E402
from qz_outbound.dev.demo_datamart import generate  # noqa: E402

D = dt.date(2026, 11, 23)


def run(url: str, subscribers: int) -> list[str]:
    engine = db.make_engine(url)
    generate(engine, subscribers, D, progress=False)
    schema.ensure_schema(engine)
    library = campaigns.load_library()
    segmentation.segment_customers(engine, engine, D)
    targeting.stage_extracts(engine, engine, D)
    rows = []
    for label, fn in [("target list", lambda: targeting.build_target_list(engine, D, library)),
                      ("coverage report (coverage.sql)", lambda: int(targeting.coverage(engine, D)["offered"].sum())),
                      ("gap list (coverage_gaps.sql)", lambda: int(coverage.coverage_gaps(engine, D, library)["customers"].sum()))]:
        started = time.monotonic()
        n = fn()
        rows.append(f"| {engine.dialect.name} | {label} | {time.monotonic() - started:.2f} s | {n:,} |")
        print(rows[-1], flush=True)
    engine.dispose()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--pg", help="an empty PostgreSQL database")
    args = ap.parse_args()
    lines = [f"\n## {args.subscribers:,} subscribers — {dt.datetime.now():%Y-%m-%d %H:%M}",
             "| database | stage | wall time | rows (targets / offered / uncovered) |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        lines += run(f"sqlite:///{tmp}/bench.db", args.subscribers)
    if args.pg:
        lines += run(args.pg, args.subscribers)
    out = ROOT / "benchmarks" / "results" / "coverage_gaps.md"
    if not out.exists():
        out.write_text("# Coverage gap list: cost beside the target list (benchmarks/bench_coverage_gaps.py)\n",
                       encoding="utf-8")
    with out.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
