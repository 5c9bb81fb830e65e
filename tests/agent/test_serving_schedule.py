"""The serve task's end: the next scheduled run start plus the handover, on the wall clock."""

from __future__ import annotations

import datetime as dt

import pytest

from qz_outbound.agent.serving import SHANGHAI, next_run_start, serve_seconds


def at(h, m, s=0):
    return dt.datetime(2026, 11, 23, h, m, s, tzinfo=SHANGHAI)


def test_a_run_started_on_time_serves_the_hour_and_the_handover():
    assert serve_seconds(at(10, 0, 0), 60, 120) == 3600 + 120


def test_a_late_or_retried_run_still_hands_over_at_the_same_moment():
    # started 7 s late by the scheduler, or retried at 10:41: both stop at 11:02
    assert serve_seconds(at(10, 0, 7), 60, 120) == 3600 + 120 - 7
    assert serve_seconds(at(10, 41, 0), 60, 120) == 21 * 60
    assert next_run_start(at(10, 59, 59), 60) == at(11, 0)


def test_runs_in_utc_are_the_same_boundaries_and_midnight_rolls_over():
    utc = at(23, 30).astimezone(dt.timezone.utc)
    assert next_run_start(utc, 60) == at(0, 0) + dt.timedelta(days=1)
    assert next_run_start(at(10, 3), 5) == at(10, 5)


def test_a_period_that_does_not_divide_the_day_is_refused():
    with pytest.raises(ValueError):
        next_run_start(at(10, 0), 7)
