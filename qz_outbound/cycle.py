"""The daily cycle's calendar and its stage log, shared by every stage.

* :func:`month_start` — calendar months relative to a day (segmentation's M0–M2, the contact
  policy's month, the bills of the trajectory, the demo data mart's usage months);
* :func:`record_stage` — what a stage of a cycle did (counts only) in ``mkt_cycle_stage``, read by
  ``qz-outbound summary`` (:mod:`qz_outbound.summary`) and HQ's portal.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Engine

from qz_outbound import clock, db, schema


def month_start(d: dt.date, back: int = 0) -> dt.date:
    """First day of the month ``back`` months before ``d``'s month."""
    index = d.year * 12 + (d.month - 1) - back
    return dt.date(index // 12, index % 12 + 1, 1)


def record_stage(marketing: Engine, cycle_date: dt.date, stage: str, rows: int, seconds: float,
                 detail: str | None = None) -> None:
    """Note what a stage did (counts only) for HQ's summary; a re-run overwrites."""
    t = schema.mkt_cycle_stage
    values = dict(cycle_date=cycle_date, stage=stage, rows=rows, seconds=round(seconds, 3),
                  finished_at=clock.now(), detail=detail)
    # an upsert: two runs of a stage at once must not collide on the key
    with marketing.begin() as conn:
        db.upsert(conn, t, values, key=("cycle_date", "stage"), update=("rows", "seconds", "finished_at", "detail"))
