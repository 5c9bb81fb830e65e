"""Commission (酬金): a month's conversions of agent recommendations, per shop, and the statements.

:func:`settle_month` stages the month's BOSS orders from the data mart (``stg_agent_order``),
credits them in ``include/sql/agent_commission.sql`` (an order for the recommended product by the
recommended customer within ``window_days`` of the recommendation; paid once, to one shop), stores
the month's conversions in ``mkt_agent_commission`` (the month's rows replaced in one transaction,
so a re-run gives the identical statement) and writes, under ``var/output/commission/<YYYY-MM>/``:

* ``<county>/<agent_id>.csv|.xlsx`` — each shop's statement (结算单), customers masked;
* ``<county>/汇总_<county>.csv|.xlsx`` — the county's shops: recommendations, conversions, amount;
* ``汇总_各区县.csv|.xlsx`` — the counties.

CSV is UTF-8 with BOM (Excel opens it right); headers are Chinese. Returns counts and the folder.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import db, exports, reports
from qz_outbound.agent.schema import mkt_agent_commission, stg_agent_order
from qz_outbound.agent.settings import AgentChannelConfig, load_agent_config
from qz_outbound.campaigns import Campaign
from qz_outbound.counties import county_names
from qz_outbound.phone import mask

log = logging.getLogger(__name__)

NOT_CONFIGURED = "未配置该产品酬金"
STATEMENT_COLUMNS = {
    "month": "结算月份", "agent_id": "代理点编码", "outlet_name": "网点名称", "order_id": "订单号",
    "customer": "客户号码", "campaign": "推荐活动", "product_code": "产品编码", "recommended_at": "推荐时间",
    "order_time": "办理时间", "commission_yuan": "酬金(元)", "note": "备注",
}
SHOP_SUMMARY_COLUMNS = {
    "month": "结算月份", "county_code": "区县编码", "county_name": "区县", "agent_id": "代理点编码",
    "outlet_name": "网点名称", "recommendations": "推荐次数", "conversions": "转化笔数",
    "commission_yuan": "酬金合计(元)",
}
COUNTY_SUMMARY_COLUMNS = {
    "month": "结算月份", "county_code": "区县编码", "county_name": "区县", "shops": "推荐网点数",
    "recommendations": "推荐次数", "conversions": "转化笔数", "commission_yuan": "酬金合计(元)",
}


def month_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    first = month.replace(day=1)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return first, nxt


def previous_month(day: dt.date) -> dt.date:
    return (day.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def stage_month_orders(datamart: Engine, marketing: Engine, month: dt.date, products: list[str]) -> int:
    """The month's orders of the agent campaigns' products, into ``stg_agent_order`` (replaced)."""
    first, nxt = month_bounds(month)
    orders = pd.read_sql(
        sa.text("select order_id, msisdn, product_code, order_time, channel, agent_id from order_event "
                "where order_time >= :since and order_time < :until and product_code in :products")
        .bindparams(sa.bindparam("products", expanding=True)),
        datamart, params={"since": f"{first} 00:00:00", "until": f"{nxt} 00:00:00", "products": products or ["-"]})
    orders = orders.drop_duplicates("order_id").sort_values("order_id")
    orders["order_time"] = pd.to_datetime(orders["order_time"], format="ISO8601").dt.to_pydatetime()
    orders["month"] = first
    rows = orders.astype(object).where(orders.notna(), None).to_dict("records")
    with marketing.begin() as conn:
        conn.execute(stg_agent_order.delete().where(stg_agent_order.c.month == first))
        if rows:
            # an order id already staged for another month (a corrected order time) keeps its first month
            have = set()
            ids = [r["order_id"] for r in rows]
            for i in range(0, len(ids), 5000):
                have |= set(conn.scalars(sa.select(stg_agent_order.c.order_id).where(
                    stg_agent_order.c.order_id.in_(ids[i:i + 5000]))))
            rows = [r for r in rows if r["order_id"] not in have]
            if rows:
                conn.execute(stg_agent_order.insert(), rows)
    return len(rows)


def settle_month(datamart: Engine, marketing: Engine, month: dt.date, library: list[Campaign],
                 cfg: AgentChannelConfig | None = None, out_dir: Path | None = None) -> dict:
    """Credit the month's conversions and write the statements; counts and the folder."""
    cfg = cfg or load_agent_config()
    first, _ = month_bounds(month)
    products = sorted({c.product_code for c in library if "agent" in c.channels})
    staged = stage_month_orders(datamart, marketing, first, products)
    names = {c.code: c.name for c in library}
    rates = cfg.commission.per_product
    sql = db.render_sql("agent_commission.sql", marketing.dialect.name, window_days=cfg.commission.window_days)
    with marketing.begin() as conn:
        conn.execute(mkt_agent_commission.delete().where(mkt_agent_commission.c.month == first))
        credited = conn.execute(sa.text(sql), {"month": first.isoformat()}).mappings().all()
        rows = [dict(r, recommended_at=_as_datetime(r["recommended_at"]), order_time=_as_datetime(r["order_time"]),
                     month=first, commission_yuan=rates.get(r["product_code"], Decimal(0)),
                     note=None if r["product_code"] in rates else NOT_CONFIGURED) for r in credited]
        if rows:
            conn.execute(mkt_agent_commission.insert(), rows)
    paths = write_statements(marketing, first, names, out_dir)
    total = sum((Decimal(str(r["commission_yuan"])) for r in rows), Decimal(0))
    log.info("commission %s: %d orders staged, %d conversions, %s yuan", first, staged, len(rows), total)
    return {"month": first.isoformat(), "orders_staged": staged, "conversions": len(rows),
            "commission_yuan": str(total), "shops": paths["shops"], "folder": paths["folder"]}


