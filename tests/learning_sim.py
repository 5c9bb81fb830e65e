"""A simulated market with planted, segment-dependent effects, run through the real cycle code:
the harness of tests/test_learning_simulation.py (and of the offline evaluation's check, which
replays the same history).

Customers of stability types 41 and 21 (and some of types 3 and 5, whom no campaign targets) in two
counties; two campaigns A (priority 1) and B (priority 2) both target 41 and 21. Planted conversion
probabilities: A converts type 41 well, B type 21; a control customer converts at the low baseline.
A relaxed contact policy lets a customer be offered every day. Each simulated cycle:

1. the cycle's segment snapshot rows (the customers' cells do not change);
2. the offer values (:func:`qz_outbound.learning.values.compute_offer_values`) from the cycles before;
3. the target list through the real code path (:func:`qz_outbound.targeting.build_target_list`);
4. contacts through the real publish step (control / SMS), then conversions drawn with a seeded
   RNG from the planted probabilities (converted_at set on the contact row, as attribution does).

For the offline evaluation: :func:`logged_history` joins the arbitration log to the outcomes and the
planted truth.

Some customers are opted out, on the DND list or hold a campaign's product: the invariants
(:func:`policy_violations`) check they never get an offer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from qz_outbound import db, publish, schema, targeting
from qz_outbound.learning import values
from qz_outbound.learning.values import LearningConfig

from test_contact_policy import CHANNELS, campaign

START = dt.date(2026, 11, 2)          # cycles on consecutive days of one month (one control draw)
COUNTIES = ("350582", "350503")
CODE_A, CODE_B = "1141-101", "1141-102"
PRODUCT = {CODE_A: "PA", CODE_B: "PB"}
BASELINE = 0.02                        # a control customer's conversion probability
PLANTED = {                            # (campaign, stability type) -> conversion probability if offered
    (CODE_A, "41"): 0.14, (CODE_A, "21"): 0.03,
    (CODE_B, "41"): 0.03, (CODE_B, "21"): 0.14,
}
VALUE_PER_CONVERSION = 30.0
CONTROL_SHARE = "0.1"

RELAXED = targeting.ContactPolicy(contacts_per_window=1, window_days=1, contacts_per_month=31,
                                  same_campaign_gap_days=0, refusal_block_days=0, complaint_days=180)


def library(pinned=(), extra=()):
    return [*extra, campaign(CODE_A, PRODUCT[CODE_A], priority=1, types=("41", "21"), control_share=CONTROL_SHARE,
                     pin_priority=CODE_A in pinned),
            campaign(CODE_B, PRODUCT[CODE_B], priority=2, types=("41", "21"), control_share=CONTROL_SHARE,
                     pin_priority=CODE_B in pinned)]


def planted_uplift(code: str, stability_type: str) -> float:
    """What an offer of ``code`` adds to the conversion probability of a customer of the type."""
    return PLANTED.get((code, stability_type), BASELINE) - BASELINE


@dataclass
class Simulation:
    marketing: sa.engine.Engine
    customers: int = 2000
    seed: int = 17
    learning: LearningConfig = field(default_factory=lambda: LearningConfig(
        mode="learned", exploration_share=0.10, prior_strength=50, lookback_days=30,
        default_value_per_conversion=VALUE_PER_CONVERSION))
    allow_learned: bool = True
    pinned: tuple = ()
    extra: tuple = ()                  # more campaigns (tests)

    def __post_init__(self):
        schema.ensure_schema(self.marketing)
        rng = np.random.default_rng(self.seed)
        n = self.customers
        types = rng.choice(["41", "21", "3", "5"], size=n, p=[0.42, 0.42, 0.08, 0.08])
        self.people = pd.DataFrame({
            "msisdn": [f"138{i:08d}" for i in range(n)],
            "county_code": rng.choice(COUNTIES, size=n),
            "stability_type": types,
            "spend_tier": rng.choice([5, 8], size=n),
            "market_segment": rng.choice([None, "campus"], size=n, p=[0.8, 0.2]),
        })
        flags = rng.random(n)
        self.opted_out = set(self.people.msisdn[flags < 0.01])
        self.dnd = set(self.people.msisdn[(flags >= 0.01) & (flags < 0.02)])
        self.holds_a = set(self.people.msisdn[(flags >= 0.02) & (flags < 0.03)])
        self.rng = np.random.default_rng(self.seed + 1)
        self.days: list[dt.date] = []
        self._insert(schema.mkt_opt_out, [
            {"msisdn": m, "opted_out_at": dt.datetime(2026, 10, 1, 10), "source": "sms_reply"}
            for m in sorted(self.opted_out)])

    def _insert(self, table, rows, conn=None):
        if not rows:
            return
        if conn is None:
            with self.marketing.begin() as conn:
                conn.execute(table.insert(), rows)
        else:
            conn.execute(table.insert(), rows)

    # ------------------------------------------------------------ one cycle

    def _snapshot(self, day: dt.date) -> None:
        rows = [{"cycle_date": day, "msisdn": p.msisdn, "county_code": p.county_code,
                 "stability_type": p.stability_type, "spend_tier": int(p.spend_tier), "voice_tier": 5,
                 "data_tier": 5, "tenure_tier": 7, "market_segment": p.market_segment,
                 "segment_code": f"{p.stability_type}-P{int(p.spend_tier):02d}V05D05T07", "status": "active",
                 "tenure_months": 60, "spend_m0": 100.0, "voice_m0": 300.0, "data_m0": 3000.0,
                 "bundle_kind": None, "open_date": dt.date(2019, 5, 1), "customer_name": "王五",
                 "terminal_type": "5G", "sms_m0": 1, "has_hard_bundle": 0, "has_soft_bundle": 0, "has_package": 0}
                for p in self.people.itertuples()]
        with self.marketing.begin() as conn:
            for table in (schema.mkt_segment_snapshot, schema.stg_exclusion, schema.stg_holding):
                conn.execute(table.delete().where(table.c.cycle_date == day))
            if self.marketing.dialect.name == "postgresql":
                conn.exec_driver_sql(
                    f"create table if not exists {db.partition_name('mkt_segment_snapshot', day)} partition of "
                    f"mkt_segment_snapshot for values in ('{day.isoformat()}')")
            conn.execute(schema.mkt_segment_snapshot.insert(), rows)
            self._insert(schema.stg_exclusion, [
                {"cycle_date": day, "msisdn": m, "reason": "dnd"} for m in sorted(self.dnd)], conn)
            self._insert(schema.stg_holding, [
                {"cycle_date": day, "msisdn": m, "product_code": PRODUCT[CODE_A]} for m in sorted(self.holds_a)], conn)

    def _convert(self, day: dt.date) -> int:
        with self.marketing.connect() as conn:
            contacts = pd.read_sql(sa.text(
                "select c.contact_id, c.msisdn, c.campaign_code, c.channel from mkt_contact as c "
                "where c.cycle_date = :d and c.first_contact_id is null order by c.contact_id"),
                conn, params={"d": db.date_value(self.marketing, day)})
        types = dict(zip(self.people.msisdn, self.people.stability_type))
        p = np.array([BASELINE if r.channel == "control" else PLANTED.get((r.campaign_code, types[r.msisdn]), BASELINE)
                      for r in contacts.itertuples()])
        won = contacts.contact_id[self.rng.random(len(contacts)) < p].tolist()
        at = dt.datetime.combine(day, dt.time(15), tzinfo=dt.timezone.utc)
        if won:
            with self.marketing.begin() as conn:
                conn.execute(schema.mkt_contact.update().where(schema.mkt_contact.c.contact_id.in_(won))
                             .values(converted_at=at))
        return len(won)

    def cycle(self, day: dt.date | None = None) -> dict:
        day = day or START + dt.timedelta(days=len(self.days))
        lib = library(self.pinned, self.extra)
        self._snapshot(day)
        computed = values.compute_offer_values(self.marketing, day, lib, self.learning)
        n = targeting.build_target_list(self.marketing, day, lib, policy=RELAXED, channels=CHANNELS,
                                        learning=self.learning, allow_learned=self.allow_learned)
        for county in COUNTIES:
            publish.publish_county(self.marketing, day, county, lib, CHANNELS, queue_sms=False)
        converted = self._convert(day)
        if day not in self.days:
            self.days.append(day)
        return {"day": day, "targets": n, "cells": computed["cells"], "converted": converted}

    def rebuild(self, day: dt.date, **learning) -> pd.DataFrame:
        """The day's target list built again (nothing published), with ``learning`` changed."""
        allow = learning.pop("allow_learned", self.allow_learned)
        cfg = self.learning.model_copy(update=learning)
        targeting.build_target_list(self.marketing, day, library(self.pinned, self.extra), policy=RELAXED,
                                    channels=CHANNELS, learning=cfg, allow_learned=allow)
        return self.targets(day)

    def run(self, cycles: int) -> list[dict]:
        return [self.cycle() for _ in range(cycles)]

    # ------------------------------------------------------------ what happened

    def targets(self, day: dt.date | None = None) -> pd.DataFrame:
        t = schema.mkt_target
        q = sa.select(t.c.cycle_date, t.c.msisdn, t.c.county_code, t.c.campaign_code, t.c.stability_type,
                      t.c.is_control, t.c.arm, t.c.propensity, t.c.fixed_code, t.c.learned_code)
        if day is not None:
            q = q.where(t.c.cycle_date == day)
        with self.marketing.connect() as conn:
            frame = pd.read_sql(q.order_by(t.c.cycle_date, t.c.msisdn), conn)
        frame["cycle_date"] = pd.to_datetime(frame["cycle_date"]).dt.date
        return frame

    def contacts(self) -> pd.DataFrame:
        c = schema.mkt_contact
        with self.marketing.connect() as conn:
            frame = pd.read_sql(sa.select(c.c.cycle_date, c.c.msisdn, c.c.county_code, c.c.campaign_code,
                                          c.c.channel, c.c.converted_at), conn)
        frame["cycle_date"] = pd.to_datetime(frame["cycle_date"]).dt.date
        return frame

    def planted_value(self, frame: pd.DataFrame, column: str = "campaign_code") -> float:
        """Planted incremental value (yuan) of offering each row's ``column`` campaign (control rows
        count as offered: the comparison is of choices, on the same customers)."""
        return float(sum(planted_uplift(code, typ) for code, typ in zip(frame[column], frame["stability_type"]))
                     * VALUE_PER_CONVERSION)


