"""Closing the loop: call outcomes and BOSS orders into the contact history, attribution, uplift.

* :func:`apply_call_outcomes` — each call contact takes its latest reported outcome
  (``include/sql/outcome_calls.sql``); the next cycle's targeting reads the refusals from there.
  (SMS receipts and replies are applied by the SMS receiver as they arrive; docs/sms-delivery.md.)
* :func:`stage_orders` — the data mart's ``order_event`` of the last days into ``stg_order``,
  each order once however often it arrives.
* :func:`attribute_orders` — credits each order to the latest contact of that customer for that
  product within the attribution window (``include/sql/attribution.sql``), control contacts too.
* :func:`outcome_report` — per campaign and per variant, segment type, county and channel:
  contacts, delivered, replied, accepted, converted, conversion rate, the control group's rate,
  uplift with a confidence interval, cost and ROI; flags what is below the thresholds.

Everything is idempotent: a source arriving late, twice or out of order gives the same history.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from statistics import NormalDist

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from qz_outbound import clock, config, db, reports, schema
from qz_outbound.campaigns import Campaign

log = logging.getLogger(__name__)



class Flag(config.StrictModel):
    min_contacts: int = Field(ge=1)
    min_conversion_rate: float = Field(ge=0, le=1)


class OutcomeConfig(config.StrictModel):
    attribution_days: int = Field(ge=1, le=90)
    order_lookback_days: int = Field(ge=1, le=365)
    report_days: int = Field(ge=1, le=365)
    confidence: float = Field(gt=0.5, lt=1)
    flag: Flag


def load_outcome_config(path: Path | None = None) -> OutcomeConfig:
    return config.load(OutcomeConfig, path or config.config_path("outcomes.yaml"))


def apply_call_outcomes(marketing: Engine) -> int:
    schema.ensure_schema(marketing)
    with marketing.begin() as conn:
        n = conn.execute(sa.text(db.render_sql("outcome_calls.sql", marketing.dialect.name))).rowcount
    log.info("call outcomes applied to %d contacts", n)
    return n


def stage_orders(datamart: Engine, marketing: Engine, until: dt.datetime, lookback_days: int) -> int:
    """Copy the orders of the last ``lookback_days`` not staged yet; returns how many were new."""
    schema.ensure_schema(marketing)
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


def uplift_interval(conv_t: int, n_t: int, conv_c: int, n_c: int, confidence: float) -> tuple[float, float, float]:
    """Difference of two proportions with a Wald interval: (uplift, low, high); NaN without data."""
    if not n_t or not n_c:
        return math.nan, math.nan, math.nan
    p_t, p_c = conv_t / n_t, conv_c / n_c
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    return p_t - p_c, p_t - p_c - z * se, p_t - p_c + z * se


DIMENSIONS = {"campaign": None, "variant": "variant", "segment_type": "segment_type", "county": "county_code",
              "channel": "channel"}


def outcome_report(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                   cfg: OutcomeConfig | None = None) -> pd.DataFrame:
    """HQ's outcome table for the contacts of the last ``report_days`` cycles up to ``cycle_date``."""
    cfg = cfg or load_outcome_config()
    since = cycle_date - dt.timedelta(days=cfg.report_days)
    d = (lambda x: x.isoformat()) if marketing.dialect.name == "sqlite" else (lambda x: x)
    contacts = pd.read_sql(sa.text(
        "select campaign_code, variant, segment_code, county_code, channel, status, delivered_at, responded_at, "
        "response, converted_at from mkt_contact where cycle_date >= :a and cycle_date <= :b"),
        marketing, params={"a": d(since), "b": d(cycle_date)})
    by_code = {c.code: c for c in library}
    contacts["segment_type"] = contacts["segment_code"].fillna("").str.split("-").str[0]
    contacts["control"] = contacts["channel"] == "control"
    contacts["delivered"] = contacts["delivered_at"].notna() | (contacts["channel"] == "call") & contacts[
        "response"].notna()
    contacts["replied"] = contacts["responded_at"].notna()
    contacts["accepted"] = contacts["response"].isin(["accept", "accepted"])
    contacts["converted"] = contacts["converted_at"].notna()
    rows = []
    for dim, col in DIMENSIONS.items():
        keys = ["campaign_code"] + ([col] if col else [])
        treated = contacts[~contacts["control"]]
        control = contacts[contacts["control"]]
        t = treated.groupby(keys, dropna=False).agg(
            contacts=("converted", "size"), delivered=("delivered", "sum"), replied=("replied", "sum"),
            accepted=("accepted", "sum"), converted=("converted", "sum")).reset_index()
        # the control group is compared within the same slice where it has one (variant and channel
        # do not apply to control customers: they are compared with the campaign's whole control group)
        ckeys = keys if col in ("segment_type", "county_code") else ["campaign_code"]
        c = control.groupby(ckeys, dropna=False).agg(control_n=("converted", "size"),
                                                     control_converted=("converted", "sum")).reset_index()
        merged = t.merge(c, on=ckeys, how="left").fillna({"control_n": 0, "control_converted": 0})
        for r in merged.itertuples(index=False):
            campaign = by_code.get(r.campaign_code)
            up, lo, hi = uplift_interval(int(r.converted), int(r.contacts), int(r.control_converted),
                                         int(r.control_n), cfg.confidence)
            cost = float(campaign.cost_per_contact_yuan) * r.contacts \
                if campaign and campaign.cost_per_contact_yuan is not None else None
            value = float(campaign.commission_yuan) * up * r.contacts \
                if campaign and campaign.commission_yuan and not math.isnan(up) else None
            rate = r.converted / r.contacts if r.contacts else 0.0
            flags = []
            if r.contacts >= cfg.flag.min_contacts and rate < cfg.flag.min_conversion_rate:
                flags.append("conversion_below_threshold")
            if not math.isnan(hi) and hi < 0 and r.contacts >= cfg.flag.min_contacts:
                flags.append("uplift_significantly_negative")
            rows.append({
                "dimension": dim, "value": "" if col is None else str(getattr(r, col)),
                "campaign_code": r.campaign_code, "campaign_name": campaign.name if campaign else "",
                "contacts": int(r.contacts), "delivered": int(r.delivered), "replied": int(r.replied),
                "accepted": int(r.accepted), "converted": int(r.converted), "conversion_rate": rate,
                "control_contacts": int(r.control_n), "control_converted": int(r.control_converted),
                "control_rate": (r.control_converted / r.control_n) if r.control_n else math.nan,
                "uplift": up, "uplift_low": lo, "uplift_high": hi,
                "cost_yuan": cost, "incremental_value_yuan": value,
                "roi": (value - cost) / cost if cost and value is not None else None,
                "flags": ";".join(flags)})
    return pd.DataFrame(rows)


