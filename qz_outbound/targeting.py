"""Targeting and arbitration (目标客户筛选与一户一策): the cycle's target list.

Steps, all set work inside the databases:

1. :func:`stage_extracts` copies from the data mart what the contact policy
   needs (do-not-disturb, recent marketing complaints, products held, bundle
   end dates) into marketing_db, for the cycle;
2. :func:`build_target_list` runs ``include/sql/target_list.sql``: every active
   campaign selects its customers, the contact policy removes who may not be
   contacted, each customer keeps one offer (by priority, by the learned value of
   his cell, or a blend, with an exploration share: docs/learning.md), and the control
   group and A/B variant are decided by a deterministic hash of customer,
   campaign and month (:func:`assignment_draw`), independent between campaigns;
3. :func:`coverage` reports the share of contactable customers with an offer,
   per county and stability type.

The rules of the contact policy live in one place: each is a macro of
``include/sql/_contactable.sql`` (who may be contacted at all, and per campaign: the
same-campaign gap, the refusal block, products held), called by the target list, the
coverage report, the target audit and the agent channel alike; their dates come from
:func:`qz_outbound.policy.contact_policy_binds`. ``target_list.sql`` holds the campaigns'
own selection rules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from pydantic import Field, field_validator
from sqlalchemy.engine import Engine

from qz_outbound import SQL_DIR, config, db, exports, schema
from qz_outbound.callcentre import Redial
from qz_outbound.campaigns import Campaign
from qz_outbound.costs import ContactCosts
from qz_outbound.counties import county_names
from qz_outbound.cycle import record_stage
from qz_outbound.policy import contact_policy_binds

log = logging.getLogger(__name__)

TARGET_COLUMNS = [c.name for c in schema.mkt_target.columns]


class ContactPolicy(config.StrictModel):
    contacts_per_window: int = Field(ge=1)
    window_days: int = Field(ge=1, le=31)
    contacts_per_month: int = Field(ge=1)
    same_campaign_gap_days: int = Field(ge=0)
    refusal_block_days: int = Field(ge=0)
    complaint_days: int = Field(ge=180)  # the regulator's floor: never fewer


class CallRule(config.StrictModel):
    min_spend_tier: int = Field(ge=1, le=11)
    stability_types: list[str] = Field(min_length=1)


class Channels(config.StrictModel):
    call_rule: CallRule
    call_capacity: dict[str, int]
    call_within_days: int = Field(ge=1, le=14)
    contact_cost_yuan: ContactCosts   # qz_outbound/costs.py (economics, budgets)
    redial: Redial = Field(default_factory=Redial)   # redials, callbacks, wrong numbers, working days

    @field_validator("call_capacity")
    @classmethod
    def _known_counties(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(v) - set(county_names()))
        if unknown:
            raise ValueError(f"unknown county code(s) {unknown}; see config/counties.yaml")
        if any(n < 0 for n in v.values()):
            raise ValueError("capacities must be >= 0")
        return v

    def capacity(self, county_code: str) -> int:
        return self.call_capacity.get(county_code, 0)


def load_policy(path: Path | None = None) -> ContactPolicy:
    return config.load(ContactPolicy, path or config.config_path("contact_policy.yaml"))


def load_channels(path: Path | None = None) -> Channels:
    return config.load(Channels, path or config.config_path("channels.yaml"))


# ---------------------------------------------------------------- staging

STAGES = [
    ("stage_exclusion.sql", "stg_exclusion", ["cycle_date", "msisdn", "reason"]),
    ("stage_holding.sql", "stg_holding", ["cycle_date", "msisdn", "product_code"]),
    ("stage_bundle_end.sql", "stg_bundle_end", ["cycle_date", "msisdn", "bundle_type", "end_date"]),
]


def stage_extracts(datamart: Engine, marketing: Engine, cycle_date: dt.date,
                   policy: ContactPolicy | None = None) -> dict[str, int]:
    """Copy the cycle's exclusions, holdings and bundle end dates from the data mart."""
    policy = policy or load_policy()
    since = dt.datetime.combine(cycle_date - dt.timedelta(days=policy.complaint_days), dt.time())
    params = {"d": cycle_date.isoformat(), "complaint_since": since.isoformat(sep=" ")}
    counts = {}
    for template, table, cols in STAGES:
        with marketing.begin() as conn:  # older cycles' staging is of no further use
            conn.execute(sa.text(f"delete from {table} where cycle_date < :d").bindparams(
                sa.bindparam("d", type_=sa.Date)), {"d": cycle_date})
        counts[table] = db.land_query(datamart, marketing, template, params, table, cols, cycle_date=cycle_date)
    return counts