def policy_violations(sim: Simulation) -> list[str]:
    """The contact-policy rules that can be checked on the simulated history (contact-policy.md):
    opted-out and DND customers never offered, nobody contacted twice a day, a held product never
    offered, an offer only to a customer its campaign targets, a county only its own customers."""
    targets, contacts = sim.targets(), sim.contacts()
    people = sim.people.set_index("msisdn")
    lib = {c.code: c for c in library(sim.pinned, sim.extra)}
    out = []
    offered = set(targets.msisdn) | set(contacts.msisdn)
    if offered & sim.opted_out:
        out.append(f"{len(offered & sim.opted_out)} opted-out customers offered")
    if offered & sim.dnd:
        out.append(f"{len(offered & sim.dnd)} DND customers offered")
    daily = contacts[contacts.channel.isin(["sms", "call", "control"])]
    if daily.duplicated(["cycle_date", "msisdn"]).any():
        out.append("a customer contacted twice in a cycle")
    held = targets[targets.msisdn.isin(sim.holds_a) & (targets.campaign_code == CODE_A)]
    if len(held):
        out.append(f"{len(held)} offers of a held product")
    wrong_type = [r for r in targets.itertuples()
                  if people.loc[r.msisdn, "stability_type"] not in lib[r.campaign_code].target.stability_types]
    if wrong_type:
        out.append(f"{len(wrong_type)} offers to customers their campaign does not target")
    if (contacts.county_code.values != people.loc[contacts.msisdn, "county_code"].values).any():
        out.append("a contact in another county's list")
    return out


def logged_history(sim: Simulation) -> pd.DataFrame:
    """Every cycle's arbitration log joined to its outcome, with the simulated truth: one row per
    target (cycle_date, msisdn, stability_type, campaign_code, is_control, arm, propensity,
    fixed_code, learned_code, converted 0/1) and the planted uplift of the logged, the fixed and the
    learned campaign (``truth_logged``, ``truth_fixed``, ``truth_learned``): what an offline
    evaluation of learned against fixed should agree with in sign."""
    t = sim.targets()
    c = sim.contacts()
    c = c[c.channel.isin(["sms", "call", "control"])]
    c = c.assign(converted=c.converted_at.notna().astype(int))[["cycle_date", "msisdn", "converted"]]
    out = t.merge(c, on=["cycle_date", "msisdn"], how="left")
    out["converted"] = out["converted"].fillna(0).astype(int)
    for col, name in (("campaign_code", "truth_logged"), ("fixed_code", "truth_fixed"),
                      ("learned_code", "truth_learned")):
        out[name] = [planted_uplift(code, typ) if isinstance(code, str) else float("nan")
                     for code, typ in zip(out[col], out["stability_type"])]
    return out
