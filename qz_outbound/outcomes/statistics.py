"""The outcome tables, aggregated in the database: conversion, the control group's rate, uplift.

* :func:`outcome_report` — per campaign and per variant, segment type, county and channel:
  contacts, delivered, replied, accepted, converted, conversion rate, the control group's rate,
  uplift with a confidence interval, cost and ROI; flags what is below the thresholds; ranked.
* :func:`outcome_trend` — the same per cycle; :func:`bill_summary` — bills before and after;
  :func:`trajectory` — the marketing trajectory (营销轨迹) per contact.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from statistics import NormalDist

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import db
from qz_outbound.campaigns import CODE_DIGITS, Campaign
from qz_outbound.outcomes.settings import OutcomeConfig, load_outcome_config


def trajectory(marketing: Engine, since: dt.date, until: dt.date, cfg: OutcomeConfig | None = None, *,
               msisdn: str | None = None, converted_only: bool = False) -> pd.DataFrame:
    """The marketing trajectory (营销轨迹) per contact of the cycles ``since`` .. ``until``
    (``include/sql/trajectory.sql``): offer, dates, uptake channel, bill before and after."""
    cfg = cfg or load_outcome_config()
    sql = db.render_sql("trajectory.sql", marketing.dialect.name, bill_months=cfg.bill_months,
                        msisdn=msisdn is not None, converted_only=converted_only)
    bind_date = functools.partial(db.date_value, marketing)
    params = {"a": bind_date(since), "b": bind_date(until)}
    if msisdn is not None:
        params["msisdn"] = msisdn
    with marketing.connect() as conn:
        frame = pd.read_sql(sa.text(sql), conn, params=params)
    frame["bill_change"] = frame["bill_after"] - frame["bill_before"]
    return frame.sort_values(["cycle_date", "contact_id"], ignore_index=True)


def uplift_interval(conv_t: int, n_t: int, conv_c: int, n_c: int, confidence: float) -> tuple[float, float, float]:
    """Difference of two proportions with a Wald interval: (uplift, low, high); NaN without data."""
    if not n_t or not n_c:
        return math.nan, math.nan, math.nan
    p_t, p_c = conv_t / n_t, conv_c / n_c
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    return p_t - p_c, p_t - p_c - z * se, p_t - p_c + z * se


DIMENSIONS = {"campaign": None, "variant": "variant", "segment_type": "segment_type", "county": "county_code",
              "channel": "channel", "script": "script", "market": "market_segment", "terminal": "terminal_type"}
# across campaigns: county, channel, the customer's market and terminal, and each digit of the
# campaign code (domain.md: type, benefit form, participation requirement, reward)
ACROSS = ("county", "channel", "market", "terminal", "campaign_type", "benefit", "requirement", "reward")
CODE_DIGIT_COLUMNS = {"campaign_type": "type", "benefit": "benefit", "requirement": "requirement", "reward": "reward"}


# dimensions compared with the control customers of the same slice (control customers get no
# variant, channel or call script: those are compared with the campaign's whole control group)
_SAME_SLICE_CONTROL = ("segment_type", "county_code", "market_segment", "terminal_type", *CODE_DIGIT_COLUMNS)


_COUNTS = ["contacts", "delivered", "replied", "accepted", "converted"]


def _cells(marketing: Engine, since: dt.date, until: dt.date, library: list[Campaign]) -> pd.DataFrame:
    """The contacts of the cycles ``since`` .. ``until`` aggregated in the database into cells of
    campaign × variant × segment type × county × channel (``include/sql/outcome_cells.sql``)."""
    bind_date = functools.partial(db.date_value, marketing)
    with marketing.connect() as conn:
        cells = pd.read_sql(sa.text(db.render_sql("outcome_cells.sql", marketing.dialect.name)), conn,
                            params={"a": bind_date(since), "b": bind_date(until)})
    scripts = {c.code: c.call_script for c in library if c.call_script}
    cells["variant"] = cells["variant"].replace("", None)
    cells["script"] = cells["campaign_code"].map(scripts).where(cells["channel"] == "call")
    cells["control"] = cells["channel"] == "control"
    for col, field in CODE_DIGIT_COLUMNS.items():   # what each digit of the code says, e.g. benefit 'gift'
        pos, _meaning, values = CODE_DIGITS[field]
        cells[col] = cells["campaign_code"].map(lambda code, p=pos, v=values: v.get(code[p:p + 1]))
    for col in _COUNTS:
        cells[col] = cells[col].astype("int64")
    return cells


def _slice_rows(contacts: pd.DataFrame, dim: str, col: str | None, by_campaign: bool, by_code: dict,
                cfg: OutcomeConfig) -> list[dict]:
    keys = (["campaign_code"] if by_campaign else []) + ([col] if col else [])
    treated = contacts[~contacts["control"]]
    if dim == "script":
        treated = treated[treated["channel"] == "call"]
    control = contacts[contacts["control"]]
    if not keys or treated.empty:
        return []
    t = treated.groupby(keys, dropna=False)[_COUNTS].sum().reset_index()
    ckeys = keys if col in _SAME_SLICE_CONTROL else (["campaign_code"] if by_campaign else [])
    if ckeys:
        c = (control.groupby(ckeys, dropna=False)[["contacts", "converted"]].sum().reset_index()
             .rename(columns={"contacts": "control_n", "converted": "control_converted"}))
        merged = t.merge(c, on=ckeys, how="left").fillna({"control_n": 0, "control_converted": 0})
    else:
        merged = t.assign(control_n=int(control["contacts"].sum()),
                          control_converted=int(control["converted"].sum()))
    rows = []
    for r in merged.itertuples(index=False):
        code = r.campaign_code if by_campaign else ""
        campaign = by_code.get(code)
        up, lo, hi = uplift_interval(int(r.converted), int(r.contacts), int(r.control_converted),
                                     int(r.control_n), cfg.confidence)
        cost = float(campaign.cost_per_contact_yuan) * r.contacts \
            if campaign and campaign.cost_per_contact_yuan is not None else None
        # commission is a cost, never a value (economics.md): a conversion's value is the incremental
        # revenue measured from bills, with ROI over every cost, in mkt_campaign_economics (economics.py)
        value = None
        rate = r.converted / r.contacts if r.contacts else 0.0
        flags = []
        if r.contacts >= cfg.flag.min_contacts and rate < cfg.flag.min_conversion_rate:
            flags.append("conversion_below_threshold")
        if not math.isnan(hi) and hi < 0 and r.contacts >= cfg.flag.min_contacts:
            flags.append("uplift_significantly_negative")
        rows.append({
            "dimension": dim if by_campaign else f"all_{dim}",
            "value": "" if col is None else ("" if pd.isna(getattr(r, col)) else str(getattr(r, col))),
            "campaign_code": code, "campaign_name": campaign.name if campaign else "",
            "contacts": int(r.contacts), "delivered": int(r.delivered), "replied": int(r.replied),
            "accepted": int(r.accepted), "converted": int(r.converted), "conversion_rate": rate,
            "control_contacts": int(r.control_n), "control_converted": int(r.control_converted),
            "control_rate": (r.control_converted / r.control_n) if r.control_n else math.nan,
            "uplift": up, "uplift_low": lo, "uplift_high": hi,
            "cost_yuan": cost, "incremental_value_yuan": value,
            "roi": (value - cost) / cost if cost and value is not None else None,
            "flags": ";".join(flags)})
    return rows


def is_missing(v) -> bool:
    """None or NaN (a rate or uplift without data)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def outcome_report(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                   cfg: OutcomeConfig | None = None) -> pd.DataFrame:
    """HQ's outcome table for the contacts of the last ``report_days`` cycles up to ``cycle_date``.

    Rows per campaign and per campaign × variant / segment type / county / channel / call script
    (``dimension``), and across all campaigns per county, channel, market, terminal type and each
    digit of the campaign code (``all_county``, ``all_channel``, ``all_market``, ``all_terminal``,
    ``all_campaign_type``, ``all_benefit``, ``all_requirement``, ``all_reward``). ``rank`` orders each dimension by uplift, then conversion (1 is best): the
    optimisation ranking (营销循环优化).
    """
    cfg = cfg or load_outcome_config()
    contacts = _cells(marketing, cycle_date - dt.timedelta(days=cfg.report_days), cycle_date, library)
    by_code = {c.code: c for c in library}
    rows = []
    for dim, col in DIMENSIONS.items():
        rows += _slice_rows(contacts, dim, col, True, by_code, cfg)
    for dim in ACROSS:
        rows += _slice_rows(contacts, dim, DIMENSIONS.get(dim, dim), False, by_code, cfg)
    frame = pd.DataFrame(rows, columns=REPORT_COLUMNS[:-1])
    if not frame.empty:
        frame["rank"] = (frame.assign(_u=frame["uplift"].fillna(-1e9))
                         .sort_values(["_u", "conversion_rate"], ascending=False)
                         .groupby("dimension").cumcount() + 1)
    else:
        frame["rank"] = pd.Series(dtype=int)
    return frame