# ---------------------------------------------------------------- target list

@dataclass(frozen=True)
class CampaignSql:
    """What the SQL needs of a campaign, with everything pre-computed and safe to inline."""

    code: str
    name: str
    product_code: str
    priority: int
    target: object
    allows_call: bool
    allows_sms: bool
    control_bp: int
    variant_cuts: list[tuple[str, int]]
    rule_sql: str | None
    fallback: bool = False
    pinned: bool = False
    prior_value: float = 0.0   # expected value read where the offer values have no row (docs/learning.md)


ASSIGNMENT_PURPOSES = ("control", "variant")


def assignment_draw(msisdn: str, campaign_code: str, cycle_date: dt.date, purpose: str) -> int:
    """The draw in 0..9999 that decides a customer's control group (``purpose="control"``: held out
    when the draw is below the campaign's share in basis points) or A/B variant (``"variant"``: the
    first cumulative cut above it) in a campaign for the month of ``cycle_date``.

    The first 32 bits of md5 over ``msisdn|campaign|YYYY-MM|purpose``: the same all month (a re-run
    never reshuffles), and independent between campaigns, months and purposes, so one campaign's
    control group says nothing about another's. ``target_list.sql`` computes the same in the
    database (``d.hash32``; on SQLite the function :func:`qz_outbound.db.hash32` registered on every
    connection); the tests hold both to this definition.
    """
    if purpose not in ASSIGNMENT_PURPOSES:
        raise ValueError(f"purpose must be one of {ASSIGNMENT_PURPOSES}, not {purpose!r}")
    return db.hash32(f"{msisdn}|{campaign_code}|{cycle_date:%Y-%m}|{purpose}") % 10000


def variant_cuts(campaign: Campaign) -> list[tuple[str, int]]:
    if not campaign.sms_variants:
        return []
    labels = campaign.variant_labels
    total = sum(campaign.sms_variants[v].share for v in labels)
    cuts, acc = [], Decimal(0)
    for i, label in enumerate(labels):
        acc += campaign.sms_variants[label].share
        cuts.append((label, 10000 if i == len(labels) - 1 else int(acc / total * 10000)))
    return cuts


def daily_campaigns(library: list[Campaign], cycle_date: dt.date) -> list[Campaign]:
    """Campaigns the daily cycle runs: active on the date, with an SMS or call channel."""
    return [c for c in library if c.active_on(cycle_date) and ({"sms", "call"} & set(c.channels))]


def _campaign_sql(c: Campaign, cycle_date: dt.date) -> CampaignSql:
    rule = None
    if c.target.sql:
        rule = (SQL_DIR / "campaign_rules" / c.target.sql).read_text(encoding="utf-8").strip().rstrip(";")
    return CampaignSql(
        # the name only labels the SQL's line comment: a line break in it would end the comment
        code=c.code, name=" ".join(c.name.split()), product_code=c.product_code, priority=c.priority, target=c.target,
        allows_call="call" in c.channels, allows_sms="sms" in c.channels,
        control_bp=int(c.control_share * 10000), variant_cuts=variant_cuts(c), rule_sql=rule,
        fallback=c.fallback, pinned=c.pin_priority)


