"""HQ's learning-loop page (学习闭环) on the real Airflow API server with the portal plugin: HQ sees the
latest offline evaluation (fixed vs learned with intervals, matched rows) and whether the learned mode
may be switched on and why, the latest cycle's campaign shares, and the paused campaigns with their
reasons; a county office gets 403. The rows are written as the evaluation step and the auto-pause
store them (their computation is tested in tests/test_policy_evaluation.py and
tests/test_learning_guard_rails.py)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qz_outbound import db, schema

ON = dt.date(2026, 11, 30)
CODE = "9401-501"


def _evaluation(matched: int, low: float) -> list[dict]:
    now = dt.datetime(2026, 11, 30, 4, 40, tzinfo=dt.timezone.utc)
    rows = []
    for policy, est in (("fixed", 1.62), ("learned", 2.55), ("learned-fixed", 0.93)):
        for estimator in ("ipw", "snipw"):
            lo = low if policy == "learned-fixed" else est - 0.2
            rows.append(dict(evaluated_on=ON, policy=policy, estimator=estimator, window_start=dt.date(2026, 10, 1),
                             window_end=dt.date(2026, 11, 16), cycles=47, estimate=est, se=0.14, ci_low=lo,
                             ci_high=est + (est - lo), confidence=0.95, n=36000, matched=matched, ess=9000.0,
                             computed_at=now))
    return rows


@pytest.fixture
def learning(portal):
    engine = db.make_engine(portal.marketing_url)
    with engine.begin() as conn:
        conn.execute(schema.mkt_policy_evaluation.insert(), _evaluation(18000, 0.66))
        conn.execute(schema.mkt_campaign_pause.insert(), [dict(
            campaign_code=CODE, paused_at=dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.timezone.utc),
            cycle_date=ON, reason="roi_negative: ROI upper bound -0.88 (测试)")])
    yield engine
    with engine.begin() as conn:
        conn.execute(schema.mkt_policy_evaluation.delete())
        conn.execute(schema.mkt_campaign_pause.delete().where(schema.mkt_campaign_pause.c.campaign_code == CODE))
    engine.dispose()


def test_hq_reads_the_learning_page_and_a_county_may_not(portal, learning):
    status, body, _ = portal.request("/hq/learning?day=2026-12-01", "hq")
    assert status == 200
    html = body.decode()
    assert "学习闭环" in html and 'data-allowed="yes"' in html and "可以开启学习模式" in html
    for policy in ("fixed", "learned", "learned-fixed"):
        assert f'data-policy="{policy}" data-estimator="ipw"' in html
    assert "+0.9300" in html and "[+0.6600，+1.2000]" in html and "18000" in html
    assert f'<tr data-code="{CODE}">' in html and "roi_negative" in html
    assert 'id="shares"' in html                               # the published cycle's campaigns

    assert portal.request("/hq/learning", "county_350582")[0] == 403
    assert portal.request("/hq/learning?day=2026-13-01", "hq")[0] == 400
    assert portal.request("/hq/learning")[0] == 401

    # the gate shut: too few matched rows, said in Chinese with the figures
    with learning.begin() as conn:
        conn.execute(schema.mkt_policy_evaluation.delete())
        conn.execute(schema.mkt_policy_evaluation.insert(), _evaluation(120, 0.66))
    html = portal.request("/hq/learning?day=2026-12-01", "hq")[1].decode()
    assert 'data-allowed="no"' in html and "匹配行太少" in html and "120" in html
    # an interval that includes zero
    with learning.begin() as conn:
        conn.execute(schema.mkt_policy_evaluation.delete())
        conn.execute(schema.mkt_policy_evaluation.insert(), _evaluation(18000, -0.2))
    html = portal.request("/hq/learning?day=2026-12-01", "hq")[1].decode()
    assert 'data-allowed="no"' in html and "区间包含零" in html
    with learning.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.mkt_policy_evaluation)) == 6
