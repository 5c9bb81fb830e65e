"""Call-centre operations (economics.md "Call-centre operations"): redials, callbacks, wrong-number
suppression and the connect rate.

* A call is **dialled** when any outcome is uploaded for it, **connected** when the outcome is
  accepted / refused / refused_do_not_call / callback (``include/sql/_call_status.sql``, the one
  definition); connect rate = connected / dialled, per county, campaign and agent-day
  (:func:`call_ops`).
* **Redial**: a call whose latest outcome is ``no_answer`` or ``busy`` returns on the county's call
  list of a later working day, at most ``redial.max_redials`` times; **callback**: a call whose
  latest outcome is ``callback`` returns on the day the agent noted (回拨日期) or, without one, on
  the next working day. Both go ahead of new customers and within the county's call capacity
  (:func:`publish_followups`, ``include/sql/call_followups.sql``). A follow-up is a row of its own
  in ``mkt_contact`` (``attempt``, ``first_contact_id``, ``call_kind``): the county reports its
  outcome against its own contact id. It is not a new offer: the frequency caps
  (``_contactable.sql``) and the funnel's contacts count first attempts only. Nobody who has since
  opted out, entered DND, complained, left, converted, refused or been reported a wrong number is
  followed up.
* **Wrong number**: ``wrong_number`` suppresses calls to the number for
  ``redial.wrong_number_suppress_days`` (180) days; SMS stay allowed (the spec suppresses calls only).

Working days are configuration (``config/channels.yaml`` ``redial:``): ISO weekdays, public
holidays, and the weekend days China makes working days (调休). Follow-ups are listed only on a
working day's cycle; on other days they wait.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import sqlalchemy as sa
from pydantic import Field, model_validator
from sqlalchemy.engine import Connection, Engine

from qz_outbound import clock, config, db

log = logging.getLogger(__name__)

CONNECTED = ("accepted", "refused", "refused_do_not_call", "callback")   # _call_status.sql's twin
REDIALLED = ("no_answer", "busy")
KIND_WORDS = {None: "新客户", "redial": "重拨", "callback": "回拨"}
_TS = sa.DateTime(timezone=True)


class Redial(config.StrictModel):
    """``config/channels.yaml`` ``redial:`` (every field has a default: the section may be left out)."""

    max_redials: int = Field(default=2, ge=0, le=5)            # no_answer / busy: at most this many redials
    max_callbacks: int = Field(default=2, ge=0, le=5)          # callbacks of one offer, at most
    followup_within_days: int = Field(default=7, ge=1, le=31)  # a follow-up not listed by then lapses
    callback_max_days: int = Field(default=30, ge=1, le=90)    # a noted callback date at most this far ahead
    wrong_number_suppress_days: int = Field(default=180, ge=1, le=3650)
    working_weekdays: list[int] = Field(default=[1, 2, 3, 4, 5], min_length=1)   # ISO: 1 Monday .. 7 Sunday
    holidays: list[dt.date] = Field(default_factory=list)     # weekdays the call centre does not work
    extra_working_days: list[dt.date] = Field(default_factory=list)   # weekend days it does (调休)

    @model_validator(mode="after")
    def _days(self) -> Redial:
        bad = sorted(set(d for d in self.working_weekdays if not 1 <= d <= 7))
        if bad:
            raise ValueError(f"working_weekdays: {bad} are not ISO weekdays (1 Monday .. 7 Sunday)")
        if len(set(self.working_weekdays)) != len(self.working_weekdays):
            raise ValueError("working_weekdays: a weekday is listed twice")
        both = sorted(set(self.holidays) & set(self.extra_working_days))
        if both:
            raise ValueError(f"{[d.isoformat() for d in both]} is both a holiday and an extra working day")
        return self

    def is_working_day(self, day: dt.date) -> bool:
        if day in self.extra_working_days:
            return True
        return day.isoweekday() in self.working_weekdays and day not in self.holidays

    def next_working_day(self, day: dt.date) -> dt.date:
        """The first working day after ``day``."""
        for n in range(1, 366):
            nxt = day + dt.timedelta(days=n)
            if self.is_working_day(nxt):
                return nxt
        raise ValueError("no working day within a year: check redial.working_weekdays and holidays")


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=clock.SHANGHAI)


def wrong_number_since(cycle_date: dt.date, cfg: Redial) -> dt.datetime:
    """Calls are suppressed to numbers reported wrong at or after this instant."""
    return _day_start(cycle_date - dt.timedelta(days=cfg.wrong_number_suppress_days))


def publish_followups(conn: Connection, cycle_date: dt.date, county_code: str, capacity: int, cfg: Redial,
                      now: dt.datetime | None = None) -> int:
    """Put the county's due redials and callbacks on the cycle's call list, ahead of new customers
    and within ``capacity``; returns how many follow-ups the cycle's list holds (a re-run finds
    them there and adds none). Runs inside ``publish_county``'s transaction, before new customers
    take the capacity that is left."""
    if cfg.is_working_day(cycle_date) and capacity > 0:
        stmt = sa.text(db.render_sql("call_followups.sql", conn.dialect.name)).bindparams(
            sa.bindparam("now", type_=_TS), sa.bindparam("day_start", type_=_TS),
            sa.bindparam("since_ts", type_=_TS), sa.bindparam("wrong_since", type_=_TS))
        since = cycle_date - dt.timedelta(days=cfg.followup_within_days)
        # calls whose outcome can still be due: a callback noted up to callback_max_days after a call
        # made within the list's days
        scan_since = since - dt.timedelta(days=cfg.callback_max_days + 14)
        conn.execute(stmt, {
            "d": cycle_date.isoformat(), "ymd": f"{cycle_date:%Y%m%d}", "county": county_code,
            "capacity": capacity, "now": now or clock.now(), "day_start": _day_start(cycle_date),
            "since": since.isoformat(), "since_ts": _day_start(since), "scan_since": scan_since.isoformat(),
            "wrong_since": wrong_number_since(cycle_date, cfg),
            "max_redials": cfg.max_redials, "max_callbacks": cfg.max_callbacks})
    return conn.execute(db.date_binds(
        "select count(*) from mkt_contact where cycle_date = :d and county_code = :c and channel = 'call' "
        "and first_contact_id is not null", "d"), {"d": cycle_date, "c": county_code}).scalar_one()


# ---------------------------------------------------------------- the connect rate

DIMENSIONS = {
    "county": ["county_code"],
    "campaign": ["county_code", "campaign_code"],
    "agent_day": ["county_code", "call_day", "agent_id"],
}


def call_ops(marketing: Engine, first_day: dt.date, last_day: dt.date, by: str = "county",
             county_code: str | None = None) -> pd.DataFrame:
    """Dialled / connected / accepted calls and the connect rate for calls made (called_at, Asia/
    Shanghai) from ``first_day`` to ``last_day``, per ``by`` (county, campaign or agent_day: a
    call-centre agent's day, agent ``''`` when the upload named none). A call counts once per row
    of the slice however many outcomes it had (a callback, then accepted: dialled and connected once)."""
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {sorted(DIMENSIONS)}")
    stmt = sa.text(db.render_sql("call_ops.sql", marketing.dialect.name, by=DIMENSIONS[by],
                                 one_county=county_code is not None)).bindparams(
        sa.bindparam("start", type_=_TS), sa.bindparam("end", type_=_TS))
    params = {"start": _day_start(first_day), "end": _day_start(last_day + dt.timedelta(days=1))}
    if county_code is not None:
        params["county"] = county_code
    with marketing.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt, params).mappings().all(),
                             columns=[*DIMENSIONS[by], "dialled", "connected", "accepted"])
    for col in ("dialled", "connected", "accepted"):
        frame[col] = frame[col].astype("int64")
    frame["connect_rate"] = (frame["connected"] / frame["dialled"]).where(frame["dialled"] > 0)
    if "call_day" in frame:
        frame["call_day"] = frame["call_day"].astype(str).str[:10]
    return frame


def day_counts(marketing: Engine, day: dt.date, county_code: str) -> dict:
    """A county's day: calls on its list, follow-ups among them, and dialled / connected / accepted
    of the calls made that day (counts only)."""
    frame = call_ops(marketing, day, day, "county", county_code)
    row = frame.iloc[0] if len(frame) else None
    with marketing.connect() as conn:
        listed, redials, callbacks = conn.execute(db.date_binds(
            "select count(*), sum(case when call_kind = 'redial' then 1 else 0 end), "
            "sum(case when call_kind = 'callback' then 1 else 0 end) from mkt_contact "
            "where cycle_date = :d and county_code = :c and channel = 'call'", "d"),
            {"d": day, "c": county_code}).one()
    dialled = int(row.dialled) if row is not None else 0
    connected = int(row.connected) if row is not None else 0
    return {"day": day.isoformat(), "county_code": county_code, "listed": int(listed or 0),
            "redials": int(redials or 0), "callbacks": int(callbacks or 0), "dialled": dialled,
            "connected": connected, "accepted": int(row.accepted) if row is not None else 0,
            "connect_rate": connected / dialled if dialled else None}


def load_redial() -> Redial:
    """The ``redial:`` section of ``config/channels.yaml`` (validated with the rest of the file)."""
    from qz_outbound.targeting import load_channels

    return load_channels().redial
