"""The production docker-compose.yml, started for real and used as HQ and a county office would.

scripts/deploy/images.sh builds (or finds cached) the images from Debian with the lock from a
hashed wheelhouse; `docker compose --profile dev up` starts PostgreSQL, Redis, the init job, the
Airflow services, two Celery workers, the SMS receiver, the demo data mart and the development
SMSC, under a project name of its own (`qzdeploy`) with a generated .env. Then:

* HQ signs in through the FAB auth manager over the REST API, unpauses and triggers
  outbound_daily for the cycle day, polls it to success and reads its task states: the SMS tasks
  ran on both Celery worker containers, two at once;
* a county office user downloads its call list from the portal and is refused (403) another
  county's list, upload and HQ's progress table;
* the development SMSC accepted every queued SMS part exactly once, and no second held more
  submit_sm than the account's rate, counted on the wire (tshark on the compose network's
  bridge, kernel timestamps) and by the SMSC;
* `docker compose down` and `up` again: the marketing data is still there (volumes).

Everything is torn down at the end (`down -v`), whatever happened. About 15 minutes on a loaded
2-core machine with the images cached (875 s measured); the first build adds about 8 minutes.
Figures: docs/deployment-test.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from qz_outbound.sms.limiter import max_in_any_second

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "qzdeploy"
CYCLE = dt.date(2026, 11, 23)
RATE = 40                  # the SMSC account's contracted rate in the test's .env
SUBSCRIBERS = 4000
COUNTY, OTHER = "350582", "350583"
LONG_RUNNING = {"postgres", "redis", "api-server", "scheduler", "dag-processor", "triggerer", "celery-worker",
                "sms-receiver", "devsmsc"}
JOBS = {"airflow-init", "demo-datamart"}

pytestmark = [pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Compose:
    def __init__(self, binary: str, env_file: Path, env: dict, log_dir: Path):
        self.cmd = [binary, "-p", PROJECT, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
                    "-f", str(ROOT / "tests/deploy/compose.test.yml"), "--env-file", str(env_file), "--profile", "dev"]
        self.env, self.log_dir = env, log_dir

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.cmd + list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
        return proc

    def containers(self) -> list[dict]:
        out = self("ps", "-a", "--format", "json").stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_healthy(self, timeout: float = 1500) -> float:
        """Until every long-running service is healthy and both jobs exited 0; seconds taken."""
        t0 = time.monotonic()
        while True:
            cs = self.containers()
            by_service: dict[str, list[dict]] = {}
            for c in cs:
                by_service.setdefault(c["Service"], []).append(c)
            for job in JOBS:
                for c in by_service.get(job, []):
                    if c["State"] == "exited" and c.get("ExitCode", 0) != 0:
                        raise AssertionError(f"{job} failed (exit {c.get('ExitCode')}):\n{self.logs(job)}")
            jobs_done = all(by_service.get(j) and all(c["State"] == "exited" and c.get("ExitCode", 0) == 0
                                                      for c in by_service[j]) for j in JOBS)
            healthy = all(by_service.get(s) and all(c["State"] == "running" and c.get("Health") in ("healthy", "")
                                                    for c in by_service[s]) for s in LONG_RUNNING)
            if jobs_done and healthy and len(by_service.get("celery-worker", [])) == 2:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                state = {c["Name"]: (c["State"], c.get("Health")) for c in cs}
                raise AssertionError(f"not healthy in {timeout:.0f} s: {state}\n{self.logs()}")
            time.sleep(5)

    def logs(self, *services: str) -> str:
        return self("logs", "--no-color", "--tail", "60", *services, check=False).stdout[-8000:]

    def psql(self, db: str, sql: str) -> str:
        return self("exec", "-T", "postgres", "psql", "-U", "postgres", "-d", db, "-At", "-c", sql).stdout.strip()

    def devsmsc(self, path: str):
        code = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8775{path}').read().decode())"
        return json.loads(self("exec", "-T", "devsmsc", "python", "-c", code).stdout)


class Api:
    """Airflow's REST API as a user signed in through the FAB auth manager (POST /auth/token)."""

    def __init__(self, base: str, user: str, password: str):
        self.base = base
        self.token = self.call("POST", "/auth/token", {"username": user, "password": password},
                               auth=False)[1]["access_token"]

    def call(self, method: str, path: str, body=None, auth: bool = True, raw: bytes | None = None,
             headers: dict | None = None):
        h = {"Content-Type": "application/json", **(headers or {})}
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, method=method, headers=h, data=data)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                payload = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        ctype = resp.headers.get("Content-Type", "")
        return status, json.loads(payload or b"null") if "json" in ctype else payload


