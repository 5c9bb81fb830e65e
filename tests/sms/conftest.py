"""Fixtures for the SMS suite: real SMPP peers, real databases, the project clock.

* the development SMSC runs in a thread of the test process on 127.0.0.1
  (``smsc``), or as a subprocess where a test kills things;
* databases are real: a fresh SQLite file, and a fresh PostgreSQL database on
  the server of ``QZ_TEST_PG_URL`` (the suite's conftest starts it; a missing
  server fails the run, it never skips);
* the clock is frozen at 10:00 Asia/Shanghai unless a test moves it.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from qz_outbound import clock
from qz_outbound.db import make_engine
from qz_outbound.schema import ensure_schema
from qz_outbound.dev.smsc import Behaviour, DevSmsc


@pytest.fixture(autouse=True)
def _clock_and_state(tmp_path, monkeypatch):
    clock.set_now(dt.datetime(2026, 11, 23, 10, 0))
    monkeypatch.setenv("QZ_SMS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("QZ_FAKE_NOW", "2026-11-23T10:00:00")   # for subprocesses
    yield
    clock.set_now(None)


def _sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'marketing.db'}")
    ensure_schema(engine)
    return engine


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = _sqlite(tmp_path)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """The marketing database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        eng = _sqlite(tmp_path)
    else:
        assert os.environ.get("QZ_TEST_PG_URL"), "QZ_TEST_PG_URL is not set: the PostgreSQL tests cannot run"
        url = request.getfixturevalue("pg_database_factory")("qz_sms")
        eng = make_engine(url)
        ensure_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def smsc():
    server = DevSmsc(behaviour=Behaviour(), seed=7).start()
    yield server
    server.stop()




@pytest.fixture(scope="session")
def jasmin():
    """Jasmin 0.11.0 with Redis and RabbitMQ, installed and started by the project's scripts.

    ``scripts/services/start.sh`` is idempotent (a running stack is reused); the
    first install takes a minute or two. A failure fails the tests: never skipped.
    """
    import subprocess

    from qz_outbound.dev.jasmin import JasminPorts

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(["bash", str(root / "scripts/services/start.sh")], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"scripts/services/start.sh failed:\n{proc.stderr[-3000:]}"
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.startswith("QZ_JASMIN_"):
            os.environ[key] = value
    yield JasminPorts.from_env()
    if "jasmin up" in proc.stderr:   # we started it: stop it (one that was running stays)
        subprocess.run(["bash", str(root / "scripts/services/stop.sh")], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def tshark():
    """tshark (Debian) to count submit_sm on the wire; installed here if missing, never skipped."""
    import shutil
    import subprocess

    if not shutil.which("tshark"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "tshark"]
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(cmd, env=env, capture_output=True, check=True)
    assert shutil.which("tshark"), "tshark could not be installed"
    return shutil.which("tshark")
