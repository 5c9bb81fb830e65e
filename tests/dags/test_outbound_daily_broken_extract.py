"""A broken extract is stopped before anything leaves: the cycle fails in Airflow with a readable
reason and nothing is recorded for sending (no contact, no SMS in the outbox)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from qz_outbound import db
from qz_outbound.datamart.generate import generate

ROOT = Path(__file__).resolve().parents[2]
CYCLE = dt.date(2026, 11, 23)


def _run(base, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_DATAMART", json.dumps({"conn_type": "sqlite", "host": str(base / "datamart.db")}))
    monkeypatch.setenv("AIRFLOW_CONN_MARKETING_DB",
                       json.dumps({"conn_type": "sqlite", "host": str(base / "marketing.db")}))
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(base / "output"))
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["outbound_daily"]
    logical = dt.datetime(CYCLE.year, CYCLE.month, CYCLE.day, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    run = dag.test(logical_date=logical.astimezone(dt.timezone.utc))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    return run, states


def _nothing_left(base):
    mk = db.make_engine(f"sqlite:///{base / 'marketing.db'}")
    with mk.connect() as conn:
        contacts = conn.execute(sa.text("select count(*) from mkt_contact")).scalar()
        outbox = conn.execute(sa.text("select count(*) from sms_outbox")).scalar() \
            if sa.inspect(mk).has_table("sms_outbox") else 0
    mk.dispose()
    return contacts == 0 and outbox == 0


@pytest.fixture
def mart(tmp_path):
    generate(db.make_engine(f"sqlite:///{tmp_path / 'datamart.db'}"), 2000, CYCLE, progress=False)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("breakage", ["unknown_county", "empty", "bad_numbers"])
def test_broken_extract_is_stopped_by_validation_and_nothing_is_queued(airflow_db, mart, monkeypatch, breakage):
    from airflow.utils.state import DagRunState, TaskInstanceState

    dm = db.make_engine(f"sqlite:///{mart / 'datamart.db'}")
    with dm.begin() as conn:
        if breakage == "unknown_county":   # an extract with a county the city does not have
            conn.exec_driver_sql("update subscriber set county_code = '350599' where rowid % 10 = 0")
        elif breakage == "empty":          # an extract that arrived empty
            conn.exec_driver_sql("delete from subscriber")
        else:                              # numbers garbled in the extract (a country prefix)
            conn.exec_driver_sql("update subscriber set msisdn = '+86' || msisdn where rowid % 7 = 0")
            conn.exec_driver_sql("update usage_monthly set msisdn = '+86' || msisdn "
                                 "where msisdn in (select substr(msisdn, 4) from subscriber where msisdn like '+86%')")
    dm.dispose()
    run, states = _run(mart, monkeypatch)
    assert run.state == DagRunState.FAILED
    assert states["validate_target_list"] == TaskInstanceState.FAILED
    assert states["segment_customers"] == TaskInstanceState.SUCCESS   # it is validation that stopped it
    assert all(s != TaskInstanceState.SUCCESS for t, s in states.items() if t == "publish_county")
    assert _nothing_left(mart)
    page = mart / "output" / "reports" / CYCLE.isoformat() / "target_validation.html"
    assert page.exists()


@pytest.mark.slow
def test_clean_extract_is_published_per_county(airflow_db, mart, monkeypatch):
    from airflow.utils.state import DagRunState

    run, _ = _run(mart, monkeypatch)
    assert run.state == DagRunState.SUCCESS
    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "publish_county"]
    assert len(mapped) == 11
    assert all(ti.rendered_map_index and ti.rendered_map_index[:6].isdigit() for ti in mapped)
    mk = db.make_engine(f"sqlite:///{mart / 'marketing.db'}")
    with mk.connect() as conn:
        by_channel = dict(conn.execute(sa.text("select channel, count(*) from mkt_contact group by channel")).all())
        queued = conn.execute(sa.text("select count(*) from sms_outbox")).scalar()
    assert by_channel["sms"] > 0 and by_channel["control"] > 0
    assert queued == by_channel["sms"]
