"""Budgets in the real DAG (dag.test): every daily campaign gets a small monthly budget, so each is
capped on its first cycle. The cut customers get nothing (no contact row, no SMS at the SMSC), HQ is
alerted through the alert channel once per campaign and threshold, and a re-run of the day alerts
nobody and sends nothing more."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from dag_support import run_dag as _run
from qz_outbound import campaigns, db, targeting
from qz_outbound.dev.demo_datamart import generate

ROOT = Path(__file__).resolve().parents[2]
CYCLE = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("budget_demo")
    generate(db.make_engine(f"sqlite:///{base / 'datamart.db'}"), 3000, CYCLE, progress=False)
    shutil.copytree(ROOT / "config", base / "config")
    daily = targeting.daily_campaigns(campaigns.load_library(base / "config" / "campaigns"), CYCLE)
    (base / "config" / "budgets.yaml").write_text(yaml.safe_dump({"campaigns": {
        c.code: {"monthly_yuan": 3.0, "conversion_prior": 0.01} for c in daily}}), encoding="utf-8")
    return base


@pytest.fixture(scope="module")
def smsc():
    from qz_outbound.dev.smsc import Behaviour, DevSmsc

    server = DevSmsc(behaviour=Behaviour(), seed=13).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_budgets_cap_the_cycle_alert_once_and_a_rerun_changes_nothing(airflow_db, demo, smsc, monkeypatch):
    from test_alerts import Hook

    monkeypatch.setenv("QZ_CONFIG_DIR", str(demo / "config"))
    hook = Hook()   # the alert channel: a webhook on 127.0.0.1 (Airflow connection alert_webhook)
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": hook.port, "schema": "http",
        "extra": {"endpoint": "/qz-alerts"}}))

    def budget_alerts() -> list[dict]:
        return [r["body"]["alert"] for r in hook.received if r["body"]["alert"]["kind"] == "budget"]

    _run("outbound_daily", demo, monkeypatch, CYCLE, smsc)

    mk = db.make_engine(f"sqlite:///{demo / 'marketing.db'}")
    with mk.connect() as conn:
        cut = {r[0]: r[1] for r in conn.execute(sa.text("select msisdn, campaign_code from mkt_budget_cut"))}
        contacts = sorted(tuple(r) for r in conn.execute(sa.text(
            "select contact_id, msisdn, channel from mkt_contact order by contact_id")))
        committed = dict(conn.execute(sa.text(
            "select campaign_code, sum(committed_yuan) from mkt_budget_commit group by campaign_code")).all())
        alert_rows = conn.execute(sa.text("select campaign_code, threshold, sent_at from mkt_budget_alert")).all()
    assert cut and contacts
    assert not {m for _, m, _ in contacts} & set(cut)                   # cut: no SMS, no call, no control row
    assert not {m["msisdn"] for m in smsc.handset_messages()} & set(cut)
    assert all(v <= 3.0 + 1e-6 for v in committed.values())
    capped = set(cut.values())
    assert {(r.campaign_code, r.threshold) for r in alert_rows} >= {(c, 100) for c in capped}
    first = budget_alerts()
    assert len(first) == len(alert_rows) and all(r.sent_at is not None for r in alert_rows)
    assert all(a["summary"].startswith("[") is False and "budget 2026-11" in a["summary"] for a in first)

    submits = len(smsc.submits)
    _run("outbound_daily", demo, monkeypatch, CYCLE, smsc)
    with mk.connect() as conn:
        again = sorted(tuple(r) for r in conn.execute(sa.text(
            "select contact_id, msisdn, channel from mkt_contact order by contact_id")))
        cut_again = {r[0]: r[1] for r in conn.execute(sa.text("select msisdn, campaign_code from mkt_budget_cut"))}
    assert again == contacts and cut_again == cut
    assert len(budget_alerts()) == len(first)                         # nobody alerted again
    assert len(smsc.submits) == submits
    hook.close()
