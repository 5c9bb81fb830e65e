"""check_config stops the cycle before anything is published when a connection is broken: a missing
field, an extra out of its bounds, an unreachable database, marketing_db behind the head revision.
Each run goes through Airflow (dag.test); the task's log names the connection, the field and what is
allowed, and nothing reaches mkt_contact or the outbox."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket

import pytest
import sqlalchemy as sa

from qz_outbound import db
from qz_outbound.dev.demo_datamart import generate

from dag_support import ROOT, migrate_marketing_db

CYCLE = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("preflight")
    generate(db.make_engine(f"sqlite:///{base / 'datamart.db'}"), 1500, CYCLE, progress=False)
    migrate_marketing_db(base / "marketing.db")
    return base


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # closed again: nothing listens there


def _connections(base):
    return {
        "datamart": {"conn_type": "sqlite", "host": str(base / "datamart.db")},
        "marketing_db": {"conn_type": "sqlite", "host": str(base / "marketing.db")},
        "smsc": {"conn_type": "generic", "host": "127.0.0.1", "port": 2775, "login": "QZDEV", "password": "s3cret-pw",
                 "extra": {"source_addr": "10658", "rate": 400, "window": 50}},
    }


def _run(base, conns, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    for conn_id, value in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(base / "output"))
    monkeypatch.setenv("QZ_SMS_STATE_DIR", str(base / "sms-state"))
    monkeypatch.setenv("QZ_FAKE_NOW", f"{CYCLE.isoformat()}T09:00:00+08:00")
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["outbound_daily"]
    logical = dt.datetime(CYCLE.year, CYCLE.month, CYCLE.day, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    run = dag.test(logical_date=logical.astimezone(dt.timezone.utc))
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}


def _breakages(base):
    """name -> (how the connections are broken, what the log must say)."""
    pg_port = _free_port()
    return {
        "smsc_missing_source_addr": (
            lambda c: c["smsc"]["extra"].pop("source_addr"),
            ["connection smsc: extra.source_addr: Field required"]),
        "smsc_window_out_of_range": (
            lambda c: c["smsc"]["extra"].update(window=5000),
            ["connection smsc: extra.window:", "(got 5000)", "allowed: ≤ 1000"]),
        "smsc_rate_not_positive": (
            lambda c: c["smsc"]["extra"].update(rate=0),
            ["connection smsc: extra.rate:", "allowed: > 0"]),
        "smsc_missing_login": (
            lambda c: c["smsc"].pop("login"),
            ["connection smsc: login: missing"]),
        "marketing_db_missing_field": (
            lambda c: c.update(marketing_db={"conn_type": "postgres", "host": "127.0.0.1", "port": pg_port,
                                             "schema": "marketing"}),
            ["connection marketing_db: login: missing"]),
        "datamart_unreachable": (
            lambda c: c.update(datamart={"conn_type": "postgres", "host": "127.0.0.1", "port": pg_port,
                                         "login": "reader", "password": "pw", "schema": "datamart"}),
            [f"connection datamart: database at 127.0.0.1:{pg_port}/datamart unreachable"]),
        "datamart_file_missing": (
            lambda c: c["datamart"].update(host=str(base / "no-such-datamart.db")),
            ["connection datamart: host: no SQLite file at"]),
        "marketing_db_behind_head": (
            lambda c: c["marketing_db"].update(host=str(base / "behind.db")),
            ["connection marketing_db: marketing_db is at revision 0000_before",
             "qz-outbound db upgrade --marketing"]),
    }


@pytest.mark.slow
@pytest.mark.parametrize("breakage", ["smsc_missing_source_addr", "smsc_window_out_of_range", "smsc_rate_not_positive",
                                      "smsc_missing_login", "marketing_db_missing_field", "datamart_unreachable",
                                      "datamart_file_missing", "marketing_db_behind_head"])
def test_a_broken_connection_stops_the_cycle_before_publish(airflow_db, built, tmp_path, monkeypatch, capfd,
                                                            breakage):
    from airflow.utils.state import DagRunState, TaskInstanceState

    base = tmp_path
    shutil.copy(built / "datamart.db", base / "datamart.db")
    shutil.copy(built / "marketing.db", base / "marketing.db")
    # a database one revision behind: an older revision id in alembic_version (as after a release
    # that added a revision, before `db upgrade` ran)
    shutil.copy(built / "marketing.db", base / "behind.db")
    behind = db.make_engine(f"sqlite:///{base / 'behind.db'}")
    with behind.begin() as conn:
        conn.exec_driver_sql("update alembic_version set version_num = '0000_before'")
    behind.dispose()
    conns = _connections(base)
    breaks, expected = _breakages(base)[breakage]
    breaks(conns)
    capfd.readouterr()
    run, states = _run(base, conns, monkeypatch)
    log = "".join(capfd.readouterr())
    assert run.state == DagRunState.FAILED
    assert states["check_config"] == TaskInstanceState.FAILED
    assert states["segment_customers"] != TaskInstanceState.SUCCESS
    assert all(s != TaskInstanceState.SUCCESS for t, s in states.items() if t in ("publish_county", "send_sms"))
    for text in expected:
        assert text in log, f"{text!r} not in the check_config log"
    assert "s3cret-pw" not in log
    mk = db.make_engine(f"sqlite:///{base / 'marketing.db'}")
    with mk.connect() as conn:
        assert conn.execute(sa.text("select count(*) from mkt_contact")).scalar() == 0
        assert conn.execute(sa.text("select count(*) from sms_outbox")).scalar() == 0
    mk.dispose()


@pytest.mark.slow
def test_good_connections_pass_the_check(airflow_db, built, monkeypatch):
    """The same connections unbroken: check_config succeeds (the checks are not simply always failing)."""
    from qz_outbound import preflight

    conns = _connections(built)
    checked = preflight.check_all({k: preflight.Connection(conn_id=k, **v) for k, v in conns.items()})
    assert checked["connections"] == 3