REPORT_COLUMNS = ["dimension", "value", "campaign_code", "campaign_name", "contacts", "delivered", "replied",
                  "accepted", "converted", "conversion_rate", "control_contacts", "control_converted",
                  "control_rate", "uplift", "uplift_low", "uplift_high", "cost_yuan", "incremental_value_yuan",
                  "roi", "flags", "rank"]


def outcome_trend(marketing: Engine, cycle_date: dt.date, cfg: OutcomeConfig | None = None) -> pd.DataFrame:
    """Per cycle of the last ``trend_cycles`` days: contacts and conversion, treated and control."""
    cfg = cfg or load_outcome_config()
    bind_date = functools.partial(db.date_value, marketing)
    with marketing.connect() as conn:
        frame = pd.read_sql(sa.text(
            "select cycle_date, case when channel = 'control' then 1 else 0 end as control, count(*) as contacts, "
            "count(converted_at) as converted from mkt_contact where cycle_date > :a and cycle_date <= :b "
            "group by cycle_date, case when channel = 'control' then 1 else 0 end order by cycle_date"),
            conn, params={"a": bind_date(cycle_date - dt.timedelta(days=cfg.trend_cycles)), "b": bind_date(cycle_date)})
    out = []
    for day, g in frame.groupby("cycle_date"):
        t = g[g["control"] == 0]
        c = g[g["control"] == 1]
        n_t, k_t = int(t["contacts"].sum()), int(t["converted"].sum())
        n_c, k_c = int(c["contacts"].sum()), int(c["converted"].sum())
        up, lo, hi = uplift_interval(k_t, n_t, k_c, n_c, cfg.confidence)
        out.append({"cycle_date": str(day)[:10], "contacts": n_t, "converted": k_t,
                    "conversion_rate": k_t / n_t if n_t else math.nan, "control_contacts": n_c,
                    "control_converted": k_c, "control_rate": k_c / n_c if n_c else math.nan,
                    "uplift": up, "uplift_low": lo, "uplift_high": hi})
    return pd.DataFrame(out, columns=["cycle_date", "contacts", "converted", "conversion_rate", "control_contacts",
                                      "control_converted", "control_rate", "uplift", "uplift_low", "uplift_high"])