def write_outcome_report(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                         cfg: OutcomeConfig | None = None) -> dict:
    """outcomes.csv and outcomes.html in the cycle's report folder (counts and paths returned)."""
    import jinja2

    from qz_outbound import TEMPLATE_DIR

    cfg = cfg or load_outcome_config()
    frame = outcome_report(marketing, cycle_date, library, cfg)
    out = reports.output_dir() / "reports" / cycle_date.isoformat()
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "outcomes.csv", index=False, encoding="utf-8-sig")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR / "reports")), autoescape=True)
    campaigns = frame[frame["dimension"] == "campaign"].to_dict("records")
    html = env.get_template("outcomes.html").render(
        cycle_date=cycle_date, since=cycle_date - dt.timedelta(days=cfg.report_days), cfg=cfg,
        campaigns=campaigns, breakdowns={dim: frame[frame["dimension"] == dim].to_dict("records")
                                         for dim in DIMENSIONS if dim != "campaign"},
        isnan=lambda v: v is None or (isinstance(v, float) and math.isnan(v)))
    (out / "outcomes.html").write_text(html, encoding="utf-8")
    return {"rows": len(frame), "flagged": int((frame["flags"] != "").sum()),
            "csv": str(out / "outcomes.csv"), "html": str(out / "outcomes.html")}
