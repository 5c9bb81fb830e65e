"""Benchmark (not a test): one whole daily cycle at full scale under the real scheduler.

6.4 million subscribers generated into PostgreSQL (once; reused when the database already holds
them), then the loopback production topology (scripts/topology.sh: PostgreSQL, Redis, api-server,
scheduler, dag-processor, triggerer, two Celery workers, receiver, development SMSC) runs
outbound_daily as HQ triggers it over REST: segment → stage → target (arbitration) → coverage →
validate → publish per county (split, call list rows, SMS rendered into the outbox) → call lists →
send per county over SMPP → delivery receipts stored and applied by the receiver.

``--through receipts`` (the default) runs the project's clock from 07:58 of the cycle day
(``QZ_CLOCK_OFFSET_SECONDS``: every process agrees, and the clock keeps running), so the send
step opens at 08:00 and the figure runs from the first task's start to the last SMS accepted by the
SMSC and the last receipt applied. ``--rate`` is the development SMSC's contracted rate (the
account's shared limiter paces both binds to it); ``--send-minutes M`` stops M minutes after
the first accept and reports the sustained rate and the hours of the 08:00–20:00 window the
day's parts need at it (for a contracted rate whose full day would take hours).
``--through outbox`` keeps the old measure: the clock at 06:00, up to "outbox queued".

Measured: wall time of each task (from Airflow's task instances); the milestones (outbox
queued, first and last part accepted, last receipt applied); submits and receipts per minute;
the peak memory (RSS) of each task's process (sampled every 0.5 s with psutil by the task's pid)
and of the services (PostgreSQL's processes summed, development SMSC, receiver); marketing_db's
size before and after the day, by table.

    .venv/bin/python benchmarks/bench_full_cycle.py [--subscribers 6400000] [--workers 2]
        [--through receipts|outbox] [--rate 5000] [--window 100] [--send-minutes M]

Results go to benchmarks/results/full_cycle.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from qz_outbound import db  # noqa: E402

CYCLE = dt.date(2026, 11, 23)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Api:
    def __init__(self, base: str, user: str, password: str):
        self.base = base
        self.token = self.call("POST", "/auth/token", {"username": user, "password": password}, auth=False)[
            "access_token"]

    def call(self, method: str, path: str, body=None, auth: bool = True):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read() or b"null")


class Sampler:
    """Peak RSS per process, and the peak of PostgreSQL's processes summed (shared buffers count once
    per process that touched them: an upper bound)."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.peak, self.pg_peak, self.stop = interval, {}, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            pg = 0
            for p in psutil.process_iter(["pid", "name", "memory_info"]):
                try:
                    rss = p.info["memory_info"].rss
                except (psutil.Error, AttributeError):
                    continue
                if p.info["name"] == "postgres":
                    pg += rss
                if rss > self.peak.get(p.info["pid"], 0):
                    self.peak[p.info["pid"]] = rss
            self.pg_peak = max(self.pg_peak, pg)
            self.stop.wait(self.interval)


def ensure_datamart(admin, url: str, n: int) -> float:
    from qz_outbound.dev.demo_datamart import generate

    name = sa.make_url(url).database
    with admin.connect() as conn:
        exists = conn.execute(sa.text("select 1 from pg_database where datname = :n"), {"n": name}).scalar()
    if exists:
        engine = db.make_engine(url)
        try:
            with engine.connect() as conn:
                have = conn.execute(sa.text("select count(*) from subscriber")).scalar()
        except sa.exc.DBAPIError:
            have = None
        engine.dispose()
        if have == n:
            print(f"data mart {name}: {have:,} subscribers, reused", flush=True)
            return 0.0
        with admin.connect() as conn:
            conn.exec_driver_sql(f'drop database "{name}" with (force)')
    with admin.connect() as conn:
        conn.exec_driver_sql(f'create database "{name}"')
    t0 = time.monotonic()
    engine = db.make_engine(url)
    generate(engine, n, CYCLE, progress=True)
    engine.dispose()
    return time.monotonic() - t0


