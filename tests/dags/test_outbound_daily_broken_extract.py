"""A broken extract is stopped before anything leaves: the cycle fails in Airflow with a readable
reason and nothing is recorded for sending (no contact, no SMS in the outbox)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from qz_outbound import db
from qz_outbound.dev.demo_datamart import generate

from dag_support import migrate_marketing_db

ROOT = Path(__file__).resolve().parents[2]
CYCLE = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def smsc():
    from qz_outbound.dev.smsc import Behaviour, DevSmsc

    server = DevSmsc(behaviour=Behaviour(), seed=5).start()
    yield server
    server.stop()


def _run(base, monkeypatch, smsc=None):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_DATAMART", json.dumps({"conn_type": "sqlite", "host": str(base / "datamart.db")}))
    monkeypatch.setenv("AIRFLOW_CONN_MARKETING_DB",
                       json.dumps({"conn_type": "sqlite", "host": str(base / "marketing.db")}))
    migrate_marketing_db(base / "marketing.db")   # what the init job / bin/demo do before any run
    monkeypatch.setenv("QZ_OUTPUT_DIR", str(base / "output"))
    monkeypatch.setenv("QZ_SMS_STATE_DIR", str(base / "sms-state"))
    monkeypatch.setenv("QZ_FAKE_NOW", f"{CYCLE.isoformat()}T09:00:00+08:00")   # inside the sending window
    # a well-formed account even when the run is stopped before sending (check_config checks it)
    monkeypatch.setenv("AIRFLOW_CONN_SMSC", json.dumps({
        "conn_type": "generic", "host": "127.0.0.1", "port": smsc.port if smsc else 2775,
        "login": smsc.system_id if smsc else "QZDEV", "password": "dev",
        "extra": {"source_addr": "10658", "rate": 400, "window": 50}}))
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
def test_duplicate_customers_in_the_extract_stop_the_cycle_without_naming_anyone(airflow_db, mart, monkeypatch,
                                                                                 capfd):
    from airflow.utils.state import DagRunState, TaskInstanceState

    dm = db.make_engine(f"sqlite:///{mart / 'datamart.db'}")
    with dm.begin() as conn:   # an extract delivered with some customers twice
        conn.exec_driver_sql("drop index ux_subscriber")
        conn.exec_driver_sql("insert into subscriber select * from subscriber where rowid % 50 = 0")
    dm.dispose()
    run, states = _run(mart, monkeypatch)
    assert run.state == DagRunState.FAILED
    assert states["segment_customers"] == TaskInstanceState.FAILED
    assert states["validate_target_list"] != TaskInstanceState.SUCCESS
    assert _nothing_left(mart)
    captured = capfd.readouterr()
    task_log = captured.out + captured.err                   # what the task printed: its log
    assert "has a customer number more than once" in task_log
    assert not re.search(r"1[3-9]\d{9}", task_log)           # the duplicated number is not in the log


@pytest.mark.slow
def test_clean_extract_is_published_per_county(airflow_db, mart, monkeypatch, smsc):
    from airflow.utils.state import DagRunState

    run, _ = _run(mart, monkeypatch, smsc)
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
    # each county got its call list, with exactly its call contacts
    lists = [ti for ti in run.get_task_instances() if ti.task_id == "call_list"]
    assert len(lists) == 11
    with mk.connect() as conn:
        calls = dict(conn.execute(sa.text("select county_code, count(*) from mkt_contact where channel = 'call' "
                                          "group by county_code")).all())
    for county in calls:
        csv = next((mart / "output" / "call_lists" / CYCLE.isoformat() / county).glob("*.csv"))
        assert len(csv.read_text(encoding="utf-8-sig").strip().splitlines()) == calls[county] + 1
    # and sent: one send_sms per county, readable names, every SMS submitted once
    sends = [ti for ti in run.get_task_instances() if ti.task_id == "send_sms"]
    assert len(sends) == 11 and all(ti.rendered_map_index[:6].isdigit() for ti in sends)
    assert sorted(m["msisdn"] for m in smsc.handset_messages()) == sorted(
        r[0] for r in mk.connect().execute(sa.text("select msisdn from mkt_contact where channel = 'sms'")))
