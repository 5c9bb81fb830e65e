"""One parameter set and one macro per contact rule (issue 19): the daily cycle and the agent
channel get their dates from qz_outbound.policy, and the queries that apply the rules call
_contactable.sql instead of writing a rule out themselves."""

from __future__ import annotations

import datetime as dt

import pytest

from qz_outbound import SQL_DIR
from qz_outbound.policy import contact_policy_binds
from qz_outbound.targeting import load_policy

POLICY = load_policy().model_copy(update={"window_days": 7, "same_campaign_gap_days": 30, "refusal_block_days": 90})


def test_the_cycle_counts_history_before_its_day():
    binds = contact_policy_binds(dt.date(2026, 11, 23), POLICY)
    assert binds == {"d": "2026-11-23", "history_until": "2026-11-23", "window_start": "2026-11-17",
                     "month_start": "2026-11-01", "recent_since": "2026-11-01", "same_campaign_since": "2026-10-24",
                     "refusal_since": "2026-08-25", "d_month": 11}


def test_the_agent_channel_reads_the_latest_cycle_and_counts_today():
    binds = contact_policy_binds(dt.date(2026, 12, 3), POLICY, cycle=dt.date(2026, 12, 2), today_counts=True)
    assert binds["d"] == "2026-12-02" and binds["history_until"] == "2026-12-04"
    # the window reaches into last month: the recent history starts with the window
    assert binds["window_start"] == binds["recent_since"] == "2026-11-27" and binds["month_start"] == "2026-12-01"
    assert binds["d_month"] == 12


@pytest.mark.parametrize("query", ["target_list.sql", "agent_decide.sql", "target_audit.sql", "coverage.sql"])
def test_queries_call_the_rules_instead_of_writing_them(query):
    text = (SQL_DIR / query).read_text(encoding="utf-8")
    assert "{% import '_contactable.sql' as c %}" in text
    for rule_text in ("mkt_opt_out", "stg_exclusion", "'refused'", "same_campaign_since", "refusal_since",
                      "window_start", "held.product_code", "status = 'cancelled'"):
        assert rule_text not in text, f"{query} writes out a contact rule ({rule_text}): call _contactable.sql"
