"""Top-ups into recommendations, exactly once (docs/agent-channel.md).

* :func:`ingest_events` reads the data mart's new ``recharge_event`` rows (from the newest event
  seen, minus a late-arrival margin) with the facts the decision needs, into ``mkt_agent_event``
  (insert-on-conflict on ``event_id``: reading an event again changes nothing);
* :func:`recommend_batch` — only while SMS may be sent — claims a batch of pending events
  (``include/sql/agent_claim.sql``), decides all of them in one statement
  (``include/sql/agent_decide.sql``: the contact policy, then up to ``max_products`` eligible agent
  products, best first), records each recommendation as one ``mkt_contact`` (channel ``agent``,
  with ``agent_id``, the first product) and its listed products in ``mkt_agent_offer``, and queues
  two SMS in the daily cycle's outbox: the shop owner's (the customer's number masked, the
  products in order, one line of pitch each) and the customer's (the first product's offer). Claim, decision, contacts and SMS commit together, so a
  failed or overlapping run can neither lose an event nor decide it twice;
* :func:`send_agent_sms` sends them with the daily cycle's SMPP sender, on the outbox's ``agent``
  lane (its own sender lease, so a county's long daily batch never holds a top-up back; the rate
  limiter is per SMSC account, so both together keep the contracted rate);
* :func:`serve` repeats the three for a while: what the DAG's task and the benchmark run.

Return values are counts (XCom-safe); logs carry counts and masked numbers only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qz_outbound import clock, db
from qz_outbound.agent.schema import mkt_agent_event, mkt_agent_offer, mkt_personal_data
from qz_outbound.agent.settings import AgentChannelConfig, load_agent_config
from qz_outbound.campaigns import Campaign
from qz_outbound.schema import mkt_contact
from qz_outbound.policy import contact_policy_binds
from qz_outbound.sms import window
from qz_outbound.sms.outbox import PENDING as PART_PENDING
from qz_outbound.phone import mask
from qz_outbound.sms.outbox import QUEUED, SKIPPED
from qz_outbound.sms.render import RenderError, render_sms, with_reference
from qz_outbound.sms.schema import sms_outbox, sms_part
from qz_outbound.sms.settings import SmsConfig, load_sms_config
from qz_outbound.targeting import ContactPolicy, load_policy

log = logging.getLogger(__name__)

LANE = "agent"            # sms_outbox.county_code of the agent channel's SMS: its own sender lease
SHOP_TEMPLATE_FALLBACK = "agent-shop"
PENDING, DONE = "pending", "done"
RECOMMENDED = "recommended"
EVENT_COLUMNS = ["event_id", "msisdn", "agent_id", "amount_yuan", "event_time", "copies", "agent_known",
                 "agent_msisdn", "outlet_name", "agent_county", "customer_status", "customer_county", "dnd",
                 "complaint"]


def _local(ts: dt.datetime) -> str:
    """A data mart timestamp literal: Asia/Shanghai local time, no zone."""
    return ts.astimezone(clock.SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def contact_id_of(event_id: str) -> str:
    """The recommendation's contact id, from its event (so a re-decision could never mint a second)."""
    return "AG" + hashlib.sha256(event_id.encode()).hexdigest()[:30]


def shop_message_id(contact_id: str) -> str:
    """The shop owner's SMS in the outbox: beside the customer's, with no contact of its own."""
    return "AS" + contact_id[2:]


# ---------------------------------------------------------------- ingest

