"""Agent channel latency through Airflow's real scheduler on PostgreSQL (issue 20, item 3).

What runs (all on 127.0.0.1, every process started here and stopped by its pid at the end):

* a throwaway PostgreSQL cluster (``scripts/services/postgres.sh``, ``QZ_PG_PORT``) with three new
  databases: Airflow's metadata, the data mart (demo generator, ``--subscribers``) and
  marketing_db (migrated to head, segmented and targeted for today, like the daily cycle);
* the development SMSC (``qz_outbound.dev.smsc serve``) behind the ``smsc`` connection at a
  contracted rate of 1000/s, window 100 (not the bottleneck: the channel needs ~100 SMS/s);
* Airflow 3 with the LocalExecutor on the PostgreSQL metadata database: ``api-server``,
  ``scheduler`` and ``dag-processor`` (no triggerer: nothing defers), its DAG folder holding only
  ``dags/agent_channel.py`` (of the working tree, or of ``--dag-rev``), unpaused at creation, so
  the scheduler starts its runs on its own schedule;
* a feeder writing top-ups into the data mart's ``recharge_event`` at ``--rate`` per second for
  ``--seconds``, once the DAG's serve task is running (or at ``--start-at``, UTC ``HH:MM:SS``,
  to put a run boundary inside the feed).

Latency of a recommended top-up = the later of its two SMS' last accepted part
(``sms_part.accepted_at``) minus the moment it was written. Reported overall and split by
whether the top-up was written within ``--near`` seconds of a serve task starting or ending (a run
boundary), or while no serve task was running at all (a gap).

The project clock must be inside 08:00-20:00 Asia/Shanghai. If the real time is not, the
benchmark sets ``QZ_CLOCK_OFFSET_SECONDS`` (a whole number of hours, so the clock keeps running
and Airflow's cron boundaries stay on the same minutes) for itself and every process, and says so.

    QZ_PG_PORT=5475 .venv/bin/python benchmarks/bench_agent_scheduler.py --seconds 60   # smoke
    QZ_PG_PORT=5475 .venv/bin/python benchmarks/bench_agent_scheduler.py --seconds 600
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc


def log(msg: str) -> None:
    print(f"[{dt.datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def pg_url(port: int, name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"


def fresh_databases(port: int, names: list[str]) -> None:
    env = dict(os.environ, QZ_PG_PORT=str(port), QZ_PG_DB="postgres")
    subprocess.run(["bash", str(ROOT / "scripts/services/postgres.sh")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    admin = sa.create_engine(pg_url(port, "postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'drop database if exists "{name}" with (force)')
            conn.exec_driver_sql(f'create database "{name}"')
    admin.dispose()


def clock_offset() -> float:
    """Whole hours that put the project clock inside the sending window with an hour to spare."""
    now = dt.datetime.now(SHANGHAI)
    if 8 <= now.hour < 18:
        return 0.0
    return float((10 - now.hour) * 3600)


class Procs:
    """Processes started here, each in its own session; stopped by pid (process group)."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, cmd: list[str], env: dict) -> subprocess.Popen:
        out = open(self.logdir / f"{name}.log", "w")
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=ROOT)
        self.procs[name] = p
        return p

    def stop_all(self) -> None:
        for name, p in reversed(list(self.procs.items())):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 30
        for name, p in self.procs.items():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)   # what is left of its group (task runners)
            except ProcessLookupError:
                pass


def conn_json(port: int, name: str) -> str:
    return json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "postgres",
                       "password": "", "schema": name})


def serve_instances(airflow: sa.Engine) -> list[tuple]:
    with airflow.connect() as conn:
        return conn.execute(sa.text(
            "select run_id, try_number, state, start_date, end_date from task_instance "
            "where dag_id = 'agent_channel' and task_id = 'serve_top_ups' and start_date is not null "
            "order by start_date")).all()


