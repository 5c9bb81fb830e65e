"""The contact policy's bind parameters (contact-policy.md), computed in one place.

Every contact rule is one SQL macro in ``include/sql/_contactable.sql``; the daily cycle's target
list and coverage report, the target audit and the agent channel's decision all call them. The
dates those macros read are computed here, for the daily cycle and the agent channel alike, from
the day contacts are decided on and ``config/contact_policy.yaml``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from qz_outbound.cycle import month_start

if TYPE_CHECKING:
    from qz_outbound.targeting import ContactPolicy


def contact_policy_binds(day: dt.date, policy: ContactPolicy, *, cycle: dt.date | None = None,
                         today_counts: bool = False) -> dict[str, object]:
    """The bind parameters of ``_contactable.sql`` for contacts decided on ``day``.

    ``cycle``: the cycle whose staged extracts, snapshot and target list are read (bind ``d``;
    by default ``day`` itself: the daily cycle). ``today_counts``: whether contacts already recorded
    for ``day`` count for the frequency rules and the same-campaign gap (bind ``history_until``,
    exclusive). The daily cycle counts history before its own day (the day's contacts are the ones
    it is making, replaced by a re-run); the agent channel decides after the day's cycle, so that
    cycle's SMS and calls of the day count.
    """
    window_start = day - dt.timedelta(days=policy.window_days - 1)
    this_month = month_start(day, 0)
    return {
        "d": (cycle or day).isoformat(),
        "history_until": (day + dt.timedelta(days=1) if today_counts else day).isoformat(),
        "window_start": window_start.isoformat(),
        "month_start": this_month.isoformat(),
        "recent_since": min(window_start, this_month).isoformat(),
        "same_campaign_since": (day - dt.timedelta(days=policy.same_campaign_gap_days)).isoformat(),
        "refusal_since": (day - dt.timedelta(days=policy.refusal_block_days)).isoformat(),
        "d_month": day.month,
    }
