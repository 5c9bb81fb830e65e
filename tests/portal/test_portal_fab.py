"""The county boundary under the FAB auth manager (production): a real Airflow API server with
FabAuthManager, its users and roles made by deploy/airflow-init.sh itself. The county a user sees
comes from its FAB role `county_<code>` alone (not its name, not a second map in config); `hq`
sees every county; a user without a county role gets a clear refusal."""

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
D = "2026-11-23"
JJ, NA = "350582", "350583"
# a password may begin with "-" (secrets.token_urlsafe gives one in 64): airflow-init.sh must not
# read it as an option
COUNTY_PASSWORDS = {"county_350582": "-jj-fab-pass", "county_350583": "na-fab-pass"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FabPortal:
    def __init__(self, base: str, env: dict, passwords: dict):
        self.base, self.env, self.passwords = base, env, passwords
        self._tokens: dict[str, str] = {}

    def token(self, user: str) -> str:
        """Signed in through FAB over the REST API (POST /auth/token)."""
        if user not in self._tokens:
            req = urllib.request.Request(f"{self.base}/auth/token", method="POST",
                                         data=json.dumps({"username": user, "password": self.passwords[user]}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                self._tokens[user] = json.loads(resp.read())["access_token"]
        return self._tokens[user]

    def get(self, path: str, user: str) -> tuple[int, bytes]:
        req = urllib.request.Request(f"{self.base}{path}", headers={"Authorization": f"Bearer {self.token(user)}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def airflow(self, *args: str) -> None:
        subprocess.run([str(Path(sys.executable).with_name("airflow")), *args], env=self.env, check=True,
                       capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def fab(tmp_path_factory):
    base = tmp_path_factory.mktemp("fab")
    out = base / "out"
    marketing = f"sqlite:///{base / 'marketing.db'}"
    engine = db.make_engine(marketing)
    clock.set_now(dt.datetime(2026, 11, 23, 5, 30))
    old_out = os.environ.get("QZ_OUTPUT_DIR")
    os.environ["QZ_OUTPUT_DIR"] = str(out)
    try:
        library = published_cycle(engine, dt.date.fromisoformat(D), 3000)
        for county in (JJ, NA):
            call_lists.write_call_lists(engine, dt.date.fromisoformat(D), county, library)
    finally:
        clock.set_now(None)
        if old_out is None:
            os.environ.pop("QZ_OUTPUT_DIR", None)
        else:
            os.environ["QZ_OUTPUT_DIR"] = old_out
    engine.dispose()

    home = base / "airflow"
    home.mkdir()
    pw_file = base / "county-passwords"
    pw_file.write_text("".join(f"{u}={p}\n" for u, p in COUNTY_PASSWORDS.items()))
    port = _free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update({
        "PATH": f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": "fab-test-secret",
        "AIRFLOW__API__SECRET_KEY": "fab-test-secret",
        "AIRFLOW_CONN_MARKETING_DB": json.dumps({"conn_type": "sqlite", "host": str(base / "marketing.db")}),
        "AIRFLOW_CONN_DATAMART": json.dumps({"conn_type": "sqlite", "host": str(base / "datamart.db")}),
        "AIRFLOW_CONN_SMSC": json.dumps({"conn_type": "generic", "host": "127.0.0.1", "port": 2775}),
        "QZ_OUTPUT_DIR": str(out),
        "QZ_HOME": str(ROOT),
        "PYTHONPATH": str(ROOT / "plugins"),
        # deploy/airflow-init.sh's inputs, as docker-compose.yml gives them
        "ADMIN_PASSWORD": "admin-fab-pass",
        "HQ_PASSWORD": "hq-fab-pass",
        "QZ_COUNTY_PASSWORDS_FILE": str(pw_file),
    })
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    started = time.monotonic()
    init = subprocess.run(["bash", str(ROOT / "deploy/airflow-init.sh")], env=env, capture_output=True, text=True,
                          timeout=900)
    assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-4000:]
    print(f"\ndeploy/airflow-init.sh took {time.monotonic() - started:.0f} s")
    passwords = {"hq": "hq-fab-pass", "admin": "admin-fab-pass", **COUNTY_PASSWORDS,
                 "nocounty": "nc-fab-pass", "county_350526": "moved-fab-pass"}
    portal = FabPortal(f"http://127.0.0.1:{port}", env, passwords)
    # a user with no county role (FAB's Viewer), and one whose name says 350526 but whose role is 350583
    portal.airflow("users", "create", "--username", "nocounty", "--role", "Viewer", "--password", "nc-fab-pass",
                   "--firstname", "n", "--lastname", "c", "--email", "nc@qz-outbound.invalid")
    portal.airflow("users", "create", "--username", "county_350526", "--role", f"county_{NA}",
                   "--password", "moved-fab-pass", "--firstname", "m", "--lastname", "v",
                   "--email", "mv@qz-outbound.invalid")
    log = open(base / "api-server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "api-server", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = portal.base
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5):
                break
        except (urllib.error.URLError, ConnectionError, OSError):
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    if proc.poll() is not None or time.monotonic() >= deadline:
        proc.terminate()
        pytest.fail("airflow api-server (FAB) did not start:\n" + (base / "api-server.log").read_text()[-4000:])
    yield portal
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_fab_county_role_is_the_county_boundary(fab):
    status, body = fab.get("/county-portal/api/lists", "county_350582")
    listing = json.loads(body)
    assert status == 200 and listing["counties"] == [JJ] and listing["hq"] is False
    assert listing["lists"] and {e["county"] for e in listing["lists"]} == {JJ}
    assert fab.get(f"/county-portal/download/{D}/{JJ}/csv", "county_350582")[0] == 200
    status, body = fab.get(f"/county-portal/download/{D}/{NA}/csv", "county_350582")
    assert status == 403 and "本县" in body.decode()
    assert fab.get(f"/county-portal/api/progress?cycle={D}", "county_350582")[0] == 403


def test_fab_the_role_not_the_user_name_decides(fab):
    # user `county_350526` holds the role county_350583: it sees 350583, and not 350526
    status, body = fab.get("/county-portal/api/lists", "county_350526")
    assert status == 200 and json.loads(body)["counties"] == [NA]
    assert fab.get(f"/county-portal/download/{D}/{NA}/csv", "county_350526")[0] == 200
    assert fab.get(f"/county-portal/download/{D}/{JJ}/csv", "county_350526")[0] == 403


def test_fab_hq_role_sees_every_county(fab):
    for user in ("hq", "admin"):
        status, body = fab.get("/county-portal/api/lists", user)
        listing = json.loads(body)
        assert status == 200 and listing["hq"] is True and listing["counties"] == list(counties.county_names())
    assert fab.get(f"/county-portal/download/{D}/{NA}/csv", "hq")[0] == 200
    assert fab.get(f"/county-portal/api/progress?cycle={D}", "hq")[0] == 200


def test_fab_user_without_a_county_role_is_refused_clearly(fab):
    status, body = fab.get("/county-portal/api/lists", "nocounty")
    assert status == 403 and "没有县公司角色" in body.decode("utf-8")
    status, body = fab.get("/county-portal/", "nocounty")
    assert status == 403 and "没有县公司角色" in body.decode("utf-8")


def test_fab_county_role_cannot_read_dags_hq_can(fab):
    """The roles airflow-init.sh made: a county office signs in but reads no DAGs; HQ does."""
    assert fab.get("/api/v2/dags", "county_350582")[0] == 403
    assert fab.get("/api/v2/dags", "hq")[0] == 200
