"""A real Airflow API server with the county portal plugin, on 127.0.0.1, for the portal tests.

The server runs in its own process (``airflow api-server``) with SimpleAuthManager users whose
passwords the fixture writes: `hq` (HQ), `county_350582` and `county_350583` (county offices) and
`stranger` (an Airflow user the portal does not know). marketing_db is a SQLite file with a
published cycle and its call lists.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cycle_support import published_cycle
from qz_outbound import call_lists, clock, counties, db

ROOT = Path(__file__).resolve().parents[2]
D = dt.date(2026, 11, 23)
PASSWORDS = {"hq": "hq-pass", "county_350582": "jj-pass", "county_350583": "na-pass", "stranger": "x-pass"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Portal:
    def __init__(self, base: str, out: Path, marketing_url: str, pid: int):
        self.base, self.out, self.marketing_url = base, out, marketing_url
        self.pid = pid                    # the api-server process (memory is measured there)
        self.passwords = dict(PASSWORDS)
        self._tokens: dict[str, str] = {}

    def token(self, user: str) -> str:
        if user not in self._tokens:
            req = urllib.request.Request(f"{self.base}/auth/token", method="POST",
                                         data=json.dumps({"username": user, "password": PASSWORDS[user]}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                self._tokens[user] = json.loads(resp.read())["access_token"]
        return self._tokens[user]

    def request(self, path: str, user: str | None = None, *, data: bytes | None = None,
                headers: dict | None = None, method: str | None = None, timeout: float = 60) -> tuple[int, bytes, dict]:
        """A portal page (``/...``), or Airflow's own REST API (``/api/v2/...``)."""
        h = dict(headers or {})
        if user:
            h["Authorization"] = f"Bearer {self.token(user)}"
        prefix = "" if path.startswith("/api/v2/") else "/county-portal"
        req = urllib.request.Request(f"{self.base}{prefix}{path}", data=data, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def upload(self, county: str, user: str, name: str, content: bytes, accept: str = "application/json"):
        boundary = "----qzportaltest"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.request(f"/upload/{county}", user, data=body, method="POST", timeout=600,
                            headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": accept})


@pytest.fixture(scope="session")
def portal(tmp_path_factory):
    base = tmp_path_factory.mktemp("portal")
    out = base / "out"
    marketing = f"sqlite:///{base / 'marketing.db'}"
    engine = db.make_engine(marketing)
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    old_out = os.environ.get("QZ_OUTPUT_DIR")
    os.environ["QZ_OUTPUT_DIR"] = str(out)
    try:
        library = published_cycle(engine, D, 6000)
        for county in counties.county_names():
            call_lists.write_call_lists(engine, D, county, library)
    finally:
        clock.set_now(None)
        if old_out is None:
            os.environ.pop("QZ_OUTPUT_DIR", None)
        else:
            os.environ["QZ_OUTPUT_DIR"] = old_out
    engine.dispose()

    home = base / "airflow"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    port = _free_port()
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "hq:admin,county_350582:viewer,county_350583:viewer,stranger:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": "portal-test-secret",
        "AIRFLOW__API__SECRET_KEY": "portal-test-secret",
        "AIRFLOW_CONN_MARKETING_DB": json.dumps({"conn_type": "sqlite", "host": str(base / "marketing.db")}),
        "QZ_OUTPUT_DIR": str(out),
        "PYTHONPATH": str(ROOT / "plugins"),
    })
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    # the DAGs in the metadata database, as a dag-processor would leave them: their assets exist
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300)
    log = open(base / "api-server.log", "w")
    proc = subprocess.Popen([airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5):
                break
        except (urllib.error.URLError, ConnectionError, OSError):
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    else:
        proc.terminate()
    if proc.poll() is not None:
        pytest.fail("airflow api-server did not start:\n" + (base / "api-server.log").read_text()[-4000:])
    yield Portal(url, out, marketing, proc.pid)
    if os.environ.get("QZ_PORTAL_LOG"):   # keep the api-server's log where a failing run can read it
        Path(os.environ["QZ_PORTAL_LOG"]).write_text((base / "api-server.log").read_text(errors="replace"))
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
