"""The learning loop's offline evaluation and guard rails (docs/learning.md "Offline evaluation and guard
rails") on SQLite and PostgreSQL, over generated logged data with a KNOWN logging policy and PLANTED
conversion probabilities.

The logged cycles: each customer (stability type 41 or 21, spend tier 1 or 2) is eligible for two or
three of the test's own campaigns A, B, C. The policy that ran is the fixed priorities (A before B
before C) with ε exploration: with probability ε the offer is drawn uniformly among the customer's k
eligible campaigns, and the arbitration log carries propensity = (1 − ε)·1[logged = fixed choice] + ε/k,
exactly as the target list writes it. The learned policy's choice (learned_code) is planted: A for type
41, B for type 21 (where eligible). Conversions are drawn with planted probabilities per campaign and
type (A works for 41, B for 21), control customers convert at a planted baseline, so the true value
per offer of each policy over these customers, V(π) = mean((p[π(x)] − baseline) × value − cost), is
computed exactly and the estimate must agree in sign and its interval cover it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cycle_support import engine_for_param
from qz_outbound import clock, db, schema
from qz_outbound.learning import evaluation, shares

A, B, C = "9101-201", "9102-202", "9103-203"
CAMPAIGNS = [A, B, C]                                   # the fixed priorities, first wins
VALUE = {A: 50.0, B: 40.0, C: 30.0}                     # yuan per conversion
COST = {A: 1.0, B: 1.0, C: 0.5}                         # yuan per offer
P = {A: {"41": 0.10, "21": 0.02}, B: {"41": 0.03, "21": 0.09}, C: {"41": 0.04, "21": 0.04}}
BASELINE = 0.005                                        # the control customers' conversion rate
EPSILON = 0.3
CYCLES = [dt.date(2026, 9, 1), dt.date(2026, 9, 2), dt.date(2026, 9, 3)]
DAY = dt.date(2026, 10, 1)                              # the evaluation day: the cycles are 28-30 days back
PER_CYCLE = 12000
CONTROL_SHARE = 0.15


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    engine = engine_for_param(request, tmp_path, "qz_eval")
    schema.ensure_schema(engine)
    clock.set_now(dt.datetime(2026, 10, 1, 4, 30))
    yield engine
    clock.set_now(None)
    engine.dispose()


def cfg(**kw) -> evaluation.EvaluationConfig:
    base = dict(lookback_days=60, skip_recent_days=14, confidence=0.95, min_matched=500, max_age_days=7,
                baseline="control")
    return evaluation.EvaluationConfig(**{**base, **kw})


def _partitions(engine, days) -> None:
    for table in ("mkt_target",):
        if db.is_partitioned(engine, table):
            with engine.begin() as conn:
                for d in days:
                    conn.exec_driver_sql(f"create table if not exists {db.partition_name(table, d)} partition of "
                                         f"{table} for values in ('{d.isoformat()}')")


def plant(engine, learned_of, seed: int = 2, per_cycle: int = PER_CYCLE, cycles: list[dt.date] = CYCLES) -> dict:
    """Logged cycles under fixed + ε exploration; returns the truth of V(fixed), V(learned) and the
    difference over the treated customers (what the evaluation estimates)."""
    rng = np.random.default_rng(seed)
    _partitions(engine, cycles)
    targets, contacts, values = [], [], []
    truth = {"fixed": [], "learned": []}
    created = dt.datetime(2026, 9, 1, 9, 0, tzinfo=clock.SHANGHAI)
    for ci, cycle in enumerate(cycles):
        for i in range(per_cycle):
            msisdn = f"13{ci}{i:08d}"
            stype = "41" if rng.random() < 0.5 else "21"
            tier = int(rng.integers(1, 3))
            k = int(rng.integers(2, 4))
            eligible = sorted(rng.choice(3, size=k, replace=False).tolist())
            elig = [CAMPAIGNS[j] for j in eligible]
            fixed = elig[0]
            learned = learned_of(stype, elig)
            explore = rng.random() < EPSILON
            logged = elig[int(rng.integers(0, k))] if explore else fixed
            propensity = (1 - EPSILON) * (logged == fixed) + EPSILON / k
            control = rng.random() < CONTROL_SHARE
            targets.append(dict(cycle_date=cycle, msisdn=msisdn, county_code="350582", campaign_code=logged,
                                product_code="P" + logged[:4], priority=10, stability_type=stype, spend_tier=tier,
                                segment_code="S", is_control=int(control), variant=None, call_eligible=0,
                                sms_allowed=1, arm="explore" if explore else "fixed", propensity=propensity,
                                fixed_code=fixed, learned_code=learned))
            p = BASELINE if control else P[logged][stype]
            converted = rng.random() < p
            contacts.append(dict(contact_id=f"c{ci}{i:08d}", cycle_date=cycle, msisdn=msisdn, county_code="350582",
                                 campaign_code=logged, product_code="P" + logged[:4],
                                 channel="control" if control else "sms", status="delivered", created_at=created,
                                 converted_at=created + dt.timedelta(days=2) if converted else None))
            if not control:
                for name, code in (("fixed", fixed), ("learned", learned or fixed)):
                    truth[name].append((P[code][stype] - BASELINE) * VALUE[code] - COST[code])
        for code in CAMPAIGNS:
            for stype in ("41", "21"):
                for tier in (1, 2):
                    values.append(dict(cycle_date=cycle, campaign_code=code, stability_type=stype, spend_tier=tier,
                                       market_segment="(none)", contacted=100, control=10, conv_contacted=5,
                                       conv_control=0, uplift_raw=0.05, uplift=0.05, uplift_sd=0.01,
                                       value_per_conversion=VALUE[code], expected_cost=COST[code],
                                       expected_value=0.05 * VALUE[code] - COST[code]))
    with engine.begin() as conn:
        conn.execute(schema.mkt_target.insert(), targets)
        conn.execute(schema.mkt_contact.insert(), contacts)
        conn.execute(schema.mkt_offer_value.insert(), values)
    v_fixed, v_learned = float(np.mean(truth["fixed"])), float(np.mean(truth["learned"]))
    return {"fixed": v_fixed, "learned": v_learned, "difference": v_learned - v_fixed}


def segment_learner(stype: str, elig: list[str]) -> str | None:
    """A for type 41, B for type 21, where eligible (else none: the fixed choice stands)."""
    want = A if stype == "41" else B
    return want if want in elig else None


def worse_learner(stype: str, elig: list[str]) -> str | None:
    """C wherever eligible: the worst campaign for everyone."""
    return C if C in elig else None


def _row(frame: pd.DataFrame, policy: str, estimator: str = "ipw") -> pd.Series:
    return frame[(frame["policy"] == policy) & (frame["estimator"] == estimator)].iloc[0]


def test_ipw_agrees_with_the_planted_truth_and_the_gate_opens(engine):
    truth = plant(engine, segment_learner)
    assert truth["difference"] > 0.5                    # the planted learned policy is much better
    c = cfg()
    result = evaluation.write_evaluation(engine, DAY, c)
    assert result["cycles"] == 3 and result["learned_allowed"] is True
    frame = evaluation.latest_evaluation(engine, DAY)
    assert len(frame) == 6
    diff = _row(frame, "learned-fixed")
    assert diff["estimate"] > 0                          # the sign of the truth
    assert diff["ci_low"] <= truth["difference"] <= diff["ci_high"]
    assert diff["ci_low"] > 0
    for policy in ("fixed", "learned"):
        for est in ("ipw", "snipw"):
            row = _row(frame, policy, est)
            assert row["ci_low"] <= truth[policy] <= row["ci_high"], (policy, est, row.to_dict(), truth)
    sn = _row(frame, "learned-fixed", "snipw")
    assert sn["ci_low"] <= truth["difference"] <= sn["ci_high"]
    # every treated row is replayed; the fixed policy matches every greedy row and some explored ones
    treated = _treated(engine)
    fixed = _row(frame, "fixed")
    assert fixed["n"] == treated and 0 < fixed["matched"] < treated
    assert 0 < fixed["ess"] <= treated
    ok, reason = evaluation.learned_allowed(engine, DAY, c)
    assert ok and "beats fixed" in reason
    # a re-run of the day replaces its rows
    evaluation.write_evaluation(engine, DAY, c)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.mkt_policy_evaluation)) == 6
    # too old an evaluation does not open the gate
    ok, reason = evaluation.learned_allowed(engine, DAY + dt.timedelta(days=30), c)
    assert not ok and "older than" in reason


def _treated(engine) -> int:
    t = schema.mkt_target
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(t).where(t.c.is_control == 0)))


def test_learned_worse_keeps_the_gate_shut(engine):
    truth = plant(engine, worse_learner, seed=5)
    assert truth["difference"] < 0
    c = cfg()
    evaluation.write_evaluation(engine, DAY, c)
    diff = _row(evaluation.latest_evaluation(engine, DAY), "learned-fixed")
    assert diff["estimate"] < 0 and diff["ci_low"] <= truth["difference"] <= diff["ci_high"]
    ok, reason = evaluation.learned_allowed(engine, DAY, c)
    assert not ok and "worse than fixed" in reason


def test_too_few_matched_rows_keep_the_gate_shut(engine):
    plant(engine, segment_learner, seed=9, per_cycle=600)
    c = cfg(min_matched=5000)
    evaluation.write_evaluation(engine, DAY, c)
    diff = _row(evaluation.latest_evaluation(engine, DAY), "learned-fixed")
    ok, reason = evaluation.learned_allowed(engine, DAY, c)
    assert not ok and "too few matched rows" in reason and f"{int(diff['matched'])} logged offers" in reason
    assert diff["matched"] < 5000


def test_no_evaluation_and_no_logged_rows(engine):
    ok, reason = evaluation.learned_allowed(engine, DAY, cfg())
    assert not ok and "no offline evaluation" in reason
    result = evaluation.write_evaluation(engine, DAY, cfg())   # nothing logged yet: stored, gate shut
    assert result["rows"] == 0 and result["learned_allowed"] is False
    ok, reason = evaluation.learned_allowed(engine, DAY, cfg())
    assert not ok and "too few matched rows" in reason