def ingest_events(datamart: Engine, marketing: Engine, cfg: AgentChannelConfig | None = None,
                  policy: ContactPolicy | None = None) -> dict:
    """New recharge events into ``mkt_agent_event``; returns ``{"read": n, "new": n}``."""
    cfg = cfg or load_agent_config()
    policy = policy or load_policy()
    now = clock.now()
    with marketing.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(mkt_agent_event.c.event_time))).scalar()
    if isinstance(newest, str):
        newest = dt.datetime.fromisoformat(newest)
    since = (newest - dt.timedelta(minutes=cfg.recommendation.late_arrival_minutes)) if newest else \
        now.replace(tzinfo=None) - dt.timedelta(hours=cfg.recommendation.first_read_hours)
    params = {"since": since.strftime("%Y-%m-%d %H:%M:%S"),
              "until": _local(now + dt.timedelta(minutes=5)),   # a few minutes of clock skew between systems
              "complaint_since": _local(now - dt.timedelta(days=policy.complaint_days))}
    frame = pd.read_sql(sa.text(db.render_sql("agent_events.sql", datamart.dialect.name)), datamart, params=params)
    if frame.empty:
        return {"read": 0, "new": 0}
    frame["event_time"] = pd.to_datetime(frame["event_time"], format="ISO8601").dt.to_pydatetime()
    rows = frame[EVENT_COLUMNS].astype(object).where(frame[EVENT_COLUMNS].notna(), None).to_dict("records")
    for r in rows:
        r.update(ingested_at=now, state=PENDING, amount_yuan=float(r["amount_yuan"]))
    new = 0
    with marketing.begin() as conn:
        known_before = conn.execute(sa.select(sa.func.count()).select_from(mkt_agent_event)).scalar()
        for i in range(0, len(rows), 5000):
            # a known event stays as it is; only a data mart that now holds more copies of it is noted
            db.upsert(conn, mkt_agent_event, rows[i:i + 5000], key=("event_id",), update=("copies",),
                      when=lambda new: new.copies > mkt_agent_event.c.copies)
        new = conn.execute(sa.select(sa.func.count()).select_from(mkt_agent_event)).scalar() - known_before
    log.info("recharge events read %d, new %d", len(rows), new)
    return {"read": len(rows), "new": new}


# ---------------------------------------------------------------- decide

@dataclass(frozen=True)
class AgentCampaignSql:
    code: str
    product_code: str
    priority: int
    enabled: bool
    rules: object
    personal: bool


def agent_campaigns(library: list[Campaign], day: dt.date) -> list[AgentCampaignSql]:
    """The campaigns the agent channel may recommend on ``day``."""
    out = []
    for c in library:
        if "agent" not in c.channels or not c.active_on(day):
            continue
        rules = c.agent_rules
        if rules is not None and (rules.bundle_expiring or rules.holds_any_of or rules.sql
                                  or rules.terminal_types or rules.sms_count):
            raise ValueError(f"campaign {c.code}: agent_rules support stability types, tiers, market segments, "
                             "bundle and anniversary_month; bundle_expiring, holds_any_of, sql, terminal_types and "
                             "sms_count are daily-cycle rules")
        out.append(AgentCampaignSql(c.code, c.product_code, c.priority, True, rules, bool(c.personal_fields)))
    return out


def _latest(conn: Connection, table: str, today: dt.date) -> dt.date:
    latest = conn.execute(sa.text(f"select max(cycle_date) from {table} where cycle_date <= :d").bindparams(
        sa.bindparam("d", type_=sa.Date)), {"d": today}).scalar()
    if isinstance(latest, str):
        latest = dt.date.fromisoformat(latest)
    return latest or dt.date(1900, 1, 1)


def decision_params(conn: Connection, now: dt.datetime, policy: ContactPolicy, cfg: AgentChannelConfig) -> dict:
    today = now.date()
    latest = _latest(conn, "mkt_target", today)     # no cycle yet: no current offers, no staged exclusions
    # the daily cycle's rules and dates; today's contacts (the cycle's SMS and calls) count too
    return {**contact_policy_binds(today, policy, cycle=latest, today_counts=True),
            "valid_since": _local(now - dt.timedelta(hours=cfg.recommendation.offer_validity_hours)),
            "ev_cycle": _latest(conn, "mkt_offer_value", today).isoformat(),   # the measured values in force
            "grade_month": today.replace(day=1).isoformat()}


def decision_context(cfg: AgentChannelConfig, budget_cfg) -> dict:
    """The decision's configuration as template context: how many products, the outlet grades'
    steering, the monthly budgets (qz_outbound/budgets.py)."""
    rec = cfg.recommendation
    steering = [{"grade": grade, "max_products": min(steer.max_products or rec.max_products, rec.max_products),
                 "campaigns": steer.campaigns} for grade, steer in rec.grade_steering.items()]
    budgets = [{"code": code, "county": "", "yuan": float(b.monthly_yuan)} for code, b in budget_cfg.campaigns.items()]
    budgets += [{"code": code, "county": county, "yuan": float(yuan)}
                for code, b in budget_cfg.campaigns.items() for county, yuan in b.counties.items()]
    return {"max_products": rec.max_products, "steering": steering, "budgets": budgets}