def bill_summary(marketing: Engine, cycle_date: dt.date, cfg: OutcomeConfig | None = None) -> pd.DataFrame:
    """Per campaign, treated and control: average bill before, after and its change (where known),
    and for the converted customers — from the trajectory, aggregated in the database."""
    cfg = cfg or load_outcome_config()
    inner = db.render_sql("trajectory.sql", marketing.dialect.name, bill_months=cfg.bill_months,
                          msisdn=False, converted_only=False)
    sql = (f"select campaign_code, case when channel = 'control' then 'control' else 'treated' end as arm, "
           f"count(*) as contacts, avg(bill_before) as bill_before, avg(bill_after) as bill_after, "
           f"avg(bill_after - bill_before) as bill_change, count(bill_after - bill_before) as with_change, "
           f"avg(case when converted_at is not null then bill_after - bill_before end) as converted_bill_change "
           f"from ({inner}) as t group by campaign_code, case when channel = 'control' then 'control' "
           f"else 'treated' end order by campaign_code, arm desc")
    bind_date = functools.partial(db.date_value, marketing)
    with marketing.connect() as conn:
        return pd.read_sql(sa.text(sql), conn, params={
            "a": bind_date(cycle_date - dt.timedelta(days=cfg.report_days)), "b": bind_date(cycle_date)})
