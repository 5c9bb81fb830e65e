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

from qz_outbound import callcentre, clock, db
from qz_outbound.campaigns import Campaign
from qz_outbound.cycle import record_stage
from qz_outbound.targeting import Channels, load_channels

log = logging.getLogger(__name__)


def publish_county(marketing: Engine, cycle_date: dt.date, county_code: str, library: list[Campaign],
                   channels: Channels | None = None, queue_sms: bool = True) -> dict[str, int]:
    """Split the county's target list into control / call / SMS contacts and queue the SMS.

    Returns counts (never customer data): contacts per channel, customers left
    waiting (call-only campaigns over capacity), and the SMS queue result.
    """
    channels = channels or load_channels()
    started = time.monotonic()
    sql = db.render_sql("publish_county.sql", marketing.dialect.name)
    stmt = sa.text(sql).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)),
                                   sa.bindparam("wrong_since", type_=sa.DateTime(timezone=True)))
    with marketing.begin() as conn:
        if marketing.dialect.name == "postgresql":
            # two runs of the same county at once: the second waits, then finds the rows there
            conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"),
                         {"k": f"publish:{cycle_date}:{county_code}"})
        # redials and callbacks first, within the capacity; new customers fill what is left
        followups = callcentre.publish_followups(conn, cycle_date, county_code, channels.capacity(county_code),
                                                 channels.redial)
        conn.execute(stmt, {"d": cycle_date.isoformat(), "ymd": f"{cycle_date:%Y%m%d}", "county": county_code,
                            "capacity": max(0, channels.capacity(county_code) - followups), "now": clock.now(),
                            "wrong_since": callcentre.wrong_number_since(cycle_date, channels.redial)})
    counts = contact_counts(marketing, cycle_date, county_code)
    if queue_sms:
        counts.update({f"sms_{k}": v for k, v in queue_county_sms(marketing, cycle_date, county_code,
                                                                    library).items()})
    record_stage(marketing, cycle_date, f"publish:{county_code}",
                 sum(counts.get(k, 0) for k in ("sms", "call", "redial", "callback")),
                 time.monotonic() - started, detail=str(counts))
    log.info("county %s published: %s", county_code, counts)
    return counts


def contact_counts(marketing: Engine, cycle_date: dt.date, county_code: str) -> dict[str, int]:
    with marketing.connect() as conn:
        rows = conn.execute(db.date_binds(
            "select coalesce(call_kind, channel), count(*) from mkt_contact where cycle_date = :d "
            "and county_code = :c and channel in ('sms', 'call', 'control') group by coalesce(call_kind, channel)",
            "d"), {"d": cycle_date, "c": county_code}).all()
        targets, held = conn.execute(db.date_binds(
            "select count(*), sum(case when exists (select 1 from mkt_target_hold as h where h.cycle_date = "
            "t.cycle_date and h.campaign_code = t.campaign_code) then 1 else 0 end) "
            "from mkt_target as t where t.cycle_date = :d and t.county_code = :c", "d"),
            {"d": cycle_date, "c": county_code}).one()
        budget = conn.execute(db.date_binds(
            "select count(*) from mkt_budget_cut where cycle_date = :d and county_code = :c", "d"),
            {"d": cycle_date, "c": county_code}).scalar()
    # call: the day's new customers phoned; redial / callback: follow-ups of earlier calls (callcentre.py)
    counts = {"sms": 0, "call": 0, "control": 0, "redial": 0, "callback": 0, **{ch: n for ch, n in rows}}
    counts["held"] = int(held or 0)   # campaigns validation held back (mkt_target_hold)
    counts["budget"] = int(budget or 0)   # over a monthly budget (mkt_budget_cut), never published
    counts["waiting"] = targets - counts["held"] - counts["budget"] - sum(counts[k] for k in ("sms", "call", "control"))
    return counts


# Template variables that are the same for every customer of a campaign: a template that uses
# only these is rendered once per campaign and variant, and the county's outbox filled in SQL.
CAMPAIGN_VARS = frozenset({"offer", "campaign_name"})


def _campaign_context(campaign: Campaign) -> dict[str, str]:
    return {"offer": campaign.offer, "campaign_name": campaign.name}


def template_variables(template: str) -> frozenset[str]:
    """The variables an SMS template reads (Jinja's own parser, not a guess)."""
    import jinja2.meta

    from qz_outbound.sms.render import SMS_TEMPLATE_DIR, _environment

    env = _environment(SMS_TEMPLATE_DIR)
    source, _, _ = env.loader.get_source(env, f"{template}.j2")
    return frozenset(jinja2.meta.find_undeclared_variables(env.parse(source)))


