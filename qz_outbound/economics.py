"""Campaign economics (营销效益, economics.md): what each campaign earns, keeps and costs.

For the customers a cycle offered a campaign (arm ``contacted``) or held out (arm ``control``):

* the database (``include/sql/economics_slices.sql``) returns per period, campaign, slice and arm the
  customers, the ARPU change's n / mean / variance, conversions, customers retained and the cost
  drivers (SMS parts sent, calls dialled, agent-shop SMS, commission paid);
* :func:`measure` turns them into economics.md's figures: incremental ARPU (intention to treat) with
  its 95% Welch interval, incremental revenue, customers kept, conversion uplift, cost and ROI;
* :func:`write_economics` rewrites ``mkt_campaign_economics`` for the cycles whose figures can have
  changed (recent cycles, and the months a new after-month of bills arrived for), in one transaction.

Rows are per cycle (``cycle_date`` = the cycle) and per month (``cycle_date`` = the month's first day,
``slice`` prefixed ``month/``); ``campaign_code`` ``*`` holds the rows across campaigns (``all`` and
the code-digit slices ``digit1:1`` … ``digit4:5``), combined from the campaigns' own estimates.
Nothing here logs or returns customer data: counts only.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from qz_outbound import config, db, schema
from qz_outbound.campaigns import Campaign
from qz_outbound.costs import ContactCosts, load_contact_costs
from qz_outbound.cycle import month_start

log = logging.getLogger(__name__)

MONTH_PREFIX = "month/"
ALL_CAMPAIGNS = "*"
COLUMNS = ["cycle_date", "campaign_code", "slice", "after_months", "contacted", "control", "conversion_uplift",
           "incremental_arpu", "arpu_ci_low", "arpu_ci_high", "incremental_revenue", "customers_kept", "cost", "roi"]
# slices whose control arm is the campaign's whole control group (held-out customers get no channel or variant)
WHOLE_CONTROL = ("channel:", "variant:")


class EconomicsConfig(config.StrictModel):
    before_months: int = Field(default=3, ge=1, le=12)
    after_months: int = Field(default=3, ge=1, le=12)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    lookback_days: int = Field(default=150, ge=1, le=800)
    refresh_days: int = Field(default=20, ge=0, le=800)


def load_economics_config(path: Path | None = None) -> EconomicsConfig:
    return config.load(EconomicsConfig, path or config.config_path("economics.yaml"))


# ---------------------------------------------------------------- statistics

def welch_interval(mean_t: float, var_t: float, n_t: int, mean_c: float, var_c: float, n_c: int,
                   confidence: float) -> tuple[float, float, float]:
    """Difference of two means with Welch's interval: (difference, low, high); NaN without data."""
    from scipy import stats

    if n_t < 2 or n_c < 2 or any(map(_missing, (mean_t, var_t, mean_c, var_c))):
        return math.nan, math.nan, math.nan
    a, b = var_t / n_t, var_c / n_c
    diff = mean_t - mean_c
    se = math.sqrt(a + b)
    if se == 0:
        return diff, diff, diff
    df = (a + b) ** 2 / (a * a / (n_t - 1) + b * b / (n_c - 1))
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    return diff, diff - q * se, diff + q * se


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def effect_measured(row: dict) -> bool:
    """An incremental ARPU whose interval excludes zero (after at least one after-month)."""
    return (row["after_months"] > 0 and not _missing(row["arpu_ci_low"]) and not _missing(row["arpu_ci_high"])
            and (row["arpu_ci_low"] > 0 or row["arpu_ci_high"] < 0))


def status_of(row: dict) -> str:
    """``not_yet_measurable`` (no after-month), ``no_effect`` (the interval spans zero) or ``measured``."""
    if row["after_months"] == 0 or _missing(row.get("incremental_arpu")):
        return "not_yet_measurable"
    return "measured" if effect_measured(row) else "no_effect"


# ---------------------------------------------------------------- the figures

def _none(v):
    return None if _missing(v) else float(v)


def _cost(t: pd.Series, costs: ContactCosts, offer_cost: float) -> float:
    contact = (float(t["sms_parts"]) * costs.sms_part + float(t["dialled"]) * costs.call_dialled
               + float(t["agent_sms"]) * costs.agent_sms)
    return contact + float(t["converted"]) * offer_cost + float(t["commission"])


