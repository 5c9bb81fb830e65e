"""Agent channel latency: from a top-up to both SMS (shop owner, customer) accepted by the SMSC.

Top-ups are written into the data mart's ``recharge_event`` at ``--rate`` per second for
``--seconds`` while the agent loop (``qz_outbound.agent.recommend.serve``, what the DAG's task
runs) polls every ``--poll`` seconds; the development SMSC accepts. For every recommended top-up
the latency is the last accepted part of its two SMS minus the moment the top-up was written.
Goal (issue 8): median < 60 s, p99 < 15 min. Must run inside 08:00-20:00 Asia/Shanghai (the
project clock; set ``QZ_FAKE_NOW`` only for a fixed instant, which would freeze the latencies).

    .venv/bin/python benchmarks/bench_agent_latency.py --subscribers 50000 --rate 50 --seconds 60
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=50_000)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--poll", type=float, default=2)
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: a new SQLite file)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qz-agent-bench-"))
    os.environ.setdefault("QZ_SMS_STATE_DIR", str(work / "state"))
    from qz_outbound import campaigns, clock, db, schema, segmentation, targeting
    from qz_outbound.agent import recommend
    from qz_outbound.dev.demo_datamart import generate
    from qz_outbound.sms import settings_from_connection
    from qz_outbound.dev.smsc import Behaviour, DevSmsc

    engine = db.make_engine(args.db or f"sqlite:///{work / 'bench.db'}")
    today = clock.today()
    t0 = time.monotonic()
    generate(engine, args.subscribers, today, progress=False)
    schema.ensure_schema(engine)
    library = campaigns.load_library()
    segmentation.segment_customers(engine, engine, today)
    targeting.stage_extracts(engine, engine, today)
    targeting.build_target_list(engine, today, library)
    with engine.begin() as conn:
        conn.exec_driver_sql("delete from recharge_event")
        customers = list(conn.execute(sa.text("select msisdn from subscriber where status = 'active' order by msisdn"))
                         .scalars())
        agents = list(conn.execute(sa.text("select agent_id from agent order by agent_id")).scalars())
    print(f"setup {time.monotonic() - t0:.0f}s: {len(customers)} active customers, {len(agents)} shops", flush=True)

    smsc = DevSmsc(behaviour=Behaviour(), seed=1).start()
    smsc_settings = settings_from_connection(dict(
        host="127.0.0.1", port=smsc.port, login="bench", password="pw",
        extra=dict(source_addr="10658", rate=500, window=50)))
    written: dict[str, dt.datetime] = {}
    stop = threading.Event()

    def feed():
        n_total = int(args.rate * args.seconds)
        start = time.monotonic()
        step = 0.2
        i = 0
        while i < n_total:
            due = min(n_total, int((time.monotonic() - start) * args.rate) + 1)
            rows = []
            now = clock.now()
            for k in range(i, due):
                event_id = f"B{k:09d}"
                rows.append({"e": event_id, "m": customers[(k * 7919) % len(customers)], "a": agents[k % len(agents)],
                             "y": 50, "t": now.strftime("%Y-%m-%d %H:%M:%S")})
                written[event_id] = now
            if rows:
                with engine.begin() as conn:
                    conn.execute(sa.text("insert into recharge_event (event_id, msisdn, agent_id, amount_yuan, "
                                         "event_time) values (:e, :m, :a, :y, :t)"), rows)
            i = due
            time.sleep(step)
        stop.set()

    feeder = threading.Thread(target=feed)
    started = time.monotonic()
    feeder.start()
    totals = {}
    while not (stop.is_set() and totals.get("events_new", 1) == 0 and totals.get("sms_submitted", 1) == 0):
        totals = recommend.serve(engine, engine, library, smsc_settings, seconds=0, poll_seconds=args.poll)
        time.sleep(args.poll)
    feeder.join()
    elapsed = time.monotonic() - started
    smsc.stop()

    with engine.connect() as conn:
        done = conn.execute(sa.text(
            "select e.event_id, e.outcome, e.contact_id from mkt_agent_event as e where e.event_id like 'B%'")).all()
        accepted = dict(conn.execute(sa.text(
            "select o.contact_id, max(p.accepted_at) from sms_outbox as o join sms_part as p "
            "on p.contact_id = o.contact_id where o.county_code = 'agent' group by o.contact_id")).all())
    outcomes: dict[str, int] = {}
    latencies = []
    for event_id, outcome, contact_id in done:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome != "recommended":
            continue
        both = [accepted.get(contact_id), accepted.get(recommend.shop_message_id(contact_id))]
        if None in both:
            continue
        stamps = [v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(v) for v in both]
        # SQLite keeps the sender's local (Asia/Shanghai) time without its zone
        last = max(v if v.tzinfo else v.replace(tzinfo=clock.SHANGHAI) for v in stamps)
        latencies.append((last - written[event_id]).total_seconds())
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(f"top-ups written {len(written)} in {args.seconds:.0f}s; all decided after {elapsed:.0f}s")
    print(f"outcomes {dict(sorted(outcomes.items()))}")
    print(f"recommended with both SMS accepted: {len(latencies)}")
    print(f"latency median {statistics.median(latencies):.1f}s  p90 {q[89]:.1f}s  p99 {q[98]:.1f}s  "
          f"max {latencies[-1]:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
