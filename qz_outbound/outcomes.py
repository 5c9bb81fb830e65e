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
import functools
import logging
import math
from pathlib import Path
from statistics import NormalDist

import pandas as pd
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Engine

from qz_outbound import clock, config, db, exports, reports, schema
from qz_outbound.campaigns import Campaign
from qz_outbound.segmentation import month_start

log = logging.getLogger(__name__)



class Flag(config.StrictModel):
    min_contacts: int = Field(ge=1)
    min_conversion_rate: float = Field(ge=0, le=1)


class AutoPause(config.StrictModel):
    enabled: bool = False
    min_contacts: int = Field(default=1000, ge=1)


class OutcomeConfig(config.StrictModel):
    attribution_days: int = Field(ge=1, le=90)
    order_lookback_days: int = Field(ge=1, le=365)
    report_days: int = Field(ge=1, le=365)
    confidence: float = Field(gt=0.5, lt=1)
    bill_months: int = Field(default=3, ge=1, le=12)
    trend_cycles: int = Field(default=14, ge=2, le=90)
    flag: Flag
    auto_pause: AutoPause = AutoPause()


def load_outcome_config(path: Path | None = None) -> OutcomeConfig:
    return config.load(OutcomeConfig, path or config.config_path("outcomes.yaml"))


def apply_call_outcomes(marketing: Engine) -> int:
    with marketing.begin() as conn:
        n = conn.execute(sa.text(db.render_sql("outcome_calls.sql", marketing.dialect.name))).rowcount
    log.info("call outcomes applied to %d contacts", n)
    return n


def stage_orders(datamart: Engine, marketing: Engine, until: dt.datetime, lookback_days: int) -> int:
    """Copy the orders of the last ``lookback_days`` not staged yet; returns how many were new."""
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


def stage_bills(datamart: Engine, marketing: Engine, cycle_date: dt.date, cfg: OutcomeConfig | None = None) -> int:
    """Stage the closed months' bills the trajectory needs (``usage_monthly`` → ``stg_bill``).

    From ``bill_months`` before the oldest reported cycle's month up to the month before
    ``cycle_date``'s; a month is staged once, when the data mart has it (a month with no rows
    yet is tried again on the next run). Returns the rows staged now.
    """
    cfg = cfg or load_outcome_config()
    first = month_start(cycle_date - dt.timedelta(days=cfg.report_days), cfg.bill_months)
    last = month_start(cycle_date, 1)
    with marketing.connect() as conn:
        have = {m if isinstance(m, dt.date) else dt.date.fromisoformat(m)
                for m in conn.scalars(sa.select(schema.stg_bill_month.c.month))}
    staged, month = 0, first
    while month <= last:
        if month not in have:
            param = db.date_value(datamart, month)
            with marketing.begin() as conn:  # a landing cut short before it was recorded
                conn.execute(schema.stg_bill.delete().where(schema.stg_bill.c.month == month))
            n = db.land_query(datamart, marketing, "stage_bills.sql", {"month": param}, "stg_bill",
                              ["msisdn", "month", "spend_yuan"])
            if n:
                with marketing.begin() as conn:
                    conn.execute(schema.stg_bill_month.insert().values(month=month, rows=n, staged_at=clock.now()))
                staged += n
                log.info("bills of %s staged: %d rows", month, n)
        month = month_start(month, -1)
    return staged


def trajectory(marketing: Engine, since: dt.date, until: dt.date, cfg: OutcomeConfig | None = None, *,
               msisdn: str | None = None, converted_only: bool = False) -> pd.DataFrame:
    """The marketing trajectory (营销轨迹) per contact of the cycles ``since`` .. ``until``
    (``include/sql/trajectory.sql``): offer, dates, uptake channel, bill before and after."""
    cfg = cfg or load_outcome_config()
    sql = db.render_sql("trajectory.sql", marketing.dialect.name, bill_months=cfg.bill_months,
                        msisdn=msisdn is not None, converted_only=converted_only)
    d = functools.partial(db.date_value, marketing)
    params = {"a": d(since), "b": d(until)}
    if msisdn is not None:
        params["msisdn"] = msisdn
    with marketing.connect() as conn:
        frame = pd.read_sql(sa.text(sql), conn, params=params)
    frame["bill_change"] = frame["bill_after"] - frame["bill_before"]
    return frame.sort_values(["cycle_date", "contact_id"], ignore_index=True)