class Wire:
    """submit_sm into the SMSC's port 2775 on the compose network's bridge (tshark, kernel timestamps)."""

    def __init__(self, interface: str):
        self.proc = subprocess.Popen(
            ["tshark", "-i", interface, "-l", "-f", "tcp dst port 2775", "-d", "tcp.port==2775,smpp",
             "-Y", "smpp.command_id == 0x00000004", "-T", "fields", "-E", "occurrence=a",
             "-e", "frame.time_epoch", "-e", "smpp.command_id"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while True:
            line = self.proc.stderr.readline()
            if not line or "Capturing on" in line:
                break

    def stop(self) -> list[float]:
        time.sleep(1.0)
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=120)
        times: list[float] = []
        for line in out.splitlines():
            stamp, _, commands = line.partition("\t")
            times += [float(stamp)] * sum(1 for c in commands.split(",") if c and int(c, 0) == 4)
        return times


def _ensure_tshark() -> None:
    if shutil.which("tshark"):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "tshark"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(cmd, env=env, capture_output=True, check=True)


def _env_file(path: Path, api_port: int, county_passwords: Path, images: dict) -> dict:
    from cryptography.fernet import Fernet

    s = {k: secrets.token_urlsafe(18) for k in ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MARKETING_DB_PASSWORD",
                                                 "REDIS_PASSWORD", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_JWT_SECRET",
                                                 "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_HQ_PASSWORD")}
    s["AIRFLOW_FERNET_KEY"] = Fernet.generate_key().decode()
    s["AIRFLOW_CONN_DATAMART"] = json.dumps({"conn_type": "postgres", "host": "postgres", "port": 5432,
                                             "login": "postgres", "password": s["POSTGRES_PASSWORD"],
                                             "schema": "datamart"})
    s["AIRFLOW_CONN_MARKETING_DB"] = json.dumps({"conn_type": "postgres", "host": "postgres", "port": 5432,
                                                 "login": "mkt", "password": s["MARKETING_DB_PASSWORD"],
                                                 "schema": "marketing"})
    s["QZ_MARKETING_DB_URL"] = f"postgresql+psycopg://mkt:{s['MARKETING_DB_PASSWORD']}@postgres:5432/marketing"
    s["AIRFLOW_CONN_SMSC"] = json.dumps({"conn_type": "generic", "host": "devsmsc", "port": 2775, "login": "QZDEV",
                                         "password": "dev", "extra": {"source_addr": "10658", "rate": RATE,
                                                                      "window": 20}})
    s.update({"QZ_COUNTY_PASSWORDS_FILE": str(county_passwords), "AIRFLOW_API_BIND": "127.0.0.1",
              "AIRFLOW_API_PORT": str(api_port), "AIRFLOW_WORKERS": "2", "AIRFLOW_WORKER_CONCURRENCY": "2",
              "AIRFLOW_PARALLELISM": "6", "QZ_DEMO_SUBSCRIBERS": str(SUBSCRIBERS), **images})
    path.write_text("".join(f"{k}={v}\n" for k, v in s.items()))
    path.chmod(0o600)
    return s


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("deploy")
    started = time.monotonic()
    built = subprocess.run([str(ROOT / "scripts/deploy/images.sh")], capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, built.stderr[-4000:]
    images = dict(line.split("=", 1) for line in built.stdout.splitlines() if "=" in line)
    build_s = time.monotonic() - started
    binary = subprocess.run([str(ROOT / "scripts/services/compose.sh")], check=True, capture_output=True,
                            text=True, timeout=600).stdout.strip().splitlines()[-1]
    _ensure_tshark()
    county_pw = {COUNTY: secrets.token_urlsafe(12), OTHER: secrets.token_urlsafe(12)}
    pw_file = work / "county-passwords"
    pw_file.write_text("".join(f"county_{c}={p}\n" for c, p in county_pw.items()))
    api_port = _free_port()
    env_file = work / ".env"
    values = _env_file(env_file, api_port, pw_file, images)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    compose = Compose(binary, env_file, env, work)
    compose("down", "-v", "--remove-orphans", check=False)   # what an aborted earlier run left
    sizes = {}
    for ref in (f"qz-outbound:{images['QZ_IMAGE_TAG']}", images["QZ_AIRFLOW_IMAGE"], images["QZ_POSTGRES_IMAGE"],
                images["QZ_REDIS_IMAGE"]):
        out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", ref], capture_output=True, text=True)
        sizes[ref] = round(int(out.stdout.strip()) / 1e6) if out.returncode == 0 else None
    info = {"compose": compose, "api": f"http://127.0.0.1:{api_port}", "values": values, "county_pw": county_pw,
            "build_s": build_s, "sizes": sizes, "started": started}
    try:
        t0 = time.monotonic()
        compose("up", "-d", "--no-build", "--pull", "never", timeout=900)
        compose.wait_healthy()
        info["up_s"] = time.monotonic() - t0
        yield info
    finally:
        (work / "compose.log").write_text(compose("logs", "--no-color", check=False).stdout)
        down = compose("down", "-v", "--remove-orphans", timeout=600, check=False)
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"],
                              capture_output=True, text=True).stdout.split()
        print(f"\nstack: images {build_s:.0f} s, sizes MB {sizes}; whole test {time.monotonic() - started:.0f} s; "
              f"logs in {work / 'compose.log'}")
        assert down.returncode == 0 and not left, (down.stderr[-2000:], left)