def queue_county_sms(marketing: Engine, cycle_date: dt.date, county_code: str, library: list[Campaign],
                     chunk: int = 20_000) -> dict[str, int]:
    """Render and queue the county's SMS contacts not yet in the outbox.

    Texts that depend only on the campaign (most of them) are rendered once per campaign and
    variant and queued for the whole county by ``include/sql/queue_county_sms.sql``; texts that
    name the customer are rendered one by one through :func:`qz_outbound.sms.queue_messages`.
    Both paths leave what is already in the outbox alone, skip opted-out customers and record a
    render error as a failed message with its reason.
    """
    from qz_outbound.sms.render import RenderError, render_sms
    from qz_outbound.sms.settings import load_sms_config

    message_cfg = load_sms_config().message
    by_code = {c.code: c for c in library}
    with marketing.connect() as conn:
        pairs = conn.execute(db.date_binds(
            "select distinct c.campaign_code, coalesce(c.variant, '') from mkt_contact as c "
            "where c.cycle_date = :d and c.county_code = :c and c.channel = 'sms' "
            "and not exists (select 1 from sms_outbox as o where o.contact_id = c.contact_id)", "d"),
            {"d": cycle_date, "c": county_code}).all()
    renders, parts, per_customer = [], [], []
    for code, variant in pairs:
        campaign = by_code[code]
        template = campaign.sms_variants[variant or campaign.variant_labels[0]].template
        if not template_variables(template) <= CAMPAIGN_VARS:
            per_customer.append((code, variant, template))
            continue
        row = dict(campaign_code=code, variant=variant, template=template, state="queued", text=None, parts=0,
                   reason=None)
        try:
            sms = render_sms(template, _campaign_context(campaign), message_cfg)
        except RenderError as exc:
            row.update(state="failed", reason=f"render_error: {exc.reason}")
        else:
            row.update(text=sms.text, parts=len(sms.parts))
            parts += [dict(campaign_code=code, template=template, part_no=i, esm_class=sms.esm_class,
                           data_coding=sms.data_coding, payload=payload)
                      for i, payload in enumerate(sms.parts, start=1)]
        renders.append(row)

    totals: dict[str, int] = {}
    if renders:
        totals = _queue_rendered(marketing, cycle_date, county_code, renders, parts)
    for code, variant, template in per_customer:
        for k, v in _queue_per_customer(marketing, cycle_date, county_code, by_code[code], variant, template,
                                        chunk).items():
            totals[k] = totals.get(k, 0) + v
    return totals


def _queue_rendered(marketing: Engine, cycle_date: dt.date, county_code: str, renders: list[dict],
                    parts: list[dict]) -> dict[str, int]:
    """The set path: stage the campaign texts, then three statements fill the outbox."""
    metadata = sa.MetaData()
    render_t = sa.Table("tmp_sms_render", metadata,
                        sa.Column("campaign_code", sa.String(16)), sa.Column("variant", sa.String(8)),
                        sa.Column("template", sa.String(64)), sa.Column("state", sa.String(16)),
                        sa.Column("text", sa.Text), sa.Column("parts", sa.SmallInteger),
                        sa.Column("reason", sa.Text), prefixes=["TEMPORARY"])
    part_t = sa.Table("tmp_sms_render_part", metadata,
                      sa.Column("campaign_code", sa.String(16)), sa.Column("template", sa.String(64)),
                      sa.Column("part_no", sa.SmallInteger), sa.Column("esm_class", sa.SmallInteger),
                      sa.Column("data_coding", sa.SmallInteger), sa.Column("payload", sa.LargeBinary),
                      prefixes=["TEMPORARY"])
    params = {"d": cycle_date.isoformat(), "county": county_code, "now": clock.now()}
    dialect = marketing.dialect.name
    count_states = db.date_binds("select state, count(*) from sms_outbox where cycle_date = :d "
                                 "and county_code = :c group by state", "d")
    count_params = {"d": cycle_date, "c": county_code}
    with marketing.begin() as conn:
        if dialect == "postgresql":
            conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"),
                         {"k": f"queue:{cycle_date}:{county_code}"})
        before = dict(conn.execute(count_states, count_params).all())
        metadata.drop_all(conn, checkfirst=True)
        metadata.create_all(conn)
        conn.execute(render_t.insert(), renders)
        if parts:
            conn.execute(part_t.insert(), parts)
        if dialect == "postgresql":
            conn.exec_driver_sql("analyze tmp_sms_render; analyze tmp_sms_render_part")
        n_parts, timings = 0, {}
        for step in ("outbox", "parts", "status"):
            t0 = time.monotonic()
            stmt = sa.text(db.render_sql("queue_county_sms.sql", dialect, step=step))
            if step == "outbox":
                stmt = stmt.bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)))
            n = conn.execute(stmt, {k: v for k, v in params.items() if step == "outbox" or k != "now"}).rowcount
            n_parts = n if step == "parts" else n_parts
            timings[step] = round(time.monotonic() - t0, 1)
        log.info("county %s: SMS queued in SQL (%s parts; seconds per step %s)", county_code, n_parts, timings)
        metadata.drop_all(conn)
        after = dict(conn.execute(count_states, count_params).all())
    added = {k: after.get(k, 0) - before.get(k, 0) for k in ("queued", "skipped", "failed")}
    return {**added, "parts": n_parts}


def _queue_per_customer(marketing: Engine, cycle_date: dt.date, county_code: str, campaign: Campaign, variant: str, template: str,
                        chunk: int) -> dict[str, int]:
    """Texts that name the customer: rendered one by one (queue_messages)."""
    from qz_outbound.sms.outbox import SmsToQueue, queue_messages

    query = db.date_binds(
        "select c.contact_id, s.customer_name "
        "from mkt_contact as c join mkt_segment_snapshot as s "
        "on s.cycle_date = c.cycle_date and s.msisdn = c.msisdn "
        "where c.cycle_date = :d and c.county_code = :c and c.channel = 'sms' "
        "and c.campaign_code = :code and coalesce(c.variant, '') = :variant "
        "and not exists (select 1 from sms_outbox as o where o.contact_id = c.contact_id) "
        "order by c.contact_id", "d")
    with marketing.connect() as conn:
        rows = conn.execute(query, {"d": cycle_date, "c": county_code, "code": campaign.code, "variant": variant}).all()
    totals: dict[str, int] = {}
    context = _campaign_context(campaign)
    for start in range(0, len(rows), chunk):
        batch = [SmsToQueue(contact_id, template, {**context, "customer_name": name or "客户"})
                 for contact_id, name in rows[start:start + chunk]]
        for k, v in queue_messages(marketing, batch).as_dict().items():
            totals[k] = totals.get(k, 0) + v
    return totals
