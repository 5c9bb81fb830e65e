"""Segmentation's wall time by phase, against the bare scan of the same run (not a test).

On an existing data mart (PostgreSQL), in one run:

* the bare aggregation scan as ``bench_segmentation.py`` defines it (warmed once, then the fastest of
  three);
* ``segment_customers`` as the DAG runs it, with its phases timed (the usage fingerprint, the
  usage pivot's build, writing the stage: the slice statements, or when marketing_db is another
  database the COPY streams (usage grouped inline) or the relay (the customers' own columns copied
  across, then the slice statements against the pivot); the swap: primary key, check, attach, analyze; the purge):
  once with the usage grouped in the cycle's own statement (``reuse_usage_pivot: false``, what
  every cycle did before the pivot), once building the month's usage pivot (what the first cycle
  of a month does), then ``--repeat`` times reading it (every other cycle of the month);
* ``--slices N`` overrides ``parallel_slices`` of config/segmentation.yaml for the run;
* a fingerprint of the cycle's snapshot (md5 over every row in msisdn order), so two runs with
  different settings can be shown to give the same rows.

    .venv/bin/python benchmarks/segmentation_phases.py --datamart postgresql+psycopg://postgres@127.0.0.1:5433/qz_full_dm
    .venv/bin/python benchmarks/segmentation_phases.py --datamart …/qz_full_dm --slices 1
    .venv/bin/python benchmarks/segmentation_phases.py --datamart …/qz_full_dm --marketing …/qz_full_marketing

The data mart ``bench_full_cycle.py`` leaves (``qz_full_dm``, 6.4 M subscribers) carries the
marketing tables too, so ``--marketing`` defaults to the same database.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_segmentation import D, bare_scan, settle  # noqa: E402  (the scan as the benchmark defines it)
from qz_outbound import db, schema, segmentation  # noqa: E402
PIVOT_PHASES = {"usage_fingerprint": "usage fingerprint", "usage_pivot": "usage pivot (fingerprint, build if due)"}
PHASES = {"_insert_slices": "stage written (slice statements)", "_copy_slices": "stage written (COPY streams)",
          "_relay_slices": "stage written (customers' own columns copied across, then the slice statements)",
          "_swap_partition": "primary key, attach, analyze", "drop_cycles_before": "purge of old cycles"}


def timed_scan(engine, times: int = 3) -> float:
    """The fastest of ``times`` bare scans after a warm-up: the floor at its lowest, so the ratios are
    the least flattering (one scan varied from 8.7 to 10.3 s between runs on this machine)."""
    bare_scan(engine)   # warm the cache, as bench_segmentation.py does
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        bare_scan(engine)
        best = min(best, time.perf_counter() - started)
    return best


def fingerprint(engine, table: str = "mkt_segment_snapshot") -> str:
    """md5 over every row of the cycle's rows in msisdn order: equal fingerprints, equal rows."""
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            f"select md5(string_agg(md5(t::text), '' order by msisdn)) from {table} as t "
            f"where cycle_date = date '{D}'").scalar()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datamart", required=True)
    ap.add_argument("--marketing", help="marketing_db (default: the data mart's database)")
    ap.add_argument("--slices", type=int, help="parallel_slices for this run (default: the config's)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    dm = db.make_engine(args.datamart)
    mk = db.make_engine(args.marketing) if args.marketing else dm
    cfg = segmentation.load_config()
    if args.slices:
        cfg = cfg.model_copy(update={"parallel_slices": args.slices})

    schema.ensure_schema(mk)   # the usage pivot's tables, on a data mart built before them
    spent: dict[str, float] = {}
    for module, name in [(db, n) for n in PHASES] + [(segmentation, n) for n in PIVOT_PHASES]:
        original = getattr(module, name)

        @functools.wraps(original)
        def timed(*a, _f=original, _n=name, **k):
            started = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                spent[_n] = spent.get(_n, 0.0) + time.perf_counter() - started
        setattr(module, name, timed)

    scan = timed_scan(dm)
    print(f"bare aggregation scan: {scan:.1f} s")
    print(f"slices: {cfg.parallel_slices}; marketing_db: {'same database' if mk is dm else 'another database'}")
    names = PHASES | PIVOT_PHASES
    runs = [("usage grouped inline", cfg.model_copy(update={"reuse_usage_pivot": False})),
            ("usage pivot built", cfg)] + [("usage pivot reused", cfg)] * args.repeat
    if not segmentation.pivot_reachable(dm, mk):
        runs = [("usage grouped inline (no pivot between these databases)", cfg)] * (1 + args.repeat)
    for label, run_cfg in runs:
        if label == "usage pivot built":   # forget the month's pivot: this run builds it, as a month's first cycle
            with mk.begin() as conn:
                conn.execute(schema.mkt_usage_pivot_source.delete())
        settle(mk)
        spent.clear()
        started = time.perf_counter()
        n = segmentation.segment_customers(dm, mk, D, run_cfg)
        total = time.perf_counter() - started
        parts = ", ".join(f"{names[k]} {v:.1f} s" for k, v in spent.items())
        print(f"{label}: {n:,} customers in {total:.1f} s = {total / scan:.2f}× the scan ({parts}); "
              f"snapshot fingerprint {fingerprint(mk)}", flush=True)


if __name__ == "__main__":
    main()
