"""The one clock of the project.

Everything that asks "what time is it" (sending windows, audit stamps,
retention) asks here, so tests can set the time. Times are Asia/Shanghai.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    """Current time, timezone-aware, in Asia/Shanghai.

    ``QZ_FAKE_NOW`` (ISO 8601) in the environment, or :func:`set_now`, fixes it.
    ``QZ_CLOCK_OFFSET_SECONDS`` shifts the real clock instead, so it keeps running (for a
    benchmark measuring latencies at night as if it were in the sending window; every process
    given the same offset agrees on the time).
    """
    if _frozen is not None:
        return _frozen
    fake = os.environ.get("QZ_FAKE_NOW")
    if fake:
        value = dt.datetime.fromisoformat(fake)
        return value.replace(tzinfo=SHANGHAI) if value.tzinfo is None else value.astimezone(SHANGHAI)
    offset = os.environ.get("QZ_CLOCK_OFFSET_SECONDS")
    if offset:
        return dt.datetime.now(SHANGHAI) + dt.timedelta(seconds=float(offset))
    return dt.datetime.now(SHANGHAI)


def today() -> dt.date:
    return now().date()


def set_now(value: dt.datetime | None) -> None:
    """Freeze the clock at ``value`` (naive means Asia/Shanghai); ``None`` unfreezes."""
    global _frozen
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=SHANGHAI)
    _frozen = value.astimezone(SHANGHAI) if value is not None else None


def cycle_date_of(logical_date: dt.datetime) -> dt.date:
    """The cycle date of a DAG run: its logical date seen in Asia/Shanghai."""
    if logical_date.tzinfo is None:
        logical_date = logical_date.replace(tzinfo=dt.timezone.utc)
    local = logical_date.astimezone(SHANGHAI)
    return dt.date(local.year, local.month, local.day)  # a plain date, not pendulum's subclass
