"""Check (not a test): segmentation by this checkout and by another git ref give the same snapshot,
row for row, on the same data mart.

Exports the ref's ``qz_outbound``, ``include`` and ``config`` with ``git archive`` into a temporary
folder, runs ``segment_customers`` with that code and with this checkout's, one after the other, on
the same data mart and marketing_db, and compares an ordered hash of the cycle's snapshot (every
column of every row, ordered by msisdn, through the DB-API's own Python values). Prints both hashes,
row counts and times; exits 1 when they differ.

    .venv/bin/python benchmarks/snapshot_identical.py --ref main \\
        --datamart postgresql+psycopg://postgres@127.0.0.1:5447/qz_bench_dm
    .venv/bin/python benchmarks/snapshot_identical.py --ref main \\
        --datamart sqlite:///var/bench/bench_dm.db --marketing sqlite:///var/bench/bench_mk.db

(marketing_db defaults to the data mart; it must already be migrated, as the benchmarks leave it.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
D = dt.date(2026, 11, 23)

# Runs in a child process whose sys.path starts with the code under test.
CHILD = r"""
import datetime as dt, hashlib, json, sys, time
code, dm_url, mk_url, day = sys.argv[1:5]
sys.path.insert(0, code)
import sqlalchemy as sa
from qz_outbound import db, segmentation
assert segmentation.__file__.startswith(code), segmentation.__file__
d = dt.date.fromisoformat(day)
dm, mk = db.make_engine(dm_url), db.make_engine(mk_url)
t = time.perf_counter()
n = segmentation.segment_customers(dm, mk, d)
seconds = time.perf_counter() - t
h = hashlib.sha256()
rows = 0
cols = ", ".join(segmentation.SNAPSHOT_COLUMNS)
with mk.connect().execution_options(stream_results=True, yield_per=100_000) as conn:
    result = conn.execute(sa.text(f"select {cols} from mkt_segment_snapshot where cycle_date = :d order by msisdn")
                          .bindparams(sa.bindparam("d", type_=sa.Date)), {"d": d})
    for part in result.partitions(100_000):
        for row in part:
            h.update(repr(tuple(row)).encode())
            rows += 1
print(json.dumps({"code": code, "landed": n, "rows": rows, "sha256": h.hexdigest(), "seconds": round(seconds, 1)}))
"""


def run(code: Path, dm: str, mk: str, day: dt.date) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(code), dm, mk, day.isoformat()],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"segmentation with the code in {code} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="main", help="git ref to compare with (default main)")
    ap.add_argument("--datamart", required=True, help="SQLAlchemy URL of the data mart")
    ap.add_argument("--marketing", help="SQLAlchemy URL of marketing_db (default: the data mart)")
    ap.add_argument("--date", default=D.isoformat())
    args = ap.parse_args()
    day = dt.date.fromisoformat(args.date)
    mk = args.marketing or args.datamart
    with tempfile.TemporaryDirectory(prefix="qz-ref-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.ref, "qz_outbound", "include", "config"],
                                 check=True, capture_output=True).stdout
        tar = Path(tmp) / "ref.tar"
        tar.write_bytes(archive)
        with tarfile.open(tar) as t:
            t.extractall(tmp, filter="data")
        ref = run(Path(tmp), args.datamart, mk, day)
        ours = run(ROOT, args.datamart, mk, day)
    same = ref["sha256"] == ours["sha256"] and ref["rows"] == ours["rows"]
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.ref], capture_output=True,
                         text=True).stdout.strip()
    print(f"{args.ref} ({rev}): {ref['rows']:,} rows  sha256 {ref['sha256']}  segmentation {ref['seconds']} s")
    print(f"this checkout: {ours['rows']:,} rows  sha256 {ours['sha256']}  segmentation {ours['seconds']} s")
    print("IDENTICAL" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