def _figures(t: pd.Series, c: pd.Series | None, cost: float, cfg: EconomicsConfig) -> dict:
    n_t = int(t["n"])
    n_c = int(c["n"]) if c is not None else 0
    after = int(t["after_months"] or 0)
    row = {"after_months": after, "contacted": n_t, "control": n_c, "cost": cost}
    if n_c:
        row["conversion_uplift"] = t["converted"] / n_t - c["converted"] / n_c
        row["customers_kept"] = (t["retained"] / n_t - c["retained"] / n_c) * n_t
    else:
        row["conversion_uplift"] = row["customers_kept"] = None
    if after and c is not None:
        diff, lo, hi = welch_interval(t["mean_change"], t["var_change"], int(t["n_change"]),
                                      c["mean_change"], c["var_change"], int(c["n_change"]), cfg.confidence)
    else:
        diff = lo = hi = math.nan
    row.update(incremental_arpu=_none(diff), arpu_ci_low=_none(lo), arpu_ci_high=_none(hi))
    row["incremental_revenue"] = None if row["incremental_arpu"] is None else row["incremental_arpu"] * n_t * after
    row["roi"] = ((row["incremental_revenue"] - cost) / cost
                  if effect_measured(row) and cost > 0 else None)
    return row


def _combine(rows: list[dict], cfg: EconomicsConfig) -> dict:
    """Campaigns' estimates combined (weighted by their contacted customers): across-campaign rows."""
    from scipy import stats

    n_t = sum(r["contacted"] for r in rows)
    out = {"after_months": min(r["after_months"] for r in rows), "contacted": n_t,
           "control": sum(r["control"] for r in rows), "cost": sum(r["cost"] for r in rows)}
    with_c = [r for r in rows if r["conversion_uplift"] is not None]
    w = sum(r["contacted"] for r in with_c)
    out["conversion_uplift"] = sum(r["conversion_uplift"] * r["contacted"] for r in with_c) / w if w else None
    out["customers_kept"] = sum(r["customers_kept"] for r in with_c) if with_c else None
    measurable = [r for r in rows if r["incremental_arpu"] is not None]
    if out["after_months"] and measurable and len(measurable) == len(rows):
        z = float(stats.norm.ppf(0.5 + cfg.confidence / 2))
        est = sum(r["incremental_arpu"] * r["contacted"] for r in rows) / n_t
        var = sum(((r["arpu_ci_high"] - r["arpu_ci_low"]) / (2 * z) * r["contacted"] / n_t) ** 2 for r in rows)
        out.update(incremental_arpu=est, arpu_ci_low=est - z * math.sqrt(var), arpu_ci_high=est + z * math.sqrt(var),
                   incremental_revenue=sum(r["incremental_revenue"] for r in rows))
    else:
        out.update(incremental_arpu=None, arpu_ci_low=None, arpu_ci_high=None, incremental_revenue=None)
    out["roi"] = ((out["incremental_revenue"] - out["cost"]) / out["cost"]
                  if effect_measured(out) and out["cost"] > 0 else None)
    return out


def measure(stats_frame: pd.DataFrame, library: list[Campaign], costs: ContactCosts,
            cfg: EconomicsConfig, prefix: str = "") -> pd.DataFrame:
    """economics.md's rows from the database's per-arm statistics (``economics_slices.sql``)."""
    offer = {c.code: float(c.offer_cost_yuan) for c in library}
    out: list[dict] = []
    if stats_frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame = stats_frame.copy()
    frame["period"] = frame["period"].map(lambda v: v if isinstance(v, dt.date) and not isinstance(v, dt.datetime)
                                          else pd.Timestamp(v).date())
    arms = {k: g.set_index("arm") for k, g in frame.groupby(["period", "campaign_code", "slice"], sort=True)}
    for (period, code, slice_), g in arms.items():
        if "contacted" not in g.index:
            continue
        t = g.loc["contacted"]
        control_key = (period, code, "all") if slice_.startswith(WHOLE_CONTROL) else (period, code, slice_)
        cg = arms.get(control_key)
        c = cg.loc["control"] if cg is not None and "control" in cg.index else None
        row = _figures(t, c, _cost(t, costs, offer.get(code, 0.0)), cfg)
        out.append({"cycle_date": period, "campaign_code": code, "slice": prefix + slice_, **row})
    # across campaigns: every campaign, and per digit of the campaign code
    per_campaign = [r for r in out if r["slice"] == prefix + "all"]
    groups: dict[tuple, list[dict]] = {}
    for r in per_campaign:
        groups.setdefault((r["cycle_date"], "all"), []).append(r)
        for i, digit in enumerate(r["campaign_code"][:4], start=1):
            groups.setdefault((r["cycle_date"], f"digit{i}:{digit}"), []).append(r)
    for (period, slice_), rows in sorted(groups.items()):
        out.append({"cycle_date": period, "campaign_code": ALL_CAMPAIGNS, "slice": prefix + slice_,
                    **_combine(rows, cfg)})
    return pd.DataFrame(out, columns=COLUMNS)


