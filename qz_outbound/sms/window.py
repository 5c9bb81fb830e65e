"""The daily sending window (contact-policy.md "When"), read from the one project clock."""

from __future__ import annotations

import datetime as dt

from qz_outbound import clock
from qz_outbound.sms.settings import SendingHours


def is_open(hours: SendingHours, at: dt.datetime | None = None) -> bool:
    """True when a submit_sm may leave at ``at`` (default: now), Asia/Shanghai, [start, end)."""
    at = (at or clock.now()).astimezone(clock.SHANGHAI)
    return hours.start <= at.time() < hours.end


def next_opening(hours: SendingHours, at: dt.datetime | None = None) -> dt.datetime:
    """When the window next opens (``at`` itself if it is open)."""
    at = (at or clock.now()).astimezone(clock.SHANGHAI)
    if is_open(hours, at):
        return at
    day = at.date() if at.time() < hours.start else at.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, hours.start, tzinfo=clock.SHANGHAI)
