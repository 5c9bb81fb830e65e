"""Benchmark: the learning loop's cost on PostgreSQL (docs/learning.md), on the simulated market of
tests/learning_sim.py: the offer values of a day, and the target list in mode fixed without
exploration (the list as before the learning loop) against mode learned with 10% exploration.

    QZ_PG_PORT=5471 .venv/bin/python benchmarks/bench_learning.py [customers] [cycles]

Results are appended to benchmarks/results/learning.md.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import learning_sim as ls  # noqa: E402

from qz_outbound import db, targeting  # noqa: E402
from qz_outbound.learning import values  # noqa: E402


def main(customers: int = 100_000, cycles: int = 3) -> None:
    url = subprocess.run([str(ROOT / "scripts/services/postgres.sh")], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    admin = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql('drop database if exists "qz_bench_learning" with (force)')
        conn.exec_driver_sql('create database "qz_bench_learning"')
    engine = db.make_engine(sa.make_url(url).set(database="qz_bench_learning"))
    sim = ls.Simulation(engine, customers=customers)
    started = time.monotonic()
    sim.run(cycles)
    history = time.monotonic() - started
    day = ls.START + dt.timedelta(days=cycles)
    sim._snapshot(day)
    with engine.begin() as conn:
        conn.exec_driver_sql("analyze")

    def timed(fn, repeat=3):
        best = None
        for _ in range(repeat):
            t = time.monotonic()
            result = fn()
            best = min(best or 1e9, time.monotonic() - t)
        return best, result

    lib = ls.library()
    secs_values, out = timed(lambda: values.compute_offer_values(engine, day, lib, sim.learning))
    fixed_cfg = sim.learning.model_copy(update={"mode": "fixed", "exploration_share": 0.0})
    secs_fixed, n_fixed = timed(lambda: targeting.build_target_list(
        engine, day, lib, policy=ls.RELAXED, channels=ls.CHANNELS, learning=fixed_cfg))
    secs_learned, n_learned = timed(lambda: targeting.build_target_list(
        engine, day, lib, policy=ls.RELAXED, channels=ls.CHANNELS, learning=sim.learning, allow_learned=True))
    lines = [f"\n## learning loop on PostgreSQL, {customers:,} customers, {cycles} cycles of history, "
             f"2 campaigns — {dt.datetime.now():%Y-%m-%d %H:%M}",
             "| step | best of 3 | rows |", "| --- | --- | --- |",
             f"| offer values ({out['offers_measured']:,} offers measured) | {secs_values:.2f} s "
             f"| {out['cells']:,} cells |",
             f"| target list, mode fixed, no exploration | {secs_fixed:.2f} s | {n_fixed:,} |",
             f"| target list, mode learned, 10% exploration | {secs_learned:.2f} s | {n_learned:,} |",
             f"\n(simulated history: {history:.0f} s for {cycles} cycles, snapshot, publish and conversions included)"]
    text = "\n".join(lines)
    print(text)
    with open(ROOT / "benchmarks" / "results" / "learning.md", "a", encoding="utf-8") as f:
        f.write(text + "\n")
    engine.dispose()
    with admin.connect() as conn:
        conn.exec_driver_sql('drop database if exists "qz_bench_learning" with (force)')


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
