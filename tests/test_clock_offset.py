"""QZ_CLOCK_OFFSET_SECONDS shifts the project clock and keeps it running; QZ_FAKE_NOW still wins."""

from __future__ import annotations

import datetime as dt
import time

from qz_outbound import clock


def test_offset_shifts_the_real_clock_and_it_keeps_running(monkeypatch):
    monkeypatch.delenv("QZ_FAKE_NOW", raising=False)
    monkeypatch.setenv("QZ_CLOCK_OFFSET_SECONDS", str(-11 * 3600))
    real = dt.datetime.now(clock.SHANGHAI)
    first = clock.now()
    assert abs((real - first).total_seconds() - 11 * 3600) < 5
    time.sleep(0.05)
    assert clock.now() > first
    assert first.tzinfo is not None and first.utcoffset() == dt.timedelta(hours=8)


def test_a_fixed_instant_wins_over_the_offset(monkeypatch):
    monkeypatch.setenv("QZ_CLOCK_OFFSET_SECONDS", "3600")
    monkeypatch.setenv("QZ_FAKE_NOW", "2026-11-23T09:00:00+08:00")
    assert clock.now() == dt.datetime(2026, 11, 23, 9, 0, tzinfo=clock.SHANGHAI)
