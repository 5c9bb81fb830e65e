"""Benchmark (not a test): one county's call-centre follow-ups (redials and callbacks) against a
month of call history, the step ``publish_county`` runs first (``qz_outbound.callcentre.publish_followups``,
``include/sql/call_followups.sql``).

Fills the database named by URL (SQLite file or an empty PostgreSQL database) with DAYS days × 11
counties × CALLS call contacts, each with one uploaded outcome (accepted, refused, no_answer ×2,
busy, callback, wrong_number at random), and the cycle's snapshot, then times one county's
follow-ups for the next day (capacity 800).

    .venv/bin/python benchmarks/bench_callcentre.py sqlite:////tmp/cc.db 30 800
    .venv/bin/python benchmarks/bench_callcentre.py postgresql+psycopg://postgres@127.0.0.1:5433/qz_ccbench 30 800
"""
import datetime as dt, random, sys, time
import sqlalchemy as sa
from qz_outbound import callcentre, clock, db, schema
from qz_outbound.portal.schema import mkt_call_outcome

url = sys.argv[1]
days, calls, counties = int(sys.argv[2]), int(sys.argv[3]), 11
eng = db.make_engine(url)
schema.ensure_schema(eng)
D = dt.date(2026, 11, 23)
rnd = random.Random(1)
codes = [f"3505{i:02d}" for i in range(counties)]
with eng.begin() as conn:
    for n in range(1, days + 1):
        day = D - dt.timedelta(days=n)
        rows, outs = [], []
        for ci, county in enumerate(codes):
            for k in range(calls):
                m = f"13{ci:02d}{n:03d}{k:04d}"
                cid = f"C{day:%Y%m%d}-{m}"
                rows.append(dict(contact_id=cid, cycle_date=day, msisdn=m, county_code=county, campaign_code="2141-001",
                                 product_code="P", channel="call", segment_code="41-x", status="called",
                                 created_at=dt.datetime.combine(day, dt.time(5), tzinfo=clock.SHANGHAI)))
                o = rnd.choice(["accepted", "refused", "no_answer", "no_answer", "busy", "callback", "wrong_number"])
                outs.append(dict(contact_id=cid, outcome=o, called_at=dt.datetime.combine(day, dt.time(10), tzinfo=clock.SHANGHAI),
                                 called_at_given=True, cycle_date=day, county_code=county, msisdn=m, campaign_code="2141-001",
                                 upload_id="U", loaded_at=dt.datetime.combine(day, dt.time(20), tzinfo=clock.SHANGHAI)))
        conn.execute(schema.mkt_contact.insert(), rows)
        conn.execute(mkt_call_outcome.insert(), outs)
    if eng.dialect.name == "postgresql":
        conn.exec_driver_sql(f"create table if not exists mkt_segment_snapshot_{D:%Y%m%d} partition of mkt_segment_snapshot for values in ('{D}')")
    snap = [dict(cycle_date=D, msisdn=r["msisdn"], county_code=r["county_code"], stability_type="41", spend_tier=9, voice_tier=1,
                 data_tier=1, tenure_tier=1, segment_code="41", status="active", tenure_months=1, spend_m0=1, voice_m0=1,
                 data_m0=1, open_date=D) for r in conn.execute(sa.select(schema.mkt_contact.c.msisdn, schema.mkt_contact.c.county_code)).mappings()]
    conn.execute(schema.mkt_segment_snapshot.insert(), snap)
if eng.dialect.name == "postgresql":
    with eng.connect() as conn:
        conn.exec_driver_sql("analyze")
cfg = callcentre.Redial()
with eng.begin() as conn:
    t = time.monotonic()
    n = callcentre.publish_followups(conn, D, codes[2], 800, cfg, clock.now())
    took = time.monotonic() - t
print(f"{eng.dialect.name}: history {days} days x {counties} counties x {calls} calls = {days*counties*calls:,} call contacts "
      f"and outcomes; one county's follow-ups: {n} rows in {took:.2f} s")
