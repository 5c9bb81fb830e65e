"""Why each campaign's share of the target list moved (docs/learning.md "Offline evaluation and guard rails").

Per cycle: each campaign's share of the target list (every row, control customers included: the
arbitration's result) against the previous cycle's; for each campaign whose share moved by more than
``share_report.min_change_pp`` percentage points (``config/evaluation.yaml``), the cells of
``mkt_offer_value`` whose expected value moved between the two cycles' measurements (largest first),
with uplift before → after and the contacted / control counts they rest on. A change with no moved
cell is listed too (it came from eligibility, the contact policy, exploration or the mode, not from
the measured values). Written as ``reports/<day>/offer_shares.csv`` (Chinese headers) and shown on
HQ's learning page. Campaign codes, cells and counts only.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import exports, schema
from qz_outbound.learning.evaluation import EvaluationConfig, load_evaluation_config

log = logging.getLogger(__name__)

CELL = ["stability_type", "spend_tier", "market_segment"]
HEADERS = {
    "cycle_date": "周期", "previous_cycle": "上一周期", "campaign_code": "活动编码",
    "share": "本期份额", "previous_share": "上期份额", "change_pp": "份额变化(百分点)",
    "customers": "本期客户数", "previous_customers": "上期客户数",
    "stability_type": "稳定性类型", "spend_tier": "消费档次", "market_segment": "细分市场",
    "previous_value": "上期期望价值(元/次)", "value": "本期期望价值(元/次)", "value_change": "期望价值变化(元/次)",
    "previous_uplift": "上期转化提升", "uplift": "本期转化提升",
    "previous_contacted": "上期接触数", "contacted": "本期接触数",
    "previous_control": "上期对照数", "control": "本期对照数", "note": "说明",
}
NO_CELL = "无单元格价值变动（资格、接触规则、探索或模式所致）"


def _d(v) -> dt.date:
    return v if isinstance(v, dt.date) and not isinstance(v, dt.datetime) else pd.Timestamp(v).date()


def latest_cycle(marketing: Engine, day: dt.date) -> dt.date | None:
    """The latest cycle with a target list on or before ``day``."""
    t = schema.mkt_target
    with marketing.connect() as conn:
        v = conn.execute(sa.select(sa.func.max(t.c.cycle_date)).where(t.c.cycle_date <= day)).scalar()
    return None if v is None else _d(v)


def previous_cycle(marketing: Engine, cycle_date: dt.date) -> dt.date | None:
    t = schema.mkt_target
    with marketing.connect() as conn:
        v = conn.execute(sa.select(sa.func.max(t.c.cycle_date)).where(t.c.cycle_date < cycle_date)).scalar()
    return None if v is None else _d(v)


def campaign_shares(marketing: Engine, cycle_date: dt.date, previous: dt.date | None) -> pd.DataFrame:
    """Per campaign: customers and share of the target list in the cycle and the previous one."""
    t = schema.mkt_target
    days = [cycle_date] + ([previous] if previous else [])
    q = (sa.select(t.c.cycle_date, t.c.campaign_code, sa.func.count().label("customers"))
         .where(t.c.cycle_date.in_(days)).group_by(t.c.cycle_date, t.c.campaign_code))
    with marketing.connect() as conn:
        frame = pd.read_sql(q, conn)
    frame["cycle_date"] = frame["cycle_date"].map(_d)
    frame["customers"] = frame["customers"].astype(int)
    frame["share"] = frame["customers"] / frame.groupby("cycle_date")["customers"].transform("sum")
    now = frame[frame["cycle_date"] == cycle_date][["campaign_code", "customers", "share"]]
    before = frame[frame["cycle_date"] == previous][["campaign_code", "customers", "share"]].rename(
        columns={"customers": "previous_customers", "share": "previous_share"})
    out = now.merge(before, on="campaign_code", how="outer")
    for c in ("customers", "previous_customers"):
        out[c] = out[c].fillna(0).astype(int)
    for c in ("share", "previous_share"):
        out[c] = out[c].fillna(0.0)
    if previous is None:
        out["previous_share"] = float("nan")
    out["change_pp"] = (out["share"] - out["previous_share"]) * 100
    return out.sort_values("campaign_code").reset_index(drop=True)


def moved_cells(marketing: Engine, cycle_date: dt.date, previous: dt.date, codes: list[str],
                cfg: EvaluationConfig) -> pd.DataFrame:
    """The cells of ``codes`` whose expected value moved between the two cycles' measurements."""
    v = schema.mkt_offer_value
    cols = [v.c.cycle_date, v.c.campaign_code, *(v.c[c] for c in CELL), v.c.expected_value, v.c.uplift,
            v.c.contacted, v.c.control]
    with marketing.connect() as conn:
        frame = pd.read_sql(sa.select(*cols).where(v.c.cycle_date.in_([cycle_date, previous]),
                                                   v.c.campaign_code.in_(codes)), conn)
    frame["cycle_date"] = frame["cycle_date"].map(_d)
    key = ["campaign_code", *CELL]
    now = frame[frame["cycle_date"] == cycle_date].drop(columns="cycle_date").rename(columns={"expected_value": "value"})
    before = frame[frame["cycle_date"] == previous].drop(columns="cycle_date").rename(
        columns={"expected_value": "previous_value", "uplift": "previous_uplift", "contacted": "previous_contacted",
                 "control": "previous_control"})
    cells = now.merge(before, on=key, how="outer")
    cells["value_change"] = cells["value"].fillna(0.0) - cells["previous_value"].fillna(0.0)
    cells = cells[cells["value_change"].abs() > cfg.share_report.min_cell_change_yuan]
    cells = cells.assign(size=cells["value_change"].abs()).sort_values(["campaign_code", "size"],
                                                                       ascending=[True, False])
    return cells.groupby("campaign_code", sort=True).head(cfg.share_report.max_cells).drop(columns="size")