def slice_statistics(marketing: Engine, since: dt.date, until: dt.date, period: str,
                     cfg: EconomicsConfig) -> pd.DataFrame:
    """The per-arm statistics of the cycles ``since`` .. ``until`` (period ``cycle`` or ``month``)."""
    sql = db.render_sql("economics_slices.sql", marketing.dialect.name, period=period,
                        before_months=cfg.before_months, after_max=cfg.after_months)
    with marketing.connect() as conn:
        if marketing.dialect.name == "postgresql":
            # fresh statistics (ANALYZE samples, a few seconds even at a city's scale): a contact table
            # the planner thinks tiny turns the joins into nested loops over millions of rows
            conn.exec_driver_sql("analyze mkt_contact, sms_outbox, mkt_agent_commission, stg_bill_month")
            conn.commit()
        return pd.read_sql(sa.text(sql), conn, params={"a": db.date_value(marketing, since),
                                                      "b": db.date_value(marketing, until)})


def economics(marketing: Engine, since: dt.date, until: dt.date, library: list[Campaign],
              costs: ContactCosts | None = None, cfg: EconomicsConfig | None = None) -> pd.DataFrame:
    """The rows of ``mkt_campaign_economics`` for the cycles ``since`` .. ``until`` (per cycle, and per
    month of those cycles; ``since`` should be a month's first day for whole months)."""
    cfg = cfg or load_economics_config()
    costs = costs or load_contact_costs()
    per_cycle = slice_statistics(marketing, since, until, "cycle", cfg)
    cycles = measure(per_cycle, library, costs, cfg)
    months = measure(month_statistics(per_cycle), library, costs, cfg, MONTH_PREFIX)
    return pd.concat([cycles, months], ignore_index=True)


_SUMS = ["n", "n_change", "converted", "retained", "sent", "delivered", "dialled", "agent_sms", "sms_parts",
         "commission"]


def month_statistics(per_cycle: pd.DataFrame) -> pd.DataFrame:
    """The months' per-arm statistics from the cycles' (what ``economics_slices.sql`` returns with
    ``period == 'month'``, without reading the contacts twice): counts, sums and sums of squares add
    up over a month's cycles, which share their before- and after-months."""
    if per_cycle.empty:
        return per_cycle
    s = per_cycle.copy()
    s["period"] = s["period"].map(lambda v: month_start(pd.Timestamp(v).date()))
    n = s["n_change"].astype(float)
    s["sx"] = (s["mean_change"].astype(float) * n).fillna(0.0)
    s["sxx"] = (s["var_change"].astype(float).fillna(0.0) * (n - 1).clip(lower=0)
                + (s["sx"] ** 2 / n.where(n > 0))).fillna(0.0)
    keys = ["period", "campaign_code", "slice", "arm"]
    m = s.groupby(keys, sort=True).agg({**{k: "sum" for k in _SUMS + ["sx", "sxx"]}, "after_months": "max"})
    m = m.reset_index()
    n = m["n_change"].astype(float)
    m["mean_change"] = (m["sx"] / n.where(n > 0))
    m["var_change"] = ((m["sxx"] - m["sx"] ** 2 / n.where(n > 0)) / (n - 1).where(n > 1)).clip(lower=0)
    return m.drop(columns=["sx", "sxx"])


# ---------------------------------------------------------------- staging and writing

