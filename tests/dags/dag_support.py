"""Running a project DAG in-process (dag.test) against files under a test folder: the data mart and
marketing_db as SQLite files, outputs and sender state beside them, the development SMSC if given,
and the one clock set to the run's day and hour in Shanghai."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def migrate_marketing_db(path: Path) -> None:
    """``qz-outbound db upgrade`` on a marketing_db file (tasks never create tables)."""
    from qz_outbound import db, migrations

    engine = db.make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    engine.dispose()


def load_dag(dag_id: str):
    """The DAG as Airflow parses it from dags/ (parse once when running it many times)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).dags[dag_id]


def run_dag(dag_id: str, base: Path, monkeypatch, when: dt.date, smsc=None, at: str = "09:00", dag=None):
    from airflow.utils.state import DagRunState

    monkeypatch.setenv("AIRFLOW_CONN_DATAMART", json.dumps({"conn_type": "sqlite", "host": str(base / "datamart.db")}))
    monkeypatch.setenv("AIRFLOW_CONN_MARKETING_DB",
                       json.dumps({"conn_type": "sqlite", "host": str(base / "marketing.db")}))
    migrate_marketing_db(base / "marketing.db")   # what the init job / bin/demo do before any run
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(base / "output"))
    monkeypatch.setenv("QZ_SMS_STATE_DIR", str(base / "sms-state"))
    # the send step runs inside the sending window of the cycle day (the one clock, set for the run)
    monkeypatch.setenv("QZ_FAKE_NOW", f"{when.isoformat()}T{at}:00+08:00")
    if smsc is not None:
        monkeypatch.setenv("AIRFLOW_CONN_SMSC", json.dumps({
            "conn_type": "generic", "host": "127.0.0.1", "port": smsc.port, "login": smsc.system_id,
            "password": "dev", "extra": {"source_addr": "10658", "rate": 400, "window": 50}}))
    dag = dag or load_dag(dag_id)
    # 06:00 in Shanghai on the cycle date (22:00 UTC the day before): the cycle date must be Shanghai's
    logical = dt.datetime(when.year, when.month, when.day, 6, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    run = dag.test(logical_date=logical.astimezone(dt.timezone.utc))
    assert run.state == DagRunState.SUCCESS, f"{dag_id} {when}: {run.state}"
    return run
