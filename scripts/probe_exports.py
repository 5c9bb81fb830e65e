"""Count formula cells (XLSX) and formula-like cells (CSV) in the call lists of a cycle whose data mart names
customers with CSV-injection payloads (SQLite, in a temporary folder). Usage: .venv/bin/python scripts/probe_exports.py [subscribers]"""
import datetime as dt, os, sys, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
tmp = Path(tempfile.mkdtemp())
os.environ["QZ_OUTPUT_DIR"] = str(tmp / "out")
import sqlalchemy as sa
from export_support import NAMES, TRIGGERS, formula_cells, read_csv
from qz_outbound import call_lists, campaigns, clock, counties, db, publish, schema, segmentation, targeting
from qz_outbound.dev.demo_datamart import generate
D = dt.date(2026, 11, 23)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
engine = db.make_engine(f"sqlite:///{tmp / 'one.db'}")
clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
generate(engine, n, D, progress=False)
with engine.begin() as conn:
    nums = list(conn.execute(sa.text("select msisdn from subscriber order by msisdn")).scalars())
    conn.execute(sa.text("update subscriber set customer_name = :n where msisdn = :m"),
                 [{"n": NAMES[i % len(NAMES)], "m": m} for i, m in enumerate(nums)])
library = campaigns.load_library()
schema.ensure_schema(engine)
segmentation.segment_customers(engine, engine, D)
targeting.stage_extracts(engine, engine, D)
targeting.build_target_list(engine, D, library)
f = bad = rows = 0
for county in counties.county_names():
    publish.publish_county(engine, D, county, library)
    r = call_lists.write_call_lists(engine, D, county, library)
    rows += r["rows"]
    f += formula_cells(tmp / "out" / r["xlsx"])
    bad += sum(1 for row in read_csv(tmp / "out" / r["csv"])[1:] for c in row if c.startswith(TRIGGERS))
print(f"subscribers {n}: call-list rows {rows}, XLSX <f> cells {f}, CSV cells starting with = + - @ tab CR {bad}")
