"""Benchmark (not a test): one whole daily cycle at full scale under the real scheduler.

6.4 million subscribers generated into PostgreSQL (once; reused when the database already holds
them), then the loopback production topology (scripts/topology.sh: PostgreSQL, Redis, api-server,
scheduler, dag-processor, triggerer, two Celery workers, receiver, development SMSC) runs
outbound_daily as HQ triggers it over REST: segment → stage → target (arbitration) → coverage →
validate → publish per county (split, call list rows, SMS rendered into the outbox) → call lists.
The project's clock is set to 06:00 of the cycle day, before the sending window: the send step
waits for 08:00 (rescheduled), so the cycle is measured up to "outbox queued", without sending.

Measured: wall time of each task (from Airflow's task instances), the whole cycle from the first
task's start to the last non-sending task's end, and the peak memory (RSS) of each task's process,
sampled every 0.5 s with psutil by the task's pid.

    .venv/bin/python benchmarks/bench_full_cycle.py [--subscribers 6400000] [--workers 2]

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
    """Peak RSS per process (with its children) of everything under the topology's run directory."""

    def __init__(self, interval: float = 0.5):
        self.interval, self.peak, self.stop = interval, {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            for p in psutil.process_iter(["pid", "memory_info"]):
                try:
                    rss = p.info["memory_info"].rss
                except (psutil.Error, AttributeError):
                    continue
                if rss > self.peak.get(p.info["pid"], 0):
                    self.peak[p.info["pid"]] = rss
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=6_400_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--timeout-minutes", type=float, default=60)
    args = ap.parse_args()

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
    env.pop("AIRFLOW_HOME", None)
    env.update({
        "QZ_TOPO_DIR": str(run_dir), "QZ_TOPO_API_PORT": str(api_port), "QZ_TOPO_REDIS_PORT": str(redis_port),
        "QZ_TOPO_SMSC_PORT": str(smsc_port), "QZ_TOPO_SMSC_HTTP_PORT": str(smsc_http),
        "QZ_TOPO_WORKERS": str(args.workers), "QZ_TOPO_WORKER_CONCURRENCY": str(args.concurrency),
        "AIRFLOW__CORE__PARALLELISM": str(args.workers * args.concurrency),
        "QZ_TOPO_AIRFLOW_DB_URL": urls["airflow"], "QZ_TOPO_MARKETING_URL": urls["marketing"],
        "QZ_TOPO_DATAMART_URL": dm_url,
        # 06:00 on the cycle day: everything up to the outbox runs, the send step waits for 08:00
        "QZ_FAKE_NOW": f"{CYCLE.isoformat()}T06:00:00+08:00",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    })
    script = str(ROOT / "scripts" / "topology.sh")
    sampler = Sampler()
    result = {}
    t_up = time.monotonic()
    try:
        proc = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            print(proc.stderr[-4000:])
            return 1
        info = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        secrets = dict(line.split("=", 1) for line in (run_dir / "secrets.env").read_text().splitlines())
        print(f"topology up in {time.monotonic() - t_up:.0f} s", flush=True)
        api = Api(info["API_URL"], "hq", secrets["HQ_PASSWORD"])
        while "outbound_daily" not in {d["dag_id"] for d in api.call("GET", "/api/v2/dags")["dags"]}:
            time.sleep(2)
        api.call("PATCH", "/api/v2/dags/outbound_daily", {"is_paused": False})
        logical = dt.datetime(CYCLE.year, CYCLE.month, CYCLE.day, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        run_id = f"bench__{CYCLE}"
        sampler.thread.start()
        api.call("POST", "/api/v2/dags/outbound_daily/dagRuns",
                 {"dag_run_id": run_id, "logical_date": logical.astimezone(dt.timezone.utc).isoformat()})
        t0 = time.monotonic()
        path = f"/api/v2/dags/outbound_daily/dagRuns/{run_id}/taskInstances?limit=200"
        pids: dict[tuple, set[int]] = {}
        while True:
            tis = api.call("GET", path)["task_instances"]
            for t in tis:
                if t.get("pid"):
                    pids.setdefault((t["task_id"], t["map_index"]), set()).add(t["pid"])
            work = [t for t in tis if t["task_id"] != "send_sms"]
            failed = [t for t in tis if t["state"] in ("failed", "upstream_failed")]
            waiting = [t for t in tis if t["task_id"] == "send_sms"]
            if failed:
                print("failed:", [(t["task_id"], t["map_index"]) for t in failed])
                break
            if work and all(t["state"] == "success" for t in work) and waiting and all(
                    t["state"] in ("up_for_reschedule", "deferred", "running", "scheduled", "queued")
                    for t in waiting) and len([t for t in work if t["task_id"] == "call_list"]) >= 11:
                break
            if time.monotonic() - t0 > args.timeout_minutes * 60:
                print("timed out")
                break
            time.sleep(3)
        sampler.stop.set()
        tis = api.call("GET", path)["task_instances"]
        result["tis"] = tis
        result["pids"] = {f"{k[0]}[{k[1]}]": sorted(v) for k, v in pids.items()}
    finally:
        sampler.stop.set()
        subprocess.run([script, "stop"], env=env, capture_output=True, text=True, timeout=300)

    tis = [t for t in result.get("tis", []) if t["task_id"] != "send_sms" and t["start_date"]]
    if not tis:
        return 1

    def ts(v):
        return dt.datetime.fromisoformat(v.replace("Z", "+00:00"))

    start = min(ts(t["start_date"]) for t in tis)
    end = max(ts(t["end_date"]) for t in tis if t["end_date"])
    rows, peak_all = [], 0
    for t in sorted(tis, key=lambda t: ts(t["start_date"])):
        key = f"{t['task_id']}[{t['map_index']}]"
        peak = max((sampler.peak.get(p, 0) for p in result["pids"].get(key, [])), default=0)
        peak_all = max(peak_all, peak)
        rows.append((t["task_id"] + (f"[{t['map_index']}]" if t["map_index"] >= 0 else ""), t["state"],
                     (ts(t["start_date"]) - start).total_seconds(), t["duration"] or 0.0, peak / 2**20))
    engine = db.make_engine(urls["marketing"])
    with engine.connect() as conn:
        outbox = dict(conn.execute(sa.text("select state, count(*) from sms_outbox group by state")).all())
        contacts = dict(conn.execute(sa.text("select channel, count(*) from mkt_contact group by channel")).all())
    engine.dispose()
    wall = (end - start).total_seconds()
    by_stage: dict[str, list] = {}
    for name, _state, _at, secs, mb in rows:
        stage = name.split("[")[0]
        by_stage.setdefault(stage, []).append((secs, mb))
    lines = [f"## {dt.datetime.now():%Y-%m-%d %H:%M} — {args.subscribers:,} subscribers, "
             f"{args.workers} Celery workers × {args.concurrency}, PostgreSQL",
             "",
             f"`.venv/bin/python benchmarks/bench_full_cycle.py --subscribers {args.subscribers}` "
             f"({os.cpu_count()} cores; data mart generation {gen_s:.0f} s, not counted)",
             "",
             f"- **whole cycle, first task start → last task before sending: {wall / 60:.1f} min ({wall:.0f} s)**",
             f"- peak RSS of any task process: {peak_all / 2**30:.2f} GB",
             f"- outbox: {', '.join(f'{k} {v:,}' for k, v in sorted(outbox.items()))}; contacts: "
             + ", ".join(f"{k} {v:,}" for k, v in sorted(contacts.items())),
             "",
             "| stage | tasks | wall s (sum of task durations) | longest task s | peak RSS MB (max task) |",
             "| --- | --- | --- | --- | --- |"]
    for stage, vals in by_stage.items():
        lines.append(f"| {stage} | {len(vals)} | {sum(v[0] for v in vals):.0f} | {max(v[0] for v in vals):.0f} | "
                     f"{max(v[1] for v in vals):.0f} |")
    lines += ["", "| task | state | starts at s | duration s | peak RSS MB |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {n} | {st} | {at:.0f} | {secs:.0f} | {mb:.0f} |" for n, st, at, secs, mb in rows]
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
