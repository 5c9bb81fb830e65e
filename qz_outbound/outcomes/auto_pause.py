"""Campaign auto-pause (``auto_pause:`` in ``config/outcomes.yaml``).

Its own task of ``outcomes_loop``, after the report (:func:`auto_pause_campaigns`), with two rules on
their own switches, each writing to ``mkt_campaign_pause`` (the next target list leaves the campaign
out: ``targeting.py``; a paused campaign is never paused twice; lifting: docs/runbook.md):

* ``auto_pause.enabled`` (off by default): the whole-campaign uplift is significantly negative on
  enough contacts;
* ``auto_pause.roi_negative.enabled``: the campaign's ROI is negative with confidence in its latest
  measured economics (:func:`roi_negative_campaigns`), and HQ is alerted (the guard rail of the
  learning loop, docs/learning.md "Offline evaluation and guard rails").
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import clock, economics, schema
from qz_outbound.campaigns import Campaign
from qz_outbound.outcomes.settings import OutcomeConfig, load_outcome_config
from qz_outbound.outcomes.statistics import outcome_report

log = logging.getLogger(__name__)


def paused_campaigns(marketing: Engine) -> set[str]:
    with marketing.connect() as conn:
        return set(conn.scalars(sa.select(schema.mkt_campaign_pause.c.campaign_code)))


def paused_in_cycle(marketing: Engine, cycle_date: dt.date) -> set[str]:
    """The campaigns paused automatically by the runs of ``cycle_date``."""
    t = schema.mkt_campaign_pause
    with marketing.connect() as conn:
        return set(conn.scalars(sa.select(t.c.campaign_code).where(t.c.cycle_date == cycle_date)))


def apply_auto_pause(marketing: Engine, cycle_date: dt.date, frame: pd.DataFrame,
                     cfg: OutcomeConfig | None = None) -> list[str]:
    """With ``auto_pause.enabled`` (off by default): pause each campaign whose whole-campaign uplift is
    significantly negative on at least ``auto_pause.min_contacts`` contacts. Returns the codes paused now."""
    cfg = cfg or load_outcome_config()
    if not cfg.auto_pause.enabled or frame.empty:
        return []
    rows = frame[(frame["dimension"] == "campaign") & (frame["contacts"] >= cfg.auto_pause.min_contacts)
                 & (frame["uplift_high"] < 0)]
    already = paused_campaigns(marketing)
    new = [r for r in rows.itertuples(index=False) if r.campaign_code not in already]
    if new:
        with marketing.begin() as conn:
            conn.execute(schema.mkt_campaign_pause.insert(), [
                dict(campaign_code=r.campaign_code, paused_at=clock.now(), cycle_date=cycle_date,
                     reason=f"uplift {r.uplift:+.4f} [{r.uplift_low:+.4f}, {r.uplift_high:+.4f}] on "
                            f"{r.contacts} contacts (control {r.control_contacts})") for r in new])
        log.warning("campaigns paused automatically (significantly negative uplift): %s",
                    ", ".join(r.campaign_code for r in new))
    return [r.campaign_code for r in new]


ROI_REASON = "roi_negative"


def roi_negative_campaigns(marketing: Engine, cycle_date: dt.date, cfg: OutcomeConfig) -> pd.DataFrame:
    """Campaigns whose ROI is negative with confidence: per campaign, the latest per-cycle ``all`` row of
    ``mkt_campaign_economics`` on or before ``cycle_date`` with an after-month billed and an ARPU
    interval; its ROI upper bound (incremental revenue at ``arpu_ci_high`` − cost) / cost below
    ``roi_negative.max_roi_high``, on at least ``roi_negative.min_contacted`` contacted customers.
    Columns: campaign_code, cycle_date, contacted, control, after_months, revenue_high, cost, roi_high."""
    rule = cfg.auto_pause.roi_negative
    e = schema.mkt_campaign_economics
    measured = sa.and_(e.c.slice == "all", e.c.campaign_code != economics.ALL_CAMPAIGNS, e.c.after_months > 0,
                       e.c.arpu_ci_high.is_not(None), e.c.cost > 0, e.c.cycle_date <= cycle_date)
    latest = (sa.select(e.c.campaign_code, sa.func.max(e.c.cycle_date).label("cycle_date"))
              .where(measured).group_by(e.c.campaign_code).subquery())
    revenue_high = e.c.arpu_ci_high * e.c.contacted * e.c.after_months
    q = (sa.select(e.c.campaign_code, e.c.cycle_date, e.c.contacted, e.c.control, e.c.after_months,
                   revenue_high.label("revenue_high"), e.c.cost)
         .join(latest, sa.and_(latest.c.campaign_code == e.c.campaign_code, latest.c.cycle_date == e.c.cycle_date))
         .where(measured, e.c.contacted >= rule.min_contacted,
                revenue_high - e.c.cost < rule.max_roi_high * e.c.cost)
         .order_by(e.c.campaign_code))
    with marketing.connect() as conn:
        frame = pd.read_sql(q, conn)
    frame["roi_high"] = (frame["revenue_high"] - frame["cost"]) / frame["cost"]
    return frame


def apply_roi_pause(marketing: Engine, cycle_date: dt.date, cfg: OutcomeConfig | None = None) -> list[dict]:
    """With ``auto_pause.roi_negative.enabled``: pause each campaign whose ROI is negative with confidence
    and that is not paused yet. Returns the campaigns paused now (code and the figures of the reason)."""
    cfg = cfg or load_outcome_config()
    if not cfg.auto_pause.roi_negative.enabled:
        return []
    frame = roi_negative_campaigns(marketing, cycle_date, cfg)
    already = paused_campaigns(marketing)
    new = []
    for r in frame.itertuples(index=False):   # one row per campaign, never per customer
        if r.campaign_code in already:
            continue
        measured_on = r.cycle_date if isinstance(r.cycle_date, dt.date) else pd.Timestamp(r.cycle_date).date()
        reason = (f"{ROI_REASON}: ROI upper bound {r.roi_high:+.2f} (incremental revenue at most "
                  f"{r.revenue_high:,.0f} yuan against cost {r.cost:,.0f} yuan) on {r.contacted} contacted "
                  f"(control {r.control}), cycle {measured_on}, {r.after_months} after-months")
        new.append({"campaign_code": r.campaign_code, "reason": reason})
    if new:
        with marketing.begin() as conn:
            conn.execute(schema.mkt_campaign_pause.insert(), [
                dict(campaign_code=n["campaign_code"], paused_at=clock.now(), cycle_date=cycle_date,
                     reason=n["reason"]) for n in new])
        log.warning("campaigns paused automatically (ROI negative with confidence): %s",
                    ", ".join(n["campaign_code"] for n in new))
    return new


def roi_pause_alert(cycle_date: dt.date, paused: list[dict], run_id: str | None = None):
    """HQ's alert for the campaigns just paused on negative ROI (codes and figures only)."""
    from qz_outbound.alerts import Alert

    return Alert(kind="campaign_paused",
                 summary=f"outcomes_loop {cycle_date}: campaigns paused, ROI negative with confidence: "
                         + ", ".join(p["campaign_code"] for p in paused),
                 dag_id="outcomes_loop", run_id=run_id, task_id="auto_pause", logical_date=cycle_date.isoformat(),
                 detail="; ".join(f"{p['campaign_code']} {p['reason']}" for p in paused))


def auto_pause_campaigns(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                         cfg: OutcomeConfig | None = None, notify=None, run_id: str | None = None) -> list[str]:
    """``outcomes_loop``'s ``auto_pause`` task: with ``auto_pause.enabled``, the whole-campaign rows of
    the day's outcome table (the figures of the report just written) decide; with
    ``auto_pause.roi_negative.enabled``, the campaigns' latest measured economics, and ``notify`` (the
    DAG's alert sender) gets one alert for the campaigns paused so. Returns the codes paused now."""
    cfg = cfg or load_outcome_config()
    paused = []
    if cfg.auto_pause.enabled:
        paused += apply_auto_pause(marketing, cycle_date, outcome_report(marketing, cycle_date, library, cfg), cfg)
    roi = apply_roi_pause(marketing, cycle_date, cfg)
    if roi and notify is not None:
        notify(roi_pause_alert(cycle_date, roi, run_id))
    return paused + [p["campaign_code"] for p in roi]
