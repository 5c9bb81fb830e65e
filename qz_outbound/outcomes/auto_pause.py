"""Campaign auto-pause (``auto_pause:`` in ``config/outcomes.yaml``, off by default).

Its own task of ``outcomes_loop``, after the report (:func:`auto_pause_campaigns`): a campaign
whose whole-campaign uplift is significantly negative on enough contacts is written to
``mkt_campaign_pause``, and the next target list leaves it out (``targeting.py``).
"""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import clock, schema
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


def auto_pause_campaigns(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                         cfg: OutcomeConfig | None = None) -> list[str]:
    """``outcomes_loop``'s ``auto_pause`` task: with ``auto_pause.enabled``, the whole-campaign rows of
    the day's outcome table (the figures of the report just written) decide; returns the codes paused now."""
    cfg = cfg or load_outcome_config()
    if not cfg.auto_pause.enabled:
        return []
    return apply_auto_pause(marketing, cycle_date, outcome_report(marketing, cycle_date, library, cfg), cfg)
