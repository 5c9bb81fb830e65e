"""HQ's segment distribution report (细分分布报表), one per cycle.

The counting is done in the database (``include/sql/segment_distribution.sql``);
this module turns the counts into shares, compares them with the previous
cycle present in ``mkt_segment_snapshot``, and writes a CSV for analysts and an
HTML page (with a chart) for people. Aggregates only: no customer data.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qz_outbound import PROJECT_ROOT, TEMPLATE_DIR, db, exports, schema
from qz_outbound.counties import county_names
from qz_outbound.segmentation import STABILITY_TYPES

TYPE_NAMES = {
    "0": "新入网", "1": "稳定型", "21": "提升型(消费)", "22": "提升型(话务)", "23": "提升型(流量)",
    "3": "下降未预警型", "41": "预警型(消费)", "42": "预警型(话务)", "43": "预警型(流量)", "5": "预销户及以上",
}
DIMENSIONS = {
    "county_code": "区县", "market_segment": "细分市场", "spend_tier": "消费档次", "voice_tier": "话务档次",
    "data_tier": "流量档次", "tenure_tier": "网龄档次",
}
MARKET_NAMES = {"migrant": "外来工", "enterprise": "集团", "campus": "高校", "(none)": "其他"}
TYPE_COLOURS = {
    "0": "#9e9e9e", "1": "#2e7d32", "21": "#66bb6a", "22": "#81c784", "23": "#a5d6a7", "3": "#ffb300",
    "41": "#e53935", "42": "#ef5350", "43": "#e57373", "5": "#6d4c41",
}


def output_dir() -> Path:
    """Where cycle outputs go: ``QZ_OUTPUT_DIR``, default ``var/output`` in the project."""
    return Path(os.environ.get("QZ_OUTPUT_DIR", PROJECT_ROOT / "var" / "output"))


def previous_cycle(marketing: Engine, cycle_date: dt.date) -> dt.date | None:
    t = schema.mkt_segment_snapshot
    with marketing.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(t.c.cycle_date)).where(t.c.cycle_date < cycle_date)).scalar()
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    return value


def _distribution(marketing: Engine, cycle_date: dt.date) -> pd.DataFrame:
    sql = db.render_sql("segment_distribution.sql", marketing.dialect.name, by=list(DIMENSIONS))
    with marketing.connect() as conn:
        frame = pd.read_sql(sa.text(sql), conn, params={"d": cycle_date.isoformat()})
    frame["value"] = frame["value"].astype(str)
    frame["customers"] = frame["customers"].astype("int64")
    total = frame[frame.dimension == "county_code"]["customers"].sum()
    frame["share"] = frame["customers"] / total if total else 0.0
    # the plan's own reading (economics.md): within the type (a type's row sums to 100%) and within
    # the column's value (for the market table: the share of the market each type makes up)
    frame["share_in_type"] = frame["customers"] / frame.groupby(["dimension", "stability_type"])["customers"].transform("sum")
    frame["share_in_value"] = frame["customers"] / frame.groupby(["dimension", "value"])["customers"].transform("sum")
    return frame


def _bundling(marketing: Engine, cycle_date: dt.date) -> pd.DataFrame:
    sql = db.render_sql("segment_bundling.sql", marketing.dialect.name)
    with marketing.connect() as conn:
        frame = pd.read_sql(sa.text(sql), conn, params={"d": cycle_date.isoformat()})
    for col in ("customers", "hard_bundled", "soft_bundled", "bundled", "package_users"):
        frame[col] = frame[col].astype("int64")
    frame["hard_rate"] = frame.hard_bundled / frame.customers
    frame["soft_rate"] = frame.soft_bundled / frame.customers
    frame["bundling_rate"] = frame.bundled / frame.customers      # combined: any bundle
    frame["package_share"] = frame.package_users / frame.customers
    return frame


@dataclass
class DistributionReport:
    cycle_date: dt.date
    previous: dt.date | None
    customers: int
    csv_path: Path
    bundling_csv_path: Path
    html_path: Path


def write_distribution_report(marketing: Engine, cycle_date: dt.date, out: Path | None = None) -> DistributionReport:
    """Write ``segment_distribution.csv``, ``segment_bundling.csv`` and ``segment_distribution.html``."""
    out = (out or output_dir()) / "reports" / cycle_date.isoformat()
    out.mkdir(parents=True, exist_ok=True)
    prev = previous_cycle(marketing, cycle_date)

    dist = _distribution(marketing, cycle_date)
    bund = _bundling(marketing, cycle_date)
    if prev is not None:
        p = _distribution(marketing, prev)[["dimension", "stability_type", "value", "share"]]
        dist = dist.merge(p.rename(columns={"share": "previous_share"}), how="outer",
                          on=["dimension", "stability_type", "value"])
        dist["customers"] = dist["customers"].fillna(0).astype(int)
        for col in ("share", "share_in_type", "share_in_value"):
            dist[col] = dist[col].fillna(0.0)
        dist["previous_share"] = dist["previous_share"].fillna(0.0)
        pb = _bundling(marketing, prev)[["stability_type", "bundling_rate"]]
        bund = bund.merge(pb.rename(columns={"bundling_rate": "previous_bundling_rate"}), how="left",
                          on="stability_type")
    else:
        dist["previous_share"] = float("nan")
        bund["previous_bundling_rate"] = float("nan")
    dist["change_pp"] = (dist["share"] - dist["previous_share"]) * 100
    dist.insert(0, "cycle_date", cycle_date.isoformat())
    bund.insert(0, "cycle_date", cycle_date.isoformat())
    type_order = {t: i for i, t in enumerate(STABILITY_TYPES)}
    dist = dist.sort_values(["dimension", "stability_type", "value"],
                            key=lambda s: s.map(type_order) if s.name == "stability_type" else s)
    bund = bund.sort_values("stability_type", key=lambda s: s.map(type_order))

    csv_path = out / "segment_distribution.csv"
    bundling_path = out / "segment_bundling.csv"
    exports.write_csv(dist, csv_path)  # BOM: Excel opens Chinese correctly; text cells never formulas
    exports.write_csv(bund, bundling_path)
    html_path = out / "segment_distribution.html"
    customers = int(dist[dist.dimension == "county_code"]["customers"].sum())
    html_path.write_text(_render_html(cycle_date, prev, dist, bund, customers), encoding="utf-8")
    return DistributionReport(cycle_date, prev, customers, csv_path, bundling_path, html_path)


# tables whose cells also show the share within the column's value (the market's own make-up)
WITHIN_VALUE = ("market_segment", "county_code")


def _matrix(dist: pd.DataFrame, dimension: str, labels: dict[str, str] | None = None) -> dict:
    part = dist[dist.dimension == dimension]
    values = sorted(part["value"].unique(), key=lambda v: (len(v), v) if v.isdigit() else (99, v))
    rows = []
    for t in STABILITY_TYPES:
        cells = []
        sub = part[part.stability_type == t].set_index("value")
        for v in values:
            row = sub.loc[v] if v in sub.index else None
            cells.append({"n": int(row["customers"]) if row is not None else 0,
                          "in_type": float(row["share_in_type"]) * 100 if row is not None else 0.0,
                          "in_value": float(row["share_in_value"]) * 100 if row is not None else 0.0,
                          "share": float(row["share"]) * 100 if row is not None else 0.0,
                          "change": float(row["change_pp"]) if row is not None else float("nan")})
        rows.append({"type": t, "name": TYPE_NAMES[t], "cells": cells,
                     "n": int(sub["customers"].sum()) if len(sub) else 0,
                     "in_type": float(sub["share_in_type"].sum()) * 100 if len(sub) else 0.0,
                     "total": float(sub["share"].sum()) * 100 if len(sub) else 0.0})
    return {"dimension": dimension, "title": DIMENSIONS[dimension], "within_value": dimension in WITHIN_VALUE,
            "columns": [(labels or {}).get(v, v) for v in values], "rows": rows}


def _render_html(cycle_date, prev, dist, bund, customers) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    names = county_names()
    county = dist[dist.dimension == "county_code"]
    bars = []
    for code in sorted(county["value"].unique()):
        part = county[county.value == code]
        total = part["customers"].sum()
        segments, x = [], 0.0
        for t in STABILITY_TYPES:
            n = int(part[part.stability_type == t]["customers"].sum())
            w = n / total * 100 if total else 0
            segments.append({"type": t, "x": x, "width": w, "n": n})
            x += w
        bars.append({"code": code, "name": names.get(code, code), "customers": int(total), "segments": segments})
    matrices = [_matrix(dist, "county_code", names), _matrix(dist, "market_segment", MARKET_NAMES)] + \
        [_matrix(dist, d) for d in ("spend_tier", "voice_tier", "data_tier", "tenure_tier")]
    bundling = [{"type": r.stability_type, "name": TYPE_NAMES[r.stability_type], "customers": int(r.customers),
                 "hard": int(r.hard_bundled), "soft": int(r.soft_bundled), "bundled": int(r.bundled),
                 "hard_rate": r.hard_rate * 100, "soft_rate": r.soft_rate * 100, "rate": r.bundling_rate * 100,
                 "packages": int(r.package_users), "package_share": r.package_share * 100,
                 "prev": (r.previous_bundling_rate * 100) if pd.notna(r.previous_bundling_rate) else None}
                for r in bund.itertuples()]
    return env.get_template("reports/segment_distribution.html.j2").render(
        cycle_date=cycle_date, previous=prev, customers=customers, bars=bars, matrices=matrices,
        bundling=bundling, type_names=TYPE_NAMES, colours=TYPE_COLOURS, types=STABILITY_TYPES)
