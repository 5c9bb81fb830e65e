"""Offer values (docs/learning.md): what an offer of each campaign is expected to earn per customer
cell, measured before the cycle whose arbitration reads them.

:func:`compute_offer_values` rewrites the day's rows of ``mkt_offer_value`` from
``include/sql/offer_value.sql`` (the contact history of the look-back against its control groups,
with empirical-Bayes shrinkage, all in the database). The per-campaign constants it needs come from
here: the value of a conversion (measured by the campaign economics when measured with confidence,
else configured) and the cost of an offer (:mod:`qz_outbound.costs`, the SMS parts as budgets count
them, and the campaign's ``offer_cost_yuan`` per conversion). Counts only in logs and return values.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from qz_outbound import config, db, schema
from qz_outbound.campaigns import Campaign
from qz_outbound.costs import ContactCosts, load_contact_costs

log = logging.getLogger(__name__)

# the campaign's own row: what a cell without history reads (offer_value.sql)
CAMPAIGN_CELL = {"stability_type": "*", "spend_tier": 0, "market_segment": "*"}


class LearningConfig(config.StrictModel):
    """``config/learning.yaml``."""

    mode: Literal["fixed", "learned", "blend"] = "fixed"
    blend_weight: float = Field(default=0.5, ge=0, le=1)
    exploration_share: float = Field(default=0.0, ge=0, le=0.5)
    lookback_days: int = Field(default=90, ge=1, le=400)
    prior_strength: float = Field(default=200, gt=0, allow_inf_nan=False)
    prior_uplift: float = Field(default=0.01, ge=-1, le=1)
    default_value_per_conversion: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    value_per_conversion: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(default_factory=dict)

    @property
    def exploration_bp(self) -> int:
        """The exploration share in basis points: the explore draw (0..9999) below it explores."""
        return int(round(self.exploration_share * 10000))


def load_learning_config(path: Path | None = None) -> LearningConfig:
    return config.load(LearningConfig, path or config.config_path("learning.yaml"))


# ---------------------------------------------------------------- per-campaign constants

def measured_values(marketing: Engine, cycle_date: dt.date) -> dict[str, float]:
    """Yuan per incremental conversion, per campaign, from the latest cycle row of
    ``mkt_campaign_economics`` (slice ``all``) on or before the day whose incremental ARPU is
    measured with confidence (economics.effect_measured) and whose conversion uplift is positive:
    incremental revenue / (conversion uplift x contacted)."""
    from qz_outbound.economics import effect_measured

    t = schema.mkt_campaign_economics
    with marketing.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.slice == "all", t.c.cycle_date <= cycle_date,
                                               t.c.campaign_code != "*")
                            .order_by(t.c.campaign_code, t.c.cycle_date.desc())).mappings().all()
    out: dict[str, float] = {}
    for r in rows:
        if r["campaign_code"] in out:
            continue
        row = dict(r)
        if (effect_measured(row) and row["incremental_revenue"] is not None and row["conversion_uplift"]
                and row["conversion_uplift"] > 0 and row["contacted"]):
            out[r["campaign_code"]] = float(row["incremental_revenue"]) / (row["conversion_uplift"] * row["contacted"])
    return out


def contact_cost(campaign: Campaign, costs: ContactCosts, parts: dict[str, float]) -> float:
    """What making one offer costs in contact: the SMS (its parts, as budgets count them) where the
    campaign sends SMS, else a call dialled, else an agent-shop SMS."""
    if "sms" in campaign.channels:
        return parts.get(campaign.code, 1.0) * costs.sms_part
    if "call" in campaign.channels:
        return costs.call_dialled
    return costs.agent_sms


def campaign_constants(marketing: Engine, cycle_date: dt.date, library: list[Campaign], cfg: LearningConfig,
                       costs: ContactCosts | None = None) -> list[dict]:
    """Per campaign: value per conversion, contact cost and offer cost (the context of offer_value.sql)."""
    from qz_outbound.budgets import sms_parts

    costs = costs or load_contact_costs()
    per_variant: dict[str, list[int]] = {}
    for code, _label, n in sms_parts([c for c in library if c.sms_variants]):
        per_variant.setdefault(code, []).append(n)
    parts = {code: sum(ns) / len(ns) for code, ns in per_variant.items() if ns}
    measured = measured_values(marketing, cycle_date)
    return [{"code": c.code,
             "vpc": measured.get(c.code, cfg.value_per_conversion.get(c.code, cfg.default_value_per_conversion)),
             "contact_cost": contact_cost(c, costs, parts), "offer_cost": float(c.offer_cost_yuan)}
            for c in library]


def prior_values(constants: list[dict], cfg: LearningConfig) -> dict[str, float]:
    """Expected value of a campaign no history has measured at all (the prior uplift, no baseline):
    what the arbitration reads for a campaign newer than the latest offer values."""
    return {k["code"]: cfg.prior_uplift * k["vpc"] - k["contact_cost"] - max(cfg.prior_uplift, 0) * k["offer_cost"]
            for k in constants}


# ---------------------------------------------------------------- the cycle's rows

def compute_offer_values(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                         cfg: LearningConfig | None = None, costs: ContactCosts | None = None) -> dict:
    """Rewrite the day's ``mkt_offer_value`` rows (idempotent per day) for the library's campaigns
    from the contact history of the ``lookback_days`` before it. Returns counts only."""
    cfg = cfg or load_learning_config()
    started = time.monotonic()
    constants = campaign_constants(marketing, cycle_date, library, cfg, costs)
    t = schema.mkt_offer_value
    with marketing.begin() as conn:
        conn.execute(t.delete().where(t.c.cycle_date == cycle_date))
        if constants:
            cols = [c.name for c in t.columns]
            sql = db.render_sql("offer_value.sql", marketing.dialect.name, campaigns=constants,
                                m=cfg.prior_strength, prior_uplift=cfg.prior_uplift)
            conn.execute(db.date_binds(f"insert into mkt_offer_value ({', '.join(cols)})\n{sql}", "d", "since"),
                         {"d": cycle_date, "since": cycle_date - dt.timedelta(days=cfg.lookback_days)})
        rows = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.contacted), 0))
                            .where(t.c.cycle_date == cycle_date, t.c.stability_type != "*")).one()
    seconds = time.monotonic() - started
    from qz_outbound.cycle import record_stage
    record_stage(marketing, cycle_date, "offer_values", int(rows[0]), seconds,
                 detail=f"{len(constants)} campaigns, {int(rows[1])} offers measured")
    log.info("offer values %s: %d cells of %d campaigns (%d offers measured) in %.1fs",
             cycle_date, rows[0], len(constants), rows[1], seconds)
    return {"cells": int(rows[0]), "campaigns": len(constants), "offers_measured": int(rows[1]),
            "seconds": round(seconds, 1)}


def latest_values_date(marketing: Engine, cycle_date: dt.date) -> dt.date | None:
    """The latest day on or before ``cycle_date`` with offer values (None: never computed)."""
    t = schema.mkt_offer_value
    with marketing.connect() as conn:
        v = conn.scalar(sa.select(sa.func.max(t.c.cycle_date)).where(t.c.cycle_date <= cycle_date))
    if v is None:
        return None
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])