def stage_subscribers(datamart: Engine, marketing: Engine) -> int:
    """The latest ``subscriber`` snapshot's status and market segment → ``stg_subscriber`` (replaced)."""
    with marketing.begin() as conn:
        conn.execute(schema.stg_subscriber.delete())
    return db.land_query(datamart, marketing, "economics_subscribers.sql", {}, "stg_subscriber",
                         ["msisdn", "status", "market_segment"])


def stage_bills(datamart: Engine, marketing: Engine, cycle_date: dt.date, cfg: EconomicsConfig) -> int:
    """The closed months' bills the measured cycles need (outcomes.stage_bills over the economics' span)."""
    from qz_outbound import outcomes

    span = outcomes.load_outcome_config().model_copy(
        update={"report_days": cfg.lookback_days, "bill_months": cfg.before_months})
    return outcomes.stage_bills(datamart, marketing, cycle_date, span)


def _staged_months(marketing: Engine) -> set[dt.date]:
    with marketing.connect() as conn:
        return {m if isinstance(m, dt.date) else dt.date.fromisoformat(str(m)[:10])
                for m in conn.scalars(sa.select(schema.stg_bill_month.c.month))}


def first_month_to_measure(marketing: Engine, cycle_date: dt.date, cfg: EconomicsConfig) -> dt.date:
    """The first month whose figures can have changed since they were written: within ``refresh_days``,
    never written, or written with fewer after-months than are staged now."""
    t = schema.mkt_campaign_economics
    first = month_start(cycle_date - dt.timedelta(days=cfg.lookback_days))
    refresh = month_start(cycle_date - dt.timedelta(days=cfg.refresh_days))
    staged = _staged_months(marketing)
    with marketing.connect() as conn:
        written = {(m if isinstance(m, dt.date) else dt.date.fromisoformat(str(m)[:10])): int(a)
                   for m, a in conn.execute(sa.select(t.c.cycle_date, t.c.after_months).where(
                       t.c.campaign_code == ALL_CAMPAIGNS, t.c.slice == MONTH_PREFIX + "all"))}
    month = first
    while month < refresh:
        after_now = sum(1 for k in range(1, cfg.after_months + 1) if month_start(month, -k) in staged)
        if month not in written or written[month] < after_now:
            return month
        month = month_start(month, -1)
    return refresh


def write_economics(datamart: Engine, marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                    costs: ContactCosts | None = None, cfg: EconomicsConfig | None = None) -> dict:
    """Stage bills and subscribers, measure the cycles that can have changed and rewrite their rows of
    ``mkt_campaign_economics`` in one transaction (idempotent per date). Returns counts only."""
    cfg = cfg or load_economics_config()
    costs = costs or load_contact_costs()
    started = time.monotonic()
    bills = stage_bills(datamart, marketing, cycle_date, cfg)
    subscribers = stage_subscribers(datamart, marketing)
    since = first_month_to_measure(marketing, cycle_date, cfg)
    frame = economics(marketing, since, cycle_date, library, costs, cfg)
    t = schema.mkt_campaign_economics
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    with marketing.begin() as conn:
        conn.execute(t.delete().where(t.c.cycle_date >= since, t.c.cycle_date <= cycle_date))
        if records:
            conn.execute(t.insert(), records)
    seconds = time.monotonic() - started
    from qz_outbound.cycle import record_stage
    record_stage(marketing, cycle_date, "economics", len(records), seconds, f"from {since.isoformat()}")
    log.info("economics: %d rows for the cycles %s .. %s in %.1fs", len(records), since, cycle_date, seconds)
    return {"rows": len(records), "since": since.isoformat(), "bill_rows_staged": bills,
            "subscribers_staged": subscribers, "seconds": round(seconds, 1)}


def read_economics(marketing: Engine, since: dt.date, until: dt.date) -> pd.DataFrame:
    """``mkt_campaign_economics`` rows with ``cycle_date`` in ``since`` .. ``until``."""
    t = schema.mkt_campaign_economics
    with marketing.connect() as conn:
        return pd.read_sql(sa.select(t).where(t.c.cycle_date >= since, t.c.cycle_date <= until)
                           .order_by(t.c.cycle_date, t.c.campaign_code, t.c.slice), conn)