def target_list_inputs(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                       policy: ContactPolicy | None = None, channels: Channels | None = None,
                       learning=None, allow_learned: bool = False) \
        -> tuple[list[CampaignSql], dict, dict]:
    """The active campaigns, bind parameters and template context ``target_list.sql`` runs with
    (also what the coverage gap list renders it with).

    ``learning`` (``config/learning.yaml``) decides the arbitration (docs/learning.md): the mode,
    the exploration share, and which offer values it reads (the latest ``mkt_offer_value`` day on or
    before the cycle). ``allow_learned`` False (the offline evaluation has not allowed it) runs the
    modes learned and blend as fixed; exploration runs in every mode."""
    from qz_outbound.learning import values

    policy = policy or load_policy()
    channels = channels or load_channels()
    learning = learning or values.load_learning_config()
    with marketing.connect() as conn:   # paused by the outcome loop (auto_pause in config/outcomes.yaml)
        paused = set(conn.scalars(sa.select(schema.mkt_campaign_pause.c.campaign_code)))
    running = [c for c in daily_campaigns(library, cycle_date) if c.code not in paused]
    if paused:
        log.warning("campaigns left out, paused automatically by the outcome loop: %s", ", ".join(sorted(paused)))
    if not running:
        raise ValueError(f"no campaign of the library is active on {cycle_date}")
    values_date = values.latest_values_date(marketing, cycle_date)
    priors = values.prior_values(values.campaign_constants(marketing, cycle_date, running, learning), learning) \
        if values_date is not None else {}
    active = [dataclasses.replace(_campaign_sql(c, cycle_date), prior_value=priors.get(c.code, 0.0))
              for c in running]
    params = contact_policy_binds(cycle_date, policy)
    for c in active:
        if c.target.bundle_expiring:
            days = c.target.bundle_expiring.within_days
            params[f"expiry_{days}"] = (cycle_date + dt.timedelta(days=days)).isoformat()
    mode = learning.mode if (allow_learned and values_date is not None) else "fixed"
    if values_date is not None:
        params["values_date"] = values_date.isoformat()
    context = {"campaigns": active, "policy": policy, "call_rule": channels.call_rule,
               "assignment_month": f"{cycle_date:%Y-%m}", "cycle_day": cycle_date.isoformat(),
               "has_values": values_date is not None, "mode": mode, "blend_weight": learning.blend_weight,
               "exploration_bp": learning.exploration_bp}
    return active, params, context


def build_target_list(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                      policy: ContactPolicy | None = None, channels: Channels | None = None,
                      slices: int = 2, *, learning=None, allow_learned: bool = False) -> int:
    """Write the cycle's arbitrated target list into ``mkt_target`` (replacing the cycle's rows).

    ``learning``: ``config/learning.yaml`` unless given; ``allow_learned``: whether the modes learned
    and blend may run (the offline evaluation's verdict); without it they fall back to fixed."""
    started = time.monotonic()
    active, params, context = target_list_inputs(marketing, cycle_date, library, policy, channels,
                                                 learning=learning, allow_learned=allow_learned)
    n = db.land_query(marketing, marketing, "target_list.sql", params, "mkt_target", TARGET_COLUMNS,
                      cycle_date=cycle_date, slices=slices, context=context)
    record_stage(marketing, cycle_date, "target", n, time.monotonic() - started,
                 detail=f"{len(active)} campaigns, arbitration {context['mode']}, "
                        f"exploration {context['exploration_bp'] / 100:g}%")
    return n


def coverage(marketing: Engine, cycle_date: dt.date, policy: ContactPolicy | None = None) -> pd.DataFrame:
    """Per county and stability type: customers, hard-excluded, frequency-capped, contactable, offered,
    and coverage = offered / contactable (control customers count as offered: they were chosen)."""
    policy = policy or load_policy()
    dialect = marketing.dialect.name
    params = contact_policy_binds(cycle_date, policy)
    with marketing.begin() as conn:
        conn.exec_driver_sql("drop table if exists tmp_coverage_excluded")
        conn.execute(sa.text(db.render_sql("coverage.sql", dialect, policy=policy, step="excluded")), params)
        if dialect == "postgresql":
            conn.exec_driver_sql("analyze tmp_coverage_excluded")
            conn.exec_driver_sql("analyze mkt_contact")   # a first cycle's history is otherwise unknown
        frame = pd.read_sql(sa.text(db.render_sql("coverage.sql", dialect, policy=policy, step="report")), conn,
                            params=params)
        conn.exec_driver_sql("drop table tmp_coverage_excluded")
    frame["coverage"] = (frame["offered"] / frame["contactable"]).where(frame["contactable"] > 0)
    return frame


def write_coverage_report(marketing: Engine, cycle_date: dt.date, out: Path | None = None,
                          frame: pd.DataFrame | None = None) -> Path:
    from qz_outbound.reports import output_dir

    frame = (coverage(marketing, cycle_date) if frame is None else frame).copy()
    names = county_names()
    frame.insert(1, "county_name", frame["county_code"].map(names))
    path = (out or output_dir()) / "reports" / cycle_date.isoformat() / "coverage.csv"
    exports.write_csv(frame, path)
    total = frame[["contactable", "offered"]].sum()
    record_stage(marketing, cycle_date, "coverage", int(total["offered"]), 0.0,
                 detail=f"coverage {total['offered'] / max(1, total['contactable']):.4f} "
                        f"of {int(total['contactable'])} contactable")
    return path