def _screenshots(folder: Path, stack, run_id: str) -> None:
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    base = stack["api"]

    def sign_in(page, user, password):
        page.goto(f"{base}/auth/login/")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        page.press("input[name=password]", "Enter")
        page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
        sign_in(page, "hq", stack["values"]["AIRFLOW_HQ_PASSWORD"])
        page.goto(f"{base}/dags/outbound_daily/runs/{run_id}")
        page.wait_for_timeout(8000)
        page.screenshot(path=str(folder / "deploy-airflow-hq.png"), full_page=False)
        page.close()
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        sign_in(page, f"county_{COUNTY}", stack["county_pw"][COUNTY])
        page.goto(f"{base}/county-portal/")
        page.wait_for_timeout(3000)
        page.screenshot(path=str(folder / "deploy-portal-county.png"), full_page=True)
        browser.close()


def _bridge(compose: Compose) -> str:
    net = subprocess.run(["docker", "network", "inspect", "-f", "{{.Id}}", f"{PROJECT}_default"], check=True,
                         capture_output=True, text=True).stdout.strip()
    return "br-" + net[:12]


def test_the_stack_as_hq_and_a_county_office(stack):
    compose: Compose = stack["compose"]
    print(f"\nimages ready in {stack['build_s']:.0f} s (sizes MB: {stack['sizes']}); "
          f"stack healthy in {stack['up_s']:.0f} s")
    hq = Api(stack["api"], "hq", stack["values"]["AIRFLOW_HQ_PASSWORD"])
    deadline = time.monotonic() + 300
    while True:
        status, dags = hq.call("GET", "/api/v2/dags")
        if status == 200 and "outbound_daily" in {d["dag_id"] for d in dags["dags"]}:
            break
        assert time.monotonic() < deadline, f"outbound_daily never appeared ({status})\n{compose.logs('dag-processor')}"
        time.sleep(3)

    wire = Wire(_bridge(compose))
    assert hq.call("PATCH", "/api/v2/dags/outbound_daily", {"is_paused": False})[0] == 200
    logical = dt.datetime(CYCLE.year, CYCLE.month, CYCLE.day, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    run_id = f"hq__{CYCLE}"
    status, run = hq.call("POST", "/api/v2/dags/outbound_daily/dagRuns",
                          {"dag_run_id": run_id, "logical_date": logical.astimezone(dt.timezone.utc).isoformat()})
    assert status == 200 and run["triggering_user_name"] == "hq", run
    t0 = time.monotonic()
    while True:
        state = hq.call("GET", f"/api/v2/dags/outbound_daily/dagRuns/{run_id}")[1]["state"]
        if state in ("success", "failed"):
            break
        assert time.monotonic() - t0 < 1200, "outbound_daily not finished in 20 minutes\n" + compose.logs()
        time.sleep(5)
    run_s = time.monotonic() - t0
    tis = hq.call("GET", f"/api/v2/dags/outbound_daily/dagRuns/{run_id}/taskInstances?limit=200")[1]["task_instances"]
    assert state == "success", ([(t["task_id"], t["map_index"], t["state"]) for t in tis if t["state"] != "success"],
                                compose.logs("celery-worker"))
    assert all(t["state"] == "success" for t in tis)
    print(f"outbound_daily ({SUBSCRIBERS} subscribers) ran {run_s:.0f} s on the stack")

    # the SMS tasks ran on both worker containers, and two of them at once on different ones
    sends = [t for t in tis if t["task_id"] == "send_sms"]
    hosts = {t["hostname"] for t in sends}
    assert len(hosts) == 2, hosts

    def span(t):
        return dt.datetime.fromisoformat(t["start_date"]), dt.datetime.fromisoformat(t["end_date"])

    assert any(a["hostname"] != b["hostname"] and span(a)[0] < span(b)[1] and span(b)[0] < span(a)[1]
               for a in sends for b in sends), [(t["hostname"], t["start_date"], t["end_date"]) for t in sends]

    # the SMSC: every queued part accepted once; the account's rate held on the wire and as it counts
    deadline = time.monotonic() + 120
    while True:
        outbox = dict(line.split("|") for line in compose.psql(
            "marketing", f"select state, count(*) from sms_outbox where cycle_date = '{CYCLE}' group by state").splitlines())
        if set(outbox) == {"delivered"} or time.monotonic() > deadline:
            break
        time.sleep(3)
    on_wire = wire.stop()
    parts = int(compose.psql("marketing", f"select count(*) from sms_part p join sms_outbox o using (contact_id) "
                                          f"where o.cycle_date = '{CYCLE}'"))
    stats = compose.devsmsc("/stats")
    arrivals = compose.devsmsc("/arrivals")
    assert set(outbox) == {"delivered"} and int(outbox["delivered"]) > SUBSCRIBERS // 10, outbox
    assert stats["accepted"] == stats["submits"] == parts, (stats, parts)
    messages = compose.devsmsc("/messages")
    numbers = [m["msisdn"] for m in messages]
    assert len(numbers) == len(set(numbers)) == int(outbox["delivered"])
    assert all(m["complete"] and not m.get("duplicates") for m in messages)
    hist: dict[int, int] = {}
    for t in sorted(on_wire):
        hist[int(t - min(on_wire))] = hist.get(int(t - min(on_wire)), 0) + 1
    print(f"SMSC: {len(on_wire)} submit_sm on the wire from 2 workers, rate {RATE}/s; max in any second: "
          f"on the wire {max_in_any_second(on_wire)}, at the SMSC {max_in_any_second(arrivals)}; "
          f"per-second histogram (wire) {hist}")
    assert len(on_wire) == parts
    assert max_in_any_second(on_wire) <= RATE
    assert max_in_any_second(on_wire) >= RATE * 0.8     # two workers shared the account at its rate

    # a county office: its own call list; another county's list, uploads and HQ's table refused
    county = Api(stack["api"], f"county_{COUNTY}", stack["county_pw"][COUNTY])
    status, body = county.call("GET", f"/county-portal/download/{CYCLE}/{COUNTY}/csv")
    assert status == 200 and body.startswith(b"\xef\xbb\xbf") and body.count(b"\n") > 1
    assert county.call("GET", f"/county-portal/download/{CYCLE}/{OTHER}/csv")[0] == 403
    boundary = "----qzdeploytest"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\n联系编号（回填用）,外呼结果\r\n\r\n--{boundary}--\r\n").encode()
    status, _ = county.call("POST", f"/county-portal/upload/{OTHER}", raw=form,
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 403
    assert county.call("GET", f"/county-portal/api/progress?cycle={CYCLE}")[0] == 403
    status, listing = county.call("GET", "/county-portal/api/lists")
    assert status == 200 and listing["counties"] == [COUNTY]
    assert county.call("GET", "/api/v2/dags")[0] == 403          # a county role reads no DAGs

    shots = os.environ.get("QZ_DEPLOY_SCREENSHOTS")
    if shots:   # the Airflow UI signed in as HQ through FAB, and the portal as the county user
        _screenshots(Path(shots), stack, run_id)

    # down and up again: the marketing data is on the volumes
    before = compose.psql("marketing", f"select count(*) from mkt_contact where cycle_date = '{CYCLE}'")
    assert int(before) > 0
    compose("down", timeout=600)
    t0 = time.monotonic()
    compose("up", "-d", "--no-build", "--pull", "never", timeout=900)
    compose.wait_healthy()
    print(f"down and up again: healthy in {time.monotonic() - t0:.0f} s")
    assert compose.psql("marketing", f"select count(*) from mkt_contact where cycle_date = '{CYCLE}'") == before
    hq = Api(stack["api"], "hq", stack["values"]["AIRFLOW_HQ_PASSWORD"])
    assert hq.call("GET", f"/api/v2/dags/outbound_daily/dagRuns/{run_id}")[1]["state"] == "success"