def render_shop_sms(cfg: AgentChannelConfig, campaigns_listed: list[Campaign], masked: str, outlet_name: str,
                    message_cfg):
    """The shop owner's SMS for the listed products (best first) and its template. One product: the
    campaign's own ``agent_sms`` (the text of a single recommendation). Several: the list template;
    when the list would need more SMS parts than allowed, the last products are dropped until it
    fits (the first is always kept). Returns (template, sms, campaigns actually listed)."""
    listed = list(campaigns_listed)
    while True:
        if len(listed) == 1:
            first = listed[0]
            template = first.agent_sms or SHOP_TEMPLATE_FALLBACK
            return template, render_sms(template, {
                "masked_msisdn": masked, "offer_name": first.name, "offer": first.offer,
                "product_code": first.product_code, "pitch": first.agent_pitch, "outlet_name": outlet_name},
                message_cfg), listed
        template = cfg.recommendation.shop_list_template
        try:
            return template, render_sms(template, {
                "masked_msisdn": masked, "outlet_name": outlet_name,
                "products": [{"offer_name": c.name, "offer": c.offer, "product_code": c.product_code,
                              "pitch": c.agent_pitch} for c in listed]}, message_cfg), listed
        except RenderError as exc:
            if "SMS parts" not in exc.reason:
                raise
            listed = listed[:-1]


def _outbox_rows(message_id: str, day: dt.date, msisdn: str, campaign_code: str, template: str, sms, now):
    """One outbox row and its parts, as the daily cycle's queueing writes them (state ``queued``)."""
    row = dict(contact_id=message_id, cycle_date=day, county_code=LANE, msisdn=msisdn, campaign_code=campaign_code,
               template=template, text=sms.text, parts=len(sms.parts), state=QUEUED, reason=None, claim_token=None,
               queued_at=now, submitted_at=None, done_at=None)
    parts = [dict(contact_id=message_id, part_no=i, esm_class=sms.esm_class, data_coding=sms.data_coding,
                  payload=payload, state=PART_PENDING, attempts=0)
             for i, payload in enumerate(sms.parts, start=1)]
    return row, parts


