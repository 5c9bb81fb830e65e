"""outbound_daily run end to end by Airflow (dag.test) on the embedded default, SMS sent to the
development SMSC (a real SMPP server on 127.0.0.1)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from qz_outbound import db
from dag_support import run_dag as _run
from qz_outbound.dev.demo_datamart import generate

ROOT = Path(__file__).resolve().parents[2]
CYCLE = dt.date(2026, 11, 23)
MSISDN = re.compile(r"1[3-9]\d{9}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    generate(db.make_engine(f"sqlite:///{base / 'datamart.db'}"), 3000, CYCLE, progress=False)
    return base


@pytest.fixture(scope="module")
def smsc():
    from qz_outbound.dev.smsc import Behaviour, DevSmsc

    server = DevSmsc(behaviour=Behaviour(), seed=11).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_outbound_daily_segments_reports_and_reruns_idempotently(airflow_db, demo, smsc, monkeypatch):
    _run("outbound_daily", demo, monkeypatch, CYCLE - dt.timedelta(days=1), smsc)
    _run("outbound_daily", demo, monkeypatch, CYCLE, smsc)
    mk = db.make_engine(f"sqlite:///{demo / 'marketing.db'}")
    with mk.connect() as conn:
        count = conn.execute(sa.text("select count(*) from mkt_segment_snapshot where cycle_date = :d"),
                             {"d": CYCLE.isoformat()}).scalar()
        dm = db.make_engine(f"sqlite:///{demo / 'datamart.db'}")
        with dm.connect() as dconn:
            expected = dconn.execute(sa.text(
                "select count(*) from subscriber where status <> 'cancelled' and open_date <= :d"),
                {"d": CYCLE.isoformat()}).scalar()
        assert count == expected > 2500
        types = {r[0] for r in conn.execute(sa.text("select distinct stability_type from mkt_segment_snapshot"))}
        assert types == {"0", "1", "21", "22", "23", "3", "41", "42", "43", "5"}
    report = demo / "output" / "reports" / CYCLE.isoformat()
    html = (report / "segment_distribution.html").read_text(encoding="utf-8")
    assert "存量客户细分分布" in html and "<svg" in html and str(CYCLE - dt.timedelta(days=1)) in html
    assert (report / "segment_distribution.csv").stat().st_size > 0

    # every SMS contact of both cycles reached the SMSC exactly once, and only SMS contacts did
    with mk.connect() as conn:
        sms_contacts = sorted(r[0] for r in conn.execute(sa.text("select msisdn from mkt_contact where channel = 'sms'")))
        not_sent = conn.execute(sa.text("select count(*) from sms_outbox where state in ('queued', 'sending')")).scalar()
    accepted = sorted(m["msisdn"] for m in smsc.handset_messages())
    assert sms_contacts and not_sent == 0
    assert accepted == sms_contacts
    assert smsc.max_per_second() <= 400

    # a re-run of the same logical date replaces the cycle's rows: same count, no duplicates,
    # and nobody gets a second SMS
    submits_before = len(smsc.submits)
    _run("outbound_daily", demo, monkeypatch, CYCLE, smsc)
    with mk.connect() as conn:
        again = conn.execute(sa.text("select count(*), count(distinct msisdn) from mkt_segment_snapshot "
                                     "where cycle_date = :d"), {"d": CYCLE.isoformat()}).one()
    assert tuple(again) == (count, count)
    assert len(smsc.submits) == submits_before

    # the outcome loop runs on the same history and writes HQ's page for the cycle
    _run("outcomes_loop", demo, monkeypatch, CYCLE, smsc, at="21:00")
    assert "营销效果日报" in (report / "outcomes.html").read_text(encoding="utf-8")

    # nothing a viewer can read in Airflow carries a phone number
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        values = [x.value for x in session.query(XComModel).filter(
            XComModel.dag_id.in_(["outbound_daily", "outcomes_loop"]))]
    assert values, "expected the tasks' small summaries in XCom"
    assert not any(MSISDN.search(json.dumps(v, default=str)) for v in values)