def paused_campaigns(marketing: Engine) -> set[str]:
    with marketing.connect() as conn:
        return set(conn.scalars(sa.select(schema.mkt_campaign_pause.c.campaign_code)))


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
              "channel": "channel", "script": "script"}
# dimensions compared with the control customers of the same slice (control customers get no
# variant, channel or call script: those are compared with the campaign's whole control group)
_SAME_SLICE_CONTROL = ("segment_type", "county_code")


_COUNTS = ["contacts", "delivered", "replied", "accepted", "converted"]


def _cells(marketing: Engine, since: dt.date, until: dt.date, library: list[Campaign]) -> pd.DataFrame:
    """The contacts of the cycles ``since`` .. ``until`` aggregated in the database into cells of
    campaign × variant × segment type × county × channel (``include/sql/outcome_cells.sql``)."""
    d = functools.partial(db.date_value, marketing)
    with marketing.connect() as conn:
        cells = pd.read_sql(sa.text(db.render_sql("outcome_cells.sql", marketing.dialect.name)), conn,
                            params={"a": d(since), "b": d(until)})
    scripts = {c.code: c.call_script for c in library if c.call_script}
    cells["variant"] = cells["variant"].replace("", None)
    cells["script"] = cells["campaign_code"].map(scripts).where(cells["channel"] == "call")
    cells["control"] = cells["channel"] == "control"
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


def outcome_report(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                   cfg: OutcomeConfig | None = None) -> pd.DataFrame:
    """HQ's outcome table for the contacts of the last ``report_days`` cycles up to ``cycle_date``.

    Rows per campaign and per campaign × variant / segment type / county / channel / call script
    (``dimension``), and across all campaigns per county and channel (``all_county``,
    ``all_channel``). ``rank`` orders each dimension by uplift, then conversion (1 is best): the
    optimisation ranking (营销循环优化).
    """
    cfg = cfg or load_outcome_config()
    contacts = _cells(marketing, cycle_date - dt.timedelta(days=cfg.report_days), cycle_date, library)
    by_code = {c.code: c for c in library}
    rows = []
    for dim, col in DIMENSIONS.items():
        rows += _slice_rows(contacts, dim, col, True, by_code, cfg)
    for dim in ("county", "channel"):
        rows += _slice_rows(contacts, dim, DIMENSIONS[dim], False, by_code, cfg)
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
    d = functools.partial(db.date_value, marketing)
    with marketing.connect() as conn:
        frame = pd.read_sql(sa.text(
            "select cycle_date, case when channel = 'control' then 1 else 0 end as control, count(*) as contacts, "
            "count(converted_at) as converted from mkt_contact where cycle_date > :a and cycle_date <= :b "
            "group by cycle_date, case when channel = 'control' then 1 else 0 end order by cycle_date"),
            conn, params={"a": d(cycle_date - dt.timedelta(days=cfg.trend_cycles)), "b": d(cycle_date)})
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
    d = functools.partial(db.date_value, marketing)
    with marketing.connect() as conn:
        return pd.read_sql(sa.text(sql), conn, params={
            "a": d(cycle_date - dt.timedelta(days=cfg.report_days)), "b": d(cycle_date)})