def recommend_batch(marketing: Engine, library: list[Campaign], *, cfg: AgentChannelConfig | None = None,
                    policy: ContactPolicy | None = None, sms_config: SmsConfig | None = None,
                    budget_cfg=None) -> dict:
    """Claim, decide, record and queue one batch of pending events; returns counts per outcome.

    Outside the sending window nothing is claimed (``{"window_closed": 1}``): a top-up at night
    waits and is decided in the morning, when its offer may have expired (outcome ``expired``).
    """
    cfg = cfg or load_agent_config(library=library)
    policy = policy or load_policy()
    sms_config = sms_config or load_sms_config()
    now = clock.now()
    if not window.is_open(sms_config.sending_hours, now):
        return {"window_closed": 1}
    if budget_cfg is None:
        from qz_outbound.budgets import load_budgets

        budget_cfg = load_budgets(library=library)
    today = now.date()
    campaigns_sql = agent_campaigns(library, today)
    by_code = {c.code: c for c in library}
    token = uuid.uuid4().hex
    dialect = marketing.dialect.name
    outcomes: Counter = Counter()
    with marketing.begin() as conn:
        claimed = conn.execute(sa.text(db.render_sql("agent_claim.sql", dialect)),
                               {"token": token, "batch_size": cfg.recommendation.batch_size}).rowcount
        if not claimed:
            return {}
        params = {**decision_params(conn, now, policy, cfg), "token": token}
        decided_rows = conn.execute(sa.text(db.render_sql(
            "agent_decide.sql", dialect, agent_campaigns=campaigns_sql, policy=policy,
            **decision_context(cfg, budget_cfg))), params).mappings().all()
        decided, listed_of = [], {}       # one row per event; the listed products per recommended event
        for r in decided_rows:
            if r["event_id"] not in listed_of:
                decided.append(r)
                listed_of[r["event_id"]] = []
            if r["outcome"] == RECOMMENDED:
                listed_of[r["event_id"]].append((r["campaign_code"], r["expected_value"]))
        personal = _personal_fields(conn, [r for r in decided if r["outcome"] == RECOMMENDED], by_code)

        contacts, messages, event_rows, offers = [], [], {}, {}
        for r in decided:
            event_rows[r["event_id"]] = dict(b_id=r["event_id"], b_outcome=r["outcome"], b_campaign=r["campaign_code"],
                                             b_product=r["product_code"], b_contact=None)
            if r["outcome"] != RECOMMENDED:
                continue
            campaign = by_code[r["campaign_code"]]      # the first listed: the customer's SMS
            fields = personal.get((campaign.code, r["msisdn"]), {})
            try:
                customer_template = campaign.customer_agent_template
                customer_sms = render_sms(customer_template, {
                    "offer": campaign.offer, "campaign_name": campaign.name, "outlet_name": r["outlet_name"],
                    "customer_name": r["customer_name"] or "客户", "personal": fields}, sms_config.message)
                shop_template, shop_sms, listed = render_shop_sms(
                    cfg, [by_code[code] for code, _ in listed_of[r["event_id"]]], mask(r["msisdn"]),
                    r["outlet_name"], sms_config.message)
            except RenderError as exc:
                log.warning("agent SMS for %s (campaign %s) not rendered: %s", mask(r["msisdn"]), campaign.code,
                            exc.reason)
                event_rows[r["event_id"]]["b_outcome"] = "render_error"
                continue
            cid = contact_id_of(r["event_id"])
            contacts.append(dict(contact_id=cid, cycle_date=today, msisdn=r["msisdn"], county_code=r["county_code"],
                                 campaign_code=campaign.code, product_code=campaign.product_code, variant=None,
                                 channel="agent", segment_code=r["segment_code"], status=QUEUED, created_at=now,
                                 agent_id=r["agent_id"]))
            values = dict(listed_of[r["event_id"]])
            offers[cid] = [dict(contact_id=cid, product_rank=rank, campaign_code=c.code, product_code=c.product_code,
                                expected_value=None if values.get(c.code) is None else float(values[c.code]))
                           for rank, c in enumerate(listed, start=1)]
            messages.append((r["event_id"], cid, (r["msisdn"], customer_template, customer_sms),
                             (r["agent_msisdn"], shop_template, shop_sms), campaign.code))

        landed: set[str] = set()
        if contacts:
            db.upsert(conn, mkt_contact, contacts, key=("cycle_date", "msisdn"),
                      index_where=mkt_contact.c.channel == sa.literal_column("'agent'"))
            ids = [c["contact_id"] for c in contacts]
            landed = set(conn.scalars(sa.select(mkt_contact.c.contact_id).where(
                mkt_contact.c.contact_id.in_(ids))))   # ids come from claimed events: present means ours
        outbox, parts, offer_rows = [], [], []
        for event_id, cid, customer, shop, code in messages:
            if cid not in landed:       # another run recommended to this customer today, a moment earlier
                event_rows[event_id]["b_outcome"] = "duplicate_customer"
                continue
            event_rows[event_id]["b_contact"] = cid
            offer_rows += offers[cid]
            for message_id, (number, template, sms) in ((cid, customer), (shop_message_id(cid), shop)):
                # a 16-bit concatenation reference of its own: a shop owner gets many long SMS a day
                sms = with_reference(sms, message_id, sms_config.message.max_parts)
                row, prts = _outbox_rows(message_id, today, number, code, template, sms, now)
                outbox.append(row)
                parts += prts
        if outbox:
            conn.execute(sms_outbox.insert(), outbox)
            conn.execute(sms_part.insert(), parts)
        if offer_rows:
            conn.execute(mkt_agent_offer.insert(), offer_rows)
        conn.execute(
            mkt_agent_event.update().where(mkt_agent_event.c.event_id == sa.bindparam("b_id"))
            .values(state=DONE, decided_at=now, outcome=sa.bindparam("b_outcome"),
                    campaign_code=sa.bindparam("b_campaign"), product_code=sa.bindparam("b_product"),
                    contact_id=sa.bindparam("b_contact")),
            list(event_rows.values()))
        outcomes.update(r["b_outcome"] for r in event_rows.values())
    counts = dict(sorted(outcomes.items()))
    log.info("agent batch: %d events decided: %s", claimed, counts)
    return counts


def _personal_fields(conn: Connection, rows, by_code: dict[str, Campaign]) -> dict[tuple[str, str], dict]:
    wanted = {(r["campaign_code"], r["msisdn"]) for r in rows if by_code[r["campaign_code"]].personal_fields}
    found: dict[tuple[str, str], dict] = {}
    for code in {c for c, _ in wanted}:
        numbers = [m for c, m in wanted if c == code]
        for i in range(0, len(numbers), 1000):
            for msisdn, fields in conn.execute(
                    sa.select(mkt_personal_data.c.msisdn, mkt_personal_data.c.fields).where(
                        mkt_personal_data.c.campaign_code == code,
                        mkt_personal_data.c.msisdn.in_(numbers[i:i + 1000]))):
                found[(code, msisdn)] = json.loads(fields)
    return found


