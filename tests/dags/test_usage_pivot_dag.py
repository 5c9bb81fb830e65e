"""usage_pivot as Airflow runs it (dag.test): at 04:40 it builds the pivot of the cycle's months, the
05:00 segmentation of the same day reuses it, a second run of the DAG finds nothing to do, and the
XCom carries the month and counts only (no phone number)."""

from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace

import sqlalchemy as sa

from dag_support import run_dag
from qz_outbound import db, schema, segmentation
from qz_outbound.dev.demo_datamart import generate

DAY = dt.date(2026, 12, 1)
MSISDN = re.compile(r"1[3-9]\d{9}")


def _xcoms() -> list[dict]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return [x.value for x in session.query(XComModel).filter(
            XComModel.dag_id == "usage_pivot", XComModel.task_id == "refresh_usage_pivot",
            XComModel.key == "return_value")]


def test_usage_pivot_dag_builds_the_pivot_the_cycle_then_reuses(airflow_db, tmp_path, monkeypatch):
    datamart = db.make_engine(f"sqlite:///{tmp_path / 'datamart.db'}")
    generate(datamart, 400, DAY, progress=False)
    smsc = SimpleNamespace(port=2775, system_id="dev")   # check_config validates its fields only
    run = run_dag("usage_pivot", tmp_path, monkeypatch, DAY, smsc, at="04:40")
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["refresh_usage_pivot"] == "success"
    (value,) = _xcoms()
    text = json.dumps(value, default=str)
    assert value["usage_month"] == "2026-11" and value["pivot"] is True, text
    assert "rebuilt (first cycle of these months)" in value["detail"] and not MSISDN.search(text)

    marketing = db.make_engine(f"sqlite:///{tmp_path / 'marketing.db'}")
    with marketing.connect() as conn:
        built = conn.execute(sa.select(schema.mkt_usage_pivot_source)).one()
    assert built.usage_month == dt.date(2026, 11, 1) and built.built_for == DAY and built.customers > 300

    # the 05:00 cycle of the same day reads it as it is
    segmentation.segment_customers(datamart, marketing, DAY)
    with marketing.connect() as conn:
        detail = conn.execute(sa.text("select detail from mkt_cycle_stage where stage = 'segment'")).scalar_one()
    assert detail == f"usage pivot of 2026-11 reused ({built.customers} customers)"
    datamart.dispose()
    marketing.dispose()
