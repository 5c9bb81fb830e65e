"""Outcomes into the contact history: call outcomes, BOSS orders and their attribution, bills.

* :func:`apply_call_outcomes` — each call contact takes its latest reported outcome
  (``include/sql/outcome_calls.sql``); the next cycle's targeting reads the refusals from there.
  (SMS receipts and replies are applied by the SMS receiver as they arrive; docs/sms-delivery.md.)
* :func:`stage_orders` — the data mart's ``order_event`` of the last days into ``stg_order``,
  each order once however often it arrives.
* :func:`attribute_orders` — credits each order to the latest contact of that customer for that
  product within the attribution window (``include/sql/attribution.sql``), control contacts too.
* :func:`stage_bills` — the closed months' bills the trajectory needs into ``stg_bill``.

Everything is idempotent: a source arriving late, twice or out of order gives the same history.
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import clock, db, schema
from qz_outbound.cycle import month_start
from qz_outbound.outcomes.settings import OutcomeConfig, load_outcome_config

log = logging.getLogger(__name__)


def apply_call_outcomes(marketing: Engine) -> int:
    with marketing.begin() as conn:
        n = conn.execute(sa.text(db.render_sql("outcome_calls.sql", marketing.dialect.name))).rowcount
    log.info("call outcomes applied to %d contacts", n)
    return n


def stage_orders(datamart: Engine, marketing: Engine, until: dt.datetime, lookback_days: int) -> int:
    """Copy the orders of the last ``lookback_days`` not staged yet; returns how many were new."""
    since = (until - dt.timedelta(days=lookback_days)).replace(tzinfo=None)
    orders = pd.read_sql(sa.text(
        "select order_id, msisdn, product_code, order_time, channel, agent_id from order_event "
        "where order_time >= :since and order_time < :until"), datamart,
        params={"since": since, "until": until.replace(tzinfo=None)})
    if orders.empty:
        return 0
    orders = orders.drop_duplicates("order_id")
    with marketing.begin() as conn:
        have = set()
        ids = orders["order_id"].tolist()
        for i in range(0, len(ids), 5000):
            have |= set(conn.scalars(sa.select(schema.stg_order.c.order_id).where(schema.stg_order.c.order_id.in_(ids[i:i + 5000]))))
        new = orders[~orders["order_id"].isin(have)].copy()
        if len(new):
            new["order_time"] = pd.to_datetime(new["order_time"], format="ISO8601").dt.to_pydatetime()
            new["loaded_at"] = clock.now()
            new["contact_id"] = None
            conn.execute(schema.stg_order.insert(), new.astype(object).where(new.notna(), None).to_dict("records"))
    log.info("orders staged: %d new of %d read", len(new), len(orders))
    return len(new)


def stage_bills(datamart: Engine, marketing: Engine, cycle_date: dt.date, cfg: OutcomeConfig | None = None) -> int:
    """Stage the closed months' bills the trajectory needs (``usage_monthly`` → ``stg_bill``).

    From ``bill_months`` before the oldest reported cycle's month up to the month before
    ``cycle_date``'s; a month is staged once, when the data mart has it (a month with no rows
    yet is tried again on the next run). Returns the rows staged now.
    """
    cfg = cfg or load_outcome_config()
    first = month_start(cycle_date - dt.timedelta(days=cfg.report_days), cfg.bill_months)
    last = month_start(cycle_date, 1)
    with marketing.connect() as conn:
        have = {m if isinstance(m, dt.date) else dt.date.fromisoformat(m)
                for m in conn.scalars(sa.select(schema.stg_bill_month.c.month))}
    staged, month = 0, first
    while month <= last:
        if month not in have:
            param = db.date_value(datamart, month)
            with marketing.begin() as conn:  # a landing cut short before it was recorded
                conn.execute(schema.stg_bill.delete().where(schema.stg_bill.c.month == month))
            n = db.land_query(datamart, marketing, "stage_bills.sql", {"month": param}, "stg_bill",
                              ["msisdn", "month", "spend_yuan"])
            if n:
                with marketing.begin() as conn:
                    conn.execute(schema.stg_bill_month.insert().values(month=month, rows=n, staged_at=clock.now()))
                staged += n
                log.info("bills of %s staged: %d rows", month, n)
        month = month_start(month, -1)
    return staged


def attribute_orders(marketing: Engine, window_days: int) -> int:
    """Credit staged orders to contacts; returns how many contacts converted now."""
    sql = db.render_sql("attribution.sql", marketing.dialect.name, window_days=window_days)
    with marketing.begin() as conn:
        matches = conn.execute(sa.text(sql)).all()
        if not matches:
            return 0
        times = dict(conn.execute(sa.select(schema.stg_order.c.order_id, schema.stg_order.c.order_time).where(
            schema.stg_order.c.order_id.in_([m.order_id for m in matches]))).all())
        conn.execute(schema.stg_order.update().where(schema.stg_order.c.order_id == sa.bindparam("b_order"))
                     .values(contact_id=sa.bindparam("b_contact")),
                     [{"b_order": m.order_id, "b_contact": m.contact_id} for m in matches])
        conn.execute(schema.mkt_contact.update()
                     .where(schema.mkt_contact.c.contact_id == sa.bindparam("b_contact"),
                            schema.mkt_contact.c.converted_at.is_(None))
                     .values(converted_at=sa.bindparam("b_at"), order_id=sa.bindparam("b_order")),
                     [{"b_contact": m.contact_id, "b_order": m.order_id,
                       "b_at": times[m.order_id].replace(tzinfo=clock.SHANGHAI)} for m in matches])
    log.info("orders attributed: %d contacts converted", len(matches))
    return len(matches)