def recommend_pending(marketing: Engine, library: list[Campaign], **kwargs) -> dict:
    """Batches until nothing pending can be claimed; counts per outcome."""
    if kwargs.get("budget_cfg") is None:
        from qz_outbound.budgets import load_budgets

        kwargs["budget_cfg"] = load_budgets(library=library)
    total: Counter = Counter()
    while True:
        counts = recommend_batch(marketing, library, **kwargs)
        total.update(counts)
        if not counts or "window_closed" in counts:
            return dict(total)


# ---------------------------------------------------------------- send

def expire_unsent(marketing: Engine, cfg: AgentChannelConfig | None = None) -> int:
    """Agent SMS still queued when their offer is no longer valid (the window closed on them) are
    not sent: ``skipped`` with reason ``expired`` (the contact too, so it counts as no contact)."""
    cfg = cfg or load_agent_config()
    cutoff = clock.now() - dt.timedelta(hours=cfg.recommendation.offer_validity_hours)
    with marketing.begin() as conn:
        ids = list(conn.scalars(sa.select(sms_outbox.c.contact_id).where(
            sms_outbox.c.county_code == LANE, sms_outbox.c.state == QUEUED, sms_outbox.c.queued_at < cutoff)))
        for i in range(0, len(ids), 1000):
            batch = ids[i:i + 1000]
            conn.execute(sms_outbox.update().where(sms_outbox.c.contact_id.in_(batch), sms_outbox.c.state == QUEUED)
                         .values(state=SKIPPED, reason="expired"))
            conn.execute(sms_part.update().where(sms_part.c.contact_id.in_(batch), sms_part.c.state == PART_PENDING)
                         .values(state=SKIPPED))
            conn.execute(mkt_contact.update().where(mkt_contact.c.contact_id.in_(batch),
                                                    mkt_contact.c.status == QUEUED).values(status=SKIPPED))
    if ids:
        log.info("agent SMS expired unsent: %d", len(ids))
    return len(ids)


def send_agent_sms(marketing: Engine, smsc_settings, sms_config: SmsConfig | None = None,
                   cfg: AgentChannelConfig | None = None) -> dict:
    """Send the agent lane's queued SMS now (the daily cycle's sender, within the window)."""
    from qz_outbound.sms import SenderBusy, send_batch

    expired = expire_unsent(marketing, cfg)
    try:
        result = send_batch(marketing, clock.today(), LANE, smsc_settings, sms_config=sms_config).as_dict()
    except SenderBusy:
        return {"busy": 1, "expired": expired}      # an overlapping run is sending this lane right now
    keep = ("submitted", "rejected", "skipped_opt_out", "in_doubt", "remaining", "window_closed")
    return {**{k: result[k] for k in keep}, "expired": expired}


# ---------------------------------------------------------------- the loop

def serve(datamart: Engine, marketing: Engine, library: list[Campaign], smsc_settings, *, seconds: float,
          poll_seconds: float = 5.0, cfg: AgentChannelConfig | None = None, sms_config: SmsConfig | None = None,
          policy: ContactPolicy | None = None) -> dict:
    """Ingest, recommend and send every ``poll_seconds`` for ``seconds``; summed counts.

    Several of these may run at once (overlapping DAG runs): events are claimed, so each is decided
    once, and the lane's sender lease lets one of them send at a time.
    """
    cfg = cfg or load_agent_config()
    sms_config = sms_config or load_sms_config()
    policy = policy or load_policy()
    total: Counter = Counter()
    deadline = time.monotonic() + seconds
    while True:
        started = time.monotonic()
        total.update({f"events_{k}": v for k, v in ingest_events(datamart, marketing, cfg, policy).items()})
        total.update(recommend_pending(marketing, library, cfg=cfg, policy=policy, sms_config=sms_config))
        sent = send_agent_sms(marketing, smsc_settings, sms_config, cfg)
        total.update({f"sms_{k}": int(v) for k, v in sent.items() if k in ("submitted", "rejected", "expired",
                                                                             "skipped_opt_out", "busy")})
        total.pop("window_closed", None)
        if time.monotonic() >= deadline:
            return dict(total)
        time.sleep(max(0.0, min(poll_seconds - (time.monotonic() - started), deadline - time.monotonic())))