def is_missing(v) -> bool:
    """None or NaN (a rate or uplift without data)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def _charts(frame: pd.DataFrame, trend: pd.DataFrame) -> dict:
    """Geometry-free data for the page's SVG charts (the template scales them)."""
    from qz_outbound import counties

    camp = frame[frame["dimension"] == "campaign"].sort_values("campaign_code")
    funnel = [{"code": r.campaign_code, "stages": [("接触", r.contacts), ("送达", r.delivered), ("回复", r.replied),
                                                   ("接受", r.accepted), ("转化", r.converted)]}
              for r in camp.itertuples(index=False)]
    intervals = [(r.campaign_code, r.uplift, r.uplift_low, r.uplift_high) for r in camp.itertuples(index=False)
                 if not is_missing(r.uplift)]
    span = [v for _, u, lo, hi in intervals for v in (u, lo, hi)] + [0.0]
    bars = {}
    for dim, label in (("all_county", counties.label), ("all_channel", lambda v: CHANNEL_WORDS.get(v, v))):
        rows = frame[frame["dimension"] == dim].sort_values("value")
        bars[dim] = [{"label": label(r.value), "rate": r.conversion_rate,
                      "control": None if is_missing(r.control_rate) else r.control_rate, "n": r.contacts}
                     for r in rows.itertuples(index=False)]
    top = max([b["rate"] for v in bars.values() for b in v] + [b["control"] or 0 for v in bars.values() for b in v]
              + [1e-4])
    points = [r for r in trend.to_dict("records")]
    trend_top = max([p["conversion_rate"] for p in points if not is_missing(p["conversion_rate"])]
                    + [p["control_rate"] for p in points if not is_missing(p["control_rate"])] + [1e-4])
    return {"funnel": funnel, "intervals": intervals, "lo": min(span), "hi": max(span) or 1e-4,
            "bars": bars, "bar_top": top, "trend": points, "trend_top": trend_top}


CHANNEL_WORDS = {"sms": "短信", "call": "外呼", "agent": "代理商", "control": "对照组"}


def write_outcome_report(marketing: Engine, cycle_date: dt.date, library: list[Campaign],
                         cfg: OutcomeConfig | None = None) -> dict:
    """HQ's daily outcome report in the cycle's report folder (counts and paths returned, no customer data):

    ``outcomes.csv`` (every slice with its rank), ``outcome_trend.csv`` (per cycle), ``bills.csv``
    (bill before/after per campaign and arm), ``trajectory_converted.csv`` (the trajectory of each
    converted contact; it names customers: HQ only) and ``outcomes.html`` with the charts.
    With ``auto_pause`` enabled, campaigns with a significantly negative uplift are paused.
    """
    import jinja2

    from qz_outbound import TEMPLATE_DIR

    cfg = cfg or load_outcome_config()
    since = cycle_date - dt.timedelta(days=cfg.report_days)
    frame = outcome_report(marketing, cycle_date, library, cfg)
    trend = outcome_trend(marketing, cycle_date, cfg)
    bills = bill_summary(marketing, cycle_date, cfg)
    converted = trajectory(marketing, since, cycle_date, cfg, converted_only=True)
    paused_now = apply_auto_pause(marketing, cycle_date, frame, cfg)
    paused = paused_campaigns(marketing)
    out = reports.output_dir() / "reports" / cycle_date.isoformat()
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("outcomes.csv", frame), ("outcome_trend.csv", trend), ("bills.csv", bills),
                        ("trajectory_converted.csv", converted)):
        exports.write_csv(table, out / name)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR / "reports")), autoescape=True)
    records = {dim: frame[frame["dimension"] == dim].sort_values("rank").to_dict("records")
               for dim in frame["dimension"].unique()} if not frame.empty else {}
    html = env.get_template("outcomes.html").render(
        cycle_date=cycle_date, since=since, cfg=cfg,
        campaigns=frame[frame["dimension"] == "campaign"].sort_values("campaign_code").to_dict("records"),
        breakdowns={dim: records.get(dim, []) for dim in DIMENSIONS if dim != "campaign"},
        ranking={dim: records.get(dim, []) for dim in ("campaign", "segment_type", "channel", "script")},
        charts=_charts(frame, trend), trend=trend.to_dict("records"), bills=bills.to_dict("records"),
        paused=sorted(paused), paused_now=paused_now, auto_pause=cfg.auto_pause,
        names={c.code: c.name for c in library}, isnan=is_missing)
    (out / "outcomes.html").write_text(html, encoding="utf-8")
    return {"rows": len(frame), "flagged": int((frame["flags"] != "").sum()) if not frame.empty else 0,
            "converted_contacts": len(converted), "paused_now": paused_now,
            "csv": str(out / "outcomes.csv"), "html": str(out / "outcomes.html")}
