"""campaign_economics' learning_review task as Airflow runs it (dag.test): after the economics, the
offline evaluation of the logged cycles lands in mkt_policy_evaluation and the share-change report in
the day's report folder, and the task's XCom carries counts and estimates only (no phone number)."""

from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace

import sqlalchemy as sa

from dag_support import run_dag
from qz_outbound import db, schema
from qz_outbound.dev.demo_datamart import generate
from test_policy_evaluation import plant, segment_learner

# after the DAGs' start date (a logical date before it runs no task)
CYCLES = [dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4)]
DAY = dt.date(2026, 12, 1)

MSISDN = re.compile(r"1[3-9]\d{9}")


def test_campaign_economics_runs_the_learning_review(airflow_db, tmp_path, monkeypatch):
    generate(db.make_engine(f"sqlite:///{tmp_path / 'datamart.db'}"), 300, DAY, progress=False)
    marketing = db.make_engine(f"sqlite:///{tmp_path / 'marketing.db'}")
    schema.ensure_schema(marketing)
    plant(marketing, segment_learner, per_cycle=2000, cycles=CYCLES)
    # check_config validates the smsc connection's fields only (nothing binds)
    run = run_dag("campaign_economics", tmp_path, monkeypatch, DAY, SimpleNamespace(port=2775, system_id="dev"),
                  at="04:30")
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["learning_review"] == "success"

    with marketing.connect() as conn:
        rows = conn.execute(sa.select(schema.mkt_policy_evaluation)).mappings().all()
    assert len(rows) == 6 and {r["evaluated_on"] for r in rows} == {DAY}
    diff = next(r for r in rows if r["policy"] == "learned-fixed" and r["estimator"] == "ipw")
    assert diff["cycles"] == 3 and diff["n"] > 4000 and diff["estimate"] > 0
    assert (tmp_path / "output" / "reports" / DAY.isoformat() / "offer_shares.csv").is_file()

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        values = [x.value for x in session.query(XComModel).filter(XComModel.dag_id == "campaign_economics",
                                                                     XComModel.task_id == "learning_review",
                                                                     XComModel.key == "return_value")]
    assert len(values) == 1
    text = json.dumps(values[0], default=str)
    assert '"cycles": 3' in text and '"campaigns_changed"' in text and not MSISDN.search(text)
    marketing.dispose()
