"""Publishing a validated target list, one county at a time (the per-county split).

``publish_county`` records the county's contacts in ``mkt_contact`` (control,
call within capacity, SMS) and queues its SMS in the outbox, rendered from
each campaign's variant template. Both steps are idempotent: a re-run, or two
runs at once, leave one row per customer and one message per contact.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import clock, db, schema
from qz_outbound.campaigns import Campaign
from qz_outbound.segmentation import record_stage
from qz_outbound.targeting import Channels, load_channels

log = logging.getLogger(__name__)


def publish_county(marketing: Engine, cycle_date: dt.date, county_code: str, library: list[Campaign],
                   channels: Channels | None = None, queue_sms: bool = True) -> dict[str, int]:
    """Split the county's target list into control / call / SMS contacts and queue the SMS.

    Returns counts (never customer data): contacts per channel, customers left
    waiting (call-only campaigns over capacity), and the SMS queue result.
    """
    channels = channels or load_channels()
    schema.ensure_schema(marketing)
    started = time.monotonic()
    sql = db.render_sql("publish_county.sql", marketing.dialect.name)
    stmt = sa.text(sql).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)))
    with marketing.begin() as conn:
        if marketing.dialect.name == "postgresql":
            # two runs of the same county at once: the second waits, then finds the rows there
            conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"),
                         {"k": f"publish:{cycle_date}:{county_code}"})
        conn.execute(stmt, {"d": cycle_date.isoformat(), "ymd": f"{cycle_date:%Y%m%d}", "county": county_code,
                            "capacity": channels.capacity(county_code), "now": clock.now()})
    counts = contact_counts(marketing, cycle_date, county_code)
    if queue_sms:
        counts.update({f"sms_{k}": v for k, v in queue_county_sms(marketing, cycle_date, county_code,
                                                                    library).items()})
    record_stage(marketing, cycle_date, f"publish:{county_code}", counts.get("sms", 0) + counts.get("call", 0),
                 time.monotonic() - started, detail=str(counts))
    log.info("county %s published: %s", county_code, counts)
    return counts


def contact_counts(marketing: Engine, cycle_date: dt.date, county_code: str) -> dict[str, int]:
    with marketing.connect() as conn:
        rows = conn.execute(sa.text(
            "select channel, count(*) from mkt_contact where cycle_date = :d and county_code = :c "
            "and channel in ('sms', 'call', 'control') group by channel"),
            {"d": cycle_date.isoformat() if marketing.dialect.name == "sqlite" else cycle_date,
             "c": county_code}).all()
        targets = conn.execute(sa.text(
            "select count(*) from mkt_target where cycle_date = :d and county_code = :c"),
            {"d": cycle_date.isoformat() if marketing.dialect.name == "sqlite" else cycle_date,
             "c": county_code}).scalar()
    counts = {"sms": 0, "call": 0, "control": 0, **{ch: n for ch, n in rows}}
    counts["waiting"] = targets - sum(counts[k] for k in ("sms", "call", "control"))
    return counts


def queue_county_sms(marketing: Engine, cycle_date: dt.date, county_code: str, library: list[Campaign],
                     chunk: int = 20_000) -> dict[str, int]:
    """Render and queue the county's SMS contacts not yet in the outbox."""
    from qz_outbound.sms.outbox import SmsToQueue, queue_messages

    by_code = {c.code: c for c in library}
    totals: dict[str, int] = {}
    d = cycle_date.isoformat() if marketing.dialect.name == "sqlite" else cycle_date
    query = sa.text(
        "select c.contact_id, c.campaign_code, c.variant, s.customer_name "
        "from mkt_contact as c join mkt_segment_snapshot as s "
        "on s.cycle_date = c.cycle_date and s.msisdn = c.msisdn "
        "where c.cycle_date = :d and c.county_code = :c and c.channel = 'sms' "
        "and not exists (select 1 from sms_outbox as o where o.contact_id = c.contact_id) "
        "order by c.contact_id")
    with marketing.connect() as conn:
        rows = conn.execute(query, {"d": d, "c": county_code}).all()
    for start in range(0, len(rows), chunk):
        batch = []
        for contact_id, code, variant, name in rows[start:start + chunk]:
            campaign = by_code[code]
            template = campaign.sms_variants[variant or campaign.variant_labels[0]].template
            batch.append(SmsToQueue(contact_id, template, {
                "customer_name": name or "客户", "offer": campaign.offer, "campaign_name": campaign.name}))
        for k, v in queue_messages(marketing, batch).as_dict().items():
            totals[k] = totals.get(k, 0) + v
    return totals