SIZE_SQL = """select c.relname, pg_total_relation_size(c.oid) from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and n.nspname = 'public' and not c.relispartition"""


def db_sizes(engine) -> tuple[int, dict[str, int]]:
    """marketing_db's size and each table's (partitions counted with their parent)."""
    with engine.connect() as conn:
        total = conn.execute(sa.text("select pg_database_size(current_database())")).scalar()
        tables = dict(conn.execute(sa.text(SIZE_SQL)).all())
        for parent, size in conn.execute(sa.text(
                "select p.relname, sum(pg_total_relation_size(i.inhrelid)) from pg_inherits i "
                "join pg_class p on p.oid = i.inhparent and p.relkind = 'p' group by p.relname")).all():
            tables[parent] = tables.get(parent, 0) + int(size)
    return total, tables


def part_states(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("select state, count(*) from sms_part group by state")).all())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=6_400_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--through", choices=["receipts", "outbox"], default="receipts")
    ap.add_argument("--rate", type=float, default=5000, help="the development SMSC's contracted rate, submit_sm/s")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--send-minutes", type=float, default=None,
                    help="stop this many minutes after the first accept; report the sustained rate")
    ap.add_argument("--poll-seconds", type=float, default=30, help="how often the parts' states are counted")
    ap.add_argument("--timeout-minutes", type=float, default=240)
    args = ap.parse_args()
    sending = args.through == "receipts"

    pg = subprocess.run([str(ROOT / "scripts/services/postgres.sh")], check=True, capture_output=True,
                        text=True).stdout.strip().splitlines()[-1]
    admin = sa.create_engine(sa.make_url(pg).set(database="postgres"), isolation_level="AUTOCOMMIT")
    suffix = "" if args.subscribers == 6_400_000 else f"_{args.subscribers}"
    dm_url = sa.make_url(pg).set(database=f"qz_full_dm{suffix}").render_as_string(hide_password=False)
    gen_s = ensure_datamart(admin, dm_url, args.subscribers)
    urls = {}
    for name in ("airflow", "marketing"):
        with admin.connect() as conn:
            conn.exec_driver_sql(f'drop database if exists "qz_full_{name}" with (force)')
            conn.exec_driver_sql(f'create database "qz_full_{name}"')
        urls[name] = sa.make_url(pg).set(database=f"qz_full_{name}").render_as_string(hide_password=False)

    run_dir = ROOT / "var" / "bench" / "full_cycle"
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    api_port, redis_port, smsc_port, smsc_http = free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    for k in ("AIRFLOW_HOME", "QZ_FAKE_NOW", "QZ_CLOCK_OFFSET_SECONDS"):
        env.pop(k, None)
    tz = dt.timezone(dt.timedelta(hours=8))
    offset = 0.0
    if sending:
        # the project clock reads 07:55 of the cycle day now and keeps running: the cycle runs before
        # the window opens, the send step opens it at 08:00
        offset = (dt.datetime(CYCLE.year, CYCLE.month, CYCLE.day, 7, 55, tzinfo=tz)
                  - dt.datetime.now(dt.timezone.utc)).total_seconds()
        env["QZ_CLOCK_OFFSET_SECONDS"] = f"{offset:.3f}"
    else:
        # 06:00 on the cycle day: everything up to the outbox runs, the send step waits for 08:00
        env["QZ_FAKE_NOW"] = f"{CYCLE.isoformat()}T06:00:00+08:00"
    env.update({
        "QZ_TOPO_DIR": str(run_dir), "QZ_TOPO_API_PORT": str(api_port), "QZ_TOPO_REDIS_PORT": str(redis_port),
        "QZ_TOPO_SMSC_PORT": str(smsc_port), "QZ_TOPO_SMSC_HTTP_PORT": str(smsc_http),
        "QZ_TOPO_SMSC_RATE": f"{args.rate:g}", "QZ_TOPO_SMSC_WINDOW": str(args.window),
        "QZ_TOPO_WORKERS": str(args.workers), "QZ_TOPO_WORKER_CONCURRENCY": str(args.concurrency),
        "AIRFLOW__CORE__PARALLELISM": str(args.workers * args.concurrency),
        "QZ_TOPO_AIRFLOW_DB_URL": urls["airflow"], "QZ_TOPO_MARKETING_URL": urls["marketing"],
        "QZ_TOPO_DATAMART_URL": dm_url,
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    })
    script = str(ROOT / "scripts" / "topology.sh")
    sampler = Sampler()
    marketing = db.make_engine(urls["marketing"])
    result: dict = {"polls": []}
    t_up = time.monotonic()
    try:
        proc = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            print(proc.stderr[-4000:])
            return 1
        info = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        secrets = dict(line.split("=", 1) for line in (run_dir / "secrets.env").read_text().splitlines())
        print(f"topology up in {time.monotonic() - t_up:.0f} s", flush=True)
        services = {f.stem: int(f.read_text().strip()) for f in (run_dir / "pids").glob("*.pid")}
        api = Api(info["API_URL"], "hq", secrets["HQ_PASSWORD"])
        while "outbound_daily" not in {d["dag_id"] for d in api.call("GET", "/api/v2/dags")["dags"]}:
            time.sleep(2)
        result["size_before"] = db_sizes(marketing)
        api.call("PATCH", "/api/v2/dags/outbound_daily", {"is_paused": False})
        logical = dt.datetime(CYCLE.year, CYCLE.month, CYCLE.day, 5, tzinfo=tz)
        run_id = f"bench__{CYCLE}"
        sampler.thread.start()
        api.call("POST", "/api/v2/dags/outbound_daily/dagRuns",
                 {"dag_run_id": run_id, "logical_date": logical.astimezone(dt.timezone.utc).isoformat()})
        t0 = time.monotonic()
        path = f"/api/v2/dags/outbound_daily/dagRuns/{run_id}/taskInstances?limit=200"
        pids: dict[tuple, set[int]] = {}
        first_accept_seen = next_poll = None
        while True:
            tis = api.call("GET", path)["task_instances"]
            for t in tis:
                if t.get("pid"):
                    pids.setdefault((t["task_id"], t["map_index"]), set()).add(t["pid"])
            work = [t for t in tis if t["task_id"] != "send_sms"]
            failed = [t for t in tis if t["state"] in ("failed", "upstream_failed")]
            sends = [t for t in tis if t["task_id"] == "send_sms"]
            work_done = (work and all(t["state"] == "success" for t in work)
                         and len([t for t in work if t["task_id"] == "call_list"]) >= 11)
            if failed:
                print("failed:", [(t["task_id"], t["map_index"]) for t in failed])
                result["failed"] = [(t["task_id"], t["map_index"]) for t in failed]
                break
            now = time.monotonic()
            if sending and work_done and (next_poll is None or now >= next_poll):
                states = part_states(marketing)
                result["polls"].append((time.time(), states))
                next_poll = now + args.poll_seconds
                accepted_total = sum(v for k, v in states.items() if k != "pending")
                print(f"{(now - t0) / 60:6.1f} min  parts: " + ", ".join(f"{k} {v:,}" for k, v in
                                                                         sorted(states.items())), flush=True)
                if accepted_total and first_accept_seen is None:
                    first_accept_seen = now
                outstanding = states.get("pending", 0) + states.get("accepted", 0)
                if len(sends) >= 11 and all(t["state"] == "success" for t in sends) and outstanding == 0:
                    result["done"] = "all parts have their final state"
                    break
                if (args.send_minutes and first_accept_seen is not None
                        and now - first_accept_seen >= args.send_minutes * 60):
                    result["done"] = f"stopped {args.send_minutes:g} min after the first accept"
                    break
            if not sending and work_done and sends and all(
                    t["state"] in ("up_for_reschedule", "deferred", "running", "scheduled", "queued")
                    for t in sends):
                break
            if now - t0 > args.timeout_minutes * 60:
                print("timed out")
                result["done"] = "timed out"
                break
            time.sleep(3)
        sampler.stop.set()
        tis = api.call("GET", path)["task_instances"]
        result["tis"] = tis
        result["pids"] = {f"{k[0]}[{k[1]}]": sorted(v) for k, v in pids.items()}
        result["size_after"] = db_sizes(marketing)
    finally:
        sampler.stop.set()
        subprocess.run([script, "stop"], env=env, capture_output=True, text=True, timeout=300)

    def ts(v):
        return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))

    all_tis = [t for t in result.get("tis", []) if t["start_date"]]
    tis = [t for t in all_tis if t["task_id"] != "send_sms"]
    if not tis:
        return 1
    start = min(ts(t["start_date"]) for t in tis)
    end = max(ts(t["end_date"]) for t in tis if t["end_date"])
    rows, peak_all = [], 0
    for t in sorted(all_tis, key=lambda t: ts(t["start_date"])):
        key = f"{t['task_id']}[{t['map_index']}]"
        peak = max((sampler.peak.get(p, 0) for p in result["pids"].get(key, [])), default=0)
        peak_all = max(peak_all, peak)
        rows.append((t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else ""), t["state"],
                     (ts(t["start_date"]) - start).total_seconds(), t["duration"] or 0.0, peak / 2**20))
    shift = dt.timedelta(seconds=offset)  # project clock - real clock

    def real(v):
        return v - shift if v is not None else None

    with marketing.connect() as conn:
        outbox = dict(conn.execute(sa.text("select state, count(*) from sms_outbox group by state")).all())
        contacts = dict(conn.execute(sa.text("select channel, count(*) from mkt_contact group by channel")).all())
        parts = dict(conn.execute(sa.text("select state, count(*) from sms_part group by state")).all())
        first_acc, last_acc, last_rcpt = conn.execute(sa.text(
            "select min(accepted_at), max(accepted_at), max(receipt_at) from sms_part")).one()
        per_minute = conn.execute(sa.text(
            "select m, sum(a), sum(r) from ("
            " select date_trunc('minute', accepted_at at time zone 'Asia/Shanghai') m, 1 a, 0 r from sms_part where accepted_at is not null"
            " union all select date_trunc('minute', receipt_at at time zone 'Asia/Shanghai'), 0, 1 from sms_part where receipt_at is not null"
            ") x group by m order by m")).all()
    total_parts = sum(parts.values())
    wall = (end - start).total_seconds()
    by_stage: dict[str, list] = {}
    for name, _state, _at, secs, mb in rows:
        by_stage.setdefault(name.split("[")[0], []).append((secs, mb))
    head = f"{args.through}, contracted rate {args.rate:g}/s" if sending else "up to the outbox"
    lines = [f"## {dt.datetime.now():%Y-%m-%d %H:%M} — {args.subscribers:,} subscribers, "
             f"{args.workers} Celery workers × {args.concurrency}, PostgreSQL, {head}",
             "",
             f"`.venv/bin/python benchmarks/bench_full_cycle.py --subscribers {args.subscribers} --through "
             f"{args.through}" + (f" --rate {args.rate:g} --window {args.window}" if sending else "")
             + (f" --send-minutes {args.send_minutes:g}" if args.send_minutes else "")
             + f"` ({os.cpu_count()} cores; data mart generation {gen_s:.0f} s, not counted)",
             "",
             f"- cycle, first task start → last task before sending (outbox queued): **{wall / 60:.1f} min "
             f"({wall:.0f} s)**"]
    if sending and first_acc is not None:
        fa, la = real(first_acc), real(last_acc)
        lines.append(f"- first part accepted by the SMSC at +{(fa - start).total_seconds() / 60:.1f} min "
                     f"(the window opened at 08:00 project time, +{(real(dt.datetime(CYCLE.year, CYCLE.month, CYCLE.day, 8, tzinfo=tz)) - start).total_seconds() / 60:.1f} min)")
        lines.append(f"- last part accepted at +{(la - start).total_seconds() / 60:.1f} min: "
                     f"**{(la - fa).total_seconds() / 60:.1f} min of sending**")
        if last_rcpt is not None:
            lines.append(f"- last receipt received at +{(real(last_rcpt) - start).total_seconds() / 60:.1f} min")
        done_polls = [p for p in result["polls"]
                      if p[1].get("pending", 0) + p[1].get("accepted", 0) == 0]
        if done_polls and result.get("done") == "all parts have their final state":
            t_done = dt.datetime.fromtimestamp(done_polls[0][0], dt.timezone.utc)
            lines.append(f"- every part's receipt applied (seen by the {args.poll_seconds:g}-s poll) at "
                         f"+{(t_done - start).total_seconds() / 60:.1f} min: **whole day "
                         f"{(t_done - start).total_seconds() / 60:.1f} min**")
        lines.append(f"- ended: {result.get('done')}")
        # sustained rate: from one minute after the first accept to the last accept
        t1 = first_acc + dt.timedelta(minutes=1)
        with marketing.connect() as conn:
            n_sus = conn.execute(sa.text("select count(*) from sms_part where accepted_at >= :a and accepted_at <= :b"),
                                 {"a": t1, "b": last_acc}).scalar()
        span = (last_acc - t1).total_seconds()
        if span > 30:
            rate = n_sus / span
            hours = total_parts / rate / 3600
            lines.append(f"- sustained rate (first accept + 1 min → last accept): **{rate:,.0f} parts/s** "
                         f"({rate / args.rate:.0%} of the contracted {args.rate:g}/s)")
            left = (f"{12 - hours:.1f} h of the window left" if hours <= 12 else
                    f"{total_parts - rate * 12 * 3600:,.0f} parts left for the next cycle's send")
            lines.append(f"- the day's {total_parts:,} parts at that rate: **{hours:.2f} h** of the 12-h "
                         f"08:00–20:00 window; {left}")
    lines += [f"- outbox: {', '.join(f'{k} {v:,}' for k, v in sorted(outbox.items()))}; parts: "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(parts.items())) + "; contacts: "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(contacts.items())),
              f"- peak RSS of any task process: {peak_all / 2**30:.2f} GB; services: "
              + ", ".join(f"{name} {sampler.peak.get(pid, 0) / 2**20:.0f} MB"
                          for name, pid in sorted(services.items()))
              + f"; PostgreSQL's processes summed {sampler.pg_peak / 2**30:.1f} GB"]
    if "size_before" in result and "size_after" in result:
        (b, bt), (a, at) = result["size_before"], result["size_after"]
        lines.append(f"- marketing_db: {b / 2**20:,.0f} MB before the day, {a / 2**20:,.0f} MB after: "
                     f"**+{(a - b) / 2**30:.2f} GB**; by table (growth): "
                     + ", ".join(f"{k} +{(at[k] - bt.get(k, 0)) / 2**20:,.0f} MB" for k in
                                 sorted(at, key=lambda k: at[k] - bt.get(k, 0), reverse=True)[:8]))
    lines += ["",
              "| stage | tasks | wall s (sum of task durations) | longest task s | peak RSS MB (max task) |",
              "| --- | --- | --- | --- | --- |"]
    for stage, vals in by_stage.items():
        lines.append(f"| {stage} | {len(vals)} | {sum(v[0] for v in vals):.0f} | {max(v[0] for v in vals):.0f} | "
                     f"{max(v[1] for v in vals):.0f} |")
    if sending and per_minute:
        lines += ["", "| minute (project clock) | parts accepted | receipts received |", "| --- | --- | --- |"]
        lines += [f"| {m:%H:%M} | {a:,} | {r:,} |" for m, a, r in per_minute]
    lines += ["", "| task | state | starts at s | duration s | peak RSS MB |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {n} | {st} | {at:.0f} | {secs:.0f} | {mb:.0f} |" for n, st, at, secs, mb in rows]
    marketing.dispose()
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / "full_cycle.md"
    if not out.exists():
        out.write_text("# One whole daily cycle at full scale under the real scheduler (CeleryExecutor)\n\n")
    with out.open("a", encoding="utf-8") as f:
        f.write("\n" + text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
