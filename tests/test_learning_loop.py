"""The whole learning loop on the planted market of tests/learning_sim.py (issue 17): cycles run in
mode learned but with the gate shut, so fixed priorities decide and 10% explore; the offline
evaluation (qz_outbound/learning/evaluation.py) replays those logged cycles and agrees in sign with
the simulated truth; the gate then opens (the same function the outbound_daily DAG calls), and the
next cycle's exploit arm follows the learned values: A to type 41, B to type 21."""

from __future__ import annotations

import datetime as dt

import pytest

from qz_outbound import db
from qz_outbound.learning import evaluation
from qz_outbound.learning.values import LearningConfig

import learning_sim as ls

GATED_CYCLES = 6


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sim(request, tmp_path_factory, pg_database_factory):
    if request.param == "sqlite":
        mk = db.make_engine(f"sqlite:///{tmp_path_factory.mktemp('loop') / 'mk.db'}")
    else:
        mk = db.make_engine(pg_database_factory("qz_learn_loop"))
    # a third explores: enough offers of B to type 21 under fixed priorities (which give everyone A)
    # for the replay's interval to clear zero on 4,000 simulated customers
    learning = LearningConfig(mode="learned", exploration_share=0.3, prior_strength=50, lookback_days=30,
                              default_value_per_conversion=ls.VALUE_PER_CONVERSION)
    s = ls.Simulation(mk, customers=4000, learning=learning, allow_learned=False)
    s.run(GATED_CYCLES)
    yield s
    mk.dispose()


def review_cfg() -> evaluation.EvaluationConfig:
    # every simulated cycle's conversions are in at once (the shipped config skips the last 14 days)
    return evaluation.EvaluationConfig(lookback_days=30, skip_recent_days=0, confidence=0.95, min_matched=500,
                                       max_age_days=7, baseline="control")


def test_gate_shut_until_evaluated_then_opens_and_the_loop_follows_the_values(sim):
    day = sim.days[-1] + dt.timedelta(days=1)
    # before any evaluation the gate is shut: the gated cycles were fixed priorities + exploration
    allowed, why = evaluation.arbitration_gate(sim.marketing, day, sim.learning, review_cfg())
    assert not allowed and "no offline evaluation" in why
    t = sim.targets()
    assert set(t.arm) == {"fixed", "explore"}
    assert (t[t.arm == "fixed"].campaign_code == t[t.arm == "fixed"].fixed_code).all()

    # the offline evaluation of the logged cycles agrees in sign with the simulated truth
    result = evaluation.write_evaluation(sim.marketing, day, review_cfg())
    assert result["cycles"] == GATED_CYCLES
    h = ls.logged_history(sim)
    treated = h[h.is_control == 0]
    # yuan per offer: both campaigns cost the same, so the difference is the planted uplift's value
    truth = (treated.truth_learned - treated.truth_fixed).mean() * ls.VALUE_PER_CONVERSION
    assert truth > 0
    frame = evaluation.latest_evaluation(sim.marketing, day)
    diff = frame[(frame.policy == evaluation.DIFFERENCE) & (frame.estimator == evaluation.IPW)].iloc[0]
    assert diff["estimate"] > 0 and diff["ci_low"] > 0, diff.to_dict()
    assert diff["ci_low"] <= truth <= diff["ci_high"], (truth, diff.to_dict())

    # the gate the DAG asks opens, and the next cycle's exploit arm follows the learned values
    allowed, why = evaluation.arbitration_gate(sim.marketing, day, sim.learning, review_cfg())
    assert allowed and "runs" in why
    sim.allow_learned = allowed
    sim.cycle(day)
    last = sim.targets(day)
    exploit = last[(last.arm == "learned") & last.stability_type.isin(["41", "21"])
                   & ~last.msisdn.isin(sim.holds_a)]
    assert len(exploit) > 1500
    by_type = exploit.groupby("stability_type").campaign_code.agg(lambda s: set(s))
    assert by_type["41"] == {ls.CODE_A} and by_type["21"] == {ls.CODE_B}
    assert ls.policy_violations(sim) == []


def test_mode_fixed_never_asks_the_evaluation(sim):
    fixed = sim.learning.model_copy(update={"mode": "fixed"})
    allowed, why = evaluation.arbitration_gate(sim.marketing, sim.days[-1], fixed, review_cfg())
    assert not allowed and why.startswith("mode fixed")