def pct(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def row(label: str, values: list[float]) -> str:
    if not values:
        return f"| {label} | 0 | | | | |"
    v = sorted(values)
    return (f"| {label} | {len(v)} | {statistics.median(v):.1f} s | {pct(v, 90):.1f} s | {pct(v, 99):.1f} s "
            f"| {v[-1]:.1f} s |")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=50_000)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--pg-port", type=int, default=int(os.environ.get("QZ_PG_PORT", "5433")))
    ap.add_argument("--api-port", type=int, default=None, help="default: PG port + 3000")
    ap.add_argument("--smsc-port", type=int, default=None, help="default: PG port + 2000")
    ap.add_argument("--dag-rev", default=None, help="git revision of dags/agent_channel.py (default: working tree)")
    ap.add_argument("--start-at", default=None, help="UTC HH:MM:SS to start feeding (default: when serving)")
    ap.add_argument("--near", type=float, default=30, help="seconds around a serve start/end counted as a boundary")
    ap.add_argument("--drain", type=float, default=480, help="max seconds to wait for the last SMS after feeding")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    port = args.pg_port
    api_port = args.api_port or port + 3000
    smsc_port = args.smsc_port or port + 2000

    work = Path(tempfile.mkdtemp(prefix="qz-agent-sched-"))
    (work / "logs").mkdir()
    dags = work / "dags"
    dags.mkdir()
    if args.dag_rev:
        src = subprocess.run(["git", "show", f"{args.dag_rev}:dags/agent_channel.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        (dags / "agent_channel.py").write_text(src)
    else:
        shutil.copy(ROOT / "dags/agent_channel.py", dags / "agent_channel.py")

    offset = clock_offset()
    os.environ["QZ_CLOCK_OFFSET_SECONDS"] = str(offset)
    os.environ["QZ_SMS_STATE_DIR"] = str(work / "sms-state")
    os.environ["QZ_OUTPUT_DIR"] = str(work / "output")
    from qz_outbound import campaigns, clock, db, migrations, segmentation, targeting
    from qz_outbound.agent import recommend
    from qz_outbound.dev.demo_datamart import generate

    log(f"work dir {work}; real time {dt.datetime.now(SHANGHAI):%H:%M} Asia/Shanghai, project clock "
        f"{clock.now():%Y-%m-%d %H:%M} (QZ_CLOCK_OFFSET_SECONDS={offset:.0f})")
    names = {k: f"qz_sched_{k}" for k in ("airflow", "datamart", "marketing")}
    fresh_databases(port, list(names.values()))

    venv = ROOT / ".venv/bin"
    env = dict(os.environ)
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    env.update({
        "PATH": f"{venv}:{env['PATH']}",
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": __import__("cryptography.fernet", fromlist=["Fernet"]).Fernet.generate_key().decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url(port, names["airflow"]),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(24),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW_CONN_DATAMART": conn_json(port, names["datamart"]),
        "AIRFLOW_CONN_MARKETING_DB": conn_json(port, names["marketing"]),
        "AIRFLOW_CONN_SMSC": json.dumps({"conn_type": "generic", "host": "127.0.0.1", "port": smsc_port,
                                         "login": "QZDEV", "password": "dev",
                                         "extra": {"source_addr": "10658", "rate": 1000, "window": 100}}),
        "GX_ANALYTICS_ENABLED": "False",
    })
    procs = Procs(work / "logs")
    try:
        t0 = time.monotonic()
        migrate = subprocess.Popen([str(venv / "airflow"), "db", "migrate"], env=env, cwd=ROOT,
                                   stdout=open(work / "logs/db-migrate.log", "w"), stderr=subprocess.STDOUT)
        datamart = db.make_engine(pg_url(port, names["datamart"]))
        marketing = db.make_engine(pg_url(port, names["marketing"]))
        today = clock.today()
        generate(datamart, args.subscribers, today, progress=False)
        migrations.upgrade(marketing)
        library = campaigns.load_library()
        segmentation.segment_customers(datamart, marketing, today)
        targeting.stage_extracts(datamart, marketing, today)
        targeting.build_target_list(marketing, today, library)
        with datamart.begin() as conn:
            conn.exec_driver_sql("delete from recharge_event")
            customers = list(conn.execute(sa.text(
                "select msisdn from subscriber where status = 'active' order by msisdn")).scalars())
            agents = list(conn.execute(sa.text("select agent_id from agent order by agent_id")).scalars())
        if migrate.wait() != 0:
            raise SystemExit(f"airflow db migrate failed: {work / 'logs/db-migrate.log'}")
        subprocess.run([str(venv / "airflow"), "pools", "import", str(ROOT / "config/pools.json")], env=env,
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        log(f"setup {time.monotonic() - t0:.0f}s: {len(customers)} active customers, {len(agents)} shops, "
            f"Airflow metadata migrated")

        procs.start("devsmsc", [str(venv / "python"), "-m", "qz_outbound.dev.smsc", "serve", "--port", str(smsc_port),
                                "--http-port", str(smsc_port + 6000), "--system-id", "QZDEV"], env)
        procs.start("api-server", [str(venv / "airflow"), "api-server", "--host", "127.0.0.1", "--port",
                                   str(api_port), "--workers", "1"], env)
        # the scheduler's first tasks fail ("task state changed externally") if the execution API is
        # not up yet: start it once the api-server answers
        health = f"http://127.0.0.1:{api_port}/api/v2/monitor/health"
        until = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(health, timeout=5).read()
                break
            except OSError:
                if time.monotonic() > until or procs.procs["api-server"].poll() is not None:
                    raise SystemExit(f"api-server not healthy: {work / 'logs/api-server.log'}") from None
                time.sleep(1)
        procs.start("scheduler", [str(venv / "airflow"), "scheduler"], env)
        procs.start("dag-processor", [str(venv / "airflow"), "dag-processor"], env)
        airflow = sa.create_engine(pg_url(port, names["airflow"]))
        started_stack = time.monotonic()
        while True:
            for name, p in procs.procs.items():
                if p.poll() is not None:
                    raise SystemExit(f"{name} exited: {work / 'logs' / (name + '.log')}")
            if any(r.state == "running" for r in serve_instances(airflow)):
                break
            if time.monotonic() - started_stack > 900:
                raise SystemExit("no serve task running after 15 min")
            time.sleep(1)
        log(f"serve task running {time.monotonic() - started_stack:.0f}s after the stack started")
        if args.start_at:
            h, m, s = (int(x) for x in args.start_at.split(":"))
            now = dt.datetime.now(UTC)
            target = now.replace(hour=h, minute=m, second=s, microsecond=0)
            wait = (target - now).total_seconds()
            log(f"feeding starts at {args.start_at} UTC ({wait:.0f}s)")
            time.sleep(max(0.0, wait))

        uptime_before = Path("/proc/loadavg").read_text().split()[:3]
        written: dict[str, tuple[dt.datetime, float]] = {}

        def feed():
            n_total = int(args.rate * args.seconds)
            start = time.monotonic()
            i = 0
            while i < n_total:
                due = min(n_total, int((time.monotonic() - start) * args.rate) + 1)
                rows = []
                now = clock.now()
                real = time.time()
                for k in range(i, due):
                    event_id = f"B{k:09d}"
                    rows.append({"e": event_id, "m": customers[(k * 7919) % len(customers)],
                                 "a": agents[k % len(agents)], "y": 50, "t": now.strftime("%Y-%m-%d %H:%M:%S")})
                    written[event_id] = (now, real)
                if rows:
                    with datamart.begin() as conn:
                        conn.execute(sa.text("insert into recharge_event (event_id, msisdn, agent_id, amount_yuan, "
                                             "event_time) values (:e, :m, :a, :y, :t)"), rows)
                i = due
                time.sleep(0.2)

        feed_start = time.time()
        log(f"feeding {args.rate:.0f}/s for {args.seconds:.0f}s")
        feeder = threading.Thread(target=feed)
        feeder.start()
        feeder.join()
        feed_end = time.time()
        log(f"fed {len(written)} top-ups; waiting for decisions and SMS (at most {args.drain:.0f}s)")

        accepted_sql = sa.text(
            "select o.contact_id, max(p.accepted_at) from sms_outbox as o join sms_part as p "
            "on p.contact_id = o.contact_id where o.county_code = 'agent' group by o.contact_id "
            "having count(*) = count(p.accepted_at)")
        deadline = time.monotonic() + args.drain
        while True:
            with marketing.connect() as conn:
                done = conn.execute(sa.text(
                    "select event_id, outcome, contact_id from mkt_agent_event where event_id like 'B%' "
                    "and state = 'done'")).all()
                accepted = dict(conn.execute(accepted_sql).all())
            recommended = [r for r in done if r.outcome == "recommended"]
            complete = sum(1 for r in recommended if r.contact_id in accepted
                           and recommend.shop_message_id(r.contact_id) in accepted)
            if (len(done) == len(written) and complete == len(recommended)) or time.monotonic() > deadline:
                break
            time.sleep(2)
        drained = time.time()
        uptime_after = Path("/proc/loadavg").read_text().split()[:3]
        instances = serve_instances(airflow)
    finally:
        procs.stop_all()

    # serve task starts and ends inside the feed (real time), and the gaps without a serve task
    edges: list[float] = []
    spans: list[tuple[float, float]] = []
    for r in instances:
        s = r.start_date.timestamp()
        e = r.end_date.timestamp() if r.end_date else drained + 1e9
        spans.append((s, e))
        # a serve task starting or stopping while top-ups arrive (not the first start the feed waited for)
        edges += [t for t in ([s] + ([e] if r.end_date else [])) if feed_start < t <= feed_end]

    def serving(t: float) -> bool:
        return any(s <= t <= e for s, e in spans)

    outcomes: dict[str, int] = {}
    lat: dict[str, list[float]] = {"all": [], "near": [], "gap": [], "steady": []}
    missing = 0
    for event_id, outcome, contact_id in done:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome != "recommended":
            continue
        both = [accepted.get(contact_id), accepted.get(recommend.shop_message_id(contact_id))]
        if None in both:
            missing += 1
            continue
        w_clock, w_real = written[event_id]
        last = max(v if v.tzinfo else v.replace(tzinfo=SHANGHAI) for v in both)
        value = (last - w_clock).total_seconds()
        lat["all"].append(value)
        if not serving(w_real):
            lat["gap"].append(value)
        elif any(abs(w_real - t) <= args.near for t in edges):
            lat["near"].append(value)
        else:
            lat["steady"].append(value)

    def fmt(ts: float) -> str:
        return dt.datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")

    print()
    print(f"DAG file: {'dags/agent_channel.py at ' + args.dag_rev if args.dag_rev else 'working tree'}; "
          f"{args.subscribers} subscribers; project clock offset {offset / 3600:+.0f} h")
    print(f"feed {fmt(feed_start)}-{fmt(feed_end)} UTC: {len(written)} top-ups at {args.rate:.0f}/s; "
          f"last SMS {drained - feed_end:.0f}s after the feed ended")
    print(f"load average before {' '.join(uptime_before)}, after {' '.join(uptime_after)}")
    print("serve task instances (UTC): " + "; ".join(
        f"{r.run_id.split('__')[0]}@{r.run_id.split('__')[-1][11:19]} try {r.try_number} {r.state} "
        f"{fmt(r.start_date.timestamp())}-{fmt(r.end_date.timestamp()) if r.end_date else '...'}"
        for r in instances))
    print(f"decided {len(done)} of {len(written)}; outcomes {dict(sorted(outcomes.items()))}; "
          f"recommended without both SMS accepted: {missing}")
    print()
    print("| top-ups (recommended) | n | median | p90 | p99 | max |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(row("all", lat["all"]))
    print(row(f"written within {args.near:.0f} s of a serve task starting or ending", lat["near"]))
    print(row("written while no serve task was running", lat["gap"]))
    print(row("the rest", lat["steady"]))
    if args.keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
