"""The budget step's cost before publishing: apply_budgets on a generated cycle, without budgets and
with every daily campaign capped at half of what it would commit (the worst case: two window passes
and a cut on every campaign).

    .venv/bin/python benchmarks/bench_budgets.py --subscribers 100000 [--url postgresql+psycopg://...]

Appends a table to benchmarks/results/budgets.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qz_outbound import budgets, campaigns, clock, db, schema, segmentation, targeting  # noqa: E402
from qz_outbound.dev.demo_datamart import generate  # noqa: E402

D = dt.date(2026, 11, 23)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--url", help="an empty database (default: a SQLite file in a temporary folder)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qz-bench-budgets-")
    engine = db.make_engine(args.url or f"sqlite:///{tmp}/bench.db")
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    generate(engine, args.subscribers, D, progress=False)
    schema.ensure_schema(engine)
    library = [c.model_copy(update={"offer_cost_yuan": 8.0}) for c in campaigns.load_library()]
    segmentation.segment_customers(engine, engine, D)
    targeting.stage_extracts(engine, engine, D)
    rows = targeting.build_target_list(engine, D, library)

    def timed(cfg):
        t0 = time.monotonic()
        counts = budgets.apply_budgets(engine, D, library, cfg=cfg)
        return time.monotonic() - t0, counts

    free_s, _ = timed(budgets.BudgetConfig(campaigns={}))
    with engine.connect() as conn:
        committed = dict(conn.execute(sa.text("select campaign_code, sum(committed_yuan) from mkt_budget_commit "
                                              "group by campaign_code")).all())
    capped = budgets.BudgetConfig(campaigns={code: budgets.CampaignBudget(
        monthly_yuan=round(float(v) / 2, 2), conversion_prior=0.02) for code, v in committed.items() if v})
    capped_s, counts = timed(capped)
    lines = [f"\n## apply_budgets, {engine.dialect.name}, {args.subscribers:,} subscribers, {rows:,} list rows — "
             f"{dt.datetime.now():%Y-%m-%d %H:%M}",
             "| run | wall time | rows cut |", "| --- | --- | --- |",
             f"| no budgets (cost recorded only) | {free_s:.2f} s | 0 |",
             f"| every campaign capped at half | {capped_s:.2f} s | {counts['cut']:,} |"]
    out = ROOT / "benchmarks" / "results" / "budgets.md"
    out.parent.mkdir(exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
