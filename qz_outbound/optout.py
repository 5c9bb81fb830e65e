"""The opt-out list (``mkt_opt_out``): the one place that reads and writes it.

A customer who replied TD or refused "do not call again" is never contacted again, by any campaign
or channel. Readers: queueing an SMS (:mod:`qz_outbound.sms.outbox`), claiming and submitting it
(:mod:`qz_outbound.sms.sender`). Writers: an opt-out SMS reply (:mod:`qz_outbound.sms.inbound`,
through :func:`record_opt_out`) and, as set work, a portal upload's ``refused_do_not_call`` rows
(``include/sql/upload_match.sql``, step ``opt_out``). Both writes are one
``insert ... on conflict do nothing``: a number already on the list keeps its first record, and
two writers of the same number at once both succeed (no check-then-insert to race). Set work reads
the table in SQL: contactability (``_contactable.sql``), the target-list audit (``target_audit.sql``),
the daily SMS queue (``queue_county_sms.sql``) and the agent channel's decision (``agent_decide.sql``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from qz_outbound import db
from qz_outbound.schema import mkt_opt_out

SOURCES = ("sms_reply", "call_outcome")
BATCH = 5000   # numbers per IN list


def is_opted_out(conn: Connection, msisdns: Iterable[str]) -> set[str]:
    """Which of these numbers are on the opt-out list, as ``conn`` sees it now."""
    numbers = sorted({m for m in msisdns if m})
    found: set[str] = set()
    for i in range(0, len(numbers), BATCH):
        found.update(conn.scalars(sa.select(mkt_opt_out.c.msisdn)
                                  .where(mkt_opt_out.c.msisdn.in_(numbers[i:i + BATCH]))))
    return found


def record_opt_out(conn: Connection, msisdn: str, *, at: dt.datetime, source: str,
                   detail: str | None = None) -> bool:
    """Put ``msisdn`` on the opt-out list for good (inside the caller's transaction).

    True when this call added it; False when it was already there (its first record stays).
    Concurrent calls for the same number never fail on the key.
    """
    if not msisdn:
        raise ValueError("record_opt_out: no number given")
    if source not in SOURCES:
        raise ValueError(f"record_opt_out: source {source!r} is not one of {SOURCES}")
    if at.tzinfo is None:
        raise ValueError("record_opt_out: 'at' must carry its time zone")
    return db.upsert(conn, mkt_opt_out, dict(msisdn=msisdn, opted_out_at=at, source=source, detail=detail),
                     key=("msisdn",)) == 1