def _as_datetime(value):
    """SQLite hands timestamps of a raw query back as text."""
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _month_frames(marketing: Engine, month: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    first, nxt = month_bounds(month)
    paid = pd.read_sql(db.date_binds(
        "select p.order_id, p.agent_id, p.county_code, p.msisdn, p.campaign_code, p.product_code, "
        "e.event_time as recommended_at, p.order_time, p.commission_yuan, p.note, e.outlet_name "
        "from mkt_agent_commission as p join mkt_agent_event as e on e.contact_id = p.contact_id "
        "where p.month = :m order by p.agent_id, p.order_time, p.order_id", "m"), marketing,
        params={"m": first})
    recommended = pd.read_sql(db.date_binds(
        "select e.agent_id, e.agent_county as county_code, min(e.outlet_name) as outlet_name, count(*) as recommendations "
        "from mkt_contact as c join mkt_agent_event as e on e.contact_id = c.contact_id "
        "where c.channel = 'agent' and c.cycle_date >= :a and c.cycle_date < :b "
        "and c.status not in ('skipped', 'failed', 'cancelled') "
        "group by e.agent_id, e.agent_county", "a", "b"), marketing, params={"a": first, "b": nxt})
    return paid, recommended


def write_statements(marketing: Engine, month: dt.date, campaign_names: dict[str, str],
                     out_dir: Path | None = None) -> dict:
    """The month's statements from ``mkt_agent_commission`` (the same rows give the same files)."""
    first, _ = month_bounds(month)
    label = f"{first:%Y-%m}"
    folder = Path(out_dir or reports.output_dir() / "commission") / label
    paid, recommended = _month_frames(marketing, first)
    counties = county_names()
    paid["commission_yuan"] = paid["commission_yuan"].astype(float).round(2)
    paid["month"] = label
    paid["customer"] = paid["msisdn"].map(mask)       # a shop sees no customer's full number
    paid["campaign"] = paid["campaign_code"].map(lambda c: f"{c} {campaign_names.get(c, '')}".strip())
    for col in ("recommended_at", "order_time"):
        paid[col] = pd.to_datetime(paid[col], format="ISO8601").dt.strftime("%Y-%m-%d %H:%M:%S")
    paid["note"] = paid["note"].fillna("")
    shops = 0
    for (county, agent_id), frame in paid.groupby(["county_code", "agent_id"], sort=True):
        statement = frame[list(STATEMENT_COLUMNS)].rename(columns=STATEMENT_COLUMNS)
        _write_pair(folder / county / agent_id, statement, "结算单")
        shops += 1
    per_shop = paid.groupby(["county_code", "agent_id"], as_index=False).agg(
        conversions=("order_id", "size"), commission_yuan=("commission_yuan", "sum"))
    summary = recommended.merge(per_shop, on=["county_code", "agent_id"], how="outer").fillna(
        {"recommendations": 0, "conversions": 0, "commission_yuan": 0.0})
    if len(summary):
        names = paid.drop_duplicates("agent_id").set_index("agent_id")["outlet_name"]
        summary["outlet_name"] = summary["outlet_name"].fillna(summary["agent_id"].map(names))
    summary = summary.astype({"recommendations": int, "conversions": int})
    summary["commission_yuan"] = summary["commission_yuan"].round(2)
    summary["month"] = label
    summary["county_name"] = summary["county_code"].map(lambda c: counties.get(c, c))
    summary = summary.sort_values(["county_code", "agent_id"])
    for county, frame in summary.groupby("county_code", sort=True):
        _write_pair(folder / county / f"汇总_{county}", frame[list(SHOP_SUMMARY_COLUMNS)].rename(
            columns=SHOP_SUMMARY_COLUMNS), "网点汇总")
    by_county = summary.groupby(["county_code", "county_name"], as_index=False).agg(
        shops=("agent_id", "nunique"), recommendations=("recommendations", "sum"),
        conversions=("conversions", "sum"), commission_yuan=("commission_yuan", "sum"))
    by_county["commission_yuan"] = by_county["commission_yuan"].round(2)
    by_county["month"] = label
    folder.mkdir(parents=True, exist_ok=True)
    _write_pair(folder / "汇总_各区县", by_county[list(COUNTY_SUMMARY_COLUMNS)].rename(
        columns=COUNTY_SUMMARY_COLUMNS), "区县汇总")
    return {"folder": str(folder), "shops": shops}


def _write_pair(stem: Path, frame: pd.DataFrame, sheet: str) -> None:
    exports.write_pair(stem, frame, sheet)   # shop names and notes are text, never formulas