def share_changes(marketing: Engine, cycle_date: dt.date, cfg: EvaluationConfig | None = None) -> dict:
    """The report's data: ``previous`` cycle, ``shares`` (every campaign), ``rows`` (each changed campaign
    with its moved cells; one row with no cell where none moved)."""
    cfg = cfg or load_evaluation_config()
    previous = previous_cycle(marketing, cycle_date)
    shares = campaign_shares(marketing, cycle_date, previous)
    if previous is None:
        return {"cycle_date": cycle_date, "previous": None, "shares": shares, "rows": pd.DataFrame(columns=list(HEADERS))}
    changed = shares[shares["change_pp"].abs() > cfg.share_report.min_change_pp]
    cells = moved_cells(marketing, cycle_date, previous, list(changed["campaign_code"]), cfg) if len(changed) else \
        pd.DataFrame(columns=["campaign_code"])
    rows = changed.merge(cells, on="campaign_code", how="left").reindex(columns=list(HEADERS))
    rows["note"] = rows["stability_type"].map(lambda v: NO_CELL if pd.isna(v) else "")
    rows["cycle_date"], rows["previous_cycle"] = cycle_date.isoformat(), previous.isoformat()
    return {"cycle_date": cycle_date, "previous": previous, "shares": shares, "rows": rows.reset_index(drop=True)}


def write_share_report(marketing: Engine, day: dt.date, out: Path | None = None,
                       cfg: EvaluationConfig | None = None) -> dict:
    """``reports/<day>/offer_shares.csv`` for the latest cycle on or before ``day``. Counts only."""
    from qz_outbound.reports import output_dir

    cycle = latest_cycle(marketing, day)
    if cycle is None:
        return {"cycle_date": None, "campaigns_changed": 0, "cells_moved": 0}
    data = share_changes(marketing, cycle, cfg)
    rows = data["rows"]
    folder = (out or output_dir()) / "reports" / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    frame = rows.copy()
    for c in ("share", "previous_share"):
        frame[c] = frame[c].astype(float).round(4)
    frame["change_pp"] = frame["change_pp"].astype(float).round(2)
    exports.write_csv(frame.rename(columns=HEADERS), folder / "offer_shares.csv")
    result = {"cycle_date": cycle.isoformat(), "campaigns_changed": int(rows["campaign_code"].nunique()),
              "cells_moved": int(rows["stability_type"].notna().sum())}
    log.info("share report of cycle %s: %s", cycle, result)
    return result
